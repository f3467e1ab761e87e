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
 * The five residual encoders of the backbone in feature order: each one's input (`-1` the
 * crops, `s` the hidden state `s`, i.e. the layer-normalised output of stage `s`) and its
 * width in multiples of the feature size.
 */
export const ENCODERS = [
  { name: "encoder1", from: -1, width: 1 },
  { name: "encoder2", from: 0, width: 1 },
  { name: "encoder3", from: 1, width: 2 },
  { name: "encoder4", from: 2, width: 4 },
  { name: "encoder10", from: 4, width: 16 },
] as const;

/** `[B, D, H, W, C]` average-pooled to `[B, C]`. */
export function pool(y: tf.Tensor5D): tf.Tensor2D {
  return tf.reshape(spatialMean(y), [y.shape[0], y.shape[4]]);
}

/** An encoder's output average-pooled to `[B, C]`. */
export function pooledEncoder(x: tf.Tensor5D, p: Params, name: string): tf.Tensor2D {
  return pool(resBlock(x, p, name));
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
  const features = tf.concat(
    ENCODERS.map((e) => pooledEncoder(e.from < 0 ? input : hidden[e.from], p, e.name)),
    1,
  ) as tf.Tensor2D;
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
