// Which implementation each kernel runs: typed arrays and WebAssembly on the CPU backends,
// stock tfjs ops elsewhere.
import * as tf from "@tensorflow/tfjs-core";
import { timed } from "./profile.ts";

/**
 * True when the kernels over typed arrays (and WebAssembly) should run: on the CPU
 * backends, where tensors live in this process's memory and the stock ops are the
 * bottleneck. On the GPU (`webgpu`) and native (`tensorflow`) backends every kernel falls
 * back to its composition of stock ops, which those backends run well and which never
 * reads a tensor synchronously (tfjs' webgpu backend cannot under Deno).
 */
export function typedArrayKernels(): boolean {
  if (stockOnly) return false;
  const backend = tf.getBackend();
  return backend === "cpu" || backend === "wasm";
}

let stockOnly = false;

/**
 * Makes every kernel use its stock-op composition on every backend (`true`), or the
 * default choice again (`false`): for checking the two against each other.
 */
export function useStockOps(on: boolean): void {
  stockOnly = on;
}

/** Reads a tensor's values synchronously for a kernel that computes on typed arrays. */
export function readSync(t: tf.Tensor): Float32Array {
  return timed("copy tfjs -> typed array", () => t.dataSync() as Float32Array);
}

/** A float32 tensor of `values` (copied into the backend's memory). */
export function tensorOf<R extends tf.Rank>(values: Float32Array, shape: number[]): tf.Tensor<R> {
  return timed(
    "copy typed array -> tfjs",
    () => tf.tensor(values, shape as tf.ShapeMap[R], "float32") as tf.Tensor<R>,
  );
}
