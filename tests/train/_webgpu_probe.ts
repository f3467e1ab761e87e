// Run by kernels_test.ts in a child process (Deno's WebGPU teardown can abort the process
// at exit, which must not take the test runner down): every kernel on the cpu backend
// (typed-array kernels) and on webgpu (their stock-op fallbacks, read asynchronously),
// values and gradients. Prints "no adapter", or one JSON line of max differences.
import * as tf from "@tensorflow/tfjs-core";
import { useBackend } from "../../train/backend.ts";
import { STOCK_ATTENTION_LIMITS } from "../../train/kernels/window_attention.ts";
import { kernelCases, SMALL_SCORE_CHUNK } from "./_kernel_cases.ts";

const gpu = (navigator as unknown as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
if (!gpu || !(await gpu.requestAdapter().catch(() => null))) {
  console.log("no adapter");
  Deno.exit(0);
}
const ops = kernelCases();
STOCK_ATTENTION_LIMITS.scoreFloats = SMALL_SCORE_CHUNK;
await useBackend("cpu");
const ref = ops.map(([, f]) => tf.tidy(f).map((t) => t.dataSync() as Float32Array));
await useBackend("webgpu");
const diffs: Record<string, number> = {};
for (let o = 0; o < ops.length; o++) {
  const out = tf.tidy(ops[o][1]);
  let m = 0; // relative to the largest reference value (at least 1)
  for (let i = 0; i < out.length; i++) {
    const got = await out[i].data(), want = ref[o][i];
    const scale = want.reduce((a, v) => Math.max(a, Math.abs(v)), 1);
    for (let j = 0; j < want.length; j++) m = Math.max(m, Math.abs(got[j] - want[j]) / scale);
  }
  tf.dispose(out);
  diffs[ops[o][0]] = m;
}
console.log(JSON.stringify(diffs));
Deno.exit(0);
