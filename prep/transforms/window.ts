// Intensity windowing (MONAI `ScaleIntensityRange` with clipping).
import type { Volume, VoxelArray } from "../volume.ts";

/** Options of {@linkcode scaleIntensityRange}. */
export interface WindowOptions {
  /** Input window `[low, high]` in Hounsfield units. */
  windowHu: readonly [number, number];
  /**
   * Output range the window maps to.
   * @default {[0, 1]}
   */
  outputRange?: readonly [number, number];
  /**
   * Clip values to the output range.
   * @default {true}
   */
  clip?: boolean;
}

/**
 * Linear intensity window (MONAI's `ScaleIntensityRange`):
 * `(v - low) / (high - low) * (b1 - b0) + b0`, clipped to `[b0, b1]` when asked.
 */
export function scaleIntensityRange(
  volume: Volume<VoxelArray>,
  options: WindowOptions,
): Volume<Float32Array> {
  const [a0, a1] = options.windowHu;
  const [b0, b1] = options.outputRange ?? [0, 1];
  if (!(a1 > a0)) throw new RangeError(`Window must have high > low, got [${a0}, ${a1}]`);
  const clip = options.clip ?? true;
  const lo = Math.min(b0, b1), hi = Math.max(b0, b1);
  const src = volume.data;
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) {
    // Same operation order as MONAI: ((v - a0) / (a1 - a0)) * (b1 - b0) + b0.
    let v = ((src[i] - a0) / (a1 - a0)) * (b1 - b0) + b0;
    if (clip) v = v < lo ? lo : v > hi ? hi : v;
    out[i] = v;
  }
  return { data: out, shape: volume.shape, affine: volume.affine };
}
