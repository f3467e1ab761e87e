/** Hyper-parameters of the VoCo SwinUNETR-v2 backbone and its projection head. */
export interface SwinConfig {
  /** Embedding size of the first stage (12, 24, 48 = "B", 96, 192). */
  featureSize: number;
  /** Input channels (1 for CT). */
  inChannels: number;
  /** Attention window edge in tokens. */
  windowSize: number;
  /** Patch embedding edge in voxels. */
  patchSize: number;
  /** Swin blocks per stage. */
  depths: [number, number, number, number];
  /** Attention heads per stage. */
  numHeads: [number, number, number, number];
  /** MLP hidden size over embedding size. */
  mlpRatio: number;
  /** Sizes of the projection head's three Linear layers. */
  headDims: [number, number, number];
  /** Stochastic depth rate (linearly increasing over blocks, as MONAI), training only. */
  dropPathRate: number;
  /** Dropout after attention and MLP projections, training only. */
  dropRate: number;
}

/** MONAI SwinUNETR(use_v2=True) defaults with VoCo's head, for a feature size. */
export function swinConfig(featureSize = 48, overrides: Partial<SwinConfig> = {}): SwinConfig {
  if (![12, 24, 48, 96, 192].includes(featureSize)) {
    throw new RangeError(`Feature size must be 12, 24, 48, 96 or 192, got ${featureSize}`);
  }
  return {
    featureSize,
    inChannels: 1,
    windowSize: 7,
    patchSize: 2,
    depths: [2, 2, 2, 2],
    numHeads: [3, 6, 12, 24],
    mlpRatio: 4,
    headDims: [256, 256, 256],
    dropPathRate: 0,
    dropRate: 0,
    ...overrides,
  };
}

/** Length of the pooled feature vector: the five encoder outputs concatenated (24 x fs). */
export function featureLength(c: SwinConfig): number {
  const f = c.featureSize;
  return f + f + 2 * f + 4 * f + 16 * f;
}
