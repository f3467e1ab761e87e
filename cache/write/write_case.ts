// Writing one case as a Zarr v3 array: quantised values, chunked and compressed, each
// chunk with its CRC-32C, in one shard file (or one file per chunk), with its attributes.
import * as zarr from "zarrita";
import type { CaseVolume } from "../format/case_volume.ts";
import { quantize, type StorageEncoding } from "../format/quantize.ts";
import {
  type Compressor,
  COMPRESSOR_LEVELS,
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
   * Compression level (zstd's, or Blosc's clevel for lz4).
   * @default {3}
   */
  level?: number;
  /**
   * One shard file holding every chunk (`sharded`: the chunk edge is the inner chunk's),
   * or one file per chunk.
   * @default {"sharded"}
   */
  layout?: Layout;
  /** Attributes stored with the array (the encoding's fields are added). */
  attributes?: Record<string, unknown>;
}

/**
 * Writes a volume as one Zarr v3 array (shape `[X, Y, Z]`, C order) at `path` of a
 * store, with its chunks and `zarr.json`. Quantised dtypes record `scale_factor` and
 * `add_offset` in the attributes so that CF-aware readers (xarray) decode them; every
 * chunk carries a CRC-32C, and `stored_chunks` records how many were written, so that a
 * reader can tell a missing chunk from one left at the fill value. Returns that count.
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
  const edge = options.chunk ?? (layout === "sharded" ? DEFAULT_INNER_CHUNK : DEFAULT_CHUNK);
  if (!Number.isInteger(edge) || edge < 1) throw new RangeError(`Invalid chunk edge ${edge}`);
  const shape = [...volume.shape];
  const chunkShape = shape.map((n) => Math.min(n, edge));
  const grid = shape.map((n, a) => Math.ceil(n / chunkShape[a]));
  const count = grid[0] * grid[1] * grid[2];
  const codecs = chunkCodecs(
    options.compressor ?? DEFAULT_COMPRESSOR,
    enc,
    options.level ?? DEFAULT_LEVEL,
  );
  const attributes: Record<string, unknown> = { ...options.attributes, stored_chunks: count };
  if (enc.scaleFactor !== undefined) {
    attributes.scale_factor = enc.scaleFactor;
    attributes.add_offset = enc.addOffset ?? 0;
  }
  const data = quantize(volume.data, enc);
  if (layout === "chunked") {
    const arr = await zarr.create(new zarr.Location(store, path), {
      shape,
      chunkShape,
      dtype: enc.dtype,
      codecs: codecs as never,
      fillValue: 0,
      dimensionNames: ["x", "y", "z"],
      attributes,
    });
    await zarr.set(arr, null, { data, shape, stride: [shape[1] * shape[2], shape[2], 1] } as never);
    return count;
  }
  if (layout !== "sharded") throw new RangeError(`Unknown layout "${layout}"`);
  // One shard covering the whole volume (its shape a whole number of inner chunks).
  const encodeChunk = chunkEncoder(codecs);
  const chunks: Uint8Array[] = [];
  const [cx, cy, cz] = chunkShape;
  const Ctor = data.constructor as new (n: number) => typeof data;
  for (let i = 0; i < grid[0]; i++) {
    for (let j = 0; j < grid[1]; j++) {
      for (let k = 0; k < grid[2]; k++) {
        chunks.push(
          await encodeChunk(innerChunk(data, shape, [i * cx, j * cy, k * cz], chunkShape, Ctor)),
        );
      }
    }
  }
  const meta = {
    zarr_format: 3,
    node_type: "array",
    shape,
    data_type: enc.dtype,
    chunk_grid: {
      name: "regular",
      configuration: { chunk_shape: grid.map((g, a) => g * chunkShape[a]) },
    },
    chunk_key_encoding: { name: "default", configuration: { separator: "/" } },
    codecs: [shardingCodec(chunkShape, codecs)],
    fill_value: 0,
    dimension_names: ["x", "y", "z"],
    attributes,
  };
  const base = path === "/" ? "" : path;
  await store.set(`${base}/c/0/0/0`, encodeShard(chunks));
  await store.set(`${base}/zarr.json`, new TextEncoder().encode(JSON.stringify(meta, null, 2)));
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

/** Encodes a chunk's values through a codec list (`bytes`, then bytes-to-bytes codecs). */
function chunkEncoder(
  codecs: CodecMeta[],
): (values: Uint8Array | Uint16Array | Float32Array) => Promise<Uint8Array> {
  if (codecs[0]?.name !== "bytes") throw new TypeError("The first codec must be bytes");
  const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  if (!littleEndian) throw new TypeError("Writing sharded cases needs a little-endian machine");
  const steps = codecs.slice(1).map((c) => {
    const config = (c.configuration ?? {}) as never;
    if (c.name === "blosc") return new NativeBloscCodec(config);
    if (c.name === "zstd") return new NativeZstdCodec(config);
    if (c.name === "crc32c") return new Crc32cCodec();
    throw new TypeError(`No encoder for codec "${c.name}"`);
  });
  return async (values) => {
    let bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    for (const s of steps) bytes = await s.encode(bytes);
    return bytes;
  };
}

/** The Zarr v3 codec list of a compressor choice, ending in `crc32c`. */
export function chunkCodecs(
  compressor: Compressor,
  enc: StorageEncoding,
  level: number,
): CodecMeta[] {
  const codecs: CodecMeta[] = [
    { name: "bytes", configuration: { endian: "little" } },
  ];
  const typesize = enc.dtype === "float32" ? 4 : enc.dtype === "uint16" ? 2 : 1;
  const range = COMPRESSOR_LEVELS[compressor];
  if (range && !(Number.isInteger(level) && level >= range[0] && level <= range[1])) {
    throw new RangeError(
      `Compression level ${level} is outside ${compressor}'s range ${range[0]}..${range[1]}`,
    );
  }
  if (compressor === "zstd") {
    codecs.push({ name: "zstd", configuration: { level, checksum: false } });
  } else if (compressor === "blosc-zstd" || compressor === "blosc-lz4") {
    codecs.push({
      name: "blosc",
      configuration: {
        cname: compressor === "blosc-zstd" ? "zstd" : "lz4",
        clevel: level,
        shuffle: typesize > 1 ? "shuffle" : "noshuffle",
        typesize,
        blocksize: 0,
      },
    });
  } else if (compressor !== "none") {
    throw new RangeError(`Unknown compressor "${compressor}"`);
  }
  codecs.push({ name: "crc32c" });
  return codecs;
}
