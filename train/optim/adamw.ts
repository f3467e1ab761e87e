// AdamW with amsgrad exactly as PyTorch's `torch.optim.AdamW` (decoupled weight decay on
// every parameter, bias-corrected moments, the running maximum of the second moment), and
// global-norm gradient clipping as `clip_grad_norm_`. tfjs ops only, so any backend runs it.
import * as tf from "@tensorflow/tfjs-core";

/** Options of {@linkcode AdamW}; the defaults are PyTorch's. */
export interface AdamWOptions {
  /** First-moment decay. @default {0.9} */
  beta1?: number;
  /** Second-moment decay. @default {0.999} */
  beta2?: number;
  /** Added to the denominator. @default {1e-8} */
  eps?: number;
  /** Decoupled weight decay, applied to every parameter (biases too). @default {0.01} */
  weightDecay?: number;
  /** Keep the running maximum of the second moment. @default {true} */
  amsgrad?: boolean;
}

/** The moments of one parameter. */
interface Moments {
  m: tf.Variable;
  v: tf.Variable;
  vMax?: tf.Variable;
}

/** AdamW over named variables; a parameter without a gradient in a step is left alone. */
export class AdamW {
  /** Optimiser steps taken (PyTorch's per-parameter `step`, the same for all here). */
  stepCount = 0;
  readonly #params: Map<string, tf.Variable>;
  readonly #moments = new Map<string, Moments>();
  readonly #o: Required<AdamWOptions>;

  /** Makes an optimiser over `params` (the map is read at every step, not copied). */
  constructor(params: Map<string, tf.Variable>, options: AdamWOptions = {}) {
    this.#params = params;
    this.#o = {
      beta1: options.beta1 ?? 0.9,
      beta2: options.beta2 ?? 0.999,
      eps: options.eps ?? 1e-8,
      weightDecay: options.weightDecay ?? 0.01,
      amsgrad: options.amsgrad ?? true,
    };
  }

  #momentsOf(name: string, p: tf.Variable): Moments {
    let s = this.#moments.get(name);
    if (!s) {
      const zero = () => {
        // The zeros are the variable's first value only: freed once it is assigned.
        const z = tf.zerosLike(p);
        const v = tf.variable(z, false);
        z.dispose();
        return v;
      };
      s = { m: zero(), v: zero(), vMax: this.#o.amsgrad ? zero() : undefined };
      this.#moments.set(name, s);
    }
    return s;
  }

  /** One step at learning rate `lr` with `grads` by parameter name. */
  step(grads: Map<string, tf.Tensor> | Record<string, tf.Tensor>, lr: number): void {
    const { beta1, beta2, eps, weightDecay, amsgrad } = this.#o;
    this.stepCount++;
    const bc1 = 1 - beta1 ** this.stepCount;
    const bc2Sqrt = Math.sqrt(1 - beta2 ** this.stepCount);
    const entries = grads instanceof Map ? [...grads] : Object.entries(grads);
    for (const [name, g] of entries) {
      const p = this.#params.get(name);
      if (!p) throw new RangeError(`Gradient for unknown parameter ${name}`);
      const s = this.#momentsOf(name, p);
      // The ops of one expression, each part in its own scope so that only a few
      // parameter-sized temporaries live at once (the largest weight is 64 MB at feature
      // size 48).
      const decayed = tf.tidy(() => tf.mul(p, 1 - lr * weightDecay));
      const m = tf.tidy(() => tf.add(tf.mul(s.m, beta1), tf.mul(g, 1 - beta1)));
      s.m.assign(m);
      const v = tf.tidy(() => tf.add(tf.mul(s.v, beta2), tf.mul(tf.mul(g, g), 1 - beta2)));
      s.v.assign(v);
      let second: tf.Tensor = v;
      if (amsgrad && s.vMax) {
        second = tf.maximum(s.vMax, v);
        s.vMax.assign(second);
      }
      const denom = tf.tidy(() => tf.add(tf.div(tf.sqrt(second), bc2Sqrt), eps));
      const update = tf.tidy(() => tf.mul(tf.div(m, denom), lr / bc1));
      const next = tf.tidy(() => tf.sub(decayed, update));
      p.assign(next);
      tf.dispose([decayed, m, v, second, denom, update, next]);
    }
  }

  /** The moments as plain tensors by name (`<param>.m`, `.v`, `.v_max`), for checkpoints. */
  state(): Map<string, tf.Variable> {
    const out = new Map<string, tf.Variable>();
    for (const [name, s] of this.#moments) {
      out.set(`${name}.m`, s.m);
      out.set(`${name}.v`, s.v);
      if (s.vMax) out.set(`${name}.v_max`, s.vMax);
    }
    return out;
  }

  /** Restores moments written by {@linkcode state} (values in tfjs layout) and the step. */
  load(state: Map<string, { shape: number[]; data: Float32Array }>, stepCount: number): void {
    this.stepCount = stepCount;
    for (const [name, p] of this.#params) {
      const m = state.get(`${name}.m`);
      if (!m) continue;
      const s = this.#momentsOf(name, p);
      const set = (v: tf.Variable | undefined, t?: { shape: number[]; data: Float32Array }) => {
        if (!v || !t) return;
        if (t.data.length !== p.size) {
          throw new RangeError(
            `Optimiser state of ${name} has ${t.data.length} values, expected ${p.size}`,
          );
        }
        const value = tf.tensor(t.data, p.shape);
        v.assign(value);
        value.dispose();
      };
      set(s.m, m);
      set(s.v, state.get(`${name}.v`));
      set(s.vMax, state.get(`${name}.v_max`));
    }
  }

  /** Frees the moments. */
  dispose(): void {
    for (const s of this.#moments.values()) tf.dispose([s.m, s.v, ...(s.vMax ? [s.vMax] : [])]);
    this.#moments.clear();
  }
}

/**
 * Scales `grads` in place so that their global L2 norm is at most `maxNorm`, as
 * `torch.nn.utils.clip_grad_norm_` (factor `maxNorm / (norm + 1e-6)`, never above 1).
 * Resolves to the norm before clipping.
 */
export async function clipGradNorm(
  grads: Map<string, tf.Tensor>,
  maxNorm: number,
): Promise<number> {
  const total = await gradNorm(grads);
  const factor = Math.min(1, maxNorm / (total + 1e-6));
  if (factor < 1) {
    for (const [name, g] of grads) {
      grads.set(name, tf.tidy(() => tf.mul(g, factor)));
      g.dispose();
    }
  }
  return total;
}

/** The global L2 norm of `grads` (NaN or infinite when a gradient is). */
export async function gradNorm(grads: Map<string, tf.Tensor>): Promise<number> {
  if (grads.size === 0) return 0;
  const norm = tf.tidy(() =>
    tf.sqrt(tf.addN([...grads.values()].map((g) => tf.sum(tf.square(g)))))
  );
  const total = (await norm.data())[0];
  norm.dispose();
  return total;
}
