// The VoCo pre-training loop, top to bottom as nanoGPT's train.py: config -> data -> init
// or resume -> lr(step) -> loop (micro-steps, a finite loss and gradient, clip, AdamW step,
// log, checkpoint). The run folder's bookkeeping (settings, lock, metrics, temporary files)
// is in run/, the memory plan in memory.ts, the settings in config.ts.
import { resolve } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { isCacheUrl } from "../cache/read/cache_reader.ts";
import { checkConfig, type PretrainConfig } from "./config.ts";
import { type MemoryPlan, planMemory } from "./memory.ts";
import { outOfMemoryError } from "./backend.ts";
import { listTrainingCases } from "./sampler/cases.ts";
import { BatchLoader, type FailedSample } from "./sampler/loader.ts";
import { runSampleSpec } from "./sampler/voco_sample.ts";
import { addGradient, type StepTerms, VocoModel } from "./voco/model.ts";
import { warmupCosine } from "./optim/schedule.ts";
import { gradNorm } from "./optim/adamw.ts";
import { loadCheckpoint, saveCheckpoint } from "./run/checkpoint.ts";
import { appendMetrics, type MetricsRow } from "./run/folder.ts";
import { applyInitWeights, type InitReport, readInitWeights } from "./run/init_from.ts";
import { openRun } from "./run/open.ts";
import { divergedError } from "./run/finite.ts";
import { runLogger } from "./run/run_logger.ts";

export { type PretrainConfig, pretrainConfig } from "./config.ts";
export { type MetricsRow, readMetrics, readRunConfig } from "./run/folder.ts";
export { TOOLKIT_VERSION } from "./run/version.ts";

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
  /** Before the first step: the cases, where the run starts, what was planned and changed. */
  onStart?: (info: {
    cases: number;
    perDataset: Record<string, number>;
    startStep: number;
    init?: InitReport;
    cropBatch?: number;
    changes: string[];
    warnings: string[];
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

/**
 * Trains (or continues, when `dir` holds a checkpoint) a VoCo run into `dir` on the current
 * tfjs backend (`config.backend` records it). Settings, caches and starting weights are
 * checked before the folder is made; a continued run refuses settings that differ from its
 * own (but `RESUMABLE` ones); one process trains in a folder at a time; a NaN or infinite
 * loss or gradient stops the run (`NonFiniteError`) before it touches a checkpoint.
 */
export async function pretrain(
  dir: string,
  config: PretrainConfig,
  hooks: PretrainHooks = {},
): Promise<PretrainSummary> {
  // Config and data: every check before anything is written.
  const warnings = checkConfig(config);
  const plan = planMemory(config, tf.getBackend());
  const caches = config.caches.map((c) => isCacheUrl(c) ? c : resolve(c));
  const reader = { endpoint: config.endpoint, anonymous: config.anonymous };
  const list = await listTrainingCases(caches, {
    datasets: config.datasets,
    recipe: config.version === "v2" ? "voco-v2" : "voco-v1",
    repeat: config.repeat,
    reader,
  });
  const weights = await readInitWeights(config);
  // Init or resume.
  const run = await openRun(dir, config, list);
  const model = new VocoModel({ ...config, cropBatch: plan.cropBatch });
  let loader: BatchLoader | undefined;
  try {
    let step = run.startStep;
    const log = await runLogger(dir, { title: `VoCo ${config.version}`, ...run });
    if (run.checkpoint) loadCheckpoint(model, run.checkpoint, run.checkpoint.path);
    const init = !run.checkpoint && weights ? applyInitWeights(model, weights) : undefined;
    hooks.onStart?.({
      cases: list.cases.length,
      perDataset: list.perDataset,
      startStep: step,
      init,
      cropBatch: plan.cropBatch,
      changes: run.changes,
      warnings,
    });
    const spec = runSampleSpec(config);
    loader = new BatchLoader(list.cases, { ...config, spec, start: run.position, reader });
    const lr = (s: number) =>
      config.lr * warmupCosine(s, { warmupSteps: config.warmupSteps, totalSteps: config.steps });
    const t0 = performance.now();
    let checkpoint = run.checkpoint?.path;
    let interrupted = false;
    while (step < config.steps) {
      const tStep = performance.now();
      const { terms: sum, grads, waited } = await microSteps(model, loader, config, step, plan);
      const norm = await gradNorm(grads);
      if (!Number.isFinite(sum.loss) || !Number.isFinite(norm)) {
        tf.dispose([...grads.values()]);
        throw divergedError(step + 1, sum, norm, checkpoint);
      }
      const rate = lr(step);
      await model.apply(grads, rate, config.gradClip);
      step++;
      const seconds = (performance.now() - tStep) / 1000;
      const row: MetricsRow = {
        step,
        ...sum,
        loss: sum.loss,
        lr: rate,
        samples_per_s: (config.batchSize * config.gradAccum) / seconds,
        data_wait: waited / 1000 / seconds,
        seconds,
        grad_norm: norm,
      };
      run.rows.push(row);
      await appendMetrics(dir, row);
      await log.onStep(row); // TensorBoard scalars; loss.svg every 10 steps
      hooks.onStep?.(row, config);
      interrupted = hooks.shouldStop?.() ?? false;
      if (step % config.saveEvery === 0 || step === config.steps || interrupted) {
        const state = { step, position: loader.position };
        checkpoint = await saveCheckpoint(dir, model, state, config.keepCheckpoints);
        await log.flush();
        await hooks.onCheckpoint?.(checkpoint, run.rows);
      }
      if (interrupted) break;
    }
    return {
      steps: step,
      ranSteps: step - run.startStep,
      seconds: (performance.now() - t0) / 1000,
      finalLoss: run.rows.at(-1)?.loss,
      checkpoint,
      failures: loader.failures,
      interrupted,
    };
  } finally {
    loader?.close();
    // After a failed step the backend may be unusable; that must not hide the step's error.
    try {
      model.dispose();
    } catch { /* the first error propagates */ }
    await run.close();
  }
}

/**
 * The micro-steps of optimiser step `step` (`gradAccum` batches): the loss terms averaged,
 * the gradients summed (each scaled by 1 / gradAccum), and the milliseconds spent waiting
 * for data. A backend out of memory is reported with the flags to change.
 */
async function microSteps(
  model: VocoModel,
  loader: BatchLoader,
  config: PretrainConfig,
  step: number,
  plan: MemoryPlan,
): Promise<{ terms: StepTerms; grads: Map<string, tf.Tensor>; waited: number }> {
  const terms: StepTerms = {}, grads = new Map<string, tf.Tensor>();
  let waited = 0;
  for (let micro = 0; micro < config.gradAccum; micro++) {
    const tWait = performance.now();
    const batch = await loader.next();
    waited += performance.now() - tWait;
    const input = { ...batch, batch: config.batchSize, crops: config.swBatchSize, roi: config.roi };
    const r = await model.gradients(input, step * config.gradAccum + micro, 1 / config.gradAccum)
      .catch((e) => {
        tf.dispose([...grads.values()]);
        throw outOfMemoryError(e, { step: step + 1, ...config, cropBatch: plan.cropBatch });
      });
    for (const [k, v] of Object.entries(r.terms)) terms[k] = (terms[k] ?? 0) + v / config.gradAccum;
    for (const [k, g] of r.grads) addGradient(grads, k, g);
  }
  return { terms, grads, waited };
}
