// The networks of a VoCo run and one training step, as the references order it:
// v2 (large-scale): one backbone, a student and a teacher projection head (the teacher the
// EMA of the student), row dropout on the features before the student head; v1 (CVPR):
// a student and a teacher network, backbone and head each. Forward, EMA update, teacher
// forward without gradient, losses, backward, clipping, AdamW at the step's lr.
import * as tf from "@tensorflow/tfjs-core";
import { featureLength, type SwinConfig, swinConfig } from "../swin/config.ts";
import { initParams, type Params } from "../swin/params.ts";
import { backboneFeatures } from "../swin/backbone.ts";
import { emaUpdate, headForward, initHead } from "./head.ts";
import { LOSS_TERMS, stopGradient, vocoLossV1, vocoLossV2 } from "./loss.ts";
import { AdamW, clipGradNorm } from "../optim/adamw.ts";
import { backwardInSegments, forwardSaving, type SavedPass } from "../swin/recompute.ts";
import { streamRng } from "../rng.ts";

/** VoCo versions: `v2` the large-scale recipe, `v1` the CVPR one. */
export type VocoVersion = "v1" | "v2";

/** How the features are dropped before the student head (v2). */
export type FeatureDropout = "rows" | "elements" | "none";

/** Settings of a {@linkcode VocoModel}. */
export interface VocoModelOptions {
  /** VoCo version. */
  version: VocoVersion;
  /** Backbone feature size (12, 24, 48, ...). @default {48} */
  featureSize?: number;
  /** Head sizes (hidden, hidden, out). @default {v2: 1024s, v1: 2048s} */
  headDims?: [number, number, number];
  /** Seed of the initial weights and of the step randomness. @default {0} */
  seed?: number;
  /** v2 feature dropout: whole crops (the reference's `Dropout1d` on `[N, C]`), single features, or none. @default {"rows"} */
  dropout?: FeatureDropout;
  /** Teacher EMA momentum. @default {0.9} */
  momentum?: number;
  /** Crops per backbone pass; fewer than a batch's rows bounds memory (exact: the backbone treats crops independently). @default {all} */
  cropBatch?: number;
  /**
   * Attention window edge in tokens. MONAI's SwinUNETR fixes it at 7, so a backbone
   * trained with another size does not load into MONAI; smaller windows are for quick
   * checks (a tiny step on a software WebGPU adapter).
   * @default {7}
   */
  windowSize?: number;
}

/** The loss terms of one step (plain numbers). */
export type StepTerms = Record<string, number>;

/** A step's inputs. */
export interface StepInput {
  /** `[rows, roi, roi, roi]` voxels, C order `[x, y, z]` per crop. */
  inputs: Float32Array;
  /** `[B, S, K]` labels. */
  labels: Float32Array;
  /** Batch size B and crops per volume S (K follows). */
  batch: number;
  /** Random crops per volume. */
  crops: number;
  /** Crop edge. */
  roi: number;
}

