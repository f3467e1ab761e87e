// Custom kernels against stock tfjs ops on the cpu backend: values and gradients.
import * as tf from "@tensorflow/tfjs-core";
import { useBackend } from "../../train/backend.ts";
import { conv3dSame } from "../../train/kernels/conv3d.ts";
import {
  STOCK_ATTENTION_LIMITS,
  windowAttentionCore,
} from "../../train/kernels/window_attention.ts";
import { gatherBias, gatherRows } from "../../train/kernels/gather_rows.ts";
import { layerNormLastAxis } from "../../train/kernels/layer_norm.ts";
import { instanceNormChannelsLast } from "../../train/kernels/instance_norm.ts";
import { dense } from "../../train/kernels/dense.ts";
import { attentionMask, windowAndShift, windowIndex } from "../../train/swin/_windows.ts";
import { assert } from "../_helpers.ts";
import { useStockOps } from "../../train/kernels/dispatch.ts";
import { kernelCases, seeded, SMALL_SCORE_CHUNK } from "./_kernel_cases.ts";
import { setKernelThreads } from "../../train/kernels/_pool.ts";

/** Runs `f` on the cpu backend and returns plain arrays of its tensors. */
async function onCpu(f: () => tf.Tensor[]): Promise<Float32Array[]> {
  await useBackend("cpu");
  return tf.tidy(f).map((t) => t.dataSync() as Float32Array);
}

/** The largest |value|, at least 1. */
function maxAbs(a: ArrayLike<number>): number {
  let m = 1;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

for (const backend of ["cpu", "wasm"] as const) {
  Deno.test(`conv3dSame() equals stock conv3d, values and both gradients (${backend})`, async () => {
    const cases: [number[], number, number][] = [
      [[2, 5, 6, 7, 3], 3, 4],
      [[1, 4, 4, 4, 2], 1, 3],
      [[1, 6, 5, 4, 2], 5, 2],
      // rows of 8-voxel blocks plus a remainder, 1 input channel, 12 outputs
      [[1, 3, 4, 19, 5], 3, 12],
      [[2, 4, 3, 8, 1], 3, 8],
    ];
    for (const [shape, k, cout] of cases) {
      const cin = shape[4];
      const xd = seeded(shape.reduce((a, b) => a * b, 1), 1);
      const wd = seeded(k * k * k * cin * cout, 2);
      const dyd = seeded(shape.slice(0, 4).reduce((a, b) => a * b, 1) * cout, 3);
      const wShape = [k, k, k, cin, cout];
      const yShape = [...shape.slice(0, 4), cout];
      const run = (conv: (x: tf.Tensor5D, w: tf.Tensor5D) => tf.Tensor5D) => () => {
        const x = tf.tensor(xd, shape), w = tf.tensor(wd, wShape), dy = tf.tensor(dyd, yShape);
        const y = conv(x as tf.Tensor5D, w as tf.Tensor5D);
        const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
          tf.mul(conv(a as tf.Tensor5D, b as tf.Tensor5D), dy)
        )([x, w]);
        return [y, dx, dw];
      };
      const ref = await onCpu(run((x, w) => tf.conv3d(x, w, 1, "same")));
      await useBackend(backend);
      const got = tf.tidy(run(conv3dSame)).map((t) => t.dataSync());
      ["y", "dx", "dw"].forEach((name, i) => {
        const d = maxDiff(got[i], ref[i]);
        assert(d < 1e-4, `${name} of kernel ${k}: max diff ${d}`);
      });
    }
  });
}

/** MONAI's attention with stock ops: qkv `[bw, n, 3C]` -> `[bw, n, C]`. */
function attentionReference(
  qkv: tf.Tensor,
  bias: tf.Tensor,
  heads: number,
  scale: number,
  mask?: tf.Tensor,
): tf.Tensor {
  const [bw, n, c3] = qkv.shape;
  const d = c3 / 3 / heads;
  const parts = tf.transpose(tf.reshape(qkv, [bw, n, 3, heads, d]), [2, 0, 3, 1, 4]);
  const [q, k, v] = tf.unstack(parts);
  let s = tf.add(tf.mul(tf.matMul(q, k, false, true), scale), bias);
  if (mask) s = tf.add(s, mask);
  const out = tf.matMul(tf.softmax(s), v);
  return tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [bw, n, c3 / 3]);
}

