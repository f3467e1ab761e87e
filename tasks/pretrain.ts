// `deno task pretrain`: VoCo pre-training from the cache (train, resume), replaying the
// reference's step files (`check`) and exporting the backbone for MONAI (`export`).
import { join } from "node:path";
import { type BackendName, BACKENDS, useBackend } from "../train/backend.ts";
import { replayVocoStep } from "../train/voco/check.ts";
import {
  type MetricsRow,
  pretrain,
  type PretrainConfig,
  pretrainConfig,
  readRunConfig,
} from "../train/pretrain.ts";
import { exportBackbone } from "../train/run/export.ts";
import { formatSeconds, runMain, UsageError } from "./_cli.ts";
import { defineCommand, parseCommand, userPath } from "./_args.ts";
import { isCacheUrl } from "../cache/read/cache_reader.ts";

const BACKEND_FLAG = {
  type: "string",
  arg: "B",
  choices: BACKENDS,
  default: "auto",
  help: `${BACKENDS.join(", ")} (default auto: wasm, else cpu)`,
} as const;

const TRAIN_FLAGS = {
  recipe: {
    type: "string",
    arg: "R",
    choices: ["voco-v2", "voco-v1"],
    default: "voco-v2",
    help: "voco-v2 (the large-scale recipe) or voco-v1 (CVPR); the cache must match",
  },
  cache: {
    type: "list",
    arg: "DIR|URL",
    help: 'a cache made by "deno task prep" with that recipe: a folder, an http(s):// URL\n' +
      "(e.g. from deno task cache serve) or s3://bucket/prefix (AWS_ENDPOINT_URL,\n" +
      "AWS_REGION and the AWS_* credentials are read); repeatable",
  },
  datasets: { type: "string", arg: "A,B", help: "only these dataset groups" },
  repeat: {
    type: "list",
    arg: "D=N",
    help: "each case of dataset D N times per epoch; repeatable",
  },
  out: { type: "path", arg: "RUN", help: "the run folder (continued when it holds a checkpoint)" },
  resume: {
    type: "path",
    arg: "RUN",
    help: "continue RUN with its own settings (--steps may grow it)",
  },
  "init-from": {
    type: "path",
    arg: "FILE",
    help: "start from these backbone weights: our or MONAI safetensors, or a PyTorch\n" +
      '.pt/.pth (torch.save) such as the published VoCo_10k.pt ("module." removed,\n' +
      "swin_vit renamed swinViT)",
  },
  steps: {
    type: "number",
    integer: true,
    min: 1,
    help: "total optimiser steps of the run (default 100000)",
  },
  "batch-size": {
    type: "number",
    integer: true,
    min: 1,
    help: "volumes per step (default 4 in v2, 2 in v1)",
  },
  "sw-batch-size": {
    type: "number",
    integer: true,
    min: 1,
    help: "random crops per volume (default 2)",
  },
  roi: {
    type: "number",
    integer: true,
    min: 32,
    help: "model input edge, a multiple of 32 (default 64)",
  },
  grid: {
    type: "number",
    integer: true,
    min: 2,
    help: "base crops per side (default 3 in v2, 4 in v1)",
  },
  "feature-size": { type: "number", integer: true, help: "12, 24, 48 (default), 96 or 192" },
  head: {
    type: "number",
    integer: true,
    min: 1,
    help: "projection head width (default 1024 in v2, 2048 in v1)",
  },
  lr: { type: "number", min: 0, arg: "X", help: "base learning rate (default 1e-4)" },
  "warmup-steps": {
    type: "number",
    integer: true,
    min: 0,
    help: "linear warm-up steps (default 5000)",
  },
  "grad-clip": {
    type: "number",
    min: 0,
    arg: "X",
    help: "clip gradients to this global norm (default: none, as the reference)",
  },
  "grad-accum": {
    type: "number",
    integer: true,
    min: 1,
    help: "batches per optimiser step (default 1)",
  },
  dropout: {
    type: "string",
    arg: "D",
    choices: ["rows", "elements", "none"],
    default: "rows",
    help: "feature dropout before the v2 student head: rows (default: whole crops,\n" +
      "as the reference's Dropout1d on [N, C]), elements, or none",
  },
  "no-augment": { type: "boolean", help: "no flips, rot90 or intensity shifts" },
  "crop-batch": {
    type: "number",
    integer: true,
    min: 1,
    help: "crops per backbone pass (default: 2 on wasm, all on other backends)",
  },
  workers: {
    type: "number",
    integer: true,
    min: 0,
    help: "sample-building workers (default 2; 0: inline)",
  },
  "save-every": {
    type: "number",
    integer: true,
    min: 1,
    help: "checkpoint period in steps (default 1000)",
  },
  "keep-checkpoints": {
    type: "number",
    integer: true,
    min: 1,
    help: "checkpoints kept (default 3)",
  },
  seed: {
    type: "number",
    integer: true,
    min: 0,
    help: "seed of weights, sampling and augmentation (default 0)",
  },
  backend: BACKEND_FLAG,
  quiet: { type: "boolean", help: "no progress line" },
} as const;

