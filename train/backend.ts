// TensorFlow.js set-up: gradients, and the backend chosen by name, loaded on demand.
import * as tf from "@tensorflow/tfjs-core";
import { BadInputError } from "../cache/errors.ts";

/** Backends `--backend` accepts. */
export type BackendName = "auto" | "cpu" | "wasm" | "webgpu" | "tensorflow" | "tensorflow-gpu";

/** Backend names, for help texts and validation. */
export const BACKENDS: readonly BackendName[] = [
  "auto",
  "cpu",
  "wasm",
  "webgpu",
  "tensorflow",
  "tensorflow-gpu",
];

let loaded: Promise<void> | undefined;

/**
 * Loads tfjs with its gradients. tfjs-core's npm bundle registers no gradient functions
 * (they ship as extension-less ES modules that Deno cannot import one by one); the
 * `@tensorflow/tfjs` bundle registers all of them, plus the cpu backend, in tfjs' global
 * registry, which tfjs-core shares.
 */
function loadTf(): Promise<void> {
  return loaded ??= (async () => {
    await import("@tensorflow/tfjs");
    // Production mode: no per-op debug checks, and no advertisement for tfjs-node on
    // the cpu backend's first use.
    tf.env().set("PROD", true);
  })();
}

const INSTALL_HINT = (pkg: string) =>
  `Backend needs ${pkg}, which is not installed: it downloads libtensorflow when installed, ` +
  `so install it on a machine with internet with ` +
  `"deno install --allow-scripts=npm:${pkg} npm:${pkg}@4.22.0" (Linux x86-64).`;

async function tryBackend(name: Exclude<BackendName, "auto">): Promise<boolean> {
  switch (name) {
    case "cpu":
      break;
    case "wasm":
      await import("@tensorflow/tfjs-backend-wasm");
      break;
    case "webgpu": {
      const gpu = (navigator as unknown as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
      if (!gpu || !(await gpu.requestAdapter())) return false;
      await import("@tensorflow/tfjs-backend-webgpu");
      break;
    }
    case "tensorflow":
    case "tensorflow-gpu": {
      const pkg = name === "tensorflow" ? "@tensorflow/tfjs-node" : "@tensorflow/tfjs-node-gpu";
      try {
        // Optional and not in deno.json: resolved only when asked for.
        const spec = `npm:${pkg}@4.22.0`;
        await import(spec);
      } catch (e) {
        throw new BadInputError(`${INSTALL_HINT(pkg)} (${(e as Error).message.split("\n")[0]})`);
      }
      break;
    }
  }
  const backend = name === "tensorflow-gpu" ? "tensorflow" : name;
  const ok = await tf.setBackend(backend);
  if (ok && backend === "wasm") shareIdentityOnWasm();
  return ok;
}

let identityShared = false;

/**
 * Makes tfjs-wasm's Identity share its input's memory, as tfjs-cpu's does, instead of
 * copying it. The gradient tape clones (Identity) every tensor an op saves for its
 * backward pass, so on wasm each saved activation was copied once more; no wasm kernel
 * writes into an input, so sharing is safe (Reshape shares the same way).
 */
function shareIdentityOnWasm(): void {
  if (identityShared) return;
  identityShared = true;
  const copying = tf.getKernel("Identity", "wasm");
  if (!copying) return;
  tf.unregisterKernel("Identity", "wasm");
  tf.registerKernel({
    ...copying,
    kernelFunc: (args) => {
      const { x } = args.inputs as { x: tf.TensorInfo };
      if (x.dtype === "string") return copying.kernelFunc(args);
      (args.backend as unknown as { incRef(id: unknown): void }).incRef(x.dataId);
      return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
    },
  });
}

/**
 * Makes `name` the tfjs backend, loading it on demand, and returns the backend in use.
 * `auto` picks the fastest that runs the model here: wasm, else cpu (webgpu is left out
 * until the custom kernels have GPU versions: they read tensors synchronously, which
 * tfjs-webgpu cannot do under Deno). Throws with an install hint for the tfjs-node
 * backends when missing.
 */
export async function useBackend(name: BackendName = "auto"): Promise<string> {
  if (!BACKENDS.includes(name)) {
    throw new BadInputError(`Unknown backend "${name}"; one of ${BACKENDS.join(", ")}`);
  }
  await loadTf();
  if (name === "auto") {
    for (const candidate of ["wasm", "cpu"] as const) {
      try {
        if (await tryBackend(candidate)) return tf.getBackend();
      } catch { /* try the next one */ }
    }
    throw new Error("No tfjs backend could be initialised");
  }
  if (!(await tryBackend(name))) throw new BadInputError(`Backend ${name} is not available here`);
  return tf.getBackend();
}

/** Whether `e` is a backend running out of memory (tfjs-wasm traps, XNNPACK, allocation). */
export function isOutOfMemory(e: unknown): boolean {
  const message = e instanceof Error ? e.message : String(e);
  return /memory access out of bounds|Aborted\(|allocation failed|out of memory|Array buffer allocation|Invalid typed array length/i
    .test(message);
}

/**
 * The error to show when a step ran out of backend memory: what ran out, the crop batch
 * in use and the flags that lower the need, with the original error as the cause; other
 * errors are returned unchanged. (After a wasm trap its backend is unusable: the run stops.)
 */
export function outOfMemoryError(
  e: unknown,
  what: { step: number; backend: string; cropBatch?: number },
): unknown {
  if (!isOutOfMemory(e)) return e;
  return new Error(
    `Step ${what.step} ran out of ${what.backend} memory (${(e as Error).message}): lower ` +
      `--crop-batch (now ${what.cropBatch ?? "all crops in one taped pass"}), --batch-size ` +
      `or --roi; "deno task pretrain --dry-run" with the same flags measures a step first`,
    { cause: e },
  );
}
