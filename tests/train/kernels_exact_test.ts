// The fast paths of the kernels against the plain ones they replace, bit for bit: the
// training step's numbers must not move when a kernel gets faster.
import * as tf from "@tensorflow/tfjs-core";
import { useBackend } from "../../train/backend.ts";
import { ATTENTION_KERNELS, windowAttentionCore } from "../../train/kernels/window_attention.ts";
import {
  INSTANCE_NORM_KERNELS,
  instanceNormChannelsLast,
  instanceNormLeakyRelu,
} from "../../train/kernels/instance_norm.ts";
import { setKernelThreads } from "../../train/kernels/_pool.ts";
import { dense, DENSE_KERNELS } from "../../train/kernels/dense.ts";
import { attentionMask, windowIndex } from "../../train/swin/_windows.ts";
import { assert } from "../_helpers.ts";
import { seeded } from "./_kernel_cases.ts";

/** How many values of `a` and `b` differ in their bits (NaN equals NaN, -0 differs from 0). */
function bitDiffs(a: Float32Array, b: Float32Array): number {
  assert(a.length === b.length, `lengths ${a.length} and ${b.length}`);
  let n = 0;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) n++;
  return n;
}

for (const backend of ["cpu", "wasm"] as const) {
  Deno.test(`windowAttentionCore()'s head-size-4 kernels equal the general ones bit for bit (${backend})`, async () => {
    await useBackend(backend);
    // Shifted windows over a padded grid (masked and padding tokens, a key tail past n),
    // plain windows, a 4-token grid, and scores large enough that whole rows underflow.
    const cases: [number[], number[], number, number][] = [
      [[10, 9, 8], [3, 3, 3], 3, 1],
      [[7, 7, 7], [0, 0, 0], 2, 4],
      [[9, 9, 9], [3, 3, 3], 2, 30],
      [[4, 4, 4], [0, 0, 0], 2, 1],
    ];
    for (const [dims, shift, heads, spread] of cases) {
      const window = dims.map((d) => Math.min(d, 7));
      const index = windowIndex(2, dims, window, shift);
      const mask = shift[0] ? attentionMask(index.padded, window, shift) : undefined;
      const [n, bw, d] = [index.tokens, 2 * index.windows, 4];
      const zeroRow = 2 * dims[0] * dims[1] * dims[2];
      const queries = Uint8Array.from(index.forward, (r) => (r === zeroRow ? 0 : 1));
      const run = (four: boolean) => {
        ATTENTION_KERNELS.headSize4 = four;
        try {
          return tf.tidy(() => {
            const qkv = tf.tensor3d(
              seeded(bw * n * 3 * heads * d, 1).map((v) => v * spread),
              [bw, n, 3 * heads * d],
            );
            const bias = tf.tensor3d(seeded(heads * n * n, 2), [heads, n, n]);
            const g = tf.tensor3d(seeded(bw * n * heads * d, 3), [bw, n, heads * d]);
            const f = (a: tf.Tensor, b: tf.Tensor) =>
              tf.mul(
                windowAttentionCore(a as tf.Tensor3D, b as tf.Tensor3D, heads, 0.5, mask, queries),
                g,
              );
            return [f(qkv, bias), ...tf.grads(f)([qkv, bias])];
          }).map((t) => t.dataSync() as Float32Array);
        } finally {
          ATTENTION_KERNELS.headSize4 = true;
        }
      };
      const general = run(false), fused = run(true);
      ["output", "qkv gradient", "bias gradient"].forEach((what, i) => {
        const n = bitDiffs(fused[i], general[i]);
        assert(n === 0, `${dims} shift ${shift[0]}: ${what} differs in ${n} values`);
      });
    }
  });
}

for (const backend of ["cpu", "wasm"] as const) {
  Deno.test(`instanceNormChannelsLast()'s WebAssembly kernels equal its typed-array loops bit for bit (${backend})`, async () => {
    await useBackend(backend);
    // Channels split between threads mid-sample (3 threads over 2 x 3 quads), a large
    // offset (float32 sums would lose it), and one constant channel.
    for (const threads of [1, 3]) {
      const before = setKernelThreads(threads);
      try {
        for (const shape of [[2, 5, 6, 7, 12], [1, 3, 4, 5, 8], [3, 2, 3, 4, 4]]) {
          const size = shape.reduce((a, b) => a * b, 1);
          const xs = seeded(size, 31).map((v, i) => (i % shape[4] === 1 ? 7 : v * 5 + 1000));
          const run = (wasm: boolean) => {
            INSTANCE_NORM_KERNELS.wasm = wasm;
            try {
              return tf.tidy(() => {
                const x = tf.tensor5d(xs, shape as [number, number, number, number, number]);
                const g = tf.tensor(seeded(size, 32), shape);
                const f = (a: tf.Tensor) =>
                  tf.mul(instanceNormChannelsLast(a as tf.Tensor5D, 1e-5), g);
                return [f(x), ...tf.grads(f)([x])];
              }).map((t) => t.dataSync() as Float32Array);
            } finally {
              INSTANCE_NORM_KERNELS.wasm = true;
            }
          };
          const loops = run(false), kernels = run(true);
          ["output", "gradient"].forEach((what, i) => {
            const n = bitDiffs(kernels[i], loops[i]);
            assert(n === 0, `${shape} on ${threads} threads: ${what} differs in ${n} values`);
          });
        }
      } finally {
        setKernelThreads(before);
      }
    }
  });
}

