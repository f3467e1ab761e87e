// Small cases of every kernel, values and gradients, shared by the stock-fallback test on
// cpu and the webgpu probe.
import * as tf from "@tensorflow/tfjs-core";
import { windowAttentionCore } from "../../train/kernels/window_attention.ts";
import { conv3dPatches, conv3dSame } from "../../train/kernels/conv3d.ts";
import { instanceNormChannelsLast } from "../../train/kernels/instance_norm.ts";
import { layerNormLastAxis } from "../../train/kernels/layer_norm.ts";
import { gatherBias, gatherRows } from "../../train/kernels/gather_rows.ts";
import { dense } from "../../train/kernels/dense.ts";

/** A score budget of two 49-token windows of two heads. */
export const SMALL_SCORE_CHUNK = 2 * 2 * 49 * 49;

/** Deterministic values in [-1, 1). */
export function seeded(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

/** Output and input gradients of `f` at `inputs` against a seeded output gradient. */
function withGrads(f: (...x: tf.Tensor[]) => tf.Tensor, inputs: tf.Tensor[]): tf.Tensor[] {
  const y = f(...inputs);
  const g = tf.tensor(seeded(y.size, 99), y.shape);
  return [y, ...tf.grads((...x: tf.Tensor[]) => tf.mul(f(...x), g))(inputs)];
}

/**
 * Named cases: each returns the kernel's output and its gradients. Callers set
 * `STOCK_ATTENTION_LIMITS.scoreFloats` to {@linkcode SMALL_SCORE_CHUNK} so that the
 * attention's stock fallback runs in three chunks of two windows.
 */
export function kernelCases(): [string, () => tf.Tensor[]][] {
  const [bw, n, heads, d, windows] = [6, 49, 2, 4, 3];
  const mask = Float32Array.from(seeded(windows * n * n, 9), (v) => (v > 0.3 ? -100 : 0));
  const qkv = () => tf.tensor3d(seeded(bw * n * 3 * heads * d, 1), [bw, n, 3 * heads * d]);
  const bias = () => tf.tensor3d(seeded(heads * n * n, 2), [heads, n, n]);
  const vol = (c: number, seed: number) =>
    tf.tensor5d(seeded(2 * 6 * 5 * 9 * c, seed).map((v, i) => v * 3 + (i % 4)), [2, 6, 5, 9, c]);
  const index = Int32Array.from({ length: 200 }, (_, i) => (i * 7) % 90);
  return [
    ["windowAttentionCore", () =>
      withGrads(
        (a, b) => windowAttentionCore(a as tf.Tensor3D, b as tf.Tensor3D, heads, 0.5, mask),
        [qkv(), bias()],
      )],
    ["conv3dSame", () =>
      withGrads((a, b) => conv3dSame(a as tf.Tensor5D, b as tf.Tensor5D), [
        vol(5, 3),
        tf.tensor5d(seeded(27 * 5 * 8, 4), [3, 3, 3, 5, 8]),
      ])],
    // Over more voxels than tfjs-webgpu's own weight gradient gets right (see conv3dStock).
    [
      "conv3dSame, 1 x 1 x 1 over 3 x 32³ voxels",
      () =>
        withGrads((a, b) => conv3dSame(a as tf.Tensor5D, b as tf.Tensor5D), [
          tf.tensor5d(seeded(3 * 32 ** 3, 11), [3, 32, 32, 32, 1]),
          tf.tensor5d(seeded(12, 12), [1, 1, 1, 1, 12]),
        ]),
    ],
    [
      "conv3dPatches, 2³ patches of 3 x 32³ voxels",
      () =>
        withGrads((a, b) => conv3dPatches(a as tf.Tensor5D, b as tf.Tensor5D, 2), [
          tf.tensor5d(seeded(3 * 32 ** 3, 13), [3, 32, 32, 32, 1]),
          tf.tensor5d(seeded(8 * 12, 14), [2, 2, 2, 1, 12]),
        ]),
    ],
    [
      "instanceNormChannelsLast",
      () => withGrads((a) => instanceNormChannelsLast(a as tf.Tensor5D, 1e-5), [vol(6, 5)]),
    ],
    ["layerNormLastAxis", () =>
      withGrads(
        (a, w, b) => layerNormLastAxis(a, 1e-5, w as tf.Tensor1D, b as tf.Tensor1D),
        [vol(12, 6), tf.tensor1d(seeded(12, 7)), tf.tensor1d(seeded(12, 8))],
      )],
    ["gatherRows", () =>
      withGrads((a) => gatherRows(a as tf.Tensor2D, index), [
        tf.tensor2d(seeded(90 * 12, 10), [90, 12]),
      ])],
    [
      "gatherBias",
      () =>
        withGrads((a) => gatherBias(a as tf.Tensor2D, index.subarray(0, 196), 14), [
          tf.tensor2d(seeded(90 * 3, 11), [90, 3]),
        ]),
    ],
    [
      "dense",
      () =>
        withGrads((a, w, b) => dense(a as tf.Tensor2D, w as tf.Tensor2D, b as tf.Tensor1D), [
          tf.tensor2d(seeded(50 * 12, 12), [50, 12]),
          tf.tensor2d(seeded(12 * 36, 13), [12, 36]),
          tf.tensor1d(seeded(36, 14)),
        ]),
    ],
  ];
}
