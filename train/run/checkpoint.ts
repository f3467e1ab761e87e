// Checkpoints of a pre-training run: every variable of the model and the optimiser's
// moments (tfjs layouts) in one safetensors file, with the step and the sampler position
// in its metadata. Written to a temporary file and renamed, so a kill never leaves half a
// checkpoint; the newest few are kept.
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { readSafetensors, writeSafetensors } from "../weights/safetensors.ts";
import type { VocoModel } from "../voco/model.ts";

/** What a checkpoint records besides the tensors. */
export interface CheckpointState {
  /** Optimiser steps done. */
  step: number;
  /** Global index of the next sample the loader draws. */
  position: number;
}

/** The file name of the checkpoint after `step` steps. */
export function checkpointName(step: number): string {
  return `ckpt-${String(step).padStart(7, "0")}.safetensors`;
}

/** Steps of the checkpoints in a run folder, ascending. */
export async function listCheckpoints(dir: string): Promise<number[]> {
  const steps: number[] = [];
  for await (const e of Deno.readDir(dir)) {
    const m = e.name.match(/^ckpt-(\d+)\.safetensors$/);
    if (m && e.isFile) steps.push(Number(m[1]));
  }
  return steps.sort((a, b) => a - b);
}

/** Writes the model's checkpoint into `dir` and keeps only the newest `keep`. */
export async function saveCheckpoint(
  dir: string,
  model: VocoModel,
  state: CheckpointState,
  keep = 3,
): Promise<string> {
  const entries: [string, { shape: number[]; data: Float32Array }][] = [];
  for (const [name, v] of model.namedVariables()) {
    entries.push([`model.${name}`, { shape: v.shape, data: (await v.data()) as Float32Array }]);
  }
  for (const [name, v] of model.optimizer.state()) {
    entries.push([`optim.${name}`, { shape: v.shape, data: (await v.data()) as Float32Array }]);
  }
  const bytes = writeSafetensors(entries, {
    step: String(state.step),
    position: String(state.position),
    optimizer_steps: String(model.optimizer.stepCount),
    layout: "tfjs (Linear [in, out], Conv3d [kd, kh, kw, in, out])",
  });
  const path = join(dir, checkpointName(state.step));
  const tmp = `${path}.tmp-${Deno.pid}`;
  await Deno.writeFile(tmp, bytes);
  await Deno.rename(tmp, path);
  const steps = await listCheckpoints(dir);
  for (const s of steps.slice(0, Math.max(0, steps.length - keep))) {
    await Deno.remove(join(dir, checkpointName(s))).catch(() => {});
  }
  return path;
}

/** Reads a checkpoint file: its tensors by name (prefix `model.` / `optim.`) and its state. */
export async function readCheckpoint(
  path: string,
): Promise<
  {
    tensors: Map<string, { shape: number[]; data: Float32Array }>;
    state: CheckpointState;
    optimizerSteps: number;
  }
> {
  let parsed;
  try {
    parsed = readSafetensors(await Deno.readFile(path));
  } catch (e) {
    throw new Error(`Checkpoint ${path}: ${(e as Error).message}`);
  }
  const { tensors, metadata } = parsed;
  const step = Number(metadata.step), position = Number(metadata.position);
  if (!Number.isInteger(step) || !Number.isInteger(position)) {
    throw new RangeError(`Checkpoint ${path} has no step and sampler position in its metadata`);
  }
  return {
    tensors,
    state: { step, position },
    optimizerSteps: Number(metadata.optimizer_steps ?? step),
  };
}

/** Loads a checkpoint's tensors into the model and its optimiser. */
export function loadCheckpoint(
  model: VocoModel,
  ckpt: Awaited<ReturnType<typeof readCheckpoint>>,
  path: string,
): void {
  for (const [name, v] of model.namedVariables()) {
    const t = ckpt.tensors.get(`model.${name}`);
    if (!t) throw new RangeError(`Checkpoint ${path} has no ${name}: made by another model?`);
    if (t.data.length !== v.size) {
      throw new RangeError(
        `Checkpoint ${path}: ${name} has ${t.data.length} values, the model ${v.size}`,
      );
    }
    const value = tf.tensor(t.data, v.shape);
    v.assign(value);
    value.dispose();
  }
  const optim = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [k, t] of ckpt.tensors) if (k.startsWith("optim.")) optim.set(k.slice(6), t);
  model.optimizer.load(optim, ckpt.optimizerSteps);
}
