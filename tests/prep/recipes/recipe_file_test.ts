// The chest recipe and custom recipes from JSON files.
import { join } from "node:path";
import { FileSystemStore } from "@zarrita/storage";
import { makePhantom } from "../../../prep/synthetic/phantom.ts";
import { writeNifti } from "../../../prep/formats/write_nifti.ts";
import { applyRecipe, RECIPES, resolveRecipe } from "../../../prep/recipes/recipe.ts";
import { parseRecipe } from "../../../prep/recipes/recipe_file.ts";
import { columnNorms } from "../../../prep/transforms/_affine.ts";
import { readCase } from "../../../cache/read/read_case.ts";
import { main as prepMain } from "../../../tasks/prep.ts";
import { assert, assertClose, assertEquals, runTask, tempDir } from "../../_helpers.ts";
import { BadInputError } from "../../../cache/errors.ts";

Deno.test("the chest recipe resamples to 1.25 x 1.25 x 5 mm with the lung window", () => {
  const v = makePhantom({ shape: [64, 56, 40], spacingMm: [2, 2, 2.5] });
  const r = applyRecipe(v, RECIPES.chest);
  assertClose(columnNorms(r.volume.affine), [1.25, 1.25, 5], 1e-9);
  assertEquals(r.valueRange, [0, 1]);
  // The phantom's lungs (-850 HU) map to 0.1 in the chest window; the abdominal voco-v2
  // window clips them to 0 with the air.
  const lungs = (d: Float32Array) => d.filter((x) => x > 0.08 && x < 0.12).length;
  assert(lungs(r.volume.data) > 1000, `${lungs(r.volume.data)} lung voxels`);
  assert(lungs(applyRecipe(v, RECIPES["voco-v2"]).volume.data) < lungs(r.volume.data) / 10);
  assertEquals(r.volume.data.reduce((a, b) => Math.max(a, b)), 1); // bone (700 HU) is above the window
});

Deno.test("parseRecipe() builds a recipe from a built-in one with overrides, or from steps", () => {
  const extended = parseRecipe({
    name: "chest-copy",
    extends: "voco-v2",
    spacing: [1.25, 1.25, 5],
    window: [-1000, 500],
  }, "a.json");
  assertEquals(extended, { name: "chest-copy", steps: RECIPES.chest.steps });
  const stepped = parseRecipe({
    name: "iso2",
    steps: [
      { op: "orient", axcodes: "RAS" },
      { op: "spacing", spacingMm: [2, 2, 2] },
      { op: "window", windowHu: [-500, 500] },
      { op: "cropForeground", threshold: 0.1 },
      { op: "pad", minShape: [96, 96, 96] },
    ],
  }, "b.json");
  assertEquals(stepped.steps[2], {
    op: "window",
    windowHu: [-500, 500],
    outputRange: [0, 1],
    clip: true,
  });
  assertEquals(stepped.steps[3], { op: "cropForeground", threshold: 0.1, marginVoxels: 0 });
  assertEquals(parseRecipe({ name: "s2", extends: "voco-v2", spacing: 2 }, "c").steps[1], {
    op: "spacing",
    spacingMm: [2, 2, 2],
  });
});

Deno.test("parseRecipe() rejects unknown keys and bad values, naming the file and the key", () => {
  const bad: [unknown, RegExp][] = [
    [{ name: "x", extends: "voco-v2", spacng: 2 }, /r\.json: recipe: unknown key "spacng"/],
    [{ name: "x", extends: "voco-v3" }, /"extends" must name a built-in recipe.*"voco-v3"/],
    [{ name: "x", extends: "voco-v2", spacing: [1, 0, 1] }, /"spacing" must be 3 positive numbers/],
    [{ name: "x", extends: "voco-v2", window: [250, -175] }, /high > low/],
    [{ name: "x", extends: "voco-v1", spacing: 2 }, /no spacing step/],
    [{ name: "x", steps: [{ op: "blur" }] }, /step 1: unknown op "blur"/],
    [
      { name: "x", steps: [{ op: "pad", minShape: [64, 64] }] },
      /step 1 \(pad\) minShape must be 3/,
    ],
    [
      { name: "x", steps: [{ op: "spacing", spacingMm: [1, 1, 1], mode: "nearest" }] },
      /unknown key "mode"/,
    ],
    [{ name: "x", steps: [] }, /non-empty/],
    [{ name: "bad name!", extends: "voco-v2" }, /"name" must be a simple name/],
    [[1, 2], /must be a JSON object/],
  ];
  for (const [json, pattern] of bad) {
    let message = "no error";
    try {
      parseRecipe(json, "r.json");
    } catch (e) {
      assert(e instanceof BadInputError, `${e}: not bad input`);
      message = e.message;
    }
    assert(pattern.test(message), `"${message}" does not match ${pattern}`);
    assert(message.startsWith("Recipe r.json: "), message);
  }
});

Deno.test("prep --recipe FILE applies and records a custom recipe; a bad file is a usage error", async () => {
  await using dir = await tempDir();
  await Deno.writeFile(
    join(dir.path, "ct.nii.gz"),
    writeNifti(makePhantom({ shape: [30, 30, 20] })),
  );
  await Deno.writeTextFile(
    join(dir.path, "iso3.json"),
    JSON.stringify({ name: "iso3", extends: "voco-v2", spacing: 3, minSize: 32 }),
  );
  const out = join(dir.path, "cache");
  const prepWith = (recipe: string) =>
    runTask(prepMain, [join(dir.path, "ct.nii.gz"), "--out", out, "--recipe", recipe, "--quiet"]);
  const ok = await prepWith(join(dir.path, "iso3.json"));
  assertEquals(ok.code, 0, ok.text);
  const c = await readCase(new FileSystemStore(out), `/${dir.path.split("/").pop()}/ct`);
  assertEquals(
    c.attributes.recipe,
    resolveRecipe(
      parseRecipe(JSON.parse(await Deno.readTextFile(join(dir.path, "iso3.json"))), "x"),
    ),
  );
  assertClose(c.attributes.spacing, [3, 3, 3], 1e-9);
  await Deno.writeTextFile(
    join(dir.path, "bad.json"),
    JSON.stringify({ name: "b", extends: "voco-v2", sigma: 1 }),
  );
  const bad = await prepWith(join(dir.path, "bad.json"))
    .catch((e) => ({ code: -1, text: (e as Error).message }));
  assertEquals(bad.code, -1);
  assert(/bad\.json: recipe: unknown key "sigma"/.test(bad.text), bad.text);
});
