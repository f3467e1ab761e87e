// Shifted-window attention, softmax(q kᵀ · scale + bias + mask) v per window and head,
// fused in a WebAssembly SIMD kernel (`_attention_wat.ts`) with a recomputing backward pass
// (as flash attention does): no [windows, heads, n, n] tensor is ever materialised, which is
// what made the stock ops slow (batched matMul falls back to a naive loop on wasm,
// broadcast adds are slow on cpu) and too big for the wasm heap. The kernel reads q, k and
// v straight from the qkv projection and writes heads side by side, so the model needs no
// transposes around it. The forward keeps each query row's maximum and 1 / sum; the
// backward recomputes the probabilities from them.
import * as tf from "@tensorflow/tfjs-core";
import { tensorFrom, typedArrayKernels, valuesOf } from "./dispatch.ts";
import { timed } from "./profile.ts";
import { ATTENTION_WAT } from "./_attention_wat.ts";
import { Arena, compileWat } from "./_wasm.ts";
import { type Call, kernelThreads, registerKernels, runParts, split } from "./_pool.ts";

const kernels = await compileWat("attention.wat", ATTENTION_WAT);
const arena = new Arena(kernels.memory);
const fns = registerKernels(
  kernels,
  ["forward", "backward", "forward4", "backward4"] as const,
);

/**
 * Which kernels run: `headSize4` picks the fused kernels for head size 4 (bitwise equal to
 * the general ones; mutable so that tests can compare the two).
 */
export const ATTENTION_KERNELS = { headSize4: true };

/** Zeros standing in for an absent mask (the general kernels read one). */
const noMask = new Map<number, Float32Array>();

/**
 * Copies the inputs every pass needs into the kernel's memory (the mask pinned there
 * across calls: the model passes the same array for every step); returns their offsets.
 * Call before the pass's `arena.reset()`, then `fill` after `commit`.
 */
function stage(
  qkv: Float32Array,
  bias: Float32Array,
  mask: Float32Array | undefined,
  queries: Uint8Array | undefined,
  bw: number,
  n: number,
) {
  let zeros = noMask.get(n);
  if (!mask && !zeros) noMask.set(n, zeros = new Float32Array(n * n));
  const [maskAt] = arena.pin([mask ?? zeros!]);
  arena.reset();
  const at = {
    qkv: arena.alloc(qkv.length * 4),
    bias: arena.alloc(bias.length * 4),
    mask: maskAt,
    queries: arena.alloc(bw * n),
  };
  return {
    at,
    fill() {
      arena.f32(at.qkv, qkv.length).set(qkv);
      arena.f32(at.bias, bias.length).set(bias);
      const qs = arena.u8(at.queries, bw * n);
      if (queries) qs.set(queries);
      else qs.fill(1);
    },
  };
}

/**
 * `softmax(q kᵀ · scale + bias + mask) v` per window and head. `qkv` is the qkv projection
 * `[W·B, n, 3·C]` (channel `s·C + h·d + c` is component s of head h, as MONAI reshapes it),
 * bias `[heads, n, n]` (differentiable), mask `[W, n, n]` (constant; window w of every
 * batch element uses mask w) or none. `queries` (`[W·B · n]`, optional) marks the query
 * tokens whose output is wanted: rows marked 0 (padding, which the caller drops) are left
 * zero and skipped, forward and backward; as keys every token still counts, as in MONAI.
 * Returns `[W·B, n, C]`, heads side by side. Off the CPU backends, the same from stock ops
 * (batched matMul and softmax, every query row computed).
 */
export function windowAttentionCore(
  qkv: tf.Tensor3D,
  bias: tf.Tensor3D,
  heads: number,
  scale: number,
  mask?: Float32Array,
  queries?: Uint8Array,
): tf.Tensor3D {
  const [bw, n, c3] = qkv.shape;
  const ch = c3 / 3, d = ch / heads;
  if (!Number.isInteger(d) || d * heads * 3 !== c3) {
    throw new Error(`qkv has ${c3} channels, not 3 x ${heads} heads x an integer head size`);
  }
  const windows = mask ? mask.length / (n * n) : 1;
  // The kernel takes head sizes in multiples of 4 (SwinUNETR's always are).
  if (!typedArrayKernels() || d % 4 !== 0) return attentionStock(qkv, bias, heads, scale, mask);
  const dims: Dims = { bw, n, c3, ch, d, heads, windows, scale };
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [qkvT, biasT, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    const bs = valuesOf(biasT).slice();
    save([qkvT]);
    const { value, stats } = timed(
      "attention staging",
      () => attentionForward(valuesOf(qkvT), bs, mask, queries, dims),
    );
    return {
      value,
      gradFunc: (dy: tf.Tensor, [saved]: tf.Tensor[]) =>
        timed(
          "attention staging",
          () => attentionBackward(valuesOf(saved), bs, mask, queries, stats, valuesOf(dy), dims),
        ),
    };
  });
  return f(qkv, bias) as tf.Tensor3D;
}

