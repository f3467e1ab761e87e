// One case from source files to the cache: read, apply the recipe, write, publish.
import { basename } from "node:path";
import { FileSystemStore } from "@zarrita/storage";
import { type DecodeWatchdog, readImage } from "../formats/read_image.ts";
import { formatSize, maxImageBytes } from "../formats/_checks.ts";
import { checkDeclaredVoxels, checkRecipeSize } from "./_recipe_size.ts";
import { peekNifti } from "../formats/read_nifti.ts";
import { readRegularFile } from "./_files.ts";
import type { FrameDecoderPool } from "../formats/dicom/frame_pool.ts";
import { applyRecipe, type Recipe } from "../recipes/recipe.ts";
import { caseFingerprint, sha256Hex } from "../../cache/format/fingerprint.ts";
import { columnNorms } from "../transforms/_affine.ts";
import { orientationCode } from "../transforms/orient.ts";
import { writeCase } from "../../cache/write/write_case.ts";
import { type StorageDtype, storageEncoding } from "../../cache/format/quantize.ts";
import {
  CACHE_FORMAT_VERSION,
  type Compressor,
  DEFAULT_LAYOUT,
  type Layout,
} from "../../cache/format/format.ts";
import { BadInputError } from "../../cache/errors.ts";

/** How the cache stores voxels. */
export interface StorageOptions {
  /** On-disk dtype. */
  dtype: StorageDtype;
  /** Chunk compressor. */
  compressor: Compressor;
  /** Compression level. */
  level: number;
  /** Chunk edge in voxels (of the inner chunks, when sharded). */
  chunk: number;
  /**
   * One shard file per case, or one file per chunk.
   * @default {"sharded"}
   */
  layout?: Layout;
}

/** One case to preprocess: plain data, so it can be posted to a worker. */
export interface CaseJob {
  /** The image as the user knows it (its file, or a DICOM series folder). */
  path: string;
  /** Every file the image is read from, in reader order. */
  files: string[];
  /** Reader name (`nifti`, `metaimage`, `dicom`). */
  format: string;
  /** Source path relative to the dataset root (recorded in the cache). */
  source: string;
  /** Empty folder to write the case's Zarr array into, published by the caller. */
  stagingDir: string;
  /** The name it is published as (`dataset/case`), recorded in its integrity record. */
  caseName?: string;
  /** Recipe to apply. */
  recipe: Recipe;
  /** Storage options. */
  storage: StorageOptions;
  /** Hash of recipe + storage + format version (see `settingsHash`). */
  settingsHash: string;
  /** Fingerprint of the case already in the cache, if any. */
  knownFingerprint?: string;
  /**
   * Threads that may decode compressed DICOM frames in parallel (cores left idle by the
   * run's case workers).
   * @default {1}
   */
  decodeThreads?: number;
  /**
   * Most voxels any step of the recipe may produce (a resampling to a fine spacing can
   * turn a tiny file into gigabytes); a case that would exceed it fails up front.
   * @default {DEFAULT_MAX_VOXELS}
   */
  maxVoxels?: number;
  /**
   * How long a frame may take to decode (see `DECODER_LIMITS`), for the worker that
   * runs the job.
   * @default {DECODER_LIMITS}
   */
  decodeLimits?: { baseMs: number; msPerMegapixel: number };
}

/**
 * Default of {@linkcode CaseJob.maxVoxels}: 2^29 voxels (2 GiB as float32), 14 times a
 * 512 x 512 x 1000 mm whole-body CT resampled to 1.5 mm.
 */
export const DEFAULT_MAX_VOXELS = 2 ** 29;

/** What a worker lends {@linkcode processCase} across cases (not posted: live objects). */
export interface CaseResources {
  /** Pool that decodes compressed DICOM frames; replaces the job's `decodeThreads`. */
  decodePool?: FrameDecoderPool;
  /** Told before each frame decoded in this thread, so a hung decoder can be killed. */
  watchdog?: DecodeWatchdog;
}

/** What happened to one case. */
export interface CaseOutcome {
  /** `written` to the staging folder, or `unchanged` (the cached case is current). */
  status: "written" | "unchanged";
  /** The case fingerprint. */
  fingerprint: string;
  /** Bytes of the source files. */
  bytesIn: number;
  /** Bytes written to the staging folder (0 when unchanged). */
  bytesOut: number;
  /** Shape of the cached array. */
  shape?: [number, number, number];
  /** What the reader passed over (trailing data after the voxels, …), with the file. */
  warnings?: string[];
}

/**
 * Reads, preprocesses and writes one case into `job.stagingDir`. Skips the work when
 * the source hash and settings give the fingerprint already cached. Throws on bad input;
 * the message names the reason (the caller adds the file name).
 */
