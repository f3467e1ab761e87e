// Grouping DICOM files into series, deciding what to skip or fail, and sorting slices
// into a uniform stack.
import { dirname } from "node:path";
import type { DicomSliceInfo } from "./dicom_parse.ts";
import type { Mat4 } from "../../volume.ts";
import { BadInputError } from "../../../cache/errors.ts";

/** Relative slice-gap tolerance of {@linkcode sortSlices}: 5 % of the median gap. */
export const SLICE_GAP_TOLERANCE = 0.05;

/** One file's header facts, with where it came from. */
export interface DicomFileInfo {
  /** Path of the file (used in messages). */
  path: string;
  /** Header facts. */
  info: DicomSliceInfo;
  /** Whether the file has a pixel data element. */
  hasPixels: boolean;
}

/** The files of one image series. */
export interface DicomSeriesGroup {
  /** Series instance UID. */
  uid: string;
  /** Modality of the series. */
  modality: string;
  /** Series number, when present. */
  number?: number;
  /** Series description. */
  description: string;
  /** Paths of the series' image files, sorted. */
  files: string[];
  /** Slices in all: one per single-frame file, the frames of a multi-frame one. */
  frames: number;
}

/** CT image storage SOP classes: plain, enhanced and legacy converted enhanced. */
const CT_IMAGE_SOP_CLASSES = new Set([
  "1.2.840.10008.5.1.4.1.1.2",
  "1.2.840.10008.5.1.4.1.1.2.1",
  "1.2.840.10008.5.1.4.1.1.2.2",
]);

/**
 * Why a file is broken as a slice of a CT volume, or `undefined` when it is not: without
 * pixel data, a CT image file (by its SOP class), as a truncated download leaves it, or
 * a file with no SOP class at all (every DICOM object has one: the header is garbled).
 * A broken file is bad input, not a skip: it stays with its series, which then fails.
 */
export function brokenReason(f: DicomFileInfo): string | undefined {
  if (f.hasPixels) return undefined;
  if (CT_IMAGE_SOP_CLASSES.has(f.info.sopClass)) {
    return "a CT image without pixel data (truncated file?)";
  }
  if (!f.info.sopClass) return "no SOP class UID and no pixel data (corrupt header?)";
  return undefined;
}

/**
 * What is wrong with the pixel description of a CT image's header, or `undefined`:
 * Rows and Columns of at least 1, Bits Allocated 8, 16 or 32, Bits Stored from 1 to Bits
 * Allocated, Pixel Representation 0 or 1. A header that fails is broken, not skipped.
 */
export function pixelHeaderProblem(i: DicomSliceInfo): string | undefined {
  if (!(i.rows >= 1 && i.columns >= 1)) {
    return `Rows = ${i.rows} and Columns = ${i.columns}: an image needs at least 1 of each`;
  }
  if (![8, 16, 32].includes(i.bitsAllocated)) {
    return `Bits Allocated = ${i.bitsAllocated} is not supported (8, 16 or 32)`;
  }
  if (!(i.bitsStored >= 1 && i.bitsStored <= i.bitsAllocated)) {
    return `Bits Stored = ${i.bitsStored} does not fit Bits Allocated = ${i.bitsAllocated}`;
  }
  if (i.pixelRepresentation !== 0 && i.pixelRepresentation !== 1) {
    return `Pixel Representation = ${i.pixelRepresentation} (0 unsigned or 1 signed)`;
  }
  return undefined;
}

