// MONAI's SwinTransformer (use_v2=True) in channels-last layout: patch embedding, four
// stages of shifted-window blocks each preceded by a residual conv block, patch merging,
// and the per-stage layer norm of the outputs.
import * as tf from "@tensorflow/tfjs-core";
import type { SwinConfig } from "./config.ts";
import type { Params } from "./params.ts";
import { dropout, dropPath, gelu, layerNorm, linear, resBlock } from "./layers.ts";
import { windowAttentionCore } from "../kernels/window_attention.ts";
import { gatherBias, gatherRows } from "../kernels/gather_rows.ts";
import { conv3dPatches } from "../kernels/conv3d.ts";
import {
  attentionMask,
  mergeIndex,
  relativePositionIndex,
  windowAndShift,
  windowIndex,
} from "./_windows.ts";

/** Options of a forward pass. */
export interface ForwardOptions {
  /** Training mode (dropout and drop path active). @default {false} */
  training?: boolean;
  /**
   * Called after the patch embedding and after each stage with a label and the stage's
   * output (for per-stage timing; reading the tensor there waits for the backend).
   */
  trace?: (label: string, x: tf.Tensor) => void;
}

// Index arrays depend only on shapes; a training run reuses a few shapes for every step,
// so each is computed once (they cost about 0.5 s per 64³ step otherwise).
const shapeCache = new Map<string, unknown>();
function cached<T>(key: string, make: () => T): T {
  let v = shapeCache.get(key) as T | undefined;
  if (v === undefined) shapeCache.set(key, v = make());
  return v;
}

/** MONAI's bias index for n tokens: the first n x n entries of the full window's index. */
function biasIndex(windowSize: number, n: number): Int32Array {
  return cached(`bias:${windowSize}:${n}`, () => {
    const full = relativePositionIndex(windowSize);
    const m = windowSize ** 3;
    const idx = new Int32Array(n * n);
    for (let i = 0; i < n; i++) idx.set(full.subarray(i * m, i * m + n), i * n);
    return idx;
  });
}

/** The gathers, shift mask and real-token marks of one block's windows. */
function blockWindows(b: number, dims: number[], window: number[], shift: number[]) {
  return cached(`win:${b}:${dims}:${window}:${shift}`, () => {
    const index = windowIndex(b, dims, window, shift);
    const mask = shift.some((s) => s > 0) ? attentionMask(index.padded, window, shift) : undefined;
    // Tokens that came from the volume (not padding): only their outputs are gathered back.
    const zeroRow = b * dims[0] * dims[1] * dims[2];
    const queries = Uint8Array.from(index.forward, (r) => (r === zeroRow ? 0 : 1));
    return { index, mask, queries };
  });
}

/**
 * `WindowAttention` on `[windows * B, N, C]` with an optional `[windows, N, N]` shift
 * mask; the attention itself is one fused kernel (no `[windows, heads, N, N]` tensor).
 */
function windowAttention(
  x: tf.Tensor3D,
  p: Params,
  name: string,
  heads: number,
  windowSize: number,
  mask: Float32Array | undefined,
  queries: Uint8Array,
  c: SwinConfig,
  training: boolean,
): tf.Tensor3D {
  const [, n, ch] = x.shape;
  const bias = gatherBias(
    p.get(`${name}.relative_position_bias_table`)! as tf.Tensor2D,
    biasIndex(windowSize, n),
    n,
  );
  const out = windowAttentionCore(
    linear(x, p, `${name}.qkv`) as tf.Tensor3D,
    bias,
    heads,
    (ch / heads) ** -0.5,
    mask,
    queries,
  );
  return dropout(linear(out, p, `${name}.proj`), c.dropRate, training) as tf.Tensor3D;
}

