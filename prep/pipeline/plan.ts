// Planning a prep run before anything is written: the inputs and `--dataset` specs found
// as cases with their group and recipe, the storage settings checked, and the run compared
// with the cache (recipes mixed in a group, cases no input gives any more, the shard, a
// layout switch). Then running the plan: `runPrep` over this shard's cases, and pruning
// after a complete run. `deno task prep` prints the plan and the summary; a `mod.ts` user
// gets the same decisions from `planPrep` and `runPlan`.
import { basename, dirname, isAbsolute, resolve } from "node:path";
import { discoverInputs, type ScanProgress, type SkippedFile } from "./discover.ts";
import {
  DATALIST_ADAPTER,
  type DatasetAdapter,
  datasetAdapter,
  DATASETS,
  detectDataset,
} from "./datasets.ts";
import { type PrepItem, type PrepSummary, runPrep, type RunPrepOptions } from "./run_prep.ts";
import { type CachedCase, type GroupState, groupStates } from "./group_state.ts";
import { caseShard, resolveShard, type ShardSpec } from "./shard_cases.ts";
import type { StorageOptions } from "./process_case.ts";
import { type Recipe, type RecipeOverrides, RECIPES, resolveRecipe } from "../recipes/recipe.ts";
import { readRecipeFile } from "../recipes/recipe_file.ts";
import {
  type Compressor,
  COMPRESSOR_LEVELS,
  DEFAULT_CHUNK,
  DEFAULT_COMPRESSOR,
  DEFAULT_INNER_CHUNK,
  DEFAULT_LAYOUT,
  DEFAULT_LEVEL,
  type Layout,
  toNodeName,
} from "../../cache/format/format.ts";
import {
  cacheFolderProblem,
  cacheLayout,
  removeCase,
  setCacheLayout,
} from "../../cache/write/cache_dir.ts";
import { refreshConsolidated } from "../../cache/write/consolidate.ts";
import { BadInputError } from "../../cache/errors.ts";
import { closest } from "../../cache/text.ts";

/** What a prep run is asked to do: the flags of `deno task prep` as plain data. */
export interface PrepRequest {
  /** The cache folder (`--out`): a new or empty folder, or a cache. */
  out: string;
  /** Files, folders and datalists (the positional inputs). @default {[]} */
  inputs?: string[];
  /** `--dataset [NAME=]PATH[:RECIPE]` specs. @default {[]} */
  datasets?: string[];
  /** Group of the positional inputs' cases (`--dataset-name`). @default {from the first input} */
  datasetName?: string;
  /** Folder datalist paths are relative to (`--base-dir`). @default {the datalist's folder} */
  baseDir?: string;
  /** A built-in recipe name or a recipe `.json` file (`--recipe`). @default {"voco-v2"} */
  recipe?: string;
  /** Recipe parameter overrides (`--spacing`, `--window`, ...). @default {{}} */
  overrides?: RecipeOverrides;
  /**
   * Storage settings; absent ones take the defaults, the layout the cache's recorded one.
   * @default {{}}
   */
  storage?: Partial<StorageOptions>;
  /** `--shard I/N`: prep only this shard of the cases. */
  shard?: string;
  /** `--shards N`, with the index from the environment. */
  shards?: number;
  /** Where a shard index is looked up (Slurm, Kubernetes). @default {Deno.env.toObject()} */
  env?: Record<string, string | undefined>;
  /** Remove stale cases after a complete run (`--prune`). @default {false} */
  prune?: boolean;
  /** Allow a run that mixes recipes in a group (`--force`). @default {false} */
  force?: boolean;
  /** Folder relative paths are taken from. @default {Deno.cwd()} */
  cwd?: string;
  /** Called now and then while a large tree is scanned, and with `undefined` when done. */
  onScan?: (what: string, progress?: ScanProgress) => void;
}

/** One dataset group of a planned run. */
export interface PlanGroup {
  /** The group's name in the cache. */
  dataset: string;
  /** The recipe its cases get. */
  recipe: Recipe;
  /** Cases found for it (all shards). */
  cases: number;
  /** Where they come from, for messages (`/data/BTCV as btcv`). */
  what: string;
  /** The layout its adapter expects, for the message when nothing was found. */
  layout?: string;
}

/** A cached case that no input gives any more. */
export interface StaleCase extends CachedCase {
  /** Its dataset group. */
  dataset: string;
}

