// A kernel worker thread of `_pool.ts`: instantiates the kernel modules on their shared
// memories, then runs its part of each job and counts itself done.
import { parentPort } from "node:worker_threads";

interface Init {
  modules: { module: WebAssembly.Module; memory: WebAssembly.Memory; names: string[] }[];
  ctl: SharedArrayBuffer;
  jobs: SharedArrayBuffer;
  index: number;
  gen: number;
}

parentPort!.once("message", ({ modules, ctl: c, jobs: j, index, gen }: Init) => {
  const fns: ((...args: number[]) => void)[] = [];
  for (const { module, memory, names } of modules) {
    const instance = new WebAssembly.Instance(module, { env: { memory } });
    for (const name of names) fns.push(instance.exports[name] as (...args: number[]) => void);
  }
  const ctl = new Int32Array(c), jobs = new Float64Array(j);
  Atomics.add(ctl, 2, 1);
  Atomics.notify(ctl, 2);
  for (;;) {
    Atomics.wait(ctl, 0, gen);
    gen = Atomics.load(ctl, 0);
    // Workers past the job's parts only count themselves done.
    if (index < Atomics.load(ctl, 4)) {
      try {
        let at = jobs[2 * index];
        for (let i = 0, calls = jobs[2 * index + 1]; i < calls; i++) {
          const length = jobs[at], fn = jobs[at + 1];
          const args: number[] = [];
          for (let a = 2; a <= length; a++) args.push(jobs[at + a]);
          fns[fn](...args);
          at += length + 1;
        }
      } catch {
        Atomics.store(ctl, 3, 1);
      }
    }
    if (Atomics.sub(ctl, 1, 1) === 1) Atomics.notify(ctl, 1);
  }
});