/** The windows of block `blk` of a stage on `[B, D, H, W, C]` (shifted in odd blocks). */
function blockLayout(x: tf.Tensor5D, c: SwinConfig, blk: number) {
  const [b, d, h, w] = x.shape;
  const half = Math.floor(c.windowSize / 2);
  const { window, shift } = windowAndShift([d, h, w], c.windowSize, blk % 2 ? half : 0);
  return blockWindows(b, [d, h, w], window, shift);
}

/**
 * The first half of a Swin block (MONAI's `forward_part1` and its shortcut): norm,
 * pad/roll/partition (one gather), window attention, and back (one gather), added to `x`.
 */
export function swinAttentionHalf(
  x: tf.Tensor5D,
  p: Params,
  stage: number,
  blk: number,
  c: SwinConfig,
  rate = 0,
  training = false,
): tf.Tensor5D {
  const [b, d, h, w, ch] = x.shape;
  const name = `swinViT.layers${stage + 1}.0.blocks.${blk}`;
  const { index, mask, queries } = blockLayout(x, c, blk);
  return tf.tidy(() => {
    const flat = tf.reshape(layerNorm(x, p, `${name}.norm1`), [b * d * h * w, ch]);
    const rows = tf.concat([flat, tf.zeros([1, ch])], 0);
    const windows = tf.reshape(
      gatherRows(rows as tf.Tensor2D, index.forward),
      [b * index.windows, index.tokens, ch],
    ) as tf.Tensor3D;
    const attended = windowAttention(
      windows,
      p,
      `${name}.attn`,
      c.numHeads[stage],
      c.windowSize,
      mask,
      queries,
      c,
      training,
    );
    const back = tf.reshape(
      gatherRows(tf.reshape(attended, [-1, ch]) as tf.Tensor2D, index.inverse),
      [b, d, h, w, ch],
    );
    return tf.add(x, dropPath(back, rate, training)) as tf.Tensor5D;
  });
}

/** The second half of a Swin block (MONAI's `forward_part2`): norm, MLP, added to `x`. */
export function swinMlpHalf(
  x: tf.Tensor5D,
  p: Params,
  stage: number,
  blk: number,
  c: SwinConfig,
  rate = 0,
  training = false,
): tf.Tensor5D {
  const name = `swinViT.layers${stage + 1}.0.blocks.${blk}`;
  return tf.tidy(() => {
    let y = linear(layerNorm(x, p, `${name}.norm2`), p, `${name}.mlp.linear1`);
    y = dropout(gelu(y), c.dropRate, training);
    y = dropout(linear(y, p, `${name}.mlp.linear2`), c.dropRate, training);
    return tf.add(x, dropPath(y, rate, training)) as tf.Tensor5D;
  });
}

/**
 * MONAI's v0.9 `PatchMerging` (the `"merging"` mode SwinUNETR uses): it concatenates eight
 * strided sub-grids, two of them repeated (x2 = x5, x3 = x6) exactly as MONAI does, then
 * LayerNorm and a Linear 8C -> 2C.
 */
function patchMerging(x: tf.Tensor5D, p: Params, name: string): tf.Tensor5D {
  // One gather instead of strided slices: tfjs has no gradient for StridedSlice.
  const [b, d, h, w, ch] = x.shape;
  const rows = tf.concat([tf.reshape(x, [b * d * h * w, ch]), tf.zeros([1, ch])], 0);
  const picked = gatherRows(
    rows as tf.Tensor2D,
    cached(`merge:${b}:${d},${h},${w}`, () => mergeIndex(b, [d, h, w])),
  );
  const out = [d, h, w].map((n) => Math.ceil(n / 2));
  const cat = tf.reshape(picked, [b, out[0], out[1], out[2], 8 * ch]);
  return linear(layerNorm(cat, p, `${name}.norm`), p, `${name}.reduction`, false) as tf.Tensor5D;
}

/** Stochastic-depth rate of every block, rising linearly over the blocks as MONAI's. */
export function dropPathRates(c: SwinConfig): number[] {
  const total = c.depths.reduce((a, b) => a + b, 0);
  return Array.from({ length: total }, (_, i) => total > 1 ? c.dropPathRate * i / (total - 1) : 0);
}

