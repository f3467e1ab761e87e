// The networks of a VoCo run and one training step, as the references order it:
// v2 (large-scale): one backbone, a student and a teacher projection head (the teacher the
// EMA of the student), row dropout on the features before the student head; v1 (CVPR):
// a student and a teacher network, backbone and head each. Forward, EMA update, teacher
// forward without gradient, losses, backward, clipping, AdamW at the step's lr.
import * as tf from "@tensorflow/tfjs-core";
import { featureLength, type SwinConfig, swinConfig } from "../swin/config.ts";
import { initParams, type Params } from "../swin/params.ts";
import { backboneFeatures } from "../swin/voco_model.ts";
import { emaUpdate, headForward, initHead } from "./head.ts";
import { stopGradient, vocoLossV1, vocoLossV2 } from "./loss.ts";
import { AdamW, clipGradNorm } from "../optim/adamw.ts";
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
  readonly #o: Required<Omit<VocoModelOptions, "cropBatch" | "headDims">> & { cropBatch?: number };
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
    this.config = swinConfig(this.#o.featureSize, { headDims: dims });
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
        terms: { intra: terms.intra, inter: terms.inter, reg: terms.reg },
      };
    }
    const s = headForward(features, this.backbone, "head");
    const terms = vocoLossV1(s, teacherOut!, labels);
    return { loss: terms.loss, terms: { pos: terms.pos, neg: terms.neg, reg: terms.reg } };
  }

  /**
   * Forward and backward of one batch: the teacher's EMA update, the losses, and the
   * gradients of every trained parameter, scaled by `scale` (1 / accumulation steps).
   * Resolves to the loss terms and the gradients (the caller disposes them).
   */
  async gradients(
    input: StepInput,
    step: number,
    scale = 1,
  ): Promise<{ terms: StepTerms; grads: Map<string, tf.Tensor> }> {
    const { batch, crops, roi } = input;
    const rows = input.inputs.length / roi ** 3;
    const k = input.labels.length / (batch * crops);
    emaUpdate(
      this.teacher,
      this.version === "v2" ? this.studentHead : this.backbone,
      this.#o.momentum,
      "student.",
      "teacher.",
    );
    const x = tf.tensor5d(input.inputs, [rows, roi, roi, roi, 1]);
    const labels = tf.tensor3d(input.labels, [batch, crops, k]);
    const cropBatch = Math.min(rows, this.#o.cropBatch ?? rows);
    const chunks = Math.ceil(rows / cropBatch);
    const slice = (t: tf.Tensor5D, c: number) =>
      tf.slice(t, [c * cropBatch, 0, 0, 0, 0], [
        Math.min(cropBatch, rows - c * cropBatch),
        -1,
        -1,
        -1,
        -1,
      ]) as tf.Tensor5D;
    // v1: the teacher network's projections, without gradient.
    let teacherOut: tf.Tensor2D | undefined;
    if (this.version === "v1") {
      const parts: tf.Tensor2D[] = [];
      for (let c = 0; c < chunks; c++) {
        parts.push(tf.tidy(() => {
          const f =
            backboneFeatures(slice(x, c), this.teacher, this.config, { training: true }).features;
          return f;
        }));
      }
      teacherOut = tf.tidy(() =>
        headForward(tf.concat(parts, 0) as tf.Tensor2D, this.teacher, "head")
      );
      tf.dispose(parts);
    }
    const termValues: StepTerms = {};
    const grads = new Map<string, tf.Tensor>();
    const add = (name: string, g: tf.Tensor) => {
      const prev = grads.get(name);
      grads.set(name, prev ? tf.tidy(() => tf.add(prev, g)) : tf.keep(g));
      if (prev) {
        prev.dispose();
        g.dispose();
      }
    };
    const record = async (loss: tf.Scalar, terms: Record<string, tf.Scalar>) => {
      termValues.loss = (await loss.data())[0];
      for (const [name, t] of Object.entries(terms)) termValues[name] = (await t.data())[0];
    };
    const headVars = [...this.studentHead.entries()];
    if (chunks === 1) {
      const kept: tf.Scalar[] = [];
      const { grads: g } = tf.variableGrads(() => {
        const f = this.#features(x, this.backbone);
        const { loss, terms } = this.#headsAndLoss(f, teacherOut, labels, step);
        kept.push(tf.keep(loss), ...Object.values(terms).map((t) => tf.keep(t)));
        return tf.mul(loss, scale) as tf.Scalar;
      }, [...this.trained.values()]);
      const [loss, ...rest] = kept;
      await record(
        loss,
        Object.fromEntries(Object.keys(this.termNames()).map((n, i) => [n, rest[i]])),
      );
      tf.dispose(kept);
      for (const [name, v] of this.trained) add(name, g[v.name]);
    } else {
      // Features of all rows first (no tape), then the heads and losses with the features'
      // gradient, then each chunk's backbone backward against its part of that gradient.
      const parts: tf.Tensor2D[] = [];
      for (let c = 0; c < chunks; c++) {
        parts.push(tf.tidy(() => this.#features(slice(x, c), this.backbone)));
      }
      const features = tf.variable(tf.concat(parts, 0) as tf.Tensor2D);
      tf.dispose(parts);
      const kept: tf.Scalar[] = [];
      const { grads: g } = tf.variableGrads(() => {
        const { loss, terms } = this.#headsAndLoss(features, teacherOut, labels, step);
        kept.push(tf.keep(loss), ...Object.values(terms).map((t) => tf.keep(t)));
        return tf.mul(loss, scale) as tf.Scalar;
      }, [
        features,
        ...headVars.map(([, v]) => v),
        ...(this.version === "v1"
          ? [...this.backbone].filter(([n]) => n.startsWith("head.")).map(([, v]) => v)
          : []),
      ]);
      const [loss, ...rest] = kept;
      await record(
        loss,
        Object.fromEntries(Object.keys(this.termNames()).map((n, i) => [n, rest[i]])),
      );
      tf.dispose(kept);
      const dFeatures = g[features.name];
      for (const [name, v] of this.trained) if (g[v.name]) add(name, g[v.name]);
      const backboneVars = [...this.backbone].filter(([n]) => !n.startsWith("head."));
      for (let c = 0; c < chunks; c++) {
        const n = Math.min(cropBatch, rows - c * cropBatch);
        const dy = tf.slice(dFeatures, [c * cropBatch, 0], [n, -1]);
        const { grads: gc } = tf.variableGrads(() => {
          const f = this.#features(slice(x, c), this.backbone);
          return tf.sum(tf.mul(f, dy)) as tf.Scalar;
        }, backboneVars.map(([, v]) => v));
        dy.dispose();
        for (const [name, v] of backboneVars) add(name, gc[v.name]);
      }
      tf.dispose([features, dFeatures]);
    }
    tf.dispose([x, labels, ...(teacherOut ? [teacherOut] : [])]);
    return { terms: termValues, grads };
  }

  /** The names of the loss terms of this version, after `loss`. */
  termNames(): Record<string, true> {
    return this.version === "v2"
      ? { intra: true, inter: true, reg: true }
      : { pos: true, neg: true, reg: true };
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
