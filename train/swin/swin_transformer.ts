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

/** One stage of Swin blocks (no downsampling) on `[B, D, H, W, C]`. */
function swinStage(
  x: tf.Tensor5D,
  p: Params,
  stage: number,
  c: SwinConfig,
  dropRates: number[],
  training: boolean,
): tf.Tensor5D {
  const [b, d, h, w, ch] = x.shape;
  const heads = c.numHeads[stage];
  const half = Math.floor(c.windowSize / 2);
  for (let blk = 0; blk < c.depths[stage]; blk++) {
    const name = `swinViT.layers${stage + 1}.0.blocks.${blk}`;
    const { window, shift } = windowAndShift([d, h, w], c.windowSize, blk % 2 ? half : 0);
    const { index, mask, queries } = blockWindows(b, [d, h, w], window, shift);
    const rate = dropRates.shift() ?? 0;
    const input = x;
    x = tf.tidy(() => {
      // Part 1: norm, pad/roll/partition (one gather), attention, and back (one gather).
      const flat = tf.reshape(layerNorm(input, p, `${name}.norm1`), [b * d * h * w, ch]);
      const rows = tf.concat([flat, tf.zeros([1, ch])], 0);
      const windows = tf.reshape(
        gatherRows(rows as tf.Tensor2D, index.forward),
        [b * index.windows, index.tokens, ch],
      ) as tf.Tensor3D;
      const attended = windowAttention(
        windows,
        p,
        `${name}.attn`,
        heads,
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
      const mid = tf.add(input, dropPath(back, rate, training));
      // Part 2: MLP.
      let y = linear(layerNorm(mid, p, `${name}.norm2`), p, `${name}.mlp.linear1`);
      y = dropout(gelu(y), c.dropRate, training);
      y = dropout(linear(y, p, `${name}.mlp.linear2`), c.dropRate, training);
      return tf.add(mid, dropPath(y, rate, training)) as tf.Tensor5D;
    });
  }
  return x;
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
  const total = c.depths.reduce((a, b) => a + b, 0);
  const dropRates = Array.from(
    { length: total },
    (_, i) => total > 1 ? c.dropPathRate * i / (total - 1) : 0,
  );
  const embed = p.get("swinViT.patch_embed.proj.weight") as tf.Variable<tf.Rank.R5>;
  let x = conv3dPatches(input, embed, c.patchSize);
  x = tf.add(x, p.get("swinViT.patch_embed.proj.bias")!);
  x = dropout(x, c.dropRate, training) as tf.Tensor5D;
  const outs: tf.Tensor5D[] = [layerNorm(x) as tf.Tensor5D];
  options.trace?.("patch embedding", outs[0]);
  for (let s = 0; s < 4; s++) {
    x = resBlock(x, p, `swinViT.layers${s + 1}c.0`);
    x = swinStage(x, p, s, c, dropRates, training);
    x = patchMerging(x, p, `swinViT.layers${s + 1}.0.downsample`);
    outs.push(layerNorm(x) as tf.Tensor5D);
    options.trace?.(`stage ${s + 1} (res, ${c.depths[s]} blocks, merge)`, outs[s + 1]);
  }
  return outs;
}
