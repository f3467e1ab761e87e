// `deno task bench model`: forward and training-step time of the VoCo backbone.
import * as tf from "@tensorflow/tfjs-core";
import { type BackendName, useBackend } from "../train/backend.ts";
import { swinConfig } from "../train/swin/config.ts";
import { initParams } from "../train/swin/params.ts";
import { resBlock } from "../train/swin/layers.ts";
import { swinTransformer } from "../train/swin/swin_transformer.ts";
import { vocoForward } from "../train/swin/backbone.ts";
import { formatBytes } from "../cache/text.ts";
import { typedArrayKernels } from "../train/kernels/dispatch.ts";
import { cpuSeconds, peakRss } from "./_common.ts";
import { startOpProfile, stopOpProfile } from "../train/kernels/profile.ts";
import { opTable } from "./_op_table.ts";

async function timed(f: () => tf.Tensor | tf.Tensor[]): Promise<number> {
  const t = performance.now();
  const out = tf.tidy(f);
  for (const o of [out].flat()) await o.data();
  tf.dispose(out);
  return (performance.now() - t) / 1000;
}

/**
 * What the change in live tensors after training step `step` (0-based) means: the first
 * step creates the optimiser's two moments for each of the `parameters` tensors, which
 * stay; after that any change is reported as it is.
 */
export function tensorNote(step: number, added: number, parameters: number): string {
  if (added === 0) return "none added";
  if (step === 0 && added === 2 * parameters) {
    return `${added} added: the optimiser's 2 moments for each of ${parameters} parameters, kept`;
  }
  return `${added > 0 ? "+" : ""}${added} since the step before`;
}

/** Options of {@linkcode benchModel}. */
export interface BenchModelOptions {
  /** tfjs backend. @default {"wasm"} */
  backend?: BackendName;
  /** Crop edge in voxels. @default {64} */
  size?: number;
  /** Crops per batch. @default {2} */
  batch?: number;
  /** Feature size of the backbone. @default {12} */
  feature?: number;
  /** Training steps. @default {2} */
  steps?: number;
  /** Print a per-op profile of the training steps after the first. @default {false} */
  profile?: boolean;
}

/** Runs the model benchmark: forward per block, whole model, then training steps. */
export async function benchModel(options: BenchModelOptions = {}): Promise<void> {
  const { size = 64, batch = 2, feature = 12, steps = 2 } = options;
  const backend = await useBackend(options.backend ?? "wasm");
  const config = swinConfig(feature);
  const params = initParams(config, 0);
  const x = tf.randomNormal([batch, size, size, size, 1], 0, 1, "float32", 1) as tf.Tensor5D;
  console.log(
    `model benchmark: backend ${backend}, VoCo backbone fs ${feature} + head, ` +
      `${batch} x ${size}³ crops`,
  );
  const hidden = tf.tidy(() => swinTransformer(x, params, config));
  const blocks: [string, () => tf.Tensor | tf.Tensor[]][] = [
    ["swin transformer (embed, 4 stages)", () => swinTransformer(x, params, config)],
    ["encoder1 (input)", () => resBlock(x, params, "encoder1")],
    ["encoder2 (h0)", () => resBlock(hidden[0], params, "encoder2")],
    ["encoder3 (h1)", () => resBlock(hidden[1], params, "encoder3")],
    ["encoder4 (h2)", () => resBlock(hidden[2], params, "encoder4")],
    ["encoder10 (h4)", () => resBlock(hidden[4], params, "encoder10")],
  ];
  console.log("  forward, per block:");
  // Stages of the Swin transformer, timed from one stage's output to the next (reading a
  // tensor synchronously waits for the backend, which tfjs-webgpu cannot do under Deno).
  let mark = performance.now();
  const stages: [string, number][] = [];
  if (typedArrayKernels()) {
    tf.tidy(() =>
      swinTransformer(x, params, config, {
        trace: (label, out) => {
          out.dataSync();
          const now = performance.now();
          stages.push([label, (now - mark) / 1000]);
          mark = now;
        },
      })
    );
  }
  for (const [label, f] of blocks) {
    console.log(`    ${label.padEnd(36)} ${(await timed(f)).toFixed(2)} s`);
    if (label.startsWith("swin")) {
      for (const [stage, t] of stages) console.log(`      ${stage.padEnd(34)} ${t.toFixed(2)} s`);
    }
  }
  tf.dispose(hidden);
  const forward = await timed(() => vocoForward(x, params, config).projection);
  console.log(`  forward, whole model               ${forward.toFixed(2)} s`);
  // Training step: forward, backward of a scalar loss, AdamW (Adam + decoupled decay).
  const optimizer = tf.train.adam(1e-4);
  const vars = [...params.values()];
  // Live tensors after each step: the first step creates AdamW's two moments for every
  // parameter tensor, which stay for the rest of training; after that the count is flat.
  let before = tf.memory().numTensors;
  const profile = (options.profile ?? false) && steps > 1;
  for (let s = 0; s < steps; s++) {
    if (profile && s === 1) startOpProfile();
    const t = performance.now(), cpu = cpuSeconds();
    try {
      tf.tidy(() => {
        const { grads } = tf.variableGrads(() => {
          const { projection } = vocoForward(x, params, config, { training: true });
          return tf.mean(tf.square(projection)) as tf.Scalar;
        }, vars);
        optimizer.applyGradients(grads as tf.NamedTensorMap as Record<string, tf.Variable>);
        for (const v of vars) v.assign(tf.mul(v, 1 - 1e-4 * 1e-5));
      });
      await vars[0].data();
    } catch (e) {
      console.log(`  training step ${s + 1} FAILED: ${(e as Error).message.split("\n")[0]}`);
      break;
    }
    const now = tf.memory().numTensors, added = now - before;
    before = now;
    const why = tensorNote(s, added, vars.length);
    const used = cpuSeconds();
    console.log(
      `  training step ${s + 1} (fwd + bwd + AdamW)  ` +
        `${((performance.now() - t) / 1000).toFixed(2)} s (CPU ${
          (used.process - cpu.process).toFixed(1)
        } s, main thread ${(used.main - cpu.main).toFixed(1)} s), ${now} tensors live (${why})`,
    );
  }
  if (profile) {
    console.log(`  where the time of steps 2..${steps} goes, per step:`);
    console.log(opTable(stopOpProfile(), steps - 1));
  }
  console.log(`  peak RSS                            ${formatBytes(peakRss())}`);
}
