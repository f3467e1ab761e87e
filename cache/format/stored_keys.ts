// The files a case's array stores, from its metadata alone: one key per chunk (a shard,
// for a sharded array) of its grid, in the array's chunk key encoding; and the order a
// folder's listing gives cases in.

/** The parts of a Zarr v3 array's metadata that decide its stored keys. */
export interface KeyedArrayMeta {
  /** Array shape. */
  shape?: unknown;
  /** The regular grid of stored chunks (shards of a sharded array). */
  chunk_grid?: { configuration?: { chunk_shape?: unknown } };
  /** `default` (`c/0/0/0`) or `v2` (`0.0.0`), with its separator. */
  chunk_key_encoding?: { name?: string; configuration?: { separator?: string } };
}

/**
 * Stored chunks (shards of a sharded array) along each axis, or `undefined` when the
 * metadata has no usable shape and grid.
 */
export function storedGrid(meta: KeyedArrayMeta): number[] | undefined {
  const shape = meta.shape, chunk = meta.chunk_grid?.configuration?.chunk_shape;
  if (!Array.isArray(shape) || !Array.isArray(chunk) || shape.length !== chunk.length) {
    return undefined;
  }
  if (!chunk.every((n) => Number.isInteger(n) && n > 0)) return undefined;
  if (!shape.every((n) => Number.isInteger(n) && n >= 0)) return undefined;
  return shape.map((n: number, a) => Math.ceil(n / (chunk[a] as number)));
}

/** The key, relative to the array, of the stored chunk at grid position `coords`. */
export function chunkKey(meta: KeyedArrayMeta, coords: readonly number[]): string {
  const e = meta.chunk_key_encoding;
  if (e?.name === "v2") {
    const sep = e.configuration?.separator ?? ".";
    return coords.length ? coords.join(sep) : "0";
  }
  const sep = e?.configuration?.separator ?? "/";
  return ["c", ...coords].join(sep);
}

/**
 * The key of every chunk the array stores (each shard of a sharded array), relative to
 * the array, in C order of the grid; none when the metadata has no usable grid.
 */
export function storedKeys(meta: KeyedArrayMeta): string[] {
  const grid = storedGrid(meta);
  if (!grid) return [];
  const total = grid.reduce((a, b) => a * b, 1);
  const out: string[] = [];
  const coords = new Array<number>(grid.length).fill(0);
  for (let n = 0; n < total; n++) {
    let rest = n;
    for (let a = grid.length - 1; a >= 0; a--) {
      coords[a] = rest % grid[a];
      rest = Math.floor(rest / grid[a]);
    }
    out.push(chunkKey(meta, coords));
  }
  return out;
}

/**
 * `cases` dataset by dataset, each group's cases by name: the order of a folder's listing
 * (`listCases`), which a path sort differs from (`ct-a/x` sorts before `ct/x`).
 */
export function folderOrder<T extends { dataset: string; name: string }>(cases: T[]): T[] {
  const cmp = (x: string, y: string) => x < y ? -1 : x > y ? 1 : 0;
  return cases.sort((a, b) => cmp(a.dataset, b.dataset) || cmp(a.name, b.name));
}
