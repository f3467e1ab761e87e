// A store view for reading one case: every chunk's bytes labelled (so a checksum error
// names the chunk), and a chunk missing from a case written whole raised as damage.
import type * as zarr from "zarrita";
import type { AsyncReadable } from "@zarrita/storage";
import { chunkLabels } from "../codecs/crc32c.ts";
import {
  decodeShardIndex,
  encodeShardIndex,
  type ShardEntry,
  shardIndexBytes,
} from "../codecs/shard.ts";

/** What the view needs to know of the case's array. */
export interface CheckedStoreOptions {
  /** The case's path in the store (`/ds/case`). */
  path: `/${string}`;
  /** Whether every chunk was written (a missing one is damage, not the fill value). */
  whole: boolean;
  /** Inner chunks per shard along each axis, for a sharded array. */
  shardGrid?: readonly number[];
}

/** Offsets from here on stand for inner chunks missing from their shard. */
const MISSING_MARK = 2 ** 52;

type Range = { offset: number; length: number } | { suffixLength: number };

/**
 * Wraps `store` for reading the case at `options.path`: chunk bytes are labelled for
 * {@linkcode chunkLabels}; a missing chunk file, shard, or inner chunk of a whole case
 * throws an error naming it; a shard index is checked (CRC-32C, bounds) before use.
 */
export function checkedStore(
  store: zarr.Readable,
  options: CheckedStoreOptions,
): AsyncReadable & Required<Pick<AsyncReadable, "getRange">> {
  const base = options.path === "/" ? "" : options.path;
  const rel = (key: string) => key.slice(base.length + 1);
  const isChunk = (key: string) => key.startsWith(`${base}/c/`);
  const grid = options.shardGrid;
  const count = grid ? grid[0] * grid[1] * grid[2] : 0;
  const coords = (i: number) =>
    grid
      ? [Math.floor(i / (grid[1] * grid[2])), Math.floor(i / grid[2]) % grid[1], i % grid[2]]
      : [];
  const missing = (what: string) =>
    new Error(`${what} is missing (the case was written whole: the cache is damaged)`);
  // Which inner chunk each stored offset of a shard is.
  const offsets = new Map<string, Map<number, number>>();
  const rawRange = async (key: `/${string}`, range: Range, opts?: unknown) => {
    if (store.getRange) return await store.getRange(key, range as never, opts as never);
    const all = await store.get(key, opts as never);
    if (!all) return undefined;
    return "suffixLength" in range
      ? Uint8Array.prototype.slice.call(all, Math.max(0, all.length - range.suffixLength))
      : Uint8Array.prototype.slice.call(all, range.offset, range.offset + range.length);
  };
  return {
    async get(key, opts) {
      const bytes = await store.get(key, opts);
      if (!isChunk(key)) return bytes;
      if (!bytes) {
        if (options.whole) throw missing(`chunk ${rel(key)}`);
        return undefined;
      }
      chunkLabels.set(bytes, `chunk ${rel(key)}`);
      return bytes;
    },
    async getRange(key, range, opts) {
      const r = range as Range;
      if ("suffixLength" in r) {
        const bytes = await rawRange(key, r, opts);
        if (!bytes) {
          if (options.whole) throw missing(`shard ${rel(key)}`);
          return undefined;
        }
        if (!grid || r.suffixLength !== shardIndexBytes(count)) return bytes;
        let entries: ShardEntry[];
        try {
          entries = decodeShardIndex(bytes, count);
        } catch (e) {
          throw new Error(`shard index of ${rel(key)}: ${(e as Error).message}`);
        }
        const at = new Map<number, number>();
        entries.forEach((e, i) => e && at.set(e.offset, i));
        offsets.set(key, at);
        if (!options.whole || entries.every((e) => e)) return bytes;
        // Entries of missing chunks point past any file, so that reading one fails.
        return encodeShardIndex(
          entries.map((e, i) => e ?? { offset: MISSING_MARK + i, length: 1 }),
        );
      }
      if (r.offset >= MISSING_MARK) {
        throw missing(`inner chunk [${coords(r.offset - MISSING_MARK)}] of shard ${rel(key)}`);
      }
      const bytes = await rawRange(key, r, opts);
      if (!bytes) return undefined;
      const i = offsets.get(key)?.get(r.offset);
      chunkLabels.set(
        bytes,
        i === undefined
          ? `bytes ${r.offset}+${r.length} of ${rel(key)}`
          : `inner chunk [${coords(i)}] of shard ${rel(key)}`,
      );
      return bytes;
    },
  };
}

/** Messages that already say which chunk (set by this store's labels and errors). */
const NAMES_CHUNK = /inner chunk \[|chunk c\/|shard c\/|shard index of c\//;

/**
 * What went wrong reading chunk `coords`, naming it: the labelled message of the error
 * or its cause (zarrita wraps codec errors), else the message prefixed with the chunk.
 */
export function describeChunkError(e: unknown, coords: readonly number[]): string {
  const err = e instanceof Error ? e : new Error(String(e));
  const cause = err.cause instanceof Error ? err.cause.message : undefined;
  if (cause && NAMES_CHUNK.test(cause)) return cause;
  if (NAMES_CHUNK.test(err.message)) return err.message;
  return `chunk [${coords}]: ${err.message}${cause ? `: ${cause}` : ""}`;
}