/** The networks of a run and its optimiser. */
export class VocoModel {
  /** Version. */
  readonly version: VocoVersion;
  /** Backbone configuration (headDims: the projection heads'). */
  readonly config: SwinConfig;
  /** v2: the shared backbone; v1: the student network (backbone and `head.*`). */
  readonly backbone: Params;
  /** v2: the student head (`student.*`); v1: empty. */
  readonly studentHead: Params;
  /** The teacher: v2 its head (`teacher.*`); v1 the whole network (the student's names). */
  readonly teacher: Params;
  /** AdamW over every trained parameter. */
  readonly optimizer: AdamW;
  readonly #o: Required<Omit<VocoModelOptions, "cropBatch" | "headDims" | "windowSize">> & {
    cropBatch?: number;
  };
  /** Every trained parameter by name (backbone and student head). */
  readonly trained: Params;

  /** Fresh networks initialised as the references' (see `initParams`, `initHead`). */
  constructor(options: VocoModelOptions) {
    const version = options.version;
    const dims = options.headDims ??
      (version === "v2" ? [1024, 1024, 1024] : [2048, 2048, 2048]) as [number, number, number];
    this.version = version;
    this.#o = {
      version,
      featureSize: options.featureSize ?? 48,
      seed: options.seed ?? 0,
      dropout: options.dropout ?? "rows",
      momentum: options.momentum ?? 0.9,
      cropBatch: options.cropBatch,
    };
    this.config = swinConfig(this.#o.featureSize, {
      headDims: dims,
      windowSize: options.windowSize ?? 7,
    });
    const seed = this.#o.seed;
    if (version === "v2") {
      this.backbone = initParams(this.config, seed, { head: false });
      const inDim = featureLength(this.config);
      const rs = streamRng(seed, 0x4ead, 0), rt = streamRng(seed, 0x4ead, 1);
      this.studentHead = initHead("student", inDim, dims, () => rs.uniform());
      this.teacher = initHead("teacher", inDim, dims, () => rt.uniform());
    } else {
      this.backbone = initParams(this.config, seed);
      this.studentHead = new Map();
      this.teacher = initParams(this.config, seed + 0x7eac);
    }
    this.trained = new Map([...this.backbone, ...this.studentHead]);
    this.optimizer = new AdamW(this.trained);
  }

  /** Every variable of the model by checkpoint name (`student.`/`teacher.`/`backbone.` prefixes as the references' modules). */
  namedVariables(): Map<string, tf.Variable> {
    const out = new Map<string, tf.Variable>();
    if (this.version === "v2") {
      for (const [k, v] of this.backbone) out.set(`backbone.${k}`, v);
      for (const [k, v] of this.studentHead) out.set(k, v);
      for (const [k, v] of this.teacher) out.set(k, v);
    } else {
      for (const [k, v] of this.backbone) out.set(`student.${k}`, v);
      for (const [k, v] of this.teacher) out.set(`teacher.${k}`, v);
    }
    return out;
  }

  /** Features of every row, in passes of at most `cropBatch` crops. */
  #features(x: tf.Tensor5D, p: Params): tf.Tensor2D {
    return backboneFeatures(x, p, this.config, { training: true }).features;
  }

  /** The projections of both sides and the loss terms; `grad` gives the student's features' gradient wrt. */
  #headsAndLoss(
    features: tf.Tensor2D,
    teacherOut: tf.Tensor2D | undefined,
    labels: tf.Tensor3D,
    step: number,
  ): { loss: tf.Scalar; terms: Record<string, tf.Scalar> } {
    if (this.version === "v2") {
      const n = features.shape[0];
      let dropped: tf.Tensor2D = features;
      if (this.#o.dropout !== "none") {
        const rng = streamRng(this.#o.seed, 0xd409, step);
        const cols = this.#o.dropout === "rows" ? 1 : features.shape[1];
        const mask = new Float32Array(n * cols);
        for (let i = 0; i < mask.length; i++) mask[i] = rng.chance(0.2) ? 0 : 1.25;
        dropped = tf.mul(features, tf.tensor2d(mask, [n, cols])) as tf.Tensor2D;
      }
      const s = headForward(dropped, this.studentHead, "student");
      const t = headForward(stopGradient(features) as tf.Tensor2D, this.teacher, "teacher");
      const terms = vocoLossV2(s, t, labels);
      return {
        loss: terms.loss,
        terms: {
          ...Object.fromEntries(LOSS_TERMS.v2.map((k) => [k, terms[k]])),
          agreement: terms.agreement,
        },
      };
    }
    const s = headForward(features, this.backbone, "head");
    const terms = vocoLossV1(s, teacherOut!, labels);
    return {
      loss: terms.loss,
      terms: {
        ...Object.fromEntries(LOSS_TERMS.v1.map((k) => [k, terms[k]])),
        agreement: terms.agreement,
      },
    };
  }

  /** The batch's labels, and its rows as tensors of at most `cropBatch` crops. */
  #tensors(input: StepInput) {
    const { batch, crops, roi } = input;
    const voxels = roi ** 3;
    const rows = input.inputs.length / voxels;
    const k = input.labels.length / (batch * crops);
    const labels = tf.tensor3d(input.labels, [batch, crops, k]);
    const size = Math.min(rows, this.#o.cropBatch ?? rows);
    const chunks = Math.ceil(rows / size);
    const slice = (c: number) => {
      const n = Math.min(size, rows - c * size);
      const data = input.inputs.subarray(c * size * voxels, (c * size + n) * voxels);
      return tf.tensor5d(data, [n, roi, roi, roi, 1]);
    };
    return { labels, rows, size, chunks, slice };
  }

  /** Backbone features of every row of `p`'s network, pass by pass, without gradient. */
  #featuresNoGrad(p: Params, chunks: number, slice: (c: number) => tf.Tensor5D): tf.Tensor2D {
    const parts: tf.Tensor2D[] = [];
    for (let c = 0; c < chunks; c++) {
      parts.push(tf.tidy(() => {
        const x = slice(c);
        return this.#features(x, p);
      }));
    }
    const out = tf.concat(parts, 0) as tf.Tensor2D;
    tf.dispose(parts);
    return out;
  }

  /** Reads scalar tensors into numbers and frees them. */
  static async #values(terms: Record<string, tf.Scalar>): Promise<StepTerms> {
    const out: StepTerms = {};
    for (const [name, t] of Object.entries(terms)) out[name] = (await t.data())[0];
    tf.dispose(Object.values(terms));
    return out;
  }

  /**
   * Forward and backward of one batch: the teacher's EMA update, the losses, and the
   * gradients of every trained parameter, scaled by `scale` (1 / accumulation steps).
   * Resolves to the loss terms and the gradients (the caller disposes them).
   *
   * Without `cropBatch` the whole step is one taped pass. With it, the backbone runs in
   * passes of at most `cropBatch` crops: the features of all rows first (keeping each
   * pass's stage boundaries), then the heads and losses with the features' gradient (the
   * heads' BatchNorm needs every row), then each pass's backbone backward in segments
   * (`backwardInSegments`), exact since the backbone treats every crop on its own.
   */
  async gradients(
    input: StepInput,
    step: number,
    scale = 1,
  ): Promise<{ terms: StepTerms; grads: Map<string, tf.Tensor> }> {
    const student = this.version === "v2" ? this.studentHead : this.backbone;
    emaUpdate(this.teacher, student, this.#o.momentum, "student.", "teacher.");
    const { labels, chunks, size, rows, slice } = this.#tensors(input);
    // v1: the teacher network's projections, without gradient.
    const teacherOut = this.version === "v1"
      ? tf.tidy(() =>
        headForward(this.#featuresNoGrad(this.teacher, chunks, slice), this.teacher, "head")
      )
      : undefined;
    const grads = new Map<string, tf.Tensor>();
    const add = (name: string, g: tf.Tensor) => addGradient(grads, name, g);
    const kept: Record<string, tf.Scalar> = {};
    const lossOf = (features: tf.Tensor2D) => {
      const { loss, terms } = this.#headsAndLoss(features, teacherOut, labels, step);
      kept.loss = tf.keep(loss);
      for (const [name, t] of Object.entries(terms)) kept[name] = tf.keep(t);
      return tf.mul(loss, scale) as tf.Scalar;
    };
    try {
      if (this.#o.cropBatch === undefined) {
        const x = slice(0);
        const { value, grads: g } = tf.variableGrads(
          () => lossOf(this.#features(x, this.backbone)),
          [...this.trained.values()],
        );
        tf.dispose([x, value]);
        for (const [name, v] of this.trained) add(name, g[v.name]);
      } else {
        const saved: (SavedPass | undefined)[] = [], parts: tf.Tensor2D[] = [];
        for (let c = 0; c < chunks; c++) {
          const x = slice(c);
          const r = await forwardSaving(x, this.backbone, this.config);
          x.dispose();
          parts.push(r.features);
          saved.push(r.saved);
        }
        const joined = tf.concat(parts, 0) as tf.Tensor2D;
        const features = tf.variable(joined);
        tf.dispose([joined, ...parts]);
        const heads = [...this.trained].filter(([n]) =>
          n.startsWith("student.") || n.startsWith("head.")
        );
        const { value, grads: g } = tf.variableGrads(() => lossOf(features), [
          features,
          ...heads.map(([, v]) => v),
        ]);
        value.dispose();
        for (const [name, v] of heads) add(name, g[v.name]);
        const dFeatures = g[features.name];
        features.dispose();
        try {
          for (let c = 0; c < chunks; c++) {
            const n = Math.min(size, rows - c * size);
            const dy = tf.slice(dFeatures, [c * size, 0], [n, -1]) as tf.Tensor2D;
            try {
              await backwardInSegments(saved[c]!, dy, this.backbone, this.config, add);
            } finally {
              dy.dispose();
              saved[c] = undefined;
            }
          }
        } finally {
          dFeatures.dispose();
        }
      }
    } catch (e) {
      tf.dispose([...grads.values(), ...Object.values(kept)]);
      throw e;
    } finally {
      tf.dispose([labels, ...(teacherOut ? [teacherOut] : [])]);
    }
    return { terms: await VocoModel.#values(kept), grads };
  }

  /**
   * The loss terms of a batch without training: no EMA update, no dropout, no gradient
   * (for held-out batches: the loss and the logits' `agreement` with the labels).
   */
  async evaluate(input: StepInput): Promise<StepTerms> {
    const { labels, chunks, slice } = this.#tensors(input);
    const dropout = this.#o.dropout;
    this.#o.dropout = "none";
    try {
      const terms = tf.tidy(() => {
        const teacherOut = this.version === "v1"
          ? headForward(this.#featuresNoGrad(this.teacher, chunks, slice), this.teacher, "head")
          : undefined;
        const r = this.#headsAndLoss(
          this.#featuresNoGrad(this.backbone, chunks, slice),
          teacherOut,
          labels,
          0,
        );
        return { loss: r.loss, ...r.terms };
      });
      return await VocoModel.#values(terms);
    } finally {
      this.#o.dropout = dropout;
      labels.dispose();
    }
  }

  /** Clips (when `maxNorm` is set) and applies gradients at `lr`; resolves to the gradients' norm. */
  async apply(
    grads: Map<string, tf.Tensor>,
    lr: number,
    maxNorm?: number,
  ): Promise<number | undefined> {
    const norm = maxNorm ? await clipGradNorm(grads, maxNorm) : undefined;
    this.optimizer.step(grads, lr);
    tf.dispose([...grads.values()]);
    grads.clear();
    return norm;
  }

  /** Frees every variable. */
  dispose(): void {
    this.optimizer.dispose();
    tf.dispose([...this.backbone.values(), ...this.studentHead.values(), ...this.teacher.values()]);
  }
}

/** Adds `g` into `grads[name]` (taking ownership of `g`). */
export function addGradient(grads: Map<string, tf.Tensor>, name: string, g: tf.Tensor): void {
  const prev = grads.get(name);
  grads.set(name, prev ? tf.tidy(() => tf.add(prev, g)) : g);
  if (prev) tf.dispose([prev, g]);
}
