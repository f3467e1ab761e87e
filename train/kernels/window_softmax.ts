// Softmax of shifted-window attention scores with the relative position bias and the
// shift mask added, fused in one pass over typed arrays.
//
// Stock tfjs spends most of a Swin forward pass here: on the cpu backend the broadcast
// adds of the bias and mask and the softmax over [windows, heads, 343, 343] take ~50 s
// for one 64³ batch, against well under a second for this loop. The gradient is the
// softmax's, `dS = P * (dP - sum(dP * P))`, with the bias gradient summed over windows.
import * as tf from "@tensorflow/tfjs-core";
import { readSync } from "./_read.ts";

/**
 * `softmax(scores + bias + mask)` over the last axis: scores `[W * B, heads, n, n]`, bias
 * `[heads, n, n]` (differentiable), mask `[W, n, n]` (constant, window w of every batch
 * element uses mask w) or none. `firstWindow` is the index of `scores`' first window when
 * it holds a chunk of the windows.
 */
export function windowSoftmax(
  scores: tf.Tensor4D,
  bias: tf.Tensor3D,
  mask?: Float32Array,
  firstWindow = 0,
): tf.Tensor4D {
  const [bw, heads, n] = scores.shape;
  const windows = mask ? mask.length / (n * n) : 1;
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [sc, bi, save] = args as [tf.Tensor4D, tf.Tensor3D, tf.GradSaveFunc];
    const s = readSync(sc);
    const b = readSync(bi);
    const out = new Float32Array(s.length);
    const row = new Float32Array(n);
    for (let w = 0; w < bw; w++) {
      const mBase = mask ? ((firstWindow + w) % windows) * n * n : 0;
      for (let h = 0; h < heads; h++) {
        for (let i = 0; i < n; i++) {
          const o = ((w * heads + h) * n + i) * n;
          const bo = (h * n + i) * n;
          const mo = mBase + i * n;
          let max = -Infinity;
          for (let j = 0; j < n; j++) {
            const v = s[o + j] + b[bo + j] + (mask ? mask[mo + j] : 0);
            row[j] = v;
            if (v > max) max = v;
          }
          let sum = 0;
          for (let j = 0; j < n; j++) {
            const e = Math.exp(row[j] - max);
            row[j] = e;
            sum += e;
          }
          const inv = 1 / sum;
          for (let j = 0; j < n; j++) out[o + j] = row[j] * inv;
        }
      }
    }
    const value = tf.tensor4d(out, [bw, heads, n, n]);
    save([value]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const p = readSync(saved[0]);
        const g = readSync(dy);
        const ds = new Float32Array(p.length);
        const db = new Float32Array(heads * n * n);
        for (let w = 0; w < bw; w++) {
          for (let h = 0; h < heads; h++) {
            for (let i = 0; i < n; i++) {
              const o = ((w * heads + h) * n + i) * n;
              const bo = (h * n + i) * n;
              let dot = 0;
              for (let j = 0; j < n; j++) dot += g[o + j] * p[o + j];
              for (let j = 0; j < n; j++) {
                const v = p[o + j] * (g[o + j] - dot);
                ds[o + j] = v;
                db[bo + j] += v;
              }
            }
          }
        }
        return [tf.tensor4d(ds, [bw, heads, n, n]), tf.tensor3d(db, [heads, n, n])];
      },
    };
  });
  return f(scores, bias) as tf.Tensor4D;
}
