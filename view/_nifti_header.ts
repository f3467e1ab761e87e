// The 352-byte NIfTI-1 header the viewer's page puts in front of a case's voxels so that
// NiiVue can show them: dims, the stored type, the RAS affine (sform), the calibration to
// display units (scl_slope/scl_inter) and the initial window (cal_min/cal_max).
import type { CaseAffine, CaseShape } from "../cache/format/case_volume.ts";

/** The voxel types the viewer sends, with their NIfTI datatype codes and sizes. */
export const WIRE_TYPES = {
  uint8: { code: 2, bytes: 1 },
  uint16: { code: 512, bytes: 2 },
  float32: { code: 16, bytes: 4 },
} as const;

/** A voxel type the viewer sends. */
export type WireType = keyof typeof WIRE_TYPES;

/** What {@linkcode niftiHeader} writes. */
export interface HeaderFields {
  /** Voxels per axis, x fastest in the data that follow. */
  shape: CaseShape;
  /** The voxel type. */
  type: WireType;
  /** Voxel index -> RAS mm. */
  affine: CaseAffine;
  /** Display value = stored * slope + inter. */
  slope: number;
  inter: number;
  /** Initial window, in display values. */
  window: [number, number];
}

/** A NIfTI-1 header (348 bytes, 4 extension bytes, data at 352), little endian. */
export function niftiHeader(h: HeaderFields): Uint8Array {
  const buf = new ArrayBuffer(352);
  const v = new DataView(buf);
  v.setInt32(0, 348, true);
  v.setInt16(40, 3, true);
  [...h.shape, 1, 1, 1, 1].forEach((d, i) => v.setInt16(42 + 2 * i, d, true));
  const t = WIRE_TYPES[h.type];
  v.setInt16(70, t.code, true);
  v.setInt16(72, t.bytes * 8, true);
  const a = h.affine;
  v.setFloat32(76, 1, true); // qfac
  [0, 1, 2].forEach((c) => v.setFloat32(80 + 4 * c, Math.hypot(a[0][c], a[1][c], a[2][c]), true));
  v.setFloat32(108, 352, true);
  v.setFloat32(112, h.slope, true);
  v.setFloat32(116, h.inter, true);
  v.setInt16(122, 2, true); // mm
  v.setFloat32(124, h.window[1], true); // cal_max
  v.setFloat32(128, h.window[0], true); // cal_min
  v.setInt16(254, 1, true); // sform_code: scanner
  for (let r = 0; r < 3; r++) {
    for (let c = 0; c < 4; c++) v.setFloat32(280 + (r * 4 + c) * 4, a[r][c], true);
  }
  new Uint8Array(buf).set(new TextEncoder().encode("n+1\0"), 344);
  return new Uint8Array(buf);
}
