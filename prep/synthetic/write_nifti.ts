// A NIfTI-1 writer (`.nii`, `.nii.gz`), for tests, the demo and benchmarks.
import { gzipSync } from "node:zlib";
import type { Volume, VoxelArray } from "../volume.ts";
import { copyToFileOrder } from "../formats/_voxels.ts";

/** Options of {@linkcode writeNifti}. */
export interface WriteNiftiOptions {
  /**
   * Voxel type on disk.
   * @default {"int16"}
   */
  dtype?: "uint8" | "int16" | "int32" | "float32" | "float64";
  /**
   * gzip the file (`.nii.gz`).
   * @default {true}
   */
  gzip?: boolean;
  /**
   * Which header fields carry the affine: `sform` (sform_code 1), `qform` (qform_code 1,
   * rotations only), or `none` (both codes 0).
   * @default {"sform"}
   */
  transform?: "sform" | "qform" | "none";
  /** Scale slope stored in the header (voxels are stored as `(v - inter) / slope`). */
  sclSlope?: number;
  /** Scale intercept stored in the header. */
  sclInter?: number;
}

const CODES = { uint8: 2, int16: 4, int32: 8, float32: 16, float64: 64 } as const;
const SIZES = { uint8: 1, int16: 2, int32: 4, float32: 4, float64: 8 } as const;

/**
 * Encodes a volume as a NIfTI-1 file (little endian, voxels first-axis-fastest as the
 * format requires). Used by the demo's phantoms and by tests that need files in other
 * orientations or types.
 */
export function writeNifti(
  volume: Volume<VoxelArray>,
  options: WriteNiftiOptions = {},
): Uint8Array {
  const dtype = options.dtype ?? "int16";
  const [nx, ny, nz] = volume.shape;
  const n = nx * ny * nz;
  const voxOffset = 352;
  const buf = new ArrayBuffer(voxOffset + n * SIZES[dtype]);
  const h = new DataView(buf);
  h.setInt32(0, 348, true);
  h.setInt16(40, 3, true);
  [nx, ny, nz, 1, 1, 1, 1].forEach((d, i) => h.setInt16(42 + 2 * i, d, true));
  h.setInt16(70, CODES[dtype], true);
  h.setInt16(72, SIZES[dtype] * 8, true);
  const a = volume.affine;
  const zooms = [0, 1, 2].map((c) => Math.hypot(a[0][c], a[1][c], a[2][c]));
  const det = a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) -
    a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0]) +
    a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]);
  const qfac = det < 0 ? -1 : 1;
  h.setFloat32(76, qfac, true);
  zooms.forEach((z, i) => h.setFloat32(80 + 4 * i, z, true));
  h.setFloat32(108, voxOffset, true);
  const slope = options.sclSlope ?? 1, inter = options.sclInter ?? 0;
  h.setFloat32(112, options.sclSlope ?? 0, true);
  h.setFloat32(116, options.sclInter ?? 0, true);
  h.setInt16(122, 2, true); // xyzt_units: mm
  const transform = options.transform ?? "sform";
  if (transform === "sform") {
    h.setInt16(254, 1, true);
    for (let r = 0; r < 3; r++) {
      for (let c = 0; c < 4; c++) h.setFloat32(280 + (r * 4 + c) * 4, a[r][c], true);
    }
  } else if (transform === "qform") {
    h.setInt16(252, 1, true);
    const R = [0, 1, 2].map((r) => [0, 1, 2].map((c) => a[r][c] / zooms[c] * (c === 2 ? qfac : 1)));
    const [qb, qc, qd] = rotationToQuaternion(R);
    h.setFloat32(256, qb, true);
    h.setFloat32(260, qc, true);
    h.setFloat32(264, qd, true);
    h.setFloat32(268, a[0][3], true);
    h.setFloat32(272, a[1][3], true);
    h.setFloat32(276, a[2][3], true);
  }
  new Uint8Array(buf).set(new TextEncoder().encode("n+1\0"), 344);
  const Ctor = {
    uint8: Uint8Array,
    int16: Int16Array,
    int32: Int32Array,
    float32: Float32Array,
    float64: Float64Array,
  }[dtype];
  const out = new Ctor(buf, voxOffset, n);
  const round = dtype !== "float32" && dtype !== "float64";
  copyToFileOrder(volume.data, volume.shape, out, (v) => {
    const x = (v - inter) / slope;
    return round ? Math.round(x) : x;
  });
  const bytes = new Uint8Array(buf);
  return options.gzip ?? true ? new Uint8Array(gzipSync(bytes, { level: 1 })) : bytes;
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
