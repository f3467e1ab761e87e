/**
 * Constants of the cache layout, shared by the writer, the reader and `prep`.
 *
 * ```
 * cache/                      root group   zarr.json {attributes.voco_cache}
 *   <dataset>/                group        zarr.json {attributes.dataset}
 *     <case>/                 3-D array    zarr.json (shape [X, Y, Z], RAS, attributes)
 *       c/<i>/<j>/<k>         chunks       bytes (little endian) + blosc(zstd, shuffle)
 *   .staging/                 cases being written; never read as cache content
 * ```
 *
 * @module
 */

/** Version of the cache layout; part of every case fingerprint. */
export const CACHE_FORMAT_VERSION = 1;

/** Folder (inside the cache root) where cases are written before they are published. */
export const STAGING_DIR = ".staging";

/** Default chunk edge in voxels (64^3 chunks: one VoCo crop reads at most 8 of them). */
export const DEFAULT_CHUNK = 64;

/**
 * Chunk compressors the cache writer supports: Blosc (byte shuffle + zstd or lz4), plain
 * zstd, or none. All are standard Zarr v3 codecs.
 */
export type Compressor = "blosc-zstd" | "blosc-lz4" | "zstd" | "none";

/** Every {@linkcode Compressor}. */
export const COMPRESSORS: readonly Compressor[] = ["blosc-zstd", "blosc-lz4", "zstd", "none"];

/**
 * The compression levels each compressor accepts: Blosc's `clevel` is 0..9 (for zstd and
 * lz4 alike), zstd's level 1..22; `none` takes none.
 */
export const COMPRESSOR_LEVELS: Readonly<Record<Compressor, readonly [number, number] | null>> = {
  "blosc-zstd": [0, 9],
  "blosc-lz4": [0, 9],
  "zstd": [1, 22],
  "none": null,
};

/** Default compression level (within every compressor's range). */
export const DEFAULT_LEVEL = 3;

/**
 * Default compressor: the smallest cache, writing and reading fastest but for `none`
 * (`deno task bench cache` measures all of them).
 */
export const DEFAULT_COMPRESSOR: Compressor = "blosc-zstd";

/** True when `name` is a valid dataset or case node name. */
export function isValidNodeName(name: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name) && !name.startsWith("__");
}

/** Turns an arbitrary string into a valid node name (`a/b c.nii` -> `a_b_c.nii`). */
export function toNodeName(s: string): string {
  const n = s.replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^[^A-Za-z0-9]+/, "");
  return n.length > 0 ? n : "case";
}
