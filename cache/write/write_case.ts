// Writing one case as a Zarr v3 array: quantised values, chunked and compressed, each
// chunk with its CRC-32C, in one shard file (or one file per chunk), with its attributes
// and the integrity record that binds them together.
import type * as zarr from "zarrita";
import type { CaseVolume } from "../format/case_volume.ts";
import { quantize, type StorageDtype, type StorageEncoding } from "../format/quantize.ts";
import {
  crcHex,
  INTEGRITY_KEY,
  type IntegrityRecord,
  metadataSha256,
} from "../format/integrity.ts";
import {
  type Compressor,
  COMPRESSOR_LEVELS,
  COMPRESSORS,
  DEFAULT_CHUNK,
  DEFAULT_COMPRESSOR,
  DEFAULT_INNER_CHUNK,
  DEFAULT_LAYOUT,
  DEFAULT_LEVEL,
  type Layout,
} from "../format/format.ts";
import { registerCodecs } from "../codecs/register.ts";
import { type CodecMeta, encodeShard, shardingCodec } from "../codecs/shard.ts";
import { NativeBloscCodec } from "../codecs/blosc.ts";
import { LORENZO, lorenzoEncode } from "../codecs/lorenzo.ts";
import { NativeZstdCodec } from "../codecs/zstd.ts";
import { Crc32cCodec } from "../codecs/crc32c.ts";

/** A writable store, as zarrita defines it. */
export type WritableStore = zarr.Mutable & zarr.Readable;

/** Options of {@linkcode writeCase}. */
export interface WriteCaseOptions {
  /** How values are stored (dtype, scale and offset). */
  encoding: StorageEncoding;
  /**
   * Chunk edge in voxels (of the inner chunks when sharded; clamped to the volume's shape).
   * @default {48 sharded, 64 chunked}
   */
  chunk?: number;
  /**
   * Chunk compressor.
   * @default {"blosc-zstd"}
   */
  compressor?: Compressor;
  /**
   * Compression level: zstd's for `zstd`, Blosc's `clevel` (0..9) for the Blosc
   * compressors, as c-blosc takes it (for zstd, level 2 × clevel − 1; 9 is zstd's 22).
   * @default {3}
   */
  level?: number;
  /**
   * Blosc's filter (the Blosc compressors only): `deno task bench cache` compares them.
   * @default {"shuffle" for uint16 and float32, "noshuffle" for uint8}
   */
  shuffle?: BloscShuffle;
  /**
   * One shard file holding every chunk (`sharded`: the chunk edge is the inner chunk's),
   * or one file per chunk.
   * @default {"sharded"}
   */
  layout?: Layout;
  /** Attributes stored with the array (the encoding's fields are added). */
  attributes?: Record<string, unknown>;
  /**
   * The name the case is published as (`dataset/case`), recorded so that a case folder
   * copied or moved to another name is seen.
   * @default {`path` without its leading slash; none when `path` is "/"}
   */
  caseName?: string;
}

/** How a case is laid out: what {@linkcode arrayMetadata} needs. */
export interface ArrayLayout {
  /** Stored data type. */
  dtype: StorageDtype;
  /** Chunk compressor. */
  compressor: Compressor;
  /** Compression level. */
  level: number;
  /** Chunk edge (of the inner chunks when sharded), clamped to the shape. */
  chunk: number;
  /** One shard, or one file per chunk. */
  layout: Layout;
  /**
   * Whether chunks end in a CRC-32C (cases written before checksums have none).
   * @default {true}
   */
  crc32c?: boolean;
  /** Blosc's filter, {@linkcode BloscShuffle} (`shuffle` for multi-byte values when absent). */
  shuffle?: BloscShuffle;
}

/**
 * The filter of the Blosc compressors: byte shuffle (`shuffle`, the default for values of
 * more than a byte), `bitshuffle`, or none (`noshuffle`, always for single bytes). All
 * three are c-blosc's, so every Zarr reader decodes them.
 */
export type BloscShuffle = "shuffle" | "bitshuffle" | "noshuffle";

/**
 * The metadata (all but the attributes) the writer gives an array of `shape`: its chunk
 * grid, codecs and fill value, as Zarr v3 and every reader of it takes them. Used by the
 * writer, and by `cache verify` to check what a reader would obey.
 */
