// `deno task bench pretrain`: real VoCo v2 training steps on a phantom cache: seconds per
// step, samples/s, the data-wait share and peak RSS, against the PyTorch reference.
import { join } from "node:path";
import { discoverCases } from "../prep/pipeline/discover.ts";
import { runPrep } from "../prep/pipeline/run_prep.ts";
import { resolveRecipe } from "../prep/recipes/recipe.ts";
import { makePhantom } from "../prep/synthetic/phantom.ts";
import { writeNifti } from "../prep/formats/write_nifti.ts";
import { type BackendName, useBackend } from "../train/backend.ts";
import { type MetricsRow, pretrain, pretrainConfig } from "../train/pretrain.ts";
import { formatBytes } from "../cache/text.ts";
import { cpuSeconds } from "./_common.ts";
import { type OpProfile, startOpProfile, stopOpProfile } from "../train/kernels/profile.ts";
import { opTable } from "./_op_table.ts";
import { findReference, notMeasured, runReference } from "./_reference.ts";
import { BatchLoader } from "../train/sampler/loader.ts";
import { listTrainingCases } from "../train/sampler/cases.ts";
import { sampleSpec } from "../train/sampler/voco_sample.ts";
import { planMemory } from "../train/memory.ts";
import { wasmHeapBytes } from "../train/run/dry_run.ts";
import { peakRss } from "./_common.ts";

/** Settings of {@linkcode benchPretrain}. */
export interface BenchPretrainOptions {
  /** tfjs backend. */
  backend: string;
  /** Training steps (the first is reported apart: it compiles and warms up). */
  steps: number;
  /** Volumes per step. */
  batch: number;
  /** Random crops per volume. */
  sw: number;
  /** Base crops per side. */
  grid: number;
  /** Feature size. */
  feature: number;
  /** Crops per backbone pass (planned from the backend's memory when absent). */
  cropBatch?: number;
  /** Projection head width. */
  head: number;
  /** Sample workers. */
  workers: number;
  /** Also run the PyTorch/MONAI reference on the first batch's crops, in this run. */
  torch?: boolean;
  /** Print a per-op profile of the steps after the first. */
  profile?: boolean;
}

