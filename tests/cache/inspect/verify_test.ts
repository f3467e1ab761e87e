// Tests of `cache verify` and of reading caches made before checksums: damage of every
// kind found and named, --fix and the next prep rebuilding, old caches still readable.
import { join } from "node:path";
import { FileSystemStore } from "@zarrita/storage";
import { main as cacheMain } from "../../../tasks/cache.ts";
import { main as prepMain } from "../../../tasks/prep.ts";
import { readCase } from "../../../cache/read/read_case.ts";
import { verifyCache } from "../../../cache/inspect/verify.ts";
import { listCases } from "../../../cache/write/cache_dir.ts";
import { CacheReader } from "../../../cache/read/cache_reader.ts";
import { writePhantoms } from "../../tasks/_run.ts";
import { assert, assertEquals, assertRejects, runTask, tempDir } from "../../_helpers.ts";

async function prepped(
  dir: string,
  extra: string[] = [],
): Promise<{ inputs: string; out: string }> {
  const inputs = join(dir, "in"), out = join(dir, "c.zarr");
  await writePhantoms(inputs, 3, [60, 50, 40]);
  const r = await runTask(prepMain, [
    inputs,
    "--out",
    out,
    "--quiet",
    "--dataset-name",
    "ds",
    "--chunk",
    "32",
    ...extra,
  ]);
  assertEquals(r.code, 0, r.text);
  return { inputs, out };
}

Deno.test("cache verify passes a sound cache, reports MB/s, and names each kind of damage", async () => {
  await using dir = await tempDir();
  const { inputs, out } = await prepped(dir.path);
  const ok = await runTask(cacheMain, ["verify", out, "--quiet"]);
  assertEquals(ok.code, 0, ok.text);
  assert(/verified 3 case\(s\), \d+ chunks, .* MB\/s\): all sound/.test(ok.text), ok.text);

  // A flipped bit inside case0's shard, case1's shard cut short, case2's fingerprint edited.
  const shard = (n: string) => join(out, "ds", n, "c", "0", "0", "0");
  const a = await Deno.readFile(shard("case0"));
  a[100] ^= 0x10;
  await Deno.writeFile(shard("case0"), a);
  const b = await Deno.readFile(shard("case1"));
  await Deno.writeFile(shard("case1"), b.subarray(0, b.length - 10));
  const metaPath = join(out, "ds", "case2", "zarr.json");
  const meta = JSON.parse(await Deno.readTextFile(metaPath));
  meta.attributes.recipe.steps[1].pixdim = [1, 1, 1];
  await Deno.writeTextFile(metaPath, JSON.stringify(meta));
  const bad = await runTask(cacheMain, ["verify", out, "--quiet"]);
  assertEquals(bad.code, 1, bad.text);
  assert(
    /BROKEN ds\/case0: inner chunk \[\d,\d,\d\] of shard c\/0\/0\/0: crc32c mismatch/.test(
      bad.text,
    ),
    bad.text,
  );
  assert(/BROKEN ds\/case1: shard index of c\/0\/0\/0: crc32c mismatch/.test(bad.text), bad.text);
  assert(/BROKEN ds\/case2: attributes: fingerprint .* does not match/.test(bad.text), bad.text);
  assert(/3 broken; --fix removes them/.test(bad.text), bad.text);

  const fixed = await runTask(cacheMain, ["verify", out, "--fix", "--quiet"]);
  assertEquals(fixed.code, 1, fixed.text);
  assert(
    /repaired: removed ds\/case0, removed ds\/case1, removed ds\/case2 \(run prep again/.test(
      fixed.text,
    ),
    fixed.text,
  );
  assertEquals((await listCases(out)).length, 0);
  const again = await runTask(prepMain, [
    inputs,
    "--out",
    out,
    "--quiet",
    "--dataset-name",
    "ds",
    "--chunk",
    "32",
  ]);
  assertEquals(again.code, 0, again.text);
  assert(/3 written/.test(again.text), again.text);
  assertEquals((await runTask(cacheMain, ["verify", out, "--quiet"])).code, 0);
});

Deno.test("a chunk deleted from a chunked cache fails reads and verify (it no longer reads as zeros)", async () => {
  await using dir = await tempDir();
  const { out } = await prepped(dir.path, ["--layout", "chunked"]);
  assert(await Deno.stat(join(out, "ds", "case0", "c", "1", "0", "1")).then(() => true), "chunked");
  await Deno.remove(join(out, "ds", "case0", "c", "1", "0", "1"));
  const inspect = await runTask(cacheMain, ["inspect", out, "--case", "ds/case0"]).catch((e) => ({
    code: 1,
    text: String(e),
  }));
  assertEquals(inspect.code, 1, inspect.text);
  assert(/chunk c\/1\/0\/1 is missing/.test(inspect.text), inspect.text);
  const report = await verifyCache(out);
  const broken = report.checks.filter((c) => c.problems.length);
  assertEquals(broken.map((c) => c.name), ["case0"]);
  assert(/chunk c\/1\/0\/1 is missing/.test(broken[0].problems[0]), broken[0].problems[0]);
});

