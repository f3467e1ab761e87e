// The files of one case as `cache verify` reads them, from a folder or from a URL: each
// file read whole, once, and sliced into the ranges zarrita asks for, so that a folder and
// a URL are verified by the same code.
import type * as zarr from "zarrita";
import { join } from "node:path";
import type { CacheReader } from "../read/cache_reader.ts";
import { FileStore } from "../store/file_store.ts";
import { folderSize } from "./stats.ts";
import { gate } from "../store/limit.ts";

/** A zarrita store with ranges (what `openCaseArray` reads chunks through). */
type RangeStore = zarr.AsyncReadable & Required<Pick<zarr.AsyncReadable, "getRange">>;

/** A byte range as zarrita asks for it. */
type Range = { offset: number; length: number } | { suffixLength: number };

/** A range of `all` (fewer bytes where the file ends first), copied: typed arrays over it must start aligned. */
function slice(all: Uint8Array, r: Range): Uint8Array {
  return "suffixLength" in r
    ? Uint8Array.prototype.slice.call(all, Math.max(0, all.length - r.suffixLength))
    : Uint8Array.prototype.slice.call(all, r.offset, r.offset + r.length);
}

/** The files of one case, wherever they are stored. */
export interface CaseFiles {
  /** The case's own `zarr.json` as text, `undefined` when missing; throws saying why it cannot be read. */
  metadata(): Promise<string | undefined>;
  /** Bytes of the case's file `key` (`c/0/0/0`), `undefined` when it is missing. */
  size(key: string): Promise<number | undefined>;
  /** The last `n` bytes of the case's file `key`, of `size` bytes. */
  tail(key: string, size: number, n: number): Promise<Uint8Array>;
  /** The store the case's array is opened on: each file read whole once, then sliced. */
  store: RangeStore;
  /** Starts reading the case's files `keys` ahead of their use (a few at once). */
  prefetch(keys: readonly string[]): void;
  /** Stops reading ahead; what was read stays. */
  close(): void;
  /** Bytes of the case's files (a folder: all of them; a URL: those read). */
  bytes(): Promise<number>;
  /** How a missing file `key` is told (`missing`, `missing (404 at <url>)`). */
  missing(key: string): string;
}

/**
 * A case in the folder `root`. Every byte is read anyway: each file once, whole, rather
 * than a read per chunk.
 */
export function folderFiles(root: string, dataset: string, name: string): CaseFiles {
  const dir = join(root, dataset, name);
  const fs = new FileStore(root);
  const files = new Map<string, Promise<Uint8Array | undefined>>();
  const whole = (key: `/${string}`) => {
    if (!files.has(key)) files.set(key, fs.get(key));
    return files.get(key)!;
  };
  return {
    metadata: async () => {
      const b = await fs.get(`/${dataset}/${name}/zarr.json`);
      return b && new TextDecoder().decode(b);
    },
    size: async (key) => (await whole(`/${dataset}/${name}/${key}`))?.length,
    async tail(key, size, n) {
      const all = await whole(`/${dataset}/${name}/${key}`);
      return slice(all!, { offset: size - n, length: n });
    },
    store: {
      get: (key) => whole(key),
      getRange: async (key, r) => {
        const all = await whole(key);
        return all ? slice(all, r as Range) : undefined;
      },
    },
    prefetch() {},
    close() {},
    bytes: async () => (await folderSize(dir).catch(() => ({ bytes: 0 }))).bytes,
    missing: () => "missing",
  };
}

/**
 * A case read through `reader` (a URL): each file fetched whole once (a shard is one GET,
 * not one request per inner chunk), `concurrency` at a time, read ahead in the order the
 * checks need them; the case's `zarr.json` as stored, not its consolidated copy.
 */
export function remoteFiles(
  reader: CacheReader,
  path: `/${string}`,
  concurrency: number,
): CaseFiles {
  const files = new Map<string, Promise<Uint8Array | undefined>>();
  const slots = gate(concurrency);
  let closed = false;
  const whole = (key: `/${string}`) => {
    let p = files.get(key);
    if (!p) {
      p = slots.run(() => closed ? Promise.resolve(undefined) : reader.getStored(key));
      p.catch(() => {}); // a file read ahead and never asked for must not fail the run
      files.set(key, p);
    }
    return p;
  };
  const at = (key: string) => `${reader.location.replace(/\/+$/, "")}${path}/${key}`;
  return {
    async metadata() {
      const b = await whole(`${path}/zarr.json`);
      return b && new TextDecoder().decode(b);
    },
    async size(key) {
      try {
        return (await whole(`${path}/${key}`))?.length;
      } catch (e) {
        // Fetch errors name their URL already; others get the file's.
        const msg = (e as Error).message;
        throw new Error(msg.includes("://") ? msg : `${msg} (${at(key)})`, { cause: e });
      }
    },
    async tail(key, size, n) {
      const all = await whole(`${path}/${key}`);
      return slice(all!, { offset: size - n, length: n });
    },
    store: {
      get: (key) => whole(key),
      getRange: async (key, r) => {
        const all = await whole(key);
        return all ? slice(all, r as Range) : undefined;
      },
    },
    prefetch(keys) {
      for (const k of keys) whole(`${path}/${k}`);
    },
    close() {
      closed = true;
    },
    async bytes() {
      let total = 0;
      for (const r of await Promise.allSettled(files.values())) {
        if (r.status === "fulfilled") total += r.value?.length ?? 0;
      }
      return total;
    },
    missing: (key) => `missing (404 at ${at(key)})`,
  };
}