/** A prep run, planned: what it will write, skip, replace and prune. */
export interface PrepPlan {
  /** The cache folder. */
  out: string;
  /** This shard's cases, each with its group and recipe. */
  items: PrepItem[];
  /** Cases of the whole run, every shard. */
  totalCases: number;
  /** The run's dataset groups. */
  groups: PlanGroup[];
  /** Files found but not read (not CT images, not regular files). */
  skipped: SkippedFile[];
  /** The storage settings, defaults filled in. */
  storage: StorageOptions;
  /** This process's shard, when the run is split. */
  shard?: ShardSpec;
  /** Cached cases of this shard that no input gives any more. */
  stale: StaleCase[];
  /** Whether `runPlan` removes the stale cases after a complete run. */
  prune: boolean;
  /** The layout the cache records, when the run switches it to `storage.layout`. */
  switchFrom?: Layout;
  /** Decisions to show before the run (detected layouts, forced recipe mixing, ...). */
  notes: string[];
}

/**
 * Plans a prep run: checks the cache folder and the settings, finds every input's cases
 * (detecting dataset layouts), and compares the run with the cache. Writes nothing.
 * Throws a `BadInputError` naming the flag and the reason for input the run cannot use
 * (a folder that is not a cache, a level out of range, an unknown recipe, a dataset
 * group given twice, a run that would mix recipes in a group without `force`).
 */
export async function planPrep(request: PrepRequest): Promise<PrepPlan> {
  const cwd = request.cwd ?? Deno.cwd();
  const abs = (p: string) => isAbsolute(p) ? p : resolve(cwd, p);
  const out = abs(request.out);
  const problem = await cacheFolderProblem(out);
  if (problem) {
    throw new BadInputError(`--out: ${problem}; give a new folder, such as --out ct.zarr`, {
      path: out,
    });
  }
  const recorded = await cacheLayout(out);
  const storage = storageOptions(request.storage ?? {}, recorded);
  const overrides = request.overrides ?? {};
  const recipe = recipeFor(request.recipe ?? "voco-v2", overrides, abs);
  const shard = resolveShard(request.shard, request.shards, request.env ?? Deno.env.toObject());
  const notes: string[] = [];
  const { items, groups, skipped } = await findGroups(request, recipe, abs, notes);
  // Every shard compares the whole run with the cache, then preps its own cases only.
  const states = await groupStates(
    out,
    items.map((it) => ({ dataset: it.dataset!, name: it.name, recipe: it.recipe! })),
  );
  const mine = (dataset: string, name: string) =>
    !shard || caseShard(dataset, name, shard.count) === shard.index;
  notes.push(...states.flatMap((s) => mixingNote(s, out, request)));
  const switchFrom = recorded && recorded !== storage.layout ? recorded : undefined;
  if (switchFrom) {
    notes.push(
      `--layout ${storage.layout}: ${out} holds ${switchFrom} cases; the cases of this run are ` +
        `rewritten as ${storage.layout}, and the cache records ${storage.layout} from now on`,
    );
  }
  return {
    out,
    items: items.filter((it) => mine(it.dataset!, it.name)),
    totalCases: items.length,
    groups,
    skipped,
    storage,
    shard,
    stale: states.flatMap((s) =>
      s.stale.filter((c) => mine(s.dataset, c.name)).map((c) => ({ ...c, dataset: s.dataset }))
    ),
    prune: Boolean(request.prune),
    switchFrom,
    notes,
  };
}

