// Voxel decoding shared by the readers of raw-array formats (NIfTI, MetaImage).
import type { VoxelArray } from "../volume.ts";

/**
 * The voxels in file order: a view of the file's buffer when they are native integers or
 * float32 without rescaling, otherwise a float32 copy with byte order fixed and
 * `scl_slope`/`scl_inter` (NIfTI's names) applied.
 */
export function decodeVoxels(
  buffer: ArrayBuffer,
  offset: number,
  n: number,
  dtype: string,
  littleEndian: boolean,
  scale: { scl_slope: number; scl_inter: number },
): VoxelArray {
  // nibabel: a zero or non-finite slope means "no scaling"; a bad intercept counts as 0.
  const valid = Number.isFinite(scale.scl_slope) && scale.scl_slope !== 0;
  const slope = valid ? scale.scl_slope : 1;
  const inter = valid && Number.isFinite(scale.scl_inter) ? scale.scl_inter : 0;
  const rescale = slope !== 1 || inter !== 0;
  if (dtype in WIDE) {
    // 64-bit integers and quad floats: MONAI's loader casts them to float32, so do we.
    const read = WIDE[dtype](new DataView(buffer, offset), littleEndian);
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = read(i) * slope + inter;
    return out;
  }
  if (littleEndian) {
    const src = typedView(buffer, offset, n, dtype);
    if (!rescale && dtype !== "float64") return src;
    const out = new Float32Array(n);
    if (!rescale) out.set(src);
    else for (let i = 0; i < n; i++) out[i] = src[i] * slope + inter;
    return out;
  }
  const view = new DataView(buffer, offset);
  const get: (i: number) => number = {
    uint8: (i: number) => view.getUint8(i),
    int8: (i: number) => view.getInt8(i),
    int16: (i: number) => view.getInt16(2 * i, false),
    uint16: (i: number) => view.getUint16(2 * i, false),
    int32: (i: number) => view.getInt32(4 * i, false),
    uint32: (i: number) => view.getUint32(4 * i, false),
    float32: (i: number) => view.getFloat32(4 * i, false),
    float64: (i: number) => view.getFloat64(8 * i, false),
  }[dtype]!;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = get(i) * slope + inter;
  return out;
}

/** Readers of the voxel types JavaScript has no typed array for, by index, as numbers. */
const WIDE: Record<string, (view: DataView, le: boolean) => (i: number) => number> = {
  int64: (v, le) => (i) => Number(v.getBigInt64(8 * i, le)),
  uint64: (v, le) => (i) => Number(v.getBigUint64(8 * i, le)),
  float128: (v, le) => (i) => quadToNumber(v, 16 * i, le),
};

/**
 * An IEEE 754 binary128 value (NIfTI's float128 where `long double` is quad precision)
 * as the nearest float64: sign, 15-bit exponent (bias 16383), 112-bit fraction.
 */
export function quadToNumber(view: DataView, at: number, littleEndian: boolean): number {
  // The four 32-bit words from the most significant one.
  const w = [0, 1, 2, 3].map((k) =>
    view.getUint32(littleEndian ? at + 12 - 4 * k : at + 4 * k, littleEndian)
  );
  const sign = w[0] >>> 31 ? -1 : 1;
  const exp = (w[0] >>> 16) & 0x7fff;
  const frac = (w[0] & 0xffff) * 2 ** -16 + w[1] * 2 ** -48 + w[2] * 2 ** -80 + w[3] * 2 ** -112;
  if (exp === 0x7fff) return frac === 0 ? sign * Infinity : NaN;
  if (exp === 0) return sign * frac * 2 ** -16382; // subnormal: 0 in float64
  return sign * (1 + frac) * 2 ** (exp - 16383);
}

/** The typed array of each voxel type JavaScript has one for. */
export const TYPED_ARRAYS = {
  uint8: Uint8Array,
  int8: Int8Array,
  int16: Int16Array,
  uint16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
  float32: Float32Array,
  float64: Float64Array,
} as const;

/** A typed array over `n` voxels of `dtype` at `offset` (copied when misaligned). */
export function typedView(buffer: ArrayBuffer, offset: number, n: number, dtype: string) {
  const ctor = TYPED_ARRAYS[dtype as keyof typeof TYPED_ARRAYS];
  if (offset % ctor.BYTES_PER_ELEMENT === 0) return new ctor(buffer, offset, n);
  return new ctor(buffer.slice(offset, offset + n * ctor.BYTES_PER_ELEMENT));
}

/** Number of NaN and infinite values. */
export function countNonFinite(data: Float32Array): number {
  let bad = 0;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v - v !== 0) bad++;
  }
  return bad;
}

/**
 * Copies a volume's voxels (C order over [x, y, z]) into `out` in file order (x fastest),
 * through `map` (scaling, rounding). The writers of NIfTI, MetaImage and DICOM share it.
 */
export function copyToFileOrder(
  src: ArrayLike<number>,
  shape: readonly number[],
  out: { [i: number]: number },
  map: (v: number) => number,
): void {
  const [nx, ny, nz] = shape;
  let i = 0;
  for (let z = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++, i++) out[i] = map(src[(x * ny + y) * nz + z]);
    }
  }
}
