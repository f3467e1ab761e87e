// Small dense 4 x 4 matrix helpers for voxel-to-world geometry. Plain numbers, no voxels,
// so every geometric decision can be tested on its own.
import type { Mat4 } from "../volume.ts";

/** The 4 x 4 identity. */
export function identity4(): Mat4 {
  return [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]];
}

/** Deep copy of a matrix. */
export function copy4(m: Mat4): Mat4 {
  return m.map((r) => r.slice());
}

/** Matrix product `a @ b`. */
export function matmul4(a: Mat4, b: Mat4): Mat4 {
  const out: Mat4 = [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]];
  for (let i = 0; i < 4; i++) {
    for (let j = 0; j < 4; j++) {
      let s = 0;
      for (let k = 0; k < 4; k++) s += a[i][k] * b[k][j];
      out[i][j] = s;
    }
  }
  return out;
}

/** Applies `m` to the point `p` (homogeneous coordinate 1). */
export function applyPoint(m: Mat4, p: readonly number[]): [number, number, number] {
  return [0, 1, 2].map((r) => m[r][0] * p[0] + m[r][1] * p[1] + m[r][2] * p[2] + m[r][3]) as [
    number,
    number,
    number,
  ];
}

/** Inverse of a 4 x 4 matrix by Gauss-Jordan elimination with partial pivoting. */
export function invert4(m: Mat4): Mat4 {
  const a = m.map((r, i) => [...r, ...identity4()[i]]);
  for (let c = 0; c < 4; c++) {
    let p = c;
    for (let r = c + 1; r < 4; r++) if (Math.abs(a[r][c]) > Math.abs(a[p][c])) p = r;
    if (Math.abs(a[p][c]) < 1e-12) throw new RangeError("Affine is singular");
    [a[c], a[p]] = [a[p], a[c]];
    const d = a[c][c];
    for (let j = 0; j < 8; j++) a[c][j] /= d;
    for (let r = 0; r < 4; r++) {
      if (r === c) continue;
      const f = a[r][c];
      if (f !== 0) { for (let j = 0; j < 8; j++) a[r][j] -= f * a[c][j]; }
    }
  }
  return a.map((r) => r.slice(4));
}

/** Euclidean norms of the first three columns: the voxel spacing in mm. */
export function columnNorms(m: Mat4): [number, number, number] {
  return [0, 1, 2].map((c) => Math.hypot(m[0][c], m[1][c], m[2][c])) as [number, number, number];
}

/** Returns `m` with its translation replaced by the world position of voxel `index`. */
export function shiftOrigin(m: Mat4, index: readonly number[]): Mat4 {
  const out = copy4(m);
  const p = applyPoint(m, index);
  for (let r = 0; r < 3; r++) out[r][3] = p[r];
  return out;
}

/** Round half to even, as NumPy's `round` does. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
