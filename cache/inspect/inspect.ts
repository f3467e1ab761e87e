// What `cache inspect` shows, for a folder and a URL alike through `CacheReader`: every
// case with its shape, dtype, recipe and source (sizes on disk for a folder), or one case
// decoded with its attributes and value range; a case that is not there named with what
// the cache has.
import { join } from "node:path";
import { CacheReader, type CacheReaderOptions } from "../read/cache_reader.ts";
import type { CaseAttributes } from "../read/read_case.ts";
import { folderOrder } from "../format/stored_keys.ts";
import { DamagedCacheError, UsageError } from "../errors.ts";
import { folderSize } from "./stats.ts";

/** One entry of {@linkcode inspectCache}. */
export interface InspectEntry {
  /** Dataset group. */
  dataset: string;
  /** Case name (empty for a broken dataset group). */
  name: string;
  /** Array shape. */
  shape?: number[];
  /** Voxel spacing in mm. */
  spacing?: number[];
  /** Stored data type. */
  data_type?: string;
  /** Bytes on disk (a folder only). */
  bytes?: number;
  /** Recipe name. */
  recipe?: string;
  /** Source path relative to its dataset root. */
  source?: string;
  /** Why the entry cannot be used. */
  error?: string;
}

/** What {@linkcode inspectCache} found. */
export interface CacheListing {
  /** The cache, as opened. */
  cache: string;
  /** Total bytes of the cases (a folder only). */
  bytes?: number;
  /** Entries that cannot be used. */
  broken: number;
  /** Every case (and broken dataset group), dataset by dataset. */
  cases: InspectEntry[];
}

/**
 * Every case of the cache at `location` (a folder or a URL, read as
 * {@linkcode CacheReader} reads it) with its shape, spacing, dtype, recipe, source and,
 * for a folder, its bytes on disk; entries that cannot be used carry `error`.
 */
export async function inspectCache(
  location: string,
  options: CacheReaderOptions = {},
): Promise<CacheListing> {
  const reader = await CacheReader.open(location, options);
  const local = reader.kind === "file";
  const cases: InspectEntry[] = [];
  for (const c of folderOrder(await reader.list())) {
    if (c.error || !c.shape) {
      cases.push({ dataset: c.dataset, name: c.name, error: c.error ?? "no shape" });
      continue;
    }
    const a: Partial<CaseAttributes> = c.attributes ?? {};
    const bytes = local
      ? (await folderSize(join(reader.location, c.dataset, c.name))).bytes
      : undefined;
    cases.push({
      dataset: c.dataset,
      name: c.name,
      shape: c.shape,
      spacing: a.spacing,
      data_type: c.dataType,
      bytes,
      recipe: a.recipe?.name,
      source: a.source,
    });
  }
  const bytes = local ? cases.reduce((t, c) => t + (c.bytes ?? 0), 0) : undefined;
  return { cache: reader.location, bytes, broken: cases.filter((c) => c.error).length, cases };
}

/** One case as {@linkcode inspectCase} shows it. */
export interface CaseDetails {
  /** The cache, as opened. */
  cache: string;
  /** The case, `dataset/name`. */
  case: string;
  /** Array shape. */
  shape: number[];
  /** Stored data type. */
  data_type: string;
  /** Shape of a stored chunk (a shard, when sharded). */
  chunk_shape?: number[];
  /** The array's codecs. */
  codecs: { name: string; configuration?: Record<string, unknown> }[];
  /** Bytes on disk (a folder only). */
  bytes?: number;
  /** The decoded float32 values. */
  values: { min: number; max: number; mean: number };
  /** The case's attributes. */
  attributes: CaseAttributes;
}

/** Edit distance between two strings (insertions, deletions, substitutions). */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length];
}

/** The name of `names` closest to `word` when close enough to be a typo. */
function closest(word: string, names: readonly string[]): string | undefined {
  let best: string | undefined, bestD = Infinity;
  for (const n of names) {
    const d = distance(word.toLowerCase(), n.toLowerCase());
    if (d < bestD) [best, bestD] = [n, d];
  }
  return best !== undefined && bestD <= Math.max(1, Math.floor(word.length / 3)) ? best : undefined;
}

/**
 * A {@linkcode UsageError} for `spec`, which is no case of the cache at `location` whose
 * cases are `full` (`dataset/name`): it names the groups and the closest case names.
 */
export function noSuchCase(location: string, spec: string, full: readonly string[]): UsageError {
  const groups = [...new Set(full.map((f) => f.split("/")[0]))];
  const count = (g: string) => full.filter((f) => f.startsWith(`${g}/`)).length;
  const what = groups.length
    ? `its groups: ${
      groups.map((g) => `${g} (${count(g)} case${count(g) === 1 ? "" : "s"})`).join(", ")
    }`
    : "it holds no case";
  const [group, name] = spec.includes("/") ? spec.split("/", 2) : [undefined, spec];
  const list = (g: string) => {
    const of = full.filter((f) => f.startsWith(`${g}/`));
    return `${of.slice(0, 8).join(", ")}${of.length > 8 ? ", ..." : ""}`;
  };
  // A case without its group, a close name, or else the cases of the group it names.
  const sameName = full.filter((f) => f.endsWith(`/${name}`));
  const near = groups.includes(spec)
    ? undefined
    : sameName.length
    ? sameName.join(" or ")
    : closest(spec, full) ??
      full.find((f) => f.split("/")[1] === closest(name, full.map((x) => x.split("/")[1])));
  const hint = near
    ? `; did you mean ${near}?`
    : group !== undefined && count(group)
    ? `; ${group} holds ${list(group)}`
    : groups.includes(spec)
    ? `; ${spec} is a group, of ${list(spec)}`
    : "";
  return new UsageError(
    `--case ${spec}: no such case in ${location} (cases are named DATASET/CASE); ${what}${hint}`,
  );
}

/**
 * The case `spec` (`dataset/name`) of the cache at `location` decoded: its shape, dtype,
 * chunks, codecs, bytes on disk (a folder only), value range and attributes. A case that
 * is not there throws a {@linkcode UsageError} naming what the cache has; damage throws
 * a `DamagedCacheError` naming the case and the chunk.
 */
export async function inspectCase(
  location: string,
  spec: string,
  options: CacheReaderOptions = {},
): Promise<CaseDetails> {
  const reader = await CacheReader.open(location, options);
  const listed = await reader.list().catch(() => undefined);
  const full = listed?.filter((c) => c.name).map((c) => `${c.dataset}/${c.name}`);
  if (full && !full.includes(spec)) throw noSuchCase(reader.location, spec, full);
  const entry = listed?.find((c) => `${c.dataset}/${c.name}` === spec);
  if (entry?.error) throw new DamagedCacheError(`${spec}: ${entry.error}`, { case: spec });
  const c = await reader.openCase(spec);
  const v = await c.read();
  let min = Infinity, max = -Infinity, sum = 0;
  for (const x of v.data) {
    if (x < min) min = x;
    if (x > max) max = x;
    sum += x;
  }
  const meta = JSON.parse(new TextDecoder().decode(await reader.store.get(`/${spec}/zarr.json`)));
  return {
    cache: reader.location,
    case: spec,
    shape: v.shape,
    data_type: meta.data_type,
    chunk_shape: meta.chunk_grid?.configuration?.chunk_shape,
    codecs: meta.codecs,
    bytes: reader.kind === "file"
      ? (await folderSize(join(reader.location, spec))).bytes
      : undefined,
    values: { min, max, mean: sum / v.data.length },
    attributes: c.attributes,
  };
}
