// Writing one case as a Zarr v3 array: quantised values, chunked and compressed, with
// the case's attributes.
import * as zarr from "zarrita";
import type { CaseVolume } from "./volume.ts";
import { quantize, type StorageEncoding } from "./quantize.ts";
import {
  type Compressor,
  COMPRESSOR_LEVELS,
  DEFAULT_CHUNK,
  DEFAULT_COMPRESSOR,
  DEFAULT_LEVEL,
} from "./format.ts";
import { registerCodecs } from "./codecs.ts";

/** A writable store, as zarrita defines it. */
export type WritableStore = zarr.Mutable & zarr.Readable;

/** Options of {@linkcode writeCase}. */
export interface WriteCaseOptions {
  /** How values are stored (dtype, scale and offset). */
  encoding: StorageEncoding;
  /**
   * Chunk edge in voxels (clamped to the volume's shape).
   * @default {64}
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
  /** Attributes stored with the array (the encoding's fields are added). */
  attributes?: Record<string, unknown>;
}

/**
 * Writes a volume as one Zarr v3 array (shape `[X, Y, Z]`, C order) at `path` of a
 * store, with its chunks and `zarr.json`. Quantised dtypes record `scale_factor` and
 * `add_offset` in the attributes so that CF-aware readers (xarray) decode them.
 */
export async function writeCase(
  store: WritableStore,
  path: `/${string}`,
  volume: CaseVolume,
  options: WriteCaseOptions,
): Promise<void> {
  registerCodecs();
  const enc = options.encoding;
  const edge = options.chunk ?? DEFAULT_CHUNK;
  if (!Number.isInteger(edge) || edge < 1) throw new RangeError(`Invalid chunk edge ${edge}`);
  const chunkShape = volume.shape.map((n) => Math.min(n, edge));
  const codecs = chunkCodecs(
    options.compressor ?? DEFAULT_COMPRESSOR,
    enc,
    options.level ?? DEFAULT_LEVEL,
  );
  const attributes: Record<string, unknown> = { ...options.attributes };
  if (enc.scaleFactor !== undefined) {
    attributes.scale_factor = enc.scaleFactor;
    attributes.add_offset = enc.addOffset ?? 0;
  }
  const arr = await zarr.create(new zarr.Location(store, path), {
    shape: [...volume.shape],
    chunkShape,
    dtype: enc.dtype,
    codecs,
    fillValue: 0,
    dimensionNames: ["x", "y", "z"],
    attributes,
  });
  const data = quantize(volume.data, enc);
  const shape = [...volume.shape];
  await zarr.set(arr, null, { data, shape, stride: [shape[1] * shape[2], shape[2], 1] } as never);
}

/** The Zarr v3 codec list of a compressor choice. */
export function chunkCodecs(
  compressor: Compressor,
  enc: StorageEncoding,
  level: number,
): { name: string; configuration: Record<string, unknown> }[] {
  const codecs: { name: string; configuration: Record<string, unknown> }[] = [
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
  return codecs;
}
