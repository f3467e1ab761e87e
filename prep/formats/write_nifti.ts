// A NIfTI-1 writer (`.nii`, `.nii.gz`): every scalar type, sform and qform, scl_slope and
// scl_inter; for `cache export`, and for the tests, the demo and the benchmarks.
import { gzipSync } from "node:zlib";
import type { Mat4, Volume, VoxelArray } from "../volume.ts";
import { copyToFileOrder, TYPED_ARRAYS } from "./_voxels.ts";

/** Voxel types {@linkcode writeNifti} writes: every scalar type of NIfTI-1. */
export type NiftiWriteDtype =
  | "uint8"
  | "int8"
  | "int16"
  | "uint16"
  | "int32"
  | "uint32"
  | "int64"
  | "uint64"
  | "float32"
  | "float64"
  | "float128";

/** Options of {@linkcode writeNifti}. */
export interface WriteNiftiOptions {
  /**
   * Voxel type on disk.
   * @default {"int16"}
   */
  dtype?: NiftiWriteDtype;
  /**
   * gzip the file (`.nii.gz`).
   * @default {true}
   */
  gzip?: boolean;
  /**
   * Which header fields carry the affine: `sform` (sform_code 1), `qform` (qform_code 1,
   * rotations only), `both` (both codes 1; the qform from `qformAffine`), or `none`
   * (both codes 0).
   * @default {"sform"}
   */
  transform?: "sform" | "qform" | "both" | "none";
  /**
   * The affine stored in the qform (`qform` and `both`): rotation, zooms and offset only,
   * as a quaternion can hold (a converter writes a gantry-tilted series with a sheared
   * sform and this unsheared qform).
   * @default {the volume's affine}
   */
  qformAffine?: Mat4;
  /**
   * pixdim[1..3].
   * @default {the column norms of the qform's affine}
   */
  pixdimMm?: [number, number, number];
  /**
   * Big-endian header and voxels.
   * @default {false}
   */
  bigEndian?: boolean;
  /** Scale slope stored in the header (voxels are stored as `(v - inter) / slope`). */
  sclSlope?: number;
  /** Scale intercept stored in the header. */
  sclInter?: number;
}

const TYPES: Record<NiftiWriteDtype, [code: number, bytes: number]> = {
  uint8: [2, 1],
  int8: [256, 1],
  int16: [4, 2],
  uint16: [512, 2],
  int32: [8, 4],
  uint32: [768, 4],
  int64: [1024, 8],
  uint64: [1280, 8],
  float32: [16, 4],
  float64: [64, 8],
  float128: [1536, 16],
};

/** Typed arrays of the types JavaScript has one for (written directly in little endian). */
const TYPED: Partial<
  Record<NiftiWriteDtype, new (b: ArrayBuffer, o: number, n: number) => { [i: number]: number }>
> = TYPED_ARRAYS;

/** Writers of one voxel at byte `at`, by type. */
const SETTERS: Record<NiftiWriteDtype, (v: DataView, at: number, x: number, le: boolean) => void> =
  {
    uint8: (v, at, x) => v.setUint8(at, x),
    int8: (v, at, x) => v.setInt8(at, x),
    int16: (v, at, x, le) => v.setInt16(at, x, le),
    uint16: (v, at, x, le) => v.setUint16(at, x, le),
    int32: (v, at, x, le) => v.setInt32(at, x, le),
    uint32: (v, at, x, le) => v.setUint32(at, x, le),
    int64: (v, at, x, le) => v.setBigInt64(at, BigInt(x), le),
    uint64: (v, at, x, le) => v.setBigUint64(at, BigInt(x), le),
    float32: (v, at, x, le) => v.setFloat32(at, x, le),
    float64: (v, at, x, le) => v.setFloat64(at, x, le),
    float128: (v, at, x, le) => numberToQuad(v, at, x, le),
  };

/**
 * Encodes a volume as a NIfTI-1 file (voxels first-axis-fastest as the format requires).
 * Used by the demo's phantoms and by tests that need files in other orientations, types,
 * byte orders and header forms.
 */
