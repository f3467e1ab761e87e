// x·w + b with a gradient made of plain 2-D matMuls: on wasm, tfjs' stock gradient runs
// transposed matMuls, which fall back to a naive loop (65536 x 48 · (12 x 48)ᵀ: 41 ms
// against 7 ms after an explicit transpose), and its bias gradient is a Sum over rows
// (18 ms against 1 ms as ones(1, N)·dy).
import * as tf from "@tensorflow/tfjs-core";
import { typedArrayKernels } from "./dispatch.ts";

/**
 * `x·w (+ b)` for x `[N, in]`, w `[in, out]`, b `[out]`, differentiable in all three (the
 * stock ops and gradients off the CPU backends).
 */
export function dense(x: tf.Tensor2D, w: tf.Tensor2D, b?: tf.Tensor1D): tf.Tensor2D {
  if (!typedArrayKernels()) {
    return (b ? tf.add(tf.matMul(x, w), b) : tf.matMul(x, w)) as tf.Tensor2D;
  }
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xIn, wIn, bIn] = args as tf.Tensor[];
    const save = args[args.length - 1] as tf.GradSaveFunc;
    save([xIn, wIn]);
    const product = tf.matMul(xIn as tf.Tensor2D, wIn as tf.Tensor2D);
    const value = b ? tf.tidy(() => tf.add(product, bIn)) : product;
    if (b) product.dispose();
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, ws] = saved as tf.Tensor2D[];
        const g = dy as tf.Tensor2D;
        const dx = tf.matMul(g, tf.transpose(ws));
        const dw = tf.matMul(tf.transpose(xs), g);
        if (!b) return [dx, dw];
        const db = tf.reshape(tf.matMul(tf.ones([1, g.shape[0]]), g), [g.shape[1]]);
        return [dx, dw, db];
      },
    };
  });
  return (b ? f(x, w, b) : f(x, w)) as tf.Tensor2D;
}
