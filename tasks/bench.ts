// `deno task bench`: the benchmarks' command line; the measurements live in bench/.
import { runMain } from "../cli/run.ts";
import { defineCommand, parseCommand } from "../cli/args.ts";
import { type BackendName, BACKENDS } from "../train/backend.ts";
import { DEFAULT_LAYOUT, LAYOUTS } from "../cache/format/format.ts";
import { benchPrep, clinicalVolume } from "../bench/prep.ts";
import { SHARED_CT } from "../bench/_common.ts";
import { benchPretrain } from "../bench/pretrain.ts";
import { benchModel } from "../bench/model.ts";
import { benchCache, benchCrops } from "../bench/cache.ts";
import { benchView } from "../bench/view.ts";
import { findChromium } from "../bench/_browser.ts";

const PREP_HELP = `Builds (once, in .tmp/bench/) a clinical-size CT (512x512x270 int16,
0.7x0.7x1.25 mm, .nii.gz) by upsampling ../shared/data/ct/example_ct.nii.gz (or a phantom
when absent), then times one case in-process stage by stage and whole runs with each
--workers count, and reports seconds per volume and peak RSS. Then the same volume as
.mhd + .raw and as DICOM series (uncompressed, JPEG 2000 lossless and HTJ2K lossless, the
compressed ones decoded in 1 thread and in one per core), one case each in-process,
against the .nii.gz.`;

const MODEL_HELP =
  `The VoCo backbone (Swin transformer + five encoders) and head with random weights:
forward time per block and for the whole model, then training steps (forward, backward,
AdamW) with the number of live tensors after each (the first step adds the optimiser's
two moments per parameter, which stay), and peak RSS.`;

const CACHE_HELP =
  `The shared example CT (a real abdominal CT; the clinical-size volume of "bench prep"
where it is absent), prepped with voco-v2 and stored as uint16 at 1-HU steps on disk in
each layout (sharded, chunked), inner chunk edge (64, 48, 32), compressor (blosc-zstd,
blosc-lz4, zstd, none), level and Blosc filter (byte shuffle, bitshuffle, none), and the
size of numcodecs' delta filter before Blosc (size only: tensorstore cannot read it):
files, cache size (and how much smaller than float32, what MONAI's PersistentDataset
stores), write time, and random 192 x 192 x 64 crop reads (what the voco-v2 sampler reads
per volume): best and median time and the bytes read per crop. Then the same crops read
with CacheReader from a folder and over loopback HTTP from cache serve: ms per crop,
bytes and requests per crop, and with --torch MONAI's PersistentDataset load-and-crop of
the same volume in the same run.`;

/** The `--backend` flag of the model and pre-training benchmarks. */
const BENCH_BACKEND = {
  type: "string",
  arg: "B",
  choices: BACKENDS.filter((b) => b !== "auto"),
  default: "wasm",
  help: BACKENDS.filter((b) => b !== "auto").join(", "),
} as const;

