// Tests of resolveRecipe() (overrides change the steps and are named in the recipe's name)
// and of the ops table (each op's planned grid, run and JSON form agree).
import { RECIPES, type RecipeStep, resolveRecipe } from "../../../prep/recipes/recipe.ts";
import { opOf, OPS } from "../../../prep/recipes/ops.ts";
import { parseRecipe } from "../../../prep/recipes/recipe_file.ts";
import { makePhantom } from "../../../prep/synthetic/phantom.ts";
import { assert, assertClose, assertEquals } from "../../_helpers.ts";

Deno.test("resolveRecipe() names the overrides that change a recipe", () => {
  assertEquals(resolveRecipe("voco-v2").name, "voco-v2");
  const r = resolveRecipe("voco-v2", { spacingMm: [1.5, 1.5, 2], windowHu: [-1000, 500] });
  assertEquals(r.name, "voco-v2+spacing,window");
  assertEquals(r.steps[1], { op: "spacing", spacingMm: [1.5, 1.5, 2] });
  assertEquals(
    resolveRecipe("voco-v1", { cropThreshold: 0.5, resizeShape: [96, 96, 96] }).name,
    "voco-v1+crop-threshold,resize",
  );
  assertEquals(resolveRecipe("chest", { minShape: [96, 96, 96] }).name, "chest+min-size");
  // An override equal to the recipe's own value changes nothing, so the name stays.
  const same = resolveRecipe("voco-v2", { spacingMm: [1.5, 1.5, 1.5] });
  assertEquals([same.name, same.steps], ["voco-v2", RECIPES["voco-v2"].steps]);
  // A recipe file's name carries the flag overrides too.
  const file = { name: "abdomen-2mm", steps: RECIPES["voco-v2"].steps };
  assertEquals(resolveRecipe(file, { windowHu: [-200, 300] }).name, "abdomen-2mm+window");
});

Deno.test("every op's grid() predicts the shape its apply() makes, and its JSON form parses back", () => {
  // One step of every op (a Record over the op names: a new op without a case fails to compile).
  const steps: { [K in RecipeStep["op"]]: Extract<RecipeStep, { op: K }> } = {
    castInt16: { op: "castInt16" },
    orient: { op: "orient", axcodes: "RAS" },
    spacing: { op: "spacing", spacingMm: [1.5, 2, 2.5] },
    window: { op: "window", windowHu: [-175, 250], outputRange: [0, 1], clip: true },
    cropForeground: { op: "cropForeground", threshold: 0, marginVoxels: 0 },
    pad: { op: "pad", minShape: [24, 8, 40] },
    resize: { op: "resize", shape: [7, 9, 11] },
  };
  assertEquals(Object.keys(steps).sort(), Object.keys(OPS).sort());
  const phantom = makePhantom({ shape: [20, 16, 12], spacingMm: [3, 3, 4], seed: 3 });
  // A flipped, permuted affine, so orient and spacing have work to do.
  const v = { ...phantom, affine: [[0, -3, 0, 40], [3, 0, 0, -10], [0, 0, -4, 30], [0, 0, 0, 1]] };
  for (const step of Object.values(steps) as RecipeStep[]) {
    const predicted = opOf(step).grid({ shape: v.shape, affine: v.affine }, step);
    const out = opOf(step).apply(v, step, {});
    if (step.op === "cropForeground") {
      assert(out.shape.every((n, a) => n <= predicted.shape[a]), `${step.op}: ${out.shape}`);
    } else {
      assertEquals(out.shape, predicted.shape, step.op);
      assertClose(out.affine, predicted.affine, 1e-9, step.op);
    }
    const parsed = parseRecipe({ name: "one", steps: [JSON.parse(JSON.stringify(step))] }, "x");
    assertEquals(parsed.steps, [step], step.op);
  }
});
