import type { LoadedImage } from "./read_nifti.ts";

/** A reader turns the bytes of one file into an image in Hounsfield units. */
export type Reader = (bytes: Uint8Array) => LoadedImage | Promise<LoadedImage>;

/**
 * Readers by format name, loaded lazily so that a run only imports what its files need
 * (later formats, DICOM and MetaImage, register here).
 */
export const READERS: Map<string, () => Promise<Reader>> = new Map([
  ["nifti", () => import("./read_nifti.ts").then((m) => m.readNifti)],
]);

/** File-name suffixes of each format. */
const SUFFIXES: [string, string][] = [[".nii.gz", "nifti"], [".nii", "nifti"]];

/** The format of a file from its name, or `undefined` when no reader handles it. */
export function formatOf(path: string): string | undefined {
  const lower = path.toLowerCase();
  return SUFFIXES.find(([s]) => lower.endsWith(s))?.[1];
}

/** Strips a known image suffix from a file name (`img0001.nii.gz` -> `img0001`). */
export function stripImageSuffix(name: string): string {
  const lower = name.toLowerCase();
  const hit = SUFFIXES.find(([s]) => lower.endsWith(s));
  return hit ? name.slice(0, name.length - hit[0].length) : name;
}

/** Reads an image file with the reader of its format. */
export async function readImage(bytes: Uint8Array, path: string): Promise<LoadedImage> {
  const format = formatOf(path);
  const load = format ? READERS.get(format) : undefined;
  if (!load) throw new TypeError(`No reader for this file type (known: .nii, .nii.gz)`);
  return await (await load())(bytes);
}
