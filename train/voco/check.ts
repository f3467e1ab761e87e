// Replaying a reference VoCo training step file (`voco-step.v1/v2.safetensors`, made by
// running the reference implementations' loss, head and schedule on fixed embeddings)
// with our code, and comparing every recorded quantity (`pretrain check`).
import * as tf from "@tensorflow/tfjs-core";
import { type NamedTensor, readSafetensors } from "../weights/safetensors.ts";
import type { OutputDiff } from "../swin/check.ts";
import { fromTorch, type Params, toTorch } from "../swin/params.ts";
import { emaUpdate, headForward, headSpecs } from "./head.ts";
import { vocoLossV1, vocoLossV2 } from "./loss.ts";
import { AdamW } from "../optim/adamw.ts";
import { warmupCosine } from "../optim/schedule.ts";
import { BadInputError, errorKind } from "../../cache/errors.ts";

/**
 * One recorded quantity compared: scalars (losses, lr) or tensors (gradients, weights).
 * `free` marks the biases of the Linear layers that feed a BatchNorm: the loss does not
 * depend on them (the norm removes any constant), so their gradient is rounding noise in
 * both implementations, and AdamW, which divides by its own running size, turns that
 * noise into steps of about lr. They are reported, not judged.
 */
export interface StepDiff extends OutputDiff {
  /** Scalars are judged by their absolute difference, tensors by their relative one. */
  kind: "scalar" | "tensor" | "free";
}

/** Biases that a batch norm follows (`layer1.0.bias`, `layer2.0.bias` of a head). */
const FREE = /layer[12]\.0\.bias$/;

/** What {@linkcode replayVocoStep} found. */
export interface StepReplay {
  /** `v1` or `v2`, from the file's metadata. */
  version: "v1" | "v2";
  /** The file's settings (its `__metadata__.description`). */
  settings: Record<string, unknown>;
  /** One row per recorded quantity, in the file's order. */
  rows: StepDiff[];
}

/**
 * Whether a row is within tolerance: scalars by their max absolute difference (`loss`),
 * tensors by their max relative one (`tensor`); `free` rows always pass.
 */
export function withinTolerance(row: StepDiff, tol: { loss: number; tensor: number }): boolean {
  if (row.kind === "free") return true;
  return row.kind === "scalar" ? row.maxAbs <= tol.loss : row.maxRel <= tol.tensor;
}

function diff(name: string, ours: ArrayLike<number>, ref: NamedTensor): StepDiff {
  if (ours.length !== ref.data.length) {
    throw new BadInputError(`${name}: ${ours.length} values, the reference has ${ref.data.length}`);
  }
  let maxAbs = 0, refMax = 0;
  for (let i = 0; i < ours.length; i++) {
    const d = Math.abs(ours[i] - ref.data[i]);
    maxAbs = Math.max(maxAbs, Number.isNaN(d) ? Infinity : d);
    refMax = Math.max(refMax, Math.abs(ref.data[i]));
  }
  return {
    name,
    shape: ref.shape,
    maxAbs,
    maxRel: maxAbs / (refMax || 1),
    kind: FREE.test(name) ? "free" : ref.data.length === 1 ? "scalar" : "tensor",
  };
}

function need(tensors: Map<string, NamedTensor>, name: string): NamedTensor {
  const t = tensors.get(name);
  if (!t) throw new BadInputError(`The step file has no tensor "${name}"`);
  return t;
}

/** A head's parameters from the file's `prefix.*` tensors (PyTorch layout). */
function loadHead(
  tensors: Map<string, NamedTensor>,
  filePrefix: string,
  prefix: string,
  inDim: number,
  dims: [number, number, number],
): Params {
  const p: Params = new Map();
  for (const spec of headSpecs(prefix, inDim, dims)) {
    const key = filePrefix + spec.name.slice(prefix.length);
    const t = need(tensors, key);
    if (t.shape.join() !== spec.torchShape.join()) {
      throw new BadInputError(`${key} has shape [${t.shape}], expected [${spec.torchShape}]`);
    }
    p.set(
      spec.name,
      tf.variable(
        tf.tensor(
          fromTorch(spec, t.data),
          spec.kind === "linear" ? [spec.torchShape[1], spec.torchShape[0]] : spec.torchShape,
        ),
      ),
    );
  }
  return p;
}

async function headDiffs(
  p: Params,
  prefix: string,
  inDim: number,
  dims: [number, number, number],
  tensors: Map<string, NamedTensor>,
  filePrefix: string,
  values: (name: string, t: tf.Tensor) => Promise<Float32Array>,
): Promise<StepDiff[]> {
  const rows: StepDiff[] = [];
  for (const spec of headSpecs(prefix, inDim, dims)) {
    const key = filePrefix + spec.name.slice(prefix.length);
    const ref = tensors.get(key);
    if (!ref) continue;
    rows.push(diff(key, toTorch(spec, await values(key, p.get(spec.name)!)), ref));
  }
  return rows;
}

const read = async (_name: string, t: tf.Tensor) => (await t.data()) as Float32Array;

