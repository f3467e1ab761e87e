// Row gather with a scatter-add gradient written over typed arrays: tfjs' own gather
// gradient needs UnsortedSegmentSum, which the wasm backend does not implement.
import * as tf from "@tensorflow/tfjs-core";
import { readSync } from "./_read.ts";

/** `out[t] = x[index[t]]` for a 2-D `x`; the gradient adds each `dy[t]` into row `index[t]`. */
export function gatherRows(x: tf.Tensor2D, index: Int32Array): tf.Tensor2D {
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const xIn = args[0] as tf.Tensor2D;
    const [rows, cols] = xIn.shape;
    const value = tf.tidy(() => tf.gather(xIn, tf.tensor1d(index, "int32"))) as tf.Tensor2D;
    return {
      value,
      gradFunc: (dy: tf.Tensor) => {
        const g = readSync(dy);
        const dx = new Float32Array(rows * cols);
        for (let t = 0; t < index.length; t++) {
          const o = index[t] * cols, s = t * cols;
          for (let c = 0; c < cols; c++) dx[o + c] += g[s + c];
        }
        return [tf.tensor2d(dx, [rows, cols])];
      },
    };
  });
  return f(x) as tf.Tensor2D;
}
