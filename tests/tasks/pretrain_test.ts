// `deno task pretrain` as users run it, each command a fresh process: a run folder keeps
// its settings (differences refused and listed, resumable ones applied and recorded),
// --config, sizes refused before any folder, one writer per folder (two real processes,
// kill -9, a cut metrics line), damaged checkpoints refused, --dry-run, and export in both
// formats.
import { join } from "node:path";
import { tinyCache } from "../train/_tiny_cache.ts";
import { denoTask, ROOT, userEnv } from "./_run.ts";
import { listCheckpoints } from "../../train/run/checkpoint.ts";
import { readMetrics, readRunRecord } from "../../train/run/folder.ts";
import { readSafetensors, writeSafetensors } from "../../train/weights/safetensors.ts";
import { readTorchCheckpoint } from "../../train/weights/torch_checkpoint.ts";
import { assert, assertEquals, tempDir } from "../_helpers.ts";

/** The smallest run that trains every part: feature size 12, roi 32, 1 + 4 crops. */
const SMALL: Record<string, string> = {
  "feature-size": "12",
  head: "16",
  "batch-size": "1",
  "sw-batch-size": "1",
  grid: "2",
  roi: "32",
  "warmup-steps": "1",
  lr: "1e-3",
  workers: "0",
  backend: "cpu",
};

/** The flags of {@linkcode SMALL} with some changed, and `--quiet`. */
const tiny = (change: Record<string, string> = {}) => [
  ...Object.entries({ ...SMALL, ...change }).flatMap(([k, v]) => [`--${k}`, v]),
  "--quiet",
];
const TINY = tiny();