async function replayV2(
  tensors: Map<string, NamedTensor>,
  s: Record<string, number>,
): Promise<StepDiff[]> {
  const emb = need(tensors, "embeddings");
  const [n, inDim] = emb.shape;
  const l1 = need(tensors, "init.student.layer1.0.weight").shape[0];
  const l2 = need(tensors, "init.student.layer2.0.weight").shape[0];
  const l3 = need(tensors, "init.student.layer3.0.weight").shape[0];
  const dims: [number, number, number] = [l1, l2, l3];
  const student = loadHead(tensors, "init.student", "student", inDim, dims);
  const teacher = loadHead(tensors, "init.teacher", "teacher", inDim, dims);
  const embeddings = tf.variable(tf.tensor2d(emb.data, [n, inDim]));
  const optimizer = new AdamW(student);
  const rows: StepDiff[] = [];
  try {
    for (let k = 0; k < s.steps; k++) {
      const lr = s.lr * warmupCosine(k, { warmupSteps: s.warmup, totalSteps: s.total });
      const at = (name: string) => tensors.get(`step${k}.${name}`);
      const labelsRef = need(tensors, `step${k}.labels`);
      const maskRef = need(tensors, `step${k}.dropout_mask`);
      // The reference updates the teacher after the student's forward pass, from weights
      // that pass does not change: updating it first is the same.
      emaUpdate(teacher, student, 0.9);
      const terms: Record<string, tf.Tensor> = {};
      const { grads } = tf.variableGrads(() => {
        const labels = tf.tensor3d(labelsRef.data, labelsRef.shape as [number, number, number]);
        const mask = tf.tensor2d(maskRef.data, [n, 1]);
        const sOut = headForward(tf.mul(embeddings, mask) as tf.Tensor2D, student, "student");
        const tOut = headForward(embeddings, teacher, "teacher");
        const t = vocoLossV2(sOut, tOut, labels);
        for (const [name, v] of Object.entries(t)) terms[name] = tf.keep(v);
        return t.loss;
      }, [embeddings, ...student.values()]);
      for (const name of ["loss", "intra", "inter", "reg"]) {
        const ref = at(name);
        if (ref) rows.push(diff(`step${k}.${name}`, await terms[name].data(), ref));
      }
      const lrRef = at("lr");
      if (lrRef) rows.push(diff(`step${k}.lr`, [lr], lrRef));
      const gEmb = at("grad.embeddings");
      if (gEmb) {
        rows.push(diff(`step${k}.grad.embeddings`, await grads[embeddings.name].data(), gEmb));
      }
      for (const spec of headSpecs("student", inDim, dims)) {
        const key = `step${k}.grad.${spec.name}`;
        const ref = tensors.get(key);
        const g = grads[student.get(spec.name)!.name];
        if (ref) rows.push(diff(key, toTorch(spec, await read(key, g)), ref));
      }
      const studentGrads = new Map(
        [...student].map(([name, v]) => [name, grads[v.name]] as [string, tf.Tensor]),
      );
      optimizer.step(studentGrads, lr);
      tf.dispose([...Object.values(grads), ...Object.values(terms)]);
    }
    rows.push(...await headDiffs(student, "student", inDim, dims, tensors, "final.student", read));
    rows.push(...await headDiffs(teacher, "teacher", inDim, dims, tensors, "final.teacher", read));
  } finally {
    optimizer.dispose();
    tf.dispose([embeddings, ...student.values(), ...teacher.values()]);
  }
  return rows;
}

async function replayV1(tensors: Map<string, NamedTensor>): Promise<StepDiff[]> {
  const s = need(tensors, "student"), t = need(tensors, "teacher"), y = need(tensors, "labels");
  const student = tf.variable(tf.tensor2d(s.data, s.shape as [number, number]));
  const rows: StepDiff[] = [];
  try {
    const terms: Record<string, tf.Tensor> = {};
    const { grads } = tf.variableGrads(() => {
      const teacher = tf.tensor2d(t.data, t.shape as [number, number]);
      const labels = tf.tensor3d(y.data, y.shape as [number, number, number]);
      const out = vocoLossV1(student, teacher, labels);
      for (const [name, v] of Object.entries(out)) terms[name] = tf.keep(v);
      return out.loss;
    }, [student]);
    for (const name of ["pos", "neg", "reg", "loss"]) {
      const ref = tensors.get(name);
      if (ref) rows.push(diff(name, await terms[name].data(), ref));
    }
    const g = tensors.get("grad.student");
    if (g) rows.push(diff("grad.student", await grads[student.name].data(), g));
    tf.dispose([...Object.values(grads), ...Object.values(terms)]);
  } finally {
    student.dispose();
  }
  return rows;
}

/**
 * Replays a reference step file on the current backend and compares every quantity it
 * records: for `v2`, per step the loss terms, the learning rate, the gradients of the
 * embeddings (and of the student head at step 0), then both heads after the last AdamW
 * step; for `v1`, the loss terms and the gradient of the student's projections. A
 * bad-input error names `file`, when given.
 */
export async function replayVocoStep(bytes: Uint8Array, file?: string): Promise<StepReplay> {
  try {
    return await replay(bytes);
  } catch (e) {
    if (file === undefined || errorKind(e) !== "bad-input") throw e;
    throw new BadInputError(`${file}: ${(e as Error).message}`, { cause: e, path: file });
  }
}

async function replay(bytes: Uint8Array): Promise<StepReplay> {
  const { tensors, metadata } = readSafetensors(bytes);
  let settings: Record<string, unknown>;
  try {
    settings = JSON.parse(metadata.description ?? "{}");
  } catch {
    throw new BadInputError("The step file's metadata description is not JSON");
  }
  const version = settings.version;
  if (version !== "v1" && version !== "v2") {
    throw new BadInputError(`The step file names no VoCo version (v1 or v2), got "${version}"`);
  }
  const rows = version === "v2"
    ? await replayV2(tensors, settings as Record<string, number>)
    : await replayV1(tensors);
  return { version, settings, rows };
}
