// Tests of resolveRecipe(): overrides change the steps and are named in the recipe's name.
import { RECIPES, resolveRecipe } from "../../../prep/recipes/recipe.ts";
import { assertEquals } from "../../_helpers.ts";

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
