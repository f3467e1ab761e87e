// The settings of a pre-training run: their defaults (the references' recipes), the flag
// each comes from, their validation (types, ranges, sizes that cannot be allocated), and
// which may change when a run is continued. Plain data, so a run's `config.json` can be
// read back, checked and passed in again (`--config`).
import { UsageError } from "../cache/errors.ts";
import type { FeatureDropout, VocoVersion } from "./voco/model.ts";
import { BACKENDS } from "./backend.ts";

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
  /**
   * Crops per backbone pass, the backward then recomputed stage by stage; when absent, the
   * run plans it from the backend's memory (one taped pass when everything fits).
   */
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
  /** S3-compatible endpoint of `s3://` caches (default: `AWS_ENDPOINT_URL`, else AWS). */
  endpoint?: string;
  /** Unsigned S3 requests (a public bucket). */
  anonymous?: boolean;
}

/** The command-line flag of each setting, for messages (`--batch-size`). */
export const CONFIG_FLAGS: Readonly<Record<keyof PretrainConfig, string>> = {
  version: "--recipe",
  caches: "--cache",
  datasets: "--datasets",
  repeat: "--repeat",
  batchSize: "--batch-size",
  swBatchSize: "--sw-batch-size",
  roi: "--roi",
  grid: "--grid",
  featureSize: "--feature-size",
  headDims: "--head",
  lr: "--lr",
  warmupSteps: "--warmup-steps",
  steps: "--steps",
  saveEvery: "--save-every",
  keepCheckpoints: "--keep-checkpoints",
  seed: "--seed",
  gradClip: "--grad-clip",
  gradAccum: "--grad-accum",
  dropout: "--dropout",
  augment: "--no-augment",
  cropBatch: "--crop-batch",
  windowSize: "windowSize (config file only)",
  workers: "--workers",
  prefetch: "prefetch (config file only)",
  backend: "--backend",
  initFrom: "--init-from",
  endpoint: "--endpoint",
  anonymous: "--anonymous",
};

/**
 * Settings that may differ when a run is continued: they change neither what was trained
 * nor the data stream, only how long it runs, how it is saved, and where and how fast it
 * runs. Changes are applied and recorded in `config.json`; any other is refused.
 */
export const RESUMABLE: readonly (keyof PretrainConfig)[] = [
  "steps",
  "saveEvery",
  "keepCheckpoints",
  "workers",
  "prefetch",
  "backend",
  "cropBatch",
  "endpoint",
  "anonymous",
];

/** Feature sizes of SwinUNETR (MONAI requires a multiple of 12; VoCo's are these). */
export const FEATURE_SIZES = [12, 24, 48, 96, 192] as const;

/** The recipe's defaults for `version` (the references' settings). */
export function configDefaults(version: VocoVersion): Omit<PretrainConfig, "caches"> {
  const v2 = version === "v2";
  return {
    version,
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
  };
}

/** A run's config with the recipe defaults filled in. */
export function pretrainConfig(
  version: VocoVersion,
  caches: string[],
  overrides: Partial<PretrainConfig> = {},
): PretrainConfig {
  const set = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined));
  return { ...configDefaults(version), caches, ...set } as PretrainConfig;
}

const usage = (message: string) => new UsageError(message, { command: "pretrain train" });

type Check = (v: unknown) => string | undefined;
const int = (min: number, max = Number.MAX_SAFE_INTEGER): Check => (v) =>
  Number.isInteger(v) && (v as number) >= min && (v as number) <= max
    ? undefined
    : `an integer ${min}..${max}`;
const num = (min: number, max = Number.MAX_VALUE): Check => (v) =>
  typeof v === "number" && Number.isFinite(v) && v >= min && v <= max
    ? undefined
    : `a number ${min}..${max}`;
const oneOf = (values: readonly unknown[]): Check => (v) =>
  values.includes(v) ? undefined : `one of ${values.join(", ")}`;
const strings: Check = (v) =>
  Array.isArray(v) && v.length > 0 && v.every((s) => typeof s === "string" && s !== "")
    ? undefined
    : "a list of names";
const bool: Check = (v) => typeof v === "boolean" ? undefined : "true or false";
const str: Check = (v) => typeof v === "string" && v !== "" ? undefined : "a string";

/** What each setting accepts (absent optional settings are not checked). */
const CHECKS: Record<keyof PretrainConfig, Check> = {
  version: oneOf(["v1", "v2"]),
  caches: strings,
  datasets: strings,
  repeat: (v) =>
    v !== null && typeof v === "object" && !Array.isArray(v) &&
      Object.values(v).every((n) => Number.isInteger(n) && n >= 1 && n <= 1e6)
      ? undefined
      : "dataset names with integers 1..1000000",
  batchSize: int(1, 4096),
  swBatchSize: int(1, 4096),
  roi: (v) =>
    Number.isInteger(v) && (v as number) >= 32 && (v as number) % 32 === 0
      ? undefined
      : "a multiple of 32",
  grid: int(2, 64),
  featureSize: oneOf(FEATURE_SIZES),
  headDims: (v) =>
    Array.isArray(v) && v.length === 3 && v.every((n) => Number.isInteger(n) && n >= 1)
      ? undefined
      : "three positive integers",
  lr: num(0, 10),
  warmupSteps: int(0),
  steps: int(1),
  saveEvery: int(1),
  keepCheckpoints: int(1, 10_000),
  seed: int(0),
  gradClip: num(0),
  gradAccum: int(1, 1_000_000),
  dropout: oneOf(["rows", "elements", "none"]),
  augment: bool,
  cropBatch: int(1),
  windowSize: int(1, 64),
  workers: int(0, 256),
  prefetch: int(0, 1024),
  backend: oneOf(BACKENDS),
  initFrom: str,
  endpoint: str,
  anonymous: bool,
};

