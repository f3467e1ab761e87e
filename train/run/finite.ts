// Training state must stay finite: a NaN or infinity in a loss, a gradient, a weight read
// from a file or about to be saved stops the run (or is refused) naming where it is, so a
// diverged step never overwrites the good checkpoints.

/** A run stopped because a value became NaN or infinite (the good checkpoints are kept). */
export class NonFiniteError extends Error {
  /** The step at which it happened (0 when reading files). */
  readonly step: number;
  /** Makes the error. */
  constructor(message: string, step = 0) {
    super(message);
    this.name = "NonFiniteError";
    this.step = step;
  }
}

/** Index of the first NaN or infinite value of `data`, or -1. */
export function firstNonFinite(data: ArrayLike<number>): number {
  for (let i = 0; i < data.length; i++) {
    const x = data[i];
    // x - x is 0 for every finite x, NaN for NaN and infinities.
    if (x - x !== 0) return i;
  }
  return -1;
}

/**
 * Names of the tensors of `tensors` holding a NaN or an infinity (at most `max`), with
 * the first such value: `["model.backbone.x (NaN at 12)"]`.
 */
export function nonFiniteTensors(
  tensors: Iterable<[string, { data: ArrayLike<number> }]>,
  max = 3,
): { names: string[]; count: number } {
  const names: string[] = [];
  let count = 0;
  for (const [name, t] of tensors) {
    const i = firstNonFinite(t.data);
    if (i < 0) continue;
    if (count++ < max) names.push(`${name} (${t.data[i]} at ${i})`);
  }
  return { names, count };
}

/** The error of a step whose loss or gradient is NaN or infinite (nothing was updated). */
export function divergedError(
  step: number,
  terms: Record<string, number>,
  norm: number,
  checkpoint?: string,
): NonFiniteError {
  const shown = Object.entries(terms).map(([k, v]) => `${k} ${v}`).join(", ");
  return new NonFiniteError(
    `Step ${step} diverged: ${!Number.isFinite(terms.loss) ? "the loss" : "the gradient"} is ` +
      `not finite (${shown}; gradient norm ${norm}). Stopped before updating the weights; ` +
      (checkpoint
        ? `the checkpoints are kept (newest ${checkpoint}). `
        : "no checkpoint was written. ") +
      "A lower --lr, a --grad-clip or a longer --warmup-steps, in a new run, may avoid it",
    step,
  );
}
