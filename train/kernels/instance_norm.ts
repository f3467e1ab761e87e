// Instance normalisation of a channels-last volume, forward and backward, statistics in
// float64: WebAssembly SIMD kernels (`_norm_wat.ts`) on every core when the channels come
// in fours (SwinUNETR's always do), else typed-array loops with the same arithmetic. The
// stock composition (two-level means, square, sub, div and their gradients) took about
// 0.2 s per call at 2 x 64³ x 12 on wasm, the typed-array loops a third of it.
import * as tf from "@tensorflow/tfjs-core";
import { tensorFrom, typedArrayKernels, valuesOf } from "./dispatch.ts";
import { timed } from "./profile.ts";
import { NORM_WAT } from "./_norm_wat.ts";
import { Arena, compileWat } from "./_wasm.ts";
import { type Call, kernelThreads, registerKernels, runParts, split } from "./_pool.ts";

const kernels = await compileWat("norm.wat", NORM_WAT);
const arena = new Arena(kernels.memory);
const fns = registerKernels(kernels, ["forward", "backward"] as const);

/**
 * Which implementation runs: `wasm` the WebAssembly kernels (when the channels come in
 * fours), else the typed-array loops; bitwise the same (mutable for tests).
 */
export const INSTANCE_NORM_KERNELS = { wasm: true };

/**
 * `InstanceNorm3d(affine=False)` for `[B, D, H, W, C]`: per sample and channel,
 * `(x - mean) / sqrt(var + eps)` over the spatial axes (biased variance, as PyTorch). Off
 * the CPU backends, composed from stock ops (means in two levels, rows of a slice then
 * slices, which keeps float32 sums over 64³ voxels within 1e-6 relative).
 */
export function instanceNormChannelsLast(x: tf.Tensor5D, eps: number): tf.Tensor5D {
  const [b, , , , c] = x.shape;
  if (!typedArrayKernels()) {
    const mean = (t: tf.Tensor) => tf.mean(tf.mean(t, [2, 3], true), 1, true);
    const centred = tf.sub(x, mean(x));
    return tf.div(centred, tf.sqrt(tf.add(mean(tf.square(centred)), eps))) as tf.Tensor5D;
  }
  const wasm = INSTANCE_NORM_KERNELS.wasm && c % 4 === 0;
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xIn, save] = args as [tf.Tensor5D, tf.GradSaveFunc];
    const inv = new Float64Array(b * c);
    const value = timed(
      "instance norm",
      () => wasm ? forwardWasm(valuesOf(xIn), xIn.shape, eps, inv) : forwardLoops(xIn, eps, inv),
    );
    save([value]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, [y]: tf.Tensor[]) => [
        timed(
          "instance norm",
          () =>
            wasm
              ? backwardWasm(valuesOf(dy), valuesOf(y), xIn.shape, inv)
              : backwardLoops(dy, y, inv),
        ),
      ],
    };
  });
  return f(x) as tf.Tensor5D;
}

/**
 * The kernel calls of one pass: (sample, channel quad) pairs split between the threads,
 * each sample's share one call over a channel range. Each channel's sums run over its
 * voxels in order on one thread, so any split gives the same values.
 */
function parts(b: number, c: number, call: (s: number, c0: number, c1: number) => Call): Call[][] {
  const quads = c / 4;
  return split(b * quads, kernelThreads()).map(([u0, u1]) => {
    const calls: Call[] = [];
    for (let s = Math.floor(u0 / quads); s * quads < u1; s++) {
      const q0 = Math.max(u0, s * quads) - s * quads,
        q1 = Math.min(u1, (s + 1) * quads) - s * quads;
      calls.push(call(s, 4 * q0, 4 * q1));
    }
    return calls;
  });
}

function forwardWasm(xs: Float32Array, shape: number[], eps: number, inv: Float64Array) {
  const [b, d, h, w, c] = shape, voxels = d * h * w, size = xs.length;
  arena.reset();
  const at = {
    x: arena.alloc(size * 4),
    y: arena.alloc(size * 4),
    mean: arena.alloc(b * c * 8),
    inv: arena.alloc(b * c * 8),
  };
  arena.commit();
  arena.f32(at.x, size).set(xs);
  timed("instance norm kernel", () =>
    runParts(parts(b, c, (s, c0, c1) => [
      fns.forward,
      at.x + s * voxels * c * 4,
      at.y + s * voxels * c * 4,
      voxels,
      c,
      c0,
      c1,
      at.mean + s * c * 8,
      at.inv + s * c * 8,
      eps,
    ])));
  inv.set(arena.f64(at.inv, b * c));
  return tensorFrom<tf.Rank.R5>([b, d, h, w, c], (out) => out.set(arena.f32(at.y, size)));
}

