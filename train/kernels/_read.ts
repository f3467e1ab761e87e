import * as tf from "@tensorflow/tfjs-core";

/**
 * Reads a tensor's values synchronously for a kernel that computes on typed arrays. The
 * webgpu backend reads synchronously through a 2-D canvas, which Deno lacks, so the
 * kernels say so instead of failing deep inside tfjs.
 */
export function readSync(t: tf.Tensor): Float32Array {
  if (tf.getBackend() === "webgpu") {
    throw new Error(
      "The model's custom kernels (conv3d, window softmax, gather gradients) read tensors " +
        "synchronously, which tfjs' webgpu backend cannot do under Deno yet; use --backend wasm",
    );
  }
  return t.dataSync() as Float32Array;
}
