// Tests of `cache export` (exportNifti): a cached case as NIfTI reads back with the same
// values and RAS affine; --stored keeps the integers with scl_slope/scl_inter; a dataset
// into a folder; a missing case named with the closest one.
import { join } from "node:path";
import { exportNifti } from "../../../prep/formats/export_nifti.ts";
import { readNifti } from "../../../prep/formats/read_nifti.ts";
import { writeNifti } from "../../../prep/formats/write_nifti.ts";
import { makePhantom } from "../../../prep/synthetic/phantom.ts";
import { planPrep, runPlan } from "../../../prep/pipeline/plan.ts";
import { CacheReader } from "../../../cache/read/cache_reader.ts";
import { main as cacheMain } from "../../../tasks/cache.ts";
import { BadInputError } from "../../../cache/errors.ts";
import { assert, assertClose, assertEquals, fileOrder, runTask, tempDir } from "../../_helpers.ts";

async function prepped(dir: string): Promise<string> {
  const inputs = join(dir, "in");
  await Deno.mkdir(inputs);
  for (const [i, orientation] of ["LPS", "RAS"].entries()) {
    const v = makePhantom({ shape: [48, 40, 24], spacingMm: [3, 3, 4], orientation, seed: i + 1 });
    await Deno.writeFile(join(inputs, `case${i}.nii.gz`), writeNifti(v));
  }
  const out = join(dir, "c.zarr");
  await runPlan(await planPrep({ out, inputs: [inputs] }), { workers: 1 });
  return out;
}

Deno.test("exportNifti() writes a case that reads back with the cache's values and RAS affine", async () => {
  await using dir = await tempDir();
  const cache = await prepped(dir.path);
  const reader = await CacheReader.open(cache);
  const [info] = await reader.list();
  const want = await reader.readCrop(info.path, [0, 0, 0], info.shape!);
  const file = join(dir.path, "case0.nii.gz");
  assertEquals(await exportNifti(cache, file, { case: "in/case0" }), [file]);
  const back = readNifti(await Deno.readFile(file));
  assertEquals(back.sourceDtype, "float32");
  const v = fileOrder(back.volume);
  assertEquals(v.shape, want.shape);
  assertClose(v.affine, want.affine, 1e-5);
  assert(v.data.every((x, i) => x === want.data[i]), "the same float32 values");
  // The stored integers with scl_slope/scl_inter: a reader decodes the cached values.
  const stored = join(dir.path, "stored.nii");
  await exportNifti(cache, stored, { case: "in/case0", stored: true });
  const s = readNifti(await Deno.readFile(stored));
  assertEquals(s.sourceDtype, "uint16");
  const sv = fileOrder(s.volume);
  const step = info.attributes!.scale_factor!;
  assert(sv.data.every((x, i) => Math.abs(x - want.data[i]) < 1e-3 * step), "decoded");
});

Deno.test("cache export writes a dataset into a folder and names a missing case", async () => {
  await using dir = await tempDir();
  const cache = await prepped(dir.path);
  const out = join(dir.path, "nifti");
  const r = await runTask(cacheMain, ["export", cache, "--dataset", "in", "--out", out]);
  assertEquals(r.code, 0, r.text);
  assertEquals([...Deno.readDirSync(out)].map((e) => e.name).sort(), [
    "case0.nii.gz",
    "case1.nii.gz",
  ]);
  const missing = await runTask(cacheMain, ["export", cache, "--case", "in/cas0", "--out", "x"])
    .catch((e) => e as Error);
  assert(
    missing instanceof Error && /No case in\/cas0 .*did you mean in\/case0/.test(missing.message),
    String(missing),
  );
});

Deno.test("cache export --case onto a folder is refused naming it, and a failed write leaves no temporary file", async () => {
  await using dir = await tempDir();
  const cache = await prepped(dir.path);
  const folder = join(dir.path, "out");
  await Deno.mkdir(folder);
  const e = await runTask(cacheMain, ["export", cache, "--case", "in/case0", "--out", folder])
    .catch((e) => e as Error);
  assert(e instanceof BadInputError && e.message.includes(`${folder} is a folder`), String(e));
  // Into a folder that does not exist: the system's error, and nothing left beside it.
  const lost = join(dir.path, "missing", "x.nii.gz");
  const f = await runTask(cacheMain, ["export", cache, "--case", "in/case0", "--out", lost])
    .catch((e) => e as Error);
  assert(f instanceof Deno.errors.NotFound, String(f));
  const left = [...Deno.readDirSync(dir.path)].map((e) => e.name).filter((n) => n.includes("tmp"));
  assertEquals(left, []);
  assertEquals([...Deno.readDirSync(folder)], []);
  // A dataset into a folder where a case's file name is taken by a folder: the rename
  // fails after the write, and the temporary file goes too.
  await Deno.mkdir(join(folder, "case0.nii.gz"));
  const g = await runTask(cacheMain, ["export", cache, "--dataset", "in", "--out", folder])
    .catch((e) => e as Error);
  assert(g instanceof Deno.errors.IsADirectory, String(g));
  assertEquals([...Deno.readDirSync(folder)].map((e) => e.name), ["case0.nii.gz"]);
});