/** Sizes of one attention call. */
interface Dims {
  /** Windows times batch. */
  bw: number;
  /** Tokens per window. */
  n: number;
  /** qkv channels (3 C). */
  c3: number;
  /** C. */
  ch: number;
  /** Head size. */
  d: number;
  heads: number;
  /** Distinct masks. */
  windows: number;
  scale: number;
}

/**
 * The forward kernel over every (window, head), split between the threads: the output
 * tensor and the softmax statistics the backward pass needs.
 */
function attentionForward(
  qkvs: Float32Array,
  bs: Float32Array,
  mask: Float32Array | undefined,
  queries: Uint8Array | undefined,
  { bw, n, c3, ch, d, heads, windows, scale }: Dims,
): { value: tf.Tensor3D; stats: Float32Array } {
  const n4 = (n + 3) & ~3, four = d === 4 && ATTENTION_KERNELS.headSize4;
  const input = stage(qkvs, bs, mask, queries, bw, n);
  // The (window, head) calls split between the threads, each with its own scratch.
  const parts = split(bw * heads, kernelThreads());
  const at = {
    // Rows of padding queries are skipped, so they stay zero.
    out: arena.alloc(bw * n * ch * 4, true),
    stats: arena.alloc(bw * heads * n * 2 * 4),
    scratch: parts.map(() => arena.alloc((2 * d * n4 + n4) * 4)),
  };
  arena.commit();
  input.fill();
  const { qkv: pq, bias: pb, mask: pm, queries: pqs } = input.at;
  timed("attention kernel", () =>
    runParts(parts.map(([from, to], t) => {
      const calls: Call[] = [];
      for (let u = from; u < to; u++) {
        const w = Math.floor(u / heads), h = u % heads;
        const row = w * n * c3 * 4, maskAt = pm + (mask ? (w % windows) * n * n * 4 : 0);
        const q = pq + row + h * d * 4;
        calls.push([
          four ? fns.forward4 : fns.forward,
          q,
          q + ch * 4,
          q + 2 * ch * 4,
          pb + h * n * n * 4,
          maskAt,
          pqs + w * n,
          at.out + (w * n * ch + h * d) * 4,
          at.stats + (w * heads + h) * n * 8,
          at.scratch[t],
          n,
          d,
          c3,
          ch,
          scale,
          ...(four ? [mask ? 1 : 0] : []),
        ]);
      }
      return calls;
    })));
  const stats = arena.f32(at.stats, bw * heads * n * 2).slice();
  const value = tensorFrom<tf.Rank.R3>(
    [bw, n, ch],
    (out) => out.set(arena.f32(at.out, out.length)),
  );
  return { value, stats };
}

/**
 * The backward kernel (recomputing the scores from the forward's softmax statistics):
 * windows split between the threads, each with its own scratch and bias gradient (part
 * 0's is the result; the others are added to it in order). Returns the gradients of qkv
 * and of the bias.
 */