/** Names of the SOP classes met beside CT series, for messages. */
const SOP_CLASS_NAMES: Record<string, string> = {
  "1.2.840.10008.5.1.4.1.1.2": "CT Image Storage",
  "1.2.840.10008.5.1.4.1.1.2.1": "Enhanced CT Image Storage",
  "1.2.840.10008.5.1.4.1.1.2.2": "Legacy Converted Enhanced CT Image Storage",
  "1.2.840.10008.5.1.4.1.1.4": "MR Image Storage",
  "1.2.840.10008.5.1.4.1.1.4.1": "Enhanced MR Image Storage",
  "1.2.840.10008.5.1.4.1.1.6.1": "Ultrasound Image Storage",
  "1.2.840.10008.5.1.4.1.1.3.1": "Ultrasound Multi-frame Image Storage",
  "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture Image Storage",
  "1.2.840.10008.5.1.4.1.1.7.4": "Multi-frame True Color Secondary Capture Image Storage",
  "1.2.840.10008.5.1.4.1.1.1": "Computed Radiography Image Storage",
  "1.2.840.10008.5.1.4.1.1.1.1": "Digital X-Ray Image Storage",
  "1.2.840.10008.5.1.4.1.1.12.1": "X-Ray Angiographic Image Storage",
  "1.2.840.10008.5.1.4.1.1.20": "Nuclear Medicine Image Storage",
  "1.2.840.10008.5.1.4.1.1.128": "PET Image Storage",
  "1.2.840.10008.5.1.4.1.1.66": "Raw Data Storage",
  "1.2.840.10008.5.1.4.1.1.66.1": "Spatial Registration Storage",
  "1.2.840.10008.5.1.4.1.1.66.4": "Segmentation Storage",
  "1.2.840.10008.5.1.4.1.1.88.11": "Basic Text SR Storage",
  "1.2.840.10008.5.1.4.1.1.88.22": "Enhanced SR Storage",
  "1.2.840.10008.5.1.4.1.1.88.33": "Comprehensive SR Storage",
  "1.2.840.10008.5.1.4.1.1.88.67": "X-Ray Radiation Dose SR Storage",
  "1.2.840.10008.5.1.4.1.1.88.59": "Key Object Selection Document Storage",
  "1.2.840.10008.5.1.4.1.1.11.1": "Grayscale Softcopy Presentation State Storage",
  "1.2.840.10008.5.1.4.1.1.104.1": "Encapsulated PDF Storage",
  "1.2.840.10008.5.1.4.1.1.481.1": "RT Image Storage",
  "1.2.840.10008.5.1.4.1.1.481.2": "RT Dose Storage",
  "1.2.840.10008.5.1.4.1.1.481.3": "RT Structure Set Storage",
  "1.2.840.10008.5.1.4.1.1.481.5": "RT Plan Storage",
};

/** A SOP class in words: its name where known, else its UID. */
export function sopClassName(uid: string): string {
  return uid ? SOP_CLASS_NAMES[uid] ?? `SOP class ${uid}` : "no SOP class";
}

/**
 * Why a file is not an image slice of a CT volume, or `undefined` when it is one, in
 * words that say what the file is (its SOP class, Modality, photometric interpretation):
 * no pixel data (a structure set, a report), another modality, a localizer, a colour
 * image (a dose screenshot), or an image of another SOP class without a place in space
 * (a secondary capture such as a scanner's patient-protocol page, which carries modality
 * CT).
 */
export function skipReason(f: DicomFileInfo): string | undefined {
  const i = f.info;
  const what = sopClassName(i.sopClass);
  const modality = !i.modality
    ? "missing"
    : readableModality(i.modality)
    ? i.modality
    : `${JSON.stringify(i.modality)} (unreadable)`;
  if (!f.hasPixels) return `no pixel data (${what}, modality ${modality})`;
  if (i.modality !== "CT") return `modality ${modality}, not CT (${what})`;
  if (i.imageType.includes("LOCALIZER")) return LOCALIZER;
  if (i.samplesPerPixel !== 1) {
    return `colour image (${i.photometric || "no photometric interpretation"}, ` +
      `${i.samplesPerPixel} samples per pixel; ${what}), not a CT slice`;
  }
  if (!CT_IMAGE_SOP_CLASSES.has(i.sopClass) && (!i.position || !i.orientation)) {
    return `${what} without ImagePositionPatient/ImageOrientationPatient (a secondary ` +
      `capture), not a CT slice`;
  }
  return undefined;
}

/** The skip reason of a localizer (scout) image, which a series reader passes over. */
export const LOCALIZER = "localizer (scout) image";

/** A Modality value that reads as one (an upper-case code, not a damaged byte or two). */
function readableModality(m: string): boolean {
  return /^[A-Z][A-Z0-9_]{1,15}$/.test(m);
}