/** The run's groups: the positional inputs as one, and each `--dataset` spec as its own. */
async function findGroups(
  request: PrepRequest,
  recipe: Recipe,
  abs: (p: string) => string,
  notes: string[],
): Promise<{ items: PrepItem[]; groups: PlanGroup[]; skipped: SkippedFile[] }> {
  const overrides = request.overrides ?? {};
  const items: PrepItem[] = [], skipped: SkippedFile[] = [], groups: PlanGroup[] = [];
  const add = (group: PlanGroup, found: { cases: PrepItem[]; skipped: SkippedFile[] }) => {
    if (groups.some((g) => g.dataset === group.dataset)) {
      throw new BadInputError(
        `Dataset group "${group.dataset}" is given twice; name them apart (NAME=PATH)`,
      );
    }
    items.push(...found.cases.map((c) => ({ ...c, dataset: group.dataset, recipe: group.recipe })));
    skipped.push(...found.skipped);
    groups.push({ ...group, cases: found.cases.length });
  };
  const scan = (what: string) => (p: ScanProgress) => request.onScan?.(what, p);
  const inputs = (request.inputs ?? []).map(abs);
  if (inputs.length > 0) {
    const dataset = toNodeName(request.datasetName ?? defaultDatasetName(inputs[0]));
    const what = inputs.join(", ");
    const found = await discoverInputs(inputs, {
      baseDir: request.baseDir === undefined ? undefined : abs(request.baseDir),
      onProgress: scan(what),
    });
    request.onScan?.(what);
    add({ dataset, recipe, cases: 0, what }, found);
  }
  for (const spec of request.datasets ?? []) {
    const d = await parseDatasetSpec(spec, abs);
    let adapter = d.name ? datasetAdapter(d.name) : undefined;
    if (!adapter) {
      adapter = await detectDataset(d.path);
      notes.push(
        `${d.path}: detected ${adapter.name} (${adapter.title})` +
          (d.name ? `, cached as group "${d.name}"` : ""),
      );
    }
    const generic = adapter.name === "generic" || adapter.name === "datalist";
    const dataset = toNodeName(d.name ?? (generic ? defaultDatasetName(d.path) : adapter.name));
    const found = await adapter.find(d.path, { onProgress: scan(d.path) });
    request.onScan?.(d.path);
    add({
      dataset,
      recipe: d.recipe ? recipeFor(d.recipe, overrides, abs) : recipe,
      cases: 0,
      what: `${d.path} as ${adapter.name}`,
      layout: adapter.layout,
    }, found);
  }
  return { items, groups, skipped };
}

/**
 * A group whose cached cases were made with another recipe: refused without `force`
 * (the group would mix recipes), else the note of what the run replaces and leaves.
 */
function mixingNote(s: GroupState, out: string, request: PrepRequest): string[] {
  const n = s.replaced.length + s.kept.length;
  if (n === 0) return [];
  const theirs = [...new Set([...s.replaced, ...s.kept].map((c) => c.recipe))].join(", ");
  const what = `group "${s.dataset}" of ${out} holds ${n} case(s) made with recipe ${theirs}` +
    `${theirs === s.recipes.join(", ") ? " (other steps)" : ""}; this run uses ` +
    `${s.recipes.join(", ")}: it would replace ${s.replaced.length} of them` +
    (s.kept.length
      ? request.prune
        ? ` and prune ${s.kept.length}`
        : ` and leave ${s.kept.length} next to the new ones, mixing recipes in one group`
      : "");
  if (!request.force) {
    throw new BadInputError(
      `${what}. Write this run to another group (--dataset-name NAME, or NAME= in ` +
        `--dataset) or another cache, or add --force`,
    );
  }
  return [`--force: ${what}`];
}

/** Options of {@linkcode runPlan}: those of `runPrep` that the plan does not fix. */
export type RunPlanOptions = Omit<RunPrepOptions, "out" | "storage" | "dataset" | "recipe">;

/** What {@linkcode runPlan} did. */
export interface PlanResult {
  /** The run's per-case reports and time. */
  summary: PrepSummary;
  /** Stale cases removed (after a complete run with `prune`). */
  pruned: StaleCase[];
  /** Whether the run was stopped by its signal before every case ran. */
  interrupted: boolean;
}

/**
 * Runs a plan: records a layout switch, preps the plan's cases with `runPrep`, and after
 * a complete run (not interrupted) removes the stale cases when the plan prunes.
 */
export async function runPlan(plan: PrepPlan, options: RunPlanOptions = {}): Promise<PlanResult> {
  if (plan.switchFrom) await setCacheLayout(plan.out, plan.storage.layout as Layout);
  const summary = await runPrep(plan.items, { ...options, out: plan.out, storage: plan.storage });
  const interrupted = options.signal?.aborted ?? false;
  // Pruning only after a whole run: an interrupted one has not looked at every input.
  const pruned = plan.prune && !interrupted ? plan.stale : [];
  for (const c of pruned) {
    await removeCase(plan.out, c.dataset, c.name).catch((e) => {
      if (!(e instanceof Deno.errors.NotFound)) throw e; // another run pruned it first
    });
  }
  if (pruned.length) await refreshConsolidated(plan.out);
  return { summary, pruned, interrupted };
}

