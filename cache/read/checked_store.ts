// A store view for reading one case: every chunk's bytes labelled with where they are
// and the checksum written there (so that a damaged, truncated or moved chunk fails with
// its name), shard indexes checked before use, and a chunk missing from a case written
// whole raised as damage.
import type * as zarr from "zarrita";
import type { AsyncReadable } from "@zarrita/storage";
import { chunkLabels } from "../codecs/crc32c.ts";
import {
  decodeShardIndex,
  encodeShardIndex,
  type ShardEntry,
  shardIndexBytes,
} from "../codecs/shard.ts";
import { DamagedCacheError } from "../errors.ts";

/** What the view needs to know of the case's array. */
export interface CheckedStoreOptions {
  /** The case's path in the store (`/ds/case`). */
  path: `/${string}`;
  /** Whether every chunk was written (a missing one is damage, not the fill value). */
  whole: boolean;
  /** Inner chunks per shard along each axis, for a sharded array. */
  shardGrid?: readonly number[];
  /**
   * The CRC-32C the writer recorded for each (inner) chunk, C order over
   * {@linkcode CheckedStoreOptions.chunkGrid}; a sound chunk with another is refused.
   */
  crcs?: Uint32Array;
  /** The array's grid of (inner) chunks that `crcs` follows. */
  chunkGrid?: readonly number[];
  /**
   * Most bytes an encoded chunk can take: an index entry claiming more is damage (an
   * index without a checksum cannot be checked otherwise).
   * @default {Infinity}
   */
  maxChunkBytes?: number;
}

/** Offsets from here on stand for inner chunks missing from their shard. */
const MISSING_MARK = 2 ** 52;

type Range = { offset: number; length: number } | { suffixLength: number };

/** The grid coordinates of a chunk key (`c/1/0/2`), `undefined` for other keys. */
function keyCoords(rel: string): number[] | undefined {
  const parts = rel.split("/");
  if (parts[0] !== "c" || parts.length < 2) return undefined;
  const coords = parts.slice(1).map(Number);
  return coords.every((n) => Number.isInteger(n) && n >= 0) ? coords : undefined;
}

/** `coords` of `grid` as a C-order index, `undefined` outside it. */
function flat(coords: readonly number[], grid: readonly number[]): number | undefined {
  if (coords.length !== grid.length) return undefined;
  let i = 0;
  for (let a = 0; a < grid.length; a++) {
    if (coords[a] >= grid[a]) return undefined;
    i = i * grid[a] + coords[a];
  }
  return i;
}

/** Coordinates of C-order index `i` in `grid`. */
function unflat(i: number, grid: readonly number[]): number[] {
  const out = new Array<number>(grid.length);
  for (let a = grid.length - 1; a >= 0; a--) {
    out[a] = i % grid[a];
    i = Math.floor(i / grid[a]);
  }
  return out;
}

/**
 * Wraps `store` for reading the case at `options.path`: chunk bytes are labelled for
 * {@linkcode chunkLabels} (with the checksum written at their position, when known); a
 * missing chunk file, shard, or inner chunk of a whole case, a shard index that fails
 * its checksum or points past a chunk's size, and a file that ends before a chunk does
 * throw a {@linkcode DamagedCacheError} naming the chunk.
 */
