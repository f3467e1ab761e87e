// `deno task pretrain`: VoCo pre-training from the cache (train, resume, --dry-run),
// replaying the reference's step files (`check`) and exporting the backbone for MONAI
// (`export`). Parses flags, calls the library, prints.
import { join } from "node:path";
import { type BackendName, BACKENDS, useBackend } from "../train/backend.ts";
import { replayVocoStep, type StepDiff, withinTolerance } from "../train/voco/check.ts";
import { LOSS_TERMS } from "../train/voco/loss.ts";
import { pretrain } from "../train/pretrain.ts";
import { type PretrainConfig, settingsFromFlags } from "../train/config.ts";
import { prepareRun } from "../train/run/prepare.ts";
import { dryRun, type DryRunReport } from "../train/run/dry_run.ts";
import type { MetricsRow } from "../train/run/folder.ts";
import { someNames } from "../train/run/init_from.ts";
import { exportBackbone } from "../train/run/export.ts";
import { writeFileAtomic } from "../train/run/folder.ts";
import { BadInputError } from "../cache/errors.ts";
import { formatBytes, formatSeconds, onInterrupt, runMain, UsageError } from "../cli/run.ts";
import { StatusLine } from "../cli/progress.ts";
import { defineCommand, parseCommand } from "../cli/args.ts";
import { cacheLocation, REMOTE_FLAGS } from "./_cache_location.ts";

const BACKEND_FLAG = {
  type: "string",
  arg: "B",
  choices: BACKENDS,
  help: `${BACKENDS.join(", ")} (default auto: wasm, else cpu)`,
} as const;

const int = (min: number, help: string) => ({ type: "number", integer: true, min, help }) as const;

