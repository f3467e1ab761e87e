// `deno task bench prep`: preprocessing speed on a realistic clinical-size volume.
import { join } from "node:path";
import { readNifti } from "../prep/formats/read_nifti.ts";
import { writeNifti } from "../prep/synthetic/write_nifti.ts";
import { resampleToGrid } from "../prep/transforms/resample.ts";
import { makePhantom } from "../prep/synthetic/phantom.ts";
import { resolveRecipe } from "../prep/recipes/recipe.ts";
import { runPrep } from "../prep/pipeline/run_prep.ts";
import { discoverCases } from "../prep/pipeline/discover.ts";
import { processCase } from "../prep/pipeline/process_case.ts";
import { settingsHash } from "../cache/format/fingerprint.ts";
import { writeMetaImage } from "../prep/synthetic/write_metaimage.ts";
import { writeDicomSeries } from "../prep/synthetic/write_dicom.ts";
import type { StorageOptions } from "../prep/pipeline/process_case.ts";
import { formatBytes, runMain } from "./_cli.ts";
import { defineCommand, parseCommand } from "./_args.ts";
import { type BackendName, BACKENDS } from "../train/backend.ts";
import {
  DEFAULT_CHUNK,
  DEFAULT_INNER_CHUNK,
  DEFAULT_LAYOUT,
  type Layout,
  LAYOUTS,
} from "../cache/format/format.ts";
import { verifyCache } from "../cache/inspect/verify.ts";
import { benchPretrain } from "./_bench_pretrain.ts";
import { benchModel } from "./_bench_model.ts";
import { benchCache, benchCrops } from "./_bench_cache.ts";

const PREP_HELP = `Builds (once, in .tmp/bench/) a clinical-size CT (512x512x270 int16,
0.7x0.7x1.25 mm, .nii.gz) by upsampling ../shared/data/ct/example_ct.nii.gz (or a phantom
when absent), then times one case in-process stage by stage and whole runs with each
--workers count, and reports seconds per volume and peak RSS. Then the same volume as
.mhd + .raw and as DICOM series (uncompressed, JPEG 2000 lossless and HTJ2K lossless, the
compressed ones decoded in 1 thread and in one per core), one case each in-process,
against the .nii.gz.`;

const MODEL_HELP =
  `The VoCo backbone (Swin transformer + five encoders) and head with random weights:
forward time per block and for the whole model, then training steps (forward, backward,
AdamW) with the number of live tensors after each (the first step adds the optimiser's
two moments per parameter, which stay), and peak RSS.`;

const CACHE_HELP =
  `The clinical volume of "bench prep", prepped with voco-v2 and stored as uint16 on disk in
each layout (sharded, chunked), inner chunk edge (64, 48, 32) and compressor (blosc-zstd,
blosc-lz4, zstd, none): files, cache size (and how much smaller than float32, what MONAI's
PersistentDataset stores), write time, and random 192 x 192 x 64 crop reads (what the
voco-v2 sampler reads per volume): best and median time and the bytes read per crop. Then the same crops of the shared example
CT read with CacheReader from a folder and over loopback HTTP from cache serve: ms per
crop, bytes and requests per crop.`;

/** The `--backend` flag of the model and pre-training benchmarks. */
const BENCH_BACKEND = {
  type: "string",
  arg: "B",
  choices: BACKENDS.filter((b) => b !== "auto"),
  default: "wasm",
  help: BACKENDS.filter((b) => b !== "auto").join(", "),
} as const;

