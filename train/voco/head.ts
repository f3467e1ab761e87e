// The VoCo projection heads: Linear, BatchNorm1d (no affine, batch statistics), ReLU,
// twice, then Linear, under a name prefix (`student.`, `teacher.`, or the backbone's
// `head.`), with PyTorch's default initialisation and the teacher's EMA update.
import * as tf from "@tensorflow/tfjs-core";
import type { Params, ParamSpec } from "../swin/params.ts";
import { toVariable } from "../swin/params.ts";
import { batchNorm, linear } from "../swin/layers.ts";

/** The parameters of a head `inDim -> dims[0] -> dims[1] -> dims[2]`, PyTorch shapes. */
export function headSpecs(
  prefix: string,
  inDim: number,
  dims: readonly [number, number, number],
): ParamSpec[] {
  const out: ParamSpec[] = [];
  let fanIn = inDim;
  dims.forEach((d, i) => {
    out.push({ name: `${prefix}.layer${i + 1}.0.weight`, torchShape: [d, fanIn], kind: "linear" });
    out.push({ name: `${prefix}.layer${i + 1}.0.bias`, torchShape: [d], kind: "vector" });
    fanIn = d;
  });
  return out;
}

/**
 * A fresh head initialised as `torch.nn.Linear` is (weights and biases uniform in
 * `±1/sqrt(fan_in)`: Kaiming-uniform with a = sqrt(5)); BatchNorm has no parameters.
 * `random` gives uniforms in [0, 1).
 */
export function initHead(
  prefix: string,
  inDim: number,
  dims: readonly [number, number, number],
  random: () => number,
): Params {
  const params: Params = new Map();
  const specs = headSpecs(prefix, inDim, dims);
  for (let i = 0; i < specs.length; i += 2) {
    const bound = 1 / Math.sqrt(specs[i].torchShape[1]);
    for (const spec of [specs[i], specs[i + 1]]) {
      const data = new Float32Array(spec.torchShape.reduce((a, b) => a * b, 1));
      for (let j = 0; j < data.length; j++) data[j] = (2 * random() - 1) * bound;
      params.set(spec.name, toVariable(spec, data));
    }
  }
  return params;
}

/** The head's forward pass on features `[N, inDim]` (batch statistics over all N rows). */
export function headForward(features: tf.Tensor2D, p: Params, prefix: string): tf.Tensor2D {
  let y = tf.relu(batchNorm(linear(features, p, `${prefix}.layer1.0`) as tf.Tensor2D));
  y = tf.relu(batchNorm(linear(y, p, `${prefix}.layer2.0`) as tf.Tensor2D));
  return linear(y, p, `${prefix}.layer3.0`) as tf.Tensor2D;
}

/**
 * The teacher's EMA update, as the references (before the teacher's forward pass, with
 * the student's weights before this step's optimiser update): `t = m t + (1 - m) s` for
 * every teacher parameter, whose name is the student's with `from` replaced by `to`.
 */
export function emaUpdate(
  teacher: Params,
  student: Params,
  momentum: number,
  from = "student.",
  to = "teacher.",
): void {
  for (const [name, s] of student) {
    const t = teacher.get(name.startsWith(from) ? to + name.slice(from.length) : name);
    if (!t) throw new RangeError(`The teacher has no parameter for ${name}`);
    tf.tidy(() => t.assign(tf.add(tf.mul(t, momentum), tf.mul(s, 1 - momentum))));
  }
}
