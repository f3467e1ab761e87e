// Row gathers over typed arrays, with scatter-add gradients: tfjs' GatherV2 on wasm copies
// element by element (40-65 ms for the 1e5-row gathers of each Swin block) and its
// gradient needs UnsortedSegmentSum, which the wasm backend does not implement.
import * as tf from "@tensorflow/tfjs-core";
import { readSync, tensorFrom, typedArrayKernels, valuesOf } from "./dispatch.ts";
import { timed } from "./profile.ts";

/**
 * `out[t] = x[index[t]]` for a 2-D `x`; the gradient adds each `dy[t]` into row `index[t]`
 * (stock `tf.gather` off the CPU backends).
 */
export function gatherRows(x: tf.Tensor2D, index: Int32Array): tf.Tensor2D {
  if (!typedArrayKernels()) return tf.gather(x, tf.tensor1d(index, "int32"));
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const xIn = args[0] as tf.Tensor2D;
    const [rows, cols] = xIn.shape;
    // Written straight into the output's memory, read from the input's.
    const value = tensorFrom<tf.Rank.R2>([index.length, cols], (out) => {
      const xs = valuesOf(xIn);
      timed("gather rows (JS)", () => {
        for (let t = 0; t < index.length; t++) {
          const s = index[t] * cols, o = t * cols;
          for (let c = 0; c < cols; c++) out[o + c] = xs[s + c];
        }
      });
    });
    return {
      value,
      gradFunc: (dy: tf.Tensor) => [
        tensorFrom<tf.Rank.R2>([rows, cols], (dx) => {
          const g = valuesOf(dy);
          timed("gather rows (JS)", () => {
            dx.fill(0);
            for (let t = 0; t < index.length; t++) {
              const o = index[t] * cols, s = t * cols;
              for (let c = 0; c < cols; c++) dx[o + c] += g[s + c];
            }
          });
        }),
      ],
    };
  });
  return f(x) as tf.Tensor2D;
}

/**
 * `out[h, t] = table[index[t], h]`: the relative position bias `[heads, n, n]` gathered
 * from its table `[entries, heads]` with the window's `[n·n]` index, transposed on the way;
 * the gradient scatter-adds back into the table.
 */
export function gatherBias(table: tf.Tensor2D, index: Int32Array, n: number): tf.Tensor3D {
  if (!typedArrayKernels()) {
    const [, heads] = table.shape;
    const rows = tf.gather(table, tf.tensor1d(index, "int32"));
    return tf.transpose(tf.reshape(rows, [n, n, heads]), [2, 0, 1]);
  }
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const tIn = args[0] as tf.Tensor2D;
    const [entries, heads] = tIn.shape;
    const ts = readSync(tIn), nn = index.length;
    const out = new Float32Array(heads * nn);
    for (let h = 0; h < heads; h++) {
      for (let t = 0; t < nn; t++) out[h * nn + t] = ts[index[t] * heads + h];
    }
    return {
      value: tf.tensor3d(out, [heads, n, n]),
      gradFunc: (dy: tf.Tensor) => {
        const g = readSync(dy);
        const dt = new Float32Array(entries * heads);
        for (let h = 0; h < heads; h++) {
          for (let t = 0; t < nn; t++) dt[index[t] * heads + h] += g[h * nn + t];
        }
        return [tf.tensor2d(dt, [entries, heads])];
      },
    };
  });
  return f(table) as tf.Tensor3D;
}
