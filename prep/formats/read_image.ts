// The format registry: which reader a file name needs, loaded on demand.
import type { FrameDecoderPool } from "./dicom/frame_pool.ts";
import type { LoadedImage } from "./read_nifti.ts";
import { BadInputError } from "../../cache/errors.ts";

/**
 * A reader turns the bytes of one image's files into an image in Hounsfield units. Most
 * formats have one file; a `.mhd` has its header then its data file; a DICOM series has
 * one file per slice. `paths` name the files in messages.
 */
export type Reader = (
  files: readonly Uint8Array[],
  paths: readonly string[],
  options?: ReaderOptions,
) => LoadedImage | Promise<LoadedImage>;

/** Options every reader accepts (each uses those that apply to its format). */
export interface ReaderOptions {
  /**
   * Threads that may decode compressed DICOM frames in parallel.
   * @default {1}
   */
  decodeThreads?: number;
  /** A caller-owned pool for compressed DICOM frames (replaces `decodeThreads`). */
  decodePool?: FrameDecoderPool;
  /** Told before each frame decoded in this thread (see {@linkcode DecodeWatchdog}). */
  watchdog?: DecodeWatchdog;
}

/**
 * Called before a compressed frame is decoded in the calling thread, with the file and
 * the time the decode may take; returns the function to call when it is done. A prep
 * worker posts both to the main thread, which terminates the worker when a decoder
 * hangs (a busy WebAssembly loop cannot be stopped from its own thread).
 */
export type DecodeWatchdog = (what: string, budgetMs: number) => () => void;

/**
 * Readers by format name, loaded lazily so that a run only imports (and, for DICOM, only
 * instantiates the WebAssembly decoders) what its files need.
 */
export const READERS: Map<string, () => Promise<Reader>> = new Map<
  string,
  () => Promise<Reader>
>([
  ["nifti", () => import("./read_nifti.ts").then((m) => (files) => m.readNifti(files[0]))],
  [
    "metaimage",
    () => import("./read_metaimage.ts").then((m) => (files) => m.readMetaImage(files[0], files[1])),
  ],
  [
    "dicom",
    () =>
      import("./dicom/read_dicom.ts").then((m) => (files, paths, options) =>
        m.readDicomSeries(files, {
          paths,
          decodeThreads: options?.decodeThreads,
          pool: options?.decodePool,
          watchdog: options?.watchdog,
        })
      ),
  ],
]);

/** File-name suffixes of each single-file format (DICOM files are also found by content). */
const SUFFIXES: [string, string][] = [
  [".nii.gz", "nifti"],
  [".nii", "nifti"],
  [".mha", "metaimage"],
  [".mhd", "metaimage"],
  [".dcm", "dicom"],
  [".dicom", "dicom"],
];

/** The format of a file from its name, or `undefined` when the name says nothing. */
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

/** Reads an image from its files' bytes with the reader of `format`. */
export async function readImage(
  format: string,
  files: readonly Uint8Array[],
  paths: readonly string[],
  options: ReaderOptions = {},
): Promise<LoadedImage> {
  const load = READERS.get(format);
  if (!load) {
    throw new BadInputError(
      `No reader for format "${format}" (known: ${[...READERS.keys()].join(", ")})`,
    );
  }
  return await (await load())(files, paths, options);
}