Deno.test("windowAttentionCore() equals MONAI's softmax(q kT s + bias + mask) v, gradients included", async () => {
  // Window sizes that are and are not multiples of 4, head sizes 4 and 8, with and without
  // the shift mask (-100 as MONAI's), values large enough to exercise the exponential.
  const cases: [number, number, number, number, number, number][] = [
    [6, 2, 7, 4, 3, 0.5],
    [2, 3, 27, 8, 0, 8 ** -0.5],
    [4, 1, 64, 4, 2, 2],
    [2, 1, 10, 6, 0, 0.4], // a head size the kernel does not take: the stock fallback
  ];
  for (const [bw, heads, n, d, windows, scale] of cases) {
    const c3 = 3 * heads * d;
    const xd = seeded(bw * n * c3, 4 + n), bd = seeded(heads * n * n, 7);
    const gd = seeded(bw * n * heads * d, 8);
    const mask = windows
      ? Float32Array.from(seeded(windows * n * n, 9), (v) => (v > 0.3 ? -100 : 0))
      : undefined;
    const run = (fused: boolean) => () => {
      const x = tf.tensor3d(xd, [bw, n, c3]), b = tf.tensor3d(bd, [heads, n, n]);
      const g = tf.tensor3d(gd, [bw, n, heads * d]);
      const maskT = mask &&
        tf.reshape(tf.tile(tf.tensor4d(mask, [windows, 1, n, n]), [bw / windows, 1, 1, 1]), [
          bw,
          1,
          n,
          n,
        ]);
      const f = (a: tf.Tensor, h: tf.Tensor) =>
        fused
          ? windowAttentionCore(a as tf.Tensor3D, h as tf.Tensor3D, heads, scale, mask)
          : attentionReference(a, h, heads, scale, maskT);
      const grads = tf.grads((a: tf.Tensor, h: tf.Tensor) => tf.mul(f(a, h), g))([x, b]);
      return [f(x, b), ...grads];
    };
    const ref = await onCpu(run(false));
    const got = await onCpu(run(true));
    ["out", "dqkv", "dBias"].forEach((name, i) => {
      const diff = maxDiff(got[i], ref[i]);
      assert(diff < 2e-5, `n ${n}, d ${d}: ${name} max diff ${diff}`);
    });
  }
});

Deno.test("windowIndex() gathers equal MONAI's pad, roll and window partition, and invert them", () => {
  const dims = [5, 9, 8], b = 2, c = 1;
  const { window, shift } = windowAndShift(dims, 4, 2);
  const idx = windowIndex(b, dims, window, shift);
  const [dp, hp, wp] = idx.padded;
  assert(dp === 8 && hp === 12 && wp === 8, `${idx.padded}`);
  const n = b * dims[0] * dims[1] * dims[2];
  // Reference: pad with zeros (value -1 marks padding), roll by -shift, partition.
  const value = (bb: number, z: number, y: number, x: number) =>
    z < dims[0] && y < dims[1] && x < dims[2]
      ? ((bb * dims[0] + z) * dims[1] + y) * dims[2] + x
      : n;
  let t = 0;
  for (let bb = 0; bb < b; bb++) {
    for (let i0 = 0; i0 < dp / window[0]; i0++) {
      for (let i1 = 0; i1 < hp / window[1]; i1++) {
        for (let i2 = 0; i2 < wp / window[2]; i2++) {
          for (let j0 = 0; j0 < window[0]; j0++) {
            for (let j1 = 0; j1 < window[1]; j1++) {
              for (let j2 = 0; j2 < window[2]; j2++, t++) {
                const z = (i0 * window[0] + j0 + shift[0]) % dp;
                const y = (i1 * window[1] + j1 + shift[1]) % hp;
                const x = (i2 * window[2] + j2 + shift[2]) % wp;
                assert(idx.forward[t] === value(bb, z, y, x), `token ${t}`);
              }
            }
          }
        }
      }
    }
  }
  for (let v = 0; v < n * c; v++) assert(idx.forward[idx.inverse[v]] === v, `voxel ${v}`);
  const mask = attentionMask(idx.padded, window, shift);
  assert(mask.every((m) => m === 0 || m === -100));
  assert(mask.some((m) => m === -100));
});

