// The VoCo pre-training loop, top to bottom as nanoGPT's: get a batch, forward, loss,
// backward, clip, AdamW step at the schedule's lr, log, checkpoint. A run folder holds
// everything: config.json, metrics.jsonl, checkpoints; resuming needs only the folder.
import { join, resolve } from "node:path";
import { isCacheUrl } from "../cache/read/cache_reader.ts";
import { listTrainingCases, type TrainingCase } from "./sampler/cases.ts";
import { BatchLoader, type FailedSample } from "./sampler/loader.ts";
import { sampleSpec } from "./sampler/voco_sample.ts";
import { type FeatureDropout, type StepTerms, VocoModel, type VocoVersion } from "./voco/model.ts";
import { warmupCosine } from "./optim/schedule.ts";
import {
  listCheckpoints,
  loadCheckpoint,
  readCheckpoint,
  saveCheckpoint,
} from "./run/checkpoint.ts";
import { checkpointName } from "./run/checkpoint.ts";
import * as tf from "@tensorflow/tfjs-core";
import { initFrom, type InitReport } from "./run/init_from.ts";
import { lossPlotSvg } from "./run/plot.ts";

async function writeTextAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}`;
  await Deno.writeTextFile(tmp, text);
  await Deno.rename(tmp, path);
}

/** Everything that defines a run; written to `config.json`. */
export interface PretrainConfig {
  /** VoCo version (`v2` large-scale, `v1` CVPR). */
  version: VocoVersion;
  /** Caches to sample from: folders, or `http(s)://` / `s3://` URLs. */
  caches: string[];
  /** Datasets to keep (all when absent). */
  datasets?: string[];
  /** Per-dataset repeats per epoch. */
  repeat?: Record<string, number>;
  /** Volumes per step. */
  batchSize: number;
  /** Random crops per volume. */
  swBatchSize: number;
  /** Model input edge. */
  roi: number;
  /** Base crops per side. */
  grid: number;
  /** Backbone feature size. */
  featureSize: number;
  /** Projection head sizes. */
  headDims: [number, number, number];
  /** Base learning rate. */
  lr: number;
  /** Warm-up steps. */
  warmupSteps: number;
  /** The run's total optimiser steps. */
  steps: number;
  /** Checkpoint every this many steps (and at the end). */
  saveEvery: number;
  /** Checkpoints kept. */
  keepCheckpoints: number;
  /** Seed of weights, sampling, augmentation and dropout. */
  seed: number;
  /** Gradient clipping to this global norm (none when absent). */
  gradClip?: number;
  /** Batches per optimiser step. */
  gradAccum: number;
  /** Feature dropout before the student head (v2). */
  dropout: FeatureDropout;
  /** Augment crops. */
  augment: boolean;
  /** Crops per backbone pass (all of a batch when absent). */
  cropBatch?: number;
  /**
   * Attention window edge (7, MONAI's, when absent; another size does not load into MONAI:
   * for quick checks only).
   */
  windowSize?: number;
  /** Sample workers (0: inline). */
  workers: number;
  /** Batches prefetched. */
  prefetch: number;
  /** tfjs backend in use. */
  backend: string;
  /** Starting backbone weights (safetensors or a `torch.save` file), for a fresh run. */
  initFrom?: string;
}

/** One line of `metrics.jsonl`. */
export interface MetricsRow {
  /** Optimiser steps done. */
  step: number;
  /** Total loss (mean over the accumulated batches). */
  loss: number;
  /** The step's learning rate. */
  lr: number;
  /** Volumes per second over the step. */
  samples_per_s: number;
  /** Share of the step spent waiting for data. */
  data_wait: number;
  /** Seconds of the step. */
  seconds: number;
  /** Gradient norm before clipping (with clipping). */
  grad_norm?: number;
  /** The loss terms (`intra`, `inter`, `reg` or `pos`, `neg`, `reg`). */
  [term: string]: number | undefined;
}

/** Callbacks of {@linkcode pretrain}. */
export interface PretrainHooks {
  /** After each step. */
  onStep?: (row: MetricsRow, config: PretrainConfig) => void;
  /** For each case that failed to read (skipped). */
  onFailure?: (f: FailedSample) => void;
  /** After each checkpoint. */
  onCheckpoint?: (path: string, rows: readonly MetricsRow[]) => void | Promise<void>;
  /** Asked after each step: true stops the run after a checkpoint. */
  shouldStop?: () => boolean;
  /** Before the first step: the cases, where the run starts, what `initFrom` gave. */
  onStart?: (info: {
    cases: number;
    perDataset: Record<string, number>;
    startStep: number;
    init?: { loaded: number; missing: string[]; unexpected: string[]; format: string };
  }) => void;
}