export function arrayMetadata(shape: readonly number[], layout: ArrayLayout): {
  meta: Record<string, unknown>;
  chunkShape: number[];
  grid: number[];
  codecs: CodecMeta[];
} {
  const chunkShape = shape.map((n) => Math.max(1, Math.min(n, layout.chunk)));
  const grid = shape.map((n, a) => Math.ceil(n / chunkShape[a]));
  const codecs = chunkCodecs(
    layout.compressor,
    { dtype: layout.dtype },
    layout.level,
    layout.shuffle,
  )
    .filter((c) => layout.crc32c !== false || c.name !== "crc32c");
  const sharded = layout.layout === "sharded";
  const meta = {
    zarr_format: 3,
    node_type: "array",
    shape: [...shape],
    data_type: layout.dtype,
    chunk_grid: {
      name: "regular",
      configuration: {
        // One shard covering the whole volume: a whole number of inner chunks.
        chunk_shape: sharded ? grid.map((g, a) => g * chunkShape[a]) : chunkShape,
      },
    },
    chunk_key_encoding: { name: "default", configuration: { separator: "/" } },
    codecs: sharded ? [shardingCodec(chunkShape, codecs)] : codecs,
    fill_value: 0,
    dimension_names: ["x", "y", "z"],
  };
  return { meta, chunkShape, grid, codecs };
}

/**
 * Writes a volume as one Zarr v3 array (shape `[X, Y, Z]`, C order) at `path` of a
 * store, with its chunks and `zarr.json`. Quantised dtypes record `scale_factor` and
 * `add_offset` in the attributes so that CF-aware readers (xarray) decode them; every
 * chunk carries a CRC-32C, `stored_chunks` records how many were written (so that a
 * reader can tell a missing chunk from one left at the fill value), and `voco_integrity`
 * binds the chunks to their positions, the metadata to its digest and the case to its
 * name (see `cache/format/integrity.ts`). `zarr.json` is written last. Returns the
 * number of chunks.
 */
export async function writeCase(
  store: WritableStore,
  path: `/${string}`,
  volume: CaseVolume,
  options: WriteCaseOptions,
): Promise<number> {
  registerCodecs();
  const enc = options.encoding;
  const layout = options.layout ?? DEFAULT_LAYOUT;
  if (layout !== "sharded" && layout !== "chunked") {
    throw new RangeError(`Unknown layout "${layout}"`);
  }
  const edge = options.chunk ?? (layout === "sharded" ? DEFAULT_INNER_CHUNK : DEFAULT_CHUNK);
  if (!Number.isInteger(edge) || edge < 1) throw new RangeError(`Invalid chunk edge ${edge}`);
  const shape = [...volume.shape];
  const { meta, chunkShape, grid, codecs } = arrayMetadata(shape, {
    dtype: enc.dtype,
    compressor: options.compressor ?? DEFAULT_COMPRESSOR,
    level: options.level ?? DEFAULT_LEVEL,
    chunk: edge,
    layout,
    shuffle: options.shuffle,
  });
  const count = grid[0] * grid[1] * grid[2];
  const data = quantize(volume.data, enc);
  const valueBytes = enc.dtype === "float32" ? 4 : enc.dtype === "uint16" ? 2 : 1;
  const encodeChunk = chunkEncoder(
    codecs,
    bloscBlockBytes(options.level ?? DEFAULT_LEVEL, chunkShape, valueBytes),
    chunkShape,
  );
  const base = path === "/" ? "" : path;
  const chunks: Uint8Array[] = [];
  const writes: Promise<void>[] = [];
  const [cx, cy, cz] = chunkShape;
  const Ctor = data.constructor as new (n: number) => typeof data;
  for (let i = 0; i < grid[0]; i++) {
    for (let j = 0; j < grid[1]; j++) {
      for (let k = 0; k < grid[2]; k++) {
        const bytes = await encodeChunk(
          innerChunk(data, shape, [i * cx, j * cy, k * cz], chunkShape, Ctor),
        );
        chunks.push(bytes);
        if (layout === "chunked") {
          writes.push(Promise.resolve(store.set(`${base}/c/${i}/${j}/${k}`, bytes)));
          if (writes.length >= 16) await Promise.all(writes.splice(0));
        }
      }
    }
  }
  if (layout === "sharded") await store.set(`${base}/c/0/0/0`, encodeShard(chunks));
  await Promise.all(writes);
  const caseName = options.caseName ?? (path === "/" ? undefined : path.slice(1));
  const record: IntegrityRecord = {
    version: 1,
    ...(caseName ? { case: caseName } : {}),
    chunks_crc32c: crcHex(chunks),
  };
  const attributes: Record<string, unknown> = { ...options.attributes, stored_chunks: count };
  if (enc.scaleFactor !== undefined) {
    attributes.scale_factor = enc.scaleFactor;
    attributes.add_offset = enc.addOffset ?? 0;
  }
  attributes[INTEGRITY_KEY] = record;
  const sealed = { ...meta, attributes };
  record.metadata_sha256 = await metadataSha256(sealed);
  await store.set(`${base}/zarr.json`, new TextEncoder().encode(JSON.stringify(sealed, null, 2)));
  return count;
}

