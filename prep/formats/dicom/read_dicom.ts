// Reading a DICOM series (single-frame files or Enhanced CT) into one volume in
// Hounsfield units with its RAS affine.
import {
  type DicomDataSet,
  type DicomSliceInfo,
  frameInfos,
  parseDicom,
  sliceInfo,
} from "./dicom_parse.ts";
import {
  decodeFrame,
  type EncodedFrame,
  extractFrame,
  isCompressedSyntax,
  isEncodedFrame,
  type PixelArray,
} from "./dicom_codecs.ts";
import { decodeBudgetMs, FrameDecoderPool } from "./frame_pool.ts";
import {
  brokenReason,
  LOCALIZER,
  pixelHeaderProblem,
  skipReason,
  sortSlices,
} from "./dicom_series.ts";
import type { LoadedImage } from "../read_nifti.ts";
import type { Mat4, Shape3 } from "../../volume.ts";
import { checkDeclaredSize, describeError } from "../_checks.ts";
import { BadInputError } from "../../../cache/errors.ts";

/** Options of {@linkcode readDicomSeries}. */
export interface ReadDicomOptions {
  /** Paths of the files, in the same order as the bytes (used in messages). */
  paths?: readonly string[];
  /**
   * Relative tolerance on slice gaps.
   * @default {0.05}
   */
  gapTolerance?: number;
  /**
   * Threads that decode compressed frames (JPEG 2000, JPEG-LS, JPEG lossless, RLE). With
   * more than 1, a pool of workers decodes the series' frames in parallel; native pixel
   * data is always read in this thread.
   * @default {1}
   */
  decodeThreads?: number;
  /**
   * A pool to decode compressed frames in, owned (and closed) by the caller; it replaces
   * `decodeThreads`. A prep worker keeps one for all its cases: a worker started from a
   * worker takes about a second to answer its first message in Deno 2.9.
   */
  pool?: FrameDecoderPool;
  /**
   * Told before each compressed frame decoded in this thread, with the time it may take
   * ({@linkcode decodeBudgetMs}); returns the function called when it is done. A caller
   * in a worker uses it to have the worker killed when a decoder hangs.
   */
  watchdog?: (what: string, budgetMs: number) => () => void;
}

/**
 * When {@linkcode readDicomSeries} starts a decoder pool: at least `minPixels` compressed
 * pixels in the series. Starting the workers and their codecs costs about 80 ms, the
 * decoding of 8 M JPEG 2000 pixels (32 slices of 512²) about 0.8 s in one thread.
 * Mutable, so tests can run the pool on small series.
 */
export const DECODE_POOL_LIMITS = { minPixels: 1 << 23 };

/**
 * Reads one DICOM CT series (the bytes of its files, any order) into a volume in
 * Hounsfield units: slices sorted along the normal, the affine from the positions and
 * orientation (LPS converted to RAS; sheared for a gantry-tilted series, with a warning,
 * as MONAI's `PydicomReader` builds it), each slice's RescaleSlope/Intercept applied.
 * Localizer images mixed into the series are skipped. The volume is C order over
 * [slice, row, column]; it is int16 when every slice rescales to integers that fit,
 * float32 otherwise. Rejections throw with the file and the reason.
 */
export async function readDicomSeries(
  files: readonly Uint8Array[],
  options: ReadDicomOptions = {},
): Promise<LoadedImage> {
  const paths = options.paths ?? files.map((_, i) => `file ${i}`);
  const parsed = parseSlices(files, paths);
  if (parsed.length > 0) {
    const { rows, columns, bitsAllocated } = parsed[0].info;
    checkDeclaredSize(
      `DICOM series (${parsed.length} slices of ${columns}x${rows})`,
      [columns, rows, parsed.length],
      bitsAllocated / 8,
    );
  }
  const geometry = sortSlices(parsed, options.gapTolerance);
  const { rows, columns } = parsed[0].info;
  const n = parsed.length;
  const { out, sourceDtype } = await decodeSlices(parsed, geometry.order, options);
  const shape: Shape3 = [n, rows, columns];
  const a = geometry.affine;
  // Reported as ITK/nibabel would: axes (column, row, slice), the affine's columns reversed.
  const fileAffine: Mat4 = a.map((r) => [r[2], r[1], r[0], r[3]]);
  const tilt = geometry.tiltDegrees;
  return {
    volume: { data: out, shape, affine: a },
    format: "dicom",
    sourceDtype,
    sourceGeometry: { shape: [columns, rows, n], affine: fileAffine },
    ...(tilt > 0
      ? {
        warnings: [
          `gantry tilt of ${Number(tilt.toFixed(2))} degrees (the slice positions do not run ` +
          `along the slice normal): the affine is sheared, as MONAI's PydicomReader builds ` +
          `it; a spacing step resamples the volume onto a grid without the shear, as ` +
          `MONAI's Spacing does, and a recipe without one keeps the sheared affine`,
        ],
      }
      : {}),
  };
}

/** One slice of a series: its file (and frame), data set and header fields. */
type ParsedSlice = { path: string; ds: DicomDataSet; info: DicomSliceInfo };

/**
 * Parses every file of a series into slices (an Enhanced CT file into one per frame),
 * skipping localizers; a file that cannot be used fails the series, named.
 */
