// Custom kernels against stock tfjs ops on the cpu backend: values and gradients.
import * as tf from "@tensorflow/tfjs-core";
import { useBackend } from "../../train/backend.ts";
import { conv3dSame } from "../../train/kernels/conv3d.ts";
import { windowAttentionCore } from "../../train/kernels/window_attention.ts";
import { gatherRows } from "../../train/kernels/gather_rows.ts";
import { attentionMask, windowAndShift, windowIndex } from "../../train/swin/_windows.ts";
import { assert } from "../_helpers.ts";

/** Runs `f` on the cpu backend and returns plain arrays of its tensors. */
async function onCpu(f: () => tf.Tensor[]): Promise<Float32Array[]> {
  await useBackend("cpu");
  return tf.tidy(f).map((t) => t.dataSync() as Float32Array);
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function seeded(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

for (const backend of ["cpu", "wasm"] as const) {
  Deno.test(`conv3dSame() equals stock conv3d, values and both gradients (${backend})`, async () => {
    const cases: [number[], number, number][] = [
      [[2, 5, 6, 7, 3], 3, 4],
      [[1, 4, 4, 4, 2], 1, 3],
      [[1, 6, 5, 4, 2], 5, 2],
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

Deno.test("windowAttentionCore() equals softmax(q kT s + bias + mask) v, gradients included", async () => {
  const [bw, heads, n, d, windows] = [6, 2, 8, 4, 3];
  const qd = seeded(bw * heads * n * d, 4), kd = seeded(bw * heads * n * d, 5);
  const vd = seeded(bw * heads * n * d, 6), bd = seeded(heads * n * n, 7);
  const gd = seeded(bw * heads * n * d, 8);
  const mask = Float32Array.from(seeded(windows * n * n, 9), (v) => (v > 0.3 ? -100 : 0));
  const maskT = () => tf.tile(tf.tensor4d(mask, [windows, 1, n, n]), [bw / windows, 1, 1, 1]);
  const run = (fused: boolean) => () => {
    const shape: [number, number, number, number] = [bw, heads, n, d];
    const [q, k, v] = [qd, kd, vd].map((x) => tf.tensor4d(x, shape));
    const b = tf.tensor3d(bd, [heads, n, n]), g = tf.tensor4d(gd, shape);
    const f = (a: tf.Tensor, c: tf.Tensor, e: tf.Tensor, h: tf.Tensor) =>
      fused
        ? windowAttentionCore(
          a as tf.Tensor4D,
          c as tf.Tensor4D,
          e as tf.Tensor4D,
          h as tf.Tensor3D,
          0.5,
          mask,
        )
        : tf.matMul(
          tf.softmax(tf.add(tf.add(tf.mul(tf.matMul(a, c, false, true), 0.5), h), maskT())),
          e,
        );
    const grads = tf.grads((a: tf.Tensor, c: tf.Tensor, e: tf.Tensor, h: tf.Tensor) =>
      tf.mul(f(a, c, e, h), g)
    )([q, k, v, b]);
    return [f(q, k, v, b), ...grads];
  };
  const ref = await onCpu(run(false));
  const got = await onCpu(run(true));
  ["out", "dq", "dk", "dv", "dBias"].forEach((name, i) => {
    const diff = maxDiff(got[i], ref[i]);
    assert(diff < 1e-5, `${name}: max diff ${diff}`);
  });
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

const gpu = (navigator as unknown as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
const adapter = gpu ? await gpu.requestAdapter().catch(() => null) : null;

Deno.test({
  name: "on webgpu the custom kernels refuse with a message that names the way out",
  ignore: !adapter,
  async fn() {
    const probe = new URL("./_webgpu_probe.ts", import.meta.url).pathname;
    const { stdout } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-read", "--allow-env", "--allow-sys", probe],
      stdout: "piped",
      stderr: "null",
    }).output();
    const message = new TextDecoder().decode(stdout);
    assert(/webgpu backend cannot do under Deno yet; use --backend wasm/.test(message), message);
  },
});

Deno.test("windowAttentionCore() with a query mask skips padding rows exactly", async () => {
  const [bw, heads, n, d] = [4, 2, 8, 4];
  const shape: [number, number, number, number] = [bw, heads, n, d];
  const queries = Uint8Array.from({ length: bw * n }, (_, t) => (t % 3 === 1 ? 0 : 1));
  // The caller drops padding rows, so their output gradient is zero.
  const gd = seeded(bw * heads * n * d, 10).map((v, i) => {
    const w = Math.floor(i / (heads * n * d)), tok = Math.floor(i / d) % n;
    return queries[w * n + tok] ? v : 0;
  });
  const run = (withQueries: boolean) => () => {
    const [q, k, v] = [11, 12, 13].map((s) => tf.tensor4d(seeded(bw * heads * n * d, s), shape));
    const b = tf.tensor3d(seeded(heads * n * n, 14), [heads, n, n]), g = tf.tensor4d(gd, shape);
    const f = (a: tf.Tensor, c: tf.Tensor, e: tf.Tensor, h: tf.Tensor) =>
      windowAttentionCore(
        a as tf.Tensor4D,
        c as tf.Tensor4D,
        e as tf.Tensor4D,
        h as tf.Tensor3D,
        0.5,
        undefined,
        withQueries ? queries : undefined,
      );
    const grads = tf.grads((a: tf.Tensor, c: tf.Tensor, e: tf.Tensor, h: tf.Tensor) =>
      tf.mul(f(a, c, e, h), g)
    )([q, k, v, b]);
    const out = f(q, k, v, b);
    return [tf.mul(out, tf.cast(tf.notEqual(g, 0), "float32")), ...grads, out];
  };
  const full = await onCpu(run(false));
  const skipped = await onCpu(run(true));
  for (let i = 0; i < 5; i++) assert(maxDiff(skipped[i], full[i]) < 1e-6, `output ${i}`);
  // The padding rows were not computed at all.
  const raw = skipped[5];
  raw.forEach((v, i) => {
    const w = Math.floor(i / (heads * n * d)), tok = Math.floor(i / d) % n;
    assert(queries[w * n + tok] ? v !== 0 : v === 0, `row value ${v} at ${i}`);
  });
});
