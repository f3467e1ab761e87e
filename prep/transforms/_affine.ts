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

/**
 * `a⁻¹ b` for 4 x 4 matrices, as LAPACK's `gesv` (NumPy's `linalg.solve`) computes it: LU
 * with partial pivoting, rows scaled by the reciprocal of the pivot, then forward and
 * back substitution. The same operations as MONAI's `np.linalg.solve(out, in)`, so that
 * rounding (and a shape that rounds at exactly .5) goes the same way.
 */
export function solve4(a: Mat4, b: Mat4): Mat4 {
  const lu = copy4(a);
  const x = copy4(b);
  for (let c = 0; c < 4; c++) {
    let p = c;
    for (let r = c + 1; r < 4; r++) if (Math.abs(lu[r][c]) > Math.abs(lu[p][c])) p = r;
    if (lu[p][c] === 0) throw new RangeError("Affine is singular");
    if (p !== c) {
      [lu[c], lu[p]] = [lu[p], lu[c]];
      [x[c], x[p]] = [x[p], x[c]];
    }
    const inv = 1 / lu[c][c];
    for (let r = c + 1; r < 4; r++) lu[r][c] *= inv;
    for (let r = c + 1; r < 4; r++) {
      const f = lu[r][c];
      if (f === 0) continue;
      for (let j = c + 1; j < 4; j++) lu[r][j] -= f * lu[c][j];
    }
  }
  for (let j = 0; j < 4; j++) {
    for (let r = 1; r < 4; r++) {
      for (let k = 0; k < r; k++) x[r][j] -= lu[r][k] * x[k][j];
    }
    for (let r = 3; r >= 0; r--) {
      for (let k = r + 1; k < 4; k++) x[r][j] -= lu[r][k] * x[k][j];
      x[r][j] *= 1 / lu[r][r];
    }
  }
  return x;
}

/** The upper-left 3 x 3 block of an affine. */
export function linearPart(m: Mat4): number[][] {
  return [0, 1, 2].map((r) => [m[r][0], m[r][1], m[r][2]]);
}

/** Inverse of a 3 x 3 matrix by cofactors; throws a `RangeError` when it is singular. */
export function invert3(m: number[][]): number[][] {
  const [[a, b, c], [d, e, f], [g, h, i]] = m;
  const A = e * i - f * h, B = f * g - d * i, C = d * h - e * g;
  const det = a * A + b * B + c * C;
  if (det === 0 || !Number.isFinite(det)) throw new RangeError("Matrix is singular");
  return [
    [A / det, (c * h - b * i) / det, (b * f - c * e) / det],
    [B / det, (a * i - c * g) / det, (c * d - a * f) / det],
    [C / det, (b * g - a * h) / det, (a * e - b * d) / det],
  ];
}

/**
 * The orthogonal factor `U` of the polar decomposition `m = U P` (the rotation, with any
 * reflection, closest to `m`; what nibabel's `io_orientation` takes from an SVD), by
 * Newton's iteration `X <- (X + X⁻ᵀ) / 2`, which converges quadratically for any
 * invertible `m`.
 */
export function polarRotation3(m: number[][]): number[][] {
  let x = m.map((r) => r.slice());
  for (let it = 0; it < 100; it++) {
    const inv = invert3(x);
    const next = x.map((row, r) => row.map((v, c) => (v + inv[c][r]) / 2));
    let change = 0;
    for (let r = 0; r < 3; r++) {
      for (let c = 0; c < 3; c++) change = Math.max(change, Math.abs(next[r][c] - x[r][c]));
    }
    x = next;
    if (change <= 1e-15) break;
  }
  return x;
}

/**
 * Upper-triangular `U` with a positive diagonal such that `g = Uᵀ U` (the Cholesky factor
 * of a symmetric positive definite 3 x 3 matrix, as `np.linalg.cholesky(g).T`).
 */
export function choleskyUpper3(g: number[][]): number[][] {
  const u = [[0, 0, 0], [0, 0, 0], [0, 0, 0]];
  for (let j = 0; j < 3; j++) {
    let d = g[j][j];
    for (let k = 0; k < j; k++) d -= u[k][j] * u[k][j];
    if (!(d > 0)) throw new RangeError("Matrix is not positive definite");
    u[j][j] = Math.sqrt(d);
    for (let i = j + 1; i < 3; i++) {
      let s = g[j][i];
      for (let k = 0; k < j; k++) s -= u[k][j] * u[k][i];
      u[j][i] = s / u[j][j];
    }
  }
  return u;
}
