// `deno task model`: check the tfjs SwinUNETR-v2 against MONAI reference outputs.
import { type BackendName, BACKENDS, useBackend } from "../train/backend.ts";
import { compareWithReference } from "../train/swin/check.ts";
import { parse, runMain, UsageError } from "./_cli.ts";

const HELP = `deno task model: the SwinUNETR-v2 VoCo backbone in TensorFlow.js

Usage:
  deno task model check --weights W.safetensors --io IO.safetensors [--backend B]

check   loads MONAI/PyTorch weights (SwinUNETR use_v2 "swinViT.*", "encoder*", VoCo "head.*"),
        runs the IO file's "input" (NCDHW) in eval mode and prints, for every stored output
        (hidden_states_out.0..4, features, projection), the max absolute and relative
        difference. Exit code 1 when any exceeds --tolerance.

Options:
  --weights FILE    weights (safetensors, PyTorch layouts)
  --io FILE         reference inputs and outputs (safetensors)
  --backend B       ${BACKENDS.join(", ")} (default auto: the fastest available)
  --tolerance T     largest accepted max abs difference (default 1e-4)
  -h, --help        this help

Example:
  deno task model check --weights ../shared/golden/swinvit-v2-fs12.weights.safetensors \\
    --io ../shared/golden/swinvit-v2-fs12.io.safetensors --backend wasm
`;

async function main(args: string[]): Promise<number> {
  const { values: v, positionals } = parse(args, {
    weights: { type: "string" },
    io: { type: "string" },
    backend: { type: "string", default: "auto" },
    tolerance: { type: "string", default: "1e-4" },
    help: { type: "boolean", short: "h", default: false },
  });
  if (v.help) {
    console.log(HELP);
    return 0;
  }
  if (positionals[0] !== "check") {
    throw new UsageError(`Unknown or missing command "${positionals[0] ?? ""}"`);
  }
  if (!v.weights || !v.io) throw new UsageError("check needs --weights and --io");
  const backendName = String(v.backend) as BackendName;
  if (!BACKENDS.includes(backendName)) {
    throw new UsageError(`--backend must be one of ${BACKENDS.join(", ")}, got "${backendName}"`);
  }
  const tolerance = Number(v.tolerance);
  if (!(tolerance > 0)) {
    throw new UsageError(`--tolerance takes a positive number, got "${v.tolerance}"`);
  }
  const read = async (flag: string, path: string) => {
    try {
      return await Deno.readFile(path);
    } catch (e) {
      throw new Error(`${flag} ${path}: ${(e as Error).message}`);
    }
  };
  const weights = await read("--weights", String(v.weights));
  const io = await read("--io", String(v.io));
  const backend = await useBackend(backendName);
  console.error(`model check: backend ${backend}, running the reference input ...`);
  const { rows, seconds } = await compareWithReference(weights, io);
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