/** The storage settings with the defaults filled in; the level checked per compressor. */
function storageOptions(s: Partial<StorageOptions>, recorded?: Layout): StorageOptions {
  const compressor = (s.compressor ?? DEFAULT_COMPRESSOR) as Compressor;
  const range = COMPRESSOR_LEVELS[compressor];
  if (s.level !== undefined && !range) {
    throw new BadInputError(`--level has no meaning with --compressor ${compressor}`);
  }
  const level = s.level ?? DEFAULT_LEVEL;
  if (range && (level < range[0] || level > range[1])) {
    throw new BadInputError(
      `--level for ${compressor} takes ${range[0]}..${range[1]}, got ${level}`,
    );
  }
  const layout = (s.layout ?? recorded ?? DEFAULT_LAYOUT) as Layout;
  if (compressor === "lorenzo" && s.dtype === "float32") {
    throw new BadInputError(
      "--compressor lorenzo predicts integer levels: use --dtype uint16 (the default) or uint8",
    );
  }
  return {
    dtype: s.dtype ?? "uint16",
    compressor,
    level: range ? level : DEFAULT_LEVEL,
    chunk: s.chunk ?? (layout === "sharded" ? DEFAULT_INNER_CHUNK : DEFAULT_CHUNK),
    layout,
  };
}

/** Resolves a recipe (a built-in name or a JSON file) with the overrides. */
function recipeFor(spec: string, overrides: RecipeOverrides, abs: (p: string) => string): Recipe {
  const base = spec.toLowerCase().endsWith(".json") ? readRecipeFile(abs(spec)) : spec;
  return resolveRecipe(base, overrides);
}

const exists = (path: string) => Deno.stat(path).then(() => true, () => false);

/**
 * Splits `[NAME=]PATH[:RECIPE]`. A PATH that exists as written keeps its colons;
 * otherwise a tail that is no recipe is named as an unknown recipe when the path before
 * it exists. A NAME one typo away from an adapter's name is refused with the adapter.
 */
async function parseDatasetSpec(
  spec: string,
  abs: (p: string) => string,
): Promise<{ name?: string; path: string; recipe?: string }> {
  let rest = spec;
  let name: string | undefined;
  const eq = rest.indexOf("=");
  if (eq > 0 && !rest.slice(0, eq).includes("/")) {
    name = rest.slice(0, eq);
    rest = rest.slice(eq + 1);
    checkAdapterName(name, spec);
  }
  if (!rest) throw new BadInputError(`--dataset "${spec}" has no path`);
  if (await exists(abs(rest))) return { name, path: abs(rest) };
  const colon = rest.lastIndexOf(":");
  const tail = colon > 0 ? rest.slice(colon + 1) : "";
  const head = colon > 0 ? abs(rest.slice(0, colon)) : abs(rest);
  if (tail in RECIPES || tail.toLowerCase().endsWith(".json")) {
    if (!(await exists(head))) {
      throw new BadInputError(`--dataset ${spec}: ${head} does not exist`, { path: head });
    }
    const recipe = tail.toLowerCase().endsWith(".json") ? abs(tail) : tail;
    return { name, path: head, recipe };
  }
  if (tail && !tail.includes("/") && (await exists(head))) {
    const near = closest(tail, Object.keys(RECIPES));
    throw new BadInputError(
      `--dataset ${spec}: unknown recipe "${tail}"` + (near ? ` (did you mean ${near}?)` : "") +
        `; recipes: ${Object.keys(RECIPES).join(", ")}, or a recipe .json file`,
    );
  }
  throw new BadInputError(`--dataset ${spec}: ${abs(rest)} does not exist`, { path: abs(rest) });
}

/**
 * Refuses a group name that is a typo of an adapter's (`btvc=` for `btcv=`); a shorter
 * name (`luna=`) stays a group name.
 */
function checkAdapterName(name: string, spec: string): void {
  if (datasetAdapter(name)) return;
  const adapters: DatasetAdapter[] = [...DATASETS, DATALIST_ADAPTER];
  const near = closest(name, adapters.map((a) => a.name));
  if (near && !near.startsWith(name.toLowerCase())) {
    throw new BadInputError(
      `--dataset ${spec}: "${name}" is no dataset adapter (did you mean ${near}?); as it ` +
        `stands it would be a group name with the layout detected. Write ${near}=PATH, or ` +
        `name the group apart from the adapters`,
    );
  }
}

/**
 * The default group of positional inputs: the first input folder's name, a datalist's
 * name without `.json`, or a file's parent folder.
 */
export function defaultDatasetName(input: string): string {
  try {
    if (Deno.statSync(input).isDirectory) return basename(input);
  } catch { /* reported later by discovery */ }
  if (input.toLowerCase().endsWith(".json")) return basename(input).replace(/\.json$/i, "");
  return basename(dirname(input));
}
