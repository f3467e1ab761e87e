// Splitting a run's cases over machines: `prep --shard i/n` takes the cases whose id
// (dataset/name) hashes to i modulo n, so the split is stable when inputs are added.
import { BadInputError } from "../../cache/errors.ts";

/** A shard of a run: this process takes index `index` of `count` (0-based). */
export interface ShardSpec {
  /** This shard, 0..count-1. */
  index: number;
  /** Number of shards. */
  count: number;
  /** Where the numbers came from (`--shard`, `SLURM_ARRAY_TASK_ID`, ...), for messages. */
  from: string;
}

/** FNV-1a (32 bit) of a string's UTF-16 code units. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/**
 * The shard (0..count-1) of the case `dataset/name`: a hash of its id, so it depends on
 * nothing else (adding inputs moves no case to another shard).
 */
export function caseShard(dataset: string, name: string, count: number): number {
  return fnv1a(`${dataset}/${name}`) % count;
}

/**
 * The shard this process is, from `--shard i/n`, else a Slurm job array
 * (`SLURM_ARRAY_TASK_ID` - `SLURM_ARRAY_TASK_MIN` of `SLURM_ARRAY_TASK_COUNT`), else a
 * Kubernetes indexed Job (`JOB_COMPLETION_INDEX` of `shards`); `undefined` when none
 * applies (one process takes every case). Throws a `BadInputError` naming the bad value.
 */
export function resolveShard(
  shard: string | undefined,
  shards: number | undefined,
  env: Record<string, string | undefined>,
): ShardSpec | undefined {
  const int = (what: string, s: string | undefined) => {
    const n = Number(s);
    if (s === undefined || s.trim() === "" || !Number.isInteger(n) || n < 0) {
      throw new BadInputError(`${what} must be a whole number >= 0, got "${s}"`);
    }
    return n;
  };
  const check = (spec: ShardSpec) => {
    if (spec.count < 1 || spec.index >= spec.count) {
      throw new BadInputError(
        `shard ${spec.index}/${spec.count} (from ${spec.from}): the index must be 0..count-1`,
      );
    }
    return spec;
  };
  if (shard !== undefined) {
    const m = shard.match(/^(\d+)\/(\d+)$/);
    if (!m) throw new BadInputError(`--shard takes I/N (shard I of N, 0-based), got "${shard}"`);
    if (shards !== undefined && shards !== Number(m[2])) {
      throw new BadInputError(`--shard ${shard} and --shards ${shards} disagree`);
    }
    return check({ index: Number(m[1]), count: Number(m[2]), from: "--shard" });
  }
  const k8s = env.JOB_COMPLETION_INDEX;
  if (k8s !== undefined && shards !== undefined) {
    return check({
      index: int("JOB_COMPLETION_INDEX", k8s),
      count: shards,
      from: "JOB_COMPLETION_INDEX",
    });
  }
  const id = env.SLURM_ARRAY_TASK_ID;
  if (id !== undefined && (env.SLURM_ARRAY_TASK_COUNT !== undefined || shards !== undefined)) {
    const min = env.SLURM_ARRAY_TASK_MIN !== undefined
      ? int("SLURM_ARRAY_TASK_MIN", env.SLURM_ARRAY_TASK_MIN)
      : 0;
    const count = shards ?? int("SLURM_ARRAY_TASK_COUNT", env.SLURM_ARRAY_TASK_COUNT);
    return check({
      index: int("SLURM_ARRAY_TASK_ID", id) - min,
      count,
      from: "SLURM_ARRAY_TASK_ID",
    });
  }
  if (shards !== undefined) {
    throw new BadInputError(
      `--shards ${shards} needs this process's index: --shard I/${shards}, or ` +
        `JOB_COMPLETION_INDEX (a Kubernetes indexed Job) or SLURM_ARRAY_TASK_ID`,
    );
  }
  return undefined;
}