/** The command line of `deno task bench`. */
export const BENCH = defineCommand({
  name: "bench",
  summary: "benchmarks (not timed unit tests)",
  subcommands: {
    prep: {
      name: "bench prep",
      summary: "preprocessing speed on a clinical-size volume, per stage and per format",
      description: PREP_HELP,
      flags: {
        copies: {
          type: "number",
          integer: true,
          min: 0,
          default: 4,
          help: "volumes of each whole run (0: formats only)",
        },
        workers: {
          type: "numbers",
          integer: true,
          min: 1,
          arg: "N,N,...",
          default: [1, 2],
          help: "worker counts of the whole runs",
        },
        "skip-formats": { type: "boolean", help: "leave out the .mhd and DICOM copies" },
        layout: {
          type: "string",
          arg: "L",
          choices: LAYOUTS,
          default: DEFAULT_LAYOUT,
          help: "cache layout of the runs",
        },
      },
      examples: ["bench prep --copies 4 --workers 1,2", "bench prep --copies 0 --workers 1"],
    },
    model: {
      name: "bench model",
      summary: "forward and training-step time of the VoCo backbone",
      description: MODEL_HELP,
      flags: {
        backend: BENCH_BACKEND,
        size: { type: "number", integer: true, min: 32, default: 64, help: "crop edge in voxels" },
        batch: { type: "number", integer: true, min: 1, default: 2, help: "crops per batch" },
        feature: {
          type: "number",
          integer: true,
          min: 12,
          default: 12,
          help: "feature size (48 in VoCo's SwinUNETR-B)",
        },
        steps: { type: "number", integer: true, min: 0, default: 2, help: "training steps" },
      },
      examples: ["bench model --backend wasm"],
    },
    pretrain: {
      name: "bench pretrain",
      summary: "seconds per VoCo v2 training step on a phantom cache, data wait, memory",
      description:
        `Preps four phantoms into a voco-v2 cache, then runs real training steps (sampler in
workers, backbone, both heads, the losses, AdamW) and prints the time per step once warm,
samples/s, the share of each step spent waiting for data, and peak RSS. The default is
the reference measurement's setting: feature size 12, batch 2, 1 random + 9 base crops per
volume (20 crops of 64³); PyTorch 1.13 takes 95 s per step on this 2-core machine.`,
      flags: {
        backend: BENCH_BACKEND,
        steps: { type: "number", integer: true, min: 1, default: 3, help: "training steps" },
        batch: { type: "number", integer: true, min: 1, default: 2, help: "volumes per step" },
        sw: { type: "number", integer: true, min: 1, default: 1, help: "random crops per volume" },
        grid: { type: "number", integer: true, min: 2, default: 3, help: "base crops per side" },
        feature: { type: "number", integer: true, min: 12, default: 12, help: "feature size" },
        head: {
          type: "number",
          integer: true,
          min: 1,
          default: 1024,
          help: "projection head width (1024: the v2 recipe's)",
        },
        "crop-batch": {
          type: "number",
          integer: true,
          min: 1,
          help: "crops per backbone pass (default: planned from the backend's memory)",
        },
        workers: { type: "number", integer: true, min: 0, default: 2, help: "sample workers" },
      },
      examples: [
        "bench pretrain --backend wasm --steps 3",
        "bench pretrain --backend wasm --feature 48 --batch 4 --sw 2 --grid 3 --steps 2",
      ],
    },
    cache: {
      name: "bench cache",
      summary: "size, write and read speed of each chunk compressor",
      description: CACHE_HELP,
      flags: {
        chunk: {
          type: "number",
          integer: true,
          min: 1,
          help: "only the settings with this chunk edge (default: all)",
        },
        crops: {
          type: "number",
          integer: true,
          min: 0,
          default: 20,
          help: "random 192 x 192 x 64 crop reads per setting",
        },
        "big-crops": {
          type: "number",
          integer: true,
          min: 0,
          default: 30,
          help: "random 192 x 192 x 64 crops read from a folder and over loopback HTTP",
        },
        "crops-only": {
          type: "boolean",
          help: "only the 192 x 192 x 64 crop reads (folder and HTTP), not the compressors",
        },
      },
      examples: ["bench cache --crops 20", "bench cache --chunk 48 --crops 50"],
    },
  },
  examples: ["bench prep --copies 4 --workers 1,2", "bench model --backend wasm", "bench cache"],
});