/** The command line of `deno task pretrain`. */
export const PRETRAIN = defineCommand({
  name: "pretrain",
  summary: "VoCo pre-training of a SwinUNETR-v2 backbone from a cache",
  usage: [
    "pretrain train --cache CACHE.zarr --out RUN [options]  (the word train may be left out)",
    "pretrain train --resume RUN [--steps N]",
    "pretrain export RUN --out backbone.safetensors [--step N] [--teacher]",
    "pretrain check --io voco-step.v2.safetensors [--backend B]",
  ],
  subcommands: {
    train: {
      name: "pretrain train",
      summary: "train a VoCo run from one or more caches, or continue one",
      usage: [
        "pretrain [train] --cache CACHE.zarr --out RUN [options]",
        "pretrain [train] --resume RUN [--steps N]",
      ],
      description:
        `Reads the cache chunk by chunk: per volume a region of grid x roi voxels in x-y (zero-
padded where the volume is smaller), the grid's base crops, --sw-batch-size random crops
with their overlap labels, each crop augmented (flips, rot90, intensity shift). The run
folder gets config.json, metrics.jsonl (loss and its terms, lr, samples/s, data-wait
share), loss.svg, and checkpoints every --save-every steps (the last --keep-checkpoints
kept). Ctrl-C writes a checkpoint and exits 130; a second Ctrl-C quits at once.`,
      flags: TRAIN_FLAGS,
      examples: [
        "prep ../shared/data/ct/example_ct.nii.gz --out ct.zarr",
        "pretrain train --cache ct.zarr --out runs/tiny --feature-size 12 --head 256 \\\n" +
        "    --batch-size 1 --sw-batch-size 1 --grid 2 --steps 4 --warmup-steps 1 --lr 1e-3",
        "pretrain train --resume runs/tiny --steps 8",
      ],
      footer: "Exit code: 0 when done, 1 when cases failed to read (they are skipped), " +
        "2 on bad usage, 130 when stopped with Ctrl-C.",
    },
    export: {
      name: "pretrain export",
      summary: "write a run's backbone in MONAI's names for fine-tuning",
      usage: ["pretrain export RUN --out backbone.safetensors [--step N] [--teacher]"],
      description:
        `The student backbone (swinViT.*, encoder1..4, encoder10) of the newest checkpoint
(or --step N), loadable into monai.networks.nets.SwinUNETR(use_v2=True) with
load_state_dict(..., strict=False) (the decoder stays fresh).`,
      positionals: { name: "run", help: "the run folder", type: "path", min: 1, max: 1 },
      flags: {
        out: { type: "path", arg: "FILE", help: "the safetensors file to write" },
        step: {
          type: "number",
          integer: true,
          min: 1,
          help: "the checkpoint's step (default: the newest)",
        },
        teacher: { type: "boolean", help: "the v1 teacher network instead of the student" },
      },
      examples: ["pretrain export runs/tiny --out backbone.safetensors"],
    },
    check: {
      name: "pretrain check",
      summary: "replay a reference VoCo step file and compare every quantity",
      usage: ["pretrain check --io voco-step.v2.safetensors [--backend B]"],
      description:
        `Replays a step file made by running the reference implementations' loss, heads and
schedule on fixed embeddings (the VoCo version is in its metadata), with this toolkit's
code, and prints the max absolute and relative difference of every recorded quantity.`,
      flags: {
        io: { type: "path", arg: "FILE", help: "a voco-step.v1/v2.safetensors file" },
        tolerance: {
          type: "number",
          arg: "T",
          default: 1e-4,
          help: "largest max relative difference of a tensor",
        },
        "loss-tolerance": {
          type: "number",
          arg: "T",
          default: 1e-5,
          help: "largest max absolute difference of a scalar (losses, lr)",
        },
        backend: BACKEND_FLAG,
      },
      examples: ["pretrain check --io ../shared/golden/voco-step.v2.safetensors --backend cpu"],
      footer: "Exit code: 0 when every quantity is within tolerance, 1 when any exceeds it.",
    },
  },
  examples: [
    "pretrain train --cache ct.zarr --out runs/tiny --feature-size 12 --head 256 --grid 2 --steps 4",
    "pretrain export runs/tiny --out backbone.safetensors",
    "pretrain check --io ../shared/golden/voco-step.v1.safetensors",
  ],
});

