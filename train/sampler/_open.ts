// Cases opened once per thread (metadata parsed, codecs ready), the last few kept.
import { FileSystemStore } from "@zarrita/storage";
import { type OpenCase, openCase } from "../../cache/read_case.ts";
import type { Shape3 } from "../../prep/volume.ts";
import { readPaddedBox } from "./read_box.ts";
import type { ReadBox } from "./voco_sample.ts";

/** Opens cases by cache and path, keeping the most recent `limit` open. */
export class CaseOpener {
  readonly #open = new Map<string, Promise<OpenCase>>();
  readonly #stores = new Map<string, FileSystemStore>();
  readonly #limit: number;

  /** An opener keeping at most `limit` cases open. */
  constructor(limit = 64) {
    this.#limit = limit;
  }

  /** The case's shape and a reader of padded boxes of it. */
  async open(cache: string, path: `/${string}`): Promise<{ shape: Shape3; readBox: ReadBox }> {
    const key = `${cache}\u0000${path}`;
    let p = this.#open.get(key);
    if (!p) {
      let store = this.#stores.get(cache);
      if (!store) this.#stores.set(cache, store = new FileSystemStore(cache));
      p = openCase(store, path);
      this.#open.set(key, p);
      p.catch(() => this.#open.delete(key));
      if (this.#open.size > this.#limit) this.#open.delete(this.#open.keys().next().value!);
    }
    const c = await p;
    return { shape: c.shape, readBox: (start, size) => readPaddedBox(c, start, size) };
  }
}