const BENCH_DIR = new URL("../.tmp/bench/", import.meta.url).pathname;
const SHARED_CT = new URL("../../shared/data/ct/example_ct.nii.gz", import.meta.url).pathname;

function peakRss(): number {
  const status = Deno.readTextFileSync("/proc/self/status");
  const m = status.match(/VmHWM:\s+(\d+) kB/);
  return m ? Number(m[1]) * 1024 : Deno.memoryUsage().rss;
}

async function clinicalVolume(): Promise<string> {
  const path = join(BENCH_DIR, "clinical_512x512x270.nii.gz");
  try {
    await Deno.stat(path);
    return path;
  } catch { /* build it */ }
  await Deno.mkdir(BENCH_DIR, { recursive: true });
  console.error("bench: building the clinical-size test volume (once) ...");
  let src;
  try {
    src = readNifti(await Deno.readFile(SHARED_CT)).volume;
  } catch {
    src = makePhantom({ shape: [122, 101, 112], spacingMm: [3, 3, 3] });
  }
  const spacing = [0.7, 0.7, 1.25];
  const affine = src.affine.map((r) => r.slice());
  for (let c = 0; c < 3; c++) {
    const n = Math.hypot(affine[0][c], affine[1][c], affine[2][c]);
    for (let r = 0; r < 3; r++) affine[r][c] *= spacing[c] / n;
  }
  const big = resampleToGrid(src, { shape: [512, 512, 270], affine });
  // Add scanner-like noise so the file compresses like a real CT, not a smooth one.
  let seed = 7;
  for (let i = 0; i < big.data.length; i++) {
    seed = (seed * 1664525 + 1013904223) >>> 0;
    big.data[i] = Math.round(big.data[i] + ((seed >>> 8) % 3) - 1);
  }
  const bytes = writeNifti(big, { dtype: "int16" });
  await Deno.writeFile(path, bytes);
  console.error(`bench: wrote ${path} (${formatBytes(bytes.length)})`);
  return path;
}

/** Options of {@linkcode benchPrep}, as `bench prep` parses them. */
interface BenchPrepOptions {
  copies: number;
  workers: number[];
  "skip-formats": boolean;
  layout: string;
}