Deno.test("gatherRows() equals tf.gather, and its gradient scatter-adds (wasm lacks one)", async () => {
  const xd = seeded(7 * 3, 8), gd = seeded(9 * 3, 9);
  const index = Int32Array.from([0, 6, 2, 2, 5, 0, 1, 6, 3]);
  const run = (ours: boolean) => () => {
    const x = tf.tensor2d(xd, [7, 3]), g = tf.tensor2d(gd, [9, 3]);
    const f = (a: tf.Tensor) =>
      ours ? gatherRows(a as tf.Tensor2D, index) : tf.gather(a, tf.tensor1d(index, "int32"));
    return [f(x), tf.grad((a: tf.Tensor) => tf.mul(f(a), g))(x)];
  };
  const ref = await onCpu(run(false));
  const got = await onCpu(run(true));
  assert(maxDiff(got[0], ref[0]) === 0 && maxDiff(got[1], ref[1]) < 1e-6);
  await useBackend("wasm");
  const wasm = tf.tidy(run(true)).map((t) => t.dataSync());
  assert(maxDiff(wasm[1], ref[1]) < 1e-6, "gradient on wasm");
});

Deno.test("every kernel's stock-op fallback equals the kernel, values and gradients", async () => {
  await useBackend("cpu");
  const cases = kernelCases();
  const kernel = cases.map(([, f]) => tf.tidy(f).map((t) => t.dataSync()));
  const saved = STOCK_ATTENTION_LIMITS.scoreFloats;
  STOCK_ATTENTION_LIMITS.scoreFloats = SMALL_SCORE_CHUNK; // three chunks of windows
  useStockOps(true);
  try {
    cases.forEach(([name, f], c) => {
      const stock = tf.tidy(f).map((t) => t.dataSync());
      stock.forEach((v, i) => {
        const d = maxDiff(v, kernel[c][i]) / maxAbs(kernel[c][i]);
        // Weight gradients summed over ~1e5 voxels in float32, in another order: 1e-5.
        const tol = /voxels/.test(name) ? 1e-5 : 2e-6;
        assert(d < tol, `${name}, output ${i}: max relative diff ${d}`);
      });
    });
  } finally {
    useStockOps(false);
    STOCK_ATTENTION_LIMITS.scoreFloats = saved;
  }
});

Deno.test("on webgpu every kernel (its stock fallback) equals the cpu kernel", async () => {
  // In a child process, adapter lookup included: Deno's WebGPU teardown can abort the
  // process at exit, which must not take the test runner down.
  const probe = new URL("./_webgpu_probe.ts", import.meta.url).pathname;
  const { stdout } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-env", "--allow-sys", probe],
    stdout: "piped",
    stderr: "null",
  }).output();
  const text = new TextDecoder().decode(stdout).trim();
  if (text.startsWith("no adapter")) {
    console.log("  skipped: this machine has no WebGPU adapter");
    return;
  }
  const diffs = JSON.parse(text.split("\n").pop()!) as Record<string, number>;
  assert(Object.keys(diffs).length === kernelCases().length, text);
  for (const [name, d] of Object.entries(diffs)) {
    assert(d < 1e-5, `${name}: max relative diff ${d}`);
  }
});

Deno.test("windowAttentionCore() with a query mask skips padding rows exactly", async () => {
  const [bw, heads, n, d] = [4, 2, 9, 4];
  const c3 = 3 * heads * d;
  const queries = Uint8Array.from({ length: bw * n }, (_, t) => (t % 3 === 1 ? 0 : 1));
  // The caller drops padding rows, so their output gradient is zero.
  const gd = seeded(bw * n * heads * d, 10).map((v, i) =>
    queries[Math.floor(i / (heads * d))] ? v : 0
  );
  const run = (withQueries: boolean) => () => {
    const x = tf.tensor3d(seeded(bw * n * c3, 11), [bw, n, c3]);
    const b = tf.tensor3d(seeded(heads * n * n, 14), [heads, n, n]);
    const g = tf.tensor3d(gd, [bw, n, heads * d]);
    const f = (a: tf.Tensor, h: tf.Tensor) =>
      windowAttentionCore(
        a as tf.Tensor3D,
        h as tf.Tensor3D,
        heads,
        0.5,
        undefined,
        withQueries ? queries : undefined,
      );
    const grads = tf.grads((a: tf.Tensor, h: tf.Tensor) => tf.mul(f(a, h), g))([x, b]);
    const out = f(x, b);
    return [tf.mul(out, tf.cast(tf.notEqual(g, 0), "float32")), ...grads, out];
  };
  const full = await onCpu(run(false));
  const skipped = await onCpu(run(true));
  for (let i = 0; i < 3; i++) assert(maxDiff(skipped[i], full[i]) < 1e-6, `output ${i}`);
  // The padding rows were not computed at all.
  skipped[3].forEach((v, i) => {
    assert(queries[Math.floor(i / (heads * d))] ? v !== 0 : v === 0, `row value ${v} at ${i}`);
  });
});

