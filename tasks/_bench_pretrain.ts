// `deno task bench pretrain`: real VoCo v2 training steps on a phantom cache: seconds per
// step, samples/s, the data-wait share and peak RSS, against the PyTorch reference.
import { join } from "node:path";
import { discoverCases } from "../prep/pipeline/discover.ts";
import { runPrep } from "../prep/pipeline/run_prep.ts";
import { resolveRecipe } from "../prep/recipes/recipe.ts";
import { makePhantom } from "../prep/synthetic/phantom.ts";
import { writeNifti } from "../prep/synthetic/write_nifti.ts";
import { type BackendName, useBackend } from "../train/backend.ts";
import { type MetricsRow, pretrain, pretrainConfig } from "../train/pretrain.ts";
import { planMemory } from "../train/memory.ts";
import { peakRss, wasmHeapBytes } from "../train/run/dry_run.ts";
import { formatBytes } from "./_cli.ts";

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
}

/** PyTorch 1.13 (MONAI 1.3.2 backbone + head, 2 threads) on this 2-core machine, 20 crops. */
const REFERENCE_S = 95;

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
    await pretrain(
      join(dir, "run"),
      config,
      {
        onStep: (r) => {
          rows.push(r);
          console.log(
            `  step ${r.step}: ${r.seconds.toFixed(1)} s, loss ${r.loss.toFixed(4)}, ` +
              `data wait ${(r.data_wait * 100).toFixed(1)}%`,
          );
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
        `  peak RSS                        ${formatBytes(peakRss() ?? Deno.memoryUsage().rss)}`,
        wasmHeapBytes() !== undefined
          ? `  wasm heap (its high-water mark) ${formatBytes(wasmHeapBytes()!)} of 4.3 GB`
          : "",
        crops === 20 && o.feature === 12
          ? `  PyTorch 1.13 reference          ${REFERENCE_S} s per step: ${
            (REFERENCE_S / mean).toFixed(2)
          }x`
          : "",
      ].filter(Boolean).join("\n"),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
