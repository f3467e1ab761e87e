// A whole prep run: cases spread over workers, progress events, skips and a summary.
import { join } from "node:path";
import type { SourceCase } from "./discover.ts";
import type { CaseJob, CaseOutcome, StorageOptions } from "./process_case.ts";
import type { Recipe } from "../recipes/recipe.ts";
import { DecodeWorkers } from "../formats/dicom/frame_pool.ts";
import { settingsHash } from "../../cache/format/fingerprint.ts";
import {
  cachedFingerprint,
  cleanStaging,
  createStagingRun,
  ensureDataset,
  initCache,
  publishCase,
} from "../../cache/write/cache_dir.ts";
import { DEFAULT_LAYOUT } from "../../cache/format/format.ts";
import { refreshConsolidated } from "../../cache/write/consolidate.ts";

/** Options of {@linkcode runPrep}. */
export interface RunPrepOptions {
  /** Cache root folder. */
  out: string;
  /** Dataset group of the cases that do not name their own. */
  dataset?: string;
  /** Recipe of the cases that do not carry their own. */
  recipe?: Recipe;
  /** Storage options. */
  storage: StorageOptions;
  /**
   * Parallel workers (each holds one case in memory at a time).
   * @default {navigator.hardwareConcurrency}
   */
  workers?: number;
  /**
   * Threads each worker may use to decode a compressed DICOM series' frames in parallel.
   * @default {the cores left over: floor(cores / workers), at least 1}
   */
  decodeThreads?: number;
  /** Called as cases start and finish (progress display). */
  onEvent?: (event: PrepEvent) => void;
  /** Stops dispatching new cases when aborted; running cases are abandoned. */
  signal?: AbortSignal;
  /**
   * Most voxels a recipe step may produce for one case; larger cases fail up front.
   * @default {DEFAULT_MAX_VOXELS}
   */
  maxVoxels?: number;
  /**
   * How long a compressed frame may take to decode before its case is stopped (the
   * worker decoding it terminated).
   * @default {DECODER_LIMITS}
   */
  decodeLimits?: { baseMs: number; msPerMegapixel: number };
}

/** A case to prep, optionally with its own dataset group and recipe. */
export interface PrepItem extends SourceCase {
  /** Dataset group (default: the run's). */
  dataset?: string;
  /** Recipe (default: the run's). */
  recipe?: Recipe;
}

/** Result of one case in a run. */
export interface CaseReport {
  /** The case. */
  case: SourceCase;
  /** The dataset group it went to. */
  dataset: string;
  /** `written`, `unchanged` (already current in the cache) or `failed`. */
  status: "written" | "unchanged" | "failed";
  /** Reason of a failure. */
  error?: string;
  /** Wall time of the case in seconds. */
  seconds: number;
  /** Outcome details when not failed. */
  outcome?: CaseOutcome;
}

/** Progress events of a run. */
export type PrepEvent =
  | { type: "start"; total: number; workers: number }
  | { type: "case-start"; case: SourceCase }
  | { type: "case-done"; report: CaseReport; done: number; total: number };

/** Summary of a run. */
export interface PrepSummary {
  /** Per-case reports, in input order. */
  reports: CaseReport[];
  /** Wall time in seconds. */
  seconds: number;
}

const WORKER_URL = new URL("./_prep_worker.ts", import.meta.url);

/**
 * Preprocesses cases into the cache with a pool of workers. Each case is written to a
 * staging folder and published with a rename only when complete; failures are reported
 * per case and never stop the run.
 */
export async function runPrep(
  cases: readonly PrepItem[],
  options: RunPrepOptions,
): Promise<PrepSummary> {
  const t0 = performance.now();
  const { out } = options;
  const storage = { ...options.storage, layout: options.storage.layout ?? DEFAULT_LAYOUT };
  const plan = cases.map((c) => {
    const dataset = c.dataset ?? options.dataset;
    const recipe = c.recipe ?? options.recipe;
    if (!dataset || !recipe) throw new TypeError(`Case ${c.path} has no dataset or recipe`);
    return { dataset, recipe };
  });
  await initCache(out, { layout: storage.layout });
  await cleanStaging(out);
  for (const d of new Set(plan.map((p) => p.dataset))) await ensureDataset(out, d);
  const stagingRun = await createStagingRun(out);
  const settings = new Map<string, string>();
  for (const { recipe } of plan) {
    const key = JSON.stringify(recipe);
    if (!settings.has(key)) settings.set(key, await settingsHash({ recipe, storage }));
  }
  const nWorkers = Math.max(
    1,
    Math.min(options.workers ?? navigator.hardwareConcurrency ?? 1, cases.length || 1),
  );
  const decodeThreads = options.decodeThreads ??
    Math.max(1, Math.floor((navigator.hardwareConcurrency ?? 1) / nWorkers));
  const emit = options.onEvent ?? (() => {});
  emit({ type: "start", total: cases.length, workers: nWorkers });
  const ctx: RunContext = { options, storage, staging: stagingRun.dir, settings, decodeThreads };
  const reports: CaseReport[] = new Array(cases.length);
  let next = 0, done = 0;
  // Frame decoders for DICOM series, started here and lent to the workers by port: a
  // worker started from a worker takes about a second to answer in Deno 2.9.
  const decoders = decodeThreads > 1 && cases.some((c) => c.format === "dicom")
    ? new DecodeWorkers(decodeThreads * nWorkers)
    : undefined;
  const startWorker = (laneIndex: number, fresh = false) => {
    const worker = new Worker(WORKER_URL, { type: "module" });
    if (decoders) {
      // A hung decoder behind the last worker's pool: replace this lane's decoders.
      if (fresh) decoders.restart(laneIndex * decodeThreads, decodeThreads);
      const decodePorts = decoders.connect(laneIndex * decodeThreads, decodeThreads);
      worker.postMessage({ decodePorts }, decodePorts);
    }
    return worker;
  };
  const lane = async (_: unknown, laneIndex: number) => {
    let worker = startWorker(laneIndex);
    try {
      while (next < cases.length && !options.signal?.aborted) {
        const index = next++;
        const { dataset, recipe } = plan[index];
        const { restart, ...report } = await runCase(ctx, worker, cases[index], {
          index,
          dataset,
          recipe,
          onStart: () => emit({ type: "case-start", case: cases[index] }),
        });
        if (restart) {
          worker.terminate();
          worker = startWorker(laneIndex, true);
        }
        reports[index] = report;
        done++;
        emit({ type: "case-done", report, done, total: cases.length });
      }
    } finally {
      worker.terminate();
    }
  };
  try {
    await Promise.all(Array.from({ length: nWorkers }, lane));
  } finally {
    decoders?.close();
    await stagingRun.close();
  }
  // A consolidated cache keeps its one metadata document up to date with the run.
  await refreshConsolidated(out);
  return { reports: reports.filter(Boolean), seconds: (performance.now() - t0) / 1000 };
}

