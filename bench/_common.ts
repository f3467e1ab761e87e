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
