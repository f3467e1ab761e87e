// 3-D convolution, stride 1, 'same' zero padding, as shifted row blocks of one matrix.
//
// tfjs' stock conv3d runs at 0.1-0.8 GFLOP/s here, and its input gradient is wrong on the
// wasm backend. Here the padded input is flattened to rows [B * D' * H' * W', C_in]
// (D' = D + k - 1 …); for kernel offset (dz, dy, dx) the rows an output voxel needs are
// the same block shifted by off = (dz * H' + dy) * W' + dx, a contiguous 2-D slice. So the
// convolution is a sum of k³ 2-D matMuls over row blocks, which every backend does well,
// and one crop of the valid outputs. The gradient (tf.customGrad) uses the same layout:
// dW_k = X_off^T · dY and dX = Σ_k shift(dY · W_k^T).
import * as tf from "@tensorflow/tfjs-core";

/** Row offsets of the k³ kernel taps in the flattened padded grid. */
function tapOffsets(k: number, hp: number, wp: number): number[] {
  const out: number[] = [];
  for (let dz = 0; dz < k; dz++) {
    for (let dy = 0; dy < k; dy++) {
      for (let dx = 0; dx < k; dx++) out.push((dz * hp + dy) * wp + dx);
    }
  }
  return out;
}

/**
 * `y = conv3d(x, w)` for x `[B, D, H, W, C_in]`, w `[k, k, k, C_in, C_out]` (odd k),
 * stride 1, 'same' padding, no bias; equal to `tf.conv3d(x, w, 1, "same")` with a
 * hand-written gradient for both inputs.
 */
export function conv3dSame(x: tf.Tensor5D, w: tf.Tensor5D): tf.Tensor5D {
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [x, w, save] = args as [tf.Tensor5D, tf.Tensor5D, tf.GradSaveFunc];
    const [b, d, h, wd, cin] = x.shape;
    const [k, , , , cout] = w.shape;
    const r = (k - 1) / 2;
    const [dp, hp, wp] = [d + k - 1, h + k - 1, wd + k - 1];
    const rows = b * dp * hp * wp;
    const offs = tapOffsets(k, hp, wp);
    const extra = offs[offs.length - 1];
    const xRows = tf.tidy(() =>
      tf.concat([
        tf.reshape(tf.pad(x, [[0, 0], [r, r], [r, r], [r, r], [0, 0]]), [rows, cin]),
        tf.zeros([extra, cin]),
      ])
    ) as tf.Tensor2D;
    const taps = tf.reshape(w, [k * k * k, cin, cout]);
    const y = tf.tidy(() => {
      let acc: tf.Tensor | undefined;
      for (let t = 0; t < offs.length; t++) {
        const wt = tf.reshape(tf.slice(taps, [t, 0, 0], [1, cin, cout]), [
          cin,
          cout,
        ]) as tf.Tensor2D;
        const term = tf.matMul(tf.slice(xRows, [offs[t], 0], [rows, cin]), wt);
        acc = acc ? tf.add(acc, term) : term;
      }
      const full = tf.reshape(acc!, [b, dp, hp, wp, cout]);
      return tf.slice(full, [0, 0, 0, 0, 0], [b, d, h, wd, cout]) as tf.Tensor5D;
    });
    save([xRows, w]);
    taps.dispose();
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xr, wv] = saved as [tf.Tensor2D, tf.Tensor5D];
        const tapsT = tf.reshape(wv, [k * k * k, cin, cout]);
        // dY on the padded output grid (zeros at the invalid positions), as rows.
        const dyRows = tf.reshape(
          tf.pad(dy, [[0, 0], [0, k - 1], [0, k - 1], [0, k - 1], [0, 0]]),
          [rows, cout],
        ) as tf.Tensor2D;
        const dyExt = tf.concat([tf.zeros([extra, cout]), dyRows]) as tf.Tensor2D;
        const dws: tf.Tensor[] = [];
        let dxAcc: tf.Tensor | undefined;
        for (let t = 0; t < offs.length; t++) {
          // Explicit transposes: transposed matMul is slow on some backends.
          const xt = tf.transpose(tf.slice(xr, [offs[t], 0], [rows, cin]));
          dws.push(tf.matMul(xt, dyRows));
          const wtT = tf.transpose(
            tf.reshape(tf.slice(tapsT, [t, 0, 0], [1, cin, cout]), [cin, cout]),
          );
          // dXrows[j] += dY[j - off]: the rows of dyExt starting at extra - off.
          const term = tf.matMul(tf.slice(dyExt, [extra - offs[t], 0], [rows, cout]), wtT);
          dxAcc = dxAcc ? tf.add(dxAcc, term) : term;
        }
        const dxFull = tf.reshape(dxAcc!, [b, dp, hp, wp, cin]);
        const dx = tf.slice(dxFull, [0, r, r, r, 0], [b, d, h, wd, cin]);
        const dw = tf.reshape(tf.stack(dws), [k, k, k, cin, cout]);
        return [dx, dw];
      },
    };
  });
  return f(x, w) as tf.Tensor5D;
}
