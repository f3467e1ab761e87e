// What the benchmarks share: their scratch folder, the shared example CT, peak memory.
import { peakRss as runPeakRss } from "../train/run/dry_run.ts";

/** Scratch folder of the benchmarks (`.tmp/bench/` in the repository, ignored by git). */
export const BENCH_DIR = new URL("../.tmp/bench/", import.meta.url).pathname;

/** The shared example CT, beside the repository (absent in a plain clone). */
export const SHARED_CT = new URL("../../shared/data/ct/example_ct.nii.gz", import.meta.url)
  .pathname;

/** Peak resident memory of this process so far (VmHWM, else the current RSS), in bytes. */
export function peakRss(): number {
  return runPeakRss() ?? Deno.memoryUsage().rss;
}

/**
 * CPU seconds used so far by this process (every thread) and by its main thread, from
 * /proc (zeros where there is none): on a machine shared with others, CPU time moves less
 * than wall time, so before/after comparisons can quote both.
 */
export function cpuSeconds(): { process: number; main: number } {
  const ticks = (path: string) => {
    try {
      // Fields after the command name (which may hold spaces): utime and stime are 14, 15.
      const stat = Deno.readTextFileSync(path);
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      return (Number(f[11]) + Number(f[12])) / 100;
    } catch {
      return 0;
    }
  };
  return { process: ticks("/proc/self/stat"), main: ticks(`/proc/self/task/${Deno.pid}/stat`) };
}
