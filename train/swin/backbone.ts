// The VoCo backbone (Swin transformer + five residual encoders, pooled and concatenated)
// and the VoCo projection head.
import * as tf from "@tensorflow/tfjs-core";
import type { SwinConfig } from "./config.ts";
import type { Params } from "./params.ts";
import { batchNorm, linear, resBlock, spatialMean } from "./layers.ts";
import { type ForwardOptions, swinTransformer } from "./swin_transformer.ts";

/** What {@linkcode vocoForward} computes. */
export interface VocoOutputs {
  /** The Swin transformer's five normalised hidden states, NDHWC. */
  hidden: tf.Tensor5D[];
  /** `[B, 24 * feature]`: encoder1, encoder2(h0), encoder3(h1), encoder4(h2), encoder10(h4), each average-pooled. */
  features: tf.Tensor2D;
  /** `[B, headDims[2]]`: the projection head's output. */
  projection: tf.Tensor2D;
}

/** The projection head: Linear, BatchNorm (batch statistics), ReLU, twice, then Linear. */
export function projectionHead(features: tf.Tensor2D, p: Params): tf.Tensor2D {
  let y = tf.relu(batchNorm(linear(features, p, "head.layer1.0") as tf.Tensor2D));
  y = tf.relu(batchNorm(linear(y, p, "head.layer2.0") as tf.Tensor2D));
  return linear(y, p, "head.layer3.0") as tf.Tensor2D;
}

/**
 * The backbone alone on crops `[B, D, H, W, 1]` (each edge a positive multiple of 32): the
 * five hidden states and the pooled features `[B, 24 * feature]`.
 */
export function backboneFeatures(
  input: tf.Tensor5D,
  p: Params,
  c: SwinConfig,
  options: ForwardOptions = {},
): Omit<VocoOutputs, "projection"> {
  const [, d, h, w] = input.shape;
  if ([d, h, w].some((n) => n % 32 !== 0 || n < 32)) {
    throw new RangeError(`Input edges must be positive multiples of 32, got ${d}x${h}x${w}`);
  }
  const hidden = swinTransformer(input, p, c, options);
  const pool = (x: tf.Tensor5D) => tf.reshape(spatialMean(x), [x.shape[0], x.shape[4]]);
  const features = tf.concat([
    pool(resBlock(input, p, "encoder1")),
    pool(resBlock(hidden[0], p, "encoder2")),
    pool(resBlock(hidden[1], p, "encoder3")),
    pool(resBlock(hidden[2], p, "encoder4")),
    pool(resBlock(hidden[4], p, "encoder10")),
  ], 1) as tf.Tensor2D;
  return { hidden, features };
}

/**
 * Runs the VoCo backbone and head (`head.*`) on crops `[B, D, H, W, 1]` (each edge a
 * positive multiple of 32).
 */
export function vocoForward(
  input: tf.Tensor5D,
  p: Params,
  c: SwinConfig,
  options: ForwardOptions = {},
): VocoOutputs {
  const { hidden, features } = backboneFeatures(input, p, c, options);
  return { hidden, features, projection: projectionHead(features, p) };
}