/** What every case of a run shares. */
interface RunContext {
  options: RunPrepOptions;
  storage: StorageOptions;
  /** This run's staging folder. */
  staging: string;
  /** Settings hash per recipe (its JSON). */
  settings: Map<string, string>;
  decodeThreads: number;
}

/** A worker's answer for one case. */
interface Reply {
  ok: boolean;
  outcome?: CaseOutcome;
  error?: string;
  seconds: number;
  /** The worker must be replaced (it crashed, or a decoder in it hung). */
  restart?: boolean;
}

/** One case in `worker`: staged, processed, published; a failure is its report. */
async function runCase(
  ctx: RunContext,
  worker: Worker,
  c: PrepItem,
  at: { index: number; dataset: string; recipe: Recipe; onStart: () => void },
): Promise<CaseReport & { restart?: boolean }> {
  const { dataset, recipe } = at;
  const out = ctx.options.out;
  if (c.error) return { case: c, dataset, status: "failed", error: c.error, seconds: 0 };
  const job: CaseJob = {
    path: c.path,
    files: c.files,
    format: c.format,
    source: c.source,
    stagingDir: join(ctx.staging, `${at.index}-${c.name}`),
    caseName: `${dataset}/${c.name}`,
    recipe,
    storage: ctx.storage,
    settingsHash: ctx.settings.get(JSON.stringify(recipe))!,
    knownFingerprint: await cachedFingerprint(out, dataset, c.name),
    decodeThreads: ctx.decodeThreads,
    maxVoxels: ctx.options.maxVoxels,
    decodeLimits: ctx.options.decodeLimits,
  };
  at.onStart();
  const reply = await askWorker(worker, job);
  const failed = (error: string | undefined, restart?: boolean): CaseReport => ({
    case: c,
    dataset,
    status: "failed",
    error,
    seconds: reply.seconds,
    ...(restart ? { restart } : {}),
  });
  if (!reply.ok) {
    await Deno.remove(job.stagingDir, { recursive: true }).catch(() => {});
    return failed(reply.error, reply.restart);
  }
  const outcome = reply.outcome!;
  if (outcome.status === "written") {
    try {
      await publishCase(out, dataset, c.name, job.stagingDir);
    } catch (e) {
      return failed(`publishing failed: ${(e as Error).message}`);
    }
  }
  return { case: c, dataset, status: outcome.status, seconds: reply.seconds, outcome };
}

/**
 * Posts a case to a worker and waits for its answer. A frame decoded in the worker's own
 * thread that overruns its time (the worker arms a timer before, disarms it after) hangs
 * in a WebAssembly loop the worker cannot leave: the worker is stopped and replaced.
 */
function askWorker(worker: Worker, job: CaseJob): Promise<Reply> {
  const t0 = performance.now();
  return new Promise<Reply>((res) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const finish = (r: Reply) => {
      clearTimeout(timer);
      res(r);
    };
    worker.onmessage = (e) => {
      const m = e.data;
      if (m.type === "arm") {
        clearTimeout(timer);
        timer = setTimeout(() => {
          worker.terminate();
          finish({
            ok: false,
            error: `${m.what}: decoding the frame took more than ` +
              `${Number((m.ms / 1000).toFixed(1))} s, so the decoder was stopped (a damaged ` +
              `frame can send it into an endless loop)`,
            seconds: (performance.now() - t0) / 1000,
            restart: true,
          });
        }, m.ms);
      } else if (m.type === "disarm") clearTimeout(timer);
      else finish(m);
    };
    worker.onerror = (e) => {
      e.preventDefault();
      finish({ ok: false, error: `worker crashed: ${e.message}`, seconds: 0, restart: true });
    };
    worker.postMessage(job);
  });
}
