// The recipe ops, one entry each: how a JSON recipe spells it, what it does to a volume,
// and the grid it makes (known before it runs, so that a case that would fill the memory
// fails up front). Adding an op is one member of `RecipeStep` and one entry of `OPS`: the
// table's type has a key for every op, so a missing entry (or field) does not compile.
import type { Mat4, Shape3, Volume, VoxelArray } from "../volume.ts";
import { orientToRas, type PickOrder, rasGeometry } from "../transforms/orient.ts";
import { resampleToSpacing, spacingGrid } from "../transforms/resample.ts";
import { scaleIntensityRange } from "../transforms/window.ts";
import { type Box, cropToBox, foregroundBox } from "../transforms/crop.ts";
import { padGrid, padToMinShape } from "../transforms/pad.ts";
import { resizeGrid, resizeToShape } from "../transforms/resize.ts";
import { BadInputError } from "../../cache/errors.ts";

/** Three numbers, one per axis. */
export type Triple = [number, number, number];

/** One preprocessing step; a recipe is a plain array of them, applied in order. */
export type RecipeStep =
  | { op: "castInt16" }
  | { op: "orient"; axcodes: "RAS" }
  | { op: "spacing"; spacingMm: Triple }
  | { op: "window"; windowHu: [number, number]; outputRange: [number, number]; clip: boolean }
  | { op: "cropForeground"; threshold: number; marginVoxels: number }
  | { op: "pad"; minShape: Triple }
  | { op: "resize"; shape: Triple };

/** What the steps of one run decided, for the cache's attributes. */
export interface StepRecord {
  /** The foreground box, in the grid the crop step saw. */
  cropBox?: Box;
  /** The value range the window step guarantees (used for quantised storage). */
  valueRange?: [number, number];
}

/** A volume's grid: shape and voxel-to-RAS affine. */
export interface Grid {
  /** Voxels per axis. */
  shape: Shape3;
  /** Voxel index to RAS millimetres. */
  affine: Mat4;
}

/** How a run applies its steps. */
export interface StepContext {
  /**
   * The order in which the orient step picks axes (nibabel's, on the source file's axes:
   * `SOURCE_FILE_ORDER` for a reader's volume); array order when absent.
   */
  pick?: PickOrder;
}

/** An invalid recipe field; the message names it and its value. */
export class RecipeError extends BadInputError {}

/** Everything about one op. */
export interface OpSpec<S extends RecipeStep> {
  /** The JSON keys of the step besides `op`. */
  keys: readonly string[];
  /** The step from its JSON object (`at(key)` names a field in messages). */
  parse(s: Record<string, unknown>, at: (key: string) => string): S;
  /** Runs the step; records what it decided in `record`. */
  apply(
    v: Volume<VoxelArray>,
    step: S,
    record: StepRecord,
    context?: StepContext,
  ): Volume<VoxelArray>;
  /** The grid after the step (for a crop: the grid before, an upper bound). */
  grid(g: Grid, step: S, context?: StepContext): Grid;
}

type Ops = { [K in RecipeStep["op"]]: OpSpec<Extract<RecipeStep, { op: K }>> };

const keep = (g: Grid): Grid => g;

