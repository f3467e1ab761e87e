// `deno task prep`: datasets -> Zarr cache.
import { basename, dirname } from "node:path";
import {
  discoverInputs,
  type Discovery,
  type ScanProgress,
  type SkippedFile,
} from "../prep/pipeline/discover.ts";
import {
  type Recipe,
  type RecipeOverrides,
  RECIPES,
  resolveRecipe,
} from "../prep/recipes/recipe.ts";
import { readRecipeFile } from "../prep/recipes/recipe_file.ts";
import {
  DATALIST_ADAPTER,
  datasetAdapter,
  DATASETS,
  detectDataset,
} from "../prep/pipeline/datasets.ts";
import { type PrepItem, runPrep } from "../prep/pipeline/run_prep.ts";
import { groupStates } from "../prep/pipeline/group_state.ts";
import type { StorageOptions } from "../prep/pipeline/process_case.ts";
import type { StorageDtype } from "../cache/format/quantize.ts";
import {
  type Compressor,
  COMPRESSOR_LEVELS,
  COMPRESSORS,
  DEFAULT_CHUNK,
  DEFAULT_COMPRESSOR,
  DEFAULT_INNER_CHUNK,
  DEFAULT_LAYOUT,
  DEFAULT_LEVEL,
  type Layout,
  LAYOUTS,
  toNodeName,
} from "../cache/format/format.ts";
import {
  cacheFolderProblem,
  cacheLayout,
  removeCase,
  setCacheLayout,
} from "../cache/write/cache_dir.ts";
import { refreshConsolidated } from "../cache/write/consolidate.ts";
import { caseShard, resolveShard } from "../prep/pipeline/shard_cases.ts";
import {
  EXIT_INTERRUPTED,
  formatBytes,
  formatSeconds,
  onInterrupt,
  Progress,
  runMain,
  StatusLine,
  UsageError,
} from "./_cli.ts";
import { closest, defineCommand, expandTriple, parseCommand, userPath } from "./_args.ts";

