// `deno task prep`: datasets -> Zarr cache.
import { basename, dirname, resolve } from "node:path";
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
import type { StorageOptions } from "../prep/pipeline/process_case.ts";
import type { StorageDtype } from "../cache/quantize.ts";
import {
  type Compressor,
  COMPRESSORS,
  DEFAULT_CHUNK,
  DEFAULT_COMPRESSOR,
  toNodeName,
} from "../cache/format.ts";
import {
  formatBytes,
  formatSeconds,
  pair,
  parse,
  posInt,
  Progress,
  runMain,
  StatusLine,
  triple,
  UsageError,
} from "./_cli.ts";

const HELP = `deno task prep: preprocess CT volumes into a resampled Zarr v3 cache

Usage:
  deno task prep <file|folder|datalist.json>... --out <cache> [options]
  deno task prep --dataset [NAME=]PATH[:RECIPE]... --out <cache> [options]

Inputs:
  file            one image: .nii, .nii.gz, .mha, .mhd (+ its .raw/.zraw)
  folder          scanned recursively: NIfTI, MetaImage and DICOM (one case per CT series;
                  other modalities, localizers and files without pixels are skipped)
  datalist.json   Decathlon/VoCo datalist ({"training": [{"image": "rel/path"}], ...});
                  paths are relative to --base-dir or to the JSON's folder
  --dataset SPEC  a dataset in its public layout, its own group in the cache; repeatable.
                  NAME is an adapter (see --list-datasets) or, when it is not one, the
                  group name; without a known NAME the layout is detected. :RECIPE picks
                  a recipe (name or .json) for this dataset only.

Options:
  --out DIR             cache folder (created; reruns update it incrementally)
  --dataset-name NAME   group of the positional inputs' cases (default: the input's name)
  --list-datasets       print the dataset adapters and the layout each expects
  --recipe NAME|FILE    voco-v2 (default: RAS, 1.5 mm, window -175..250, crop > 0, pad 64)
                        voco-v1 (RAS, window, crop > 0.3, resize 384x384x96)
                        chest   (RAS, 1.25x1.25x5 mm, window -1000..500, crop > 0, pad 64)
                        or a JSON file: {"name": "n", "extends": "voco-v2", "spacing": 2}
                        or {"name": "n", "steps": [{"op": "orient", "axcodes": "RAS"}, ...]}
  --spacing S|SX,SY,SZ  target spacing in mm (recipes with a spacing step)
  --window LO,HI        intensity window in HU
  --crop-threshold T    foreground threshold of the crop step
  --min-size N|X,Y,Z    minimum shape of the pad step
  --resize X,Y,Z        output shape of the resize step
  --dtype T             uint16 (default: 1-HU steps, decoded with scale_factor/add_offset),
                        uint8, or float32 (exact)
  --compressor C        blosc-zstd (default), blosc-lz4, zstd or none
  --level N             compression level (default 3)
  --chunk N             chunk edge in voxels (default ${DEFAULT_CHUNK})
  --workers N           parallel workers (default: number of cores)
  --decode-threads N    threads per worker for compressed DICOM frames (JPEG 2000, ...)
                        (default: cores / workers, so a single series uses every core)
  --max-voxels N        most voxels a recipe step may make for one case (default 2^29,
                        2 GiB as float32); a case beyond it fails instead of filling memory
  --base-dir DIR        folder datalist paths are relative to
  --quiet               no progress bar
  -h, --help            this help

Examples:
  deno task prep /data/BTCV/imagesTr --out cache --dataset-name btcv
  deno task prep --dataset btcv=/data/BTCV --dataset luna16=/data/Luna16 --out cache
  deno task prep --dataset lidc=/data/LIDC-IDRI:chest --dataset /data/TotalSegmentator --out cache
  deno task prep dataset_btcv.json --base-dir /data/BTCV --out cache --workers 2
  deno task prep /data/dicom/patient1 --out cache --recipe voco-v1 --dtype float32
  deno task prep /data/Covid19 --out cache --recipe my_recipe.json

Exit code: 0 when every case is in the cache, 1 when any case failed, 2 on bad usage.
`;

