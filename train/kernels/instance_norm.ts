// Instance normalisation of a channels-last volume, forward and backward, statistics in
// float64: WebAssembly SIMD kernels (`_norm_wat.ts`) on every core when the channels come
// in fours (SwinUNETR's always do), else typed-array loops with the same arithmetic. The
// stock composition (two-level means, square, sub, div and their gradients) took about
// 0.2 s per call at 2 x 64³ x 12 on wasm, the typed-array loops a third of it.
import * as tf from "@tensorflow/tfjs-core";
import { recordingGradients, tensorFrom, typedArrayKernels, valuesOf } from "./dispatch.ts";
import { timed } from "./profile.ts";
import { NORM_WAT } from "./_norm_wat.ts";
import { Arena, compileWat } from "./_wasm.ts";
import { type Call, kernelThreads, registerKernels, runParts, split } from "./_pool.ts";

const kernels = await compileWat("norm.wat", NORM_WAT);
const arena = new Arena(kernels.memory);
const fns = registerKernels(
  kernels,
  ["forward", "backward", "forwardAct", "backwardAct"] as const,
);

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

/**
 * `LeakyReLU(InstanceNorm3d(x) + residual)` (the residual optional), MONAI's norm and
 * activation in `UnetResBlock`, as one kernel on every core when the channels come in
 * fours: bitwise equal to `tf.leakyRelu(tf.add(instanceNormChannelsLast(x), residual))` on
 * the same backend (tfjs-wasm multiplies by the slope in float32, tfjs-cpu in float64; the
 * gradient is tfjs' `where(pre > 0, dz, dz * slope)`), without their passes over the data
 * on the calling thread. Elsewhere it is that composition.
 */
export function instanceNormLeakyRelu(
  x: tf.Tensor5D,
  eps: number,
  slope: number,
  residual?: tf.Tensor5D,
): tf.Tensor5D {
  const [b, , , , c] = x.shape;
  if (!typedArrayKernels() || !INSTANCE_NORM_KERNELS.wasm || c % 4 !== 0) {
    const y = instanceNormChannelsLast(x, eps);
    const pre = residual ? tf.add(y, residual) : y;
    // Flat: the LeakyReLU gradient is a `where`, which tfjs-webgpu does not run at rank 5.
    return tf.reshape(tf.leakyRelu(tf.reshape(pre, [-1]), slope), x.shape);
  }
  const wide = tf.getBackend() === "cpu";
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const xIn = args[0] as tf.Tensor5D;
    const rIn = residual ? args[1] as tf.Tensor5D : undefined;
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const inv = new Float64Array(b * c);
    const { z, y } = timed("instance norm", () =>
      forwardActWasm(
        valuesOf(xIn),
        rIn && valuesOf(rIn),
        xIn.shape,
        { eps, slope, wide, keepNormed: recordingGradients() },
        inv,
      ));
    if (y) save([y, z]);
    return {
      value: z,
      gradFunc: (dz: tf.Tensor, [ys, zs]: tf.Tensor[]) => {
        const [dx, dres] = timed("instance norm", () =>
          backwardActWasm(
            valuesOf(dz),
            valuesOf(zs),
            valuesOf(ys),
            xIn.shape,
            slope,
            residual !== undefined,
            inv,
          ));
        return dres ? [dx, dres] : [dx];
      },
    };
  });
  return (residual ? f(x, residual) : f(x)) as tf.Tensor5D;
}

function forwardActWasm(
  xs: Float32Array,
  rs: Float32Array | undefined,
  shape: number[],
  o: { eps: number; slope: number; wide: boolean; keepNormed: boolean },
  inv: Float64Array,
): { z: tf.Tensor5D; y?: tf.Tensor5D } {
  const [b, d, h, w, c] = shape, voxels = d * h * w, size = xs.length;
  arena.reset();
  const at = {
    x: arena.alloc(size * 4),
    y: o.keepNormed ? arena.alloc(size * 4) : 0,
    z: arena.alloc(size * 4),
    res: rs ? arena.alloc(size * 4) : 0,
    mean: arena.alloc(b * c * 8),
    inv: arena.alloc(b * c * 8),
  };
  arena.commit();
  arena.f32(at.x, size).set(xs);
  if (rs) arena.f32(at.res, size).set(rs);
  const at0 = (p: number, s: number) => (p ? p + s * voxels * c * 4 : 0);
  timed("instance norm kernel", () =>
    runParts(parts(b, c, (s, c0, c1) => [
      fns.forwardAct,
      at0(at.x, s),
      at0(at.y, s),
      at0(at.z, s),
      at0(at.res, s),
      voxels,
      c,
      c0,
      c1,
      at.mean + s * c * 8,
      at.inv + s * c * 8,
      o.eps,
      o.slope,
      o.wide ? 1 : 0,
    ])));
  inv.set(arena.f64(at.inv, b * c));
  const z = tensorFrom<tf.Rank.R5>(shape, (out) => out.set(arena.f32(at.z, size)));
  const y = o.keepNormed
    ? tensorFrom<tf.Rank.R5>(shape, (out) => out.set(arena.f32(at.y, size)))
    : undefined;
  return { z, y };
}

function backwardActWasm(
  g: Float32Array,
  zs: Float32Array,
  ys: Float32Array,
  shape: number[],
  slope: number,
  residual: boolean,
  inv: Float64Array,
): [tf.Tensor5D, tf.Tensor5D | undefined] {
  const [b, d, h, w, c] = shape, voxels = d * h * w, size = g.length;
  arena.reset();
  const at = {
    g: arena.alloc(size * 4),
    z: arena.alloc(size * 4),
    y: arena.alloc(size * 4),
    dx: arena.alloc(size * 4),
    dres: residual ? arena.alloc(size * 4) : 0,
    sum: arena.alloc(b * c * 8),
    dot: arena.alloc(b * c * 8),
    inv: arena.alloc(b * c * 8),
  };
  arena.commit();
  arena.f32(at.g, size).set(g);
  arena.f32(at.z, size).set(zs);
  arena.f32(at.y, size).set(ys);
  arena.f64(at.inv, b * c).set(inv);
  const at0 = (p: number, s: number) => (p ? p + s * voxels * c * 4 : 0);
  timed("instance norm kernel", () =>
    runParts(parts(b, c, (s, c0, c1) => [
      fns.backwardAct,
      at0(at.g, s),
      at0(at.z, s),
      at0(at.y, s),
      at0(at.dx, s),
      at0(at.dres, s),
      voxels,
      c,
      c0,
      c1,
      at.sum + s * c * 8,
      at.dot + s * c * 8,
      at.inv + s * c * 8,
      slope,
    ])));
  const dx = tensorFrom<tf.Rank.R5>(shape, (out) => out.set(arena.f32(at.dx, size)));
  const dres = residual
    ? tensorFrom<tf.Rank.R5>(shape, (out) => out.set(arena.f32(at.dres, size)))
    : undefined;
  return [dx, dres];
}