const TRAIN_FLAGS = {
  recipe: {
    type: "string",
    arg: "R",
    choices: ["voco-v2", "voco-v1"],
    help: "voco-v2 (default, the large-scale recipe) or voco-v1 (CVPR); the cache must match",
  },
  cache: {
    type: "list",
    arg: "DIR|URL",
    help: 'a cache made by "deno task prep" with that recipe: a folder, an http(s):// URL\n' +
      "(e.g. from deno task cache serve) or s3://bucket/prefix (--endpoint, AWS_ENDPOINT_URL,\n" +
      "AWS_REGION and the AWS_* credentials are read); repeatable",
  },
  ...REMOTE_FLAGS,
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
    help: "continue RUN with its own settings (--steps, --save-every, --keep-checkpoints,\n" +
      "--workers, --backend, --crop-batch may change; others are refused)",
  },
  config: {
    type: "path",
    arg: "FILE",
    help: "start from the settings of FILE (a run's config.json, or written by hand);\n" +
      "flags override them",
  },
  "dry-run": {
    type: "boolean",
    help: "measure one step (memory, time per step and for the run), write nothing",
  },
  "init-from": {
    type: "path",
    arg: "FILE",
    help: "start from these backbone weights: our or MONAI safetensors, or a PyTorch\n" +
      '.pt/.pth (torch.save) such as the published VoCo_10k.pt ("module." removed,\n' +
      "swin_vit renamed swinViT)",
  },
  steps: int(1, "total optimiser steps of the run (default 100000)"),
  "batch-size": int(1, "volumes per step (default 4 in v2, 2 in v1)"),
  "sw-batch-size": int(1, "random crops per volume (default 2)"),
  roi: int(32, "model input edge, a multiple of 32 (default 64)"),
  grid: int(2, "base crops per side (default 3 in v2, 4 in v1)"),
  "feature-size": { type: "number", integer: true, help: "12, 24, 48 (default), 96 or 192" },
  head: int(1, "projection head width (default 1024 in v2, 2048 in v1)"),
  lr: { type: "number", min: 0, arg: "X", help: "base learning rate (default 1e-4)" },
  "warmup-steps": int(0, "linear warm-up steps (default 5000)"),
  "grad-clip": {
    type: "number",
    min: 0,
    arg: "X",
    help: "clip gradients to this global norm (default: none, as the reference)",
  },
  "grad-accum": int(1, "batches per optimiser step (default 1)"),
  dropout: {
    type: "string",
    arg: "D",
    choices: ["rows", "elements", "none"],
    help: "feature dropout before the v2 student head: rows (default: whole crops,\n" +
      "as the reference's Dropout1d on [N, C]), elements, or none",
  },
  "no-augment": { type: "boolean", help: "no flips, rot90 or intensity shifts" },
  "crop-batch": int(
    1,
    "crops per backbone pass, the backward recomputed stage by stage (default: planned\n" +
      "from the backend's memory; one taped pass when the whole step fits)",
  ),
  workers: int(0, "sample-building workers (default 2; 0: inline)"),
  "save-every": int(1, "checkpoint period in steps (default 1000)"),
  "keep-checkpoints": int(1, "checkpoints kept (default 3)"),
  seed: int(0, "seed of weights, sampling and augmentation (default 0)"),
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
    "pretrain export RUN --out backbone.safetensors [--format pt] [--step N] [--teacher]",
    "pretrain check --io voco-step.v2.safetensors [--backend B]",
  ],
  subcommands: {
    train: {
      name: "pretrain train",
      summary: "train a VoCo run from one or more caches, or continue one",
      usage: [
        "pretrain [train] --cache CACHE.zarr --out RUN [options]",
        "pretrain [train] --resume RUN [--steps N]",
        "pretrain [train] --config FILE --out RUN [options]",
      ],
      description:
        `Reads the cache chunk by chunk: per volume a region of grid x roi voxels in x-y (zero-
padded where the volume is smaller), the grid's base crops, --sw-batch-size random crops
with their overlap labels, each crop augmented (flips, rot90, intensity shift). The run
folder gets config.json, metrics.jsonl (loss and its terms, lr, samples/s, data-wait
share, gradient norm), loss.svg, and checkpoints every --save-every steps (the last
--keep-checkpoints kept). Settings and sizes are checked before the folder is made; one
process trains in a folder at a time (run.lock); a NaN or infinite loss or gradient stops
the run, keeping the checkpoints. Ctrl-C writes a checkpoint and exits 130; a second
Ctrl-C quits at once.`,
      flags: TRAIN_FLAGS,
      examples: [
        "prep ../shared/data/ct/example_ct.nii.gz --out ct.zarr",
        "pretrain train --cache ct.zarr --out runs/tiny --feature-size 12 --head 256 \\\n" +
        "    --batch-size 1 --sw-batch-size 1 --grid 2 --steps 4 --warmup-steps 1 --lr 1e-3",
        "pretrain train --resume runs/tiny --steps 8",
        "pretrain train --cache ct.zarr --out runs/v2 --dry-run",
      ],
      footer: "Exit code: 0 when done, 1 when cases failed to read (they are skipped) or " +
        "the run diverged, 2 on bad usage or an unusable input (nothing done), 130 when " +
        "stopped with Ctrl-C.",
    },
    export: {
      name: "pretrain export",
      summary: "write a run's backbone in MONAI's names for fine-tuning",
      usage: ["pretrain export RUN --out FILE [--format safetensors|pt] [--step N] [--teacher]"],
      description:
        `The student backbone (swinViT.*, encoder1..4, encoder10) of the newest checkpoint
(or --step N), loadable into monai.networks.nets.SwinUNETR(use_v2=True) with
load_state_dict(..., strict=False) (the decoder stays fresh). Its metadata holds the
feature size. --format pt writes a torch.save file ({"state_dict": ..., "feature_size":
...}) that torch.load(f, weights_only=True) opens without the safetensors package.`,
      positionals: { name: "run", help: "the run folder", type: "path", min: 1, max: 1 },
      flags: {
        out: { type: "path", arg: "FILE", help: "the file to write" },
        format: {
          type: "string",
          arg: "F",
          choices: ["safetensors", "pt"],
          help: "safetensors (default) or pt (torch.save)",
        },
        step: int(1, "the checkpoint's step (default: the newest)"),
        teacher: { type: "boolean", help: "the v1 teacher network instead of the student" },
      },
      examples: [
        "pretrain export runs/tiny --out backbone.safetensors",
        "pretrain export runs/tiny --out backbone.pt --format pt",
      ],
      footer: "Exit code: 0 when written, 2 when the run or its checkpoint is unusable.",
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
      footer: "Exit code: 0 when every quantity is within tolerance, 1 when any exceeds it, " +
        "2 when the file is missing or unusable.",
    },
  },
  examples: [
    "pretrain train --cache ct.zarr --out runs/tiny --feature-size 12 --head 256 --grid 2 --steps 4",
    "pretrain export runs/tiny --out backbone.safetensors",
    "pretrain check --io ../shared/golden/voco-step.v1.safetensors",
  ],
});

