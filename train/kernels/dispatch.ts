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

/** What the kernels use of tfjs-wasm's backend: its heap, and outputs allocated there. */
interface WasmHeap {
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array;
  makeOutput(shape: number[], dtype: "float32"): tf.TensorInfo;
}

/** tfjs-wasm's backend when it is the one in use. */
function wasmHeap(): WasmHeap | undefined {
  return tf.getBackend() === "wasm" ? tf.backend() as unknown as WasmHeap : undefined;
}

/**
 * The values of a float32 tensor without copying them where the backend allows (a view of
 * tfjs-wasm's heap, the cpu backend's own array). Read-only, and on wasm only valid until
 * tfjs allocates again (its heap may grow): copy from it at once.
 */
export function valuesOf(t: tf.Tensor): Float32Array {
  const heap = wasmHeap();
  if (heap && t.dtype === "float32") return heap.typedArrayFromHeap(t);
  return t.dataSync() as Float32Array;
}

/**
 * A float32 tensor of `shape` whose values `fill` writes (every one of them), straight into
 * the backend's memory on wasm (no intermediate array, no second copy).
 */
export function tensorFrom<R extends tf.Rank>(
  shape: number[],
  fill: (out: Float32Array) => void,
): tf.Tensor<R> {
  const heap = wasmHeap();
  if (!heap) {
    const out = new Float32Array(shape.reduce((a, b) => a * b, 1));
    fill(out);
    return tf.tensor(out, shape as tf.ShapeMap[R], "float32") as tf.Tensor<R>;
  }
  const info = heap.makeOutput(shape, "float32");
  fill(heap.typedArrayFromHeap(info));
  return tf.engine().makeTensorFromTensorInfo(info) as tf.Tensor<R>;
}

/**
 * True inside a gradient recording (`tf.grads`, `variableGrads`): a kernel that needs an
 * extra output only for its backward pass makes it only then. Reads the engine's gradient
 * depth; where that is not there, assumes a recording (which only costs a copy).
 */
export function recordingGradients(): boolean {
  const state = (tf.engine() as unknown as { state?: { gradientDepth?: number } }).state;
  return state?.gradientDepth === undefined || state.gradientDepth > 0;
}
