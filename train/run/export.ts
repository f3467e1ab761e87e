// Exporting a run's backbone for fine-tuning: the student's (or the v1 teacher's)
// `swinViT.*` and `encoder*` weights in MONAI's names and PyTorch layouts, loadable into
// `monai.networks.nets.SwinUNETR(use_v2=True)` with `strict=False` (no decoder). Works on
// the checkpoint's plain arrays: no tfjs backend is needed, so it runs in a fresh process.
import { join } from "node:path";
import { swinConfig } from "../swin/config.ts";
import { paramSpecs } from "../swin/params.ts";
import { exportWeights } from "../swin/weights.ts";
import { checkpointName, listCheckpoints, readCheckpoint } from "./checkpoint.ts";
import { readRunConfig } from "../pretrain.ts";

/** Options of {@linkcode exportBackbone}. */
export interface ExportOptions {
  /** The checkpoint's step (the newest when absent). */
  step?: number;
  /** Export the v1 teacher network instead of the student. @default {false} */
  teacher?: boolean;
}

/** The backbone of a run folder's checkpoint as MONAI safetensors bytes, and the step. */
export async function exportBackbone(
  dir: string,
  options: ExportOptions = {},
): Promise<{ bytes: Uint8Array; step: number; path: string }> {
  const config = await readRunConfig(dir);
  const steps = await listCheckpoints(dir);
  if (steps.length === 0) throw new Deno.errors.NotFound(`${dir} has no checkpoint yet`);
  const step = options.step ?? steps[steps.length - 1];
  if (!steps.includes(step)) {
    throw new RangeError(`${dir} has no checkpoint of step ${step}; it has ${steps.join(", ")}`);
  }
  if (options.teacher && config.version !== "v1") {
    throw new RangeError("Only a v1 run has a teacher network (v2 shares one backbone)");
  }
  const path = join(dir, checkpointName(step));
  const { tensors } = await readCheckpoint(path);
  const prefix = config.version === "v2"
    ? "model.backbone."
    : options.teacher
    ? "model.teacher."
    : "model.student.";
  const swin = swinConfig(config.featureSize, {
    headDims: config.headDims,
    windowSize: config.windowSize ?? 7,
  });
  const arrays = new Map<string, Float32Array>();
  for (const spec of paramSpecs(swin, { head: false })) {
    const t = tensors.get(prefix + spec.name);
    if (!t) throw new RangeError(`Checkpoint ${path} has no ${prefix}${spec.name}`);
    arrays.set(spec.name, t.data);
  }
  const bytes = await exportWeights(arrays, swin, {
    voco_version: config.version,
    voco_step: String(step),
    network: options.teacher ? "teacher" : "student",
    feature_size: String(config.featureSize),
  }, { head: false });
  return { bytes, step, path };
}
