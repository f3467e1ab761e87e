// Tests of whole pre-training runs on a tiny phantom cache: resume exactness, learning,
// export, recipe checks, and the CLI's messages.
import { join } from "node:path";
import { useBackend } from "../../train/backend.ts";
import { type MetricsRow, pretrain, pretrainConfig, readMetrics } from "../../train/pretrain.ts";
import { exportBackbone } from "../../train/run/export.ts";
import { listCheckpoints, loadCheckpoint, readCheckpoint } from "../../train/run/checkpoint.ts";
import { VocoModel } from "../../train/voco/model.ts";
import { BatchLoader } from "../../train/sampler/loader.ts";
import { listTrainingCases } from "../../train/sampler/cases.ts";
import { sampleSpec } from "../../train/sampler/voco_sample.ts";
import { readSafetensors, writeSafetensors } from "../../train/weights/safetensors.ts";
import { main as pretrainMain } from "../../tasks/pretrain.ts";
import { tinyCache } from "./_tiny_cache.ts";
import { decodeEvent, readTfRecords } from "../../train/run/tfevents.ts";
import { CREDS, startS3 } from "../cache/_s3.ts";
import { denoTask } from "../tasks/_run.ts";
import { assert, assertEquals, assertRejects, runTask, tempDir } from "../_helpers.ts";

const tiny = (cache: string, steps: number) =>
  pretrainConfig("v2", [cache], {
    featureSize: 12,
    headDims: [64, 64, 64],
    batchSize: 1,
    swBatchSize: 1,
    grid: 2,
    steps,
    warmupSteps: 0,
    lr: 2e-3,
    saveEvery: 1,
    workers: 1,
    backend: "cpu",
  });

const losses = (rows: MetricsRow[]) => rows.map((r) => [r.step, r.loss, r.intra, r.inter, r.reg]);

Deno.test("a run resumed from its step-1 checkpoint gives the same losses as one run (cpu)", async () => {
  await useBackend("cpu");
  await using tmp = await tempDir();
  const cache = await tinyCache(tmp.path, 2);
  const straight = join(tmp.path, "straight"), resumed = join(tmp.path, "resumed");
  // 32³ crops: what a resume must keep does not depend on their size (a quarter of the time).
  const config = () => ({ ...tiny(cache, 2), roi: 32 });
  await pretrain(straight, config());
  assertEquals(await listCheckpoints(straight), [1, 2]);
  // The loop logs every step for TensorBoard: the loss of each step, CRCs checked on read.
  const events = [...Deno.readDirSync(straight)].filter((e) => e.name.startsWith("events.out."));
  assertEquals(events.length, 1);
  const logged = readTfRecords(await Deno.readFile(join(straight, events[0].name)))
    .map(decodeEvent).flatMap((e) => e.scalars.map((x) => [e.step, x.tag, x.value]))
    .filter(([, tag]) => tag === "loss/loss");
  const metrics = await readMetrics(straight);
  assertEquals(logged.map(([step]) => step), [1, 2]);
  assert(logged.every(([, , v], i) => Math.abs((v as number) - metrics[i].loss) < 1e-6), "loss");
  // The folder as a kill after step 1 leaves it: its checkpoint, config and metrics.
  await Deno.mkdir(resumed);
  for (const f of ["config.json", "metrics.jsonl", "ckpt-0000001.safetensors"]) {
    await Deno.copyFile(join(straight, f), join(resumed, f));
  }
  const second = await pretrain(resumed, config());
  assertEquals([second.steps, second.ranSteps], [2, 1]);
  assertEquals(losses(await readMetrics(resumed)), losses(await readMetrics(straight)));
  assert((await Deno.readTextFile(join(resumed, "loss.svg"))).startsWith("<svg"), "loss.svg");
  // The export holds MONAI's backbone keys with the checkpoint's values.
  const { bytes, step } = await exportBackbone(straight);
  assertEquals(step, 2);
  const keys = [...readSafetensors(bytes).tensors.keys()];
  assert(
    keys.includes("swinViT.patch_embed.proj.weight") &&
      keys.includes("encoder10.layer.conv1.conv.weight"),
  );
  assert(!keys.some((k) => k.startsWith("head.") || k.startsWith("student.")), keys.join());
  // As users run it: `deno task pretrain export` in a fresh process, no backend loaded.
  const file = join(tmp.path, "backbone.safetensors");
  const ran = await denoTask(["pretrain", "export", straight, "--out", file]);
  assertEquals(ran.code, 0, ran.stdout + ran.stderr);
  assert(/exported the student backbone of step 2/.test(ran.stdout), ran.stdout);
  const written = await Deno.readFile(file);
  assert(written.length === bytes.length && written.every((b, i) => b === bytes[i]), "same bytes");
});