function attentionBackward(
  qkvs: Float32Array,
  bs: Float32Array,
  mask: Float32Array | undefined,
  queries: Uint8Array | undefined,
  stats: Float32Array,
  g: Float32Array,
  { bw, n, c3, ch, d, heads, windows, scale }: Dims,
): [tf.Tensor3D, tf.Tensor3D] {
  const n4 = (n + 3) & ~3, four = d === 4 && ATTENTION_KERNELS.headSize4;
  const input = stage(qkvs, bs, mask, queries, bw, n);
  const parts = split(bw, kernelThreads());
  const at = {
    stats: arena.alloc(stats.length * 4),
    g: arena.alloc(g.length * 4),
    // Rows of padding queries are skipped: their dq stays zero.
    dqkv: arena.alloc(qkvs.length * 4, true),
    dbias: parts.map(() => arena.alloc(bs.length * 4, true)),
    scratch: parts.map(() => arena.alloc((4 * d * n4 + 2 * n4) * 4)),
  };
  arena.commit();
  input.fill();
  arena.f32(at.stats, stats.length).set(stats);
  arena.f32(at.g, g.length).set(g);
  const { qkv: pq, bias: pb, mask: pm, queries: pqs } = input.at;
  timed("attention kernel", () =>
    runParts(parts.map(([from, to], t) => {
      const calls: Call[] = [];
      for (let w = from; w < to; w++) {
        const row = w * n * c3 * 4, maskAt = pm + (mask ? (w % windows) * n * n * 4 : 0);
        for (let h = 0; h < heads; h++) {
          const o = row + h * d * 4, q = pq + o, dq = at.dqkv + o;
          calls.push([
            four ? fns.backward4 : fns.backward,
            q,
            q + ch * 4,
            q + 2 * ch * 4,
            pb + h * n * n * 4,
            maskAt,
            pqs + w * n,
            at.stats + (w * heads + h) * n * 8,
            at.g + (w * n * ch + h * d) * 4,
            dq,
            dq + ch * 4,
            dq + 2 * ch * 4,
            at.dbias[t] + h * n * n * 4,
            at.scratch[t],
            n,
            d,
            c3,
            ch,
            scale,
            ...(four ? [mask ? 1 : 0] : []),
          ]);
        }
      }
      return calls;
    })));
  const dqkv = tensorFrom<tf.Rank.R3>(
    [bw, n, c3],
    (out) => out.set(arena.f32(at.dqkv, out.length)),
  );
  const dbias = tensorFrom<tf.Rank.R3>([heads, n, n], (out) => {
    out.set(arena.f32(at.dbias[0], out.length));
    for (let t = 1; t < parts.length; t++) {
      const part = arena.f32(at.dbias[t], out.length);
      for (let i = 0; i < out.length; i++) out[i] += part[i];
    }
  });
  return [dqkv, dbias];
}

/**
 * Limits of the stock-op fallback: score values per chunk of windows (64 MiB; WebGPU caps
 * a buffer binding at 128 MiB). Mutable, so tests can force several chunks on small inputs.
 */
export const STOCK_ATTENTION_LIMITS = { scoreFloats: 1 << 24 };

/**
 * {@linkcode windowAttentionCore} composed from stock ops, for the GPU and native backends,
 * in chunks of windows so that no score tensor outgrows a WebGPU buffer binding (tfjs'
 * webgpu backend returned wrong values, not an error, for a 353 MB one).
 */
function attentionStock(
  qkv: tf.Tensor3D,
  bias: tf.Tensor3D,
  heads: number,
  scale: number,
  mask?: Float32Array,
): tf.Tensor3D {
  const [bw, n, c3] = qkv.shape;
  const d = c3 / 3 / heads;
  const windows = mask ? mask.length / (n * n) : 1;
  const per = Math.max(1, Math.floor(STOCK_ATTENTION_LIMITS.scoreFloats / (heads * n * n)));
  const chunks: tf.Tensor[] = [];
  for (let a = 0; a < bw; a += per) {
    const m = Math.min(per, bw - a);
    const part = bw <= per ? qkv : tf.slice(qkv, [a, 0, 0], [m, n, c3]);
    const [q, k, v] = tf.unstack(
      tf.transpose(tf.reshape(part, [m, n, 3, heads, d]), [2, 0, 3, 1, 4]),
    );
    let s = tf.add(tf.mul(tf.matMul(q, k, false, true), scale), bias);
    if (mask) {
      // Window a + i uses mask (a + i) mod W.
      const rows = new Float32Array(m * n * n);
      for (let i = 0; i < m; i++) {
        const w = (a + i) % windows;
        rows.set(mask.subarray(w * n * n, (w + 1) * n * n), i * n * n);
      }
      s = tf.add(s, tf.tensor4d(rows, [m, 1, n, n]));
    }
    const out = tf.matMul(tf.softmax(s), v); // [m, heads, n, d]
    chunks.push(tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [m, n, c3 / 3]));
  }
  return (chunks.length === 1 ? chunks[0] : tf.concat(chunks, 0)) as tf.Tensor3D;
}
