// x·w + b with a hand-written gradient. On wasm: WebAssembly SIMD kernels on every core
// (`_dense_wat.ts`) that sum in tfjs-wasm's (XNNPACK's) order, so they equal its matMul
// bitwise; the bias added after the product, as before. On cpu (whose matMul sums in
// float64 blocks) and where the output columns do not come in fours: plain 2-D matMuls, as
// tfjs' stock gradient on wasm runs transposed matMuls, which fall back to a naive loop
// (65536 x 48 · (12 x 48)ᵀ: 41 ms against 7 ms after an explicit transpose), and its bias
// gradient is a Sum over rows (18 ms against 1 ms as ones(1, N)·dy).
import * as tf from "@tensorflow/tfjs-core";
import { tensorFrom, typedArrayKernels, valuesOf } from "./dispatch.ts";
import { timed } from "./profile.ts";
import { DENSE_WAT } from "./_dense_wat.ts";
import { Arena, compileWat } from "./_wasm.ts";
import { type Call, kernelThreads, registerKernels, runParts, split } from "./_pool.ts";

const kernels = await compileWat("dense.wat", DENSE_WAT);
const arena = new Arena(kernels.memory);
const fns = registerKernels(kernels, ["rows", "columns", "colsum"] as const);

/** Which implementation runs on wasm: `wasm` the kernels, else matMuls (mutable for tests). */
export const DENSE_KERNELS = { wasm: true };

/**
 * `x·w (+ b)` for x `[N, in]`, w `[in, out]`, b `[out]`, differentiable in all three (the
 * stock ops and gradients off the CPU backends).
 */
export function dense(x: tf.Tensor2D, w: tf.Tensor2D, b?: tf.Tensor1D): tf.Tensor2D {
  if (!typedArrayKernels()) {
    return (b ? tf.add(tf.matMul(x, w), b) : tf.matMul(x, w)) as tf.Tensor2D;
  }
  const [, inputs] = x.shape, [, outputs] = w.shape;
  const kernel = DENSE_KERNELS.wasm && tf.getBackend() === "wasm" && outputs % 4 === 0 &&
    inputs % 4 === 0;
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xIn, wIn] = args as tf.Tensor2D[];
    const bIn = b ? args[2] as tf.Tensor1D : undefined;
    const save = args[args.length - 1] as tf.GradSaveFunc;
    save([xIn, wIn]);
    if (kernel) {
      return {
        value: timed("dense", () => forwardKernel(xIn, wIn, bIn)),
        gradFunc: (dy: tf.Tensor, [xs, ws]: tf.Tensor[]) =>
          timed("dense", () => backwardKernel(xs as tf.Tensor2D, ws as tf.Tensor2D, dy, !!b)),
      };
    }
    const product = tf.matMul(xIn, wIn);
    const value = bIn ? tf.tidy(() => tf.add(product, bIn)) : product;
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

/** y = x w (+ b), rows split between the threads. */
function forwardKernel(x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor | undefined): tf.Tensor2D {
  const [rows, k] = x.shape, [, n] = w.shape;
  arena.reset();
  const at = {
    x: arena.alloc(rows * k * 4),
    w: arena.alloc(k * n * 4),
    b: b ? arena.alloc(n * 4) : 0,
    y: arena.alloc(rows * n * 4),
  };
  arena.commit();
  arena.f32(at.x, rows * k).set(valuesOf(x));
  arena.f32(at.w, k * n).set(valuesOf(w));
  if (b) arena.f32(at.b, n).set(valuesOf(b));
  timed("dense kernel", () =>
    runParts(
      split(rows, kernelThreads()).map((
        [m0, m1],
      ) => [[fns.rows, at.x, at.w, at.y, at.b, m0, m1, k, n]]),
    ));
  return tensorFrom<tf.Rank.R2>([rows, n], (out) => out.set(arena.f32(at.y, rows * n)));
}

/**
 * dx = dy wᵀ (rows split), dw = xᵀ dy (dw's rows split), db = the column sums of dy (on
 * the last thread, whose shares are no larger than the others').
 */
function backwardKernel(
  x: tf.Tensor2D,
  w: tf.Tensor2D,
  dy: tf.Tensor,
  withBias: boolean,
): tf.Tensor[] {
  const [rows, k] = x.shape, [, n] = w.shape;
  arena.reset();
  const at = {
    x: arena.alloc(rows * k * 4),
    wt: arena.alloc(k * n * 4),
    g: arena.alloc(rows * n * 4),
    dx: arena.alloc(rows * k * 4),
    dw: arena.alloc(k * n * 4),
    db: withBias ? arena.alloc(n * 4) : 0,
  };
  arena.commit();
  arena.f32(at.x, rows * k).set(valuesOf(x));
  arena.f32(at.g, rows * n).set(valuesOf(dy));
  const ws = valuesOf(w), wt = arena.f32(at.wt, k * n);
  for (let i = 0; i < k; i++) for (let j = 0; j < n; j++) wt[j * k + i] = ws[i * n + j];
  const threads = kernelThreads();
  const rowParts = split(rows, threads), dwParts = split(k, threads);
  const parts = Array.from({ length: Math.max(rowParts.length, dwParts.length) }, (_, t) => {
    const calls: Call[] = [];
    if (rowParts[t]) calls.push([fns.rows, at.g, at.wt, at.dx, 0, ...rowParts[t], n, k]);
    if (dwParts[t]) calls.push([fns.columns, at.x, at.g, at.dw, ...dwParts[t], rows, k, n]);
    return calls;
  });
  if (withBias) parts[parts.length - 1].push([fns.colsum, at.g, at.db, rows, n]);
  timed("dense kernel", () => runParts(parts));
  const dx = tensorFrom<tf.Rank.R2>([rows, k], (out) => out.set(arena.f32(at.dx, rows * k)));
  const dw = tensorFrom<tf.Rank.R2>([k, n], (out) => out.set(arena.f32(at.dw, k * n)));
  if (!withBias) return [dx, dw];
  return [dx, dw, tensorFrom<tf.Rank.R1>([n], (out) => out.set(arena.f32(at.db, n)))];
}