for (const backend of ["cpu", "wasm"] as const) {
  Deno.test(`dense() equals matMul + bias, values and every gradient (${backend})`, async () => {
    for (const withBias of [true, false]) {
      const run = (fused: boolean) => () => {
        const x = tf.tensor2d(seeded(37 * 12, 21), [37, 12]);
        const w = tf.tensor2d(seeded(12 * 20, 22), [12, 20]);
        const b = tf.tensor1d(seeded(20, 23));
        const g = tf.tensor2d(seeded(37 * 20, 24), [37, 20]);
        const f = (a: tf.Tensor, c: tf.Tensor, e?: tf.Tensor) =>
          fused
            ? dense(a as tf.Tensor2D, c as tf.Tensor2D, e as tf.Tensor1D | undefined)
            : e
            ? tf.add(tf.matMul(a, c), e)
            : tf.matMul(a, c);
        const grads = withBias
          ? tf.grads((a: tf.Tensor, c: tf.Tensor, e: tf.Tensor) => tf.mul(f(a, c, e), g))([x, w, b])
          : tf.grads((a: tf.Tensor, c: tf.Tensor) => tf.mul(f(a, c), g))([x, w]);
        return [f(x, w, withBias ? b : undefined), ...grads];
      };
      const ref = await onCpu(run(false));
      await useBackend(backend);
      const got = tf.tidy(run(true)).map((t) => t.dataSync());
      ref.forEach((r, i) => {
        const d = maxDiff(got[i], r);
        assert(d < 1e-5, `output ${i} (bias ${withBias}): max diff ${d}`);
      });
    }
  });
}

Deno.test("layerNormLastAxis() equals the stock composition, values and every gradient", async () => {
  for (const affine of [true, false]) {
    for (const backend of ["cpu", "wasm"] as const) {
      const run = (fused: boolean) => () => {
        const x = tf.tensor3d(seeded(5 * 7 * 12, 31).map((v, i) => v * 3 + (i % 5)), [5, 7, 12]);
        const w = tf.tensor1d(seeded(12, 32)), b = tf.tensor1d(seeded(12, 33));
        const g = tf.tensor3d(seeded(5 * 7 * 12, 34), [5, 7, 12]);
        const stock = (a: tf.Tensor) => {
          const { mean, variance } = tf.moments(a, -1, true);
          return tf.div(tf.sub(a, mean), tf.sqrt(tf.add(variance, 1e-5)));
        };
        if (!affine) {
          const f = (a: tf.Tensor) => fused ? layerNormLastAxis(a, 1e-5) : stock(a);
          return [f(x), tf.grad((a: tf.Tensor) => tf.mul(f(a), g))(x)];
        }
        const f = (a: tf.Tensor, c: tf.Tensor, e: tf.Tensor) =>
          fused
            ? layerNormLastAxis(a, 1e-5, c as tf.Tensor1D, e as tf.Tensor1D)
            : tf.add(tf.mul(stock(a), c), e);
        const grads = tf.grads((a: tf.Tensor, c: tf.Tensor, e: tf.Tensor) => tf.mul(f(a, c, e), g))(
          [x, w, b],
        );
        return [f(x, w, b), ...grads];
      };
      const ref = await onCpu(run(false));
      await useBackend(backend);
      const got = tf.tidy(run(true)).map((t) => t.dataSync());
      ref.forEach((r, i) => {
        const d = maxDiff(got[i], r);
        assert(d < 2e-5, `output ${i} (affine ${affine}, ${backend}): max diff ${d}`);
      });
    }
  }
});

Deno.test("gatherBias() equals gather then transpose, and its gradient scatter-adds", async () => {
  const [entries, heads, n] = [10, 3, 4];
  const index = Int32Array.from({ length: n * n }, (_, t) => (t * 7) % entries);
  const run = (fused: boolean) => () => {
    const table = tf.tensor2d(seeded(entries * heads, 41), [entries, heads]);
    const g = tf.tensor3d(seeded(heads * n * n, 42), [heads, n, n]);
    const f = (t: tf.Tensor) =>
      fused
        ? gatherBias(t as tf.Tensor2D, index, n)
        : tf.transpose(tf.reshape(tf.gather(t, tf.tensor1d(index, "int32")), [n, n, heads]), [
          2,
          0,
          1,
        ]);
    return [f(table), tf.grad((t: tf.Tensor) => tf.mul(f(t), g))(table)];
  };
  const ref = await onCpu(run(false));
  const got = await onCpu(run(true));
  assert(maxDiff(got[0], ref[0]) === 0, "values");
  assert(maxDiff(got[1], ref[1]) < 1e-6, "gradient");
});

