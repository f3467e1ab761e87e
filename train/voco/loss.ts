// The VoCo losses of both reference versions on projections `[N, D]`: position logits
// (relu of cosine similarities), the positive, negative and regularisation terms, and the
// large-scale version's intra- and inter-volume terms. Formulas: ../shared/golden/README.md.
import * as tf from "@tensorflow/tfjs-core";

/**
 * The terms of each version's loss, in the order they are summed (the metrics' columns and
 * the progress line show these; `agreement`, mean |logit - label|, is logged beside them).
 */
export const LOSS_TERMS = { v2: ["intra", "inter", "reg"], v1: ["pos", "neg", "reg"] } as const;

/** The reference's epsilon inside its logarithms and denominators. */
const EPS = 1e-6;

/** Identity whose gradient is zero: PyTorch's `.detach()` / `torch.no_grad()`. */
export const stopGradient: (x: tf.Tensor) => tf.Tensor = tf.customGrad(
  (...args: (tf.Tensor | tf.GradSaveFunc)[]) => ({
    value: tf.clone(args[0] as tf.Tensor),
    gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
  }),
) as (x: tf.Tensor) => tf.Tensor;

/** Rows scaled to unit length (`[..., D]`), as in cosine similarity (eps 1e-8). */
function unit(x: tf.Tensor): tf.Tensor {
  const norm = tf.sqrt(tf.sum(tf.square(x), -1, true));
  return tf.div(x, tf.maximum(norm, 1e-8));
}

/**
 * `relu(cos(x_i, b_k))` for every crop i and base k of each volume: x `[B, S, D]`, bases
 * `[B, K, D]` -> `[B, S, K]` (the reference's `online_assign`).
 */
export function positionLogits(x: tf.Tensor3D, bases: tf.Tensor3D): tf.Tensor3D {
  return tf.relu(tf.matMul(unit(x), unit(bases), false, true)) as tf.Tensor3D;
}

/** Sums over the last two axes of `[B, S, K]` -> `[B]`. */
function perVolume(x: tf.Tensor): tf.Tensor1D {
  return tf.sum(x, [1, 2]) as tf.Tensor1D;
}

/** Positive term per volume: `-sum(y log(1 - |y - l| + eps)) / (sum(y) + eps)`. */
function positiveTerm(labels: tf.Tensor3D, logits: tf.Tensor3D): tf.Tensor1D {
  const dist = tf.abs(tf.sub(labels, logits));
  const loss = tf.neg(tf.mul(labels, tf.log(tf.add(tf.sub(1, dist), EPS))));
  return tf.div(perVolume(loss), tf.add(perVolume(labels), EPS)) as tf.Tensor1D;
}

/** `[y = 0]` as 0/1 floats, without gradient (tfjs' `equal` has none to pass through). */
const zeroMask: (labels: tf.Tensor3D) => tf.Tensor3D = tf.customGrad(
  (...args: (tf.Tensor | tf.GradSaveFunc)[]) => ({
    value: tf.cast(tf.equal(args[0] as tf.Tensor, 0), "float32"),
    gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
  }),
) as (labels: tf.Tensor3D) => tf.Tensor3D;

/** Large-scale negative term per volume: `-sum([y=0] log(1 - l + eps)) / (sum([y=0]) + eps)`. */
function negativeLogTerm(labels: tf.Tensor3D, logits: tf.Tensor3D): tf.Tensor1D {
  const neg = zeroMask(labels);
  const loss = tf.neg(tf.mul(neg, tf.log(tf.add(tf.sub(1, logits), EPS))));
  return tf.div(perVolume(loss), tf.add(perVolume(neg), EPS)) as tf.Tensor1D;
}

/** CVPR negative term per volume: `sum([y=0] l^2) / (sum([y=0]) + eps)`. */
function negativeSquareTerm(labels: tf.Tensor3D, logits: tf.Tensor3D): tf.Tensor1D {
  const neg = zeroMask(labels);
  const loss = tf.mul(neg, tf.square(logits));
  return tf.div(perVolume(loss), tf.add(perVolume(neg), EPS)) as tf.Tensor1D;
}

/**
 * Regularisation per volume: the mean over base pairs i < j of `relu(cos(b_i, b_j))^2`,
 * the second of each pair without gradient. bases `[B, K, D]` -> `[B]`.
 */
export function regularisation(bases: tf.Tensor3D): tf.Tensor1D {
  const k = bases.shape[1];
  const n = unit(bases);
  const cos = tf.relu(tf.matMul(n, stopGradient(n), false, true));
  const upper = new Float32Array(k * k);
  for (let i = 0; i < k; i++) for (let j = i + 1; j < k; j++) upper[i * k + j] = 1;
  const pairs = tf.mul(tf.square(cos), tf.tensor3d(upper, [1, k, k]));
  return tf.div(perVolume(pairs), (k * (k - 1)) / 2) as tf.Tensor1D;
}

