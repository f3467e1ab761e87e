// Resampling to a voxel spacing (MONAI `Spacing`, trilinear, border padding).
import type { Mat4, Shape3, Volume, VoxelArray } from "../volume.ts";
import { applyPoint, columnNorms, copy4, invert4, matmul4, roundHalfEven } from "./_affine.ts";
import { axisTable, sampleAffine, sampleSeparable } from "./_trilinear.ts";

/** Options of {@linkcode resampleToSpacing}. */
export interface ResampleOptions {
  /** Target voxel spacing in mm, one per axis. */
  spacingMm: readonly [number, number, number];
}

/** The grid a resampling writes into. */
export interface OutputGrid {
  /** Voxel counts of the output. */
  shape: Shape3;
  /** Voxel index to world of the output. */
  affine: Mat4;
}

/**
 * The output grid of MONAI's `Spacing` (`compute_shape_offset` without extent scaling):
 * the affine's columns are rescaled to the target spacing, the 8 corner voxel centres of
 * the input are mapped into that grid, the shape is `round(extent + 1)` per axis and the
 * origin is put at the corner with the smallest coordinates.
 *
 * ```
 * input centres  |  x     x     x     x  |      (n_in = 4, 3 mm)
 * output centres |  o  o  o  o  o  o  o  |      (n_out = round(3 * 3 / 1.5) + 1 = 7)
 * ```
 */
export function spacingGrid(shape: Shape3, affine: Mat4, spacingMm: readonly number[]): OutputGrid {
  const norms = columnNorms(affine);
  const out = copy4(affine);
  for (let c = 0; c < 3; c++) {
    for (let r = 0; r < 3; r++) out[r][c] = (affine[r][c] / norms[c]) * spacingMm[c];
  }
  const toOut = matmul4(invert4(out), affine);
  const lo = [Infinity, Infinity, Infinity];
  const hi = [-Infinity, -Infinity, -Infinity];
  for (let k = 0; k < 8; k++) {
    const corner = [0, 1, 2].map((a) => ((k >> a) & 1) ? shape[a] - 1 : 0);
    const p = applyPoint(toOut, corner);
    for (let a = 0; a < 3; a++) {
      lo[a] = Math.min(lo[a], p[a]);
      hi[a] = Math.max(hi[a], p[a]);
    }
  }
  const outShape = [0, 1, 2].map((a) => Math.max(1, roundHalfEven(hi[a] - lo[a] + 1))) as Shape3;
  const origin = applyPoint(out, lo);
  for (let r = 0; r < 3; r++) out[r][3] = origin[r];
  return { shape: outShape, affine: out };
}

/**
 * Resamples a volume to a new voxel spacing (MONAI's `Spacing`, `mode="bilinear"`,
 * `padding_mode="border"`, `align_corners=False`): trilinear interpolation at the
 * exact input position of each output voxel centre, coordinates clamped to the image.
 */
export function resampleToSpacing(
  volume: Volume<VoxelArray>,
  options: ResampleOptions,
): Volume<Float32Array> {
  const grid = spacingGrid(volume.shape, volume.affine, options.spacingMm);
  return resampleToGrid(volume, grid);
}

/** Trilinear resampling of `volume` onto an arbitrary output grid, border padding. */
export function resampleToGrid(volume: Volume<VoxelArray>, grid: OutputGrid): Volume<Float32Array> {
  const m = matmul4(invert4(volume.affine), grid.affine);
  // Output axis a reads input axis axes[a] when the mapping is a scaled permutation
  // (axis-aligned images in any storage order): then the sampling is separable.
  const axes = [0, 1, 2].map((a) => {
    const rows = [0, 1, 2].filter((r) => Math.abs(m[r][a]) > 1e-9);
    return rows.length === 1 ? rows[0] : -1;
  });
  const separable = axes.every((r) => r >= 0) && new Set(axes).size === 3;
  const data = separable
    ? sampleSeparable(
      volume.data,
      volume.shape,
      [0, 1, 2].map((a) =>
        axisTable(volume.shape[axes[a]], grid.shape[a], (j) => m[axes[a]][a] * j + m[axes[a]][3])
      ) as never,
      axes as [number, number, number],
    )
    : sampleAffine(volume.data, volume.shape, grid.shape, m);
  return { data, shape: grid.shape, affine: grid.affine };
}