/**
 * Groups DICOM files by SeriesInstanceUID, keeping CT image files only: other modalities
 * (SEG, RTSTRUCT, SR, PT, MR…), files without pixels and localizer/scout images are
 * returned as skipped with the reason, broken CT files (see {@linkcode brokenReason}) as
 * broken, with the series UID they name. An image file that would be skipped but is a
 * damaged slice of a CT series is broken too, so that the series fails instead of being
 * written a slice short: one that shares the series' UID (say, a damaged Modality), or,
 * with no readable Modality, one in the series' folder that shares its study or frame of
 * reference and its image geometry, or that has no UID at all to tell it apart.
 * Localizers and files without pixels stay skipped.
 */
export function groupDicomSeries(files: readonly DicomFileInfo[]): {
  series: DicomSeriesGroup[];
  skipped: { path: string; reason: string }[];
  broken: { path: string; reason: string; uid?: string }[];
} {
  const byUid = new Map<string, DicomSeriesGroup>();
  const first = new Map<string, DicomFileInfo>();
  const skipped: { file: DicomFileInfo; reason: string; benign: boolean }[] = [];
  const broken: { path: string; reason: string; uid?: string }[] = [];
  for (const f of files) {
    const bad = brokenReason(f);
    if (bad) {
      broken.push({ path: f.path, reason: bad, uid: f.info.seriesUid || undefined });
      continue;
    }
    const reason = skipReason(f);
    if (reason) {
      const benign = !f.hasPixels || reason === LOCALIZER;
      skipped.push({ file: f, reason, benign });
      continue;
    }
    const uid = f.info.seriesUid || "(no series UID)";
    let g = byUid.get(uid);
    if (!g) {
      g = {
        uid,
        modality: f.info.modality,
        number: f.info.seriesNumber,
        description: f.info.seriesDescription,
        files: [],
        frames: 0,
      };
      byUid.set(uid, g);
      first.set(uid, f);
    }
    g.files.push(f.path);
    g.frames += Math.max(1, f.info.frames);
  }
  const series = [...byUid.values()];
  for (const g of series) g.files.sort();
  series.sort((a, b) => (a.files[0] < b.files[0] ? -1 : 1));
  const kept: { path: string; reason: string }[] = [];
  for (const { file, reason, benign } of skipped) {
    const damaged = benign ? [] : damagedSliceOf(file, byUid, first);
    for (const d of damaged) {
      broken.push({ path: file.path, reason: `${reason}, ${d.why}`, uid: d.uid });
    }
    if (damaged.length === 0) kept.push({ path: file.path, reason });
  }
  return { series, skipped: kept, broken };
}

/** The CT series a skipped image file is a damaged slice of, with the evidence. */
function damagedSliceOf(
  f: DicomFileInfo,
  byUid: Map<string, DicomSeriesGroup>,
  first: Map<string, DicomFileInfo>,
): { uid: string; why: string }[] {
  const i = f.info;
  if (i.seriesUid && byUid.has(i.seriesUid)) return [{ uid: i.seriesUid, why: "in a CT series" }];
  if (readableModality(i.modality)) return [];
  const out: { uid: string; why: string }[] = [];
  for (const [uid, rep] of first) {
    if (dirname(rep.path) !== dirname(f.path)) continue;
    const r = rep.info;
    const shared = [
      i.studyUid && i.studyUid === r.studyUid ? "study" : "",
      i.frameOfReferenceUid && i.frameOfReferenceUid === r.frameOfReferenceUid
        ? "frame of reference"
        : "",
    ].filter(Boolean);
    const geometry = i.rows === r.rows && i.columns === r.columns &&
      (!i.orientation || !r.orientation ||
        i.orientation.every((v, k) => Math.abs(v - r.orientation![k]) <= 1e-4)) &&
      (!i.pixelSpacing || !r.pixelSpacing ||
        i.pixelSpacing.every((v, k) => Math.abs(v - r.pixelSpacing![k]) <= 1e-4));
    const anonymous = !i.seriesUid && !i.studyUid && !i.frameOfReferenceUid;
    if (shared.length && geometry) {
      out.push({
        uid,
        why: `but the ${shared.join(" and ")} and image geometry of the CT series beside it ` +
          `(${uid}): a damaged slice of that series`,
      });
    } else if (anonymous && (geometry || (i.rows === 0 && i.columns === 0))) {
      out.push({
        uid,
        why: `and no series, study or frame of reference UID to tell it from the CT series ` +
          `beside it (${uid}): a damaged slice of that series?`,
      });
    }
  }
  return out;
}

