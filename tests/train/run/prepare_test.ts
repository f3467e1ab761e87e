// Tests of prepareRun(): what a command line asks for becomes one run's settings, a start
// that wrote no checkpoint gives way to new settings, and misuse is refused before anything.
import { join } from "node:path";
import { prepareRun } from "../../../train/run/prepare.ts";
import { pretrainConfig } from "../../../train/config.ts";
import { assert, assertEquals, assertRejects, tempDir } from "../../_helpers.ts";

Deno.test("a folder whose start wrote no checkpoint takes the new settings, with a warning", async () => {
  await using tmp = await tempDir();
  const run = join(tmp.path, "run");
  await Deno.mkdir(run);
  const failed = pretrainConfig("v2", ["/x.zarr"], { featureSize: 24, backend: "wasm" });
  await Deno.writeTextFile(join(run, "config.json"), JSON.stringify({ config: failed }));
  const r = await prepareRun({
    out: run,
    settings: { caches: ["/x.zarr"], featureSize: 12, backend: "cpu", steps: 3, warmupSteps: 1 },
  });
  assertEquals([r.config.featureSize, r.config.backend, r.resumes], [12, "cpu", false]);
  assert(r.warnings.some((w) => /wrote no checkpoint: its settings are replaced/.test(w)));
});

Deno.test("prepareRun() refuses misuse before anything is written", async () => {
  await using tmp = await tempDir();
  const run = join(tmp.path, "run");
  const cases: [Parameters<typeof prepareRun>[0], RegExp][] = [
    [{ out: run, resume: run, settings: {} }, /not both/],
    [{ settings: {} }, /needs --out RUN/],
    [{ resume: run, settings: {} }, /--resume .*run: not a run folder/],
    [{ resume: run, configFile: "/c.json", settings: {} }, /--config starts a new run/],
    [{ out: run, settings: {} }, /needs --cache/],
    [{ out: run, configFile: join(tmp.path, "none.json"), settings: {} }, /--config .*none\.json/],
  ];
  for (const [request, pattern] of cases) await assertRejects(() => prepareRun(request), pattern);
  assert(!(await Deno.stat(run).catch(() => undefined)), "a folder was made");
});