/** The patch embedding (a strided conv and its bias) on `[B, D, H, W, C_in]`, before its norm. */
export function patchEmbedding(
  input: tf.Tensor5D,
  p: Params,
  c: SwinConfig,
  training = false,
): tf.Tensor5D {
  const embed = p.get("swinViT.patch_embed.proj.weight") as tf.Variable<tf.Rank.R5>;
  const x = tf.add(
    conv3dPatches(input, embed, c.patchSize),
    p.get("swinViT.patch_embed.proj.bias")!,
  );
  return dropout(x, c.dropRate, training) as tf.Tensor5D;
}

/** One step of a stage: what it computes and the prefix of the parameters it uses. */
export interface LayerStep {
  /** The parameters' name prefix (`swinViT.layers1.0.blocks.0.norm1`-style keys start with it). */
  params: string[];
  /** `[B, D, H, W, C]` to the next step's input. */
  run: (x: tf.Tensor5D) => tf.Tensor5D;
}

/**
 * Stage `s` (0..3) of the Swin transformer as a list of steps: its residual conv block,
 * each Swin block's attention half and MLP half, and the patch merging. Run in order from
 * the previous stage's output (before its norm), they give this stage's.
 */
export function swinLayerSteps(
  p: Params,
  s: number,
  c: SwinConfig,
  training = false,
): LayerStep[] {
  const first = c.depths.slice(0, s).reduce((a, b) => a + b, 0);
  const rates = dropPathRates(c).slice(first, first + c.depths[s]);
  const layer = `swinViT.layers${s + 1}`;
  const steps: LayerStep[] = [
    { params: [`${layer}c.0.`], run: (x) => resBlock(x, p, `${layer}c.0`) },
  ];
  for (let blk = 0; blk < c.depths[s]; blk++) {
    const name = `${layer}.0.blocks.${blk}`;
    steps.push({
      params: [`${name}.norm1.`, `${name}.attn.`],
      run: (x) => swinAttentionHalf(x, p, s, blk, c, rates[blk], training),
    }, {
      params: [`${name}.norm2.`, `${name}.mlp.`],
      run: (x) => swinMlpHalf(x, p, s, blk, c, rates[blk], training),
    });
  }
  steps.push({
    params: [`${layer}.0.downsample.`],
    run: (x) => patchMerging(x, p, `${layer}.0.downsample`),
  });
  return steps;
}

/**
 * Stage `s` (0..3) of the Swin transformer: its residual conv block, its Swin blocks and
 * the patch merging, from the previous stage's output (before its norm) to this one's.
 */
export function swinLayer(
  x: tf.Tensor5D,
  p: Params,
  s: number,
  c: SwinConfig,
  training = false,
): tf.Tensor5D {
  for (const step of swinLayerSteps(p, s, c, training)) x = step.run(x);
  return x;
}

/**
 * The Swin transformer of SwinUNETR-v2 on `[B, D, H, W, C_in]`: returns the five hidden
 * states MONAI returns with `normalize=True` (each layer-normalised over channels),
 * `[B, D/2^(s+1), …, feature * 2^s]` for s = 0..4.
 */
export function swinTransformer(
  input: tf.Tensor5D,
  p: Params,
  c: SwinConfig,
  options: ForwardOptions = {},
): tf.Tensor5D[] {
  const training = options.training ?? false;
  let x = patchEmbedding(input, p, c, training);
  const outs: tf.Tensor5D[] = [layerNorm(x) as tf.Tensor5D];
  options.trace?.("patch embedding", outs[0]);
  for (let s = 0; s < 4; s++) {
    x = swinLayer(x, p, s, c, training);
    outs.push(layerNorm(x) as tf.Tensor5D);
    options.trace?.(`stage ${s + 1} (res, ${c.depths[s]} blocks, merge)`, outs[s + 1]);
  }
  return outs;
}