async function main(args: string[]): Promise<number> {
  const { values: v, positionals } = parse(args, {
    out: { type: "string" },
    dataset: { type: "string", multiple: true },
    "dataset-name": { type: "string" },
    "list-datasets": { type: "boolean", default: false },
    recipe: { type: "string", default: "voco-v2" },
    spacing: { type: "string" },
    window: { type: "string" },
    "crop-threshold": { type: "string" },
    "min-size": { type: "string" },
    resize: { type: "string" },
    dtype: { type: "string", default: "uint16" },
    compressor: { type: "string", default: DEFAULT_COMPRESSOR },
    level: { type: "string", default: "3" },
    chunk: { type: "string", default: String(DEFAULT_CHUNK) },
    workers: { type: "string" },
    "decode-threads": { type: "string" },
    "max-voxels": { type: "string" },
    "base-dir": { type: "string" },
    quiet: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  });
  if (v.help) {
    console.log(HELP);
    return 0;
  }
  if (v["list-datasets"]) {
    console.log(listDatasets());
    return 0;
  }
  const specs = (v.dataset as string[] | undefined) ?? [];
  if (positionals.length === 0 && specs.length === 0) {
    throw new UsageError("No input given (files, folders, datalists or --dataset)");
  }
  if (!v.out) throw new UsageError("--out <cache folder> is required");
  const dtype = v.dtype as StorageDtype;
  if (!["uint16", "uint8", "float32"].includes(dtype)) {
    throw new UsageError(`--dtype must be uint16, uint8 or float32, got "${dtype}"`);
  }
  const compressor = v.compressor as Compressor;
  if (!COMPRESSORS.includes(compressor)) {
    throw new UsageError(
      `--compressor must be ${COMPRESSORS.join(", ")}, got "${compressor}"`,
    );
  }
  const level = Number(v.level);
  if (!Number.isInteger(level) || level < 1 || level > 22) {
    throw new UsageError(`--level must be an integer 1..22, got "${v.level}"`);
  }
  const threshold = v["crop-threshold"] === undefined ? undefined : Number(v["crop-threshold"]);
  if (threshold !== undefined && !Number.isFinite(threshold)) {
    throw new UsageError(`--crop-threshold takes a number, got "${v["crop-threshold"]}"`);
  }
  const overrides: RecipeOverrides = {
    spacingMm: triple("--spacing", v.spacing as string | undefined),
    windowHu: pair("--window", v.window as string | undefined),
    cropThreshold: threshold,
    minShape: triple("--min-size", v["min-size"] as string | undefined),
    resizeShape: triple("--resize", v.resize as string | undefined),
  };
  const recipe = recipeFor(String(v.recipe), overrides);
  const storage: StorageOptions = {
    dtype,
    compressor,
    level,
    chunk: posInt("--chunk", v.chunk as string)!,
  };
  const workers = posInt("--workers", v.workers as string | undefined);
  const decodeThreads = posInt("--decode-threads", v["decode-threads"] as string | undefined);
  const maxVoxels = posInt("--max-voxels", v["max-voxels"] as string | undefined);

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
  const status = new StatusLine(Boolean(v.quiet));
  const scanning = (what: string) => (p: ScanProgress) =>
    status.update(
      `prep: scanning ${what}: ${p.files} files` +
        (p.headers ? `, ${p.headers} DICOM headers read` : ""),
    );
  if (positionals.length > 0) {
    const dataset = toNodeName(String(v["dataset-name"] ?? defaultDatasetName(positionals[0])));
    const found = await discoverInputs(positionals, {
      baseDir: v["base-dir"] as string | undefined,
      onProgress: scanning(positionals.join(", ")),
    });
    status.end();
    add(dataset, recipe, found, positionals.join(", "));
  }
  for (const spec of specs) {
    const d = parseDatasetSpec(spec);
    try {
      await Deno.stat(d.path);
    } catch {
      throw new UsageError(`--dataset ${spec}: ${d.path} does not exist`);
    }
    let adapter = d.name ? datasetAdapter(d.name) : undefined;
    if (!adapter) {
      adapter = await detectDataset(d.path);
      console.error(
        `prep: ${d.path}: detected ${adapter.name} (${adapter.title})` +
          (d.name ? `, cached as group "${d.name}"` : ""),
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
  const out = resolve(String(v.out));
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
  const progress = new Progress(items.length, Boolean(v.quiet));
  const abort = new AbortController();
  const onSigint = () => {
    abort.abort();
    console.error("\nInterrupted: finishing no new case; the cache keeps every completed case.");
  };
  Deno.addSignalListener("SIGINT", onSigint);
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
            r.status === "failed"
              ? `FAILED ${r.case.path}: ${r.error}`
              : Deno.stderr.isTerminal()
              ? undefined
              : `${r.status} ${r.dataset}/${r.case.name} (${r.seconds.toFixed(2)}s)`,
          );
        }
      },
    });
  } finally {
    Deno.removeSignalListener("SIGINT", onSigint);
    progress.end();
  }
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
      ...failed.map((r) => `  FAILED     ${r.dataset}/${r.case.name} (${r.case.path}): ${r.error}`),
      ...summary.reports.flatMap((r) =>
        (r.outcome?.warnings ?? []).map((w) => `  NOTE       ${r.dataset}/${r.case.name}: ${w}`)
      ),
    ].join("\n"),
  );
  return failed.length > 0 || notRun > 0 ? 1 : 0;
}

