// `deno task pretrain`: VoCo pre-training from the cache (train, resume), replaying the
// reference's step files (`check`) and exporting the backbone for MONAI (`export`).
import { join, resolve } from "node:path";
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
import { formatSeconds, parse, posInt, runMain, UsageError } from "./_cli.ts";

const HELP = `deno task pretrain: VoCo pre-training of a SwinUNETR-v2 backbone from a cache

Usage:
  deno task pretrain --cache CACHE.zarr --out RUN [options]     train (or continue RUN)
  deno task pretrain --resume RUN [--steps N]                   continue a run exactly
  deno task pretrain export RUN --out backbone.safetensors [--step N] [--teacher]
  deno task pretrain check --io voco-step.v2.safetensors [--backend B]

Training reads the cache chunk by chunk: per volume a region of grid x roi voxels in x-y
(zero-padded where the volume is smaller), the grid's base crops, --sw-batch-size random
crops with their overlap labels, each crop augmented (flips, rot90, intensity shift).
The run folder gets config.json, metrics.jsonl (loss and its terms, lr, samples/s,
data-wait share per step), checkpoints every --save-every steps (the last
--keep-checkpoints kept); Ctrl-C writes a checkpoint before exiting.

Options (training):
  --recipe R          voco-v2 (default: the large-scale recipe) or voco-v1 (CVPR)
  --cache DIR         a cache made by "deno task prep" with that recipe (repeatable)
  --datasets A,B      only these dataset groups
  --repeat D=N        each case of dataset D N times per epoch (repeatable)
  --out RUN           the run folder (continued when it holds a checkpoint)
  --resume RUN        continue RUN with its own settings (--steps may grow it)
  --steps N           total optimiser steps of the run (default 100000)
  --batch-size N      volumes per step (default 4 in v2, 2 in v1)
  --sw-batch-size N   random crops per volume (default 2)
  --roi N             model input edge, a multiple of 32 (default 64)
  --grid N            base crops per side (default 3 in v2, 4 in v1)
  --feature-size N    12, 24, 48 (default), 96
  --head N            projection head width (default 1024 in v2, 2048 in v1)
  --lr X              base learning rate (default 1e-4)
  --warmup-steps N    linear warm-up steps (default 5000)
  --grad-clip X       clip gradients to this global norm (default: none, as the reference)
  --grad-accum N      batches per optimiser step (default 1)
  --dropout D         rows (default: whole crops, the reference's Dropout1d), elements, none
  --no-augment        no flips, rot90 or intensity shifts
  --crop-batch N      crops per backbone pass (default: 2 on wasm, all on other backends)
  --workers N         sample-building workers (default 2; 0 builds them inline)
  --save-every N      checkpoint period in steps (default 1000)
  --keep-checkpoints N  checkpoints kept (default 3)
  --seed N            seed of weights, sampling and augmentation (default 0)
  --init-from FILE    start from these backbone weights: our or MONAI safetensors, or a
                      PyTorch .pt/.pth (torch.save), e.g. the published VoCo_10k.pt
                      ("module." prefixes removed, swin_vit renamed swinViT)
  --backend B         ${BACKENDS.join(", ")} (default auto)
  --quiet             no progress line
  -h, --help          this help

Options (export):   --step N (default: the newest checkpoint), --teacher (v1 only)
Options (check):    --io FILE, --tolerance T (relative, tensors; default 1e-4),
                    --loss-tolerance T (absolute, scalars; default 1e-5), --backend B

Examples:
  deno task prep ../shared/data/ct/example_ct.nii.gz --out ct.zarr
  deno task pretrain --cache ct.zarr --out runs/tiny --feature-size 12 --head 256 \\
    --batch-size 1 --sw-batch-size 1 --grid 2 --steps 4 --warmup-steps 1 --lr 1e-3
  deno task pretrain --resume runs/tiny --steps 8
  deno task pretrain export runs/tiny --out backbone.safetensors
  deno task pretrain check --io ../shared/golden/voco-step.v2.safetensors --backend cpu
`;

/** Paths given on the command line are relative to where the user stood. */
function userPath(p: string): string {
  return resolve(Deno.env.get("INIT_CWD") ?? Deno.cwd(), p);
}