export function writeNifti(
  volume: Volume<VoxelArray>,
  options: WriteNiftiOptions = {},
): Uint8Array {
  const dtype = options.dtype ?? "int16";
  const le = !options.bigEndian;
  const [code, size] = TYPES[dtype];
  const [nx, ny, nz] = volume.shape;
  const n = nx * ny * nz;
  const voxOffset = 352;
  const buf = new ArrayBuffer(voxOffset + n * size);
  const h = new DataView(buf);
  h.setInt32(0, 348, le);
  h.setInt16(40, 3, le);
  [nx, ny, nz, 1, 1, 1, 1].forEach((d, i) => h.setInt16(42 + 2 * i, d, le));
  h.setInt16(70, code, le);
  h.setInt16(72, size * 8, le);
  const a = volume.affine;
  const q = options.qformAffine ?? a;
  const zooms = [0, 1, 2].map((c) => Math.hypot(q[0][c], q[1][c], q[2][c]));
  const qfac = det3(q) < 0 ? -1 : 1;
  h.setFloat32(76, qfac, le);
  (options.pixdimMm ?? zooms).forEach((z, i) => h.setFloat32(80 + 4 * i, z, le));
  h.setFloat32(108, voxOffset, le);
  const slope = options.sclSlope ?? 1, inter = options.sclInter ?? 0;
  h.setFloat32(112, options.sclSlope ?? 0, le);
  h.setFloat32(116, options.sclInter ?? 0, le);
  h.setUint8(123, 2); // xyzt_units: mm
  const transform = options.transform ?? "sform";
  if (transform === "sform" || transform === "both") {
    h.setInt16(254, 1, le);
    for (let r = 0; r < 3; r++) {
      for (let c = 0; c < 4; c++) h.setFloat32(280 + (r * 4 + c) * 4, a[r][c], le);
    }
  }
  if (transform === "qform" || transform === "both") {
    h.setInt16(252, 1, le);
    const R = [0, 1, 2].map((r) => [0, 1, 2].map((c) => q[r][c] / zooms[c] * (c === 2 ? qfac : 1)));
    const [qb, qc, qd] = rotationToQuaternion(R);
    h.setFloat32(256, qb, le);
    h.setFloat32(260, qc, le);
    h.setFloat32(264, qd, le);
    h.setFloat32(268, q[0][3], le);
    h.setFloat32(272, q[1][3], le);
    h.setFloat32(276, q[2][3], le);
  }
  new Uint8Array(buf).set(new TextEncoder().encode("n+1\0"), 344);
  const round = !dtype.startsWith("float");
  const map = (v: number) => {
    const x = (v - inter) / slope;
    return round ? Math.round(x) : x;
  };
  const Typed = TYPED[dtype];
  if (le && Typed) {
    // The common case, straight into a typed array over the file (a clinical volume).
    copyToFileOrder(volume.data, volume.shape, new Typed(buf, voxOffset, n), map);
  } else {
    const values = new Float64Array(n);
    copyToFileOrder(volume.data, volume.shape, values, map);
    const set = SETTERS[dtype];
    const view = new DataView(buf, voxOffset);
    for (let i = 0; i < n; i++) set(view, i * size, values[i], le);
  }
  const bytes = new Uint8Array(buf);
  return options.gzip ?? true ? new Uint8Array(gzipSync(bytes, { level: 1 })) : bytes;
}

function det3(a: Mat4): number {
  return a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) -
    a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0]) +
    a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]);
}

/** Writes `x` as an IEEE 754 binary128 value (exact: float64 fits in it). */
export function numberToQuad(view: DataView, at: number, x: number, le: boolean): void {
  const d = new DataView(new ArrayBuffer(8));
  d.setFloat64(0, x);
  const hi = d.getUint32(0), lo = d.getUint32(4);
  const sign = hi >>> 31;
  let exp = (hi >>> 20) & 0x7ff;
  let frac = [hi & 0xfffff, lo]; // 20 + 32 bits
  if (exp === 0x7ff) exp = 0x7fff;
  else if (exp !== 0) exp = exp - 1023 + 16383;
  else if (frac[0] || frac[1]) {
    // A float64 subnormal is a normal binary128 number: normalise the fraction.
    let m = frac[0] * 2 ** 32 + frac[1];
    let e = -1022;
    while (m < 2 ** 52) {
      m *= 2;
      e--;
    }
    m -= 2 ** 52;
    frac = [Math.floor(m / 2 ** 32), m % 2 ** 32];
    exp = e + 16383;
  }
  // binary128 fraction: 112 bits; the float64 fraction's 52 bits are its top bits.
  const words = [
    (sign << 31 | exp << 16 | frac[0] >>> 4) >>> 0,
    ((frac[0] & 0xf) << 28 | frac[1] >>> 4) >>> 0,
    ((frac[1] & 0xf) << 28) >>> 0,
    0,
  ];
  words.forEach((w, k) => view.setUint32(le ? at + 12 - 4 * k : at + 4 * k, w, le));
}

/** Quaternion (b, c, d) of a proper rotation matrix, with a >= 0 (NIfTI convention). */
function rotationToQuaternion(R: number[][]): [number, number, number] {
  const tr = R[0][0] + R[1][1] + R[2][2];
  let a, b, c, d;
  if (tr > 0) {
    const s = Math.sqrt(tr + 1) * 2;
    a = s / 4;
    b = (R[2][1] - R[1][2]) / s;
    c = (R[0][2] - R[2][0]) / s;
    d = (R[1][0] - R[0][1]) / s;
  } else if (R[0][0] > R[1][1] && R[0][0] > R[2][2]) {
    const s = Math.sqrt(1 + R[0][0] - R[1][1] - R[2][2]) * 2;
    a = (R[2][1] - R[1][2]) / s;
    b = s / 4;
    c = (R[0][1] + R[1][0]) / s;
    d = (R[0][2] + R[2][0]) / s;
  } else if (R[1][1] > R[2][2]) {
    const s = Math.sqrt(1 + R[1][1] - R[0][0] - R[2][2]) * 2;
    a = (R[0][2] - R[2][0]) / s;
    b = (R[0][1] + R[1][0]) / s;
    c = s / 4;
    d = (R[1][2] + R[2][1]) / s;
  } else {
    const s = Math.sqrt(1 + R[2][2] - R[0][0] - R[1][1]) * 2;
    a = (R[1][0] - R[0][1]) / s;
    b = (R[0][2] + R[2][0]) / s;
    c = (R[1][2] + R[2][1]) / s;
    d = s / 4;
  }
  return a < 0 ? [-b, -c, -d] : [b, c, d];
}