export function checkedStore(
  store: zarr.Readable,
  options: CheckedStoreOptions,
): AsyncReadable & Required<Pick<AsyncReadable, "getRange">> {
  const base = options.path === "/" ? "" : options.path;
  const caseName = options.path.replace(/^\/+/, "");
  const rel = (key: string) => key.slice(base.length + 1);
  const isChunk = (key: string) => key.startsWith(`${base}/c/`);
  const grid = options.shardGrid;
  const count = grid ? grid.reduce((a, b) => a * b, 1) : 0;
  const maxChunk = options.maxChunkBytes ?? Infinity;
  const damaged = (where: string, reason: string) =>
    new DamagedCacheError(`${where}: ${reason}`, { case: caseName, where });
  const missing = (where: string) =>
    new DamagedCacheError(
      `${where} is missing (the case was written whole: the cache is damaged)`,
      { case: caseName, where },
    );
  /** The checksum written for the chunk at array-level coordinates `coords`. */
  const crcAt = (coords: readonly number[] | undefined) => {
    if (!coords || !options.crcs || !options.chunkGrid) return undefined;
    const i = flat(coords, options.chunkGrid);
    return i === undefined ? undefined : options.crcs[i];
  };
  // Which inner chunk each stored offset of a shard is.
  const offsets = new Map<string, Map<number, number>>();
  const read = async <T>(where: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (e) {
      if ((e as { code?: string }).code === "ERR_OUT_OF_RANGE") {
        throw damaged(where, "the file is shorter than its index or a chunk it names (truncated)");
      }
      const msg = e instanceof Error ? e.message : String(e);
      throw new Error(`${where}: ${msg}`, { cause: e });
    }
  };
  return {
    async get(key, opts) {
      if (!isChunk(key)) return await store.get(key, opts);
      const where = `chunk ${rel(key)}`;
      const bytes = await read(where, () => Promise.resolve(store.get(key, opts)));
      if (!bytes) {
        if (options.whole) throw missing(where);
        return undefined;
      }
      chunkLabels.set(bytes, { label: where, crc: crcAt(keyCoords(rel(key))) });
      return bytes;
    },
    async getRange(key, range, opts) {
      const r = range as Range;
      const shard = rel(key);
      if ("suffixLength" in r) {
        const bytes = await read(
          `shard ${shard}`,
          () => Promise.resolve(rawRange(store, key, r, opts)),
        );
        if (!bytes) {
          if (options.whole) throw missing(`shard ${shard}`);
          return undefined;
        }
        if (bytes.length < r.suffixLength) {
          throw damaged(
            `shard ${shard}`,
            `${bytes.length} bytes, shorter than its index (${r.suffixLength} bytes): the file ` +
              `is truncated`,
          );
        }
        if (!grid) return bytes;
        const index = checkedIndex(bytes, r.suffixLength, {
          grid,
          count,
          maxChunk,
          whole: options.whole,
          damaged: (why) => damaged(`shard index of ${shard}`, why),
        });
        if (index.offsets) offsets.set(key, index.offsets);
        return index.bytes;
      }
      const inner = r.offset >= MISSING_MARK ? r.offset - MISSING_MARK : offsets.get(key)?.get(
        r.offset,
      );
      const where = inner === undefined
        ? `bytes ${r.offset}+${r.length} of ${shard}`
        : `inner chunk [${unflat(inner, grid!)}] of shard ${shard}`;
      if (r.offset >= MISSING_MARK) throw missing(where);
      const bytes = await read(where, () => Promise.resolve(rawRange(store, key, r, opts)));
      if (!bytes) {
        if (options.whole) throw missing(`shard ${shard}`);
        return undefined;
      }
      if (bytes.length < r.length) {
        throw damaged(
          where,
          `the file ends ${r.length - bytes.length} bytes before the chunk does (truncated)`,
        );
      }
      const shardAt = keyCoords(shard);
      const coords = inner === undefined || !shardAt || !grid
        ? undefined
        : unflat(inner, grid).map((c, a) => shardAt[a] * grid[a] + c);
      chunkLabels.set(bytes, { label: where, crc: crcAt(coords) });
      return bytes;
    },
  };
}

/** A byte range of a stored object, from a store without `getRange` too (its whole bytes). */
function rawRange(store: zarr.Readable, key: `/${string}`, range: Range, opts?: unknown) {
  if (store.getRange) return store.getRange(key, range as never, opts as never);
  return (async () => {
    const all = await store.get(key, opts as never);
    if (!all) return undefined;
    return "suffixLength" in range
      ? Uint8Array.prototype.slice.call(all, Math.max(0, all.length - range.suffixLength))
      : Uint8Array.prototype.slice.call(all, range.offset, range.offset + range.length);
  })();
}

/**
 * A shard index, checked: its checksum, each entry within what a chunk can take; which
 * inner chunk each stored offset is; for a case written whole, missing chunks' entries
 * pointed past any file (so that reading one fails). An index of another size is passed
 * through.
 */
function checkedIndex(
  bytes: Uint8Array,
  suffix: number,
  o: {
    grid: readonly number[];
    count: number;
    maxChunk: number;
    whole?: boolean;
    damaged: (why: string) => Error;
  },
): { bytes: Uint8Array; offsets?: Map<number, number> } {
  const { grid, count } = o;
  const crc = suffix === shardIndexBytes(count);
  if (!crc && suffix !== 16 * count) return { bytes };
  let entries: ShardEntry[];
  try {
    entries = decodeShardIndex(crc ? bytes : withCrc(bytes), count);
  } catch (e) {
    throw o.damaged((e as Error).message);
  }
  entries.forEach((e, i) => {
    if (e && (e.length > o.maxChunk || e.offset >= MISSING_MARK)) {
      throw o.damaged(
        `inner chunk [${unflat(i, grid)}] is said to take ${e.length} bytes at offset ` +
          `${e.offset}, more than a chunk can: the index is damaged`,
      );
    }
  });
  const offsets = new Map<number, number>();
  entries.forEach((e, i) => e && offsets.set(e.offset, i));
  if (!o.whole || entries.every((e) => e)) return { bytes, offsets };
  // Entries of missing chunks point past any file, so that reading one fails.
  const marked = encodeShardIndex(
    entries.map((e, i) => e ?? { offset: MISSING_MARK + i, length: 1 }),
  );
  return { bytes: crc ? marked : marked.subarray(0, marked.length - 4), offsets };
}

/** An index without a checksum given the one it would have, so that it can be decoded. */
function withCrc(bytes: Uint8Array): Uint8Array {
  const entries: ShardEntry[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < bytes.length / 16; i++) {
    const o = view.getBigUint64(16 * i, true), n = view.getBigUint64(16 * i + 8, true);
    entries.push(
      o === 0xffffffffffffffffn && n === 0xffffffffffffffffn
        ? null
        : { offset: Number(o), length: Number(n) },
    );
  }
  return encodeShardIndex(entries);
}

/** Messages that already say which chunk (set by this store's labels and errors). */
const NAMES_CHUNK = /inner chunk \[|chunk c\/|shard c\/|shard index of c\/|bytes \d+\+\d+ of c\//;

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
