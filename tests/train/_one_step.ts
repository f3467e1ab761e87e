// Child process of the WebGPU training-step test: one tiny VoCo v2 step through
// `pretrain()` on the backend named on the command line (the backend is global per process).
// Usage: deno run -A tests/train/_one_step.ts BACKEND CACHE RUN_DIR
import { useBackend } from "../../train/backend.ts";
import { pretrain, pretrainConfig } from "../../train/pretrain.ts";

const [backend, cache, out] = Deno.args;
await useBackend(backend as "cpu" | "webgpu");
// The smallest step that still runs every part of the network: roi 32 (stages of 16, 8, 4
// and 2 tokens), a 4-token window (shifted in the first two stages, clipped in the last),
// one volume of 1 random + 4 base crops, heads of 64.
const summary = await pretrain(
  out,
  pretrainConfig("v2", [cache], {
    featureSize: 12,
    headDims: [64, 64, 64],
    batchSize: 1,
    swBatchSize: 1,
    grid: 2,
    roi: 32,
    windowSize: 4,
    steps: 1,
    warmupSteps: 0,
    lr: 1e-3,
    saveEvery: 1,
    workers: 0,
    augment: false,
    backend,
  }),
);
console.log(JSON.stringify({ loss: summary.finalLoss, checkpoint: summary.checkpoint }));
// Deno's WebGPU teardown can abort the process at exit: leave at once.
Deno.exit(0);
