// Tests of planPrep() and runPlan() without a process: groups and recipes, what a plan
// refuses before anything is written, stale cases and pruning, shards.
import { join } from "node:path";
import { planPrep, runPlan } from "../../../prep/pipeline/plan.ts";
import { listCases } from "../../../cache/write/cache_dir.ts";
import { BadInputError } from "../../../cache/errors.ts";
import { writePhantoms } from "../../tasks/_run.ts";
import { assert, assertEquals, assertRejects, tempDir } from "../../_helpers.ts";

Deno.test("planPrep() groups inputs and --dataset specs, each with its recipe, and writes nothing", async () => {
  await using dir = await tempDir();
  await writePhantoms(join(dir.path, "scans"), 2);
  await writePhantoms(join(dir.path, "more"), 1);
  const out = join(dir.path, "ct.zarr");
  const plan = await planPrep({
    out,
    inputs: ["scans"],
    datasets: ["mine=more:chest"],
    cwd: dir.path,
  });
  assertEquals(plan.groups.map((g) => [g.dataset, g.recipe.name, g.cases]), [
    ["scans", "voco-v2", 2],
    ["mine", "chest", 1],
  ]);
  assertEquals(plan.items.map((it) => `${it.dataset}/${it.name}`), [
    "scans/case0",
    "scans/case1",
    "mine/case0",
  ]);
  assertEquals(plan.storage.layout, "sharded");
  assert(!(await Deno.stat(out).then(() => true, () => false)), "the plan wrote the cache");
});

Deno.test("planPrep() refuses bad input by name before anything is read", async () => {
  await using dir = await tempDir();
  await writePhantoms(join(dir.path, "scans"), 1);
  const plan = (extra: Record<string, unknown>) => () =>
    planPrep({ out: join(dir.path, "c.zarr"), inputs: ["scans"], cwd: dir.path, ...extra });
  for (
    const [extra, pattern] of [
      [{ out: "scans" }, /--out: .*not empty and not a cache/],
      [{ storage: { compressor: "blosc-zstd", level: 12 } }, /--level for blosc-zstd takes 0\.\.9/],
      [{ recipe: "vocov2" }, /voco-v2/],
      [{ shard: "3/2" }, /index must be 0\.\.count-1/],
      [{ datasets: ["btvc=scans"] }, /"btvc" is no dataset adapter \(did you mean btcv\?\)/],
      [{ datasets: ["scans=scans"], datasetName: "scans" }, /"scans" is given twice/],
      [{ datasets: ["x=scans:chset"] }, /unknown recipe "chset" \(did you mean chest\?\)/],
    ] as [Record<string, unknown>, RegExp][]
  ) {
    const e = await assertRejects(plan(extra), pattern);
    assert(e instanceof BadInputError, `${e.message}: ${e.name}`);
  }
  // A shorter name stays a group name: luna is no typo of luna16.
  const ok = await planPrep({
    out: join(dir.path, "c.zarr"),
    datasets: ["luna=scans"],
    cwd: dir.path,
  });
  assertEquals(ok.groups.map((g) => g.dataset), ["luna"]);
});

Deno.test("runPlan() preps the plan; a later plan finds stale cases and prunes them after a whole run", async () => {
  await using dir = await tempDir();
  const inp = join(dir.path, "in"), out = join(dir.path, "c.zarr");
  await writePhantoms(inp, 2);
  const first = await runPlan(await planPrep({ out, inputs: [inp] }), { workers: 1 });
  assertEquals(first.summary.reports.map((r) => r.status), ["written", "written"]);
  await Deno.remove(join(inp, "case1.nii.gz"));
  const plan = await planPrep({ out, inputs: [inp], prune: true });
  assertEquals(plan.stale.map((c) => `${c.dataset}/${c.name} <- ${c.source}`), [
    "in/case1 <- case1.nii.gz",
  ]);
  // An interrupted run prunes nothing: it has not looked at every input.
  const stopped = new AbortController();
  stopped.abort();
  const interrupted = await runPlan(plan, { workers: 1, signal: stopped.signal });
  assertEquals([interrupted.interrupted, interrupted.pruned.length], [true, 0]);
  assertEquals((await listCases(out)).length, 2);
  const whole = await runPlan(plan, { workers: 1 });
  assertEquals(whole.pruned.map((c) => c.name), ["case1"]);
  assertEquals((await listCases(out)).map((c) => c.name), ["case0"]);
});

Deno.test("planPrep() with a shard keeps its own cases and counts the whole run", async () => {
  await using dir = await tempDir();
  await writePhantoms(join(dir.path, "in"), 6);
  const plans = await Promise.all(
    [0, 1].map((i) =>
      planPrep({ out: join(dir.path, "c.zarr"), inputs: ["in"], shard: `${i}/2`, cwd: dir.path })
    ),
  );
  assertEquals(plans.map((p) => p.totalCases), [6, 6]);
  const names = plans.flatMap((p) => p.items.map((it) => it.name)).sort();
  assertEquals(names, ["case0", "case1", "case2", "case3", "case4", "case5"]);
  assert(plans.every((p) => p.shard && p.items.length < 6), "each shard takes part of the run");
});
