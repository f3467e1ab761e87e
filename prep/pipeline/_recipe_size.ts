// The voxel counts a recipe will produce, known before it runs, so that a case whose
// resampling would fill the memory fails up front with a message.
import type { Recipe } from "../recipes/recipe.ts";
import { type Grid, opOf } from "../recipes/ops.ts";
import type { Volume, VoxelArray } from "../volume.ts";
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