Deno.test("a step whose loss or gradient is not finite stops the run before it touches a checkpoint", async () => {
  await useBackend("cpu");
  await using tmp = await tempDir();
  const cache = await tinyCache(tmp.path, 1);
  const run = join(tmp.path, "run");
  const config = { ...tiny(cache, 2), roi: 32, headDims: [16, 16, 16] as [number, number, number] };
  await pretrain(run, config);
  // Weights that are finite but overflow float32 in the first convolution.
  const path = join(run, "ckpt-0000002.safetensors");
  const { tensors, metadata } = readSafetensors(await Deno.readFile(path));
  await Deno.writeFile(
    path,
    writeSafetensors(
      [...tensors].map(([k, t]) => {
        const data = Float32Array.from(t.data);
        if (k.includes("patch_embed")) data.fill(3e38);
        return [k, { shape: t.shape, data }];
      }),
      metadata,
    ),
  );
  const before = await Deno.readFile(path);
  await assertRejects(
    () => pretrain(run, { ...config, steps: 4 }),
    /Step 3 diverged: the loss is not finite .*the checkpoints are kept \(newest .*ckpt-0000002/,
  );
  assertEquals(await listCheckpoints(run), [1, 2]);
  assert((await Deno.readFile(path)).every((b, i) => b === before[i]), "checkpoint 2 changed");
  assertEquals((await readMetrics(run)).map((r) => r.step), [1, 2]);
  assert(!(await Deno.stat(join(run, "run.lock")).catch(() => undefined)), "the lock stays");
});

Deno.test("a run reads an s3:// cache at --endpoint, in the sample workers too (s3rver)", async () => {
  await useBackend("cpu");
  await using tmp = await tempDir();
  const cache = await tinyCache(tmp.path, 1);
  const s3 = await startS3(tmp.path, cache, "caches/ct.zarr");
  const env = {
    AWS_ACCESS_KEY_ID: CREDS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: CREDS.secretAccessKey,
  };
  for (const [k, v] of Object.entries(env)) Deno.env.set(k, v);
  try {
    const config = {
      ...tiny("s3://bkt/caches/ct.zarr", 1),
      roi: 32,
      headDims: [16, 16, 16] as [number, number, number],
      endpoint: s3.endpoint,
    };
    const run = await pretrain(join(tmp.path, "run"), config);
    assertEquals([run.steps, run.failures.length], [1, 0], JSON.stringify(run.failures));
  } finally {
    for (const k of Object.keys(env)) Deno.env.delete(k);
    await s3.close();
  }
});

Deno.test("a voco-v1 run on a voco-v2 cache is refused with the recipe named", async () => {
  await using tmp = await tempDir();
  const cache = await tinyCache(tmp.path, 1);
  const args = ["--recipe", "voco-v1", "--cache", cache, "--out", join(tmp.path, "run")];
  await assertRejects(
    () => runTask(pretrainMain, [...args, "--backend", "cpu"]),
    /made with recipe "voco-v2".*trains voco-v1/,
  );
});

Deno.test("pretrain usage errors exit 2 and name the problem", async () => {
  for (
    const [args, pattern] of [
      [["--out", "x"], /needs --cache/],
      [["--cache", "c.zarr"], /needs --out/],
      [["export"], /run/],
      [["check"], /needs --io/],
      [["--cache", "c", "--out", "o", "--roi", "80"], /multiple of 32/],
      [["--cache", "c", "--out", "o", "--recipe", "voco-v3"], /voco-v2/],
    ] as [string[], RegExp][]
  ) {
    await assertRejectsUsage(args, pattern);
  }
});

async function assertRejectsUsage(args: string[], pattern: RegExp) {
  try {
    await pretrainMain(args);
  } catch (e) {
    assert((e as Error).name === "UsageError", `${args}: ${(e as Error).name}`);
    assert(pattern.test((e as Error).message), `${args}: ${(e as Error).message}`);
    return;
  }
  throw new Error(`${args} did not fail`);
}

Deno.test("learning happens: on a held-out batch the loss halves and the logits agree better with the labels (wasm, 10 steps)", async () => {
  // The smallest setting that shows it within a few minutes on 2 cores: feature size 12,
  // heads of 64, one volume of 2 random + 4 base crops (roi 64, grid 2) per step, lr 2e-3
  // without warm-up or augmentation; about 25 s a step.
  await useBackend("wasm");
  await using tmp = await tempDir();
  const cache = await tinyCache(tmp.path, 2);
  const { cases } = await listTrainingCases([cache], { recipe: "voco-v2" });
  const held = new BatchLoader(cases, {
    batchSize: 2,
    spec: sampleSpec("v2", { grid: 2, crops: 2, augment: false }),
    seed: 99,
    workers: 0,
  });
  const b = await held.next();
  held.close();
  const input = { inputs: b.inputs, labels: b.labels, batch: 2, crops: 2, roi: 64 };
  const model = new VocoModel({
    version: "v2",
    featureSize: 12,
    headDims: [64, 64, 64],
    cropBatch: 3,
  });
  try {
    const before = await model.evaluate(input);
    const config = pretrainConfig("v2", [cache], {
      featureSize: 12,
      headDims: [64, 64, 64],
      batchSize: 1,
      swBatchSize: 2,
      grid: 2,
      steps: 10,
      warmupSteps: 0,
      lr: 2e-3,
      saveEvery: 10,
      workers: 1,
      cropBatch: 3,
      augment: false,
      backend: "wasm",
    });
    const run = await pretrain(join(tmp.path, "run"), config);
    loadCheckpoint(model, await readCheckpoint(run.checkpoint!), run.checkpoint!);
    const after = await model.evaluate(input);
    assert(after.loss < 0.6 * before.loss, `loss ${before.loss} -> ${after.loss}`);
    assert(
      after.agreement < before.agreement,
      `agreement ${before.agreement} -> ${after.agreement}`,
    );
  } finally {
    model.dispose();
  }
});

Deno.test("Ctrl-C writes a checkpoint and exits 130; kill -9 never damages the run folder", async () => {
  await using tmp = await tempDir();
  const cache = await tinyCache(tmp.path, 2);
  const run = join(tmp.path, "run");
  const task = new URL("../../tasks/pretrain.ts", import.meta.url).pathname;
  const spawn = () =>
    new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--frozen",
        "-A",
        task,
        "--cache",
        cache,
        "--out",
        run,
        "--feature-size",
        "12",
        "--head",
        "64",
        "--batch-size",
        "1",
        "--sw-batch-size",
        "1",
        "--grid",
        "2",
        "--steps",
        "20",
        "--save-every",
        "1",
        "--workers",
        "0",
        "--backend",
        "wasm",
        "--crop-batch",
        "2",
        "--quiet",
      ],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  const waitFor = async (step: number, child: Deno.ChildProcess) => {
    let exited = false;
    child.status.then(() => exited = true);
    const t0 = Date.now();
    while (Date.now() - t0 < 240_000 && !exited) {
      const steps = await listCheckpoints(run).catch(() => [] as number[]);
      if (steps.includes(step)) return;
      await new Promise((r) => setTimeout(r, 200));
    }
    const out = exited ? await child.output() : undefined;
    throw new Error(
      `no checkpoint of step ${step}` +
        (out
          ? `: the run exited ${out.code}: ${new TextDecoder().decode(out.stderr)}`
          : " in time"),
    );
  };
  // Ctrl-C during step 2 (or a later one, when this process was slow to see checkpoint 1):
  // that step finishes, its checkpoint is written, exit 130.
  const first = spawn();
  await waitFor(1, first);
  first.kill("SIGINT");
  const out = await first.output();
  const text = new TextDecoder().decode(out.stdout);
  assertEquals(out.code, 130, text + new TextDecoder().decode(out.stderr));
  const stopped = Number(text.match(/stopped at step (\d+)\/20/)?.[1]);
  assert(stopped >= 2, text);
  assertEquals((await listCheckpoints(run)).at(-1), stopped);
  // kill -9 during step 3: the folder keeps its checkpoints whole and resumes from step 2.
  const second = spawn();
  await new Promise((r) => setTimeout(r, 4000));
  second.kill("SIGKILL");
  await second.output();
  const steps = await listCheckpoints(run);
  assert(steps.at(-1)! >= stopped, `${steps}`);
  for (const s of steps) {
    await readCheckpoint(join(run, `ckpt-${String(s).padStart(7, "0")}.safetensors`));
  }
  const rows = await readMetrics(run);
  assert(
    rows.length >= 2 && rows.every((r, i) => r.step === i + 1),
    JSON.stringify(rows.map((r) => r.step)),
  );
});

