// `deno task model`: check the tfjs SwinUNETR-v2 against MONAI reference outputs.
import { type BackendName, BACKENDS, useBackend } from "../train/backend.ts";
import { compareWithReference } from "../train/swin/check.ts";
import { runMain, UsageError } from "../cli/run.ts";
import { BadInputError } from "../cache/errors.ts";
import { defineCommand, parseCommand } from "../cli/args.ts";

/** The command line of `deno task model`. */
export const MODEL = defineCommand({
  name: "model",
  summary: "the SwinUNETR-v2 VoCo backbone in TensorFlow.js",
  subcommands: {
    check: {
      name: "model check",
      summary: "compare the tfjs model with MONAI reference outputs",
      usage: ["model check --weights W.safetensors --io IO.safetensors [--backend B]"],
      description:
        `Loads MONAI/PyTorch weights (SwinUNETR use_v2 "swinViT.*", "encoder*", VoCo "head.*"),
runs the IO file's "input" (NCDHW) in eval mode and prints, for every stored output
(hidden_states_out.0..4, features, projection), the max absolute and relative difference.`,
      flags: {
        weights: { type: "path", arg: "FILE", help: "weights (safetensors, PyTorch layouts)" },
        io: { type: "path", arg: "FILE", help: "reference inputs and outputs (safetensors)" },
        backend: {
          type: "string",
          arg: "B",
          choices: BACKENDS,
          default: "auto",
          help: `${BACKENDS.join(", ")}\n(default auto: the fastest available)`,
        },
        tolerance: {
          type: "number",
          arg: "T",
          default: 1e-4,
          help: "largest accepted max abs difference",
        },
      },
      examples: [
        "model check --weights ../shared/golden/swinvit-v2-fs12.weights.safetensors \\\n" +
        "    --io ../shared/golden/swinvit-v2-fs12.io.safetensors --backend wasm",
      ],
      footer: "Exit code: 0 when every output is within --tolerance, 1 when any exceeds it, " +
        "2 on bad usage.",
    },
  },
  examples: [
    "model check --weights ../shared/golden/swinvit-v2-fs12.weights.safetensors \\\n" +
    "    --io ../shared/golden/swinvit-v2-fs12.io.safetensors --backend wasm",
  ],
});

async function main(args: string[]): Promise<number> {
  const parsed = parseCommand(MODEL, args);
  if (parsed.help !== undefined) {
    console.log(parsed.help);
    return 0;
  }
  const { values: v } = parsed;
  if (!v.weights || !v.io) {
    throw new UsageError("check needs --weights and --io", { command: "model check" });
  }
  const backendName = v.backend as BackendName;
  const tolerance = v.tolerance;
  if (!(tolerance > 0)) {
    throw new UsageError(`--tolerance takes a positive number, got ${tolerance}`, {
      command: "model check",
    });
  }
  const read = async (flag: string, path: string) => {
    try {
      return await Deno.readFile(path);
    } catch (e) {
      throw new BadInputError(`${flag} ${path}: ${(e as Error).message}`, { path });
    }
  };
  const weights = await read("--weights", v.weights);
  const io = await read("--io", v.io);
  const backend = await useBackend(backendName);
  console.error(`model check: backend ${backend}, running the reference input ...`);
  const { rows, seconds } = await compareWithReference(weights, io, {
    weights: v.weights,
    io: v.io,
  });
  const bad = rows.filter((r) => !(r.maxAbs <= tolerance));
  console.log(
    [
      `model check (${backend}, forward ${seconds.toFixed(1)} s, tolerance ${tolerance})`,
      `  ${"output".padEnd(22)}${"shape".padEnd(20)}${"max abs".padEnd(12)}max rel`,
      ...rows.map((r) =>
        `  ${r.name.padEnd(22)}${`[${r.shape.join(",")}]`.padEnd(20)}` +
        `${r.maxAbs.toExponential(2).padEnd(12)}${r.maxRel.toExponential(2)}` +
        (r.maxAbs <= tolerance ? "" : "  EXCEEDS")
      ),
      rows.length === 0 ? "  no output of the IO file matches a model output" : "",
    ].filter(Boolean).join("\n"),
  );
  return bad.length > 0 || rows.length === 0 ? 1 : 0;
}

if (import.meta.main) await runMain("model", main);

export { main };
