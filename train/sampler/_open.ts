// Caches opened once per thread through the cache reader (a folder, http(s):// or s3://),
// their cases kept open by the reader (metadata parsed, codecs ready).
import { CacheReader, type CacheReaderOptions } from "../../cache/read/cache_reader.ts";
import type { Shape3 } from "../../prep/volume.ts";
import type { ReadBox } from "./voco_sample.ts";

/** Opens cases by cache location and path. */
export class CaseOpener {
  readonly #readers = new Map<string, Promise<CacheReader>>();
  readonly #options: CacheReaderOptions;

  /** An opener; `options` (plain data) go to every `CacheReader.open`. */
  constructor(options: CacheReaderOptions = {}) {
    this.#options = options;
  }

  /** The case's shape and a reader of zero-padded boxes of it. */
  async open(cache: string, path: `/${string}`): Promise<{ shape: Shape3; readBox: ReadBox }> {
    let r = this.#readers.get(cache);
    if (!r) {
      r = CacheReader.open(cache, this.#options);
      this.#readers.set(cache, r);
      r.catch(() => this.#readers.delete(cache));
    }
    const reader = await r;
    const c = await reader.openCase(path);
    return {
      shape: c.shape,
      readBox: (start, size, into) => reader.readCrop(path, start, size, { into }),
    };
  }
}