const ok = (r: { code: number; stdout: string; stderr: string }, what: string) =>
  assert(r.code === 0, `${what}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);

Deno.test("a run folder keeps its settings: others are refused and listed, resumable ones applied and recorded", async () => {
  await using tmp = await tempDir();
  const cache = await tinyCache(tmp.path, 1);
  const run = join(tmp.path, "runs", "c");
  const start = ["pretrain", "--cache", cache, "--out", run, "--steps", "1", ...TINY];
  ok(await denoTask(start), "start");
  const fs24 = [
    "pretrain",
    "--cache",
    cache,
    "--out",
    run,
    "--steps",
    "1",
    ...tiny({ "feature-size": "24" }),
  ];
  const refused: [string[], RegExp][] = [
    [fs24, /--feature-size: 12 -> 24/],
    [["pretrain", "--resume", run, "--lr", "1e-2"], /--lr: 0\.001 -> 0\.01/],
    [
      ["pretrain", "--resume", run, "--seed", "3", "--no-augment"],
      /--seed: 0 -> 3\n\s+--no-augment: true -> false/,
    ],
  ];
  for (const [args, pattern] of refused) {
    const r = await denoTask(args);
    assertEquals(r.code, 2, `${args}: ${r.stderr}`);
    assert(
      pattern.test(r.stderr) && /cannot change once it has a checkpoint/.test(r.stderr),
      r.stderr,
    );
  }
  assertEquals(await listCheckpoints(run), [1]);
  ok(await denoTask(["pretrain", "--resume", run, "--steps", "2", "--workers", "1"]), "resume");
  const record = (await readRunRecord(run))!;
  assertEquals(record.config.steps, 2);
  assertEquals(record.changes?.map((c) => [c.step, c.changed]), [[1, [
    "--steps: 1 -> 2",
    "--workers: 0 -> 1",
  ]]]);
  assertEquals((await readMetrics(run)).map((r) => r.step), [1, 2]);
  // A cache at another place with the same cases is the same data; one with other cases is not.
  const moved = join(tmp.path, "moved.zarr");
  await new Deno.Command("cp", { args: ["-r", cache, moved] }).output();
  const again = ["pretrain", "--out", run, ...TINY];
  const r = await denoTask([...again, "--steps", "3", "--cache", moved]);
  ok(r, "moved cache");
  assert(/changed --steps: 2 -> 3/.test(r.stderr) && /the same cases/.test(r.stderr), r.stderr);
  const other = await tinyCache(join(tmp.path, "other"), 2);
  const refusedCache = await denoTask([...again, "--steps", "4", "--cache", other]);
  assertEquals(refusedCache.code, 2, refusedCache.stderr);
  assert(/--cache: .*other/.test(refusedCache.stderr), refusedCache.stderr);
});

Deno.test("--config starts a run from an earlier run's settings, flags overriding them", async () => {
  await using tmp = await tempDir();
  const cache = await tinyCache(tmp.path, 1);
  const first = join(tmp.path, "first"), second = join(tmp.path, "second");
  ok(
    await denoTask(["pretrain", "--cache", cache, "--out", first, "--steps", "1", ...TINY]),
    "first",
  );
  ok(
    await denoTask([
      "pretrain",
      "--config",
      join(first, "config.json"),
      "--out",
      second,
      "--seed",
      "7",
      "--backend",
      "cpu",
      "--quiet",
    ]),
    "second",
  );
  const a = (await readRunRecord(first))!.config, b = (await readRunRecord(second))!.config;
  assertEquals({ ...a, seed: 7 }, b);
  // A hand-written file is checked as flags are.
  const bad = join(tmp.path, "bad.json");
  await Deno.writeTextFile(bad, JSON.stringify({ caches: [cache], roi: 48 }));
  const r = await denoTask(["pretrain", "--config", bad, "--out", join(tmp.path, "third")]);
  assertEquals(r.code, 2, r.stderr);
  assert(/--roi takes a multiple of 32, got 48/.test(r.stderr), r.stderr);
});

Deno.test("settings and sizes that cannot run exit 2 before any folder exists; a long warm-up is warned about", async () => {
  await using tmp = await tempDir();
  const cache = await tinyCache(tmp.path, 1);
  const run = join(tmp.path, "run");
  const cases = [
    [["--roi", "1000000000"], /lower --roi \(now 1000000000\)/],
    [["--grid", "1000000000"], /--grid takes an integer 2\.\.64/],
    [["--head", "1000000000000"], /lower --head/],
    [["--init-from", join(tmp.path, "none.pt")], /none\.pt: /],
    // A refused run prints its reason, not the warm-up warning first.
    [
      ["--init-from", join(tmp.path, "none.pt"), "--steps", "4", "--warmup-steps", "9"],
      /^(?![\s\S]*warning)[\s\S]*none\.pt: /,
    ],
    [["--cache", join(tmp.path, "missing.zarr")], /missing\.zarr/],
    [["--backend", "gpu"], /did you mean webgpu, tensorflow-gpu or cpu\?/],
    [["--recipe", "vocov2"], /did you mean voco-v2\?/],
  ] as const;
  for (const [extra, pattern] of cases) {
    const backend = (extra as readonly string[]).includes("--backend") ? [] : ["--backend", "cpu"];
    const r = await denoTask(["pretrain", "--cache", cache, "--out", run, ...backend, ...extra]);
    assertEquals(r.code, 2, `${extra}: ${r.stderr}`);
    assert(pattern.test(r.stderr), `${extra}: ${r.stderr}`);
    assert(!(await Deno.stat(run).catch(() => undefined)), `${extra}: a folder was made`);
  }
  const r = await denoTask([
    "pretrain",
    "--cache",
    cache,
    "--out",
    run,
    "--dry-run",
    "--steps",
    "4",
    ...tiny({ "warmup-steps": "5000" }),
  ]);
  ok(r, "dry run");
  assert(
    /warning: --warmup-steps 5000 is longer than the run \(--steps 4\)/.test(r.stderr),
    r.stderr,
  );
  assert(/per step\s+\d/.test(r.stdout) && /whole run\s+\S+ for 4 steps/.test(r.stdout), r.stdout);
  assert(/memory measured\s+heap .* RSS/.test(r.stdout), r.stdout);
  assert(!(await Deno.stat(run).catch(() => undefined)), "the dry run made a folder");
});

Deno.test("one process trains in a run folder: a second is refused naming the first; after kill -9 and a cut metrics line the run resumes", async () => {
  await using tmp = await tempDir();
  const cache = await tinyCache(tmp.path, 1);
  const run = join(tmp.path, "run");
  const args = [
    "pretrain",
    "--cache",
    cache,
    "--out",
    run,
    "--steps",
    "40",
    "--save-every",
    "1",
    ...TINY,
  ];
  const first = new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", "--config", join(ROOT, "deno.json"), ...args],
    cwd: ROOT,
    clearEnv: true,
    env: userEnv(),
    stdout: "null",
    stderr: "piped",
  }).spawn();
  try {
    const t0 = Date.now();
    while ((await listCheckpoints(run).catch(() => [])).length === 0) {
      assert(Date.now() - t0 < 120_000, "no checkpoint in 2 minutes");
      await new Promise((r) => setTimeout(r, 200));
    }
    const lock = JSON.parse(await Deno.readTextFile(join(run, "run.lock")));
    const second = await denoTask(args);
    assertEquals(second.code, 2, second.stderr);
    assert(new RegExp(`in use by process ${lock.pid} on `).test(second.stderr), second.stderr);
    // `deno task` runs the training in a child process: kill that one, as a crash would.
    Deno.kill(lock.pid, "SIGKILL");
  } finally {
    try {
      first.kill("SIGKILL");
    } catch { /* gone */ }
    await first.status;
    await first.stderr.cancel();
  }
  const steps = await listCheckpoints(run);
  // What a kill during the append leaves: half a line.
  const metrics = join(run, "metrics.jsonl");
  const text = await Deno.readTextFile(metrics);
  await Deno.writeTextFile(metrics, text + '{"step": 99, "lo');
  const resumed = await denoTask([
    "pretrain",
    "--resume",
    run,
    "--steps",
    String(steps.at(-1)! + 1),
  ]);
  ok(resumed, "resume");
  assert(new RegExp(`resuming at step ${steps.at(-1)}`).test(resumed.stderr), resumed.stderr);
  const rows = await readMetrics(run);
  assertEquals(rows.map((r) => r.step), Array.from({ length: steps.at(-1)! + 1 }, (_, i) => i + 1));
  assert(!(await Deno.stat(join(run, "run.lock")).catch(() => undefined)), "lock left behind");
});

Deno.test("a resumed run refuses a checkpoint with NaN values or a bad step, naming the file", async () => {
  await using tmp = await tempDir();
  const cache = await tinyCache(tmp.path, 1);
  const run = join(tmp.path, "run");
  ok(
    await denoTask(["pretrain", "--cache", cache, "--out", run, "--steps", "1", ...TINY]),
    "start",
  );
  const path = join(run, "ckpt-0000001.safetensors");
  const { tensors, metadata } = readSafetensors(await Deno.readFile(path));
  const poison = (meta: Record<string, string>, value?: number) =>
    writeSafetensors(
      [...tensors].map(([k, t], i) => {
        const data = Float32Array.from(t.data);
        if (value !== undefined && i === 0) data.fill(value);
        return [k, { shape: t.shape, data }];
      }),
      { ...metadata, ...meta },
    );
  for (
    const [bytes, pattern] of [
      [poison({}, NaN), /ckpt-0000001\.safetensors holds NaN or infinite values/],
      [poison({ step: "-5" }), /ckpt-0000001\.safetensors is damaged/],
    ] as const
  ) {
    await Deno.writeFile(path, bytes);
    const r = await denoTask(["pretrain", "--resume", run, "--steps", "3"]);
    assertEquals(r.code, 2, r.stderr);
    assert(pattern.test(r.stderr), r.stderr);
    assertEquals((await readMetrics(run)).map((x) => x.step), [1]);
  }
});

Deno.test("export writes safetensors and torch.save files that carry the feature size, from a fresh process", async () => {
  await using tmp = await tempDir();
  const cache = await tinyCache(tmp.path, 1);
  const run = join(tmp.path, "run");
  ok(
    await denoTask(["pretrain", "--cache", cache, "--out", run, "--steps", "1", ...TINY]),
    "train",
  );
  const st = join(tmp.path, "backbone.safetensors"), pt = join(tmp.path, "backbone.pt");
  ok(await denoTask(["pretrain", "export", run, "--out", st]), "export safetensors");
  ok(await denoTask(["pretrain", "export", run, "--out", pt, "--format", "pt"]), "export pt");
  const a = readSafetensors(await Deno.readFile(st));
  assertEquals(a.metadata.feature_size, "12");
  const b = readTorchCheckpoint(await Deno.readFile(pt));
  assertEquals(b.location, ["state_dict"]);
  assertEquals([...b.tensors.keys()], [...a.tensors.keys()]);
  for (const [k, t] of a.tensors) {
    const u = b.tensors.get(k)!.data;
    assert(t.data.every((x, i) => x === u[i]), `${k} differs`);
  }
  const missing = await denoTask(["pretrain", "export", join(tmp.path, "nope"), "--out", st]);
  assertEquals(missing.code, 2, missing.stderr);
});

Deno.test("an --out that is a file, a cache or a folder of other files is refused (exit 2), nothing written into it", async () => {
  await using tmp = await tempDir();
  const cache = await tinyCache(tmp.path, 1);
  const file = join(tmp.path, "notes.txt");
  await Deno.writeTextFile(file, "mine");
  const other = join(tmp.path, "data");
  await Deno.mkdir(other);
  await Deno.writeTextFile(join(other, "scan.nii"), "mine");
  const listing = async (dir: string) =>
    (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
  const cacheBefore = await listing(cache);
  for (
    const [out, pattern] of [
      [file, /notes\.txt is a file, not a run folder/],
      [other, /data is not empty and not a run folder \(found "scan\.nii"\)/],
      [cache, /is not empty and not a run folder \(found "[^"]+"\)/],
    ] as const
  ) {
    const r = await denoTask(["pretrain", "--cache", cache, "--out", out, "--steps", "1", ...TINY]);
    assertEquals(r.code, 2, `${out}: ${r.stdout}\n${r.stderr}`);
    assert(pattern.test(r.stderr), `${out}: ${r.stderr}`);
  }
  assertEquals(await Deno.readTextFile(file), "mine");
  assertEquals(await listing(other), ["scan.nii"]);
  assertEquals(await listing(cache), cacheBefore);
});
