// Building blocks in channels-last layout (NDHWC), named and parameterised as MONAI's.
import * as tf from "@tensorflow/tfjs-core";
import type { Params } from "./params.ts";
import { conv3dSame } from "../kernels/conv3d.ts";
import { dense } from "../kernels/dense.ts";
import { layerNormLastAxis } from "../kernels/layer_norm.ts";
import { instanceNormChannelsLast, instanceNormLeakyRelu } from "../kernels/instance_norm.ts";

/** PyTorch's default epsilon of LayerNorm, InstanceNorm and BatchNorm. */
export const NORM_EPS = 1e-5;

function param(p: Params, name: string): tf.Variable {
  const v = p.get(name);
  if (!v) throw new RangeError(`Missing parameter ${name}`);
  return v;
}

/** `torch.nn.Linear` over the last axis (weights stored `[in, out]`). */
export function linear(x: tf.Tensor, p: Params, name: string, bias = true): tf.Tensor {
  const w = param(p, `${name}.weight`);
  const shape = x.shape as number[];
  const flat = tf.reshape(x, [-1, shape[shape.length - 1]]) as tf.Tensor2D;
  const y = dense(
    flat,
    w as tf.Tensor2D,
    bias ? param(p, `${name}.bias`) as tf.Tensor1D : undefined,
  );
  return tf.reshape(y, [...shape.slice(0, -1), w.shape[1] as number]);
}

/** Normalises over the last axis; with `name`, MONAI's affine `LayerNorm` weights apply. */
export function layerNorm(x: tf.Tensor, p?: Params, name?: string): tf.Tensor {
  return p && name
    ? layerNormLastAxis(
      x,
      NORM_EPS,
      param(p, `${name}.weight`) as tf.Tensor1D,
      param(p, `${name}.bias`) as tf.Tensor1D,
    )
    : layerNormLastAxis(x, NORM_EPS);
}

/**
 * Mean over the three spatial axes of NDHWC, keeping dims, summed in two levels (rows of a
 * slice, then slices): a single float32 sum over 64³ voxels, as the wasm backend does it,
 * loses about 1e-4 of relative precision; this stays within 1e-6.
 */
export function spatialMean(x: tf.Tensor5D): tf.Tensor5D {
  return tf.mean(tf.mean(x, [2, 3], true), 1, true);
}

/** `InstanceNorm3d(affine=False)`: per sample and channel over the three spatial axes. */
export function instanceNorm(x: tf.Tensor5D): tf.Tensor5D {
  return instanceNormChannelsLast(x, NORM_EPS);
}

/** `BatchNorm1d(affine=False, track_running_stats=False)`: batch statistics, always. */
export function batchNorm(x: tf.Tensor2D): tf.Tensor2D {
  const { mean, variance } = tf.moments(x, 0, true);
  return tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, NORM_EPS)));
}

/** Exact GELU, `0.5 x (1 + erf(x / sqrt 2))`, as `torch.nn.GELU()`. */
export function gelu(x: tf.Tensor): tf.Tensor {
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));
}

/**
 * `LeakyReLU(0.01)`, MONAI's default activation of its residual blocks. Applied to a flat
 * view: its gradient is a `where`, which tfjs-webgpu does not run at rank 5.
 */
export function leakyRelu(x: tf.Tensor): tf.Tensor {
  return tf.reshape(tf.leakyRelu(tf.reshape(x, [-1]), 0.01), x.shape);
}

/**
 * A 3-D convolution with MONAI's 'same' padding for odd kernels, no bias: our WebAssembly
 * kernel on the CPU backends (stock conv3d is 5-20x slower there, and its input gradient
 * wrong on wasm), the stock kernel on the native and GPU backends.
 */
export function conv3d(x: tf.Tensor5D, p: Params, name: string): tf.Tensor5D {
  const w = param(p, `${name}.weight`) as tf.Tensor5D;
  return conv3dSame(x, w);
}

/**
 * The first half of MONAI's `UnetResBlock`: conv, instance norm, LeakyReLU (the norm and
 * the activation one kernel, `instanceNormLeakyRelu`).
 */
export function resBlockFirst(x: tf.Tensor5D, p: Params, name: string): tf.Tensor5D {
  return tf.tidy(() =>
    instanceNormLeakyRelu(conv3d(x, p, `${name}.layer.conv1.conv`), NORM_EPS, 0.01)
  );
}

/**
 * The second half of MONAI's `UnetResBlock` from the first half's output `a` and the
 * block's input `x`: conv, norm, plus the input (through a 1x1x1 conv and norm when
 * channels change), LeakyReLU (norm, sum and activation one kernel).
 */
export function resBlockSecond(
  a: tf.Tensor5D,
  x: tf.Tensor5D,
  p: Params,
  name: string,
): tf.Tensor5D {
  return tf.tidy(() => {
    const residual = p.has(`${name}.layer.conv3.conv.weight`)
      ? instanceNorm(conv3d(x, p, `${name}.layer.conv3.conv`))
      : x;
    return instanceNormLeakyRelu(
      conv3d(a, p, `${name}.layer.conv2.conv`),
      NORM_EPS,
      0.01,
      residual,
    );
  });
}

/**
 * MONAI `UnetResBlock` (kernel 3, stride 1, instance norm, LeakyReLU): conv, norm, act,
 * conv, norm, plus the input (through a 1x1x1 conv and norm when channels change), act.
 */
export function resBlock(x: tf.Tensor5D, p: Params, name: string): tf.Tensor5D {
  return tf.tidy(() => resBlockSecond(resBlockFirst(x, p, name), x, p, name));
}

/** Dropout that is the identity unless training with a positive rate. */
export function dropout(x: tf.Tensor, rate: number, training: boolean): tf.Tensor {
  return training && rate > 0 ? tf.dropout(x, rate) : x;
}

/**
 * Stochastic depth on a residual branch (`[B, ...]`): each sample's branch is kept with
 * probability 1 - rate and scaled by 1 / (1 - rate), as MONAI's `DropPath`.
 */
export function dropPath(x: tf.Tensor, rate: number, training: boolean): tf.Tensor {
  if (!training || rate <= 0) return x;
  const keep = tf.floor(
    tf.add(tf.randomUniform([x.shape[0], ...x.shape.slice(1).map(() => 1)]), 1 - rate),
  );
  return tf.mul(tf.div(x, 1 - rate), keep);
}