const OPTIONS = {
  recipe: { type: "string" },
  cache: { type: "string", multiple: true },
  datasets: { type: "string" },
  repeat: { type: "string", multiple: true },
  out: { type: "string" },
  resume: { type: "string" },
  steps: { type: "string" },
  "batch-size": { type: "string" },
  "sw-batch-size": { type: "string" },
  roi: { type: "string" },
  grid: { type: "string" },
  "feature-size": { type: "string" },
  head: { type: "string" },
  lr: { type: "string" },
  "warmup-steps": { type: "string" },
  "grad-clip": { type: "string" },
  "grad-accum": { type: "string" },
  dropout: { type: "string" },
  "no-augment": { type: "boolean" },
  "crop-batch": { type: "string" },
  "init-from": { type: "string" },
  workers: { type: "string" },
  "save-every": { type: "string" },
  "keep-checkpoints": { type: "string" },
  seed: { type: "string" },
  backend: { type: "string", default: "auto" },
  quiet: { type: "boolean", default: false },
  step: { type: "string" },
  teacher: { type: "boolean", default: false },
  io: { type: "string" },
  tolerance: { type: "string", default: "1e-4" },
  "loss-tolerance": { type: "string", default: "1e-5" },
  help: { type: "boolean", short: "h", default: false },
} as const;

type Values = Record<string, string | boolean | string[] | undefined>;

function positiveNumber(flag: string, s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  const n = Number(s);
  if (!(n > 0) || !Number.isFinite(n)) {
    throw new UsageError(`${flag} takes a positive number, got "${s}"`);
  }
  return n;
}

async function backend(v: Values): Promise<string> {
  const name = String(v.backend) as BackendName;
  if (!BACKENDS.includes(name)) {
    throw new UsageError(`--backend must be one of ${BACKENDS.join(", ")}, got "${name}"`);
  }
  return await useBackend(name);
}

async function check(v: Values): Promise<number> {
  if (!v.io) throw new UsageError("check needs --io FILE (a voco-step.*.safetensors)");
  const tol = positiveNumber("--tolerance", v.tolerance as string)!;
  const lossTol = positiveNumber("--loss-tolerance", v["loss-tolerance"] as string)!;
  const path = userPath(String(v.io));
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new Error(`--io ${path}: ${(e as Error).message}`);
  }
  const be = await backend(v);
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

async function exportRun(v: Values, positionals: string[]): Promise<number> {
  const run = positionals[1];
  if (!run) {
    throw new UsageError("export needs the run folder: deno task pretrain export RUN --out FILE");
  }
  if (!v.out) throw new UsageError("export needs --out FILE.safetensors");
  const step = posInt("--step", v.step as string | undefined);
  const { bytes, step: got, path } = await exportBackbone(userPath(run), {
    step,
    teacher: Boolean(v.teacher),
  });
  const out = userPath(String(v.out));
  const tmp = `${out}.tmp-${Deno.pid}`;
  await Deno.writeFile(tmp, bytes);
  await Deno.rename(tmp, out);
  console.log(
    `exported the ${v.teacher ? "teacher" : "student"} backbone of step ${got} (${path})\n` +
      `  to ${out} (${
        (bytes.length / 1e6).toFixed(1)
      } MB, MONAI SwinUNETR(use_v2=True) keys swinViT.*, encoder*)`,
  );
  return 0;
}

