// Built-in preprocessing recipes (MONAI's VoCo pipelines) and applying one to a volume.
import type { Volume, VoxelArray } from "../volume.ts";
import { orientToRas, rasGeometry, SOURCE_FILE_ORDER } from "../transforms/orient.ts";
import {
  isSameGrid,
  resampleToGrid,
  resampleToSpacing,
  spacingGrid,
} from "../transforms/resample.ts";
import type { Box } from "../transforms/crop.ts";
import { opOf, type RecipeStep, type StepRecord, type Triple } from "./ops.ts";
import { BadInputError } from "../../cache/errors.ts";

export type { RecipeStep, Triple };

/** A named preprocessing recipe. */
export interface Recipe {
  /** Name recorded in the cache (`voco-v2`, `voco-v1`, or a custom one). */
  name: string;
  /** Steps applied in order. */
  steps: RecipeStep[];
}

const WINDOW: RecipeStep = {
  op: "window",
  windowHu: [-175, 250],
  outputRange: [0, 1],
  clip: true,
};

/**
 * The built-in recipes:
 * - `voco-v2` (large-scale VoCo, resampled cache): RAS, 1.5 mm, window -175..250 -> 0..1,
 *   crop to `> 0`, pad to 64.
 * - `voco-v1` (CVPR VoCo 10k): int16, RAS, window, crop to `> 0.3`, resize to 384 x 384 x 96.
 * - `chest` (large-scale VoCo, chest CT collections such as LIDC-IDRI, STOIC21,
 *   TCIA-Covid19): RAS, 1.25 x 1.25 x 5 mm, window -1000..500 -> 0..1, crop to `> 0`,
 *   pad to 64.
 */
export const RECIPES: Readonly<Record<string, Recipe>> = {
  "voco-v2": {
    name: "voco-v2",
    steps: [
      { op: "orient", axcodes: "RAS" },
      { op: "spacing", spacingMm: [1.5, 1.5, 1.5] },
      WINDOW,
      { op: "cropForeground", threshold: 0, marginVoxels: 0 },
      { op: "pad", minShape: [64, 64, 64] },
    ],
  },
  "voco-v1": {
    name: "voco-v1",
    steps: [
      { op: "castInt16" },
      { op: "orient", axcodes: "RAS" },
      WINDOW,
      { op: "cropForeground", threshold: 0.3, marginVoxels: 0 },
      { op: "resize", shape: [384, 384, 96] },
    ],
  },
  "chest": {
    name: "chest",
    steps: [
      { op: "orient", axcodes: "RAS" },
      { op: "spacing", spacingMm: [1.25, 1.25, 5] },
      { op: "window", windowHu: [-1000, 500], outputRange: [0, 1], clip: true },
      { op: "cropForeground", threshold: 0, marginVoxels: 0 },
      { op: "pad", minShape: [64, 64, 64] },
    ],
  },
};

/** Parameter overrides for a recipe, as the `prep` flags give them. */
export interface RecipeOverrides {
  /** Replaces the spacing step's target spacing. */
  spacingMm?: Triple;
  /** Replaces the window in HU. */
  windowHu?: [number, number];
  /** Replaces the foreground threshold. */
  cropThreshold?: number;
  /** Replaces the minimum shape of the pad step. */
  minShape?: Triple;
  /** Replaces the shape of the resize step. */
  resizeShape?: Triple;
}

/** Each override: its flag name (recorded in recipe names), its step and that step's field. */
const OVERRIDE_FIELDS: Record<keyof RecipeOverrides, [string, RecipeStep["op"], string]> = {
  spacingMm: ["spacing", "spacing", "spacingMm"],
  windowHu: ["window", "window", "windowHu"],
  cropThreshold: ["crop-threshold", "cropForeground", "threshold"],
  minShape: ["min-size", "pad", "minShape"],
  resizeShape: ["resize", "resize", "shape"],
};

/**
 * Returns a recipe with overrides applied (a new object): a built-in one by name, or a
 * recipe given as a plain object (as parsed from a recipe JSON file). Overrides that
 * change a step are named in the result's name, so the cache tells it from the original:
 * `voco-v2` with another spacing and window is `voco-v2+spacing,window`.
 */
