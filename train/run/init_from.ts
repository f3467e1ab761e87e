// Starting a fresh run from existing backbone weights (`pretrain --init-from`): our or
// MONAI safetensors, or a `torch.save` file, read and checked before the run folder exists,
// then loaded into the student backbone (and the v1 teacher network, so that both sides
// start from the published weights).
import * as tf from "@tensorflow/tfjs-core";
import { type InitWeights, loadInitWeights } from "../swin/init_weights.ts";
import { fromTorch, paramSpecs } from "../swin/params.ts";
import { swinConfig } from "../swin/config.ts";
import type { VocoModel } from "../voco/model.ts";

/** What {@linkcode initFrom} loaded. */
export interface InitReport {
  /** Tensors loaded into the student. */
  loaded: number;
  /** Parameters the file lacks (they keep their fresh initialisation). */
  missing: string[];
  /** Keys of the file the model does not have. */
  unexpected: string[];
  /** `safetensors` or `torch`. */
  format: string;
}

/**
 * Reads and checks a run's starting weights (`initFrom`) for its backbone, without a model
 * or a backend; `undefined` when the run starts fresh.
 */
export async function readInitWeights(
  run: { initFrom?: string; featureSize: number; headDims: [number, number, number] },
): Promise<InitWeights | undefined> {
  if (!run.initFrom) return undefined;
  return await loadInitWeights(
    run.initFrom,
    swinConfig(run.featureSize, { headDims: run.headDims }),
  );
}

/** Loads weights read by {@linkcode readInitWeights} into `model`. */
export function applyInitWeights(model: VocoModel, w: InitWeights): InitReport {
  const report: InitReport = {
    loaded: 0,
    missing: w.missing,
    unexpected: w.unexpected,
    format: w.format,
  };
  const specs = new Map(paramSpecs(model.config).map((s) => [s.name, s]));
  const targets = model.version === "v2" ? [model.backbone] : [model.backbone, model.teacher];
  for (const target of targets) {
    for (const [name, data] of w.params) {
      const v = target.get(name), spec = specs.get(name);
      if (!v || !spec) continue;
      const t = tf.tensor(fromTorch(spec, data), v.shape);
      v.assign(t);
      t.dispose();
      if (target === model.backbone) report.loaded++;
    }
  }
  return report;
}

/** Loads the weights at `path` into `model`; throws naming the file when they do not fit. */
export async function initFrom(model: VocoModel, path: string): Promise<InitReport> {
  return applyInitWeights(model, await loadInitWeights(path, model.config));
}

/** A list of names for a message: the first `max`, then how many more. */
export function someNames(names: readonly string[], max = 5): string {
  return names.slice(0, max).join(", ") +
    (names.length > max ? `, and ${names.length - max} more` : "");
}
