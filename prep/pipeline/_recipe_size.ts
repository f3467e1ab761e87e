// The voxel counts a recipe will produce, known before it runs, so that a case whose
// resampling would fill the memory fails up front with a message.
import type { Recipe } from "../recipes/recipe.ts";
import { type Grid, opOf } from "../recipes/ops.ts";
import type { Shape3, Volume, VoxelArray } from "../volume.ts";
import { SOURCE_FILE_ORDER } from "../transforms/orient.ts";
import { formatSize } from "../formats/_checks.ts";
import { BadInputError } from "../../cache/errors.ts";

/**
 * Throws a `BadInputError` when a step of `recipe` applied to `volume` would produce more
 * than `maxVoxels` voxels (or an invalid shape). Every op says its output grid; crops
 * are assumed to keep everything, so the bound holds for any foreground.
 */
export function checkRecipeSize(
  volume: Volume<VoxelArray>,
  recipe: Recipe,
  maxVoxels: number,
): void {
  let grid: Grid = { shape: volume.shape, affine: volume.affine };
  for (const step of recipe.steps) {
    grid = opOf(step).grid(grid, step, { pick: SOURCE_FILE_ORDER });
    const shape = grid.shape;
    const voxels = shape[0] * shape[1] * shape[2];
    if (!shape.every((n) => Number.isSafeInteger(n) && n >= 1) || !(voxels <= maxVoxels)) {
      throw new BadInputError(
        `The recipe's ${step.op} step would make ${shape.join("x")} voxels ` +
          `(${formatSize(4 * voxels)} as float32), more than --max-voxels ${maxVoxels}`,
      );
    }
  }
}

/**
 * Throws a `BadInputError` when an image whose header declares `geometry` would hold, or
 * its recipe make, more than `maxVoxels` voxels: checked from the header alone, before
 * the voxels are read or inflated.
 */
export function checkDeclaredVoxels(
  geometry: { shape: Shape3; affine: Volume<VoxelArray>["affine"] },
  recipe: Recipe,
  maxVoxels: number,
): void {
  const voxels = geometry.shape[0] * geometry.shape[1] * geometry.shape[2];
  if (!(voxels <= maxVoxels)) {
    throw new BadInputError(
      `The image declares ${geometry.shape.join("x")} voxels (${formatSize(4 * voxels)} as ` +
        `float32), more than --max-voxels ${maxVoxels}; refused before reading its voxels`,
    );
  }
  checkRecipeSize({ ...geometry, data: new Float32Array(0) }, recipe, maxVoxels);
}
