/**
 * VoCo pre-training: the SwinUNETR-v2 backbone and VoCo head in TensorFlow.js with MONAI's
 * parameter names, safetensors import/export, `torch.save` checkpoints and starting weights,
 * the loss plot, backends and custom kernels; the VoCo sampler over the cache, losses, heads,
 * AdamW and schedule, and the training loop behind `deno task pretrain`.
 *
 * @module
 */

/** Whether `deno task pretrain` can train (it can since toolkit 0.1.0). */
export const PRETRAIN_AVAILABLE = true;

export { type BackendName, BACKENDS, useBackend } from "./backend.ts";
export {
  type NamedTensor,
  readSafetensors,
  type SafetensorsDtype,
  writeSafetensors,
} from "./weights/safetensors.ts";
export { featureLength, type SwinConfig, swinConfig } from "./swin/config.ts";
export {
  fromTorch,
  initParams,
  type ParamKind,
  type Params,
  type ParamSpec,
  paramSpecs,
  tfjsShape,
  toTorch,
  toVariable,
} from "./swin/params.ts";
export { exportWeights, importWeights } from "./swin/weights.ts";
export {
  type InitWeights,
  type InitWeightsFormat,
  loadInitWeights,
  type LoadInitWeightsOptions,
} from "./swin/init_weights.ts";
export {
  readTorchCheckpoint,
  type ReadTorchCheckpointOptions,
  type TorchCheckpoint,
  type TorchDtype,
  type TorchTensor,
} from "./weights/torch_checkpoint.ts";
export { type LossPlotOptions, lossPlotSvg } from "./run/plot.ts";
export { type ForwardOptions, swinTransformer } from "./swin/swin_transformer.ts";
export { projectionHead, vocoForward, type VocoOutputs } from "./swin/backbone.ts";
export { compareWithReference, type OutputDiff } from "./swin/check.ts";
export { conv3dSame } from "./kernels/conv3d.ts";
export { STOCK_ATTENTION_LIMITS, windowAttentionCore } from "./kernels/window_attention.ts";
export { gatherBias, gatherRows } from "./kernels/gather_rows.ts";
export { dense } from "./kernels/dense.ts";
export { layerNormLastAxis } from "./kernels/layer_norm.ts";
export { instanceNormChannelsLast } from "./kernels/instance_norm.ts";
export { typedArrayKernels, useStockOps } from "./kernels/dispatch.ts";
export { kernelThreads, setKernelThreads } from "./kernels/_pool.ts";
export { permutation, Rng, streamRng } from "./rng.ts";
export {
  buildSample,
  positionLabels,
  type ReadBox,
  regionShape,
  regionStart,
  type SampleSpec,
  sampleSpec,
  type VocoSample,
} from "./sampler/voco_sample.ts";
export {
  type CaseList,
  EpochOrder,
  type ListOptions,
  listTrainingCases,
  type TrainingCase,
} from "./sampler/cases.ts";
export {
  type Batch,
  BatchLoader,
  type FailedSample,
  type LoaderOptions,
} from "./sampler/loader.ts";
export { flipAxis } from "./sampler/flip.ts";
export { rotate90 } from "./sampler/rotate90.ts";
export { shiftIntensity } from "./sampler/shift_intensity.ts";
export {
  positionLogits,
  regularisation,
  splitRows,
  stopGradient,
  vocoLossV1,
  vocoLossV2,
  type VocoV1Terms,
  type VocoV2Terms,
} from "./voco/loss.ts";
export { emaUpdate, headForward, headSpecs, initHead } from "./voco/head.ts";
export {
  type FeatureDropout,
  type StepInput,
  type StepTerms,
  VocoModel,
  type VocoModelOptions,
  type VocoVersion,
} from "./voco/model.ts";
export { replayVocoStep, type StepDiff, type StepReplay } from "./voco/check.ts";
export { AdamW, type AdamWOptions, clipGradNorm } from "./optim/adamw.ts";
export { warmupCosine, type WarmupCosineOptions } from "./optim/schedule.ts";
export {
  checkpointName,
  type CheckpointState,
  listCheckpoints,
  loadCheckpoint,
  readCheckpoint,
  saveCheckpoint,
} from "./run/checkpoint.ts";
export { exportBackbone, type ExportOptions } from "./run/export.ts";
export {
  type MetricsRow,
  pretrain,
  type PretrainConfig,
  pretrainConfig,
  type PretrainHooks,
  type PretrainSummary,
  readMetrics,
  readRunConfig,
  TOOLKIT_VERSION,
} from "./pretrain.ts";
export { checkConfig, configDefaults, RESUMABLE } from "./config.ts";
export { type MemoryPlan, planMemory } from "./memory.ts";
export { type PreparedRun, prepareRun, type RunRequest } from "./run/prepare.ts";
export { dryRun, type DryRunReport } from "./run/dry_run.ts";
export { NonFiniteError } from "./run/finite.ts";
export { LOSS_TERMS } from "./voco/loss.ts";
export { type TorchSaveTensor, writeTorchSave } from "./weights/torch_save.ts";
export { backboneFeatures } from "./swin/backbone.ts";
export { initFrom, type InitReport } from "./run/init_from.ts";
