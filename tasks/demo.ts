// `deno task demo`: a newcomer's first run on generated phantoms, no downloads.
import { join } from "node:path";
import { DEMO_PHANTOMS, writeDemoPhantoms } from "../prep/synthetic/demo_phantoms.ts";
import { main as prep } from "./prep.ts";
import { main as pretrainTask } from "./pretrain.ts";
import { EXIT_INTERRUPTED, runMain, UsageError } from "../cli/run.ts";
import { defineCommand, parseCommand } from "../cli/args.ts";

/** The command line of `deno task demo`. */
export const DEMO = defineCommand({
  name: "demo",
  summary: "phantoms to a Zarr cache to a short VoCo pre-training run",
  description:
    `Writes six synthetic CT volumes (varied sizes, spacings and orientations, in every format
prep reads: .nii.gz, a DICOM series (JPEG 2000), .mha, .mhd + .zraw) to DIR/phantoms, runs
"deno task prep" on them into DIR/ct.zarr, then a short VoCo v2 pre-training run on that
cache (feature size 12, 2 x 2 base crops, the best CPU backend) into DIR/run, printing the
loss as it goes, and exports the backbone to DIR/backbone.safetensors.`,
  flags: {
    out: {
      type: "path",
      arg: "DIR",
      help: "folder for the phantoms, the cache and the run (default: a new temporary folder)",
    },
    steps: {
      type: "number",
      integer: true,
      min: 0,
      default: 8,
      help: "pre-training steps (0: prep only; about 20 s a step on 2 cores)",
    },
  },
  examples: ["demo", "demo --out voco-demo --steps 20", "demo --steps 0"],
  footer: "Exit code: as deno task prep's (0 when every case is in the cache), then as " +
    "deno task pretrain's.",
});

/** The closing lines of the demo: how to look at the cache, here and from Python. */
export function demoHint(cache: string): string {
  return `\nThe cache is in ${cache} (Zarr v3). Try:\n` +
    `  deno task cache inspect ${cache}\n` +
    `  deno task cache inspect ${cache} --case phantoms/phantom1_RAS\n` +
    `and from Python with zarr >= 3 (pip install "zarr>=3"):\n` +
    `  python3 -c "import zarr; g = zarr.open_group('${cache}', mode='r'); ` +
    `print({k: a.shape for k, a in g['phantoms'].arrays()})"`;
}

async function main(args: string[]): Promise<number> {
  const parsed = parseCommand(DEMO, args);
  if (parsed.help !== undefined) {
    console.log(parsed.help);
    return 0;
  }
  const out = parsed.values.out;
  if (out !== undefined && (await Deno.stat(out).catch(() => undefined))?.isFile) {
    throw new UsageError(`--out ${out} is a file; give a folder, such as --out voco-demo`);
  }
  const root = out ?? await Deno.makeTempDir({ prefix: "voco-demo-" });
  const inputs = join(root, "phantoms");
  console.error(
    `demo: writing ${DEMO_PHANTOMS.length} synthetic CT volumes (NIfTI, DICOM, MetaImage) to ` +
      inputs,
  );
  await writeDemoPhantoms(inputs);
  const cache = join(root, "ct.zarr");
  const code = await prep([inputs, "--out", cache, "--dataset-name", "phantoms"]);
  if (code === EXIT_INTERRUPTED) return code;
  console.log(demoHint(cache));
  const steps = parsed.values.steps;
  if (code !== 0 || steps === 0) return code;
  const run = join(root, "run");
  console.error(`\ndemo: pre-training VoCo v2 for ${steps} steps on ${cache} (minutes on 2 cores)`);
  const settings = "--feature-size 12 --head 256 --batch-size 1 --sw-batch-size 2 --grid 2 " +
    `--warmup-steps 1 --lr 2e-3 --steps ${steps} --save-every ${Math.max(1, Math.ceil(steps / 2))}`;
  const trained = await pretrainTask([
    "train",
    "--cache",
    cache,
    "--out",
    run,
    ...settings.split(" "),
  ]);
  if (trained !== 0) return trained;
  const backbone = join(root, "backbone.safetensors");
  const exported = await pretrainTask(["export", run, "--out", backbone]);
  if (exported === 0) {
    console.log(
      `\nThe run is in ${run}: metrics.jsonl, loss.svg (the loss plot) and its checkpoints;\n` +
        `the backbone for MONAI fine-tuning is ${backbone}.`,
    );
  }
  return exported;
}

if (import.meta.main) await runMain("demo", main);

export { main };