Deno.test("a cache made before checksums and layouts stays readable and unchanged by prep", async () => {
  await using dir = await tempDir();
  const { inputs, out } = await prepped(dir.path, ["--layout", "chunked"]);
  // Turn it into what the previous version wrote: no crc32c, no stored_chunks, no layout.
  const root = JSON.parse(await Deno.readTextFile(join(out, "zarr.json")));
  delete root.attributes.voco_cache.layout;
  await Deno.writeTextFile(join(out, "zarr.json"), JSON.stringify(root));
  for (const c of await listCases(out)) {
    const meta = JSON.parse(await Deno.readTextFile(join(c.dir, "zarr.json")));
    meta.codecs = meta.codecs.filter((x: { name: string }) => x.name !== "crc32c");
    delete meta.attributes.stored_chunks;
    delete meta.attributes.voco_integrity;
    delete meta.attributes.storage.layout;
    await Deno.writeTextFile(join(c.dir, "zarr.json"), JSON.stringify(meta));
    const strip = async (d: string): Promise<void> => {
      for await (const e of Deno.readDir(d)) {
        const p = join(d, e.name);
        if (e.isDirectory) await strip(p);
        else await Deno.writeFile(p, (await Deno.readFile(p)).subarray(0, -4));
      }
    };
    await strip(join(c.dir, "c"));
  }
  const v = await readCase(new FileSystemStore(out), "/ds/case0");
  assertEquals(v.shape.length, 3);
  const check = await runTask(cacheMain, ["verify", out, "--quiet"]);
  assertEquals(check.code, 0, check.text);
  assert(/note: 3 case\(s\) written before chunk checksums/.test(check.text), check.text);
  const rerun = await runTask(prepMain, [
    inputs,
    "--out",
    out,
    "--quiet",
    "--dataset-name",
    "ds",
    "--chunk",
    "32",
  ]);
  assertEquals(rerun.code, 0, rerun.text);
  assert(/0 written, 3 unchanged/.test(rerun.text), rerun.text);
});

Deno.test("cache verify knows what the cache holds: a case's zarr.json gone, the consolidated copy edited; --fix", async () => {
  await using dir = await tempDir();
  const { out } = await prepped(dir.path);
  assertEquals((await runTask(cacheMain, ["consolidate", out])).code, 0);
  await Deno.remove(join(out, "ds", "case0", "zarr.json"));
  const rootPath = join(out, "zarr.json");
  const root = JSON.parse(await Deno.readTextFile(rootPath));
  const md = root.consolidated_metadata.metadata;
  md["ds/case1"].attributes.scale_factor *= 2;
  md["ds/ghost"] = md["ds/case2"];
  await Deno.writeTextFile(rootPath, JSON.stringify(root));
  // The reader refuses the edited copy rather than list or read other numbers.
  const reader = await CacheReader.open(out);
  await assertRejects(() => reader.list(), /consolidated metadata .* no longer matches/);
  await assertRejects(
    () => reader.readCrop("ds/case1", [0, 0, 0], [8, 8, 8]),
    /Case \/ds\/case1: zarr\.json: its metadata does not match/,
  );
  const bad = await runTask(cacheMain, ["verify", out, "--quiet"]);
  assertEquals(bad.code, 1, bad.text);
  for (
    const line of [
      /BROKEN ds\/case0: zarr\.json: missing \(the case's folder holds 1 other entries\)/,
      /BROKEN ds\/ghost: zarr\.json: missing/,
      /BROKEN \(cache root\): consolidated metadata: it no longer matches the digest/,
      /consolidated metadata: ds\/case1 differs from its zarr\.json at attributes\.scale_factor/,
      /consolidated metadata: lists ds\/ghost, which has no readable zarr\.json/,
    ]
  ) assert(line.test(bad.text), `${line}\n${bad.text}`);
  const fixed = await runTask(cacheMain, ["verify", out, "--fix", "--quiet"]);
  assert(
    /repaired: removed ds\/case0, rewrote the consolidated metadata/.test(fixed.text),
    fixed.text,
  );
  const ok = await runTask(cacheMain, ["verify", out, "--quiet"]);
  assertEquals(ok.code, 0, ok.text);
  assert(/verified 2 case\(s\)/.test(ok.text), ok.text);
});

Deno.test("cache verify names a dataset group or a root whose zarr.json is gone, and --fix writes it again", async () => {
  await using dir = await tempDir();
  const { out } = await prepped(dir.path);
  await Deno.remove(join(out, "ds", "zarr.json"));
  // Readers that list folders would lose its cases: the listing says so.
  const listed = await (await CacheReader.open(out)).list();
  assertEquals(listed.map((c) => [c.dataset, c.name, Boolean(c.error)]), [["ds", "", true]]);
  const bad = await runTask(cacheMain, ["verify", out, "--quiet"]);
  assertEquals(bad.code, 1, bad.text);
  assert(
    /BROKEN ds \(dataset group\): zarr\.json is missing \(the folder holds 3 entries\)/.test(
      bad.text,
    ),
    bad.text,
  );
  assert(/verified 3 case\(s\)/.test(bad.text), bad.text);
  await runTask(cacheMain, ["verify", out, "--fix", "--quiet"]);
  assertEquals((await runTask(cacheMain, ["verify", out, "--quiet"])).code, 0);

  await Deno.remove(join(out, "zarr.json"));
  const root = await runTask(cacheMain, ["verify", out, "--quiet"]);
  assertEquals(root.code, 1, root.text);
  assert(
    /BROKEN \(cache root\): zarr\.json of the cache root: .*holds dataset groups \(ds\)/.test(
      root.text,
    ),
    root.text,
  );
  const fixed = await runTask(cacheMain, ["verify", out, "--fix", "--quiet"]);
  assert(/repaired: wrote the cache's root zarr\.json again/.test(fixed.text), fixed.text);
  const again = await runTask(cacheMain, ["verify", out, "--quiet"]);
  assertEquals(again.code, 0, again.text);
  const layout = JSON.parse(await Deno.readTextFile(join(out, "zarr.json"))).attributes.voco_cache;
  assertEquals(layout.layout, "sharded");
});
