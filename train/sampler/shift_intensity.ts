// Adding a constant to every voxel (MONAI `ShiftIntensity`, what `RandShiftIntensity` applies).
import type { Volume } from "../../prep/volume.ts";

/** `x + offset` for every voxel, as float32 (MONAI `ShiftIntensity(offset)`). */
export function shiftIntensity(volume: Volume, offset: number): Volume<Float32Array> {
  const out = new Float32Array(volume.data.length);
  const src = volume.data;
  for (let i = 0; i < out.length; i++) out[i] = src[i] + offset;
  return { data: out, shape: [...volume.shape], affine: volume.affine.map((r) => [...r]) };
}