/** Splits `[N, D]` rows into the random crops `[B, S, D]` and the bases `[B, K, D]`. */
export function splitRows(
  rows: tf.Tensor2D,
  batch: number,
  crops: number,
): { x: tf.Tensor3D; bases: tf.Tensor3D } {
  const [n, d] = rows.shape;
  const randoms = batch * crops;
  const k = (n - randoms) / batch;
  if (!Number.isInteger(k) || k < 2) {
    throw new RangeError(`${n} rows do not split into ${batch} x ${crops} crops and bases`);
  }
  return {
    x: tf.reshape(tf.slice(rows, [0, 0], [randoms, d]), [batch, crops, d]),
    bases: tf.reshape(tf.slice(rows, [randoms, 0], [n - randoms, d]), [batch, k, d]),
  };
}

/** The terms of the large-scale (v2) loss, each averaged over the batch. */
export interface VocoV2Terms {
  /** `intra + inter + reg`. */
  loss: tf.Scalar;
  /** Positive + negative term of the student's crops against the teacher's bases. */
  intra: tf.Scalar;
  /** The same against the next volume's bases, the teacher's logits as labels. */
  inter: tf.Scalar;
  /** Regularisation of the student's bases. */
  reg: tf.Scalar;
  /** Mean |logit - label| of the intra-volume logits: how well positions are predicted. */
  agreement: tf.Scalar;
}

/**
 * The large-scale VoCo loss. `student` and `teacher` are the two heads' projections
 * `[N, D]` (rows: the `B * S` random crops volume by volume, then the `B * K` bases);
 * `labels` `[B, S, K]` the overlap labels. The teacher gets no gradient.
 */
export function vocoLossV2(
  student: tf.Tensor2D,
  teacher: tf.Tensor2D,
  labels: tf.Tensor3D,
): VocoV2Terms {
  const [batch, crops] = labels.shape;
  const s = splitRows(student, batch, crops);
  const t = splitRows(stopGradient(teacher) as tf.Tensor2D, batch, crops);
  const intraLogits = positionLogits(s.x, t.bases);
  const intra = tf.add(positiveTerm(labels, intraLogits), negativeLogTerm(labels, intraLogits));
  // Volume i against volume j = (i + 1) mod B: its bases rolled by one along the batch.
  const roll = (b: tf.Tensor3D) =>
    batch === 1 ? b : tf.concat([
      tf.slice(b, [1, 0, 0], [batch - 1, -1, -1]),
      tf.slice(b, [0, 0, 0], [1, -1, -1]),
    ], 0);
  const interLabels = positionLogits(t.x, roll(t.bases) as tf.Tensor3D);
  const interLogits = positionLogits(s.x, roll(s.bases) as tf.Tensor3D);
  const inter = tf.add(
    positiveTerm(interLabels, interLogits),
    negativeLogTerm(interLabels, interLogits),
  );
  const reg = regularisation(s.bases);
  const intraMean = tf.mean(intra) as tf.Scalar;
  const interMean = tf.mean(inter) as tf.Scalar;
  const regMean = tf.mean(reg) as tf.Scalar;
  return {
    loss: tf.add(tf.add(intraMean, interMean), regMean) as tf.Scalar,
    intra: intraMean,
    inter: interMean,
    reg: regMean,
    agreement: tf.mean(tf.abs(tf.sub(intraLogits, labels))) as tf.Scalar,
  };
}

/** The terms of the CVPR (v1) loss, each averaged over the batch. */
export interface VocoV1Terms {
  /** `pos + neg + reg`. */
  loss: tf.Scalar;
  /** Positive term. */
  pos: tf.Scalar;
  /** Negative term (squared logits where the label is 0). */
  neg: tf.Scalar;
  /** Regularisation of the student's bases. */
  reg: tf.Scalar;
  /** Mean |logit - label|. */
  agreement: tf.Scalar;
}

/**
 * The CVPR VoCo loss: logits the mean of (student crops vs teacher bases) and (teacher
 * crops vs student bases). Rows and labels as {@linkcode vocoLossV2}; the teacher gets no
 * gradient.
 */
export function vocoLossV1(
  student: tf.Tensor2D,
  teacher: tf.Tensor2D,
  labels: tf.Tensor3D,
): VocoV1Terms {
  const [batch, crops] = labels.shape;
  const s = splitRows(student, batch, crops);
  const t = splitRows(stopGradient(teacher) as tf.Tensor2D, batch, crops);
  const logits = tf.mul(
    tf.add(positionLogits(s.x, t.bases), positionLogits(t.x, s.bases)),
    0.5,
  ) as tf.Tensor3D;
  const pos = tf.mean(positiveTerm(labels, logits)) as tf.Scalar;
  const neg = tf.mean(negativeSquareTerm(labels, logits)) as tf.Scalar;
  const reg = tf.mean(regularisation(s.bases)) as tf.Scalar;
  const agreement = tf.mean(tf.abs(tf.sub(logits, labels))) as tf.Scalar;
  return { loss: tf.add(tf.add(pos, neg), reg) as tf.Scalar, pos, neg, reg, agreement };
}