export function resolveRecipe(recipe: string | Recipe, overrides: RecipeOverrides = {}): Recipe {
  const base = typeof recipe === "string" ? RECIPES[recipe] : recipe;
  const name = typeof recipe === "string" ? recipe : recipe.name;
  if (!base) {
    throw new BadInputError(
      `Unknown recipe "${name}"; choose one of ${
        Object.keys(RECIPES).join(", ")
      } or a recipe JSON file`,
    );
  }
  const steps: RecipeStep[] = structuredClone(base.steps);
  const need = (op: RecipeStep["op"], flag: string) => {
    const s = steps.find((s) => s.op === op);
    if (!s) throw new BadInputError(`Recipe "${name}" has no ${op} step for ${flag} to change`);
    return s;
  };
  const o = overrides;
  if (o.spacingMm) {
    if (o.spacingMm.some((v) => !(v > 0))) {
      throw new BadInputError(`Spacing must be positive, got ${o.spacingMm.join(",")}`);
    }
    (need("spacing", "--spacing") as { spacingMm: Triple }).spacingMm = o.spacingMm;
  }
  if (o.windowHu) {
    if (!(o.windowHu[1] > o.windowHu[0])) {
      throw new BadInputError(`Window must have high > low, got ${o.windowHu.join(",")}`);
    }
    (need("window", "--window") as { windowHu: [number, number] }).windowHu = o.windowHu;
  }
  if (o.cropThreshold !== undefined) {
    (need("cropForeground", "--crop-threshold") as { threshold: number }).threshold =
      o.cropThreshold;
  }
  if (o.minShape) (need("pad", "--min-size") as { minShape: Triple }).minShape = o.minShape;
  if (o.resizeShape) (need("resize", "--resize") as { shape: Triple }).shape = o.resizeShape;
  // Name the overrides that changed a step (one equal to the recipe's own value does not).
  const suffix = (Object.keys(OVERRIDE_FIELDS) as (keyof RecipeOverrides)[]).filter((k) => {
    const [, op, field] = OVERRIDE_FIELDS[k];
    const before = base.steps.find((s) => s.op === op) as Record<string, unknown> | undefined;
    return o[k] !== undefined && JSON.stringify(before?.[field]) !== JSON.stringify(o[k]);
  }).map((k) => OVERRIDE_FIELDS[k][0]).join(",");
  return { name: suffix ? `${base.name}+${suffix}` : base.name, steps };
}

/** The result of {@linkcode applyRecipe}: the volume and what the steps decided. */
export interface RecipeResult {
  /** The preprocessed volume. */
  volume: Volume<Float32Array>;
  /** The foreground box, in the grid the crop step saw, when the recipe crops. */
  cropBox?: Box;
  /** The value range the window step guarantees (used for quantised storage). */
  valueRange?: [number, number];
}

/** Options of {@linkcode applyRecipe}. */
export interface ApplyRecipeOptions {
  /**
   * The volume's axes are its source file's in reverse order, as every reader here
   * returns them (a C-order view of a file stored first axis fastest). The orient step
   * then decides as MONAI's `Orientation` does on the file's own axes; `false`: on the
   * volume's axes as they are. It matters only near a tie (a volume turned about 45
   * degrees).
   * @default {true}
   */
  axesReversed?: boolean;
}

/**
 * Runs a recipe on a volume in Hounsfield units, step by step as `OPS` defines them.
 * Throws a `BadInputError` when a crop step finds no foreground (nothing would be left
 * to train on).
 */
export function applyRecipe(
  input: Volume<VoxelArray>,
  recipe: Recipe,
  options: ApplyRecipeOptions = {},
): RecipeResult {
  const pick = options.axesReversed ?? true ? SOURCE_FILE_ORDER : undefined;
  let v: Volume<VoxelArray> = input;
  const record: StepRecord = {};
  const steps = recipe.steps;
  for (let s = 0; s < steps.length; s++) {
    const step = steps[s];
    const next = steps[s + 1];
    if (step.op === "orient" && next?.op === "spacing") {
      // Reorient + resample in one pass: the output grid is computed from the RAS
      // geometry, and the samples are read straight from the stored axes (the same
      // values, since reorienting only permutes and flips).
      const ras = rasGeometry(v.shape, v.affine, pick);
      const grid = spacingGrid(ras.shape, ras.affine, next.spacingMm);
      v = isSameGrid(ras.shape, ras.affine, grid)
        ? resampleToSpacing(orientToRas(v, pick), next)
        : resampleToGrid(v, grid);
      s++;
      continue;
    }
    v = opOf(step).apply(v, step, record, { pick });
  }
  const data = v.data instanceof Float32Array ? v.data : Float32Array.from(v.data);
  return { volume: { data, shape: v.shape, affine: v.affine }, ...record };
}