/** How a run ended. */
export interface PretrainSummary {
  /** Steps done in all (the resumed ones included). */
  steps: number;
  /** Steps this invocation ran. */
  ranSteps: number;
  /** Seconds this invocation trained. */
  seconds: number;
  /** The last step's loss. */
  finalLoss?: number;
  /** The newest checkpoint. */
  checkpoint?: string;
  /** Cases that failed and were skipped. */
  failures: FailedSample[];
  /** Whether `shouldStop` ended it early. */
  interrupted: boolean;
}

/** The toolkit version recorded in runs. */
export const TOOLKIT_VERSION = "0.1.0";

/** A run's config with the recipe defaults filled in. */
export function pretrainConfig(
  version: VocoVersion,
  caches: string[],
  overrides: Partial<PretrainConfig> = {},
): PretrainConfig {
  const v2 = version === "v2";
  return {
    version,
    caches,
    batchSize: v2 ? 4 : 2,
    swBatchSize: 2,
    roi: 64,
    grid: v2 ? 3 : 4,
    featureSize: 48,
    headDims: v2 ? [1024, 1024, 1024] : [2048, 2048, 2048],
    lr: 1e-4,
    warmupSteps: 5000,
    steps: 100_000,
    saveEvery: 1000,
    keepCheckpoints: 3,
    seed: 0,
    gradAccum: 1,
    dropout: "rows",
    augment: true,
    workers: 2,
    prefetch: 2,
    backend: "cpu",
    ...overrides,
  };
}

async function cacheFingerprints(cases: readonly TrainingCase[]): Promise<Record<string, string>> {
  const byCache = new Map<string, string[]>();
  for (const c of cases) {
    const list = byCache.get(c.cache) ?? [];
    list.push(`${c.path}:${c.fingerprint}`);
    byCache.set(c.cache, list);
  }
  const out: Record<string, string> = {};
  for (const [cache, list] of byCache) {
    const bytes = new TextEncoder().encode([...new Set(list)].sort().join("\n"));
    const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    out[cache] = [...hash].map((b) => b.toString(16).padStart(2, "0")).join("");
  }
  return out;
}

/** Reads a run folder's `config.json`. */
export async function readRunConfig(dir: string): Promise<PretrainConfig> {
  const path = join(dir, "config.json");
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch {
    throw new Deno.errors.NotFound(`${dir} is not a run folder (no config.json)`);
  }
  return (JSON.parse(text) as { config: PretrainConfig }).config;
}

/** Reads `metrics.jsonl`, keeping the rows up to `maxStep`. */
export async function readMetrics(dir: string, maxStep = Infinity): Promise<MetricsRow[]> {
  const text = await Deno.readTextFile(join(dir, "metrics.jsonl")).catch(() => "");
  return text.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l) as MetricsRow)
    .filter((r) => r.step <= maxStep);
}

/**
 * Trains (or resumes, when `dir` holds a checkpoint) a VoCo run into `dir`. The current
 * tfjs backend runs the model; `config.backend` only records it.
 */