function trainConfig(v: Values, be: string, base?: PretrainConfig): PretrainConfig {
  const int = (flag: string) => posInt(`--${flag}`, v[flag] as string | undefined);
  if (base) {
    // A resumed run keeps its settings; only its length may change.
    const steps = int("steps");
    return { ...base, backend: be, ...(steps ? { steps } : {}) };
  }
  const recipe = String(v.recipe ?? "voco-v2");
  if (recipe !== "voco-v2" && recipe !== "voco-v1") {
    throw new UsageError(`--recipe must be voco-v2 or voco-v1, got "${recipe}"`);
  }
  const version = recipe === "voco-v2" ? "v2" : "v1";
  const caches = ((v.cache as string[] | undefined) ?? []).map(userPath);
  if (caches.length === 0) {
    throw new UsageError("training needs --cache DIR (a cache made by deno task prep)");
  }
  const repeat: Record<string, number> = {};
  for (const r of (v.repeat as string[] | undefined) ?? []) {
    const m = r.match(/^([^=]+)=(\d+)$/);
    if (!m || Number(m[2]) < 1) throw new UsageError(`--repeat takes DATASET=N, got "${r}"`);
    repeat[m[1]] = Number(m[2]);
  }
  const roi = int("roi") ?? 64;
  if (roi % 32 !== 0 || roi < 64) {
    throw new UsageError(`--roi must be a multiple of 32, at least 64, got ${roi}`);
  }
  const fs = int("feature-size") ?? 48;
  if (![12, 24, 48, 96, 192].includes(fs)) {
    throw new UsageError(`--feature-size must be 12, 24, 48, 96 or 192, got ${fs}`);
  }
  const dropout = String(v.dropout ?? "rows");
  if (!["rows", "elements", "none"].includes(dropout)) {
    throw new UsageError(`--dropout must be rows, elements or none, got "${dropout}"`);
  }
  const head = int("head");
  const grid = int("grid");
  if (grid !== undefined && grid < 2) throw new UsageError(`--grid needs at least 2, got ${grid}`);
  const workers = v.workers === undefined ? undefined : Number(v.workers);
  if (workers !== undefined && !(Number.isInteger(workers) && workers >= 0)) {
    throw new UsageError(`--workers takes 0 or a positive integer, got "${v.workers}"`);
  }
  const overrides: Partial<PretrainConfig> = {
    datasets: v.datasets
      ? String(v.datasets).split(",").map((s) => s.trim()).filter(Boolean)
      : undefined,
    repeat: Object.keys(repeat).length ? repeat : undefined,
    roi,
    featureSize: fs,
    dropout: dropout as PretrainConfig["dropout"],
    augment: !v["no-augment"],
    backend: be,
    cropBatch: int("crop-batch") ?? (be === "wasm" ? 2 : undefined),
  };
  const set = <K extends keyof PretrainConfig>(k: K, value: PretrainConfig[K] | undefined) => {
    if (value !== undefined) overrides[k] = value;
  };
  set("steps", int("steps"));
  set("batchSize", int("batch-size"));
  set("swBatchSize", int("sw-batch-size"));
  set("grid", grid);
  set("headDims", head ? [head, head, head] : undefined);
  set("lr", positiveNumber("--lr", v.lr as string | undefined));
  set("warmupSteps", v["warmup-steps"] === undefined ? undefined : Number(v["warmup-steps"]));
  set("gradClip", positiveNumber("--grad-clip", v["grad-clip"] as string | undefined));
  set("gradAccum", int("grad-accum"));
  set("workers", workers);
  set("saveEvery", int("save-every"));
  set("keepCheckpoints", int("keep-checkpoints"));
  set("seed", v.seed === undefined ? undefined : Number(v.seed));
  set("initFrom", v["init-from"] ? userPath(String(v["init-from"])) : undefined);
  if (
    overrides.warmupSteps !== undefined &&
    !(Number.isInteger(overrides.warmupSteps) && overrides.warmupSteps >= 0)
  ) {
    throw new UsageError(
      `--warmup-steps takes 0 or a positive integer, got "${v["warmup-steps"]}"`,
    );
  }
  return pretrainConfig(version, caches, overrides);
}

async function train(v: Values): Promise<number> {
  if (v.resume && v.out) throw new UsageError("give --resume RUN or --out RUN, not both");
  const dir = v.resume ? userPath(String(v.resume)) : v.out ? userPath(String(v.out)) : undefined;
  if (!dir) throw new UsageError("training needs --out RUN (or --resume RUN)");
  const existing = await readRunConfig(dir).catch(() => undefined);
  if (v.resume && !existing) {
    throw new UsageError(`--resume ${dir}: not a run folder (no config.json)`);
  }
  const be = await backend(v);
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
  const { values: v, positionals } = parse(args, OPTIONS as never);
  if (v.help) {
    console.log(HELP);
    return 0;
  }
  if (positionals[0] === "check") return await check(v);
  if (positionals[0] === "export") return await exportRun(v, positionals);
  if (positionals.length) {
    throw new UsageError(`Unknown command "${positionals[0]}" (check, export, or none to train)`);
  }
  return await train(v);
}

if (import.meta.main) await runMain("pretrain", main);

export { main };
