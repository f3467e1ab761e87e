// 3-D convolution, stride 1, 'same' zero padding, as WebAssembly SIMD kernels
// (`_conv_wat.ts`) with a hand-written gradient (tf.customGrad).
//
// Measured here (2 x 64³ x 12 -> 12): tfjs' stock conv3d takes 5 s forward on cpu and 15 s
// on wasm, where its input gradient is also wrong. im2col + the backend's 2-D matMul took
// 1.0 s forward and 3.8 s with both gradients, mostly building and transposing the column
// matrix; the direct kernels need no column matrix at all. The input gradient is the same
// convolution applied to the output gradient with flipped, transposed weights.
import * as tf from "@tensorflow/tfjs-core";
import { tensorFrom, typedArrayKernels, valuesOf } from "./dispatch.ts";
import { timed } from "./profile.ts";
import { CONV_WAT } from "./_conv_wat.ts";
import { Arena, compileWat } from "./_wasm.ts";
import { kernelThreads, registerKernels, runParts, split } from "./_pool.ts";

const kernels = await compileWat("conv.wat", CONV_WAT);
const arena = new Arena(kernels.memory);
const fns = registerKernels(
  kernels,
  ["forward", "weightGrad", "weightGradPadded"] as const,
);

/**
 * Runs the forward kernel (x, w, y, B, D, H, W, Ci, Co, k) over every output row, the
 * rows split between the threads (each output row is computed alike on any thread).
 */
function forwardKernel(...args: number[]): void {
  const [b, d, h] = args.slice(3, 6);
  const rows = split(b * d * h, kernelThreads());
  timed(
    "conv3d kernel",
    () => runParts(rows.map(([r0, r1]) => [[fns.forward, ...args, r0, r1, 0, 0]])),
  );
}

/**
 * Runs the weight-gradient kernel over every voxel, the k³·Ci weight rows split between
 * the threads: each row sums the voxels in the same order as on one thread.
 */
function weightGradKernel(padded: boolean, ...args: number[]): void {
  const [b, d, h, , cin, , k] = args.slice(3, 10);
  const taps = split(k ** 3 * cin, kernelThreads());
  const fn = padded ? fns.weightGradPadded : fns.weightGrad;
  timed(
    "conv3d weight-gradient kernel",
    () => runParts(taps.map(([u0, u1]) => [[fn, ...args, 0, b * d * h, u0, u1]])),
  );
}

const ceil4 = (n: number) => (n + 3) & ~3;

/**
 * Writes `[B, D, H, W, C]` values into the interior of `[B, D+2r, H+2r, W+2r, C]` and zeros
 * around them, in one pass over the destination (no separate zero fill).
 */
function padInto(src: Float32Array, dst: Float32Array, shape: number[], r: number): void {
  const [b, d, h, w, c] = shape;
  const hp = h + 2 * r, wp = w + 2 * r, dp = d + 2 * r, run = w * c;
  const plane = hp * wp * c, row = wp * c, edge = r * c;
  for (let i = 0; i < b; i++) {
    const slab = i * dp * plane;
    dst.fill(0, slab, slab + r * plane);
    for (let z = 0; z < d; z++) {
      const at = slab + (z + r) * plane;
      dst.fill(0, at, at + r * row);
      for (let y = 0; y < h; y++) {
        const to = at + (y + r) * row, from = ((i * d + z) * h + y) * run;
        dst.fill(0, to, to + edge);
        dst.set(src.subarray(from, from + run), to + edge);
        dst.fill(0, to + edge + run, to + row);
      }
      dst.fill(0, at + (h + r) * row, at + plane);
    }
    dst.fill(0, slab + (d + r) * plane, slab + dp * plane);
  }
}

/** Copies `[rows, from]`-strided values into `[rows, to]` (to <= from), dropping the rest. */
function narrowInto(src: Float32Array, dst: Float32Array, rows: number, from: number, to: number) {
  if (from === to) {
    dst.set(src.subarray(0, rows * to));
    return;
  }
  for (let i = 0; i < rows; i++) dst.set(src.subarray(i * from, i * from + to), i * to);
}

/** Copies `[rows, from]` values into `[rows, to]`-strided memory (to >= from; the rest stays). */
function widenInto(src: Float32Array, dst: Float32Array, rows: number, from: number, to: number) {
  if (from === to) {
    dst.set(src.subarray(0, rows * to));
    return;
  }
  for (let i = 0; i < rows; i++) dst.set(src.subarray(i * from, (i + 1) * from), i * to);
}

/** The padded input's floats: `[B, D+2r, H+2r, W+2r, C]`. */
const paddedSize = ([b, d, h, w, c]: number[], r: number) =>
  b * (d + 2 * r) * (h + 2 * r) * (w + 2 * r) * c;