/** The inner chunk at `start` of `chunk` voxels, C order, zero beyond the volume's edge. */
function innerChunk<T extends Uint8Array | Uint16Array | Float32Array>(
  data: T,
  shape: readonly number[],
  start: readonly number[],
  chunk: readonly number[],
  Ctor: new (n: number) => T,
): T {
  const out = new Ctor(chunk[0] * chunk[1] * chunk[2]);
  const nx = Math.min(chunk[0], shape[0] - start[0]);
  const ny = Math.min(chunk[1], shape[1] - start[1]);
  const nz = Math.min(chunk[2], shape[2] - start[2]);
  for (let x = 0; x < nx; x++) {
    for (let y = 0; y < ny; y++) {
      const src = ((start[0] + x) * shape[1] + start[1] + y) * shape[2] + start[2];
      out.set(data.subarray(src, src + nz), (x * chunk[1] + y) * chunk[2]);
    }
  }
  return out;
}

/**
 * x-slabs per Blosc block up to level 3: blocks of 8 slabs of a 48³ chunk (36 KiB of
 * uint16) compress as well as one block per chunk there (`bench cache`), and a
 * 192 × 192 × 64 crop then decodes a sixth fewer bytes (the slabs of a chunk's blocks it
 * does not cross are skipped).
 */
const SLABS_PER_BLOCK = 8;

/**
 * The Blosc block size the writer uses (0: one block per chunk). Not part of the metadata:
 * every Blosc reader takes any block size. Up to level 3, blocks of
 * {@linkcode SLABS_PER_BLOCK} x-slabs, for crop reads; from level 4, where zstd's higher
 * levels find more in a longer window (a 48³ case is 4-5 % smaller at level 8 in one
 * block than in blocks of 8 slabs, `bench cache`), one block per chunk, as c-blosc itself
 * chooses for zstd at those levels for chunks up to 256 KiB.
 */
export function bloscBlockBytes(
  level: number,
  chunkShape: readonly number[],
  valueBytes: number,
): number {
  return level <= 3 ? SLABS_PER_BLOCK * chunkShape[1] * chunkShape[2] * valueBytes : 0;
}

/**
 * Encodes a chunk's values (of `chunkShape`) through a codec list (`voco.lorenzo` or not,
 * `bytes`, then bytes-to-bytes codecs), Blosc in blocks of `blockBytes`.
 */
function chunkEncoder(
  codecs: CodecMeta[],
  blockBytes: number,
  chunkShape: readonly number[],
): (values: Uint8Array | Uint16Array | Float32Array) => Promise<Uint8Array> {
  const predict = codecs[0]?.name === LORENZO;
  if (predict) codecs = codecs.slice(1);
  if (codecs[0]?.name !== "bytes") throw new TypeError("The first codec must be bytes");
  const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  if (!littleEndian) throw new TypeError("Writing sharded cases needs a little-endian machine");
  const steps = codecs.slice(1).map((c) => {
    const config = (c.configuration ?? {}) as never;
    if (c.name === "blosc") return new NativeBloscCodec(config, { blockBytes });
    if (c.name === "zstd") return new NativeZstdCodec(config);
    if (c.name === "crc32c") return new Crc32cCodec();
    throw new TypeError(`No encoder for codec "${c.name}"`);
  });
  return async (values) => {
    if (predict) {
      if (values instanceof Float32Array) throw new TypeError(`${LORENZO} takes integers`);
      values = lorenzoEncode(values, chunkShape);
    }
    let bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    for (const s of steps) bytes = await s.encode(bytes);
    return bytes;
  };
}

/**
 * The Zarr v3 codec list of a compressor choice, ending in `crc32c`; `shuffle` is the
 * Blosc compressors' filter (byte shuffle for multi-byte values by default).
 */
export function chunkCodecs(
  compressor: Compressor,
  enc: Pick<StorageEncoding, "dtype">,
  level: number,
  shuffle?: BloscShuffle,
): CodecMeta[] {
  const codecs: CodecMeta[] = [
    { name: "bytes", configuration: { endian: "little" } },
  ];
  const typesize = enc.dtype === "float32" ? 4 : enc.dtype === "uint16" ? 2 : 1;
  if (!COMPRESSORS.includes(compressor)) throw new RangeError(`Unknown compressor "${compressor}"`);
  const range = COMPRESSOR_LEVELS[compressor];
  if (range && !(Number.isInteger(level) && level >= range[0] && level <= range[1])) {
    throw new RangeError(
      `Compression level ${level} is outside ${compressor}'s range ${range[0]}..${range[1]}`,
    );
  }
  if (compressor === "lorenzo") {
    if (typesize > 2) throw new RangeError(`The ${compressor} compressor stores uint16 or uint8`);
    codecs.unshift({ name: LORENZO });
  }
  if (compressor === "zstd") {
    codecs.push({ name: "zstd", configuration: { level, checksum: false } });
  } else if (compressor !== "none") {
    codecs.push({
      name: "blosc",
      configuration: {
        cname: compressor === "blosc-lz4" ? "lz4" : "zstd",
        clevel: level,
        shuffle: shuffle ?? (typesize > 1 ? "shuffle" : "noshuffle"),
        typesize,
        blocksize: 0,
      },
    });
  }
  codecs.push({ name: "crc32c" });
  return codecs;
}
