// Trilinear sampling shared by `resampleToSpacing` and `resizeToShape`.
import type { Shape3 } from "./volume.ts";

/** Per-axis lookup for separable sampling: lower index, upper index, upper weight. */
export interface AxisTable {
  i0: Int32Array;
  i1: Int32Array;
  w: Float32Array;
}

/**
 * Builds the lookup for sampling an axis of `n` voxels at coordinates `coord(j)`,
 * `j < count`, clamped to `[0, n - 1]` (border padding).
 */
export function axisTable(n: number, count: number, coord: (j: number) => number): AxisTable {
  const t = { i0: new Int32Array(count), i1: new Int32Array(count), w: new Float32Array(count) };
  for (let j = 0; j < count; j++) {
    const c = Math.min(Math.max(coord(j), 0), n - 1);
    const f = Math.floor(c);
    t.i0[j] = f;
    t.i1[j] = Math.min(f + 1, n - 1);
    t.w[j] = c - f;
  }
  return t;
}

/**
 * Samples `data` (C order over `inShape`) on a separable grid: output axis `a` reads
 * input axis `axes[a]` (a permutation) through the table `tables[a]`.
 */
export function sampleSeparable(
  data: ArrayLike<number>,
  inShape: Shape3,
  tables: [AxisTable, AxisTable, AxisTable],
  axes: readonly [number, number, number] = [0, 1, 2],
): Float32Array {
  const [tx, ty, tz] = tables;
  const [nx, ny, nz] = [tx.w.length, ty.w.length, tz.w.length];
  const inStrides = [inShape[1] * inShape[2], inShape[2], 1];
  const sx = inStrides[axes[0]], sy = inStrides[axes[1]], sz = inStrides[axes[2]];
  const out = new Float32Array(nx * ny * nz);
  const z0 = new Int32Array(nz), z1 = new Int32Array(nz), wz = tz.w;
  for (let z = 0; z < nz; z++) {
    z0[z] = tz.i0[z] * sz;
    z1[z] = tz.i1[z] * sz;
  }
  let o = 0;
  for (let x = 0; x < nx; x++) {
    const ax0 = tx.i0[x] * sx, ax1 = tx.i1[x] * sx, wx = tx.w[x], vx = 1 - wx;
    for (let y = 0; y < ny; y++) {
      const by0 = ty.i0[y] * sy, by1 = ty.i1[y] * sy, wy = ty.w[y], vy = 1 - wy;
      const b00 = ax0 + by0, b01 = ax0 + by1, b10 = ax1 + by0, b11 = ax1 + by1;
      const w00 = vx * vy, w01 = vx * wy, w10 = wx * vy, w11 = wx * wy;
      for (let z = 0; z < nz; z++, o++) {
        const k0 = z0[z], k1 = z1[z], c = wz[z], d = 1 - c;
        out[o] = w00 * (d * data[b00 + k0] + c * data[b00 + k1]) +
          w01 * (d * data[b01 + k0] + c * data[b01 + k1]) +
          w10 * (d * data[b10 + k0] + c * data[b10 + k1]) +
          w11 * (d * data[b11 + k0] + c * data[b11 + k1]);
      }
    }
  }
  return out;
}

/**
 * Samples `data` at input coordinates `m @ (x, y, z, 1)` for every output voxel, with
 * border padding: the general (oblique) path.
 */
export function sampleAffine(
  data: ArrayLike<number>,
  inShape: Shape3,
  outShape: Shape3,
  m: number[][],
): Float32Array {
  const [n0, n1, n2] = inShape;
  const sy = n2, sx = n1 * n2;
  const out = new Float32Array(outShape[0] * outShape[1] * outShape[2]);
  let o = 0;
  for (let x = 0; x < outShape[0]; x++) {
    for (let y = 0; y < outShape[1]; y++) {
      for (let z = 0; z < outShape[2]; z++, o++) {
        const c0 = clamp(m[0][0] * x + m[0][1] * y + m[0][2] * z + m[0][3], n0 - 1);
        const c1 = clamp(m[1][0] * x + m[1][1] * y + m[1][2] * z + m[1][3], n1 - 1);
        const c2 = clamp(m[2][0] * x + m[2][1] * y + m[2][2] * z + m[2][3], n2 - 1);
        const i0 = Math.floor(c0), j0 = Math.floor(c1), k0 = Math.floor(c2);
        const i1 = Math.min(i0 + 1, n0 - 1), j1 = Math.min(j0 + 1, n1 - 1);
        const k1 = Math.min(k0 + 1, n2 - 1);
        const a = c0 - i0, b = c1 - j0, c = c2 - k0;
        const lerpZ = (i: number, j: number) =>
          (1 - c) * data[i * sx + j * sy + k0] + c * data[i * sx + j * sy + k1];
        out[o] = (1 - a) * ((1 - b) * lerpZ(i0, j0) + b * lerpZ(i0, j1)) +
          a * ((1 - b) * lerpZ(i1, j0) + b * lerpZ(i1, j1));
      }
    }
  }
  return out;
}

function clamp(v: number, hi: number): number {
  return v < 0 ? 0 : v > hi ? hi : v;
}
