// Checkpoints of a pre-training run: every variable of the model and the optimiser's
// moments (tfjs layouts) in one safetensors file, with the step and the sampler position
// in its metadata. Written to a temporary file and renamed, so a kill never leaves half a
// checkpoint; the newest few are kept. What is read back is checked: the metadata (whole
// numbers, the step of the file name), and every value finite.
import { basename, join } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { BadInputError } from "../../cache/errors.ts";
import { readSafetensors, writeSafetensors } from "../weights/safetensors.ts";
import type { VocoModel } from "../voco/model.ts";
import { writeFileAtomic } from "./folder.ts";
import { NonFiniteError, nonFiniteTensors } from "./finite.ts";

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

/**
 * Writes the model's checkpoint into `dir` and keeps only the newest `keep`. Refuses (a
 * {@linkcode NonFiniteError}, nothing written, nothing removed) when a value is NaN or
 * infinite; a failed write (a full disk) leaves no temporary file.
 */
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
  const bad = nonFiniteTensors(entries);
  if (bad.count > 0) {
    throw new NonFiniteError(
      `Step ${state.step}: ${bad.count} tensors hold NaN or infinite values (${
        bad.names.join(", ")
      }); no checkpoint written, the earlier ones are kept`,
      state.step,
    );
  }
  const bytes = writeSafetensors(entries, {
    step: String(state.step),
    position: String(state.position),
    optimizer_steps: String(model.optimizer.stepCount),
    layout: "tfjs (Linear [in, out], Conv3d [kd, kh, kw, in, out])",
  });
  const path = join(dir, checkpointName(state.step));
  await writeFileAtomic(path, bytes);
  const steps = await listCheckpoints(dir);
  for (const s of steps.slice(0, Math.max(0, steps.length - keep))) {
    await Deno.remove(join(dir, checkpointName(s))).catch(() => {});
  }
  return path;
}

/** A whole number written as decimal digits in a checkpoint's metadata, else `undefined`. */
function wholeNumber(v: unknown): number | undefined {
  return typeof v === "string" && /^\d{1,15}$/.test(v) ? Number(v) : undefined;
}

/**
 * Reads a checkpoint file: its tensors by name (prefix `model.` / `optim.`) and its state.
 * Throws a {@linkcode BadInputError} naming the file when it is unreadable, its metadata is
 * not whole numbers (or its step differs from its file name's), or a value is NaN or
 * infinite.
 */
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
    throw new BadInputError(`Checkpoint ${path}: ${(e as Error).message}`, { path, cause: e });
  }
  const { tensors, metadata } = parsed;
  const step = wholeNumber(metadata.step), position = wholeNumber(metadata.position);
  const optimizerSteps = metadata.optimizer_steps === undefined
    ? step
    : wholeNumber(metadata.optimizer_steps);
  const named = basename(path).match(/^ckpt-(\d+)\.safetensors$/);
  const problem = step === undefined || position === undefined || optimizerSteps === undefined
    ? `its metadata step ${JSON.stringify(metadata.step)}, position ` +
      `${JSON.stringify(metadata.position)} and optimizer_steps ` +
      `${JSON.stringify(metadata.optimizer_steps)} are not all whole numbers`
    : named && Number(named[1]) !== step
    ? `its metadata says step ${step}, its name step ${Number(named[1])}`
    : undefined;
  if (problem) {
    throw new BadInputError(`Checkpoint ${path} is damaged: ${problem}`, { path });
  }
  const bad = nonFiniteTensors(tensors);
  if (bad.count > 0) {
    throw new BadInputError(
      `Checkpoint ${path} holds NaN or infinite values in ${bad.count} tensors ` +
        `(${bad.names.join(", ")}): the run diverged before it was written, or the file is ` +
        "damaged. Move it aside to continue from the checkpoint before it",
      { path },
    );
  }
  return { tensors, state: { step: step!, position: position! }, optimizerSteps: optimizerSteps! };
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