async function benchPrep(options: BenchPrepOptions): Promise<void> {
  const { copies, workers: workerCounts } = options;
  const file = await clinicalVolume();
  const size = (await Deno.stat(file)).size;
  const recipe = resolveRecipe("voco-v2");
  const storage = {
    dtype: "uint16",
    compressor: "blosc-zstd",
    level: 3,
    chunk: options.layout === "sharded" ? DEFAULT_INNER_CHUNK : DEFAULT_CHUNK,
    layout: options.layout as Layout,
  } as const;

  // Stage by stage, in this thread.
  const { gunzip } = await import("../prep/formats/decompress.ts");
  const { applyRecipe } = await import("../prep/recipes/recipe.ts");
  const raw = await Deno.readFile(file);
  const stages: Record<string, number[]> = { gunzip: [], read: [], recipe: [], case: [] };
  for (let rep = 0; rep < 3; rep++) {
    let t = performance.now();
    gunzip(raw);
    stages.gunzip.push(performance.now() - t);
    t = performance.now();
    const img = readNifti(raw);
    stages.read.push(performance.now() - t);
    t = performance.now();
    applyRecipe(img.volume, recipe);
    stages.recipe.push(performance.now() - t);
    const dir = await Deno.makeTempDir({ prefix: "voco-bench-" });
    t = performance.now();
    await processCase({
      path: file,
      files: [file],
      format: "nifti",
      source: "clinical.nii.gz",
      stagingDir: dir,
      recipe,
      storage,
      settingsHash: await settingsHash({ recipe, storage }),
    });
    stages.case.push(performance.now() - t);
    await Deno.remove(dir, { recursive: true });
  }
  const best = (a: number[]) => Math.min(...a) / 1000;
  console.log(
    `prep benchmark: ${file} (${formatBytes(size)}), recipe voco-v2, uint16 blosc-zstd, ` +
      `${storage.layout}`,
  );
  console.log(`  in-process, best of 3:`);
  console.log(`    gunzip (native zlib)           ${best(stages.gunzip).toFixed(2)} s`);
  console.log(`    read NIfTI (gunzip + decode)   ${best(stages.read).toFixed(2)} s`);
  console.log(`    recipe (RAS, 1.5 mm, window, crop, pad) ${best(stages.recipe).toFixed(2)} s`);
  console.log(`    whole case (read, hash, recipe, write) ${best(stages.case).toFixed(2)} s`);
  console.log(`    peak RSS so far                ${formatBytes(peakRss())}`);

  const inputs = join(BENCH_DIR, "copies");
  await Deno.mkdir(inputs, { recursive: true });
  for (let i = 0; i < copies; i++) {
    const p = join(inputs, `ct${i}.nii.gz`);
    await Deno.remove(p).catch(() => {});
    await Deno.link(file, p).catch(() => Deno.copyFile(file, p));
  }
  const cases = await discoverCases([inputs]);
  for (const w of copies > 0 ? workerCounts : []) {
    const out = await Deno.makeTempDir({ prefix: "voco-bench-cache-" });
    const s = await runPrep(cases, { out, dataset: "bench", recipe, storage, workers: w });
    const failed = s.reports.filter((r) => r.status === "failed");
    if (failed.length) throw new Error(`bench run failed: ${failed[0].error}`);
    console.log(
      `  ${copies} volumes, ${w} worker(s): ${s.seconds.toFixed(2)} s wall, ` +
        `${(s.seconds / copies).toFixed(2)} s per volume, peak RSS ${formatBytes(peakRss())}`,
    );
    if (w === workerCounts[0]) {
      const v = await verifyCache(out);
      const chunks = v.checks.reduce((a, c) => a + c.chunks, 0);
      const f32 = s.reports.reduce(
        (a, r) => a + 4 * (r.outcome?.shape ?? [0]).reduce((x, y) => x * y, 1),
        0,
      );
      console.log(
        `    cache ${formatBytes(v.bytes)} (${
          (f32 / v.bytes).toFixed(1)
        }x smaller than float32); ` +
          `cache verify: ${chunks} chunks in ${v.seconds.toFixed(2)} s, ` +
          `${(v.bytes / 1e6 / v.seconds).toFixed(0)} MB/s of stored bytes` +
          (v.checks.some((c) => c.problems.length) ? ", BROKEN" : ""),
      );
    }
    await Deno.remove(out, { recursive: true });
  }
  if (!options["skip-formats"]) await benchFormats(file, recipe, storage);
}

