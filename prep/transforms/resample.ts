// Resampling to a voxel spacing (MONAI `Spacing`, trilinear, border padding).
import type { Mat4, Shape3, Volume, VoxelArray } from "../volume.ts";
import { invert4, matmul4 } from "./_affine.ts";
import { gridUnchanged, shapeOffset, targetSpacing, zoomAffine } from "./_spacing_rule.ts";
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
 * The output grid of MONAI's `Spacing(pixdim, diagonal=False)` (MONAI 1.3.2):
 *
 * 1. the target spacing, except that an axis within 1e-3 mm of it keeps its own;
 * 2. the directions: the input affine's columns made orthonormal in order (its QR
 *    rotation, `zoom_affine`), so a rotation is kept and a shear (gantry tilt) dropped,
 *    then scaled to the spacing;
 * 3. shape and origin (`compute_shape_offset`): the 8 corner voxel centres of the input
 *    mapped into the new grid, `round(extent + 1)` voxels per axis (half to even), and
 *    voxel 0 at the corner that is smallest along all three axes, or, when none is (the
 *    grids rotated against each other, or float32 rounding in a rotated header), the
 *    output centred on the input with whole voxel counts (`n / 2`, not `(n - 1) / 2`).
 *
 * ```
 * input centres  |  x     x     x     x  |      (n_in = 4, 3 mm)
 * output centres |  o  o  o  o  o  o  o  |      (n_out = round(3 * 3 / 1.5) + 1 = 7)
 * ```
 *
 * The rules are in `_spacing_rule.ts`, one function per MONAI function.
 */
export function spacingGrid(shape: Shape3, affine: Mat4, spacingMm: readonly number[]): OutputGrid {
  const out = zoomAffine(affine, targetSpacing(affine, spacingMm));
  const { shape: outShape, offset } = shapeOffset(shape, affine, out);
  for (let r = 0; r < 3; r++) out[r][3] = offset[r];
  return { shape: outShape, affine: out };
}

/**
 * Whether resampling a volume of `shape` and `affine` onto `grid` leaves it as it is:
 * MONAI's `Spacing` then returns its input unchanged (float32, the input's affine).
 */
export function isSameGrid(shape: Shape3, affine: Mat4, grid: OutputGrid): boolean {
  return gridUnchanged(shape, affine, grid);
}

/**
 * Resamples a volume to a new voxel spacing (MONAI's `Spacing`, `mode="bilinear"`,
 * `padding_mode="border"`, `align_corners=False`): trilinear interpolation at the
 * exact input position of each output voxel centre, coordinates clamped to the image.
 * The grid is {@linkcode spacingGrid}'s; when it is the input's own (see
 * {@linkcode isSameGrid}), the volume is returned as float32 with its own affine.
 */
export function resampleToSpacing(
  volume: Volume<VoxelArray>,
  options: ResampleOptions,
): Volume<Float32Array> {
  const grid = spacingGrid(volume.shape, volume.affine, options.spacingMm);
  if (isSameGrid(volume.shape, volume.affine, grid)) {
    const data = volume.data instanceof Float32Array ? volume.data : Float32Array.from(volume.data);
    return { data, shape: volume.shape, affine: volume.affine };
  }
  return resampleToGrid(volume, grid);
}

/**
 * How far (in input voxels, across the whole output grid) one off-axis term of the
 * voxel mapping may move a sample when it is dropped to sample separably. Three such
 * terms move a sample by at most 1e-6 voxel: 0.004 HU at a 4000 HU step between
 * neighbours. Rounding noise of DICOM cosines (1e-10) passes; a rotation, even one
 * a float32 header leaves a hair from axis-aligned (1e-6 voxel and more), does not.
 */
const SEPARABLE_TOL = 3e-7;

/** Trilinear resampling of `volume` onto an arbitrary output grid, border padding. */
export function resampleToGrid(volume: Volume<VoxelArray>, grid: OutputGrid): Volume<Float32Array> {
  const m = matmul4(invert4(volume.affine), grid.affine);
  // Output axis a reads input axis axes[a] when the mapping is a scaled permutation
  // (axis-aligned images in any storage order): then the sampling is separable.
  const axes = [0, 1, 2].map((a) => {
    const reach = Math.max(1, grid.shape[a] - 1);
    const rows = [0, 1, 2].filter((r) => Math.abs(m[r][a]) * reach > SEPARABLE_TOL);
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
