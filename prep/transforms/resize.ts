// Resizing to an exact shape (MONAI `Resize`, trilinear, `align_corners=True`).
import type { Mat4, Shape3, Volume, VoxelArray } from "../volume.ts";
import { matmul4 } from "./_affine.ts";
import { axisTable, sampleSeparable } from "./_trilinear.ts";

/** Options of {@linkcode resizeToShape}. */
export interface ResizeOptions {
  /** Output voxel counts. */
  shape: readonly [number, number, number];
}

/**
 * The grid {@linkcode resizeToShape} makes: `shape`, and MONAI's affine, each axis scaled
 * by `n_in / n_out` about the volume centre.
 */
export function resizeGrid(
  inShape: Shape3,
  affine: Mat4,
  shape: readonly [number, number, number],
): { shape: Shape3; affine: Mat4 } {
  const s = [0, 1, 2].map((a) => inShape[a] / shape[a]);
  const scale: Mat4 = [
    [s[0], 0, 0, (s[0] - 1) / 2],
    [0, s[1], 0, (s[1] - 1) / 2],
    [0, 0, s[2], (s[2] - 1) / 2],
    [0, 0, 0, 1],
  ];
  return { shape: [...shape] as Shape3, affine: matmul4(affine, scale) };
}

/**
 * Resizes to a fixed shape (MONAI's `Resize`, `mode="trilinear"`, `align_corners=True`):
 * output index `j` samples input coordinate `j * (n_in - 1) / (n_out - 1)`.
 *
 * The affine is MONAI's: each axis scaled by `n_in / n_out` about the volume centre, so
 * output voxel 0 sits at input coordinate `(s - 1) / 2` in the metadata, as the golden
 * outputs record it (the sampling itself follows `align_corners=True`).
 */
export function resizeToShape(
  volume: Volume<VoxelArray>,
  options: ResizeOptions,
): Volume<Float32Array> {
  const shape = [...options.shape] as Shape3;
  if (shape.some((n) => !Number.isInteger(n) || n < 1)) {
    throw new RangeError(`Resize shape must be positive integers, got ${shape.join("x")}`);
  }
  const tables = [0, 1, 2].map((a) => {
    const nIn = volume.shape[a], nOut = shape[a];
    const step = nOut > 1 ? (nIn - 1) / (nOut - 1) : 0;
    return axisTable(nIn, nOut, (j) => j * step);
  });
  const data = sampleSeparable(volume.data, volume.shape, tables as never);
  return { data, ...resizeGrid(volume.shape, volume.affine, shape) };
}
