// Recipes from JSON files: parsing and validation with messages that name the field.
import { type Recipe, RECIPES, type RecipeStep, resolveRecipe, type Triple } from "./recipe.ts";

// Custom recipes are JSON files in one of two shapes:
//   {"name": "abdomen-2mm", "extends": "voco-v2", "spacing": [2, 2, 2], "window": [-200, 300]}
//   {"name": "my-recipe", "steps": [{"op": "orient", "axcodes": "RAS"}, ...]}
// Every key and value is checked; the error names the file, the key and the bad value.

const OVERRIDE_KEYS = ["spacing", "window", "cropThreshold", "minSize", "resize"] as const;

const STEP_KEYS: Record<RecipeStep["op"], string[]> = {
  castInt16: [],
  orient: ["axcodes"],
  spacing: ["spacingMm"],
  window: ["windowHu", "outputRange", "clip"],
  cropForeground: ["threshold", "marginVoxels"],
  pad: ["minShape"],
  resize: ["shape"],
};

class RecipeError extends RangeError {}

function numbers(
  v: unknown,
  n: number,
  where: string,
  check: (x: number) => boolean,
  what: string,
) {
  if (
    !Array.isArray(v) || v.length !== n ||
    v.some((x) => typeof x !== "number" || !Number.isFinite(x) || !check(x))
  ) {
    throw new RecipeError(`${where} must be ${n} ${what}, got ${JSON.stringify(v)}`);
  }
  return v as number[];
}
const positive = (x: number) => x > 0;
const positiveInt = (x: number) => Number.isInteger(x) && x > 0;

function checkKeys(obj: Record<string, unknown>, allowed: readonly string[], where: string) {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) {
      throw new RecipeError(
        `${where}: unknown key "${k}" (allowed: ${allowed.join(", ") || "none"})`,
      );
    }
  }
}

function parseStep(raw: unknown, where: string): RecipeStep {
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) {
    throw new RecipeError(`${where} must be an object with an "op"`);
  }
  const s = raw as Record<string, unknown>;
  const op = s.op as RecipeStep["op"];
  if (typeof op !== "string" || !(op in STEP_KEYS)) {
    throw new RecipeError(
      `${where}: unknown op ${JSON.stringify(s.op)} (one of ${Object.keys(STEP_KEYS).join(", ")})`,
    );
  }
  checkKeys(s, ["op", ...STEP_KEYS[op]], `${where} (${op})`);
  const at = (k: string) => `${where} (${op}) ${k}`;
  switch (op) {
    case "castInt16":
      return { op };
    case "orient":
      if ((s.axcodes ?? "RAS") !== "RAS") throw new RecipeError(`${at("axcodes")} must be "RAS"`);
      return { op, axcodes: "RAS" };
    case "spacing":
      return {
        op,
        spacingMm: numbers(s.spacingMm, 3, at("spacingMm"), positive, "positive numbers") as Triple,
      };
    case "window": {
      const windowHu = numbers(s.windowHu, 2, at("windowHu"), () => true, "numbers") as [
        number,
        number,
      ];
      if (!(windowHu[1] > windowHu[0])) throw new RecipeError(`${at("windowHu")} needs high > low`);
      const outputRange = s.outputRange === undefined
        ? [0, 1] as [number, number]
        : numbers(s.outputRange, 2, at("outputRange"), () => true, "numbers") as [number, number];
      if (s.clip !== undefined && typeof s.clip !== "boolean") {
        throw new RecipeError(`${at("clip")} must be true or false`);
      }
      return { op, windowHu, outputRange, clip: (s.clip as boolean | undefined) ?? true };
    }
    case "cropForeground": {
      if (typeof s.threshold !== "number" || !Number.isFinite(s.threshold)) {
        throw new RecipeError(
          `${at("threshold")} must be a number, got ${JSON.stringify(s.threshold)}`,
        );
      }
      const margin = s.marginVoxels ?? 0;
      if (typeof margin !== "number" || !Number.isInteger(margin) || margin < 0) {
        throw new RecipeError(`${at("marginVoxels")} must be an integer >= 0`);
      }
      return { op, threshold: s.threshold, marginVoxels: margin };
    }
    case "pad":
      return {
        op,
        minShape: numbers(
          s.minShape,
          3,
          at("minShape"),
          positiveInt,
          "positive integers",
        ) as Triple,
      };
    case "resize":
      return {
        op,
        shape: numbers(s.shape, 3, at("shape"), positiveInt, "positive integers") as Triple,
      };
  }
}

/**
 * Validates a custom recipe given as parsed JSON: either `{"name", "extends", …overrides}`
 * (a built-in recipe with `spacing`, `window`, `cropThreshold`, `minSize`, `resize`
 * changed) or `{"name", "steps": [...]}` (steps as in {@linkcode RecipeStep}). `origin`
 * (the file) prefixes every error, which is a `RangeError` naming the key and value.
 */
export function parseRecipe(json: unknown, origin: string): Recipe {
  try {
    if (!json || typeof json !== "object" || Array.isArray(json)) {
      throw new RecipeError("a recipe must be a JSON object");
    }
    const r = json as Record<string, unknown>;
    if (typeof r.name !== "string" || !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(r.name)) {
      throw new RecipeError(`"name" must be a simple name, got ${JSON.stringify(r.name)}`);
    }
    if ("steps" in r) {
      checkKeys(r, ["name", "steps"], "recipe");
      if (!Array.isArray(r.steps) || r.steps.length === 0) {
        throw new RecipeError(`"steps" must be a non-empty list`);
      }
      return { name: r.name, steps: r.steps.map((s, i) => parseStep(s, `step ${i + 1}`)) };
    }
    checkKeys(r, ["name", "extends", ...OVERRIDE_KEYS], "recipe");
    if (typeof r.extends !== "string" || !(r.extends in RECIPES)) {
      throw new RecipeError(
        `"extends" must name a built-in recipe (${Object.keys(RECIPES).join(", ")}), ` +
          `got ${JSON.stringify(r.extends)}; or give "steps"`,
      );
    }
    const triple = (k: string, check: (x: number) => boolean, what: string) =>
      r[k] === undefined
        ? undefined
        : typeof r[k] === "number"
        ? numbers([r[k], r[k], r[k]], 3, `"${k}"`, check, what) as Triple
        : numbers(r[k], 3, `"${k}"`, check, what) as Triple;
    if (r.cropThreshold !== undefined && typeof r.cropThreshold !== "number") {
      throw new RecipeError(`"cropThreshold" must be a number`);
    }
    const recipe = resolveRecipe(r.extends, {
      spacingMm: triple("spacing", positive, "positive numbers"),
      windowHu: r.window === undefined
        ? undefined
        : numbers(r.window, 2, `"window"`, () => true, "numbers") as [number, number],
      cropThreshold: r.cropThreshold as number | undefined,
      minShape: triple("minSize", positiveInt, "positive integers"),
      resizeShape: triple("resize", positiveInt, "positive integers"),
    });
    return { name: r.name, steps: recipe.steps };
  } catch (e) {
    if (e instanceof RangeError) throw new RangeError(`Recipe ${origin}: ${e.message}`);
    throw e;
  }
}

/** Reads and validates a recipe JSON file (see {@linkcode parseRecipe}). */
export function readRecipeFile(path: string): Recipe {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    throw new RangeError(`Recipe ${path}: cannot read (${(e as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new RangeError(`Recipe ${path}: not valid JSON (${(e as Error).message})`);
  }
  return parseRecipe(json, path);
}