/** Every op of the recipes. */
export const OPS: Ops = {
  castInt16: {
    keys: [],
    parse: () => ({ op: "castInt16" }),
    apply: (v) => {
      const d = new Int16Array(v.data.length);
      d.set(v.data as ArrayLike<number>);
      return { data: d, shape: v.shape, affine: v.affine };
    },
    grid: keep,
  },
  orient: {
    keys: ["axcodes"],
    parse: (s, at) => {
      if ((s.axcodes ?? "RAS") !== "RAS") throw new RecipeError(`${at("axcodes")} must be "RAS"`);
      return { op: "orient", axcodes: "RAS" };
    },
    apply: (v, _step, _record, context) => orientToRas(v, context?.pick),
    grid: (g, _step, context) => rasGeometry(g.shape, g.affine, context?.pick),
  },
  spacing: {
    keys: ["spacingMm"],
    parse: (s, at) => ({
      op: "spacing",
      spacingMm: numbers(s.spacingMm, 3, at("spacingMm"), positive, "positive numbers") as Triple,
    }),
    apply: (v, step) => resampleToSpacing(v, { spacingMm: step.spacingMm }),
    grid: (g, step) => spacingGrid(g.shape, g.affine, step.spacingMm),
  },
  window: {
    keys: ["windowHu", "outputRange", "clip"],
    parse: (s, at) => {
      const windowHu = numbers(s.windowHu, 2, at("windowHu"), () => true, "numbers");
      if (!(windowHu[1] > windowHu[0])) throw new RecipeError(`${at("windowHu")} needs high > low`);
      const outputRange = s.outputRange === undefined
        ? [0, 1]
        : numbers(s.outputRange, 2, at("outputRange"), () => true, "numbers");
      if (s.clip !== undefined && typeof s.clip !== "boolean") {
        throw new RecipeError(`${at("clip")} must be true or false`);
      }
      return {
        op: "window",
        windowHu: windowHu as [number, number],
        outputRange: outputRange as [number, number],
        clip: (s.clip as boolean | undefined) ?? true,
      };
    },
    apply: (v, step, record) => {
      if (step.clip) {
        record.valueRange = [Math.min(...step.outputRange), Math.max(...step.outputRange)];
      }
      return scaleIntensityRange(v, step);
    },
    grid: keep,
  },
  cropForeground: {
    keys: ["threshold", "marginVoxels"],
    parse: (s, at) => {
      if (typeof s.threshold !== "number" || !Number.isFinite(s.threshold)) {
        throw new RecipeError(
          `${at("threshold")} must be a number, got ${JSON.stringify(s.threshold)}`,
        );
      }
      const margin = s.marginVoxels ?? 0;
      if (typeof margin !== "number" || !Number.isInteger(margin) || margin < 0) {
        throw new RecipeError(`${at("marginVoxels")} must be an integer >= 0`);
      }
      return { op: "cropForeground", threshold: s.threshold, marginVoxels: margin };
    },
    apply: (v, step, record) => {
      const box = foregroundBox(v, step);
      if (!box) {
        throw new BadInputError(`No voxel above the foreground threshold ${step.threshold}`);
      }
      record.cropBox = box;
      return cropToBox(v, box);
    },
    grid: keep,
  },
  pad: {
    keys: ["minShape"],
    parse: (s, at) => ({
      op: "pad",
      minShape: numbers(s.minShape, 3, at("minShape"), positiveInt, "positive integers") as Triple,
    }),
    apply: (v, step) => padToMinShape(v, step),
    grid: (g, step) => padGrid(g.shape, g.affine, step.minShape),
  },
  resize: {
    keys: ["shape"],
    parse: (s, at) => ({
      op: "resize",
      shape: numbers(s.shape, 3, at("shape"), positiveInt, "positive integers") as Triple,
    }),
    apply: (v, step) => resizeToShape(v, step),
    grid: (g, step) => resizeGrid(g.shape, g.affine, step.shape),
  },
};

/** The entry of a step's op, typed for that step (TypeScript cannot index `OPS` by a union). */
export function opOf<S extends RecipeStep>(step: S): OpSpec<S> {
  return OPS[step.op] as unknown as OpSpec<S>;
}

/** `n` finite numbers passing `check`, else a `RecipeError` naming `where` and the value. */
export function numbers(
  v: unknown,
  n: number,
  where: string,
  check: (x: number) => boolean,
  what: string,
): number[] {
  if (
    !Array.isArray(v) || v.length !== n ||
    v.some((x) => typeof x !== "number" || !Number.isFinite(x) || !check(x))
  ) {
    throw new RecipeError(`${where} must be ${n} ${what}, got ${JSON.stringify(v)}`);
  }
  return v as number[];
}

/** A positive number. */
export const positive = (x: number): boolean => x > 0;
/** A positive integer. */
export const positiveInt = (x: number): boolean => Number.isInteger(x) && x > 0;