/**
 * y = conv(x, w) for x `[B, D, H, W, cin]` (any readable array: a view of the backend's
 * memory is copied straight into the kernel's), w `[k³, cin, cout]`: a new tensor.
 */
function convolve(
  xs: Float32Array,
  ws: Float32Array,
  shape: number[],
  k: number,
  cout: number,
): tf.Tensor5D {
  const [b, d, h, wd, cin] = shape, r = (k - 1) / 2, cop = ceil4(cout), voxels = b * d * h * wd;
  arena.reset();
  const at = {
    x: arena.alloc(paddedSize(shape, r) * 4),
    w: arena.alloc(k ** 3 * cin * cop * 4, cop > cout),
    y: arena.alloc(voxels * cop * 4),
  };
  arena.commit();
  padInto(xs, arena.f32(at.x, paddedSize(shape, r)), shape, r);
  widenInto(ws, arena.f32(at.w, k ** 3 * cin * cop), k ** 3 * cin, cout, cop);
  forwardKernel(at.x, at.w, at.y, b, d, h, wd, cin, cop, k);
  return tensorFrom<tf.Rank.R5>(
    [b, d, h, wd, cout],
    (out) => narrowInto(arena.f32(at.y, voxels * cop), out, voxels, cop, cout),
  );
}

/**
 * `y = conv3d(x, w)` for x `[B, D, H, W, C_in]`, w `[k, k, k, C_in, C_out]` (odd k),
 * stride 1, 'same' padding, no bias; equal to `tf.conv3d(x, w, 1, "same")`, with the
 * gradients of both inputs. Stock `tf.conv3d` off the CPU backends.
 */
export function conv3dSame(x: tf.Tensor5D, w: tf.Tensor5D): tf.Tensor5D {
  if (!typedArrayKernels()) return conv3dStock(x, w, 1);
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xIn, wIn, save] = args as [tf.Tensor5D, tf.Tensor5D, tf.GradSaveFunc];
    const shape = xIn.shape;
    const [k, , , , cout] = wIn.shape;
    if (k % 2 !== 1) throw new RangeError(`conv3dSame needs an odd kernel, got ${k}`);
    const ws = valuesOf(wIn).slice();
    save([xIn]);
    return {
      value: timed("conv3d staging", () => convolve(valuesOf(xIn), ws, shape, k, cout)),
      gradFunc: (dy: tf.Tensor, [xs]: tf.Tensor[]) =>
        timed(
          "conv3d staging",
          () => gradients(valuesOf(xs), ws, valuesOf(dy), shape, k, cout),
        ),
    };
  });
  return f(x, w) as tf.Tensor5D;
}

/**
 * Both gradients of the convolution (x `[B, D, H, W, cin]`, kernel edge k) from the output
 * gradient dy, in one arena: dx = conv(dy, w flipped in space, in and out channels
 * swapped); dw[tap, ci, co] = sum_v xp[v + tap, ci] dy[v, co].
 */
function gradients(
  xs: Float32Array,
  ws: Float32Array,
  dys: Float32Array,
  shape: number[],
  k: number,
  cout: number,
): [tf.Tensor5D, tf.Tensor5D] {
  const [b, d, h, wd, cin] = shape;
  const taps = k ** 3, voxels = b * d * h * wd, r = (k - 1) / 2;
  const cop = ceil4(cout), cip = ceil4(cin), dyShape = [b, d, h, wd, cout];
  arena.reset();
  const at = {
    dyp: arena.alloc(paddedSize(dyShape, r) * 4),
    wt: arena.alloc(taps * cout * cip * 4, cip > cin),
    dx: arena.alloc(voxels * cip * 4),
    x: arena.alloc(paddedSize(shape, r) * 4),
    // The weight gradient reads dy from its padded copy when no channel must be added.
    dy: cop === cout ? 0 : arena.alloc(voxels * cop * 4, true),
    dw: arena.alloc(taps * cin * cop * 4, true),
  };
  arena.commit();
  padInto(dys, arena.f32(at.dyp, paddedSize(dyShape, r)), dyShape, r);
  const wt = arena.f32(at.wt, taps * cout * cip);
  for (let t = 0; t < taps; t++) {
    const from = (taps - 1 - t) * cin * cout, to = t * cout * cip;
    for (let i = 0; i < cin; i++) {
      for (let o = 0; o < cout; o++) wt[to + o * cip + i] = ws[from + i * cout + o];
    }
  }
  padInto(xs, arena.f32(at.x, paddedSize(shape, r)), shape, r);
  if (at.dy) widenInto(dys, arena.f32(at.dy, voxels * cop), voxels, cout, cop);
  forwardKernel(at.dyp, at.wt, at.dx, b, d, h, wd, cout, cip, k);
  weightGradKernel(!at.dy, at.x, at.dw, at.dy || at.dyp, b, d, h, wd, cin, cop, k);
  const dx = tensorFrom<tf.Rank.R5>(
    shape,
    (out) => narrowInto(arena.f32(at.dx, voxels * cip), out, voxels, cip, cin),
  );
  const dw = tensorFrom<tf.Rank.R5>(
    [k, k, k, cin, cout],
    (out) => narrowInto(arena.f32(at.dw, taps * cin * cop), out, taps * cin, cop, cout),
  );
  return [dx, dw];
}

