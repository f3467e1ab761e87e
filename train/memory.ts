// How much memory a training step needs, planned from the settings before anything runs:
// the crops per backbone pass (`cropBatch`) that fit the backend, or a refusal naming the
// flag to change. The figures are measured peaks (tfjs' tensor bytes, `tf.profile`, on
// 64³ crops), scaled by feature size and crop volume, which every activation is
// proportional to:
//
//   one taped pass of the whole backbone            370 B per crop, feature channel, voxel
//   the largest segment of the backward in segments  56 B   (an encoder's second half, a
//                                                            Swin block's MLP half)
//   weights, AdamW's three moments, the gradients    5 x 4 B per trained parameter
//
// tfjs-wasm's heap ends at 4 GiB and never shrinks; its allocator fragments as tensors of
// many sizes come and go, measured as 1.7x the tensor bytes of a pass (feature size 48:
// 2.1 GB of heap for 1.26 GB of tensors). The plan keeps a tenth of the heap free.
import { UsageError } from "../cache/errors.ts";
import { CONFIG_FLAGS, type PretrainConfig } from "./config.ts";
import { featureLength, swinConfig } from "./swin/config.ts";
import { paramSpecs } from "./swin/params.ts";

/** Bytes per crop, feature channel and voxel of one taped pass of the backbone. */
export const TAPE_BYTES = 370;
/** Bytes per crop, feature channel and voxel of the largest backward segment. */
export const SEGMENT_BYTES = 56;
/** Heap over tensor bytes of a pass on a backend whose heap fragments (wasm). */
const FRAGMENTATION = 1.7;
/** wasm32's address space, tfjs-wasm's heap limit. */
const WASM_HEAP = 2 ** 32;

/** What {@linkcode planMemory} decided. */
export interface MemoryPlan {
  /** Crops per backbone pass; `undefined`: the whole step in one taped pass. */
  cropBatch?: number;
  /** Crops (rows) of a step. */
  rows: number;
  /** Bytes of weights, optimiser state and gradients. */
  stateBytes: number;
  /** Bytes of the backend's memory a step needs at its peak (state and the largest pass). */
  peakBytes: number;
  /** What the backend holds at most (after the margin), when known. */
  budgetBytes?: number;
  /** Bytes of host memory for the batches in flight and a pass's saved boundaries. */
  hostBytes: number;
}

/** Parameters of the trained networks and of the teacher that follows them. */
export function parameterCounts(
  config: PretrainConfig,
): { trained: number; teacher: number; head: number } {
  const swin = swinConfig(config.featureSize, { headDims: config.headDims });
  const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
  const backbone = paramSpecs(swin, { head: false }).reduce((a, s) => a + size(s.torchShape), 0);
  const [h1, h2, h3] = config.headDims;
  const head = featureLength(swin) * h1 + h1 + h1 * h2 + h2 + h2 * h3 + h3;
  return config.version === "v2"
    ? { trained: backbone + head, teacher: head, head }
    : { trained: backbone + head, teacher: backbone + head, head };
}

/** The memory of the backend `backend` that tensors may use, when it is known. */
function budgetOf(backend: string, systemBytes: number): number | undefined {
  if (backend === "wasm") return 0.9 * WASM_HEAP;
  if (backend === "cpu") return 0.5 * systemBytes; // tensors are the process's own arrays
  return undefined; // GPU and native memory: not known here
}

function totalMemory(): number {
  try {
    return Deno.systemMemoryInfo().total;
  } catch {
    return 8e9;
  }
}

/**
 * Plans a step's memory for `config` on `backend`: without `config.cropBatch`, one taped
 * pass when it fits, else the most crops per pass that fit (the backward then runs in
 * segments). Throws a {@linkcode UsageError} naming the flag to change when the model, one
 * crop or the batch cannot fit.
 */
export function planMemory(
  config: PretrainConfig,
  backend: string,
  options: { systemBytes?: number } = {},
): MemoryPlan {
  const systemBytes = options.systemBytes ?? totalMemory();
  const { featureSize: fs, roi } = config;
  const rows = config.batchSize * (config.swBatchSize + config.grid ** 2);
  const voxels = roi ** 3;
  const { trained, teacher, head } = parameterCounts(config);
  const stateBytes = 4 * (5 * trained + teacher);
  const budget = budgetOf(backend, systemBytes);
  const frag = backend === "wasm" ? FRAGMENTATION : 1;
  const segment = frag * SEGMENT_BYTES * fs * voxels;
  // The batches in flight, and the boundaries the backward in segments keeps (4.5 B per crop,
  // feature channel and voxel).
  const hostBytes = 4 * voxels * rows * (config.prefetch + 2) + 4.5 * fs * voxels * rows;
  const refuse = (what: string, flags: (keyof PretrainConfig)[]) => {
    const names = flags.map((k) => `${CONFIG_FLAGS[k]} (now ${JSON.stringify(config[k])})`);
    return new UsageError(
      `${what}: lower ${names.join(" or ")}`,
      { command: "pretrain train" },
    );
  };
  const gb = (n: number) => `${(n / 1e9).toPrecision(3)} GB`;
  const limit = budget ?? 0.8 * systemBytes;
  if (stateBytes > limit) {
    throw refuse(
      `the model's weights and optimiser state need ${gb(stateBytes)}, more than ` +
        `${budget ? `${backend}'s ${gb(limit)}` : `this machine's ${gb(limit)}`}`,
      head > trained / 2 ? ["headDims"] : ["featureSize"],
    );
  }
  if (hostBytes > 0.8 * systemBytes) {
    const perCrop = hostBytes / rows;
    throw refuse(
      `a step's ${rows} crops of ${roi}³ need ${gb(hostBytes)} of memory, more than this ` +
        `machine's ${gb(0.8 * systemBytes)}`,
      perCrop > 0.1 * systemBytes ? ["roi", "featureSize"] : ["batchSize", "grid", "swBatchSize"],
    );
  }
  const fitting = budget === undefined ? Infinity : Math.floor((budget - stateBytes) / segment);
  if (fitting < 1) {
    throw refuse(
      `one ${roi}³ crop at feature size ${fs} needs ${gb(segment)} of ${backend} memory ` +
        `beside the model's ${gb(stateBytes)} (of ${gb(budget!)})`,
      ["roi", "featureSize"],
    );
  }
  if (
    config.cropBatch !== undefined &&
    stateBytes + segment * Math.min(config.cropBatch, rows) > limit
  ) {
    throw refuse(
      `${Math.min(config.cropBatch, rows)} crops per pass need ` +
        `${gb(stateBytes + segment * Math.min(config.cropBatch, rows))} of ${backend} memory ` +
        `(of ${gb(limit)}; ${Math.min(rows, fitting)} fit)`,
      ["cropBatch"],
    );
  }
  const tape = frag * TAPE_BYTES * fs * voxels * rows;
  let cropBatch = config.cropBatch;
  if (cropBatch === undefined && budget !== undefined && stateBytes + tape > budget) {
    cropBatch = Math.min(rows, fitting);
  }
  const pass = cropBatch === undefined ? tape : segment * Math.min(cropBatch, rows);
  return {
    cropBatch,
    rows,
    stateBytes,
    peakBytes: stateBytes + pass,
    budgetBytes: budget,
    hostBytes,
  };
}
