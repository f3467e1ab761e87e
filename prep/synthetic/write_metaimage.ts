// A MetaImage writer (`.mha`, `.mhd` + `.raw`/`.zraw`), for tests and benchmarks.
import { deflateSync } from "node:zlib";
import type { Volume, VoxelArray } from "../volume.ts";
import { columnNorms } from "../transforms/_affine.ts";
import { copyToFileOrder } from "../formats/_voxels.ts";

/** Options of {@linkcode writeMetaImage}. */
export interface WriteMetaImageOptions {
  /**
   * Voxel type on disk.
   * @default {"int16"}
   */
  dtype?:
    | "uint8"
    | "int8"
    | "int16"
    | "uint16"
    | "int32"
    | "uint32"
    | "int64"
    | "uint64"
    | "float32"
    | "float64";
  /**
   * Name of the separate data file (`.mhd` + `.raw`/`.zraw`); omitted: one `.mha` file
   * (`ElementDataFile = LOCAL`).
   */
  dataFile?: string;
  /**
   * zlib-compress the voxels (`CompressedData = True`).
   * @default {false}
   */
  compressed?: boolean;
  /**
   * Big-endian voxels (`BinaryDataByteOrderMSB = True`).
   * @default {false}
   */
  msb?: boolean;
  /**
   * Bytes of filler before the voxels in the data file (`HeaderSize`), or -1: write
   * 64 filler bytes and `HeaderSize = -1` (data are the file's last bytes).
   * @default {0}
   */
  headerSize?: number;
}

const TYPES = {
  uint8: ["MET_UCHAR", Uint8Array],
  int8: ["MET_CHAR", Int8Array],
  int16: ["MET_SHORT", Int16Array],
  uint16: ["MET_USHORT", Uint16Array],
  int32: ["MET_INT", Int32Array],
  uint32: ["MET_UINT", Uint32Array],
  int64: ["MET_LONG_LONG", BigInt64Array],
  uint64: ["MET_ULONG_LONG", BigUint64Array],
  float32: ["MET_FLOAT", Float32Array],
  float64: ["MET_DOUBLE", Float64Array],
} as const;

/**
 * Encodes a volume (axis 0 becomes the file's x) as MetaImage, in ITK's LPS convention.
 * Returns the header (with the voxels after it for `.mha`) and, for `.mhd`, the data
 * file's bytes. Used by the demo, the tests and the benchmark.
 */
export function writeMetaImage(
  volume: Volume<VoxelArray>,
  options: WriteMetaImageOptions = {},
): { header: Uint8Array; data?: Uint8Array } {
  const dtype = options.dtype ?? "int16";
  const [typeName, Ctor] = TYPES[dtype];
  const n = volume.data.length;
  const voxels = new Ctor(n);
  const round = !dtype.startsWith("float");
  const map = round ? Math.round : (v: number) => v;
  if (voxels instanceof BigInt64Array || voxels instanceof BigUint64Array) {
    const values = new Float64Array(n);
    copyToFileOrder(volume.data, volume.shape, values, map);
    for (let i = 0; i < n; i++) voxels[i] = BigInt(values[i]);
  } else copyToFileOrder(volume.data, volume.shape, voxels, map);
  let raw = new Uint8Array(voxels.buffer);
  if (options.msb && Ctor.BYTES_PER_ELEMENT > 1) {
    for (let i = 0; i < raw.length; i += Ctor.BYTES_PER_ELEMENT) {
      raw.subarray(i, i + Ctor.BYTES_PER_ELEMENT).reverse();
    }
  }
  if (options.compressed) raw = new Uint8Array(deflateSync(raw));
  const headerSize = options.headerSize ?? 0;
  if (headerSize !== 0) {
    const filler = headerSize === -1 ? 64 : headerSize;
    const padded = new Uint8Array(filler + raw.length);
    padded.set(raw, filler);
    raw = padded;
  }
  const a = volume.affine;
  const spacing = columnNorms(a);
  const lps = (r: number, c: number) => (r < 2 ? -a[r][c] : a[r][c]);
  const direction = [0, 1, 2].flatMap((c) => [0, 1, 2].map((r) => lps(r, c) / spacing[c]));
  const lines = [
    "ObjectType = Image",
    "NDims = 3",
    `BinaryData = True`,
    `BinaryDataByteOrderMSB = ${options.msb ? "True" : "False"}`,
    `CompressedData = ${options.compressed ? "True" : "False"}`,
    ...(options.compressed ? [`CompressedDataSize = ${raw.length}`] : []),
    `TransformMatrix = ${direction.join(" ")}`,
    `Offset = ${[0, 1, 2].map((r) => lps(r, 3)).join(" ")}`,
    "CenterOfRotation = 0 0 0",
    "AnatomicalOrientation = RAI",
    `ElementSpacing = ${spacing.join(" ")}`,
    `DimSize = ${volume.shape.join(" ")}`,
    ...(headerSize !== 0 ? [`HeaderSize = ${headerSize}`] : []),
    `ElementType = ${typeName}`,
    `ElementDataFile = ${options.dataFile ?? "LOCAL"}`,
  ];
  const text = new TextEncoder().encode(lines.join("\n") + "\n");
  if (options.dataFile) return { header: text, data: raw };
  const header = new Uint8Array(text.length + raw.length);
  header.set(text);
  header.set(raw, text.length);
  return { header };
}
