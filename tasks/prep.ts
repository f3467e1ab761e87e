// `deno task prep`: datasets -> Zarr cache.
import { DATALIST_ADAPTER, DATASETS } from "../prep/pipeline/datasets.ts";
import {
  planPrep,
  type PlanResult,
  type PrepPlan,
  runPlan,
  type StaleCase,
} from "../prep/pipeline/plan.ts";
import type { StorageDtype } from "../cache/format/quantize.ts";
import {
  type Compressor,
  COMPRESSORS,
  DEFAULT_CHUNK,
  DEFAULT_COMPRESSOR,
  DEFAULT_INNER_CHUNK,
  DEFAULT_LAYOUT,
  DEFAULT_LEVEL,
  type Layout,
  LAYOUTS,
} from "../cache/format/format.ts";
import {
  EXIT_INTERRUPTED,
  formatBytes,
  formatSeconds,
  onInterrupt,
  runMain,
  UsageError,
} from "../cli/run.ts";
import { Progress, StatusLine } from "../cli/progress.ts";
import { defineCommand, expandTriple, parseCommand, userCwd } from "../cli/args.ts";

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
      help: `${COMPRESSORS.join(", ")}: the first four are standard\n` +
        `Zarr codecs that zarr-python and tensorstore read; lorenzo (blosc-zstd after a\n` +
        `3-D prediction, about 30 % smaller) is read by this toolkit and the NumPy lines\n` +
        `in cache/README.md only`,
    },
    level: {
      type: "number",
      integer: true,
      help: `compression level (default ${DEFAULT_LEVEL}; Blosc 0..9 as in c-blosc, 9 ` +
        `smallest and\nslowest; zstd 1..22)`,
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
  footer: `Exit code: 0 when every case is in the cache, 1 when any case failed (the others are
written), 2 on bad usage or when no input gave a case (nothing done), 130 when stopped with
Ctrl-C (cases already written stay; a second Ctrl-C quits at once).`,
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
  if (positionals.length === 0 && v.dataset.length === 0) {
    throw new UsageError("No input given (files, folders, datalists or --dataset)");
  }
  if (!v.out) throw new UsageError("--out <cache folder> is required (for example --out ct.zarr)");
  // Scanning a large tree (LIDC-IDRI: 244k files) takes a while: say how far it is.
  const status = new StatusLine(v.quiet);
  const plan = await planPrep({
    out: v.out,
    inputs: positionals,
    datasets: v.dataset,
    datasetName: v["dataset-name"],
    baseDir: v["base-dir"],
    recipe: v.recipe,
    overrides: {
      spacingMm: expandTriple(v.spacing),
      windowHu: v.window as [number, number] | undefined,
      cropThreshold: v["crop-threshold"],
      minShape: expandTriple(v["min-size"]),
      resizeShape: expandTriple(v.resize),
    },
    storage: {
      dtype: v.dtype as StorageDtype,
      compressor: v.compressor as Compressor,
      level: v.level,
      chunk: v.chunk,
      layout: v.layout as Layout | undefined,
    },
    shard: v.shard,
    shards: v.shards,
    prune: v.prune,
    force: v.force,
    cwd: userCwd(),
    onScan: (what, p) =>
      p
        ? status.update(
          `prep: scanning ${what}: ${p.files} files` +
            (p.headers ? `, ${p.headers} DICOM headers read` : ""),
        )
        : status.end(),
  });
  printPlan(plan);
  if (nothingToRead(plan)) return 2; // nothing was done: no input gave a case
  const progress = new Progress(plan.items.length, v.quiet);
  const abort = new AbortController();
  const interrupt = onInterrupt(() => {
    abort.abort();
    console.error(
      "\nInterrupted: starting no new case; the cache keeps every completed case " +
        "(Ctrl-C again to quit at once).",
    );
  });
  let result;
  try {
    result = await runPlan(plan, {
      workers: v.workers,
      decodeThreads: v["decode-threads"],
      maxVoxels: v["max-voxels"],
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
  console.log(summaryText(plan, result));
  if (interrupt.interrupted) return EXIT_INTERRUPTED;
  const failed = result.summary.reports.some((r) => r.status === "failed");
  return failed || result.summary.reports.length < plan.items.length ? 1 : 0;
}

/** The plan's messages, before the run: groups, skips, stale cases, notes. */
function printPlan(plan: PrepPlan): void {
  for (const note of plan.notes) console.error(`prep: ${note}`);
  // One message per input that gave nothing, with the layout its adapter expects.
  for (const g of plan.groups) {
    if (g.cases > 0) continue;
    console.error(
      `prep: no images (.nii, .nii.gz, .mha, .mhd, DICOM) found in ${g.what}` +
        (g.layout ? `; expected layout: ${g.layout}` : ""),
    );
  }
  if (nothingToRead(plan)) {
    for (const c of plan.items) console.error(`prep: ${c.path}: ${c.error}`);
    return;
  }
  if (plan.shard) {
    console.error(
      `prep: shard ${plan.shard.index}/${plan.shard.count} (from ${plan.shard.from}): ` +
        `${plan.items.length} of ${plan.totalCases} case(s)`,
    );
  }
  for (const g of plan.groups) {
    console.error(
      `prep: ${g.cases} case(s) from ${g.what} -> ${plan.out} [${g.dataset}], recipe ` +
        g.recipe.name,
    );
  }
  if (plan.skipped.length > 0) {
    console.error(
      `prep: ${plan.skipped.length} file(s) skipped (not CT images, or not regular files), ` +
        `e.g. ${plan.skipped.slice(0, 3).map((f) => `${f.path}: ${f.reason}`).join("; ")}`,
    );
  }
  if (plan.stale.length > 0) {
    console.error(
      `prep: ${plan.stale.length} cached case(s) no input gives any more (source removed or ` +
        `renamed?): ${staleText(plan.stale)}; ` +
        (plan.prune ? "--prune removes them after the run" : "prep --prune removes them"),
    );
  }
}

/** No input gave a readable case (every shard sees the same). */
function nothingToRead(plan: PrepPlan): boolean {
  return plan.totalCases === 0 || (plan.items.length > 0 && plan.items.every((c) => c.error));
}

function staleText(list: readonly StaleCase[]): string {
  return list.slice(0, 5).map((c) => `${c.dataset}/${c.name}${c.source ? ` <- ${c.source}` : ""}`)
    .join(", ") + (list.length > 5 ? `, ... (${list.length - 5} more)` : "");
}

/** The one-screen summary at the end of a run. */
function summaryText(plan: PrepPlan, { summary, pruned }: PlanResult): string {
  const reports = summary.reports;
  const count = (s: string) => reports.filter((r) => r.status === s).length;
  const failed = reports.filter((r) => r.status === "failed");
  const written = reports.filter((r) => r.status === "written");
  const bytesIn = reports.reduce((a, r) => a + (r.outcome?.bytesIn ?? 0), 0);
  const bytesOut = written.reduce((a, r) => a + (r.outcome?.bytesOut ?? 0), 0);
  const f32 = written.reduce(
    (a, r) => a + 4 * (r.outcome?.shape ?? [0, 0, 0]).reduce((x, y) => x * y, 1),
    0,
  );
  const notRun = plan.items.length - reports.length;
  const perGroup = plan.groups.length > 1
    ? plan.groups.map((g) => {
      const rs = reports.filter((r) => r.dataset === g.dataset);
      const n = (s: string) => rs.filter((r) => r.status === s).length;
      return `  ${g.dataset.padEnd(10)} ${g.cases} case(s), recipe ${g.recipe.name}: ` +
        `${n("written")} written, ${n("unchanged")} unchanged, ${n("failed")} failed`;
    })
    : [];
  const perCase = reports.reduce((a, r) => a + r.seconds, 0) / Math.max(1, reports.length);
  return [
    `prep summary (${plan.out}, ${
      plan.groups.map((g) => `${g.dataset}: ${g.recipe.name}`).join(", ")
    })`,
    `  cases      ${plan.items.length}: ${count("written")} written, ${
      count("unchanged")
    } unchanged, ${failed.length} failed${notRun ? `, ${notRun} not run (interrupted)` : ""}`,
    ...perGroup,
    `  time       ${formatSeconds(summary.seconds)} wall, ${perCase.toFixed(2)}s per case`,
    `  read       ${formatBytes(bytesIn)} of source files` +
    (plan.skipped.length ? `; ${plan.skipped.length} non-image file(s) skipped` : ""),
    written.length
      ? `  written    ${formatBytes(bytesOut)} for ${formatBytes(f32)} of float32 voxels ` +
        `(${
          (f32 / Math.max(1, bytesOut)).toFixed(1)
        }x smaller; PersistentDataset writes at least those)`
      : `  written    nothing new`,
    ...(pruned.length
      ? [`  pruned     ${pruned.length} case(s) without a source: ${staleText(pruned)}`]
      : plan.stale.length
      ? [`  stale      ${plan.stale.length} case(s) without a source (prep --prune removes them)`]
      : []),
    ...failed.map((r) => `  FAILED     ${r.dataset}/${r.case.name} (${r.case.path}): ${r.error}`),
    ...reports.flatMap((r) =>
      (r.outcome?.warnings ?? []).map((w) => `  NOTE       ${r.dataset}/${r.case.name}: ${w}`)
    ),
  ].join("\n");
}

function listDatasets(): string {
  const all = [...DATASETS, DATALIST_ADAPTER];
  return [
    "Dataset adapters (--dataset NAME=PATH; the layout is detected when NAME is omitted):",
    ...all.flatMap((d) => [`  ${d.name.padEnd(17)}${d.title}`, `  ${"".padEnd(17)}${d.layout}`]),
  ].join("\n");
}

if (import.meta.main) await runMain("prep", main);

export { main };