/** The geometry {@linkcode sortSlices} derives from a series. */
export interface SeriesGeometry {
  /** Slice indices in volume order (ascending along the slice normal). */
  order: number[];
  /** Voxel-to-RAS affine of the volume stored as C order over [slice, row, column]. */
  affine: Mat4;
  /** Distance between consecutive slices along the normal, mm. */
  sliceGapMm: number;
  /**
   * Angle between the line of slice positions and the slice normal, degrees: a gantry
   * tilt, which leaves the affine's slice column sheared (0 for an ordinary series).
   */
  tiltDegrees: number;
}

/** Tilts below this (degrees) are rounding in the positions, not a gantry tilt. */
export const TILT_TOLERANCE_DEGREES = 0.01;

const fmt = (x: number) => Number(x.toFixed(3)).toString();

/**
 * Sorts the slices of one series along the slice normal (from ImageOrientationPatient and
 * ImagePositionPatient) and derives the volume affine, with the slice step taken from the
 * first and last positions (not SliceThickness), as MONAI's `PydicomReader` does: a
 * gantry-tilted series, whose positions do not run along the normal, gets a sheared
 * affine (see `tiltDegrees`). DICOM's patient axes are LPS; the affine is converted to
 * RAS. Throws a `BadInputError` naming the files for: multi-frame images, missing geometry,
 * mixed image sizes or orientations, fewer than two slices, duplicated positions, slice
 * gaps that differ from the median by more than `tolerance` (relative), and a slice off
 * the line through the first and last by more than `tolerance` times the pixel spacing.
 */
export function sortSlices(
  slices: readonly { path: string; info: DicomSliceInfo }[],
  tolerance: number = SLICE_GAP_TOLERANCE,
): SeriesGeometry {
  checkSlices(slices);
  const first = slices[0];
  const o = first.info.orientation!;
  const row = [o[0], o[1], o[2]], col = [o[3], o[4], o[5]];
  const normal = [
    row[1] * col[2] - row[2] * col[1],
    row[2] * col[0] - row[0] * col[2],
    row[0] * col[1] - row[1] * col[0],
  ];
  const { order, median } = orderAlong(slices, normal, tolerance);
  const n = slices.length;
  const p0 = slices[order[0]].info.position!, pn = slices[order[n - 1]].info.position!;
  // The slice column from the first and last positions, as MONAI's PydicomReader takes
  // it: with a gantry tilt it leans off the normal (a shear), and a spacing step then
  // resamples the volume onto an orthogonal grid.
  const step = p0.map((v, k) => (pn[k] - v) / (n - 1));
  // The angle between the step and the normal (atan2: exact near 0, unlike acos; the
  // normal of 6-digit cosines is a hair from unit length).
  const nn = normal.map((v) => v / Math.hypot(...normal));
  const along = step.reduce((a, v, k) => a + v * nn[k], 0);
  const across = Math.hypot(...step.map((v, k) => v - along * nn[k]));
  const tiltDegrees = Math.atan2(across, along) * 180 / Math.PI;
  checkOnOneLine(slices, order, step, tolerance);
  const [rowMm, colMm] = first.info.pixelSpacing!;
  // Array axes: 0 = slice, 1 = row (moves along the column direction), 2 = column.
  const lps = [0, 1, 2].map((r) => [step[r], col[r] * rowMm, row[r] * colMm, p0[r]]);
  const affine: Mat4 = [
    lps[0].map((v) => -v),
    lps[1].map((v) => -v),
    lps[2],
    [0, 0, 0, 1],
  ];
  return {
    order,
    affine,
    sliceGapMm: median,
    tiltDegrees: tiltDegrees > TILT_TOLERANCE_DEGREES ? tiltDegrees : 0,
  };
}

