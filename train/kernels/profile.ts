// A per-op profile of whatever runs between start and stop: every tfjs kernel of the
// backend (wrapped in the kernel registry while profiling) and every labelled region of our
// own kernels, each timed exclusive of what runs inside it, split into forward and backward
// (tfjs' gradient pass runs inside a scope named "backward"). Off, a region costs one check.
import * as tf from "@tensorflow/tfjs-core";

/** Time and calls of one op in one direction. */
export interface OpTime {
  /** Exclusive milliseconds (time in nested regions and kernels not counted). */
  ms: number;
  /** Calls. */
  calls: number;
}

/** What {@linkcode stopOpProfile} returns. */
export interface OpProfile {
  /** Wall milliseconds from start to stop. */
  wallMs: number;
  /** Per op label: forward and backward times. */
  ops: Map<string, { forward: OpTime; backward: OpTime }>;
}

interface Frame {
  label: string;
  start: number;
  child: number;
  backward: boolean;
}

let active: { started: number; ops: OpProfile["ops"]; restore: () => void } | undefined;
const stack: Frame[] = [];

/** True while a profile is being recorded. */
export function profiling(): boolean {
  return active !== undefined;
}

function inBackward(): boolean {
  // The engine's scope stack; tfjs names the gradient pass's scope "backward".
  const state = (tf.engine() as unknown as { state: { scopeStack: { name: string }[] } }).state;
  return state.scopeStack.some((s) => s.name === "backward");
}

function enter(label: string): void {
  stack.push({ label, start: performance.now(), child: 0, backward: inBackward() });
}

function exit(): void {
  const f = stack.pop()!;
  const elapsed = performance.now() - f.start;
  if (stack.length) stack[stack.length - 1].child += elapsed;
  if (!active) return;
  let op = active.ops.get(f.label);
  if (!op) {
    active.ops.set(f.label, op = { forward: { ms: 0, calls: 0 }, backward: { ms: 0, calls: 0 } });
  }
  const side = f.backward ? op.backward : op.forward;
  side.ms += elapsed - f.child;
  side.calls++;
}

/**
 * Runs `fn`, timed under `label` while a profile is recorded (exclusive of the regions and
 * kernels inside it); otherwise just runs it.
 */
export function timed<T>(label: string, fn: () => T): T {
  if (!active) return fn();
  enter(label);
  try {
    return fn();
  } finally {
    exit();
  }
}

/**
 * Starts recording: wraps every kernel registered for the current backend so that each
 * call is timed as `tfjs <KernelName>`. Kernels on the CPU backends run synchronously, so
 * their time is their call's time.
 */
export function startOpProfile(): void {
  if (active) throw new Error("an op profile is already being recorded");
  const backend = tf.getBackend();
  const originals = tf.getKernelsForBackend(backend);
  for (const k of originals) {
    tf.unregisterKernel(k.kernelName, backend);
    const label = `tfjs ${k.kernelName}`;
    const run = k.kernelFunc;
    tf.registerKernel({ ...k, kernelFunc: (args) => timed(label, () => run(args)) });
  }
  const restore = () => {
    for (const k of originals) {
      tf.unregisterKernel(k.kernelName, backend);
      tf.registerKernel(k);
    }
  };
  active = { started: performance.now(), ops: new Map(), restore };
}

/** Stops recording, puts the kernels back, and returns the profile. */
export function stopOpProfile(): OpProfile {
  if (!active) throw new Error("no op profile is being recorded");
  const { started, ops, restore } = active;
  active = undefined;
  restore();
  return { wallMs: performance.now() - started, ops };
}
