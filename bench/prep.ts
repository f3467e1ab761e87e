// `deno task bench prep`: preprocessing speed on a realistic clinical-size volume, per
// stage, per worker count and per format.
import { join } from "node:path";
import { readNifti } from "../prep/formats/read_nifti.ts";
import { writeNifti } from "../prep/formats/write_nifti.ts";
import { resampleToGrid } from "../prep/transforms/resample.ts";
import { makePhantom } from "../prep/synthetic/phantom.ts";
import { resolveRecipe } from "../prep/recipes/recipe.ts";
import { runPrep } from "../prep/pipeline/run_prep.ts";
import { discoverCases } from "../prep/pipeline/discover.ts";
import { processCase, type StorageOptions } from "../prep/pipeline/process_case.ts";
import { settingsHash } from "../cache/format/fingerprint.ts";
import { writeMetaImage } from "../prep/synthetic/write_metaimage.ts";
import { writeDicomSeries } from "../prep/synthetic/write_dicom.ts";
import { DEFAULT_CHUNK, DEFAULT_INNER_CHUNK, type Layout } from "../cache/format/format.ts";
import { verifyCache } from "../cache/inspect/verify.ts";
import { formatBytes } from "../cache/text.ts";
import { BENCH_DIR, peakRss, SHARED_CT } from "./_common.ts";
import { findReference, notMeasured, runReference } from "./_reference.ts";

/** The clinical-size test volume, built once into `.tmp/bench/`; resolves to its path. */
export async function clinicalVolume(): Promise<string> {
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
export interface BenchPrepOptions {
  /** Also run MONAI's pipeline on the same volumes, in this run. */
  torch?: boolean;
  copies: number;
  workers: number[];
  "skip-formats": boolean;
  layout: string;
}

/**
 * Times one clinical-size case in-process stage by stage, whole runs with each worker
 * count, and one case per format.
 */
export async function benchPrep(options: BenchPrepOptions): Promise<void> {
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
  console.log(`    gunzip (libdeflate, else zlib) ${best(stages.gunzip).toFixed(2)} s`);
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
  const perVolume: Record<number, number> = {};
  let cacheBytes = 0;
  for (const w of copies > 0 ? workerCounts : []) {
    const out = await Deno.makeTempDir({ prefix: "voco-bench-cache-" });
    const s = await runPrep(cases, { out, dataset: "bench", recipe, storage, workers: w });
    const failed = s.reports.filter((r) => r.status === "failed");
    if (failed.length) throw new Error(`bench run failed: ${failed[0].error}`);
    console.log(
      `  ${copies} volumes, ${w} worker(s): ${s.seconds.toFixed(2)} s wall, ` +
        `${(s.seconds / copies).toFixed(2)} s per volume, peak RSS ${formatBytes(peakRss())}`,
    );
    perVolume[w] = s.seconds / copies;
    if (w === workerCounts[0]) {
      const v = await verifyCache(out);
      cacheBytes = v.bytes;
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
  if (options.torch && copies > 0) {
    await monaiPrep(cases.map((c) => c.path), perVolume[1], cacheBytes);
  } else console.log(notMeasured("MONAI 1.3.2 (PersistentDataset, 1 thread)", undefined));
  if (!options["skip-formats"]) await benchFormats(file, recipe, storage);
}

/**
 * MONAI's voco-v2 transforms and PersistentDataset write (bench/reference/monai_prep.py)
 * on the same volumes, one thread, against our one-worker run and our cache's size.
 */
async function monaiPrep(files: string[], ours: number | undefined, cacheBytes: number) {
  const ref = await findReference();
  if (!("python" in ref)) {
    console.log(notMeasured("MONAI 1.3.2 (PersistentDataset, 1 thread)", ref));
    return;
  }
  console.log(`  MONAI reference on the same ${files.length} volumes (1 thread) ...`);
  const r = await runReference<{ seconds: number[]; persistent_bytes: number; torch: string }>(
    ref,
    "monai_prep.py",
    files,
  );
  const theirs = r.seconds.reduce((a, x) => a + x, 0) / r.seconds.length;
  console.log(
    `  MONAI 1.3.2 (torch ${r.torch}), 1 thread: ${theirs.toFixed(2)} s per volume` +
      (ours ? `; ours with 1 worker ${(theirs / ours).toFixed(1)}x faster` : "") +
      `; PersistentDataset ${formatBytes(r.persistent_bytes)}, our cache ` +
      `${(r.persistent_bytes / Math.max(1, cacheBytes)).toFixed(1)}x smaller (side by side)`,
  );
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