Deno.test("one tiny training step on webgpu equals the same step on cpu, when an adapter exists", async () => {
  const gpu = (navigator as unknown as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
  if (!gpu || !(await gpu.requestAdapter().catch(() => null))) {
    console.warn("Skipping: no WebGPU adapter here.");
    return;
  }
  // Each backend in a child process (the backend is global, and Deno's WebGPU teardown can
  // abort a process at exit). Roi 32 with a 4-token window keeps the step to about a
  // minute on a software adapter (7-token windows: 7 minutes) while running every layer.
  await using tmp = await tempDir();
  const cache = await tinyCache(tmp.path, 1);
  const script = new URL("./_one_step.ts", import.meta.url).pathname;
  const run = async (backend: string) => {
    const dir = join(tmp.path, backend);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--frozen", "-A", script, backend, cache, dir],
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(300_000),
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert(out.success, `${backend} step failed:\n${text}`);
    const [row] = await readMetrics(dir);
    const { tensors } = await readCheckpoint(join(dir, "ckpt-0000001.safetensors"));
    return { row, tensors };
  };
  const cpu = await run("cpu"), webgpu = await run("webgpu");
  for (const term of ["loss", "intra", "inter", "reg"]) {
    const d = Math.abs(webgpu.row[term]! - cpu.row[term]!);
    assert(d < 2e-5, `${term}: webgpu ${webgpu.row[term]}, cpu ${cpu.row[term]}`);
  }
  // Gradients (AdamW's first moment is 0.1 g) within 1e-3 of each tensor's largest value;
  // weights within 1% in norm (one AdamW step moves an entry by about lr whatever the
  // gradient's size, so rounding noise in a tiny gradient can flip its sign); the teacher
  // (the EMA taken before the step) exactly. The biases that feed a BatchNorm are noise on
  // both backends (see pretrain check) and not judged.
  assertEquals([...webgpu.tensors.keys()].sort(), [...cpu.tensors.keys()].sort());
  let judged = 0;
  for (const [name, want] of cpu.tensors) {
    if (/layer[12]\.0\.bias/.test(name) || /\.v(_max)?$/.test(name)) continue;
    const got = webgpu.tensors.get(name)!.data;
    let dmax = 0, wmax = 0, d2 = 0, w2 = 0;
    for (let i = 0; i < want.data.length; i++) {
      const d = Math.abs(got[i] - want.data[i]);
      dmax = Math.max(dmax, d);
      wmax = Math.max(wmax, Math.abs(want.data[i]));
      d2 += d * d;
      w2 += want.data[i] ** 2;
    }
    if (name.startsWith("optim.")) {
      assert(dmax <= 1e-3 * wmax + 1e-12, `${name}: gradients differ by ${dmax / wmax} of max`);
    } else if (name.startsWith("model.teacher.")) {
      assert(dmax <= 1e-6 * Math.max(wmax, 1), `${name}: teacher differs by ${dmax}`);
    } else {
      const rel = Math.sqrt(d2 / Math.max(w2, 1e-30));
      assert(rel < 1e-2, `${name}: weights differ by ${rel} in norm`);
    }
    judged++;
  }
  assert(judged > 100, `only ${judged} tensors compared`);
});
