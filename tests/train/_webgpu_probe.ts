// Run by kernels_test.ts in a child process: Deno's WebGPU teardown after tfjs-webgpu can
// abort the process at exit ("double free"), which must not take the test runner down.
import * as tf from "@tensorflow/tfjs-core";
import { useBackend } from "../../train/backend.ts";
import { conv3dSame } from "../../train/kernels/conv3d.ts";

const gpu = (navigator as unknown as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
if (!gpu || !(await gpu.requestAdapter().catch(() => null))) {
  console.log("no adapter");
  Deno.exit(0);
}
await useBackend("webgpu");
try {
  conv3dSame(tf.ones([1, 4, 4, 4, 1]) as tf.Tensor5D, tf.ones([3, 3, 3, 1, 1]) as tf.Tensor5D);
  console.log("no error");
} catch (e) {
  console.log((e as Error).message);
}
