// Range requests to one file made in the same tick, merged: the inner chunks a crop needs
// from a shard become a few reads (or HTTP requests) instead of one each.
import type * as zarr from "zarrita";

type Range = { offset: number; length: number } | { suffixLength: number };

/** A store that reads byte ranges (what {@linkcode coalesceRanges} wraps). */
export interface RangeReader {
  /** The bytes of `range` of `key` (fewer when the file ends first), or `undefined`. */
  getRange(
    key: zarr.AbsolutePath,
    range: zarr.RangeQuery,
    options?: unknown,
  ): Promise<Uint8Array | undefined>;
}

interface Pending {
  offset: number;
  length: number;
  resolve: (b: Uint8Array | undefined) => void;
  reject: (e: unknown) => void;
}

/**
 * `store.getRange` with the ranges of one file asked for in the same tick merged when
 * they are at most `gapBytes` apart (0: only touching ones), each read once; every caller
 * gets a view of the merged bytes (not a copy) holding exactly its range, or fewer bytes
 * when the file ends first (as the store would answer). Suffix ranges pass through.
 */
export function coalesceRanges(
  store: RangeReader,
  gapBytes = 0,
): (key: zarr.AbsolutePath, range: zarr.RangeQuery) => Promise<Uint8Array | undefined> {
  let pending = new Map<zarr.AbsolutePath, Pending[]>();
  const flush = () => {
    const batch = pending;
    pending = new Map();
    for (const [key, requests] of batch) {
      requests.sort((a, b) => a.offset - b.offset);
      let group: Pending[] = [];
      let end = 0;
      const send = (g: Pending[]) => {
        const start = g[0].offset;
        const stop = Math.max(...g.map((r) => r.offset + r.length));
        store.getRange(key, { offset: start, length: stop - start }).then((bytes) => {
          for (const r of g) {
            if (!bytes) r.resolve(undefined);
            else {
              const from = Math.min(r.offset - start, bytes.length);
              r.resolve(bytes.subarray(from, Math.min(from + r.length, bytes.length)));
            }
          }
        }, (e) => g.forEach((r) => r.reject(e)));
      };
      for (const r of requests) {
        if (group.length && r.offset > end + gapBytes) {
          send(group);
          group = [];
        }
        end = group.length ? Math.max(end, r.offset + r.length) : r.offset + r.length;
        group.push(r);
      }
      if (group.length) send(group);
    }
  };
  return (key, range) => {
    const r = range as Range;
    if ("suffixLength" in r) return store.getRange(key, range);
    return new Promise((resolve, reject) => {
      if (pending.size === 0) queueMicrotask(flush);
      let list = pending.get(key);
      if (!list) pending.set(key, list = []);
      list.push({ offset: r.offset, length: r.length, resolve, reject });
    });
  };
}