/** The command line of `deno task prep`: flags, help and examples in one place. */
export const PREP = defineCommand({
  name: "prep",
  summary: "preprocess CT volumes into a resampled Zarr v3 cache",
  usage: [
    "prep <file|folder|datalist.json>... --out <cache.zarr> [options]",
    "prep --dataset [NAME=]PATH[:RECIPE]... --out <cache.zarr> [options]",
  ],
  description: `Inputs:
  file            one image: .nii, .nii.gz, .mha, .mhd (+ its .raw/.zraw)
  folder          scanned recursively: NIfTI, MetaImage and DICOM (one case per CT series;
                  other modalities, localizers and files without pixels are skipped)
  datalist.json   Decathlon/VoCo datalist ({"training": [{"image": "rel/path"}], ...});
                  paths are relative to --base-dir or to the JSON's folder
  --dataset SPEC  a dataset in its public layout, its own group in the cache; repeatable.
                  NAME is an adapter (see --list-datasets) or, when it is not one, the
                  group name; without a known NAME the layout is detected. :RECIPE picks
                  a recipe (name or .json) for this dataset only.

Relative paths are taken from the folder you run the command in.`,
  positionals: { name: "input", help: "files, folders or datalists to prep", type: "path" },
  flags: {
    out: {
      type: "path",
      arg: "DIR",
      help: "cache folder, new or a cache (reruns update it incrementally)",
    },
    dataset: { type: "list", arg: "SPEC", help: "[NAME=]PATH[:RECIPE], see Inputs; repeatable" },
    "dataset-name": {
      type: "string",
      arg: "NAME",
      help: "group of the positional inputs' cases (default: the name of the first\n" +
        "input folder, of a datalist without .json, or of a file's parent folder)",
    },
    "list-datasets": {
      type: "boolean",
      help: "print the dataset adapters and the layout each expects",
    },
    recipe: {
      type: "string",
      arg: "NAME|FILE",
      default: "voco-v2",
      help: "voco-v2 (default: RAS, 1.5 mm, window -175..250, crop > 0, pad 64)\n" +
        "voco-v1 (RAS, window, crop > 0.3, resize 384x384x96)\n" +
        "chest   (RAS, 1.25x1.25x5 mm, window -1000..500, crop > 0, pad 64)\n" +
        'or a JSON file: {"name": "n", "extends": "voco-v2", "spacing": 2}\n' +
        'or {"name": "n", "steps": [{"op": "orient", "axcodes": "RAS"}, ...]}',
    },
    spacing: {
      type: "numbers",
      counts: [1, 3],
      arg: "S|SX,SY,SZ",
      help: "target spacing in mm, for recipes with a spacing step\n" +
        "(1.5, 1.5,1.5,2 or 1.5 1.5 2)",
    },
    window: { type: "numbers", counts: [2], arg: "LO,HI", help: "intensity window in HU" },
    "crop-threshold": { type: "number", arg: "T", help: "foreground threshold of the crop step" },
    "min-size": {
      type: "numbers",
      counts: [1, 3],
      integer: true,
      min: 1,
      arg: "N|X,Y,Z",
      help: "minimum shape of the pad step",
    },
    resize: {
      type: "numbers",
      counts: [1, 3],
      integer: true,
      min: 1,
      arg: "X,Y,Z",
      help: "output shape of the resize step",
    },
    dtype: {
      type: "string",
      arg: "T",
      choices: ["uint16", "uint8", "float32"],
      default: "uint16",
      help: "uint16 (default: 1-HU steps, decoded with scale_factor/add_offset),\n" +
        "uint8, or float32 (exact)",
    },
    compressor: {
      type: "string",
      arg: "C",
      choices: COMPRESSORS,
      default: DEFAULT_COMPRESSOR,
      help: `${COMPRESSORS.join(", ")}`,
    },
    level: {
      type: "number",
      integer: true,
      help: `compression level (default ${DEFAULT_LEVEL}; Blosc 0..9, zstd 1..22)`,
    },
    chunk: {
      type: "number",
      integer: true,
      min: 1,
      help: `chunk edge in voxels, of the inner chunks when sharded (default ` +
        `${DEFAULT_INNER_CHUNK} sharded,\n${DEFAULT_CHUNK} chunked)`,
    },
    layout: {
      type: "string",
      arg: "L",
      choices: LAYOUTS,
      help: `sharded (one file per case) or chunked (one file per chunk); default: the\n` +
        `cache's recorded layout, ${DEFAULT_LAYOUT} for a new cache`,
    },
    shard: {
      type: "string",
      arg: "I/N",
      help: "prep only shard I of N (0-based) of the cases, by a hash of dataset/case,\n" +
        "for many machines sharing one cache (default: from SLURM_ARRAY_TASK_ID/\n" +
        "SLURM_ARRAY_TASK_COUNT, or JOB_COMPLETION_INDEX with --shards)",
    },
    shards: {
      type: "number",
      integer: true,
      min: 1,
      arg: "N",
      help: "number of shards, with the index from JOB_COMPLETION_INDEX (a Kubernetes\n" +
        "indexed Job) or SLURM_ARRAY_TASK_ID",
    },
    workers: {
      type: "number",
      integer: true,
      min: 1,
      help: "parallel workers (default: number of cores)",
    },
    "decode-threads": {
      type: "number",
      integer: true,
      min: 1,
      help: "threads per worker for compressed DICOM frames (JPEG 2000, ...)\n" +
        "(default: cores / workers, so a single series uses every core)",
    },
    "max-voxels": {
      type: "number",
      integer: true,
      min: 1,
      help: "most voxels a recipe step may make for one case (default 2^29,\n" +
        "2 GiB as float32); a case beyond it fails instead of filling memory",
    },
    "base-dir": { type: "path", arg: "DIR", help: "folder datalist paths are relative to" },
    prune: {
      type: "boolean",
      help: "remove cached cases of the run's groups that no input gives any more",
    },
    force: {
      type: "boolean",
      help: "write a group whose cached cases were made with another recipe",
    },
    quiet: { type: "boolean", help: "no progress bar and no line per case (failures only)" },
  },
  examples: [
    "prep ../shared/data/ct/example_ct.nii.gz --out ct.zarr",
    "prep /data/BTCV/imagesTr --out ct.zarr --dataset-name btcv",
    "prep --dataset btcv=/data/BTCV --dataset luna16=/data/Luna16 --out ct.zarr",
    "prep --dataset lidc=/data/LIDC-IDRI:chest --dataset /data/TotalSegmentator --out ct.zarr",
    "prep dataset_btcv.json --base-dir /data/BTCV --out ct.zarr --workers 2",
    "prep /data/dicom/patient1 --out ct.zarr --recipe voco-v1 --dtype float32",
    "prep /data/Covid19 --out ct.zarr --spacing 1.5,1.5,2 --window -1000,500",
  ],
  footer: `Exit code: 0 when every case is in the cache, 1 when any case failed, 2 on bad usage,
130 when stopped with Ctrl-C (cases already written stay; a second Ctrl-C quits at once).`,
});