type Values = Record<string, string | number | boolean | string[] | number[] | undefined>;

async function backend(name: string): Promise<string> {
  return await useBackend(name as BackendName);
}

async function check(v: Values): Promise<number> {
  if (!v.io) {
    throw new UsageError("check needs --io FILE (a voco-step.*.safetensors)", {
      command: "pretrain check",
    });
  }
  const tol = v.tolerance as number, lossTol = v["loss-tolerance"] as number;
  const path = String(v.io);
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new Error(`--io ${path}: ${(e as Error).message}`);
  }
  const be = await backend(String(v.backend));
  const t0 = performance.now();
  const r = await replayVocoStep(bytes);
  const ok = (row: (typeof r.rows)[number]) =>
    row.kind === "free" || (row.kind === "scalar" ? row.maxAbs <= lossTol : row.maxRel <= tol);
  const bad = r.rows.filter((row) => !ok(row));
  console.log(
    [
      `pretrain check: VoCo ${r.version} reference step file on ${be} ` +
      `(${
        ((performance.now() - t0) / 1000).toFixed(1)
      } s; scalars judged by max abs <= ${lossTol}, ` +
      `tensors by max rel <= ${tol})`,
      `  ${"quantity".padEnd(38)}${"shape".padEnd(12)}${"max abs".padEnd(11)}max rel`,
      ...r.rows.map((row) =>
        `  ${row.name.padEnd(38)}${`[${row.shape.join(",")}]`.padEnd(12)}` +
        `${row.maxAbs.toExponential(2).padEnd(11)}${row.maxRel.toExponential(2)}` +
        (row.kind === "free"
          ? "  (not judged: a BatchNorm follows, the loss does not depend on it)"
          : ok(row)
          ? ""
          : "  EXCEEDS")
      ),
      bad.length
        ? `${bad.length} quantities exceed the tolerance`
        : `all ${r.rows.length} quantities match`,
    ].join("\n"),
  );
  return bad.length > 0 || r.rows.length === 0 ? 1 : 0;
}

async function exportRun(v: Values, run: string): Promise<number> {
  if (!v.out) {
    throw new UsageError("export needs --out FILE.safetensors", { command: "pretrain export" });
  }
  const { bytes, step: got, path } = await exportBackbone(run, {
    step: v.step as number | undefined,
    teacher: Boolean(v.teacher),
  });
  const out = String(v.out);
  const tmp = `${out}.tmp-${Deno.pid}`;
  await Deno.writeFile(tmp, bytes);
  await Deno.rename(tmp, out);
  console.log(
    `exported the ${v.teacher ? "teacher" : "student"} backbone of step ${got} (${path})\n` +
      `  to ${out} (${(bytes.length / 1e6).toFixed(1)} MB; MONAI SwinUNETR(use_v2=True) keys ` +
      `swinViT.*, encoder*)`,
  );
  return 0;
}

