// Tests of `deno task cache ls`, `stats`, `rm` and `consolidate`.
import * as zarr from "zarrita";
import { join } from "node:path";
import { FileSystemStore } from "@zarrita/storage";
import { main as prepMain } from "../../tasks/prep.ts";
import { main as cacheMain } from "../../tasks/cache.ts";
import { exitCodeOf } from "../../cli/run.ts";
import { listCases } from "../../cache/write/cache_dir.ts";
import { assert, assertEquals, assertRejects, runTask, tempDir } from "../_helpers.ts";
import { writePhantoms } from "./_run.ts";

async function prepped(dir: string): Promise<{ inputs: string; out: string }> {
  const inputs = join(dir, "ct");
  await writePhantoms(inputs, 3);
  const out = join(dir, "c.zarr");
  const r = await runTask(prepMain, [inputs, "--out", out, "--quiet"]);
  assertEquals(r.code, 0, r.text);
  return { inputs, out };
}

Deno.test("cache ls lists each case's shape, spacing, size and source; stats the totals", async () => {
  await using dir = await tempDir();
  const { out } = await prepped(dir.path);
  const ls = await runTask(cacheMain, ["ls", out]);
  assertEquals(ls.code, 0, ls.text);
  assert(/^ct: 3 case\(s\), /m.test(ls.text), ls.text);
  assert(
    / {2}case0 {2}64x64x64 {2}1\.50x1\.50x1\.50 {2}\d+\.\d kB {2}case0\.nii\.gz/.test(ls.text),
    ls.text,
  );
  const json = JSON.parse((await runTask(cacheMain, ["ls", out, "--json"])).text);
  assertEquals(
    json.cases.map((
      c: { name: string; files: number; layout: string },
    ) => [c.name, c.files, c.layout]),
    [
      ["case0", 2, "sharded"],
      ["case1", 2, "sharded"],
      ["case2", 2, "sharded"],
    ],
  );
  await assertRejects(
    () => runTask(cacheMain, ["ls", out, "--dataset", "nope"]),
    /no such group .*groups: ct/,
  );
  const stats = await runTask(cacheMain, ["stats", out]);
  assertEquals(stats.code, 0, stats.text);
  assert(/^ {2}ct +3 +6 +\d/m.test(stats.text), stats.text);
  const s = JSON.parse((await runTask(cacheMain, ["stats", out, "--json"])).text);
  assertEquals(s.datasets[0].float32Bytes, 3 * 4 * 64 ** 3);
  assertEquals(s.datasets[0].recipes, { "voco-v2": 3 });
  assert(s.total.pd > s.total.f32 && s.total.f32 / s.total.bytes > 6, JSON.stringify(s.total));
});

Deno.test("cache rm removes cases and groups, and refuses anything that is not in a cache", async () => {
  await using dir = await tempDir();
  const { out } = await prepped(dir.path);
  const refuse = async (args: string[], pattern: RegExp) => {
    const e = await assertRejects(() => runTask(cacheMain, ["rm", ...args]), pattern);
    assertEquals(exitCodeOf(e), 2, String(e));
  };
  await refuse([dir.path, "ct"], /is not a VoCo cache .*refused/);
  await refuse([join(out, "ct"), "case0"], /is not a VoCo cache/);
  await refuse([out, "../ct"], /"\.\.\/ct" is not DATASET or DATASET\/CASE/);
  await refuse([out, "ct/case0/c"], /not DATASET or DATASET\/CASE/);
  await refuse([out, "ct/nope"], /ct\/nope: no such case/);
  await refuse([out, ".staging"], /not DATASET or DATASET\/CASE/);
  // A link inside the cache to a folder elsewhere is never followed.
  await Deno.mkdir(join(dir.path, "elsewhere"));
  await Deno.writeTextFile(join(dir.path, "elsewhere", "zarr.json"), '{"node_type":"array"}');
  await Deno.symlink(join(dir.path, "elsewhere"), join(out, "ct", "linked"));
  await refuse([out, "ct/linked"], /not a folder of the cache/);
  // Nothing is removed when one name is bad.
  await refuse([out, "ct/case0", "ct/nope"], /no such case/);
  assertEquals((await listCases(out)).length, 3);
  const r = await runTask(cacheMain, ["rm", out, "ct/case0"]);
  assertEquals(r.code, 0, r.text);
  assertEquals((await listCases(out)).map((c) => c.name), ["case1", "case2"]);
  assert(await Deno.stat(join(dir.path, "elsewhere", "zarr.json")).then(() => true), "kept");
  await Deno.remove(join(out, "ct", "linked"));
  assertEquals((await runTask(cacheMain, ["rm", out, "ct"])).code, 0);
  assertEquals(await listCases(out), []);
});

Deno.test("cache consolidate writes zarr-python's consolidated_metadata, and prep and rm keep it true", async () => {
  await using dir = await tempDir();
  const { inputs, out } = await prepped(dir.path);
  const r = await runTask(cacheMain, ["consolidate", out]);
  assertEquals(r.code, 0, r.text);
  const root = JSON.parse(await Deno.readTextFile(join(out, "zarr.json")));
  assertEquals(root.consolidated_metadata.kind, "inline");
  assertEquals(root.consolidated_metadata.must_understand, false);
  assertEquals(Object.keys(root.consolidated_metadata.metadata).sort(), [
    "ct",
    "ct/case0",
    "ct/case1",
    "ct/case2",
  ]);
  assert(root.attributes.voco_cache, "the root's attributes are kept");
  // zarrita opens the hierarchy from the one document.
  const store = await zarr.withConsolidatedMetadata(new FileSystemStore(out), { format: "v3" });
  assertEquals(store.contents().filter((n) => n.kind === "array").length, 3);
  // A later prep adds its case; rm removes one.
  await writePhantoms(join(dir.path, "more"), 1);
  await Deno.rename(join(dir.path, "more", "case0.nii.gz"), join(inputs, "case9.nii.gz"));
  assertEquals((await runTask(prepMain, [inputs, "--out", out, "--quiet"])).code, 0);
  await runTask(cacheMain, ["rm", out, "ct/case1"]);
  const after = JSON.parse(await Deno.readTextFile(join(out, "zarr.json")));
  assertEquals(Object.keys(after.consolidated_metadata.metadata).sort(), [
    "ct",
    "ct/case0",
    "ct/case2",
    "ct/case9",
  ]);
});