/** The command line of `deno task bench`. */
export const BENCH = defineCommand({
  name: "bench",
  summary: "benchmarks (not timed unit tests)",
  subcommands: {
    prep: {
      name: "bench prep",
      summary: "preprocessing speed on a clinical-size volume, per stage and per format",
      description: PREP_HELP,
      flags: {
        copies: {
          type: "number",
          integer: true,
          min: 0,
          default: 4,
          help: "volumes of each whole run (0: formats only)",
        },
        workers: {
          type: "numbers",
          integer: true,
          min: 1,
          arg: "N,N,...",
          default: [1, 2],
          help: "worker counts of the whole runs",
        },
        "skip-formats": { type: "boolean", help: "leave out the .mhd and DICOM copies" },
        torch: {
          type: "boolean",
          help: "also measure the PyTorch/MONAI reference in this run (python3 with torch,\n" +
            "nibabel and MONAI 1.3.2 on PYTHONPATH; VOCO_PYTHON names another Python)",
        },
        layout: {
          type: "string",
          arg: "L",
          choices: LAYOUTS,
          default: DEFAULT_LAYOUT,
          help: "cache layout of the runs",
        },
      },
      examples: ["bench prep --copies 4 --workers 1,2", "bench prep --copies 0 --workers 1"],
    },
    model: {
      name: "bench model",
      summary: "forward and training-step time of the VoCo backbone",
      description: MODEL_HELP,
      flags: {
        backend: BENCH_BACKEND,
        size: { type: "number", integer: true, min: 32, default: 64, help: "crop edge in voxels" },
        batch: { type: "number", integer: true, min: 1, default: 2, help: "crops per batch" },
        feature: {
          type: "number",
          integer: true,
          min: 12,
          default: 12,
          help: "feature size (48 in VoCo's SwinUNETR-B)",
        },
        steps: { type: "number", integer: true, min: 0, default: 2, help: "training steps" },
        profile: {
          type: "boolean",
          help: "print where the steps after the first spend their time, per op",
        },
      },
      examples: ["bench model --backend wasm", "bench model --steps 3 --profile"],
    },
    pretrain: {
      name: "bench pretrain",
      summary: "seconds per VoCo v2 training step on a phantom cache, data wait, memory",
      description:
        `Preps four phantoms into a voco-v2 cache, then runs real training steps (sampler in
workers, backbone, both heads, the losses, AdamW) and prints the time per step once warm,
samples/s, the share of each step spent waiting for data, and peak RSS. The default is
the reference measurement's setting: feature size 12, batch 2, 1 random + 9 base crops per
volume (20 crops of 64³). With --torch, the PyTorch/MONAI reference runs the same crops in
the same run and the ratio is printed; without it, the reference is "not measured".`,
      flags: {
        backend: BENCH_BACKEND,
        steps: { type: "number", integer: true, min: 1, default: 3, help: "training steps" },
        batch: { type: "number", integer: true, min: 1, default: 2, help: "volumes per step" },
        sw: { type: "number", integer: true, min: 1, default: 1, help: "random crops per volume" },
        grid: { type: "number", integer: true, min: 2, default: 3, help: "base crops per side" },
        feature: { type: "number", integer: true, min: 12, default: 12, help: "feature size" },
        head: {
          type: "number",
          integer: true,
          min: 1,
          default: 1024,
          help: "projection head width (1024: the v2 recipe's)",
        },
        "crop-batch": {
          type: "number",
          integer: true,
          min: 1,
          help: "crops per backbone pass (default: planned from the backend's memory)",
        },
        workers: { type: "number", integer: true, min: 0, default: 2, help: "sample workers" },
        torch: {
          type: "boolean",
          help: "also measure the PyTorch/MONAI reference in this run (python3 with torch,\n" +
            "nibabel and MONAI 1.3.2 on PYTHONPATH; VOCO_PYTHON names another Python)",
        },
        profile: {
          type: "boolean",
          help: "print where the steps after the first spend their time, per op",
        },
      },
      examples: [
        "bench pretrain --backend wasm --steps 3",
        "bench pretrain --steps 2 --profile",
        "bench pretrain --backend wasm --feature 48 --batch 4 --sw 2 --grid 3 --steps 2",
      ],
    },
    cache: {
      name: "bench cache",
      summary: "size, write and read speed of each chunk compressor",
      description: CACHE_HELP,
      flags: {
        chunk: {
          type: "number",
          integer: true,
          min: 1,
          help: "only the settings with this chunk edge (default: all)",
        },
        crops: {
          type: "number",
          integer: true,
          min: 0,
          default: 20,
          help: "random 192 x 192 x 64 crop reads per setting",
        },
        "big-crops": {
          type: "number",
          integer: true,
          min: 0,
          default: 30,
          help: "random 192 x 192 x 64 crops read from a folder and over loopback HTTP",
        },
        "crops-only": {
          type: "boolean",
          help: "only the 192 x 192 x 64 crop reads (folder and HTTP), not the compressors",
        },
        torch: {
          type: "boolean",
          help: "also measure the PyTorch/MONAI reference in this run (python3 with torch,\n" +
            "nibabel and MONAI 1.3.2 on PYTHONPATH; VOCO_PYTHON names another Python)",
        },
      },
      examples: ["bench cache --crops 20", "bench cache --chunk 48 --crops 50"],
    },
    view: {
      name: "bench view",
      summary: "time for the viewer to put a 512 x 512 x 300 case on screen",
      description:
        `Preps (once, in .tmp/bench/view/) a 512 x 512 x 300 uint16 case, serves it with the
viewer and times, over loopback, the case's description plus the slab of its middle
slice (what the page needs to draw it) and every slab; then, with Chromium installed,
the page from a click on the case to its first slab drawn and to the whole case drawn.`,
      flags: {
        repeat: {
          type: "number",
          integer: true,
          min: 1,
          default: 5,
          help: "server timings repeated",
        },
      },
      examples: ["bench view --repeat 5"],
    },
  },
  examples: ["bench prep --copies 4 --workers 1,2", "bench model --backend wasm", "bench cache"],
});

async function main(args: string[]): Promise<number> {
  const parsed = parseCommand(BENCH, args);
  if (parsed.help !== undefined) {
    console.log(parsed.help);
    return 0;
  }
  if (parsed.command === "prep") await benchPrep(parsed.values);
  else if (parsed.command === "pretrain") {
    const v = parsed.values;
    await benchPretrain({ ...v, cropBatch: v["crop-batch"] });
  } else if (parsed.command === "view") {
    await benchView({ repeat: parsed.values.repeat, chromium: findChromium() });
  } else if (parsed.command === "model") {
    await benchModel({ ...parsed.values, backend: parsed.values.backend as BackendName });
  } else {
    const v = parsed.values;
    // The README's volume: the shared example CT, a real CT (the clinical-size copy with
    // added noise where it is absent).
    const ct = await Deno.stat(SHARED_CT).then(() => SHARED_CT, () => clinicalVolume());
    if (!v["crops-only"]) await benchCache(await ct, v);
    if (v["big-crops"] > 0) await benchCrops(await ct, { crops: v["big-crops"], torch: v.torch });
  }
  return 0;
}

if (import.meta.main) await runMain("bench", main);

export { main };