const usage = (message: string) => new UsageError(message, { command: "pretrain train" });

function trainConfig(v: Values, be: string, base?: PretrainConfig): PretrainConfig {
  const num = (flag: string) => v[flag] as number | undefined;
  if (base) {
    // A resumed run keeps its settings; only its length may change.
    const steps = num("steps");
    return { ...base, backend: be, ...(steps ? { steps } : {}) };
  }
  const version = v.recipe === "voco-v1" ? "v1" : "v2";
  const caches = ((v.cache as string[] | undefined) ?? []).map((c) =>
    isCacheUrl(c) ? c : userPath(c)
  );
  if (caches.length === 0) {
    throw usage("training needs --cache DIR (a cache made by deno task prep)");
  }
  const repeat: Record<string, number> = {};
  for (const r of (v.repeat as string[] | undefined) ?? []) {
    const m = r.match(/^([^=]+)=(\d+)$/);
    if (!m || Number(m[2]) < 1) throw usage(`--repeat takes DATASET=N, got "${r}"`);
    repeat[m[1]] = Number(m[2]);
  }
  const roi = num("roi") ?? 64;
  if (roi % 32 !== 0) throw usage(`--roi must be a multiple of 32, got ${roi}`);
  const fs = num("feature-size") ?? 48;
  if (![12, 24, 48, 96, 192].includes(fs)) {
    throw usage(`--feature-size must be 12, 24, 48, 96 or 192, got ${fs}`);
  }
  const head = num("head");
  const overrides: Partial<PretrainConfig> = {
    datasets: v.datasets
      ? String(v.datasets).split(",").map((s) => s.trim()).filter(Boolean)
      : undefined,
    repeat: Object.keys(repeat).length ? repeat : undefined,
    roi,
    featureSize: fs,
    dropout: v.dropout as PretrainConfig["dropout"],
    augment: !v["no-augment"],
    backend: be,
    cropBatch: num("crop-batch") ?? (be === "wasm" ? 2 : undefined),
    initFrom: v["init-from"] as string | undefined,
  };
  const set = <K extends keyof PretrainConfig>(k: K, value: PretrainConfig[K] | undefined) => {
    if (value !== undefined) overrides[k] = value;
  };
  set("steps", num("steps"));
  set("batchSize", num("batch-size"));
  set("swBatchSize", num("sw-batch-size"));
  set("grid", num("grid"));
  set("headDims", head ? [head, head, head] : undefined);
  set("lr", num("lr"));
  set("warmupSteps", num("warmup-steps"));
  set("gradClip", num("grad-clip"));
  set("gradAccum", num("grad-accum"));
  set("workers", num("workers"));
  set("saveEvery", num("save-every"));
  set("keepCheckpoints", num("keep-checkpoints"));
  set("seed", num("seed"));
  return pretrainConfig(version, caches, overrides);
}

