// The backbone's backward pass in segments (activation checkpointing, as MONAI's
// `use_checkpoint=True`): the forward keeps only each segment's input (the stage boundaries
// and the inputs of each stage's steps, about 4 bytes per crop, feature channel and voxel)
// as plain arrays outside the backend; the backward recomputes one segment at a time under
// a tape and frees it before the next. tfjs keeps every forward tensor and every
// intermediate gradient of a tape until the tape ends, so taping the whole backbone costs
// about 1 GB per 64³ crop at feature size 12; a segment costs a fraction of that.
//
//   crops ─ embed ─ x0 ─ stage 1 ─ x1 ─ stage 2 ─ x2 ─ stage 3 ─ x3 ─ stage 4 ─ x4
//     │              │              │              │                            │
//   encoder1     encoder2(LN)   encoder3(LN)   encoder4(LN)                encoder10(LN)
//     └──────────────┴──────────────┴──── pooled, concatenated: features ───────┘
//
// The recomputed forward runs the same ops on the same values, so it gives the same numbers
// as the first; the gradients are those of one tape, summed in another order.
import * as tf from "@tensorflow/tfjs-core";
import type { SwinConfig } from "./config.ts";
import type { Params } from "./params.ts";
import { layerNorm } from "./layers.ts";
import { ENCODERS, pool, pooledEncoder } from "./backbone.ts";
import { patchEmbedding, swinLayerSteps } from "./swin_transformer.ts";
import { resBlockFirst, resBlockSecond } from "./layers.ts";

/** The boundaries of one pass of crops, as plain arrays. */
export interface SavedPass {
  /** The crops `[n, D, H, W, 1]`. */
  input: { shape: number[]; data: Float32Array };
  /** x0 (after the patch embedding) .. x4 (after stage 4), before their norms. */
  x: { shape: number[]; data: Float32Array }[];
  /** Per stage, the inputs of its steps after the first (`swinLayerSteps`). */
  inner: { shape: number[]; data: Float32Array }[][];
}

async function save(t: tf.Tensor): Promise<{ shape: number[]; data: Float32Array }> {
  return { shape: [...t.shape], data: (await t.data()) as Float32Array };
}

/**
 * The pooled features `[n, 24 * feature]` of a pass of crops (the same values as
 * `backboneFeatures`) and the pass's stage boundaries for {@linkcode backwardInSegments}.
 */
export async function forwardSaving(
  input: tf.Tensor5D,
  p: Params,
  c: SwinConfig,
): Promise<{ features: tf.Tensor2D; saved: SavedPass }> {
  checkDeterministic(c);
  const xs: tf.Tensor5D[] = [], inner: tf.Tensor5D[][] = [];
  const features = tf.tidy(() => {
    let x = patchEmbedding(input, p, c, true);
    xs.push(tf.keep(x));
    for (let s = 0; s < 4; s++) {
      const steps = swinLayerSteps(p, s, c, true);
      inner.push([]);
      steps.forEach((step, i) => {
        x = step.run(x);
        (i < steps.length - 1 ? inner[s] : xs).push(tf.keep(x));
      });
    }
    return tf.concat(
      ENCODERS.map((e) =>
        pooledEncoder(e.from < 0 ? input : layerNorm(xs[e.from]) as tf.Tensor5D, p, e.name)
      ),
      1,
    ) as tf.Tensor2D;
  });
  try {
    return {
      features,
      saved: {
        input: await save(input),
        x: await Promise.all(xs.map(save)),
        inner: await Promise.all(inner.map((ts) => Promise.all(ts.map(save)))),
      },
    };
  } finally {
    tf.dispose([...xs, ...inner.flat()]);
  }
}

/** The trained parameters of a segment, by name prefix. */
function paramsOf(p: Params, prefixes: string[]): [string, tf.Variable][] {
  return [...p].filter(([name]) => prefixes.some((x) => name.startsWith(x)));
}

type Array5 = { shape: number[]; data: Float32Array };
const load = (a: Array5) =>
  tf.tensor5d(a.data, a.shape as [number, number, number, number, number]);
const yieldToTimers = () => new Promise((resolve) => setTimeout(resolve, 0));

/**
 * One segment's vector-Jacobian product: recomputes `f(...inputs)` under a tape and
 * returns the gradients of `sum(f(...inputs) * dy)` with respect to the inputs marked in
 * `want` (`undefined` for the others) and to `params`.
 */
