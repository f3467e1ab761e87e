// Layer normalisation over the last axis, forward and backward in one pass each over typed
// arrays. Composed from stock ops it took a dozen kernels per call, and the gradients of
// its per-channel weight and bias were Sums over all other axes, 60-90 ms each on wasm for
// a 2 x 32³ x 12 activation; here a whole call is a few ms. Statistics in float64.
import * as tf from "@tensorflow/tfjs-core";
import { tensorFrom, tensorOf, typedArrayKernels, valuesOf } from "./dispatch.ts";
import { timed } from "./profile.ts";

/**
 * `(x - mean) / sqrt(var + eps)` over the last axis (biased variance, as PyTorch), then
 * `· weight + bias` when given (`[C]` each). Differentiable in x, weight and bias. Off the
 * CPU backends, the same composed from stock ops.
 */
export function layerNormLastAxis(
  x: tf.Tensor,
  eps: number,
  weight?: tf.Tensor1D,
  bias?: tf.Tensor1D,
): tf.Tensor {
  const shape = x.shape;
  const c = shape[shape.length - 1];
  const affine = weight !== undefined && bias !== undefined;
  if (!typedArrayKernels()) {
    const { mean, variance } = tf.moments(x, -1, true);
    const y = tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, eps)));
    return affine ? tf.add(tf.mul(y, weight), bias) : y;
  }
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const ws = affine ? valuesOf(args[1] as tf.Tensor).slice() : undefined;
    const bs = affine ? valuesOf(args[2] as tf.Tensor).slice() : undefined;
    // A view of x's memory: nothing is allocated in tfjs until the loops are done.
    const xs = valuesOf(args[0] as tf.Tensor);
    const rows = xs.length / c, size = xs.length;
    const normed = new Float32Array(size), inv = new Float32Array(rows);
    timed("layer norm (JS)", () => {
      for (let r = 0, o = 0; r < rows; r++, o += c) {
        let mean = 0;
        for (let i = 0; i < c; i++) mean += xs[o + i];
        mean /= c;
        let variance = 0;
        for (let i = 0; i < c; i++) variance += (xs[o + i] - mean) ** 2;
        const s = 1 / Math.sqrt(variance / c + eps);
        inv[r] = s;
        for (let i = 0; i < c; i++) normed[o + i] = (xs[o + i] - mean) * s;
      }
    });
    const value = tensorFrom(shape, (out) => {
      if (!ws || !bs) return out.set(normed);
      timed("layer norm (JS)", () => {
        for (let o = 0; o < size; o += c) {
          for (let i = 0; i < c; i++) out[o + i] = normed[o + i] * ws[i] + bs[i];
        }
      });
    });
    return {
      value,
      gradFunc: (dy: tf.Tensor) => {
        const dw = new Float64Array(c), db = new Float64Array(c), gw = new Float64Array(c);
        const dxT = tensorFrom(shape, (dx) => {
          const g = valuesOf(dy);
          timed("layer norm (JS)", () => {
            for (let r = 0, o = 0; r < rows; r++, o += c) {
              // With gw = dy · weight: dx = inv (gw - mean(gw) - x̂ mean(gw x̂)).
              let sum = 0, dot = 0;
              for (let i = 0; i < c; i++) {
                const gi = g[o + i], n = normed[o + i];
                if (ws) {
                  dw[i] += gi * n;
                  db[i] += gi;
                }
                const v = ws ? gi * ws[i] : gi;
                gw[i] = v;
                sum += v;
                dot += v * n;
              }
              sum /= c;
              dot /= c;
              const s = inv[r];
              for (let i = 0; i < c; i++) dx[o + i] = s * (gw[i] - sum - normed[o + i] * dot);
            }
          });
        });
        return affine
          ? [dxT, tensorOf(Float32Array.from(dw), [c]), tensorOf(Float32Array.from(db), [c])]
          : [dxT];
      },
    };
  });
  return affine ? f(x, weight, bias) : f(x);
}
