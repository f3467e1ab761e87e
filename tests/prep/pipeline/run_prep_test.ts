// Tests of whole prep runs: reruns, changes, bad inputs, kills.
import { join } from "node:path";
import { FileSystemStore } from "@zarrita/storage";
import { discoverCases } from "../../../prep/pipeline/discover.ts";
import { runPrep, type RunPrepOptions } from "../../../prep/pipeline/run_prep.ts";
import { resolveRecipe } from "../../../prep/recipes/recipe.ts";
import { makePhantom } from "../../../prep/synthetic/phantom.ts";
import { writeNifti } from "../../../prep/formats/write_nifti.ts";
import { listCases } from "../../../cache/write/cache_dir.ts";
import { readCase } from "../../../cache/read/read_case.ts";
import { main as prepMain } from "../../../tasks/prep.ts";
import { HAVE_SHARED, SHARED } from "../../_shared.ts";
import { assert, assertEquals, runTask, tempDir } from "../../_helpers.ts";

const STORAGE = { dtype: "uint16", compressor: "blosc-zstd", level: 3, chunk: 64 } as const;

async function writePhantoms(
  dir: string,
  n: number,
  shape: [number, number, number] = [48, 40, 24],
) {
  await Deno.mkdir(dir, { recursive: true });
  for (let i = 0; i < n; i++) {
    const v = makePhantom({
      shape,
      spacingMm: [3, 3, 4],
      orientation: i % 2 ? "LPS" : "RAS",
      seed: i + 1,
    });
    await Deno.writeFile(join(dir, `case${i}.nii.gz`), writeNifti(v));
  }
}

function options(out: string, extra: Partial<RunPrepOptions> = {}): RunPrepOptions {
  return {
    out,
    dataset: "phantoms",
    recipe: resolveRecipe("voco-v2"),
    storage: STORAGE,
    workers: 2,
    ...extra,
  };
}

async function chunkMtimes(root: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const c of await listCases(root)) {
    out.set(c.name, (await Deno.stat(join(c.dir, "zarr.json"))).mtime!.getTime());
  }
  return out;
}

Deno.test("runPrep() rerun on the same inputs rewrites nothing", async () => {
  await using dir = await tempDir();
  await writePhantoms(`${dir.path}/in`, 3);
  const cases = await discoverCases([`${dir.path}/in`]);
  const out = `${dir.path}/cache`;
  const first = await runPrep(cases, options(out));
  assertEquals(first.reports.map((r) => r.status), ["written", "written", "written"]);
  const before = await chunkMtimes(out);
  const second = await runPrep(cases, options(out));
  assertEquals(second.reports.map((r) => r.status), ["unchanged", "unchanged", "unchanged"]);
  assertEquals([...(await chunkMtimes(out))], [...before]);
  const names = (await listCases(out)).map((c) => `${c.dataset}/${c.name}`);
  assertEquals(names, ["phantoms/case0", "phantoms/case1", "phantoms/case2"]);
  assertEquals(await Array.fromAsync(Deno.readDir(`${out}/.staging`)), []);
});

Deno.test("runPrep() reprocesses exactly the cases whose source or recipe changed", async () => {
  await using dir = await tempDir();
  await writePhantoms(`${dir.path}/in`, 3);
  const cases = await discoverCases([`${dir.path}/in`]);
  const out = `${dir.path}/cache`;
  await runPrep(cases, options(out));
  // Same bytes, new mtime: still unchanged (identity is the content hash).
  await Deno.writeFile(cases[0].path, await Deno.readFile(cases[0].path));
  const v = makePhantom({
    shape: [48, 40, 24],
    spacingMm: [3, 3, 4],
    orientation: "LPS",
    seed: 99,
  });
  await Deno.writeFile(cases[1].path, writeNifti(v));
  const again = await runPrep(cases, options(out));
  assertEquals(again.reports.map((r) => r.status), ["unchanged", "written", "unchanged"]);
  const changed = await runPrep(
    cases,
    options(out, { recipe: resolveRecipe("voco-v2", { spacingMm: [2, 2, 2] }) }),
  );
  assertEquals(changed.reports.map((r) => r.status), ["written", "written", "written"]);
  const c = await readCase(new FileSystemStore(out), "/phantoms/case0");
  assertEquals(c.attributes.spacing, [2, 2, 2]);
  const dtype = await runPrep(
    cases,
    options(out, {
      recipe: resolveRecipe("voco-v2", { spacingMm: [2, 2, 2] }),
      storage: { ...STORAGE, dtype: "uint8" },
    }),
  );
  assertEquals(dtype.reports.map((r) => r.status), ["written", "written", "written"]);
});

Deno.test("runPrep() records the source, recipe, geometry and encoding of each case", async () => {
  await using dir = await tempDir();
  await writePhantoms(`${dir.path}/in`, 2);
  const cases = await discoverCases([`${dir.path}/in`]);
  await runPrep(cases, options(`${dir.path}/cache`));
  const c = await readCase(new FileSystemStore(`${dir.path}/cache`), "/phantoms/case1");
  const a = c.attributes;
  assertEquals(a.source, "case1.nii.gz");
  assertEquals(a.source_bytes, (await Deno.stat(cases[1].path)).size);
  assert(/^[0-9a-f]{64}$/.test(a.source_sha256));
  assertEquals(a.recipe.name, "voco-v2");
  assertEquals((a.original as { orientation: string }).orientation, "LPS");
  assertEquals((a.original as { shape: number[] }).shape, [48, 40, 24]);
  assertEquals(a.spacing, [1.5, 1.5, 1.5]);
  assertEquals(a.scale_factor, 1 / 425);
  assertEquals(a.add_offset, 0);
  assert(a.crop_box !== null);
  assert(c.shape.every((n) => n >= 64));
  const root = JSON.parse(await Deno.readTextFile(`${dir.path}/cache/zarr.json`));
  assertEquals(root.node_type, "group");
  const group = JSON.parse(await Deno.readTextFile(`${dir.path}/cache/phantoms/zarr.json`));
  assertEquals(group.node_type, "group");
});

