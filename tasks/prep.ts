// `deno task prep`: datasets -> Zarr cache.
import { basename, dirname, resolve } from "node:path";
import { discoverCases } from "../prep/discover.ts";
import { resolveRecipe } from "../prep/recipe.ts";
import { runPrep } from "../prep/run_prep.ts";
import type { StorageOptions } from "../prep/process_case.ts";
import type { StorageDtype } from "../cache/quantize.ts";
import { type Compressor, DEFAULT_CHUNK, DEFAULT_COMPRESSOR, toNodeName } from "../cache/format.ts";
import {
  formatBytes,
  formatSeconds,
  pair,
  parse,
  posInt,
  Progress,
  triple,
  UsageError,
} from "./_cli.ts";

const HELP = `deno task prep: preprocess CT volumes into a resampled Zarr v3 cache

Usage:
  deno task prep <file|folder|datalist.json>... --out <cache> [options]

Inputs:
  file            one .nii / .nii.gz image
  folder          scanned recursively for images
  datalist.json   Decathlon/VoCo datalist ({"training": [{"image": "rel/path"}], ...});
                  paths are relative to --base-dir or to the JSON's folder

Options:
  --out DIR             cache folder (created; reruns update it incrementally)
  --dataset-name NAME   group of the cache the cases go into (default: the input's name)
  --recipe NAME         voco-v2 (default: RAS, 1.5 mm, window -175..250, crop > 0, pad 64)
                        voco-v1 (RAS, window, crop > 0.3, resize 384x384x96)
  --spacing S|SX,SY,SZ  target spacing in mm (recipes with a spacing step)
  --window LO,HI        intensity window in HU
  --crop-threshold T    foreground threshold of the crop step
  --min-size N|X,Y,Z    minimum shape of the pad step
  --resize X,Y,Z        output shape of the resize step
  --dtype T             uint16 (default: 1-HU steps, decoded with scale_factor/add_offset),
                        uint8, or float32 (exact)
  --compressor C        blosc-zstd (default), zstd or none
  --level N             compression level (default 3)
  --chunk N             chunk edge in voxels (default ${DEFAULT_CHUNK})
  --workers N           parallel workers (default: number of cores)
  --base-dir DIR        folder datalist paths are relative to
  --quiet               no progress bar
  -h, --help            this help

Examples:
  deno task prep /data/BTCV/imagesTr --out cache --dataset-name btcv
  deno task prep dataset_btcv.json --base-dir /data/BTCV --out cache --workers 2
  deno task prep ct.nii.gz --out cache --recipe voco-v1 --dtype float32
  deno task prep /data/Covid19 --out cache --spacing 1.5,1.5,2 --window -1000,500

Exit code: 0 when every case is in the cache, 1 when any case failed, 2 on bad usage.
`;

async function main(args: string[]): Promise<number> {
  const { values: v, positionals } = parse(args, {
    out: { type: "string" },
    "dataset-name": { type: "string" },
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
    "base-dir": { type: "string" },
    quiet: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  });
  if (v.help) {
    console.log(HELP);
    return 0;
  }
  if (positionals.length === 0) throw new UsageError("No input given");
  if (!v.out) throw new UsageError("--out <cache folder> is required");
  const dtype = v.dtype as StorageDtype;
  if (!["uint16", "uint8", "float32"].includes(dtype)) {
    throw new UsageError(`--dtype must be uint16, uint8 or float32, got "${dtype}"`);
  }
  const compressor = v.compressor as Compressor;
  if (!["blosc-zstd", "zstd", "none"].includes(compressor)) {
    throw new UsageError(`--compressor must be blosc-zstd, zstd or none, got "${compressor}"`);
  }
  const level = Number(v.level);
  if (!Number.isInteger(level) || level < 1 || level > 22) {
    throw new UsageError(`--level must be an integer 1..22, got "${v.level}"`);
  }
  const threshold = v["crop-threshold"] === undefined ? undefined : Number(v["crop-threshold"]);
  if (threshold !== undefined && !Number.isFinite(threshold)) {
    throw new UsageError(`--crop-threshold takes a number, got "${v["crop-threshold"]}"`);
  }
  let recipe;
  try {
    recipe = resolveRecipe(String(v.recipe), {
      spacingMm: triple("--spacing", v.spacing as string | undefined),
      windowHu: pair("--window", v.window as string | undefined),
      cropThreshold: threshold,
      minShape: triple("--min-size", v["min-size"] as string | undefined),
      resizeShape: triple("--resize", v.resize as string | undefined),
    });
  } catch (e) {
    if (e instanceof RangeError) throw new UsageError(e.message);
    throw e;
  }
  const storage: StorageOptions = {
    dtype,
    compressor,
    level,
    chunk: posInt("--chunk", v.chunk as string)!,
  };
  const workers = posInt("--workers", v.workers as string | undefined);
  const dataset = toNodeName(String(v["dataset-name"] ?? defaultDatasetName(positionals[0])));
  const cases = await discoverCases(positionals, { baseDir: v["base-dir"] as string | undefined });
  if (cases.length === 0) {
    console.error(`No images (.nii, .nii.gz) found in ${positionals.join(", ")}`);
    return 1;
  }
  const out = resolve(String(v.out));
  console.error(
    `prep: ${cases.length} case(s) -> ${out} [${dataset}], recipe ${recipe.name}, ` +
      `${dtype}, ${compressor}`,
  );
  const progress = new Progress(cases.length, Boolean(v.quiet));
  const abort = new AbortController();
  const onSigint = () => {
    abort.abort();
    console.error("\nInterrupted: finishing no new case; the cache keeps every completed case.");
  };
  Deno.addSignalListener("SIGINT", onSigint);
  let summary;
  try {
    summary = await runPrep(cases, {
      out,
      dataset,
      recipe,
      storage,
      workers,
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
              : `${r.status} ${r.case.name} (${r.seconds.toFixed(2)}s)`,
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
  const notRun = cases.length - summary.reports.length;
  console.log(
    [
      `prep summary (${out}, dataset ${dataset}, recipe ${recipe.name})`,
      `  cases      ${cases.length}: ${count("written")} written, ${
        count("unchanged")
      } unchanged, ` +
      `${failed.length} failed${notRun ? `, ${notRun} not run (interrupted)` : ""}`,
      `  time       ${formatSeconds(summary.seconds)} wall, ` +
      `${
        (summary.reports.reduce((a, r) => a + r.seconds, 0) / Math.max(1, summary.reports.length))
          .toFixed(2)
      }s per case`,
      `  read       ${formatBytes(bytesIn)} of source files`,
      written.length
        ? `  written    ${formatBytes(bytesOut)} for ${formatBytes(f32)} of float32 voxels ` +
          `(${(f32 / Math.max(1, bytesOut)).toFixed(1)}x smaller than MONAI's PersistentDataset)`
        : `  written    nothing new`,
      ...failed.map((r) => `  FAILED     ${r.case.path}: ${r.error}`),
    ].join("\n"),
  );
  return failed.length > 0 || notRun > 0 ? 1 : 0;
}

function defaultDatasetName(input: string): string {
  const abs = resolve(input);
  try {
    if (Deno.statSync(abs).isDirectory) return basename(abs);
  } catch { /* reported later by discovery */ }
  if (abs.toLowerCase().endsWith(".json")) return basename(abs).replace(/\.json$/i, "");
  return basename(dirname(abs));
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`prep: ${e.message}\nRun "deno task prep --help" for usage.`);
      Deno.exit(2);
    }
    console.error(`prep: ${(e as Error).message}`);
    Deno.exit(1);
  }
}

export { main };