/**
 * Checks every setting's type and range (a config from a file is checked as flags are) and
 * returns warnings about settings that run but are unlikely to be meant. Throws a
 * {@linkcode UsageError} naming the flag and the value.
 */
export function checkConfig(config: PretrainConfig): string[] {
  for (const key of Object.keys(config)) {
    if (!(key in CHECKS)) throw usage(`unknown setting "${key}" in the config`);
  }
  const required = Object.keys(configDefaults("v2")).concat("caches");
  for (const [key, check] of Object.entries(CHECKS) as [keyof PretrainConfig, Check][]) {
    const value = config[key];
    if (value === undefined && !required.includes(key)) continue;
    const wants = check(value);
    if (wants) {
      throw usage(`${CONFIG_FLAGS[key]} takes ${wants}, got ${JSON.stringify(value) ?? "nothing"}`);
    }
  }
  const warnings: string[] = [];
  if (config.warmupSteps > config.steps) {
    const top = config.lr * config.steps / config.warmupSteps;
    warnings.push(
      `--warmup-steps ${config.warmupSteps} is longer than the run (--steps ${config.steps}): ` +
        `the learning rate never rises above ${top.toExponential(1)} (of --lr ` +
        `${config.lr}); for a short run pass e.g. --warmup-steps ${
          Math.max(1, Math.floor(config.steps / 10))
        }`,
    );
  }
  if (config.windowSize !== undefined && config.windowSize !== 7) {
    warnings.push(`window size ${config.windowSize}: the backbone will not load into MONAI (7)`);
  }
  return warnings;
}

/** A setting's value for messages. */
function shown(v: unknown): string {
  return v === undefined ? "(not set)" : JSON.stringify(v);
}

/**
 * The differences of `requested` from a run's `stored` settings: the ones that may change
 * on resume ({@linkcode RESUMABLE}) and the ones that may not, as `flag: old -> new`.
 */
export function configDiff(
  stored: PretrainConfig,
  requested: PretrainConfig,
): { allowed: string[]; refused: string[]; keys: (keyof PretrainConfig)[] } {
  const allowed: string[] = [], refused: string[] = [], keys: (keyof PretrainConfig)[] = [];
  const all = new Set([...Object.keys(stored), ...Object.keys(requested)]) as Set<
    keyof PretrainConfig
  >;
  for (const key of all) {
    if (!(key in CONFIG_FLAGS)) continue;
    const a = stored[key], b = requested[key];
    if (JSON.stringify(a) === JSON.stringify(b)) continue;
    const line = `${CONFIG_FLAGS[key]}: ${shown(a)} -> ${shown(b)}`;
    (RESUMABLE.includes(key) ? allowed : refused).push(line);
    keys.push(key);
  }
  return { allowed, refused, keys };
}

/** The settings a command line gives, by flag name (`deno task pretrain`'s values). */
export interface PretrainFlags {
  [flag: string]: string | number | boolean | string[] | undefined;
}

/**
 * The settings a command line sets (only the flags given): `--recipe voco-v1` as
 * `version: "v1"`, `--head N` as three sizes, `--repeat D=N` as a record, `--datasets A,B`
 * as a list, `--no-augment` as `augment: false`. Throws a {@linkcode UsageError} for a
 * malformed value.
 */
export function settingsFromFlags(v: PretrainFlags): Partial<PretrainConfig> {
  const n = (flag: string) => v[flag] as number | undefined;
  const repeat: Record<string, number> = {};
  for (const r of (v.repeat as string[] | undefined) ?? []) {
    const m = r.match(/^([^=]+)=(\d+)$/);
    if (!m || Number(m[2]) < 1) throw usage(`--repeat takes DATASET=N, got "${r}"`);
    repeat[m[1]] = Number(m[2]);
  }
  const head = n("head");
  const caches = v.cache as string[] | undefined;
  const out: Partial<PretrainConfig> = {
    version: v.recipe === undefined ? undefined : v.recipe === "voco-v1" ? "v1" : "v2",
    caches: caches?.length ? caches : undefined,
    datasets: v.datasets === undefined
      ? undefined
      : String(v.datasets).split(",").map((s) => s.trim()).filter(Boolean),
    repeat: Object.keys(repeat).length ? repeat : undefined,
    batchSize: n("batch-size"),
    swBatchSize: n("sw-batch-size"),
    roi: n("roi"),
    grid: n("grid"),
    featureSize: n("feature-size"),
    headDims: head === undefined ? undefined : [head, head, head],
    lr: n("lr"),
    warmupSteps: n("warmup-steps"),
    steps: n("steps"),
    saveEvery: n("save-every"),
    keepCheckpoints: n("keep-checkpoints"),
    seed: n("seed"),
    gradClip: n("grad-clip"),
    gradAccum: n("grad-accum"),
    dropout: v.dropout as FeatureDropout | undefined,
    augment: v["no-augment"] ? false : undefined,
    cropBatch: n("crop-batch"),
    workers: n("workers"),
    backend: v.backend as string | undefined,
    initFrom: v["init-from"] as string | undefined,
    endpoint: v.endpoint as string | undefined,
    anonymous: v.anonymous ? true : undefined,
  };
  return Object.fromEntries(Object.entries(out).filter(([, x]) => x !== undefined));
}
