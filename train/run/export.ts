// Exporting a run's backbone for fine-tuning: the student's (or the v1 teacher's)
// `swinViT.*` and `encoder*` weights in MONAI's names and PyTorch layouts, loadable into
// `monai.networks.nets.SwinUNETR(use_v2=True)` with `strict=False` (no decoder), as
// safetensors or as a `torch.save` file (for a PyTorch without the safetensors package);
// both carry the feature size. Works on the checkpoint's plain arrays: no tfjs backend is
// needed, so it runs in a fresh process.
import { join } from "node:path";
import { BadInputError } from "../../cache/errors.ts";
import { swinConfig } from "../swin/config.ts";
import { paramSpecs } from "../swin/params.ts";
import { exportWeights } from "../swin/weights.ts";
import { checkpointName, listCheckpoints, readCheckpoint } from "./checkpoint.ts";
import { readRunConfig } from "./folder.ts";
import { TOOLKIT_VERSION } from "./version.ts";
import { readSafetensors } from "../weights/safetensors.ts";
import { type TorchSaveTensor, writeTorchSave } from "../weights/torch_save.ts";

/** Options of {@linkcode exportBackbone}. */
export interface ExportOptions {
  /** The checkpoint's step (the newest when absent). */
  step?: number;
  /** Export the v1 teacher network instead of the student. @default {false} */
  teacher?: boolean;
  /**
   * `safetensors`, or `pt`: a `torch.save` file of `{"state_dict": ..., "feature_size": ...}`
   * that `torch.load(f, weights_only=True)` opens.
   * @default {"safetensors"}
   */
  format?: "safetensors" | "pt";
}

/**
 * The backbone of a run folder's checkpoint as MONAI safetensors (or `torch.save`) bytes,
 * and the step; the metadata records the feature size, the VoCo version, the step and the
 * network.
 */
export async function exportBackbone(
  dir: string,
  options: ExportOptions = {},
): Promise<{ bytes: Uint8Array; step: number; path: string }> {
  const config = await readRunConfig(dir);
  const steps = await listCheckpoints(dir);
  if (steps.length === 0) {
    throw new BadInputError(`${dir} has no checkpoint yet`, { path: dir });
  }
  const step = options.step ?? steps[steps.length - 1];
  if (!steps.includes(step)) {
    throw new BadInputError(
      `${dir} has no checkpoint of step ${step}; it has ${steps.join(", ")}`,
      { path: dir },
    );
  }
  if (options.teacher && config.version !== "v1") {
    throw new BadInputError("Only a v1 run has a teacher network (v2 shares one backbone)");
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
    if (!t) {
      throw new BadInputError(`Checkpoint ${path} has no ${prefix}${spec.name}`, { path });
    }
    arrays.set(spec.name, t.data);
  }
  const metadata = {
    voco_version: config.version,
    voco_step: String(step),
    network: options.teacher ? "teacher" : "student",
    feature_size: String(config.featureSize),
    toolkit: TOOLKIT_VERSION,
  };
  const bytes = await exportWeights(arrays, swin, metadata, { head: false });
  if (options.format !== "pt") return { bytes, step, path };
  const named = [...readSafetensors(bytes).tensors].map((
    [name, t],
  ): [string, TorchSaveTensor] => [name, {
    shape: t.shape,
    data: t.data,
    dtype: t.dtype === "I64" ? "I64" : "F32",
  }]);
  const pt = writeTorchSave(named, {
    ...metadata,
    feature_size: config.featureSize,
    voco_step: step,
  }, "backbone");
  return { bytes: pt, step, path };
}
