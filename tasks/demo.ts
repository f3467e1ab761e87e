// `deno task demo`: a newcomer's first run on generated phantoms, no downloads.
import { join } from "node:path";
import { makePhantom } from "../prep/synthetic/phantom.ts";
import { writeNifti } from "../prep/synthetic/write_nifti.ts";
import { writeMetaImage } from "../prep/synthetic/write_metaimage.ts";
import { writeDicomSeries } from "../prep/synthetic/write_dicom.ts";
import type { Volume } from "../prep/volume.ts";
import { main as prep } from "./prep.ts";

const HELP = `deno task demo: generate CT-like phantoms and prep them into a Zarr cache

Usage:
  deno task demo [--out DIR] [--keep]

Writes six synthetic CT volumes (varied sizes, spacings and orientations, in every format
prep reads: .nii.gz, a DICOM series (JPEG 2000), .mha, .mhd + .zraw) to a temporary
folder, runs "deno task prep" on them and prints where the cache is.

Options:
  --out DIR   where to put the phantoms and the cache (default: a new temporary folder)
  -h, --help  this help

Example:
  deno task demo
  deno task demo --out /tmp/voco-demo
`;

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
