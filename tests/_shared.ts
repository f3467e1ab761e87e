// Access to ../shared (real CT and MONAI reference outputs); tests skip when absent.
import { gunzip } from "../prep/formats/decompress.ts";

/** Folder of the shared test data, next to the repository. */
export const SHARED = new URL("../../shared/", import.meta.url).pathname;

/** True when the shared folder (data and golden outputs) is present. */
export const HAVE_SHARED = (() => {
  try {
    return Deno.statSync(`${SHARED}golden/README.md`).isFile &&
      Deno.statSync(`${SHARED}data/ct/example_ct.nii.gz`).isFile;
  } catch {
    return false;
  }
})();

if (!HAVE_SHARED) {
  console.warn(`Skipping parity tests: ${SHARED} (shared CT data and golden outputs) is absent.`);
}

/** A golden array and its JSON side-car. */
export interface Golden {
  data: Float32Array;
  shape: number[];
  affine: number[][];
}

/** Parses a `.npy` (float32, C order) file. */
export function parseNpy(bytes: Uint8Array): { data: Float32Array; shape: number[] } {
  const magic = String.fromCharCode(...bytes.subarray(1, 6));
  if (bytes[0] !== 0x93 || magic !== "NUMPY") throw new SyntaxError("Not a .npy file");
  const major = bytes[6];
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  const hlen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  const header = new TextDecoder().decode(bytes.subarray(start, start + hlen));
  if (!header.includes("'<f4'") || header.includes("'fortran_order': True")) {
    throw new TypeError(`Unsupported .npy header ${header}`);
  }
  const shape = header.match(/'shape': \(([^)]*)\)/)![1].split(",").filter((s) => s.trim())
    .map(Number);
  const off = start + hlen;
  const data = new Float32Array(bytes.slice(off).buffer);
  return { data, shape };
}

/** Loads `golden/<name>.npy.gz` and its `.json`. */
export async function loadGolden(name: string): Promise<Golden> {
  const npy = parseNpy(gunzip(await Deno.readFile(`${SHARED}golden/${name}.npy.gz`)));
  const meta = JSON.parse(await Deno.readTextFile(`${SHARED}golden/${name}.json`));
  return { data: npy.data, shape: npy.shape, affine: meta.affine_ras };
}

/** Largest absolute difference of two arrays of equal length. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`Lengths differ: ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
