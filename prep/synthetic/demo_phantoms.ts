// The demo's inputs: six phantom CTs in NIfTI, DICOM (JPEG 2000) and MetaImage (.mha,
// .mhd + .zraw), in six orientations, as a newcomer's collection might hold them.
import { join } from "node:path";
import { makePhantom } from "./phantom.ts";
import { writeNifti } from "../formats/write_nifti.ts";
import { writeMetaImage } from "./write_metaimage.ts";
import { writeDicomSeries } from "./write_dicom.ts";
import type { Volume } from "../volume.ts";

/** The demo's phantoms: sizes, spacings, orientations and formats of real-world variety. */
export const DEMO_PHANTOMS = [
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

/** Writes the demo's phantoms into `dir` (`phantom<N>_<orientation>` in their formats). */
export async function writeDemoPhantoms(dir: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  for (const [n, p] of DEMO_PHANTOMS.entries()) {
    const v = makePhantom({
      shape: [...p.shape],
      spacingMm: [...p.spacingMm],
      orientation: p.orientation,
      seed: n + 1,
    });
    await writePhantom(dir, `phantom${n + 1}_${p.orientation}`, v, p.format);
  }
}
