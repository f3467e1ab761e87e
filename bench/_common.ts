// What the benchmarks share: their scratch folder, the shared example CT, peak memory.

/** Scratch folder of the benchmarks (`.tmp/bench/` in the repository, ignored by git). */
export const BENCH_DIR = new URL("../.tmp/bench/", import.meta.url).pathname;

/** The shared example CT, beside the repository (absent in a plain clone). */
export const SHARED_CT = new URL("../../shared/data/ct/example_ct.nii.gz", import.meta.url)
  .pathname;

/** Peak resident memory of this process so far (VmHWM), in bytes. */
export function peakRss(): number {
  const m = Deno.readTextFileSync("/proc/self/status").match(/VmHWM:\s+(\d+) kB/);
  return m ? Number(m[1]) * 1024 : Deno.memoryUsage().rss;
}