/** Runs the benchmark and prints its figures. */
export async function benchPretrain(o: BenchPretrainOptions): Promise<void> {
  const backend = await useBackend(o.backend as BackendName);
  const dir = await Deno.makeTempDir({ prefix: "voco-bench-pretrain-" });
  try {
    const inputs = join(dir, "inputs");
    await Deno.mkdir(inputs);
    for (let i = 0; i < 4; i++) {
      const v = makePhantom({ shape: [160, 160, 60], spacingMm: [2, 2, 3], seed: i + 1 });
      await Deno.writeFile(join(inputs, `case${i}.nii.gz`), writeNifti(v));
    }
    const cache = join(dir, "cache.zarr");
    await runPrep(await discoverCases([inputs]), {
      out: cache,
      dataset: "phantoms",
      recipe: resolveRecipe("voco-v2"),
      storage: { dtype: "uint16", compressor: "blosc-zstd", level: 3, chunk: 64 },
      workers: 1,
    });
    const crops = o.batch * (o.sw + o.grid ** 2);
    const ref = o.torch ? await findReference() : undefined;
    const config = pretrainConfig("v2", [cache], {
      featureSize: o.feature,
      headDims: [o.head, o.head, o.head],
      batchSize: o.batch,
      swBatchSize: o.sw,
      grid: o.grid,
      steps: o.steps,
      warmupSteps: 1,
      saveEvery: o.steps,
      workers: o.workers,
      cropBatch: o.cropBatch,
      backend,
    });
    const plan = planMemory(config, backend);
    console.log(
      `pretrain benchmark: VoCo v2 on ${backend}, feature size ${o.feature}, batch ${o.batch} x ` +
        `(${o.sw} random + ${o.grid ** 2} base) = ${crops} crops of 64³ per step, ` +
        `crops per backbone pass ${plan.cropBatch ?? "all (one taped pass)"}, ${o.workers} ` +
        `sample worker(s)`,
    );
    const rows: MetricsRow[] = [];
    const profile = (o.profile ?? false) && o.steps > 1;
    let ops: OpProfile | undefined;
    let cpu = cpuSeconds();
    await pretrain(
      join(dir, "run"),
      config,
      {
        onStep: (r) => {
          rows.push(r);
          const now = cpuSeconds();
          console.log(
            `  step ${r.step}: ${r.seconds.toFixed(1)} s, loss ${r.loss.toFixed(4)}, ` +
              `data wait ${(r.data_wait * 100).toFixed(1)}%, CPU ${
                (now.process - cpu.process).toFixed(1)
              } s (main thread ${(now.main - cpu.main).toFixed(1)} s)`,
          );
          cpu = now;
          // Steps 2.. are profiled: from the end of step 1 to the end of the last step.
          if (profile && r.step === 1) startOpProfile();
          if (profile && r.step === o.steps) ops = stopOpProfile();
        },
      },
    );
    const warm = rows.length > 1 ? rows.slice(1) : rows;
    const mean = warm.reduce((a, r) => a + r.seconds, 0) / warm.length;
    const wait = warm.reduce((a, r) => a + r.data_wait * r.seconds, 0) /
      warm.reduce((a, r) => a + r.seconds, 0);
    console.log(
      [
        `  first step                      ${rows[0].seconds.toFixed(1)} s`,
        `  per step, once warm             ${mean.toFixed(1)} s (${
          (1 / mean).toFixed(3)
        } steps/s, ` +
        `${(o.batch / mean).toFixed(3)} samples/s)`,
        `  data-wait share                 ${(wait * 100).toFixed(1)}% (target < 5%)`,
        `  peak RSS                        ${formatBytes(peakRss())}`,
        wasmHeapBytes() !== undefined
          ? `  wasm heap (its high-water mark) ${formatBytes(wasmHeapBytes()!)} of 4.3 GB`
          : "",
      ].filter(Boolean).join("\n"),
    );
    if (ops) {
      console.log(`  where the time of steps 2..${o.steps} goes, per step:`);
      console.log(opTable(ops, o.steps - 1));
    }
    if (ref && "python" in ref) await torchSteps(ref, cache, dir, o, mean);
    else console.log(notMeasured("PyTorch 1.13 + MONAI 1.3.2 reference", ref));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * The PyTorch reference (bench/reference/voco_step.py) on the crops of this run's first
 * batch (the sampler's, from the same seed), 2 threads, and the ratio to our step.
 */
async function torchSteps(
  ref: { python: string },
  cache: string,
  dir: string,
  o: BenchPretrainOptions,
  ours: number,
): Promise<void> {
  const { cases } = await listTrainingCases([cache], { recipe: "voco-v2" });
  const loader = new BatchLoader(cases, {
    batchSize: o.batch,
    spec: sampleSpec("v2", { grid: o.grid, crops: o.sw }),
    seed: 0,
    workers: 0,
  });
  const batch = await loader.next();
  loader.close();
  const crops = join(dir, "crops.f32"), labels = join(dir, "labels.f32");
  await Deno.writeFile(crops, new Uint8Array(batch.inputs.buffer));
  await Deno.writeFile(labels, new Uint8Array(batch.labels.buffer));
  console.log(`  PyTorch reference on the same ${batch.rows} crops (2 threads) ...`);
  const r = await runReference<{
    torch: string;
    steps: { seconds: number }[];
    peak_rss_bytes: number;
  }>(ref, "voco_step.py", [
    ...["--crops", crops, "--labels", labels, "--batch", String(o.batch)],
    ...["--sw", String(o.sw), "--grid", String(o.grid), "--feature", String(o.feature)],
    ...["--steps", String(Math.max(2, o.steps)), "--threads", "2"],
  ]);
  const warm = r.steps.slice(1);
  const theirs = warm.reduce((a, x) => a + x.seconds, 0) / warm.length;
  console.log(
    [
      `  PyTorch ${r.torch} + MONAI 1.3.2, first step ${r.steps[0].seconds.toFixed(1)} s, ` +
      `per step once warm ${theirs.toFixed(1)} s, peak RSS ${formatBytes(r.peak_rss_bytes)}`,
      `  ours / PyTorch                  ${(theirs / ours).toFixed(2)}x faster (measured side ` +
      `by side in this run)`,
    ].join("\n"),
  );
}