/** Resolves `--recipe` (a built-in name or a JSON file) with the flag overrides. */
function recipeFor(spec: string, overrides: RecipeOverrides): Recipe {
  try {
    const base = spec.toLowerCase().endsWith(".json") ? readRecipeFile(spec) : spec;
    return resolveRecipe(base, overrides);
  } catch (e) {
    if (e instanceof RangeError) throw new UsageError(e.message);
    throw e;
  }
}

/** Splits `[NAME=]PATH[:RECIPE]`. */
function parseDatasetSpec(spec: string): { name?: string; path: string; recipe?: string } {
  let rest = spec;
  let name: string | undefined;
  const eq = rest.indexOf("=");
  if (eq > 0 && !rest.slice(0, eq).includes("/")) {
    name = rest.slice(0, eq);
    rest = rest.slice(eq + 1);
  }
  let recipe: string | undefined;
  const colon = rest.lastIndexOf(":");
  if (colon > 0) {
    const tail = rest.slice(colon + 1);
    if (tail in RECIPES || tail.toLowerCase().endsWith(".json")) {
      recipe = tail;
      rest = rest.slice(0, colon);
    }
  }
  if (!rest) throw new UsageError(`--dataset "${spec}" has no path`);
  return { name, path: rest, recipe };
}

function listDatasets(): string {
  const all = [...DATASETS, DATALIST_ADAPTER];
  return [
    "Dataset adapters (--dataset NAME=PATH; the layout is detected when NAME is omitted):",
    ...all.flatMap((d) => [`  ${d.name.padEnd(17)}${d.title}`, `  ${"".padEnd(17)}${d.layout}`]),
  ].join("\n");
}

function defaultDatasetName(input: string): string {
  const abs = resolve(input);
  try {
    if (Deno.statSync(abs).isDirectory) return basename(abs);
  } catch { /* reported later by discovery */ }
  if (abs.toLowerCase().endsWith(".json")) return basename(abs).replace(/\.json$/i, "");
  return basename(dirname(abs));
}

if (import.meta.main) await runMain("prep", main);

export { main };