export async function pretrain(
  dir: string,
  config: PretrainConfig,
  hooks: PretrainHooks = {},
): Promise<PretrainSummary> {
  await Deno.mkdir(dir, { recursive: true });
  const recipe = config.version === "v2" ? "voco-v2" : "voco-v1";
  const list = await listTrainingCases(config.caches.map((c) => isCacheUrl(c) ? c : resolve(c)), {
    datasets: config.datasets,
    recipe,
    repeat: config.repeat,
  });
  const model = new VocoModel({
    version: config.version,
    featureSize: config.featureSize,
    headDims: config.headDims,
    seed: config.seed,
    dropout: config.dropout,
    cropBatch: config.cropBatch,
    windowSize: config.windowSize,
  });
  let startStep = 0, position = 0;
  // Temporary files of a run killed while writing (never read: the rename did not happen).
  for await (const e of Deno.readDir(dir)) {
    if (/\.tmp-\d+$/.test(e.name)) await Deno.remove(join(dir, e.name)).catch(() => {});
  }
  const checkpoints = await listCheckpoints(dir);
  let rows: MetricsRow[] = [];
  let init: InitReport | undefined;
  if (checkpoints.length === 0 && config.initFrom) init = await initFrom(model, config.initFrom);
  if (checkpoints.length > 0) {
    const path = join(dir, checkpointName(checkpoints[checkpoints.length - 1]));
    const ckpt = await readCheckpoint(path);
    loadCheckpoint(model, ckpt, path);
    startStep = ckpt.state.step;
    position = ckpt.state.position;
    rows = await readMetrics(dir, startStep);
  }
  await Deno.writeTextFile(
    join(dir, "config.json"),
    JSON.stringify(
      {
        toolkit: TOOLKIT_VERSION,
        created: new Date().toISOString(),
        config,
        caches: await cacheFingerprints(list.cases),
        cases: list.cases.length,
        per_dataset: list.perDataset,
      },
      null,
      2,
    ) + "\n",
  );
  // metrics.jsonl holds exactly the steps the checkpoint has (a kill after it loses the rest).
  await Deno.writeTextFile(
    join(dir, "metrics.jsonl"),
    rows.map((r) => JSON.stringify(r) + "\n").join(""),
  );
  hooks.onStart?.({ cases: list.cases.length, perDataset: list.perDataset, startStep, init });
  const spec = sampleSpec(config.version, {
    roi: config.roi,
    grid: config.grid,
    crops: config.swBatchSize,
    augment: config.augment,
    ...(config.version === "v1" ? { base: Math.round(config.roi * 1.5) } : {}),
  });
  const loader = new BatchLoader(list.cases, {
    batchSize: config.batchSize,
    spec,
    seed: config.seed,
    start: position,
    workers: config.workers,
    prefetch: config.prefetch,
    onFailure: hooks.onFailure,
  });
  const t0 = performance.now();
  let checkpoint: string | undefined;
  let interrupted = false;
  let step = startStep;
  try {
    while (step < config.steps) {
      const tStep = performance.now();
      let waited = 0;
      const sum: StepTerms = {};
      const grads = new Map<string, tf.Tensor>();
      for (let micro = 0; micro < config.gradAccum; micro++) {
        const tWait = performance.now();
        const batch = await loader.next();
        waited += performance.now() - tWait;
        const r = await model.gradients(
          {
            inputs: batch.inputs,
            labels: batch.labels,
            batch: config.batchSize,
            crops: config.swBatchSize,
            roi: config.roi,
          },
          step * config.gradAccum + micro,
          1 / config.gradAccum,
        ).catch((e: Error) => {
          // tfjs-wasm's heap ends at a few GB: say what to change instead of a bare trap.
          if (/memory access out of bounds|Aborted|allocation failed/i.test(e.message)) {
            throw new RangeError(
              `Step ${step + 1} ran out of ${config.backend} memory (${e.message}): lower ` +
                `--crop-batch (now ${config.cropBatch ?? "all crops"}) or --batch-size`,
              { cause: e },
            );
          }
          throw e;
        });
        for (const [k, v] of Object.entries(r.terms)) sum[k] = (sum[k] ?? 0) + v / config.gradAccum;
        for (const [k, g] of r.grads) {
          const prev = grads.get(k);
          grads.set(k, prev ? tf.tidy(() => tf.add(prev, g)) : g);
          if (prev) tf.dispose([prev, g]);
        }
      }
      const lr = config.lr *
        warmupCosine(step, { warmupSteps: config.warmupSteps, totalSteps: config.steps });
      const norm = await model.apply(grads, lr, config.gradClip);
      step++;
      const seconds = (performance.now() - tStep) / 1000;
      const row: MetricsRow = {
        step,
        ...sum,
        loss: sum.loss,
        lr,
        samples_per_s: (config.batchSize * config.gradAccum) / seconds,
        data_wait: waited / 1000 / seconds,
        seconds,
        ...(norm !== undefined ? { grad_norm: norm } : {}),
      };
      rows.push(row);
      await Deno.writeTextFile(join(dir, "metrics.jsonl"), JSON.stringify(row) + "\n", {
        append: true,
      });
      hooks.onStep?.(row, config);
      const stop = hooks.shouldStop?.() ?? false;
      if (step % config.saveEvery === 0 || step === config.steps || stop) {
        checkpoint = await saveCheckpoint(
          dir,
          model,
          { step, position: loader.position },
          config.keepCheckpoints,
        );
        await writeTextAtomic(
          join(dir, "loss.svg"),
          lossPlotSvg(rows, { title: `VoCo ${config.version} pre-training` }),
        );
        await hooks.onCheckpoint?.(checkpoint, rows);
      }
      if (stop) {
        interrupted = true;
        break;
      }
    }
  } finally {
    loader.close();
    // After a failed step the backend may be unusable; that must not hide the step's error.
    try {
      model.dispose();
    } catch { /* the first error propagates */ }
  }
  const last = checkpoint ??
    (await listCheckpoints(dir)).map((s) => join(dir, checkpointName(s))).pop();
  return {
    steps: step,
    ranSteps: step - startStep,
    seconds: (performance.now() - t0) / 1000,
    finalLoss: rows.at(-1)?.loss,
    checkpoint: last,
    failures: loader.failures,
    interrupted,
  };
}