Deno.test("instanceNormChannelsLast() equals the stock composition, value and gradient", async () => {
  const shape: [number, number, number, number, number] = [2, 3, 4, 5, 6];
  const size = shape.reduce((a, b) => a * b, 1);
  for (const backend of ["cpu", "wasm"] as const) {
    const run = (fused: boolean) => () => {
      const x = tf.tensor5d(seeded(size, 51).map((v, i) => v * 4 + (i % 6)), shape);
      const g = tf.tensor5d(seeded(size, 52), shape);
      const f = (a: tf.Tensor) => {
        if (fused) return instanceNormChannelsLast(a as tf.Tensor5D, 1e-5);
        const { mean, variance } = tf.moments(a, [1, 2, 3], true);
        return tf.div(tf.sub(a, mean), tf.sqrt(tf.add(variance, 1e-5)));
      };
      return [f(x), tf.grad((a: tf.Tensor) => tf.mul(f(a), g))(x)];
    };
    const ref = await onCpu(run(false));
    await useBackend(backend);
    const got = tf.tidy(run(true)).map((t) => t.dataSync());
    ref.forEach((r, i) => {
      const d = maxDiff(got[i], r);
      assert(d < 2e-5, `output ${i} (${backend}): max diff ${d}`);
    });
  }
});

/** `f`'s tensors as plain arrays, computed with the kernels on `threads` threads. */
function withThreads(threads: number, f: () => tf.Tensor[]): Float32Array[] {
  const before = setKernelThreads(threads);
  try {
    return tf.tidy(f).map((t) => t.dataSync() as Float32Array);
  } finally {
    setKernelThreads(before);
  }
}

Deno.test("the kernels on 2 and 3 threads equal one thread (bias gradient: to rounding)", async () => {
  await useBackend("wasm");
  // Odd sizes, so that no split is even: rows, weight rows and windows.
  const conv = (k: number, cin: number, cout: number) => () => {
    const x = tf.tensor5d(seeded(2 * 5 * 7 * 11 * cin, 21), [2, 5, 7, 11, cin]);
    const w = tf.tensor5d(seeded(k ** 3 * cin * cout, 22), [k, k, k, cin, cout]);
    const g = tf.tensor5d(seeded(2 * 5 * 7 * 11 * cout, 23), [2, 5, 7, 11, cout]);
    const f = (a: tf.Tensor, b: tf.Tensor) => conv3dSame(a as tf.Tensor5D, b as tf.Tensor5D);
    return [f(x, w), ...tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.mul(f(a, b), g))([x, w])];
  };
  const [bw, n, heads, d, windows] = [7, 49, 3, 4, 7];
  const mask = Float32Array.from(seeded(windows * n * n, 24), (v) => (v > 0.3 ? -100 : 0));
  const queries = Uint8Array.from({ length: bw * n }, (_, t) => (t % 5 === 2 ? 0 : 1));
  const attention = () => {
    const x = tf.tensor3d(seeded(bw * n * 3 * heads * d, 25), [bw, n, 3 * heads * d]);
    const b = tf.tensor3d(seeded(heads * n * n, 26), [heads, n, n]);
    const g = tf.tensor3d(seeded(bw * n * heads * d, 27), [bw, n, heads * d]);
    const f = (a: tf.Tensor, h: tf.Tensor) =>
      windowAttentionCore(a as tf.Tensor3D, h as tf.Tensor3D, heads, 0.5, mask, queries);
    return [f(x, b), ...tf.grads((a: tf.Tensor, h: tf.Tensor) => tf.mul(f(a, h), g))([x, b])];
  };
  const cases: [string, () => tf.Tensor[]][] = [
    ["conv3dSame k3", conv(3, 5, 6)],
    ["conv3dSame k1", conv(1, 3, 4)],
    ["windowAttentionCore", attention],
  ];
  for (const [name, f] of cases) {
    const one = withThreads(1, f);
    for (const threads of [2, 3]) {
      const many = withThreads(threads, f);
      one.forEach((ref, i) => {
        const what = `${name} on ${threads} threads, tensor ${i}`;
        // The attention's bias gradient sums each thread's windows, then the threads.
        if (name === "windowAttentionCore" && i === 2) {
          assert(maxDiff(many[i], ref) / maxAbs(ref) < 1e-6, what);
        } else {
          assert(many[i].every((v, j) => Object.is(v, ref[j])), `${what}: not identical`);
        }
      });
    }
  }
});