/**
 * `tf.conv3d(x, w, stride, "valid")` with a kernel edge equal to `stride` (the patch
 * embedding): stock on the CPU backends, {@linkcode conv3dStock} elsewhere.
 */
export function conv3dPatches(x: tf.Tensor5D, w: tf.Tensor5D, stride: number): tf.Tensor5D {
  return typedArrayKernels() ? tf.conv3d(x, w, stride, "valid") : conv3dStock(x, w, stride);
}

/**
 * `tf.conv3d(x, w, stride, pad)` in stock ops, for `stride` 1 with 'same' padding (odd k)
 * or `stride` equal to the kernel edge without padding (the patch embedding), with the
 * weight gradient as one matMul per kernel tap: sum over voxels of the tap's shifted input
 * times the output gradient.
 *
 * Why not the stock weight gradient: tfjs-webgpu's Conv3DBackpropFilterV2 (4.22) runs one
 * thread per weight that loops over every voxel of the batch, and on this machine's
 * adapter it returns wrong values once the batch holds more than about 2 x 32³ voxels
 * (a 1 x 1 x 1 filter's gradient over 5 x 32³ voxels is off by 100%). The matMuls are
 * what a GPU does best. The forward and input gradient stay stock (checked against cpu).
 */
export function conv3dStock(x: tf.Tensor5D, w: tf.Tensor5D, stride: number): tf.Tensor5D {
  const [k, , , cin, cout] = w.shape;
  const same = stride === 1;
  if (same ? k % 2 !== 1 : k !== stride) {
    throw new RangeError(`conv3dStock: kernel ${k} with stride ${stride} is not supported`);
  }
  const pad = same ? "same" : "valid";
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xIn, wIn, save] = args as [tf.Tensor5D, tf.Tensor5D, tf.GradSaveFunc];
    save([xIn, wIn]);
    return {
      value: tf.conv3d(xIn, wIn, stride, pad),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xv, wv] = saved as [tf.Tensor5D, tf.Tensor5D];
        const dy5 = dy as tf.Tensor5D;
        const dx = tf.conv3dTranspose(dy5, wv, xv.shape, stride, pad);
        const [b, d, h, wd] = dy5.shape;
        // No padded copy of x: tfjs-webgpu's rank-5 pad (4.22) fails on Deno's WebGPU and
        // takes every pending result with it. With 'same' padding, tap t reads input voxel
        // v + t - r, so each tap pairs the in-range part of x with that of dy.
        const r = same ? (k - 1) / 2 : 0;
        const out = [d, h, wd];
        const taps: tf.Tensor2D[] = [];
        for (let i = 0; i < k; i++) {
          for (let j = 0; j < k; j++) {
            for (let l = 0; l < k; l++) {
              taps.push(tf.tidy(() => {
                let xs: tf.Tensor, ys: tf.Tensor = dy5;
                if (same) {
                  const o = [i - r, j - r, l - r];
                  const n = out.map((e, a) => e - Math.abs(o[a]));
                  if (n.some((e) => e <= 0)) return tf.zeros([cin, cout]);
                  xs = tf.slice(xv, [0, ...o.map((e) => Math.max(0, e)), 0], [b, ...n, cin]);
                  ys = tf.slice(dy5, [0, ...o.map((e) => Math.max(0, -e)), 0], [b, ...n, cout]);
                } else {
                  const begin = [i, j, l];
                  const end = begin.map((v, a) => v + (out[a] - 1) * stride + 1);
                  const steps = [1, stride, stride, stride, 1];
                  xs = tf.stridedSlice(xv, [0, ...begin, 0], [b, ...end, cin], steps);
                }
                const rows = xs.size / cin;
                return tf.matMul(
                  tf.reshape(xs, [rows, cin]) as tf.Tensor2D,
                  tf.reshape(ys, [rows, cout]) as tf.Tensor2D,
                  true,
                  false,
                );
              }));
            }
          }
        }
        const dw = tf.reshape(tf.stack(taps), [k, k, k, cin, cout]);
        tf.dispose(taps);
        return [dx, dw];
      },
    };
  });
  return f(x, w) as tf.Tensor5D;
}
