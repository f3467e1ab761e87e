// 3-D convolution, stride 1, 'same' zero padding, as chunked im2col + the backend's 2-D
// matMul, with a hand-written gradient (tf.customGrad).
//
// Measured here (2 x 64³ x 12 -> 12): tfjs' stock conv3d takes 5 s forward on cpu and 15 s
// on wasm, where its input gradient is also wrong; 27 shifted row-block matMuls take 9 s
// on wasm, spent in slices and adds. Building the column matrix in one typed-array pass
// (a few tens of MB at a time) and handing it to the backend's 2-D matMul (11-17 GFLOP/s
// on wasm) is an order of magnitude faster. The gradient reuses the layout:
// dW = colᵀ · dY (transposed explicitly: transposed matMuls are slow on wasm) and
// dX = col2im(dY · Wᵀ).
import * as tf from "@tensorflow/tfjs-core";
import { readSync } from "./_read.ts";

/** Column-matrix floats per chunk (64 MiB). */
const CHUNK_FLOATS = 1 << 24;

interface Geometry {
  b: number;
  d: number;
  h: number;
  w: number;
  cin: number;
  k: number;
}

/**
 * The column matrix of voxels [start, end): row v holds, tap by tap (dz, dy, dx) and then
 * channel, the input around v (zeros outside): `[n, k³ C_in]`.
 */
function im2col(
  xs: Float32Array,
  g: Geometry,
  start: number,
  end: number,
  out: Float32Array,
): void {
  const { d, h, w, k, cin } = g;
  const r = (k - 1) / 2, kk = k ** 3 * cin, run = k * cin;
  for (let v = start; v < end; v++) {
    const x = v % w, y = Math.floor(v / w) % h, z = Math.floor(v / (w * h)) % d;
    const b = Math.floor(v / (w * h * d));
    const row = v - start;
    let col = 0; // column of the first value of the current (dz, dy) run
    for (let dz = -r; dz <= r; dz++) {
      const zz = z + dz;
      for (let dy = -r; dy <= r; dy++, col += run) {
        const yy = y + dy;
        const rowInside = zz >= 0 && zz < d && yy >= 0 && yy < h;
        const base = ((b * d + zz) * h + yy) * w; // voxel index of (zz, yy, 0)
        for (let dx = -r; dx <= r; dx++) {
          const xx = x + dx;
          const inside = rowInside && xx >= 0 && xx < w;
          const src = (base + xx) * cin;
          const c0 = col + (dx + r) * cin;
          const o = row * kk + c0;
          if (inside) { for (let c = 0; c < cin; c++) out[o + c] = xs[src + c]; }
          else for (let c = 0; c < cin; c++) out[o + c] = 0;
        }
      }
    }
  }
}

/** Adds the column-matrix gradient `[n, k³ C_in]` of voxels [start, end) into dx (col2im). */
function col2imAdd(dcol: Float32Array, g: Geometry, start: number, end: number, dx: Float32Array) {
  const { d, h, w, k, cin } = g;
  const r = (k - 1) / 2, kk = k ** 3 * cin;
  for (let v = start; v < end; v++) {
    const x = v % w, y = Math.floor(v / w) % h, z = Math.floor(v / (w * h)) % d;
    const b = Math.floor(v / (w * h * d));
    let o = (v - start) * kk;
    for (let dz = -r; dz <= r; dz++) {
      const zz = z + dz;
      for (let dy = -r; dy <= r; dy++) {
        const yy = y + dy;
        const rowInside = zz >= 0 && zz < d && yy >= 0 && yy < h;
        const base = ((b * d + zz) * h + yy) * w;
        for (let dx_ = -r; dx_ <= r; dx_++, o += cin) {
          const xx = x + dx_;
          if (!rowInside || xx < 0 || xx >= w) continue;
          const dst = (base + xx) * cin;
          for (let c = 0; c < cin; c++) dx[dst + c] += dcol[o + c];
        }
      }
    }
  }
}

/**
 * `y = conv3d(x, w)` for x `[B, D, H, W, C_in]`, w `[k, k, k, C_in, C_out]` (odd k),
 * stride 1, 'same' padding, no bias; equal to `tf.conv3d(x, w, 1, "same")`, with the
 * gradients of both inputs.
 */
export function conv3dSame(x: tf.Tensor5D, w: tf.Tensor5D): tf.Tensor5D {
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xIn, wIn, save] = args as [tf.Tensor5D, tf.Tensor5D, tf.GradSaveFunc];
    const [b, d, h, wd, cin] = xIn.shape;
    const [k, , , , cout] = wIn.shape;
    if (k % 2 !== 1) throw new RangeError(`conv3dSame needs an odd kernel, got ${k}`);
    const g: Geometry = { b, d, h, w: wd, cin, k };
    const kk = k ** 3 * cin, voxels = b * d * h * wd;
    const per = Math.max(1, Math.floor(CHUNK_FLOATS / kk));
    const xs = readSync(xIn);
    const w2 = tf.reshape(wIn, [kk, cout]);
    const out = new Float32Array(voxels * cout);
    const col = new Float32Array(Math.min(per, voxels) * kk);
    for (let s = 0; s < voxels; s += per) {
      const e = Math.min(voxels, s + per), n = e - s;
      im2col(xs, g, s, e, col);
      const y = tf.tidy(() => tf.matMul(tf.tensor2d(col.subarray(0, n * kk), [n, kk]), w2));
      out.set(readSync(y), s * cout);
      y.dispose();
    }
    w2.dispose();
    save([xIn, wIn]);
    return {
      value: tf.tensor5d(out, [b, d, h, wd, cout]),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xv, wv] = saved;
        const xsv = readSync(xv);
        const dys = readSync(dy);
        const wT = tf.transpose(tf.reshape(wv, [kk, cout])); // [cout, kk]
        const dx = new Float32Array(voxels * cin);
        let dw = tf.zeros([kk, cout]);
        const buf = new Float32Array(Math.min(per, voxels) * kk);
        for (let s = 0; s < voxels; s += per) {
          const e = Math.min(voxels, s + per), n = e - s;
          const dyChunk = tf.tensor2d(dys.subarray(s * cout, e * cout), [n, cout]);
          im2col(xsv, g, s, e, buf);
          // The backend's transpose beats strided writes in JS (measured: 3.7 s against
          // 4.8 s for the 64³ step).
          const colT = tf.tidy(() => tf.transpose(tf.tensor2d(buf.subarray(0, n * kk), [n, kk])));
          const next = tf.tidy(() => tf.add(dw, tf.matMul(colT, dyChunk)));
          dw.dispose();
          dw = next;
          const dcolT = tf.matMul(dyChunk, wT);
          const dcol = readSync(dcolT); // [n, kk]
          col2imAdd(dcol, g, s, e, dx);
          tf.dispose([dyChunk, colT, dcolT]);
        }
        wT.dispose();
        const dwOut = tf.reshape(dw, [k, k, k, cin, cout]);
        dw.dispose();
        return [tf.tensor5d(dx, [b, d, h, wd, cin]), dwOut];
      },
    };
  });
  return f(x, w) as tf.Tensor5D;
}
