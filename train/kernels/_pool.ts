// Runs kernel calls on every core: worker threads that instantiate the kernel modules on
// their shared memories (`_wasm.ts`), wait on a SharedArrayBuffer with Atomics.wait and run
// their part of a job, while the calling thread runs part 0 and then waits for the rest.
// A job is a fixed list of parts (each a list of kernel calls) that write disjoint memory,
// so the result does not depend on which thread runs which part, or on timing.
import { Worker } from "node:worker_threads";
import type { KernelModule } from "./_wasm.ts";
import { BadInputError } from "../../cache/errors.ts";

/** One kernel call: the function's id from {@linkcode registerKernels}, then its arguments. */
export type Call = number[];

/** Most threads used by default, whatever the machine has. */
const DEFAULT_CAP = 8;
/** Floats of the job buffer: calls beyond it run on the calling thread alone. */
const JOB_FLOATS = 1 << 20;

interface Registered {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  names: string[];
}

const registered: Registered[] = [];
const local: ((...args: number[]) => void)[] = [];
let threads = defaultThreads();

interface Pool {
  workers: Worker[];
  ctl: Int32Array;
  jobs: Float64Array;
}
let pool: Pool | undefined;

// ctl: [0] job generation, [1] workers not done, [2] workers ready, [3] error, [4] parts.
const GEN = 0, LEFT = 1, READY = 2, ERROR = 3, PARTS = 4;

function defaultThreads(): number {
  let env: string | undefined;
  try {
    env = Deno.env.get("VOCO_THREADS");
  } catch {
    // No --allow-env: the machine's count.
  }
  if (env) {
    const n = Number(env);
    if (!Number.isInteger(n) || n < 1) {
      throw new BadInputError(`VOCO_THREADS must be a positive integer, got "${env}"`);
    }
    return n;
  }
  return Math.max(1, Math.min(DEFAULT_CAP, navigator.hardwareConcurrency || 1));
}

/**
 * Threads the kernels split their work over: `VOCO_THREADS` when set, else the machine's
 * cores (at most 8). 1 runs everything on the calling thread.
 */
export function kernelThreads(): number {
  return threads;
}

/** Sets the kernels' thread count (1 = calling thread only); returns the previous one. */
export function setKernelThreads(n: number): number {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`threads must be >= 1, got ${n}`);
  const before = threads;
  threads = n;
  return before;
}

/**
 * Makes `names` (exports of `kernels`' module) callable in jobs; returns their ids. Workers
 * instantiate every registered module; registering after they started restarts them.
 */
export function registerKernels<N extends string>(
  kernels: KernelModule,
  names: readonly N[],
): Record<N, number> {
  registered.push({ module: kernels.module, memory: kernels.memory, names: [...names] });
  const ids = {} as Record<N, number>;
  for (const name of names) {
    ids[name] = local.length;
    local.push(kernels.instance.exports[name] as (...args: number[]) => void);
  }
  if (pool) stopPool();
  // Start the workers (about a second) while the caller sets up, once every module that
  // loads with this one has registered.
  if (threads > 1 && !prestarting) {
    prestarting = true;
    setTimeout(() => {
      if (threads > 1) spawnWorkers(threads - 1);
    }, 0);
  }
  return ids;
}
let prestarting = false;

function stopPool(): void {
  for (const w of pool!.workers) w.terminate();
  pool = undefined;
}

/** Starts workers until there are `count`, without waiting for them. */
function spawnWorkers(count: number): Pool {
  if (!pool) {
    pool = {
      workers: [],
      ctl: new Int32Array(new SharedArrayBuffer(64)),
      jobs: new Float64Array(new SharedArrayBuffer(JOB_FLOATS * 8)),
    };
  }
  const p = pool;
  while (p.workers.length < count) {
    const worker = new Worker(new URL("./_pool_worker.ts", import.meta.url));
    worker.unref();
    worker.postMessage({
      modules: registered,
      ctl: p.ctl.buffer,
      jobs: p.jobs.buffer,
      index: p.workers.length + 1,
      gen: Atomics.load(p.ctl, GEN),
    });
    p.workers.push(worker);
  }
  return p;
}

/** Starts workers until there are `count`, and waits (blocking) until they are ready. */
function ensureWorkers(count: number): Pool {
  const p = spawnWorkers(count);
  const deadline = performance.now() + 60_000;
  for (let ready; (ready = Atomics.load(p.ctl, READY)) < count;) {
    if (performance.now() > deadline) throw new Error("kernel worker threads did not start");
    Atomics.wait(p.ctl, READY, ready, 1000);
  }
  return p;
}

/** Writes parts 1.. into the job buffer; false when they do not fit. */
function encode(jobs: Float64Array, parts: Call[][]): boolean {
  let at = 2 * parts.length;
  for (let t = 1; t < parts.length; t++) {
    jobs[2 * t] = at;
    jobs[2 * t + 1] = parts[t].length;
    for (const call of parts[t]) {
      if (at + call.length + 1 > jobs.length) return false;
      jobs[at++] = call.length;
      for (const v of call) jobs[at++] = v;
    }
  }
  return true;
}

function runLocal(calls: Call[]): void {
  for (const [fn, ...args] of calls) local[fn](...args);
}

/**
 * Runs every part of a job, part t on thread t (the calling thread runs part 0), and
 * returns when all are done. Parts must write disjoint memory. With one part or one
 * thread, the calling thread runs the parts in order.
 */
export function runParts(parts: Call[][]): void {
  if (parts.length === 1 || threads === 1) {
    for (const part of parts) runLocal(part);
    return;
  }
  if (parts.length > threads) throw new RangeError(`${parts.length} parts for ${threads} threads`);
  const p = ensureWorkers(parts.length - 1);
  if (!encode(p.jobs, parts)) {
    for (const part of parts) runLocal(part);
    return;
  }
  const { ctl } = p;
  Atomics.store(ctl, ERROR, 0);
  Atomics.store(ctl, PARTS, parts.length);
  // Every worker counts itself done, idle ones included, so none can lag a job behind.
  Atomics.store(ctl, LEFT, p.workers.length);
  Atomics.add(ctl, GEN, 1);
  Atomics.notify(ctl, GEN);
  let failure: unknown;
  try {
    runLocal(parts[0]);
  } catch (e) {
    failure = e;
  }
  for (let left; (left = Atomics.load(ctl, LEFT)) > 0;) Atomics.wait(ctl, LEFT, left);
  if (failure) throw failure;
  if (Atomics.load(ctl, ERROR)) throw new Error("a kernel failed on a worker thread");
}

/** Splits `[0, n)` into `parts` contiguous ranges (the first ones one longer), fixed by n. */
export function split(n: number, parts: number): [number, number][] {
  const out: [number, number][] = [];
  for (let t = 0; t < parts; t++) {
    out.push([Math.floor((n * t) / parts), Math.floor((n * (t + 1)) / parts)]);
  }
  return out.filter(([a, b]) => b > a);
}
