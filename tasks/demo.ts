// `deno task demo`: a newcomer's first run on generated phantoms, no downloads.
import { join } from "node:path";
import { makePhantom } from "../prep/phantom.ts";
import { writeNifti } from "../prep/write_nifti.ts";
import { main as prep } from "./prep.ts";

const HELP = `deno task demo: generate CT-like phantoms and prep them into a Zarr cache

Usage:
  deno task demo [--out DIR] [--keep]

Writes six synthetic CT volumes (.nii.gz, varied sizes, spacings and orientations) to a
temporary folder, runs "deno task prep" on them and prints where the cache is.

Options:
  --out DIR   where to put the phantoms and the cache (default: a new temporary folder)
  -h, --help  this help

Example:
  deno task demo
  deno task demo --out /tmp/voco-demo
`;

const PHANTOMS = [
  { shape: [160, 160, 90], spacingMm: [2.2, 2.2, 3], orientation: "RAS" },
  { shape: [192, 192, 72], spacingMm: [1.8, 1.8, 4], orientation: "LPS" },
  { shape: [128, 128, 128], spacingMm: [2.5, 2.5, 2.5], orientation: "LAS" },
  { shape: [96, 144, 144], spacingMm: [3, 2.4, 2.4], orientation: "SPL" },
  { shape: [176, 150, 60], spacingMm: [2, 2.4, 5], orientation: "RPI" },
  { shape: [140, 140, 110], spacingMm: [2.6, 2.6, 2], orientation: "LPI" },
] as const;

async function main(args: string[]): Promise<number> {
  if (args.includes("-h") || args.includes("--help")) {
    console.log(HELP);
    return 0;
  }
  const i = args.indexOf("--out");
  const root = i >= 0 ? args[i + 1] : await Deno.makeTempDir({ prefix: "voco-demo-" });
  if (!root) {
    console.error("demo: --out needs a folder");
    return 2;
  }
  const inputs = join(root, "phantoms");
  await Deno.mkdir(inputs, { recursive: true });
  console.error(`demo: writing ${PHANTOMS.length} synthetic CT volumes to ${inputs}`);
  for (const [n, p] of PHANTOMS.entries()) {
    const v = makePhantom({
      shape: [...p.shape],
      spacingMm: [...p.spacingMm],
      orientation: p.orientation,
      seed: n + 1,
    });
    await Deno.writeFile(join(inputs, `phantom${n + 1}_${p.orientation}.nii.gz`), writeNifti(v));
  }
  const cache = join(root, "cache");
  const code = await prep([inputs, "--out", cache, "--dataset-name", "phantoms"]);
  console.log(
    `\nThe cache is in ${cache} (Zarr v3). Try:\n` +
      `  deno task cache inspect ${cache}\n` +
      `  python -c "import zarr; g = zarr.open_group('${cache}'); print(g['phantoms'].tree())"`,
  );
  return code;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
