// `deno task demo`: a newcomer's first run on generated phantoms, no downloads.
import { join } from "node:path";
import { makePhantom } from "../prep/synthetic/phantom.ts";
import { writeNifti } from "../prep/synthetic/write_nifti.ts";
import { writeMetaImage } from "../prep/synthetic/write_metaimage.ts";
import { writeDicomSeries } from "../prep/synthetic/write_dicom.ts";
import type { Volume } from "../prep/volume.ts";
import { main as prep } from "./prep.ts";
import { EXIT_INTERRUPTED, runMain } from "./_cli.ts";
import { defineCommand, parseCommand } from "./_args.ts";

/** The command line of `deno task demo`. */
export const DEMO = defineCommand({
  name: "demo",
  summary: "generate CT-like phantoms and prep them into a Zarr cache",
  description:
    `Writes six synthetic CT volumes (varied sizes, spacings and orientations, in every format
prep reads: .nii.gz, a DICOM series (JPEG 2000), .mha, .mhd + .zraw) to DIR/phantoms, runs
"deno task prep" on them into DIR/ct.zarr and prints how to look at the cache.`,
  flags: {
    out: {
      type: "path",
      arg: "DIR",
      help: "folder for the phantoms and the cache (default: a new temporary folder)",
    },
  },
  examples: ["demo", "demo --out voco-demo"],
  footer: "Exit code: as deno task prep's (0 when every case is in the cache).",
});

const PHANTOMS = [
  { shape: [160, 160, 90], spacingMm: [2.2, 2.2, 3], orientation: "RAS", format: "nifti" },
  { shape: [192, 192, 72], spacingMm: [1.8, 1.8, 4], orientation: "LPS", format: "dicom" },
  { shape: [128, 128, 128], spacingMm: [2.5, 2.5, 2.5], orientation: "LAS", format: "mha" },
  { shape: [96, 144, 144], spacingMm: [3, 2.4, 2.4], orientation: "SPL", format: "nifti" },
  { shape: [176, 150, 60], spacingMm: [2, 2.4, 5], orientation: "RPI", format: "mhd" },
  { shape: [140, 140, 110], spacingMm: [2.6, 2.6, 2], orientation: "LPI", format: "nifti" },
] as const;

/** Writes one phantom in its demo format. */
async function writePhantom(dir: string, name: string, v: Volume<Float32Array>, format: string) {
  if (format === "dicom") {
    const series = join(dir, `${name}_dicom`);
    await Deno.mkdir(series, { recursive: true });
    for (const f of await writeDicomSeries(v, { syntax: "jpeg2000", pixels: "unsigned" })) {
      await Deno.writeFile(join(series, f.name), f.bytes);
    }
  } else if (format === "mha") {
    await Deno.writeFile(join(dir, `${name}.mha`), writeMetaImage(v).header);
  } else if (format === "mhd") {
    const { header, data } = writeMetaImage(v, { dataFile: `${name}.zraw`, compressed: true });
    await Deno.writeFile(join(dir, `${name}.mhd`), header);
    await Deno.writeFile(join(dir, `${name}.zraw`), data!);
  } else {
    await Deno.writeFile(join(dir, `${name}.nii.gz`), writeNifti(v));
  }
}

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
  const root = parsed.values.out ?? await Deno.makeTempDir({ prefix: "voco-demo-" });
  const inputs = join(root, "phantoms");
  await Deno.mkdir(inputs, { recursive: true });
  console.error(
    `demo: writing ${PHANTOMS.length} synthetic CT volumes (NIfTI, DICOM, MetaImage) to ${inputs}`,
  );
  for (const [n, p] of PHANTOMS.entries()) {
    const v = makePhantom({
      shape: [...p.shape],
      spacingMm: [...p.spacingMm],
      orientation: p.orientation,
      seed: n + 1,
    });
    await writePhantom(inputs, `phantom${n + 1}_${p.orientation}`, v, p.format);
  }
  const cache = join(root, "ct.zarr");
  const code = await prep([inputs, "--out", cache, "--dataset-name", "phantoms"]);
  if (code === EXIT_INTERRUPTED) return code;
  console.log(demoHint(cache));
  return code;
}

if (import.meta.main) await runMain("demo", main);

export { main };
