// A zarrita store over a local folder that reads exactly what is there: a range past the
// end of a file comes back short (never padded with zeros, never an internal error), so
// that a truncated file is told as such; reads are counted.
import type * as zarr from "zarrita";
import { join } from "node:path";
import { type FileHandle, open } from "node:fs/promises";
import type { FetchStats } from "./http_store.ts";

/** A byte range as zarrita asks for it. */
type Range = { offset: number; length: number } | { suffixLength: number };

/** Whether an error says the file is not there (or a part of its path is no folder). */
function isMissing(e: unknown): boolean {
  return e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory;
}

/**
 * The files below `root` as a readable zarrita store. `get` of a missing file is
 * `undefined`; `getRange` returns the bytes of the range that the file holds (fewer when
 * it ends before the range does; a suffix longer than the file is the whole file).
 */
export class FileStore implements zarr.AsyncReadable {
  /** The folder. */
  readonly root: string;
  /** Reads and bytes so far. */
  readonly stats: FetchStats = { requests: 0, bytes: 0 };

  /** A store reading below `root`. */
  constructor(root: string) {
    this.root = root;
  }

  #path(key: string): string {
    return join(this.root, ...key.split("/").filter(Boolean));
  }

  /** The whole file `key`, or `undefined` when there is none. */
  async get(key: zarr.AbsolutePath): Promise<Uint8Array | undefined> {
    this.stats.requests++;
    try {
      const b = await Deno.readFile(this.#path(key));
      this.stats.bytes += b.length;
      return b;
    } catch (e) {
      if (isMissing(e)) return undefined;
      throw e;
    }
  }

  /** The bytes of `range` of file `key` that it holds, or `undefined` when there is none. */
  async getRange(key: zarr.AbsolutePath, range: zarr.RangeQuery): Promise<Uint8Array | undefined> {
    this.stats.requests++;
    let file: FileHandle;
    try {
      file = await open(this.#path(key), "r");
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === "ENOENT" || code === "ENOTDIR") return undefined;
      throw e;
    }
    try {
      const r = range as Range;
      let start: number, end: number;
      if ("suffixLength" in r) {
        const size = (await file.stat()).size;
        [start, end] = [Math.max(0, size - r.suffixLength), size];
      } else [start, end] = [r.offset, r.offset + r.length];
      const out = new Uint8Array(Math.max(0, end - start));
      let got = 0;
      while (got < out.length) {
        const { bytesRead } = await file.read(out, got, out.length - got, start + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      this.stats.bytes += got;
      return got === out.length ? out : out.subarray(0, got);
    } finally {
      await file.close();
    }
  }
}