export async function processCase(
  job: CaseJob,
  resources: CaseResources = {},
): Promise<CaseOutcome> {
  const { files, mtime } = await readSourceFiles(job);
  const bytesIn = files.reduce((a, f) => a + f.length, 0);
  // The digest runs off this thread: start it, decode meanwhile, then compare.
  const hashing = sourceDigest(files, job.files);
  if (job.knownFingerprint) {
    const known = await caseFingerprint(job.settingsHash, await hashing);
    if (known === job.knownFingerprint) {
      return { status: "unchanged", fingerprint: known, bytesIn, bytesOut: 0 };
    }
  }
  // The size a NIfTI header declares is checked before its voxels are inflated.
  const maxVoxels = job.maxVoxels ?? DEFAULT_MAX_VOXELS;
  const declared = job.format === "nifti" ? peekNifti(files[0]) : undefined;
  if (declared) checkDeclaredVoxels(declared, job.recipe, maxVoxels);
  const image = await readImage(job.format, files, job.files, {
    decodeThreads: job.decodeThreads,
    decodePool: resources.decodePool,
    watchdog: resources.watchdog,
  });
  checkRecipeSize(image.volume, job.recipe, maxVoxels);
  const sourceSha256 = await hashing;
  const fingerprint = await caseFingerprint(job.settingsHash, sourceSha256);
  const original = image.sourceGeometry;
  const result = applyRecipe(image.volume, job.recipe);
  const window = job.recipe.steps.find((s) => s.op === "window");
  const encoding = storageEncoding(job.storage.dtype, result.valueRange, {
    windowWidthHu: window && window.op === "window"
      ? window.windowHu[1] - window.windowHu[0]
      : undefined,
  });
  const v = result.volume;
  const storage = { ...job.storage, layout: job.storage.layout ?? DEFAULT_LAYOUT };
  const attributes = {
    voco_cache_format: CACHE_FORMAT_VERSION,
    affine: v.affine,
    spacing: columnNorms(v.affine),
    source: job.source,
    source_bytes: bytesIn,
    source_files: files.length,
    source_mtime_ms: mtime || null,
    source_sha256: sourceSha256,
    recipe: job.recipe,
    fingerprint,
    storage,
    original: {
      format: image.format,
      dtype: image.sourceDtype,
      shape: original.shape,
      spacing: columnNorms(original.affine),
      affine: original.affine,
      orientation: orientationCode(original.affine),
    },
    crop_box: result.cropBox ?? null,
  };
  let bytesOut = 0;
  const fsStore = new FileSystemStore(job.stagingDir);
  const store = {
    get: (key: `/${string}`) => fsStore.get(key),
    set: (key: `/${string}`, value: Uint8Array) => {
      bytesOut += value.length;
      return fsStore.set(key, value);
    },
  };
  await writeCase(store, "/", v, {
    encoding,
    chunk: job.storage.chunk,
    compressor: job.storage.compressor,
    level: job.storage.level,
    layout: storage.layout,
    attributes,
    caseName: job.caseName,
  });
  const warnings = image.warnings?.map((w) => `${job.files[0]}: ${w}`);
  return {
    status: "written",
    fingerprint,
    bytesIn,
    bytesOut,
    shape: v.shape,
    ...(warnings ? { warnings } : {}),
  };
}

/**
 * The source's identity: the sha256 of its file when it has one; for several files
 * (a DICOM series, `.mhd` + data), the sha256 of `sha256sum`-style lines
 * (`<hex>  <file name>`), so renaming, adding or changing any file changes it.
 */
export async function sourceDigest(
  files: readonly Uint8Array[],
  paths: readonly string[],
): Promise<string> {
  const hashes = await Promise.all(files.map((f) => sha256Hex(f)));
  if (hashes.length === 1) return hashes[0];
  const lines = hashes.map((h, i) => `${h}  ${basename(paths[i])}\n`).join("");
  return await sha256Hex(new TextEncoder().encode(lines));
}

/**
 * A case's source files, 32 at a time (a DICOM series can have thousands), and their
 * newest modification time. Only regular files, never more than this machine can hold: a
 * FIFO or /dev/zero named as an input or a data file fails here instead of hanging the run.
 */
async function readSourceFiles(job: CaseJob): Promise<{ files: Uint8Array[]; mtime: number }> {
  const files: Uint8Array[] = [];
  let mtime = 0, total = 0;
  const limit = maxImageBytes();
  for (let i = 0; i < job.files.length; i += 32) {
    const batch = job.files.slice(i, i + 32);
    files.push(
      ...await Promise.all(batch.map(async (path) => {
        const { bytes, info } = await readRegularFile(path, limit);
        mtime = Math.max(mtime, info.mtime?.getTime() ?? 0);
        total += bytes.length;
        if (total > limit) {
          throw new BadInputError(
            `The files of ${job.path} hold more than ${formatSize(limit)}, more than this ` +
              `machine can give one case`,
          );
        }
        return bytes;
      })),
    );
  }
  return { files, mtime };
}
