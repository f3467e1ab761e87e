// MONAI parity on the shared CTs (axis-aligned, oblique, gantry-tilted): the cache equals the
// golden outputs.
import { readNifti } from "../../prep/formats/read_nifti.ts";
import { writeNifti } from "../../prep/formats/write_nifti.ts";
import { applyRecipe, resolveRecipe } from "../../prep/recipes/recipe.ts";
import { orientToRas } from "../../prep/transforms/orient.ts";
import { resampleToSpacing } from "../../prep/transforms/resample.ts";
import { orientationCode } from "../../prep/transforms/orient.ts";
import { discoverCases } from "../../prep/pipeline/discover.ts";
import { runPrep } from "../../prep/pipeline/run_prep.ts";
import { readCase } from "../../cache/read/read_case.ts";
import { FileSystemStore } from "@zarrita/storage";
import { HAVE_SHARED, loadGolden, maxAbsDiff, SHARED } from "../_shared.ts";
import { assert, assertClose, assertEquals, permuteAxes, tempDir } from "../_helpers.ts";

const ignore = !HAVE_SHARED;
const EXAMPLE = `${SHARED}data/ct/example_ct.nii.gz`;

Deno.test({
  name: "resampleToSpacing() equals MONAI Spacing(1.5 mm) on the example CT",
  ignore,
  async fn() {
    const img = readNifti(await Deno.readFile(EXAMPLE));
    const g = await loadGolden("example_ct.spacing-1.5");
    const r = resampleToSpacing(orientToRas(img.volume), { spacingMm: [1.5, 1.5, 1.5] });
    assertEquals(r.shape, g.shape);
    assertClose(r.affine, g.affine, 1e-4);
    const d = maxAbsDiff(r.data, g.data);
    assert(d <= 0.05, `max abs difference ${d} HU`);
  },
});

for (const recipe of ["voco-v2", "voco-v1"]) {
  Deno.test({
    name: `applyRecipe(${recipe}) equals the MONAI golden output`,
    ignore,
    async fn() {
      const img = readNifti(await Deno.readFile(EXAMPLE));
      const g = await loadGolden(`example_ct.${recipe}`);
      const r = applyRecipe(img.volume, resolveRecipe(recipe));
      assertEquals(r.volume.shape, g.shape);
      assertClose(r.volume.affine, g.affine, 1e-4);
      const d = maxAbsDiff(r.volume.data, g.data);
      assert(d <= 1e-4, `max abs difference ${d}`);
    },
  });
}

/** True when the shared input and golden of `name` are present. */
function haveShared(name: string): boolean {
  try {
    return Deno.statSync(`${SHARED}data/ct/${name}.nii.gz`).isFile &&
      Deno.statSync(`${SHARED}golden/${name}.voco-v2.npy.gz`).isFile;
  } catch {
    return false;
  }
}

for (
  const [name, what] of [
    ["oblique_ct", "an oblique CT (affine rotated 25 degrees about z, 10 about x)"],
    ["tilted_ct", "a gantry-tilted CT (sheared sform, unsheared qform)"],
  ]
) {
  Deno.test({
    name: `applyRecipe(voco-v2) equals the MONAI golden output on ${what}`,
    ignore: !haveShared(name),
    async fn() {
      const img = readNifti(await Deno.readFile(`${SHARED}data/ct/${name}.nii.gz`));
      const g = await loadGolden(`${name}.voco-v2`);
      const r = applyRecipe(img.volume, resolveRecipe("voco-v2"));
      assertEquals(r.volume.shape, g.shape);
      assertClose(r.volume.affine, g.affine, 1e-4);
      const d = maxAbsDiff(r.volume.data, g.data);
      const da = maxAbsDiff(r.volume.affine.flat(), g.affine.flat());
      console.log(`${name}: max abs difference ${d} (values), ${da} mm (affine)`);
      assert(d <= 1e-4, `max abs difference ${d}`);
    },
  });
}

Deno.test({
  name: "a float32 cache of the oblique and tilted CTs equals the golden outputs",
  ignore: !haveShared("oblique_ct") || !haveShared("tilted_ct"),
  async fn() {
    await using dir = await tempDir();
    const names = ["oblique_ct", "tilted_ct"];
    const cases = await discoverCases(names.map((n) => `${SHARED}data/ct/${n}.nii.gz`));
    const out = `${dir.path}/cache`;
    const s = await runPrep(cases, {
      out,
      dataset: "shared",
      recipe: resolveRecipe("voco-v2"),
      storage: { dtype: "float32", compressor: "blosc-zstd", level: 3, chunk: 64 },
      workers: 1,
    });
    assertEquals(s.reports.map((r) => r.status), ["written", "written"]);
    // The sheared sform is replaced by the qform, as MONAI's loader does, and the run says so.
    const warnings = s.reports.find((r) => r.case.name === "tilted_ct")!.outcome?.warnings;
    assert(
      warnings?.some((w) => /qform is used instead.*sheared by 15 degrees/.test(w)),
      `no shear warning: ${JSON.stringify(warnings)}`,
    );
    for (const name of names) {
      const g = await loadGolden(`${name}.voco-v2`);
      const v = await readCase(new FileSystemStore(out), `/shared/${name}`);
      assertEquals(v.shape, g.shape, name);
      assertClose(v.affine, g.affine, 1e-4, name);
      const d = maxAbsDiff(v.data, g.data);
      assert(d <= 1e-4, `${name}: max abs difference ${d}`);
    }
  },
});

Deno.test({
  name: "a float32 cache of the example CT in three orientations equals the golden outputs",
  ignore,
  async fn() {
    await using dir = await tempDir();
    const img = readNifti(await Deno.readFile(EXAMPLE));
    const inputs = `${dir.path}/in`;
    await Deno.mkdir(inputs);
    await Deno.copyFile(EXAMPLE, `${inputs}/ras.nii.gz`);
    const ras = orientToRas(img.volume);
    const lps = permuteAxes(ras, [0, 1, 2], [true, true, false]);
    const pir = permuteAxes(ras, [1, 2, 0], [true, true, false]);
    assertEquals(orientationCode(lps.affine), "LPS");
    assertEquals(orientationCode(pir.affine), "PIR");
    await Deno.writeFile(`${inputs}/lps.nii.gz`, writeNifti(lps, { dtype: "int32" }));
    await Deno.writeFile(`${inputs}/pir.nii`, writeNifti(pir, { dtype: "int32", gzip: false }));
    const cases = await discoverCases([inputs]);
    assertEquals(cases.map((c) => c.name), ["lps", "pir", "ras"]);
    for (const recipe of ["voco-v2", "voco-v1"]) {
      const out = `${dir.path}/cache-${recipe}`;
      const s = await runPrep(cases, {
        out,
        dataset: "example",
        recipe: resolveRecipe(recipe),
        storage: { dtype: "float32", compressor: "blosc-zstd", level: 3, chunk: 64 },
        workers: 2,
      });
      assertEquals(s.reports.map((r) => r.status), ["written", "written", "written"]);
      const g = await loadGolden(`example_ct.${recipe}`);
      for (const c of cases) {
        const v = await readCase(new FileSystemStore(out), `/example/${c.name}`);
        assertEquals(v.shape, g.shape, c.name);
        assertClose(v.affine, g.affine, 1e-4, `${recipe} ${c.name}`);
        const d = maxAbsDiff(v.data, g.data);
        assert(d <= 1e-4, `${recipe} ${c.name}: max abs difference ${d}`);
      }
    }
  },
});