function segment(
  f: (...xs: tf.Tensor5D[]) => tf.Tensor,
  inputs: tf.Tensor5D[],
  want: boolean[],
  dy: tf.Tensor,
  params: [string, tf.Variable][],
): { dx: (tf.Tensor | undefined)[]; grads: tf.Tensor[] } {
  const wanted = inputs.filter((_, i) => want[i]);
  const xs = [...wanted, ...params.map(([, v]) => v)];
  const grads = tf.tidy(() =>
    tf.engine().gradients(() => tf.sum(tf.mul(f(...inputs), dy)), xs).grads
  );
  let k = 0;
  return { dx: want.map((w) => w ? grads[k++] : undefined), grads: grads.slice(wanted.length) };
}

/**
 * The backward pass of the backbone for one pass of crops: given the gradient of the loss
 * with respect to its features, calls `add(name, gradient)` once for every backbone
 * parameter (the caller owns the tensor). Segments run one at a time, each recomputing its
 * forward from `saved`: each encoder in two halves (the first half's output recomputed
 * without a tape), then the stages from the last, step by step (residual block, each Swin
 * block's attention and MLP halves, merging; each from its saved input), then
 * the patch embedding. Between segments the event loop runs (timers, signals).
 */
export async function backwardInSegments(
  saved: SavedPass,
  dFeatures: tf.Tensor2D,
  p: Params,
  c: SwinConfig,
  add: (name: string, g: tf.Tensor) => void,
): Promise<void> {
  checkDeterministic(c);
  const input = load(saved.input);
  // The gradient reaching each boundary x0..x4, summed over its consumers.
  const dx: (tf.Tensor | undefined)[] = [undefined, undefined, undefined, undefined, undefined];
  const accumulate = (s: number, g: tf.Tensor) => {
    const prev = dx[s];
    dx[s] = prev ? tf.tidy(() => tf.add(prev, g)) : g;
    if (prev) tf.dispose([prev, g]);
  };
  const run = (
    f: (...xs: tf.Tensor5D[]) => tf.Tensor,
    inputs: tf.Tensor5D[],
    want: boolean[],
    dy: tf.Tensor,
    prefixes: string[],
  ) => {
    const params = paramsOf(p, prefixes);
    const r = segment(f, inputs, want, dy, params);
    params.forEach(([name], i) => add(name, r.grads[i]));
    return r.dx;
  };
  try {
    let col = 0;
    for (const e of ENCODERS) {
      const width = e.width * c.featureSize;
      const hidden = e.from >= 0;
      const x = hidden ? load(saved.x[e.from]) : input;
      const h = (t: tf.Tensor5D) => hidden ? layerNorm(t) as tf.Tensor5D : t;
      const dy = tf.slice(dFeatures, [0, col], [-1, width]);
      col += width;
      const a = tf.tidy(() => resBlockFirst(h(x), p, e.name));
      try {
        const [da, dxB] = run(
          (ta, tx) => pool(resBlockSecond(ta, h(tx), p, e.name)),
          [a, x],
          [true, hidden],
          dy,
          [`${e.name}.layer.conv2.`, `${e.name}.layer.conv3.`],
        );
        a.dispose();
        await yieldToTimers();
        try {
          const [dxA] = run((tx) => resBlockFirst(h(tx), p, e.name), [x], [hidden], da!, [
            `${e.name}.layer.conv1.`,
          ]);
          if (hidden) {
            accumulate(e.from, dxB!);
            accumulate(e.from, dxA!);
          }
        } finally {
          da!.dispose();
        }
        await yieldToTimers();
      } finally {
        tf.dispose(hidden ? [a, dy, x] : [a, dy]);
      }
    }
    for (let s = 3; s >= 0; s--) {
      const steps = swinLayerSteps(p, s, c, true);
      const inputs: tf.Tensor5D[] = [load(saved.x[s]), ...saved.inner[s].map(load)];
      let dy = dx[s + 1]!;
      dx[s + 1] = undefined;
      try {
        for (let i = steps.length - 1; i >= 0; i--) {
          const [g] = run(steps[i].run, [inputs[i]], [true], dy, steps[i].params);
          tf.dispose([dy, inputs[i]]);
          dy = g!;
          await yieldToTimers();
        }
        accumulate(s, dy);
      } catch (err) {
        tf.dispose([dy, ...inputs]);
        throw err;
      }
    }
    const dy = dx[0]!;
    dx[0] = undefined;
    try {
      run((t) => patchEmbedding(t, p, c, true), [input], [false], dy, ["swinViT.patch_embed."]);
    } finally {
      dy.dispose();
    }
  } finally {
    tf.dispose([input, ...dx.filter((t) => t !== undefined)]);
  }
}

/** Recomputing is exact only without random layers (dropout, drop path), as VoCo trains. */
function checkDeterministic(c: SwinConfig): void {
  if (c.dropRate > 0 || c.dropPathRate > 0) {
    throw new RangeError(
      "The backbone's backward in segments needs dropRate and dropPathRate 0 (a recomputed " +
        "dropout would draw other masks)",
    );
  }
}
