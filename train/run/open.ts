// Opening a run folder for training: a new one, or one to continue. The settings are
// compared with the run's (those that may change on resume are applied and recorded, any
// other difference is refused, listed), the folder is created only then, locked for this
// process, cleared of temporary files, and the newest checkpoint is read and checked; the
// metrics are cut back to the checkpoint's step.
import { join } from "node:path";
import { BadInputError, UsageError } from "../../cache/errors.ts";
import { configDiff, type PretrainConfig } from "../config.ts";
import type { CaseList, TrainingCase } from "../sampler/cases.ts";
import { checkpointName, listCheckpoints, readCheckpoint } from "./checkpoint.ts";
import {
  type MetricsRow,
  readMetrics,
  readRunRecord,
  removeTemporaries,
  type RunRecord,
  writeMetrics,
  writeRunRecord,
} from "./folder.ts";
import { lockRun } from "./lock.ts";
import { TOOLKIT_VERSION } from "./version.ts";

/** A run folder opened for training. */
export interface OpenedRun {
  /** The newest checkpoint (read and checked), when the run continues. */
  checkpoint?: Awaited<ReturnType<typeof readCheckpoint>> & { path: string };
  /** Steps done. */
  startStep: number;
  /** The sampler's position. */
  position: number;
  /** The metrics rows up to the checkpoint's step. */
  rows: MetricsRow[];
  /** Settings changed from the run's, as `flag: old -> new` (recorded in `config.json`). */
  changes: string[];
  /** Releases the folder's lock. */
  close(): Promise<void>;
}

/** A fingerprint per cache: SHA-256 of its cases' paths and fingerprints. */
export async function cacheFingerprints(
  cases: readonly TrainingCase[],
): Promise<Record<string, string>> {
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

const sameValues = (a: Record<string, string>, b: Record<string, string>) =>
  JSON.stringify(Object.values(a).sort()) === JSON.stringify(Object.values(b).sort());

/**
 * The differences of `config` from a run's record that may be applied; throws a
 * {@linkcode UsageError} listing the others. Caches at another location are accepted when
 * they hold the same cases (the fingerprints match); without `fingerprints` they are not
 * judged.
 */
export function checkResumable(
  dir: string,
  record: RunRecord,
  config: PretrainConfig,
  fingerprints?: Record<string, string>,
): string[] {
  const diff = configDiff(record.config, config);
  let refused = diff.refused;
  if (!fingerprints) refused = refused.filter((line) => !line.startsWith("--cache:"));
  else if (record.caches && sameValues(record.caches, fingerprints)) {
    const moved = refused.filter((line) => line.startsWith("--cache:"));
    refused = refused.filter((line) => !moved.includes(line));
    diff.allowed.push(...moved.map((line) => `${line} (the same cases)`));
  }
  if (refused.length > 0) {
    throw new UsageError(
      `${dir} is a run with other settings; these cannot change once it has a checkpoint:\n  ` +
        refused.join("\n  ") +
        `\nContinue it with its own settings ("deno task pretrain --resume ${dir}", which ` +
        "may change --steps, --save-every, --keep-checkpoints, --workers, --backend, " +
        "--crop-batch), or start a new run with another --out",
      { command: "pretrain train" },
    );
  }
  return diff.allowed;
}

/** Names a run writes in its folder (checkpoints, settings, metrics, plot, events, lock). */
const RUN_FILE =
  /^(config\.json|metrics\.jsonl|loss\.svg|run\.lock|ckpt-\d+\.safetensors|events\.out\.tfevents\..+)$|\.tmp-\d+$/;

/** The first entry of `dir` (by name) that no run writes; `undefined` when none. */
async function foreignEntry(dir: string): Promise<string | undefined> {
  const names = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
  return names.find((name) => !RUN_FILE.test(name));
}

/**
 * Opens `dir` to train `config` on `list`: refuses a file, and a folder without
 * `config.json` that holds files no run writes (a cache, a data folder); checks the
 * settings against the run's (when it has a checkpoint), then creates and locks the
 * folder, removes temporary files, reads the newest checkpoint and writes `config.json`
 * and the metrics up to its step.
 */
export async function openRun(
  dir: string,
  config: PretrainConfig,
  list: CaseList,
): Promise<OpenedRun> {
  const info = await Deno.stat(dir).catch(() => undefined);
  if (info && !info.isDirectory) {
    throw new BadInputError(
      `${dir} is a file, not a run folder; give a new folder, such as --out runs/v2`,
      { path: dir },
    );
  }
  const exists = info !== undefined;
  const record = exists ? await readRunRecord(dir) : undefined;
  let steps = exists ? await listCheckpoints(dir) : [];
  if (steps.length > 0 && !record) {
    throw new BadInputError(
      `${dir} holds checkpoints but no config.json: its settings are lost; start a new run ` +
        "elsewhere (--init-from can take the weights of an export)",
      { path: dir },
    );
  }
  const foreign = exists && !record ? await foreignEntry(dir) : undefined;
  if (foreign !== undefined) {
    // A cache, a data folder or the repository named by mistake: train nowhere near it.
    throw new BadInputError(
      `${dir} is not empty and not a run folder (found "${foreign}"); give a new folder, ` +
        "such as --out runs/v2",
      { path: dir },
    );
  }
  const fingerprints = await cacheFingerprints(list.cases);
  let changes = record && steps.length ? checkResumable(dir, record, config, fingerprints) : [];
  await Deno.mkdir(dir, { recursive: true });
  const lock = await lockRun(dir);
  try {
    await removeTemporaries(dir);
    steps = await listCheckpoints(dir); // as the lock's holder sees it
    if (!record || steps.length === 0) changes = [];
    let checkpoint: OpenedRun["checkpoint"];
    if (steps.length > 0) {
      const path = join(dir, checkpointName(steps[steps.length - 1]));
      checkpoint = { ...(await readCheckpoint(path)), path };
    }
    const startStep = checkpoint?.state.step ?? 0;
    const rows = startStep > 0 ? await readMetrics(dir, startStep) : [];
    const history = record && steps.length ? record.changes ?? [] : [];
    await writeRunRecord(dir, {
      toolkit: TOOLKIT_VERSION,
      created: (steps.length ? record?.created : undefined) ?? new Date().toISOString(),
      config,
      caches: fingerprints,
      cases: list.cases.length,
      per_dataset: list.perDataset,
      ...(history.length || changes.length
        ? {
          changes: [
            ...history,
            ...(changes.length
              ? [{ step: startStep, changed: changes, date: new Date().toISOString() }]
              : []),
          ],
        }
        : {}),
    });
    // metrics.jsonl holds exactly the steps the checkpoint has (a kill after it loses the rest).
    await writeMetrics(dir, rows);
    return {
      checkpoint,
      startStep,
      position: checkpoint?.state.position ?? 0,
      rows,
      changes,
      close: () => lock.release(),
    };
  } catch (e) {
    await lock.release();
    throw e;
  }
}