async function main(args: string[]): Promise<number> {
  const parsed = parseCommand(PREP, args);
  if (parsed.help !== undefined) {
    console.log(parsed.help);
    return 0;
  }
  const { values: v, positionals } = parsed;
  if (v["list-datasets"]) {
    console.log(listDatasets());
    return 0;
  }
  const specs = v.dataset;
  if (positionals.length === 0 && specs.length === 0) {
    throw new UsageError("No input given (files, folders, datalists or --dataset)");
  }
  if (!v.out) throw new UsageError("--out <cache folder> is required (for example --out ct.zarr)");
  const out = v.out;
  const outProblem = await cacheFolderProblem(out);
  if (outProblem) {
    throw new UsageError(`--out: ${outProblem}; give a new folder, such as --out ct.zarr`);
  }
  const compressor = v.compressor as Compressor;
  const range = COMPRESSOR_LEVELS[compressor];
  if (v.level !== undefined && !range) {
    throw new UsageError(`--level has no meaning with --compressor ${compressor}`);
  }
  const level = v.level ?? DEFAULT_LEVEL;
  if (range && (level < range[0] || level > range[1])) {
    throw new UsageError(
      `--level for ${compressor} takes ${range[0]}..${range[1]}, got ${level}`,
    );
  }
  const overrides: RecipeOverrides = {
    spacingMm: expandTriple(v.spacing),
    windowHu: v.window as [number, number] | undefined,
    cropThreshold: v["crop-threshold"],
    minShape: expandTriple(v["min-size"]),
    resizeShape: expandTriple(v.resize),
  };
  const recipe = recipeFor(v.recipe, overrides);
  let shard;
  try {
    shard = resolveShard(v.shard, v.shards, Deno.env.toObject());
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const recorded = await cacheLayout(out);
  const layout = (v.layout ?? recorded ?? DEFAULT_LAYOUT) as Layout;
  const storage: StorageOptions = {
    dtype: v.dtype as StorageDtype,
    compressor,
    level: range ? level : DEFAULT_LEVEL,
    chunk: v.chunk ?? (layout === "sharded" ? DEFAULT_INNER_CHUNK : DEFAULT_CHUNK),
    layout,
  };
  const workers = v.workers;
  const decodeThreads = v["decode-threads"];
  const maxVoxels = v["max-voxels"];

  // Each input becomes a group of cases with its dataset name and recipe.
  const items: PrepItem[] = [];
  const skipped: SkippedFile[] = [];
  const groups: {
    dataset: string;
    recipe: Recipe;
    cases: number;
    what: string;
    layout?: string;
  }[] = [];
  const add = (dataset: string, r: Recipe, found: Discovery, what: string, layout?: string) => {
    if (groups.some((g) => g.dataset === dataset)) {
      throw new UsageError(
        `Dataset group "${dataset}" is given twice; name them apart (NAME=PATH)`,
      );
    }
    items.push(...found.cases.map((c) => ({ ...c, dataset, recipe: r })));
    skipped.push(...found.skipped);
    groups.push({ dataset, recipe: r, cases: found.cases.length, what, layout });
  };
  // Scanning a large tree (LIDC-IDRI: 244k files) takes a while: say how far it is.
  const status = new StatusLine(v.quiet);
  const scanning = (what: string) => (p: ScanProgress) =>
    status.update(
      `prep: scanning ${what}: ${p.files} files` +
        (p.headers ? `, ${p.headers} DICOM headers read` : ""),
    );
  if (positionals.length > 0) {
    const dataset = toNodeName(v["dataset-name"] ?? defaultDatasetName(positionals[0]));
    const found = await discoverInputs(positionals, {
      baseDir: v["base-dir"],
      onProgress: scanning(positionals.join(", ")),
    });
    status.end();
    add(dataset, recipe, found, positionals.join(", "));
  }
  for (const spec of specs) {
    const d = await parseDatasetSpec(spec);
    let adapter = d.name ? datasetAdapter(d.name) : undefined;
    if (!adapter) {
      adapter = await detectDataset(d.path);
      const near = d.name ? closest(d.name, DATASETS.map((a) => a.name)) : undefined;
      console.error(
        `prep: ${d.path}: detected ${adapter.name} (${adapter.title})` +
          (d.name ? `, cached as group "${d.name}"` : "") +
          (near ? ` ("${d.name}" is no dataset adapter: did you mean ${near}?)` : ""),
      );
    }
    const group = toNodeName(
      d.name ??
        (adapter.name === "generic" || adapter.name === "datalist"
          ? defaultDatasetName(d.path)
          : adapter.name),
    );
    const r = d.recipe ? recipeFor(d.recipe, overrides) : recipe;
    const found = await adapter.find(d.path, { onProgress: scanning(d.path) });
    status.end();
    add(group, r, found, `${d.path} as ${adapter.name}`, adapter.layout);
  }
  // One message per input that gave nothing, with the layout its adapter expects.
  for (const g of groups) {
    if (g.cases > 0) continue;
    console.error(
      `prep: no images (.nii, .nii.gz, .mha, .mhd, DICOM) found in ${g.what}` +
        (g.layout ? `; expected layout: ${g.layout}` : ""),
    );
  }
  if (items.every((c) => c.error)) {
    for (const c of items) console.error(`prep: ${c.path}: ${c.error}`);
    return 1;
  }
  // Every shard compares the whole run with the cache, then preps its own cases only.
  const states = await groupStates(
    out,
    items.map((it) => ({ dataset: it.dataset!, name: it.name, recipe: it.recipe! })),
  );
  const mine = (dataset: string, name: string) =>
    !shard || caseShard(dataset, name, shard.count) === shard.index;
  const allCount = items.length;
  if (shard) {
    const kept = items.filter((it) => mine(it.dataset!, it.name));
    items.length = 0;
    items.push(...kept);
    console.error(
      `prep: shard ${shard.index}/${shard.count} (from ${shard.from}): ${items.length} of ` +
        `${allCount} case(s)`,
    );
  }
  const mixing = states.filter((s) => s.replaced.length + s.kept.length > 0);
  for (const s of mixing) {
    const theirs = [...new Set([...s.replaced, ...s.kept].map((c) => c.recipe))].join(", ");
    const n = s.replaced.length + s.kept.length;
    const what = `group "${s.dataset}" of ${out} holds ${n} case(s) made with recipe ${theirs}` +
      `${theirs === s.recipes.join(", ") ? " (other steps)" : ""}; this run uses ` +
      `${s.recipes.join(", ")}: it would replace ${s.replaced.length} of them` +
      (s.kept.length
        ? v.prune
          ? ` and prune ${s.kept.length}`
          : ` and leave ${s.kept.length} next to the new ones, mixing recipes in one group`
        : "");
    if (!v.force) {
      throw new UsageError(
        `${what}. Write this run to another group (--dataset-name NAME, or NAME= in ` +
          `--dataset) or another cache, or add --force`,
      );
    }
    console.error(`prep: --force: ${what}`);
  }
  for (const g of groups) {
    console.error(
      `prep: ${g.cases} case(s) from ${g.what} -> ${out} [${g.dataset}], recipe ${g.recipe.name}`,
    );
  }
  if (skipped.length > 0) {
    console.error(
      `prep: ${skipped.length} file(s) skipped (not CT images, or not regular files), e.g. ` +
        skipped.slice(0, 3).map((f) => `${f.path}: ${f.reason}`).join("; "),
    );
  }
  const stale = states.flatMap((s) =>
    s.stale.filter((c) => mine(s.dataset, c.name)).map((c) => ({ ...c, dataset: s.dataset }))
  );
  if (recorded && v.layout && v.layout !== recorded) {
    console.error(
      `prep: --layout ${v.layout}: ${out} holds ${recorded} cases; the cases of this run are ` +
        `rewritten as ${v.layout}, and the cache records ${v.layout} from now on`,
    );
    await setCacheLayout(out, v.layout as Layout);
  }
  const staleText = (list: typeof stale) =>
    list.slice(0, 5).map((c) => `${c.dataset}/${c.name}${c.source ? ` <- ${c.source}` : ""}`)
      .join(", ") + (list.length > 5 ? `, ... (${list.length - 5} more)` : "");
  if (stale.length > 0) {
    console.error(
      `prep: ${stale.length} cached case(s) no input gives any more (source removed or ` +
        `renamed?): ${staleText(stale)}; ` +
        (v.prune ? "--prune removes them after the run" : "prep --prune removes them"),
    );
  }
  const progress = new Progress(items.length, v.quiet);
  const abort = new AbortController();
  const interrupt = onInterrupt(() => {
    abort.abort();
    console.error(
      "\nInterrupted: starting no new case; the cache keeps every completed case " +
        "(Ctrl-C again to quit at once).",
    );
  });
  let summary;
  try {
    summary = await runPrep(items, {
      out,
      storage,
      workers,
      decodeThreads,
      maxVoxels,
      signal: abort.signal,
      onEvent: (e) => {
        if (e.type === "case-start") progress.working(e.case.name);
        if (e.type === "case-done") {
          const r = e.report;
          progress.tick(
            r.status === "failed" ? `FAILED ${r.case.path}: ${r.error}` : undefined,
            `${r.status} ${r.dataset}/${r.case.name} (${r.seconds.toFixed(2)}s)`,
          );
        }
      },
    });
  } finally {
    interrupt.dispose();
    progress.end();
  }
  // Pruning only after a whole run: an interrupted one has not looked at every input.
  const pruned = v.prune && !interrupt.interrupted ? stale : [];
  for (const c of pruned) {
    await removeCase(out, c.dataset, c.name).catch((e) => {
      if (!(e instanceof Deno.errors.NotFound)) throw e; // another run pruned it first
    });
  }
  if (pruned.length) await refreshConsolidated(out);
  const count = (s: string) => summary.reports.filter((r) => r.status === s).length;
  const failed = summary.reports.filter((r) => r.status === "failed");
  const written = summary.reports.filter((r) => r.status === "written");
  const bytesIn = summary.reports.reduce((a, r) => a + (r.outcome?.bytesIn ?? 0), 0);
  const bytesOut = written.reduce((a, r) => a + (r.outcome?.bytesOut ?? 0), 0);
  const f32 = written.reduce(
    (a, r) => a + 4 * (r.outcome?.shape ?? [0, 0, 0]).reduce((x, y) => x * y, 1),
    0,
  );
  const notRun = items.length - summary.reports.length;
  const perGroup = groups.length > 1
    ? groups.map((g) => {
      const rs = summary.reports.filter((r) => r.dataset === g.dataset);
      const n = (s: string) => rs.filter((r) => r.status === s).length;
      return `  ${g.dataset.padEnd(10)} ${g.cases} case(s), recipe ${g.recipe.name}: ` +
        `${n("written")} written, ${n("unchanged")} unchanged, ${n("failed")} failed`;
    })
    : [];
  console.log(
    [
      `prep summary (${out}, ${groups.map((g) => `${g.dataset}: ${g.recipe.name}`).join(", ")})`,
      `  cases      ${items.length}: ${count("written")} written, ${
        count("unchanged")
      } unchanged, ` +
      `${failed.length} failed${notRun ? `, ${notRun} not run (interrupted)` : ""}`,
      ...perGroup,
      `  time       ${formatSeconds(summary.seconds)} wall, ` +
      `${
        (summary.reports.reduce((a, r) => a + r.seconds, 0) / Math.max(1, summary.reports.length))
          .toFixed(2)
      }s per case`,
      `  read       ${formatBytes(bytesIn)} of source files` +
      (skipped.length ? `; ${skipped.length} non-image file(s) skipped` : ""),
      written.length
        ? `  written    ${formatBytes(bytesOut)} for ${formatBytes(f32)} of float32 voxels ` +
          `(${(f32 / Math.max(1, bytesOut)).toFixed(1)}x smaller than MONAI's PersistentDataset)`
        : `  written    nothing new`,
      ...(pruned.length
        ? [`  pruned     ${pruned.length} case(s) without a source: ${staleText(pruned)}`]
        : stale.length
        ? [`  stale      ${stale.length} case(s) without a source (prep --prune removes them)`]
        : []),
      ...failed.map((r) => `  FAILED     ${r.dataset}/${r.case.name} (${r.case.path}): ${r.error}`),
      ...summary.reports.flatMap((r) =>
        (r.outcome?.warnings ?? []).map((w) => `  NOTE       ${r.dataset}/${r.case.name}: ${w}`)
      ),
    ].join("\n"),
  );
  if (interrupt.interrupted) return EXIT_INTERRUPTED;
  return failed.length > 0 || notRun > 0 ? 1 : 0;
}

/** Resolves `--recipe` (a built-in name or a JSON file) with the flag overrides. */
function recipeFor(spec: string, overrides: RecipeOverrides): Recipe {
  try {
    const base = spec.toLowerCase().endsWith(".json") ? readRecipeFile(userPath(spec)) : spec;
    return resolveRecipe(base, overrides);
  } catch (e) {
    if (e instanceof RangeError) throw new UsageError(e.message);
    throw e;
  }
}

const exists = (path: string) => Deno.stat(path).then(() => true, () => false);

/**
 * Splits `[NAME=]PATH[:RECIPE]`, with PATH (and a recipe file) from the user's folder. A
 * PATH that exists as written keeps its colons; otherwise a tail that is no recipe is
 * named as an unknown recipe when the path before it exists.
 */
async function parseDatasetSpec(
  spec: string,
): Promise<{ name?: string; path: string; recipe?: string }> {
  let rest = spec;
  let name: string | undefined;
  const eq = rest.indexOf("=");
  if (eq > 0 && !rest.slice(0, eq).includes("/")) {
    name = rest.slice(0, eq);
    rest = rest.slice(eq + 1);
  }
  if (!rest) throw new UsageError(`--dataset "${spec}" has no path`);
  if (await exists(userPath(rest))) return { name, path: userPath(rest) };
  const colon = rest.lastIndexOf(":");
  const tail = colon > 0 ? rest.slice(colon + 1) : "";
  const head = colon > 0 ? userPath(rest.slice(0, colon)) : userPath(rest);
  if (tail in RECIPES || tail.toLowerCase().endsWith(".json")) {
    if (!(await exists(head))) throw new UsageError(`--dataset ${spec}: ${head} does not exist`);
    const recipe = tail.toLowerCase().endsWith(".json") ? userPath(tail) : tail;
    return { name, path: head, recipe };
  }
  if (tail && !tail.includes("/") && (await exists(head))) {
    const near = closest(tail, Object.keys(RECIPES));
    throw new UsageError(
      `--dataset ${spec}: unknown recipe "${tail}"` + (near ? ` (did you mean ${near}?)` : "") +
        `; recipes: ${Object.keys(RECIPES).join(", ")}, or a recipe .json file`,
    );
  }
  throw new UsageError(`--dataset ${spec}: ${userPath(rest)} does not exist`);
}

function listDatasets(): string {
  const all = [...DATASETS, DATALIST_ADAPTER];
  return [
    "Dataset adapters (--dataset NAME=PATH; the layout is detected when NAME is omitted):",
    ...all.flatMap((d) => [`  ${d.name.padEnd(17)}${d.title}`, `  ${"".padEnd(17)}${d.layout}`]),
  ].join("\n");
}

function defaultDatasetName(input: string): string {
  const abs = userPath(input);
  try {
    if (Deno.statSync(abs).isDirectory) return basename(abs);
  } catch { /* reported later by discovery */ }
  if (abs.toLowerCase().endsWith(".json")) return basename(abs).replace(/\.json$/i, "");
  return basename(dirname(abs));
}

if (import.meta.main) await runMain("prep", main);

export { main };