Deno.test("bad inputs fail only their own case, named with the reason, and never enter the cache", async () => {
  await using dir = await tempDir();
  const inp = `${dir.path}/in`;
  await writePhantoms(inp, 2, [40, 32, 20]);
  const good = writeNifti(makePhantom({ shape: [20, 20, 20] }), { gzip: false });
  await Deno.writeFile(`${inp}/not_nifti.nii.gz`, new TextEncoder().encode("this is a text file"));
  const gz = await Deno.readFile(`${inp}/case0.nii.gz`);
  await Deno.writeFile(`${inp}/truncated.nii.gz`, gz.subarray(0, gz.length >> 1));
  await Deno.writeFile(`${inp}/lying.nii`, good.subarray(0, good.length - 100));
  const flat = writeNifti({ ...makePhantom({ shape: [20, 20, 2] }), shape: [20, 40, 1] }, {
    gzip: false,
  });
  await Deno.writeFile(`${inp}/flat.nii`, flat);
  const four = good.slice();
  new DataView(four.buffer).setInt16(40, 4, true);
  new DataView(four.buffer).setInt16(48, 2, true);
  await Deno.writeFile(`${inp}/four_d.nii`, four);
  const nan = makePhantom({ shape: [20, 20, 20] });
  nan.data[5] = NaN;
  await Deno.writeFile(`${inp}/nan.nii.gz`, writeNifti(nan, { dtype: "float32" }));
  const zero = good.slice();
  new DataView(zero.buffer).setFloat32(280, 0, true); // srow_x[0]
  await Deno.writeFile(`${inp}/zero_spacing.nii`, zero);
  const out = `${dir.path}/cache`;
  const { code, text } = await runTask(prepMain, [inp, "--out", out, "--quiet", "--workers", "2"]);
  assertEquals(code, 1);
  for (
    const [file, reason] of [
      ["not_nifti.nii.gz", /Not a NIfTI/],
      ["truncated.nii.gz", /gzip/],
      ["lying.nii", /promises/],
      ["flat.nii", /2-D/],
      ["four_d.nii", /4-D/],
      ["nan.nii.gz", /NaN/],
      ["zero_spacing.nii", /spacing along axis 0 is zero/],
    ] as const
  ) {
    const line = text.split("\n").find((l) => l.includes("FAILED") && l.includes(file));
    assert(line && reason.test(line), `no failure line for ${file} matching ${reason}:\n${text}`);
  }
  assert(/2 written, 0 unchanged, 7 failed/.test(text), text);
  assertEquals((await listCases(out)).map((c) => c.name), ["case0", "case1"]);
  assertEquals(await Array.fromAsync(Deno.readDir(`${out}/.staging`)), []);
});

Deno.test("a run killed with SIGKILL leaves no half case and the next run finishes the job", async () => {
  await using dir = await tempDir();
  const inp = `${dir.path}/in`;
  await writePhantoms(inp, 8, [160, 160, 60]);
  const out = `${dir.path}/cache`;
  const task = new URL("../../../tasks/prep.ts", import.meta.url).pathname;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", task, inp, "--out", out, "--workers", "1", "--quiet", "--chunk", "64"],
    stdout: "null",
    stderr: "null",
  }).spawn();
  // Wait until at least one case is published, then kill mid-run.
  const t0 = Date.now();
  while (Date.now() - t0 < 60_000) {
    await new Promise((r) => setTimeout(r, 100));
    const done = await listCases(out).catch(() => []);
    if (done.length >= 1) break;
  }
  child.kill("SIGKILL");
  await child.status;
  const partial = await listCases(out);
  assert(partial.length >= 1 && partial.length < 8, `${partial.length} cases before the kill`);
  for (const c of partial) {
    const v = await readCase(new FileSystemStore(out), `/${c.dataset}/${c.name}`);
    assert(v.data.length === v.shape[0] * v.shape[1] * v.shape[2]);
  }
  const cases = await discoverCases([inp]);
  const rerun = await runPrep(cases, options(out, { dataset: "in" }));
  const statuses = rerun.reports.map((r) => r.status);
  assertEquals(statuses.filter((s) => s === "failed").length, 0);
  assertEquals(statuses.filter((s) => s === "unchanged").length, partial.length);
  assertEquals((await listCases(out)).length, 8);
  assertEquals(await Array.fromAsync(Deno.readDir(`${out}/.staging`)), []);
});

Deno.test({
  name: "the default cache of the example CT is at most 1/6 of MONAI's float32 bytes",
  ignore: !HAVE_SHARED,
  async fn() {
    await using dir = await tempDir();
    const cases = await discoverCases([`${SHARED}data/ct/example_ct.nii.gz`]);
    const s = await runPrep(cases, options(`${dir.path}/cache`, { workers: 1 }));
    const o = s.reports[0].outcome!;
    const f32 = 4 * o.shape!.reduce((a, b) => a * b, 1);
    assert(o.bytesOut * 6 <= f32, `cache ${o.bytesOut} bytes vs float32 ${f32}`);
  },
});
