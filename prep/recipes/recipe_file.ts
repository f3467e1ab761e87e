// Recipes from JSON files: parsing and validation with messages that name the field.
import { type Recipe, RECIPES, resolveRecipe } from "./recipe.ts";
import { BadInputError } from "../../cache/errors.ts";
import {
  numbers,
  OPS,
  positive,
  positiveInt,
  RecipeError,
  type RecipeStep,
  type Triple,
} from "./ops.ts";

// Custom recipes are JSON files in one of two shapes:
//   {"name": "abdomen-2mm", "extends": "voco-v2", "spacing": [2, 2, 2], "window": [-200, 300]}
//   {"name": "my-recipe", "steps": [{"op": "orient", "axcodes": "RAS"}, ...]}
// Every key and value is checked; the error names the file, the key and the bad value.

const OVERRIDE_KEYS = ["spacing", "window", "cropThreshold", "minSize", "resize"] as const;

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
  if (typeof op !== "string" || !Object.hasOwn(OPS, op)) {
    throw new RecipeError(
      `${where}: unknown op ${JSON.stringify(s.op)} (one of ${Object.keys(OPS).join(", ")})`,
    );
  }
  checkKeys(s, ["op", ...OPS[op].keys], `${where} (${op})`);
  return OPS[op].parse(s, (k) => `${where} (${op}) ${k}`);
}

/**
 * Validates a custom recipe given as parsed JSON: either `{"name", "extends", …overrides}`
 * (a built-in recipe with `spacing`, `window`, `cropThreshold`, `minSize`, `resize`
 * changed) or `{"name", "steps": [...]}` (steps as in {@linkcode RecipeStep}). `origin`
 * (the file) prefixes every error, a `RecipeError` (bad input) naming the key and value.
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
    if (e instanceof BadInputError) {
      throw new RecipeError(`Recipe ${origin}: ${(e as Error).message}`, { path: origin });
    }
    throw e;
  }
}

/** Reads and validates a recipe JSON file (see {@linkcode parseRecipe}). */
export function readRecipeFile(path: string): Recipe {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    throw new RecipeError(`Recipe ${path}: cannot read (${(e as Error).message})`, { path });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new RecipeError(`Recipe ${path}: not valid JSON (${(e as Error).message})`, {
      path,
    });
  }
  return parseRecipe(json, path);
}