function backwardWasm(g: Float32Array, ys: Float32Array, shape: number[], inv: Float64Array) {
  const [b, d, h, w, c] = shape, voxels = d * h * w, size = g.length;
  arena.reset();
  const at = {
    g: arena.alloc(size * 4),
    y: arena.alloc(size * 4),
    dx: arena.alloc(size * 4),
    sum: arena.alloc(b * c * 8),
    dot: arena.alloc(b * c * 8),
    inv: arena.alloc(b * c * 8),
  };
  arena.commit();
  arena.f32(at.g, size).set(g);
  arena.f32(at.y, size).set(ys);
  arena.f64(at.inv, b * c).set(inv);
  timed("instance norm kernel", () =>
    runParts(parts(b, c, (s, c0, c1) => [
      fns.backward,
      at.g + s * voxels * c * 4,
      at.y + s * voxels * c * 4,
      at.dx + s * voxels * c * 4,
      voxels,
      c,
      c0,
      c1,
      at.sum + s * c * 8,
      at.dot + s * c * 8,
      at.inv + s * c * 8,
    ])));
  return tensorFrom<tf.Rank.R5>([b, d, h, w, c], (out) => out.set(arena.f32(at.dx, size)));
}

function forwardLoops(x: tf.Tensor5D, eps: number, inv: Float64Array) {
  const [b, d, h, w, c] = x.shape, voxels = d * h * w;
  const mean = new Float64Array(c), sq = new Float64Array(c);
  return tensorFrom<tf.Rank.R5>(x.shape, (out) => {
    // Read only now: the output's allocation may have moved the backend's memory.
    const xs = valuesOf(x);
    for (let s = 0; s < b; s++) {
      const base = s * voxels * c;
      mean.fill(0);
      for (let v = 0, o = base; v < voxels; v++, o += c) {
        for (let i = 0; i < c; i++) mean[i] += xs[o + i];
      }
      for (let i = 0; i < c; i++) mean[i] /= voxels;
      sq.fill(0);
      for (let v = 0, o = base; v < voxels; v++, o += c) {
        for (let i = 0; i < c; i++) sq[i] += (xs[o + i] - mean[i]) ** 2;
      }
      for (let i = 0; i < c; i++) inv[s * c + i] = 1 / Math.sqrt(sq[i] / voxels + eps);
      for (let v = 0, o = base; v < voxels; v++, o += c) {
        for (let i = 0; i < c; i++) out[o + i] = (xs[o + i] - mean[i]) * inv[s * c + i];
      }
    }
  });
}

/** dx = inv (dy - mean(dy) - x̂ mean(dy x̂)), means over the voxels. */
function backwardLoops(dy: tf.Tensor, y: tf.Tensor, inv: Float64Array) {
  const [b, d, h, w, c] = y.shape, voxels = d * h * w;
  const sum = new Float64Array(c), dot = new Float64Array(c);
  return tensorFrom<tf.Rank.R5>(y.shape, (dx) => {
    const g = valuesOf(dy), out = valuesOf(y);
    for (let s = 0; s < b; s++) {
      const base = s * voxels * c;
      sum.fill(0);
      dot.fill(0);
      for (let v = 0, o = base; v < voxels; v++, o += c) {
        for (let i = 0; i < c; i++) {
          sum[i] += g[o + i];
          dot[i] += g[o + i] * out[o + i];
        }
      }
      for (let i = 0; i < c; i++) {
        sum[i] /= voxels;
        dot[i] /= voxels;
      }
      for (let v = 0, o = base; v < voxels; v++, o += c) {
        for (let i = 0; i < c; i++) {
          dx[o + i] = inv[s * c + i] * (g[o + i] - sum[i] - out[o + i] * dot[i]);
        }
      }
    }
  });
}