for (const backend of ["cpu", "wasm"] as const) {
  Deno.test(`instanceNormLeakyRelu() equals tf.leakyRelu(norm + residual) bit for bit, gradients included (${backend})`, async () => {
    await useBackend(backend);
    const shape: [number, number, number, number, number] = [2, 3, 4, 5, 8];
    const size = shape.reduce((a, b) => a * b, 1);
    for (const withResidual of [false, true]) {
      const run = (fused: boolean) => {
        INSTANCE_NORM_KERNELS.wasm = fused;
        try {
          return tf.tidy(() => {
            const x = tf.tensor5d(seeded(size, 41).map((v) => v * 3), shape);
            // A residual that cancels some outputs to exactly 0 and turns others negative.
            const r = tf.tensor5d(seeded(size, 42), shape);
            const g = tf.tensor(seeded(size, 43), shape);
            const f = (a: tf.Tensor, b: tf.Tensor) =>
              tf.mul(
                instanceNormLeakyRelu(
                  a as tf.Tensor5D,
                  1e-5,
                  0.01,
                  withResidual ? b as tf.Tensor5D : undefined,
                ),
                g,
              );
            const grads = withResidual
              ? tf.grads(f)([x, r])
              : [tf.grad((a: tf.Tensor) => f(a, r))(x)];
            return [f(x, r), ...grads];
          }).map((t) => t.dataSync() as Float32Array);
        } finally {
          INSTANCE_NORM_KERNELS.wasm = true;
        }
      };
      const composed = run(false), fused = run(true);
      assert(fused.length === composed.length, "gradient count");
      composed.forEach((ref, i) => {
        const n = bitDiffs(fused[i], ref);
        assert(n === 0, `residual ${withResidual}: tensor ${i} differs in ${n} values`);
      });
    }
  });
}

Deno.test("dense()'s WebAssembly kernels equal tfjs-wasm's matMuls bit for bit, on any thread count", async () => {
  await useBackend("wasm");
  // Rows fewer than threads, one column quad, wide heads, a long shared index.
  const cases: [number, number, number, boolean][] = [
    [1000, 12, 36, true],
    [999, 48, 12, false],
    [1, 8, 4, true],
    [37, 4, 96, true],
    [20, 288, 1024, true],
  ];
  for (const threads of [1, 2, 3]) {
    const before = setKernelThreads(threads);
    try {
      for (const [m, k, n, bias] of cases) {
        const run = (kernel: boolean) => {
          DENSE_KERNELS.wasm = kernel;
          try {
            return tf.tidy(() => {
              const x = tf.tensor2d(seeded(m * k, 51), [m, k]);
              const w = tf.tensor2d(seeded(k * n, 52), [k, n]);
              const b = tf.tensor1d(seeded(n, 53));
              const g = tf.tensor2d(seeded(m * n, 54), [m, n]);
              const f = (a: tf.Tensor, c: tf.Tensor, d: tf.Tensor) =>
                tf.mul(
                  dense(a as tf.Tensor2D, c as tf.Tensor2D, bias ? d as tf.Tensor1D : undefined),
                  g,
                );
              const grads = bias
                ? tf.grads(f)([x, w, b])
                : tf.grads((a: tf.Tensor, c: tf.Tensor) => f(a, c, b))([x, w]);
              return [f(x, w, b), ...grads];
            }).map((t) => t.dataSync() as Float32Array);
          } finally {
            DENSE_KERNELS.wasm = true;
          }
        };
        const matMuls = run(false), kernels = run(true);
        matMuls.forEach((ref, i) => {
          const diffs = bitDiffs(kernels[i], ref);
          assert(
            diffs === 0,
            `${m}x${k}x${n} on ${threads} threads: tensor ${i} differs in ${diffs}`,
          );
        });
      }
    } finally {
      setKernelThreads(before);
    }
  }
});
