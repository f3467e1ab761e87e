// The files of a run folder besides its checkpoints: `config.json` (the settings, the
// caches' fingerprints, the history of changes), `metrics.jsonl` (one line per step), and
// the temporary files every write goes through (written, then renamed; removed when the
// write fails, so a full disk is not kept full).
import { join } from "node:path";
import { BadInputError } from "../../cache/errors.ts";
import type { PretrainConfig } from "../config.ts";

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
  /** Global norm of the gradients (before clipping). */
  grad_norm?: number;
  /** The loss terms (`intra`, `inter`, `reg` or `pos`, `neg`, `reg`) and `agreement`. */
  [term: string]: number | undefined;
}

/** What `config.json` holds. */
export interface RunRecord {
  /** The toolkit version that last wrote it. */
  toolkit: string;
  /** When the run was first started (ISO 8601). */
  created: string;
  /** The settings. */
  config: PretrainConfig;
  /** A fingerprint (SHA-256 of its cases' fingerprints) per cache. */
  caches: Record<string, string>;
  /** Cases (with repeats). */
  cases: number;
  /** Cases per dataset (before repeats). */
  per_dataset: Record<string, number>;
  /** Settings changed when the run was continued: at which step, what, when. */
  changes?: { step: number; changed: string[]; date: string }[];
}

/**
 * Writes `bytes` to `path` through a temporary file in the same folder and a rename, so a
 * reader never sees half a file; when the write fails (a full disk) the temporary file is
 * removed before the error propagates.
 */
export async function writeFileAtomic(path: string, bytes: Uint8Array | string): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}`;
  try {
    if (typeof bytes === "string") await Deno.writeTextFile(tmp, bytes);
    else await Deno.writeFile(tmp, bytes);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

/** Removes the temporary files a killed process left (`*.tmp-<pid>`; never read). */
export async function removeTemporaries(dir: string): Promise<void> {
  for await (const e of Deno.readDir(dir)) {
    if (/\.tmp-\d+$/.test(e.name)) await Deno.remove(join(dir, e.name)).catch(() => {});
  }
}

/**
 * Reads a run folder's `config.json`; `undefined` when the folder has none. Throws a
 * {@linkcode BadInputError} naming the file when it is not valid JSON or holds no settings.
 */
export async function readRunRecord(dir: string): Promise<RunRecord | undefined> {
  const path = join(dir, "config.json");
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw new BadInputError(`${path}: ${(e as Error).message}`, { path, cause: e });
  }
  let record: RunRecord;
  try {
    record = JSON.parse(text);
  } catch (e) {
    throw new BadInputError(
      `${path} is not valid JSON (${(e as Error).message}); it is the run's settings: ` +
        "restore it, or start the run again in a new folder",
      { path, cause: e },
    );
  }
  const config = record?.config;
  if (config === null || typeof config !== "object" || Array.isArray(config)) {
    throw new BadInputError(`${path} holds no "config" object of settings`, { path });
  }
  return record;
}

/** Reads a run folder's settings; throws naming the folder when it is not a run folder. */
export async function readRunConfig(dir: string): Promise<PretrainConfig> {
  const record = await readRunRecord(dir);
  if (!record) {
    throw new BadInputError(`${dir} is not a run folder (no config.json)`, { path: dir });
  }
  return record.config;
}

/** Writes `config.json`. */
export async function writeRunRecord(dir: string, record: RunRecord): Promise<void> {
  await writeFileAtomic(join(dir, "config.json"), JSON.stringify(record, null, 2) + "\n");
}

/**
 * Reads `metrics.jsonl`, keeping the rows up to `maxStep`. A last line cut short (what a
 * kill during the append leaves) is dropped; any other line that is not a metrics row
 * throws a {@linkcode BadInputError} naming the file and the line.
 */
export async function readMetrics(dir: string, maxStep = Infinity): Promise<MetricsRow[]> {
  const path = join(dir, "metrics.jsonl");
  const text = await Deno.readTextFile(path).catch((e) => {
    if (e instanceof Deno.errors.NotFound) return "";
    throw new BadInputError(`${path}: ${(e as Error).message}`, { path, cause: e });
  });
  const lines = text.split("\n");
  const rows: MetricsRow[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!lines[i].trim()) continue;
    let row: MetricsRow | undefined;
    try {
      row = JSON.parse(lines[i]);
    } catch { /* judged below */ }
    if (!row || typeof row !== "object" || !Number.isInteger(row.step)) {
      // The last line without its newline is an append that was cut: nothing else.
      if (i === lines.length - 1 && !text.endsWith("\n")) break;
      throw new BadInputError(
        `${path}, line ${i + 1}: not a metrics row (${JSON.stringify(lines[i].slice(0, 60))})`,
        { path },
      );
    }
    if (row.step <= maxStep) rows.push(row);
  }
  return rows;
}

/** Rewrites `metrics.jsonl` with `rows`. */
export async function writeMetrics(dir: string, rows: readonly MetricsRow[]): Promise<void> {
  await writeFileAtomic(
    join(dir, "metrics.jsonl"),
    rows.map((r) => JSON.stringify(r) + "\n").join(""),
  );
}

/** Appends one row to `metrics.jsonl` (one write of one line). */
export async function appendMetrics(dir: string, row: MetricsRow): Promise<void> {
  await Deno.writeTextFile(join(dir, "metrics.jsonl"), JSON.stringify(row) + "\n", {
    append: true,
  });
}
