/**
 * VoCo pre-training: the SwinUNETR-v2 backbone and VoCo head in TensorFlow.js with MONAI's
 * parameter names, safetensors import/export, `torch.save` checkpoints and starting weights,
 * the loss plot, backends and custom kernels. The sampler over the cache, the VoCo losses and
 * the training loop (`deno task pretrain`) are to come.
 *
 * @module
 */

/** Whether `deno task pretrain` can train yet. */
export const PRETRAIN_AVAILABLE = false;

export { type BackendName, BACKENDS, useBackend } from "./backend.ts";
export {
  type NamedTensor,
  readSafetensors,
  type SafetensorsDtype,
  writeSafetensors,
} from "./safetensors.ts";
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
} from "./torch_checkpoint.ts";
export { type LossPlotOptions, lossPlotSvg } from "./plot.ts";
export { type ForwardOptions, swinTransformer } from "./swin/swin_transformer.ts";
export { projectionHead, vocoForward, type VocoOutputs } from "./swin/voco_model.ts";
export { compareWithReference, type OutputDiff } from "./swin/check.ts";
export { conv3dSame } from "./kernels/conv3d.ts";
export { STOCK_ATTENTION_LIMITS, windowAttentionCore } from "./kernels/window_attention.ts";
export { gatherBias, gatherRows } from "./kernels/gather_rows.ts";
export { dense } from "./kernels/dense.ts";
export { layerNormLastAxis } from "./kernels/layer_norm.ts";
export { instanceNormChannelsLast } from "./kernels/instance_norm.ts";
export { typedArrayKernels, useStockOps } from "./kernels/dispatch.ts";
