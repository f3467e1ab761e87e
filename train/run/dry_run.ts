// `pretrain --dry-run`: one step's forward and backward measured before anything long
// starts (on crops of random values: the cost does not depend on them), with the memory it
// took and the time per step and for the whole run. Nothing is written.
import * as tf from "@tensorflow/tfjs-core";
import type { PretrainConfig } from "../config.ts";
import { type MemoryPlan, planMemory } from "../memory.ts";
import { VocoModel } from "../voco/model.ts";
import { backwardInSegments, forwardSaving } from "../swin/recompute.ts";
import { outOfMemoryError } from "../backend.ts";

/** What {@linkcode dryRun} measured. */
export interface DryRunReport {
  /** The memory plan it ran. */
  plan: MemoryPlan;
  /** Backbone passes per step. */
  passes: number;
  /** Seconds of one pass's forward (features, boundaries kept) and its backward. */
  passSeconds?: { forward: number; backward: number };
  /** Seconds of the AdamW step. */
  optimizerSeconds: number;
  /** Seconds a step takes (measured, or passes x a measured pass plus the optimiser). */
  stepSeconds: number;
  /** Seconds of the run's steps. */
  runSeconds: number;
  /** Peak bytes of the backend's heap (wasm), when it can be read. */
  heapBytes?: number;
  /** Bytes of tensors alive after the step (weights, moments). */
  tensorBytes: number;
  /** Peak resident memory of the process, when the system lets it be read. */
  peakRssBytes?: number;
  /** Resident memory of the process after the step. */
  rssBytes: number;
}

/** The high-water mark of tfjs-wasm's heap (it never shrinks), when the backend is wasm. */
export function wasmHeapBytes(): number | undefined {
  const wasm = (tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } }).wasm;
  return wasm?.HEAPU8?.buffer.byteLength;
}

/** The process's peak resident memory (Linux `VmHWM`). */
export function peakRss(): number | undefined {
  try {
    const m = Deno.readTextFileSync("/proc/self/status").match(/VmHWM:\s+(\d+) kB/);
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Measures one training step of `config` on the current backend: the optimiser's state is
 * allocated first (an AdamW step at lr 0), then one taped pass of the whole batch, or, when
 * the plan splits the batch, one pass of `cropBatch` crops (forward keeping the
 * boundaries, backward in segments) scaled to the step's passes. `runSteps` steps make the
 * run (default: `config.steps`).
 */
export async function dryRun(
  config: PretrainConfig,
  runSteps = config.steps,
): Promise<DryRunReport> {
  const plan = planMemory(config, tf.getBackend());
  const model = new VocoModel({ ...config, cropBatch: plan.cropBatch });
  const { roi } = config;
  const rows = plan.rows;
  const random = (n: number) => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = (i * 2654435761 % 4096) / 4096;
    return a;
  };
  try {
    let t = performance.now();
    const zeros = new Map([...model.trained].map(([k, v]) => [k, tf.zerosLike(v)]));
    await model.apply(zeros, 0);
    const optimizerSeconds = (performance.now() - t) / 1000;
    const passes = plan.cropBatch === undefined ? 1 : Math.ceil(rows / plan.cropBatch);
    let stepSeconds: number, passSeconds: DryRunReport["passSeconds"];
    try {
      if (plan.cropBatch === undefined) {
        const k = config.grid ** 2;
        const input = {
          inputs: random(rows * roi ** 3),
          labels: random(config.batchSize * config.swBatchSize * k),
          batch: config.batchSize,
          crops: config.swBatchSize,
          roi,
        };
        t = performance.now();
        const r = await model.gradients(input, 0);
        tf.dispose([...r.grads.values()]);
        stepSeconds = (performance.now() - t) / 1000 + optimizerSeconds;
      } else {
        const n = Math.min(plan.cropBatch, rows);
        const x = tf.tensor5d(random(n * roi ** 3), [n, roi, roi, roi, 1]);
        t = performance.now();
        const { features, saved } = await forwardSaving(x, model.backbone, model.config);
        const forward = (performance.now() - t) / 1000;
        const dy = tf.onesLike(features) as tf.Tensor2D;
        t = performance.now();
        await backwardInSegments(saved, dy, model.backbone, model.config, (_, g) => g.dispose());
        const backward = (performance.now() - t) / 1000;
        tf.dispose([x, features, dy]);
        passSeconds = { forward, backward };
        const teacher = config.version === "v1" ? forward : 0;
        stepSeconds = passes * (forward + backward + teacher) + optimizerSeconds;
      }
    } catch (e) {
      throw outOfMemoryError(e, { step: 1, backend: tf.getBackend(), cropBatch: plan.cropBatch });
    }
    stepSeconds *= config.gradAccum;
    return {
      plan,
      passes,
      passSeconds,
      optimizerSeconds,
      stepSeconds,
      runSeconds: stepSeconds * runSteps,
      heapBytes: wasmHeapBytes(),
      tensorBytes: tf.memory().numBytes,
      peakRssBytes: peakRss(),
      rssBytes: Deno.memoryUsage().rss,
    };
  } finally {
    try {
      model.dispose();
    } catch { /* after an out-of-memory trap the backend is gone */ }
  }
}
