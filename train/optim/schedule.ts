// The learning-rate schedule of both VoCo references: linear warm-up, then cosine decay
// (`WarmupCosineSchedule`), a pure function of the step so that resuming needs only it.

/** Options of {@linkcode warmupCosine}. */
export interface WarmupCosineOptions {
  /** Steps of linear warm-up from 0. */
  warmupSteps: number;
  /** The run's total steps (the cosine reaches 0 there). */
  totalSteps: number;
  /** Cosine cycles over the decay. @default {0.5} */
  cycles?: number;
}

/**
 * The learning-rate factor of optimiser step `step` (0-based), as the reference's
 * `WarmupCosineSchedule.lr_lambda`: `step / warmup` during warm-up (so step 0 runs at lr
 * 0), then `max(0, 0.5 (1 + cos(2 pi cycles progress)))`.
 *
 * @example
 * ```ts
 * import { warmupCosine } from "./schedule.ts";
 * const f = [0, 1, 2].map((s) => warmupCosine(s, { warmupSteps: 2, totalSteps: 10 }));
 * if (f.join() !== "0,0.5,1") throw new Error(f.join());
 * ```
 */
export function warmupCosine(step: number, options: WarmupCosineOptions): number {
  const { warmupSteps, totalSteps, cycles = 0.5 } = options;
  if (step < warmupSteps) return step / Math.max(1, warmupSteps);
  const progress = (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
  return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * cycles * 2 * progress)));
}