/** The clinical volume as .mhd and as DICOM series, written once next to the .nii.gz. */
async function formatCopies(
  file: string,
): Promise<{ label: string; path: string; decodeThreads?: number }[]> {
  const cores = navigator.hardwareConcurrency ?? 1;
  const dir = join(BENCH_DIR, "formats");
  const mhd = join(dir, "clinical.mhd");
  const series = [
    ["explicit", "DICOM, explicit VR LE"],
    ["jpeg2000", "DICOM, JPEG 2000 lossless"],
    ["htj2k", "DICOM, HTJ2K lossless"],
  ] as const;
  // Each copy is written once, marked complete when whole (JPEG 2000 takes a minute).
  const missing = [];
  for (const name of ["mhd", ...series.map(([s]) => s)]) {
    const done = await Deno.stat(join(dir, `${name}.complete`)).then(() => true, () => false);
    if (!done) missing.push(name);
  }
  if (missing.length) {
    console.error(`bench: writing the volume as ${missing.join(", ")} (once) ...`);
    await Deno.mkdir(dir, { recursive: true });
    // Writers take axis 0 as the file's x; the reader's view is [k, j, i].
    const { volume } = readNifti(await Deno.readFile(file));
    const [nk, nj, ni] = volume.shape;
    const data = new Int16Array(volume.data.length);
    let o = 0;
    for (let i = 0; i < ni; i++) {
      for (let j = 0; j < nj; j++) {
        for (let k = 0; k < nk; k++) data[o++] = volume.data[(k * nj + j) * ni + i];
      }
    }
    const v = {
      data,
      shape: [ni, nj, nk] as [number, number, number],
      affine: volume.affine.map((r) => [r[2], r[1], r[0], r[3]]),
    };
    for (const name of missing) {
      if (name === "mhd") {
        const { header, data: bytes } = writeMetaImage(v, { dataFile: "clinical.raw" });
        await Deno.writeFile(mhd, header);
        await Deno.writeFile(join(dir, "clinical.raw"), bytes!);
      } else {
        const out = join(dir, `dicom_${name}`);
        await Deno.remove(out, { recursive: true }).catch(() => {});
        await Deno.mkdir(out, { recursive: true });
        const syntax = name as (typeof series)[number][0];
        for (const f of await writeDicomSeries(v, { syntax, pixels: "unsigned" })) {
          await Deno.writeFile(join(out, f.name), f.bytes);
        }
      }
      await Deno.writeTextFile(join(dir, `${name}.complete`), "");
    }
  }
  const copies: { label: string; path: string; decodeThreads?: number }[] = [
    { label: ".nii.gz", path: file },
    { label: ".mhd + .raw", path: mhd },
  ];
  for (const [syntax, label] of series) {
    const path = join(dir, `dicom_${syntax}`);
    copies.push({ label, path });
    if (syntax !== "explicit" && cores > 1) {
      copies.push({ label: `  same, ${cores} decode threads`, path, decodeThreads: cores });
    }
  }
  return copies;
}

async function benchFormats(
  file: string,
  recipe: ReturnType<typeof resolveRecipe>,
  storage: StorageOptions,
): Promise<void> {
  const copies = await formatCopies(file);
  const settings = await settingsHash({ recipe, storage });
  console.log(`  one case per format, in-process, best of 2 (read, hash, recipe, write):`);
  let reference = 0;
  for (const { label, path, decodeThreads } of copies) {
    const [c] = await discoverCases([path]);
    const bytes = (await Promise.all(c.files.map((f) => Deno.stat(f)))).reduce(
      (a, s) => a + s.size,
      0,
    );
    const times: number[] = [];
    for (let rep = 0; rep < 2; rep++) {
      const dir = await Deno.makeTempDir({ prefix: "voco-bench-" });
      const t = performance.now();
      await processCase({
        ...c,
        stagingDir: dir,
        recipe,
        storage,
        settingsHash: settings,
        decodeThreads,
      });
      times.push((performance.now() - t) / 1000);
      await Deno.remove(dir, { recursive: true });
    }
    const best = Math.min(...times);
    reference ||= best;
    console.log(
      `    ${label.padEnd(27)} ${best.toFixed(2)} s  (${(best / reference).toFixed(2)}x .nii.gz; ` +
        `${c.files.length} file(s), ${formatBytes(bytes)})`,
    );
  }
}

async function main(args: string[]): Promise<number> {
  const parsed = parseCommand(BENCH, args);
  if (parsed.help !== undefined) {
    console.log(parsed.help);
    return 0;
  }
  if (parsed.command === "prep") await benchPrep(parsed.values);
  else if (parsed.command === "pretrain") {
    const v = parsed.values;
    await benchPretrain({ ...v, cropBatch: v["crop-batch"] });
  } else if (parsed.command === "model") {
    await benchModel({ ...parsed.values, backend: parsed.values.backend as BackendName });
  } else {
    const v = parsed.values;
    if (!v["crops-only"]) await benchCache(await clinicalVolume(), v);
    // The README's volume: the shared example CT (the clinical copy where it is absent).
    const ct = await Deno.stat(SHARED_CT).then(() => SHARED_CT, () => clinicalVolume());
    if (v["big-crops"] > 0) await benchCrops(await ct, { crops: v["big-crops"] });
  }
  return 0;
}

if (import.meta.main) await runMain("bench", main);

export { main };