/** Each slice can be placed, and all share the first one's size and orientation. */
function checkSlices(slices: readonly { path: string; info: DicomSliceInfo }[]): void {
  if (slices.length < 2) {
    throw new BadInputError(`Only ${slices.length} slice in the series; a volume needs at least 2`);
  }
  const first = slices[0];
  for (const s of slices) {
    const i = s.info;
    if (i.frames > 1) {
      throw new BadInputError(
        `${s.path}: multi-frame image (${i.frames} frames, enhanced CT) is not supported; ` +
          `export the series as single-frame slices`,
      );
    }
    if (!i.position || !i.orientation || !i.pixelSpacing) {
      throw new BadInputError(
        `${s.path}: missing ${
          !i.position
            ? "ImagePositionPatient"
            : !i.orientation
            ? "ImageOrientationPatient"
            : "PixelSpacing"
        }, so the slice cannot be placed`,
      );
    }
    if (i.rows !== first.info.rows || i.columns !== first.info.columns) {
      throw new BadInputError(
        `Mixed image sizes: ${first.path} is ${first.info.columns}x${first.info.rows}, ` +
          `${s.path} is ${i.columns}x${i.rows}`,
      );
    }
    const o0 = first.info.orientation!;
    if (i.orientation.some((v, k) => Math.abs(v - o0[k]) > 1e-4)) {
      throw new BadInputError(
        `Mixed orientations: ${first.path} has ${o0.map(fmt).join("\\")}, ` +
          `${s.path} has ${i.orientation.map(fmt).join("\\")}`,
      );
    }
    const ps = i.pixelSpacing;
    if (!(ps[0] > 0 && ps[1] > 0)) {
      throw new BadInputError(`${s.path}: PixelSpacing ${ps} is not positive`);
    }
  }
}

/**
 * The slices' order along the normal and the median gap; duplicated positions and gaps
 * off the median by more than `tolerance` (a missing slice) are refused by name.
 */
function orderAlong(
  slices: readonly { path: string; info: DicomSliceInfo }[],
  normal: number[],
  tolerance: number,
): { order: number[]; median: number } {
  const depth = slices.map((s) => s.info.position!.reduce((a, p, k) => a + p * normal[k], 0));
  const order = depth.map((_, i) => i).sort((a, b) => depth[a] - depth[b]);
  const gaps = order.slice(1).map((idx, k) => depth[idx] - depth[order[k]]);
  const median = [...gaps].sort((a, b) => a - b)[gaps.length >> 1];
  for (let k = 0; k < gaps.length; k++) {
    const a = slices[order[k]], b = slices[order[k + 1]];
    if (gaps[k] < 1e-3 || gaps[k] < median * tolerance) {
      throw new BadInputError(
        `Duplicated slice at position ${fmt(depth[order[k]])} mm along the normal: ` +
          `${a.path} and ${b.path}`,
      );
    }
  }
  if (!(median > 0)) throw new BadInputError("All slices are at the same position");
  for (let k = 0; k < gaps.length; k++) {
    if (Math.abs(gaps[k] - median) > tolerance * median) {
      const a = slices[order[k]], b = slices[order[k + 1]];
      throw new BadInputError(
        `Non-uniform slice gap: ${fmt(gaps[k])} mm between ${a.path} and ${b.path} ` +
          `(slices ${k} and ${k + 1}); the other gaps are ${fmt(median)} mm` +
          (gaps[k] > median ? ", so a slice may be missing" : ""),
      );
    }
  }
  return { order, median };
}

/**
 * Every slice lies on the line through the first and last (a uniform stack, tilted or
 * not): a slice off it would be put in the wrong place by the series' affine.
 */
function checkOnOneLine(
  slices: readonly { path: string; info: DicomSliceInfo }[],
  order: number[],
  step: number[],
  tolerance: number,
): void {
  const n = slices.length, p0 = slices[order[0]].info.position!;
  const first = slices[0];
  const [rowMm0, colMm0] = first.info.pixelSpacing!;
  const offLimit = tolerance * Math.min(rowMm0, colMm0);
  const unit = step.map((v) => v / Math.hypot(...step));
  for (let k = 1; k < n - 1; k++) {
    const p = slices[order[k]].info.position!;
    const d = p.map((v, i) => v - p0[i]);
    const t = d.reduce((a, v, i) => a + v * unit[i], 0);
    const off = Math.hypot(...d.map((v, i) => v - t * unit[i]));
    if (off > offLimit) {
      throw new BadInputError(
        `Slice positions do not lie on one line: ${slices[order[k]].path} is ${fmt(off)} mm ` +
          `off the line through the first and last slices (${slices[order[0]].path}, ` +
          `${slices[order[n - 1]].path}); the volume would be distorted`,
      );
    }
  }
}
