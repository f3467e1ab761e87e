/**
 * Constants of the cache layout, shared by the writer, the reader and `prep`.
 *
 * ```
 * cache/                      root group   zarr.json {attributes.voco_cache}
 *   <dataset>/                group        zarr.json {attributes.dataset}
 *     <case>/                 3-D array    zarr.json (shape [X, Y, Z], RAS, attributes)
 *       c/0/0/0               one shard    inner chunks (bytes + blosc + crc32c), then
 *                                          the index (offset, length per chunk) + crc32c
 *       c/<i>/<j>/<k>         or chunks    (layout "chunked") bytes + blosc + crc32c
 *   .staging/                 cases being written; never read as cache content
 * ```
 *
 * @module
 */

/** Version of the cache layout; part of every case fingerprint. */
export const CACHE_FORMAT_VERSION = 1;

/** Folder (inside the cache root) where cases are written before they are published. */
export const STAGING_DIR = ".staging";

/**
 * How a case's chunks are stored: `sharded`, one file per case (Zarr v3
 * `sharding_indexed`: the inner chunks and their index), or `chunked`, one file per chunk.
 */
export type Layout = "sharded" | "chunked";

/** Every {@linkcode Layout}. */
export const LAYOUTS: readonly Layout[] = ["sharded", "chunked"];

/** Default layout of a new cache: one file per case (`deno task bench cache` compares). */
export const DEFAULT_LAYOUT: Layout = "sharded";

/**
 * Default inner chunk edge of a sharded case: of the edges `deno task bench cache`
 * compares (64, 48, 32), the one whose random 192 x 192 x 64 crops read least for their
 * time (2.9 MB a crop against 3.4 MB for 64³, at the same cache size).
 */
export const DEFAULT_INNER_CHUNK = 48;

/** Default chunk edge in voxels (64^3 chunks: one VoCo crop reads at most 8 of them). */
export const DEFAULT_CHUNK = 64;

/**
 * Chunk compressors the cache writer supports: Blosc (byte shuffle + zstd or lz4), plain
 * zstd, or none, all standard Zarr v3 codecs; or `lorenzo`, blosc-zstd after the
 * `voco.lorenzo` prediction (`cache/codecs/lorenzo.ts`), an opt-in about 30 % smaller that
 * only this toolkit and cache/README's NumPy lines read (other Zarr readers refuse it).
 */
export type Compressor = "blosc-zstd" | "blosc-lz4" | "zstd" | "none" | "lorenzo";

/** Every {@linkcode Compressor}. */
export const COMPRESSORS: readonly Compressor[] = [
  "blosc-zstd",
  "blosc-lz4",
  "zstd",
  "none",
  "lorenzo",
];

/**
 * The compression levels each compressor accepts: Blosc's `clevel` is 0..9 (for zstd and
 * lz4 alike), zstd's level 1..22; `none` takes none.
 */
export const COMPRESSOR_LEVELS: Readonly<Record<Compressor, readonly [number, number] | null>> = {
  "blosc-zstd": [0, 9],
  "blosc-lz4": [0, 9],
  "zstd": [1, 22],
  "none": null,
  "lorenzo": [0, 9],
};

/** Default compression level (within every compressor's range). */
export const DEFAULT_LEVEL = 3;

/**
 * Default compressor: the smallest cache, writing and reading fastest but for `none`
 * (`deno task bench cache` measures all of them).
 */
export const DEFAULT_COMPRESSOR: Compressor = "blosc-zstd";

/** Longest node name: room for a staging prefix within a file system's 255 bytes. */
const MAX_NODE_NAME = 200;

/** Names a node must not take: they are Zarr keys of its parent (compared ignoring case). */
const RESERVED = new Set(["zarr.json", "c"]);

/**
 * True when `name` is a valid dataset or case node name: letters, digits, `.`, `_`, `-`,
 * not starting with `__` or punctuation, at most 200 characters, and not a Zarr key
 * (`zarr.json`, `c`).
 */
export function isValidNodeName(name: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name) && !name.startsWith("__") &&
    name.length <= MAX_NODE_NAME && !RESERVED.has(name.toLowerCase());
}

/**
 * Turns an arbitrary string into a valid node name (`a/b c.nii` -> `a_b_c.nii`): a Zarr
 * key gets a `_` (`zarr.json` -> `zarr.json_`), and a name too long is cut, ending in a
 * hash of the whole string so that distinct long names stay distinct.
 */
export function toNodeName(s: string): string {
  let n = s.replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^[^A-Za-z0-9]+/, "");
  if (n.length === 0) n = "case";
  if (RESERVED.has(n.toLowerCase())) n = `${n}_`;
  if (n.length > MAX_NODE_NAME) {
    let h = 0x811c9dc5; // FNV-1a
    for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
    n = `${n.slice(0, MAX_NODE_NAME - 9)}_${h.toString(16).padStart(8, "0")}`;
  }
  return n;
}