function parseSlices(files: readonly Uint8Array[], paths: readonly string[]): ParsedSlice[] {
  const parsed: ParsedSlice[] = [];
  for (let i = 0; i < files.length; i++) {
    let ds: DicomDataSet, info;
    try {
      ds = parseDicom(files[i]);
      info = sliceInfo(ds);
    } catch (e) {
      throw new BadInputError(`${paths[i]}: ${describeError(e)}`);
    }
    const file = { path: paths[i], info, hasPixels: Boolean(ds.elements.x7fe00010) };
    const reason = brokenReason(file) ?? skipReason(file);
    if (reason === LOCALIZER) continue;
    if (reason) {
      // Discovery put it with this series (its series UID, or its study and geometry
      // with a damaged Modality): a slice that cannot be used fails the series.
      const among = files.length > 1 && !brokenReason(file) ? ", among this series' slices" : "";
      throw new BadInputError(`${paths[i]}: ${reason}${among}`);
    }
    const problem = pixelHeaderProblem(info);
    if (problem) throw new BadInputError(`${paths[i]}: ${problem}`);
    if (info.frames <= 1) {
      parsed.push({ path: paths[i], ds, info });
      continue;
    }
    // An Enhanced CT file: each frame is a slice, placed by its functional groups.
    let frames;
    try {
      frames = frameInfos(ds, info);
    } catch (e) {
      throw new BadInputError(`${paths[i]}: ${describeError(e)}`);
    }
    frames.forEach((f, k) => parsed.push({ path: `${paths[i]} (frame ${k + 1})`, ds, info: f }));
  }
  return parsed;
}

/**
 * The slices' pixels in `order`, rescaled to HU into one C-order buffer: int16 when every
 * slice rescales to integers that fit, else float32. Compressed frames go to a decoder
 * pool (the lent one, or one of its own for a large series) or are decoded here.
 */
async function decodeSlices(
  parsed: readonly ParsedSlice[],
  order: readonly number[],
  options: ReadDicomOptions,
): Promise<{ out: Int16Array | Float32Array; sourceDtype: string }> {
  const { rows, columns } = parsed[0].info;
  const n = parsed.length;
  const plane = rows * columns;
  const integral = parsed.every((p) => p.info.slope === 1 && Number.isInteger(p.info.intercept));
  let out: Int16Array | Float32Array = integral
    ? new Int16Array(n * plane)
    : new Float32Array(n * plane);
  let sourceDtype = "";
  const extract = (k: number) => {
    const p = parsed[order[k]];
    try {
      return extractFrame(p.ds, p.info);
    } catch (e) {
      throw withPath(p.path, e);
    }
  };
  const isCompressed = parsed.map((p) => isCompressedSyntax(p.info.transferSyntax));
  const compressed = isCompressed.filter(Boolean).length;
  const threads = Math.min(options.decodeThreads ?? 1, compressed);
  const own = !options.pool && threads > 1 &&
    compressed * plane >= DECODE_POOL_LIMITS.minPixels;
  // A lent pool that failed earlier (a dead decoder) is passed over: decode here instead.
  const lent = options.pool && !options.pool.closed ? options.pool : undefined;
  const pool = own ? new FrameDecoderPool(threads) : compressed > 1 ? lent : undefined;
  try {
    // With a pool, every compressed frame is queued up front; native frames are still
    // copied one at a time below, so the volume is never held twice.
    const decoded: (Promise<PixelArray> | undefined)[] = [];
    for (let k = 0; pool && k < n; k++) {
      if (!isCompressed[order[k]]) continue;
      decoded[k] = pool.decode(extract(k) as EncodedFrame);
      // Read in order below; until then a rejection must not count as unhandled.
      decoded[k]!.catch(() => {});
    }
    for (let k = 0; k < n; k++) {
      const p = parsed[order[k]];
      const frame = decoded[k] ? undefined : extract(k);
      let pixels: PixelArray;
      const disarm = frame !== undefined && isEncodedFrame(frame)
        ? options.watchdog?.(p.path, decodeBudgetMs(frame.info))
        : undefined;
      try {
        pixels = frame === undefined
          ? await decoded[k]!
          : isEncodedFrame(frame)
          ? await decodeFrame(frame)
          : frame;
      } catch (e) {
        throw withPath(p.path, e);
      } finally {
        disarm?.();
      }
      decoded[k] = undefined;
      sourceDtype ||= pixels.constructor.name.replace("Array", "").toLowerCase();
      const { slope, intercept } = p.info;
      if (!storeSlice(out, k * plane, pixels, slope, intercept)) {
        // Rare (e.g. uint16 data with a large intercept): redo everything in float32.
        const f = new Float32Array(n * plane);
        f.set(out.subarray(0, k * plane));
        out = f;
        storeSlice(out, k * plane, pixels, slope, intercept);
      }
    }
  } finally {
    if (own) pool?.close();
  }
  return { out, sourceDtype };
}

/** The error `e` (anything a library threw) as an `Error` whose message names `path`. */
function withPath(path: string, e: unknown): Error {
  if (e instanceof Error) {
    e.message = `${path}: ${describeError(e)}`;
    return e;
  }
  return new BadInputError(`${path}: ${describeError(e)}`);
}

/**
 * Writes one slice's Hounsfield units at `base` (a function of its own, so that V8 keeps
 * the loop fast). Returns false when an int16 output cannot hold a value.
 */
function storeSlice(
  out: Int16Array | Float32Array,
  base: number,
  pixels: PixelArray,
  slope: number,
  intercept: number,
): boolean {
  if (out instanceof Float32Array) {
    for (let i = 0; i < pixels.length; i++) out[base + i] = pixels[i] * slope + intercept;
    return true;
  }
  let fits = true;
  for (let i = 0; i < pixels.length; i++) {
    const v = pixels[i] + intercept;
    if (v < -32768 || v > 32767) fits = false;
    out[base + i] = v;
  }
  return fits;
}