async function train(v: Values): Promise<number> {
  if (v.resume && v.out) throw usage("give --resume RUN or --out RUN, not both");
  const dir = (v.resume ?? v.out) as string | undefined;
  if (!dir) throw usage("training needs --out RUN (or --resume RUN)");
  const existing = await readRunConfig(dir).catch(() => undefined);
  if (v.resume && !existing) throw usage(`--resume ${dir}: not a run folder (no config.json)`);
  if (!existing) trainConfig(v, "cpu"); // usage errors before any backend loads
  const be = await backend(String(v.backend));
  const config = trainConfig(v, be, existing);
  const quiet = Boolean(v.quiet);
  let stopping = false;
  const onSigint = () => {
    if (stopping) Deno.exit(130);
    stopping = true;
    console.error(
      "\npretrain: stopping after this step (a checkpoint is written); Ctrl-C again quits at once",
    );
  };
  Deno.addSignalListener("SIGINT", onSigint);
  const tty = Deno.stderr.isTerminal();
  const enc = new TextEncoder();
  let lastLine = 0;
  const t0 = performance.now();
  let first = 0;
  const summary = await pretrain(dir, config, {
    onStart: (info) => {
      first = info.startStep;
      console.error(
        `pretrain: VoCo ${config.version}, ${info.cases} cases (${
          Object.entries(info.perDataset).map(([d, n]) => `${d} ${n}`).join(", ")
        }), backend ${be}, feature size ${config.featureSize}, batch ${config.batchSize} x ` +
          `(${config.swBatchSize} + ${config.grid ** 2}) crops of ${config.roi}³` +
          (info.startStep ? `, resuming at step ${info.startStep}` : "") + `\n  run folder ${dir}`,
      );
      if (info.init) {
        console.error(
          `  init from ${config.initFrom} (${info.init.format}): ${info.init.loaded} tensors` +
            (info.init.missing.length ? `, ${info.init.missing.length} missing (fresh)` : "") +
            (info.init.unexpected.length ? `, ${info.init.unexpected.length} unused keys` : ""),
        );
      }
    },
    onFailure: (f) => console.error(`pretrain: skipped ${f.case}: ${f.reason}`),
    onStep: (row: MetricsRow) => {
      if (quiet) return;
      const done = row.step - first;
      const elapsed = (performance.now() - t0) / 1000;
      const eta = (elapsed / done) * (config.steps - row.step);
      const terms = Object.entries(row).filter(([k]) =>
        ["intra", "inter", "reg", "pos", "neg"].includes(k)
      ).map(([k, x]) => `${k} ${Number(x).toFixed(4)}`).join(" ");
      const line = `step ${row.step}/${config.steps} loss ${row.loss.toFixed(4)} (${terms}) ` +
        `lr ${row.lr.toExponential(2)} ${row.samples_per_s.toFixed(2)} samples/s ` +
        `data wait ${(row.data_wait * 100).toFixed(0)}% ETA ${formatSeconds(eta)}`;
      if (tty) Deno.stderr.writeSync(enc.encode(`\r\x1b[2K${line}`));
      else if (performance.now() - lastLine > 10_000 || row.step === config.steps || done <= 3) {
        console.error(line);
        lastLine = performance.now();
      }
    },
    shouldStop: () => stopping,
  });
  Deno.removeSignalListener("SIGINT", onSigint);
  if (tty && !quiet) Deno.stderr.writeSync(enc.encode("\n"));
  console.log(
    [
      `pretrain: ${
        summary.interrupted ? "stopped" : "done"
      } at step ${summary.steps}/${config.steps} ` +
      `(${summary.ranSteps} this run, ${formatSeconds(summary.seconds)})`,
      `  final loss   ${summary.finalLoss?.toFixed(4) ?? "-"}`,
      `  checkpoint   ${summary.checkpoint ?? "-"}`,
      `  metrics      ${join(dir, "metrics.jsonl")}`,
      summary.failures.length
        ? `  skipped      ${summary.failures.length} samples of unreadable cases (listed above)`
        : "",
      `  export with  deno task pretrain export ${dir} --out backbone.safetensors`,
    ].filter(Boolean).join("\n"),
  );
  if (summary.interrupted) return 130;
  return summary.failures.length ? 1 : 0;
}

async function main(args: string[]): Promise<number> {
  // Training is the default command: `pretrain --cache ...` is `pretrain train --cache ...`.
  const first = args[0];
  const named = first !== undefined && Object.hasOwn(PRETRAIN.subcommands, first);
  const help = first === "-h" || first === "--help" || first === undefined;
  const parsed = parseCommand(PRETRAIN, named || help ? args : ["train", ...args]);
  if (parsed.help !== undefined) {
    console.log(parsed.help);
    return 0;
  }
  if (parsed.command === "check") return await check(parsed.values);
  if (parsed.command === "export") return await exportRun(parsed.values, parsed.positionals[0]);
  return await train(parsed.values);
}

if (import.meta.main) await runMain("pretrain", main);

export { main };