type Values = Record<string, string | number | boolean | string[] | number[] | undefined>;

async function check(v: Values): Promise<number> {
  if (!v.io) {
    throw new UsageError("check needs --io FILE (a voco-step.*.safetensors)", {
      command: "pretrain check",
    });
  }
  const tol = v.tolerance as number, lossTol = v["loss-tolerance"] as number;
  const path = String(v.io);
  const bytes = await Deno.readFile(path).catch((e) => {
    throw new BadInputError(`--io ${path}: ${(e as Error).message}`, { path });
  });
  const be = await useBackend((v.backend ?? "auto") as BackendName);
  const t0 = performance.now();
  const r = await replayVocoStep(bytes, path);
  const ok = (row: StepDiff) => withinTolerance(row, { loss: lossTol, tensor: tol });
  const bad = r.rows.filter((row) => !ok(row));
  const seconds = ((performance.now() - t0) / 1000).toFixed(1);
  console.log(
    [
      `pretrain check: VoCo ${r.version} reference step file on ${be} (${seconds} s; scalars ` +
      `judged by max abs <= ${lossTol}, tensors by max rel <= ${tol})`,
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
  if (!v.out) throw new UsageError("export needs --out FILE", { command: "pretrain export" });
  const format = (v.format ?? "safetensors") as "safetensors" | "pt";
  const { bytes, step, path } = await exportBackbone(run, {
    step: v.step as number | undefined,
    teacher: Boolean(v.teacher),
    format,
  });
  const out = String(v.out);
  await writeFileAtomic(out, bytes);
  console.log(
    `exported the ${v.teacher ? "teacher" : "student"} backbone of step ${step} (${path})\n` +
      `  to ${out} (${(bytes.length / 1e6).toFixed(1)} MB, ${format}; MONAI ` +
      `SwinUNETR(use_v2=True) keys swinViT.*, encoder*; the feature size in its ${
        format === "pt" ? "feature_size key" : "metadata"
      })`,
  );
  return 0;
}

/** A duration that may be days or years long. */
function longSeconds(s: number): string {
  const days = s / 86400;
  if (days < 2) return formatSeconds(s);
  return days < 730 ? `${days.toFixed(1)} days` : `${(days / 365).toFixed(1)} years`;
}

function printDryRun(r: DryRunReport, config: PretrainConfig): void {
  const { plan } = r;
  const gb = (n?: number) => n === undefined ? "-" : formatBytes(n);
  console.log(
    [
      `pretrain --dry-run: VoCo ${config.version} on ${config.backend}, feature size ` +
      `${config.featureSize}, ${plan.rows} crops of ${config.roi}³ per step ` +
      (plan.cropBatch === undefined
        ? "in one taped pass"
        : `in ${r.passes} passes of at most ${plan.cropBatch} (backward stage by stage)`),
      r.passSeconds
        ? `  one pass          forward ${r.passSeconds.forward.toFixed(1)} s, backward ` +
          `${r.passSeconds.backward.toFixed(1)} s`
        : "",
      `  optimiser step    ${r.optimizerSeconds.toFixed(1)} s`,
      `  per step          ${formatSeconds(r.stepSeconds)} (estimated from the measured pass)`,
      `  whole run         ${longSeconds(r.runSeconds)} for ${config.steps} steps`,
      `  memory planned    ${gb(plan.peakBytes)} of ${config.backend}'s ${gb(plan.budgetBytes)}` +
      ` (weights and optimiser ${gb(plan.stateBytes)})`,
      `  memory measured   heap ${gb(r.heapBytes)}, tensors after the step ` +
      `${gb(r.tensorBytes)}, RSS ${gb(r.rssBytes)}` +
      (r.peakRssBytes ? ` (peak ${gb(r.peakRssBytes)})` : ""),
    ].filter(Boolean).join("\n"),
  );
}

async function train(v: Values): Promise<number> {
  const flags = { ...v, cache: (v.cache as string[] | undefined)?.map(cacheLocation) };
  const { dir, config, resumes, warnings } = await prepareRun({
    out: v.out as string | undefined,
    resume: v.resume as string | undefined,
    configFile: v.config as string | undefined,
    settings: settingsFromFlags(flags),
  });
  const warn = () => warnings.forEach((w) => console.error(`pretrain: warning: ${w}`));
  if (v["dry-run"]) {
    warn();
    printDryRun(await dryRun(config), config);
    return 0;
  }
  const quiet = Boolean(v.quiet);
  const stop = onInterrupt(() =>
    console.error(
      "\npretrain: stopping after this step (a checkpoint is written); Ctrl-C again quits at once",
    )
  );
  const status = new StatusLine(quiet);
  let first = 0;
  const t0 = performance.now();
  const summary = await pretrain(dir, config, {
    onStart: (info) => {
      first = info.startStep;
      const datasets = Object.entries(info.perDataset).map(([d, n]) => `${d} ${n}`).join(", ");
      const lines = [
        `pretrain: VoCo ${config.version}, ${info.cases} cases (${datasets}), backend ` +
        `${config.backend}, feature size ${config.featureSize}, batch ${config.batchSize} x ` +
        `(${config.swBatchSize} + ${config.grid ** 2}) crops of ${config.roi}³` +
        (info.cropBatch ? `, ${info.cropBatch} per backbone pass` : "") +
        (resumes ? `, resuming at step ${info.startStep}` : "") + `\n  run folder ${dir}`,
        ...info.changes.map((c) => `  changed ${c}`),
      ];
      if (info.init) {
        const { init } = info;
        lines.push(
          `  init from ${config.initFrom} (${init.format}): ${init.loaded} tensors` +
            (init.missing.length ? `; fresh (not in the file): ${someNames(init.missing)}` : "") +
            (init.unexpected.length ? `; unused keys: ${someNames(init.unexpected)}` : ""),
        );
      }
      console.error(lines.join("\n"));
      // Only now, when every check has passed: a refused run prints its reason alone.
      warn();
    },
    onFailure: (f) => console.error(`pretrain: skipped ${f.case}: ${f.reason}`),
    onStep: (row: MetricsRow) => {
      const done = row.step - first;
      const eta = ((performance.now() - t0) / 1000 / done) * (config.steps - row.step);
      const terms = LOSS_TERMS[config.version].map((k) => `${k} ${Number(row[k]).toFixed(4)}`);
      const line = `step ${row.step}/${config.steps} loss ${row.loss.toFixed(4)} ` +
        `(${terms.join(" ")}) lr ${row.lr.toExponential(2)} ` +
        `${row.samples_per_s.toFixed(2)} samples/s data wait ` +
        `${(row.data_wait * 100).toFixed(0)}% ETA ${formatSeconds(eta)}`;
      status.update(line, done <= 3 || row.step === config.steps);
    },
    shouldStop: () => stop.interrupted,
  }).finally(() => (stop.dispose(), status.end()));
  console.log(
    [
      `pretrain: ${summary.interrupted ? "stopped" : "done"} at step ${summary.steps}/` +
      `${config.steps} (${summary.ranSteps} this run, ${formatSeconds(summary.seconds)})`,
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
