// What `deno task pretrain` asks for, turned into one run's settings before anything is
// written: a new run (recipe defaults < a `--config` file < flags) or a continued one (its
// `config.json` < flags that may change on resume), checked, the backend loaded, the memory
// planned. Nothing is created here: a refused setting leaves no folder behind.
import { dirname, isAbsolute, resolve } from "node:path";
import { BadInputError, UsageError } from "../../cache/errors.ts";
import { isCacheUrl } from "../../cache/read/cache_reader.ts";
import { type BackendName, useBackend } from "../backend.ts";
import { checkConfig, type PretrainConfig, pretrainConfig } from "../config.ts";
import { type MemoryPlan, planMemory } from "../memory.ts";
import { listCheckpoints } from "./checkpoint.ts";
import { readRunRecord } from "./folder.ts";
import { checkResumable } from "./open.ts";

/** What a command line asks for. */
export interface RunRequest {
  /** A new run's folder (or an existing run to continue with the same settings). */
  out?: string;
  /** A run to continue with its own settings. */
  resume?: string;
  /** A `config.json` of an earlier run, or settings written by hand, to start from. */
  configFile?: string;
  /** Settings given on the command line (only those given). */
  settings: Partial<PretrainConfig>;
}

/** A run ready to start. */
export interface PreparedRun {
  /** The run folder. */
  dir: string;
  /** Its settings, `backend` the one loaded. */
  config: PretrainConfig;
  /** Whether the folder holds a checkpoint to continue from. */
  resumes: boolean;
  /** Settings that run but are unlikely to be meant, and notes on the folder. */
  warnings: string[];
  /** The memory plan on the loaded backend. */
  plan: MemoryPlan;
}

const usage = (message: string) => new UsageError(message, { command: "pretrain train" });

/** Reads a `--config` file: a run's `config.json` (`{config: {...}}`) or the settings alone. */
export async function readConfigFile(path: string): Promise<Partial<PretrainConfig>> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new BadInputError(`--config ${path}: ${(e as Error).message}`, { path, cause: e });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new BadInputError(`--config ${path} is not valid JSON (${(e as Error).message})`, {
      path,
    });
  }
  const settings = (json as { config?: unknown })?.config ?? json;
  if (settings === null || typeof settings !== "object" || Array.isArray(settings)) {
    throw new BadInputError(`--config ${path} holds no object of settings`, { path });
  }
  const out = { ...settings } as Partial<PretrainConfig>;
  // Relative cache folders and weights are taken from the file's folder.
  const here = (p: string) => isCacheUrl(p) || isAbsolute(p) ? p : resolve(dirname(path), p);
  if (Array.isArray(out.caches)) out.caches = out.caches.map((c) => here(String(c)));
  if (typeof out.initFrom === "string") out.initFrom = here(out.initFrom);
  return out;
}

/**
 * Resolves a request into a run's settings, checks them (types, ranges, sizes), loads the
 * backend and plans the memory. For a folder that has a checkpoint, settings that may not
 * change on resume are refused with the differences listed; a folder whose start wrote no
 * checkpoint (it failed) takes the new settings.
 */
export async function prepareRun(request: RunRequest): Promise<PreparedRun> {
  const { out, resume, configFile, settings } = request;
  if (out && resume) throw usage("give --resume RUN or --out RUN, not both");
  const dir = resume ?? out;
  if (!dir) throw usage("training needs --out RUN (or --resume RUN)");
  if (resume && configFile) {
    throw usage("--config starts a new run; --resume continues one with its own settings");
  }
  const record = await readRunRecord(dir).catch((e) => {
    if (resume) throw e;
    return undefined; // a broken folder given as --out: openRun reports it if it matters
  });
  const steps = record ? await listCheckpoints(dir) : [];
  const warnings: string[] = [];
  let config: PretrainConfig;
  if (resume) {
    if (!record) throw usage(`--resume ${dir}: not a run folder (no config.json)`);
    config = { ...record.config, ...settings };
  } else {
    const file = configFile ? await readConfigFile(configFile) : {};
    const merged = { backend: "auto", ...file, ...settings };
    const caches = merged.caches;
    if (!caches?.length) throw usage("training needs --cache DIR (a cache made by deno task prep)");
    config = pretrainConfig(merged.version ?? "v2", caches, merged);
    if (record && steps.length === 0) {
      warnings.push(`${dir} holds a start that wrote no checkpoint: its settings are replaced`);
    }
  }
  warnings.push(...checkConfig(config));
  // Moved caches are judged by their cases when the run opens.
  if (record && steps.length > 0) checkResumable(dir, record, config);
  config.backend = await useBackend(config.backend as BackendName);
  const plan = planMemory(config, config.backend);
  return { dir, config, resumes: steps.length > 0, warnings, plan };
}
