// Parsing DICOM files into data sets and the slice facts series assembly needs.
import dicomParser from "dicom-parser";
import { inflateRawSync } from "node:zlib";
import { BadInputError } from "../../../cache/errors.ts";

/** A parsed DICOM data set (dicom-parser's `DataSet`). */
export type DicomDataSet = ReturnType<typeof dicomParser.parseDicom>;

/** The facts about one DICOM file that series grouping and volume assembly need. */
export interface DicomSliceInfo {
  /** Transfer syntax UID (0002,0010); implicit VR little endian when the file has no meta. */
  transferSyntax: string;
  /** SOP class UID (0008,0016), else the meta header's media storage SOP class (0002,0002). */
  sopClass: string;
  /** SOP instance UID (0008,0018). */
  sopInstance: string;
  /** Modality (0008,0060), e.g. `CT`. */
  modality: string;
  /** Image type values (0008,0008), e.g. `["ORIGINAL", "PRIMARY", "AXIAL"]`. */
  imageType: string[];
  /** Series instance UID (0020,000E). */
  seriesUid: string;
  /** Study instance UID (0020,000D). */
  studyUid: string;
  /** Frame of reference UID (0020,0052). */
  frameOfReferenceUid: string;
  /** Photometric interpretation (0028,0004), e.g. `MONOCHROME2`. */
  photometric: string;
  /** Series number (0020,0011), when present. */
  seriesNumber?: number;
  /** Series description (0008,103E). */
  seriesDescription: string;
  /** Instance number (0020,0013), when present. */
  instanceNumber?: number;
  /** Rows (0028,0010). */
  rows: number;
  /** Columns (0028,0011). */
  columns: number;
  /** Number of frames (0028,0008), 1 when absent. */
  frames: number;
  /** Index of this frame in a multi-frame file (see {@linkcode frameInfos}). */
  frame?: number;
  /** Samples per pixel (0028,0002). */
  samplesPerPixel: number;
  /** Bits allocated (0028,0100). */
  bitsAllocated: number;
  /** Bits stored (0028,0101). */
  bitsStored: number;
  /** Pixel representation (0028,0103): 0 unsigned, 1 two's complement. */
  pixelRepresentation: number;
  /** Image position (patient), LPS mm (0020,0032). */
  position?: [number, number, number];
  /** Image orientation (patient): row then column direction cosines, LPS (0020,0037). */
  orientation?: [number, number, number, number, number, number];
  /** Pixel spacing: row spacing then column spacing, mm (0028,0030). */
  pixelSpacing?: [number, number];
  /** Rescale slope (0028,1053), 1 when absent. */
  slope: number;
  /** Rescale intercept (0028,1052), 0 when absent. */
  intercept: number;
}

/** Transfer syntax of files without a Part 10 header (raw data sets). */
export const IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2";

const deflatedSyntax = new WeakMap<DicomDataSet, string>();

/** Whether the bytes carry the Part 10 `DICM` magic at offset 128. */
export function isDicomPart10(bytes: Uint8Array): boolean {
  return bytes.length >= 132 && bytes[128] === 0x44 && bytes[129] === 0x49 &&
    bytes[130] === 0x43 && bytes[131] === 0x4d;
}

/**
 * Parses a DICOM file with dicom-parser. Part 10 files are parsed by their transfer
 * syntax (deflated data sets are inflated with native zlib); files without the Part 10
 * header are read as implicit VR little endian, as old exports are. `untilTag` stops
 * before that element (`x7fe00010` to read headers only). Throws a `BadInputError` naming
 * the reason.
 */
export function parseDicom(bytes: Uint8Array, untilTag?: string): DicomDataSet {
  if (bytes.length === 0) {
    throw new BadInputError("Not a readable DICOM file: it is empty (0 bytes)");
  }
  try {
    if (!isDicomPart10(bytes)) {
      return dicomParser.parseDicom(bytes, {
        untilTag,
        TransferSyntaxUID: IMPLICIT_VR_LITTLE_ENDIAN,
      });
    }
    // Deflated data sets are inflated here: dicom-parser 1.8 reads the bytes after the meta
    // group as an element while looking for the group's end (random deflate output can
    // make that fail), and its own inflation path restarts parsing at offset 0.
    const metaEnd = metaGroupEnd(bytes);
    if (metaEnd !== undefined) {
      const meta = dicomParser.readPart10Header(bytes.subarray(0, metaEnd));
      const syntax = meta.string("x00020010")?.trim() ?? "";
      if (syntax === DEFLATED) {
        const inflated = inflateRawSync(bytes.subarray(metaEnd));
        const ds = dicomParser.parseDicom(
          new Uint8Array(inflated.buffer, inflated.byteOffset, inflated.byteLength),
          { untilTag, TransferSyntaxUID: EXPLICIT_VR_LITTLE_ENDIAN },
        );
        deflatedSyntax.set(ds, syntax);
        return ds;
      }
    }
    return dicomParser.parseDicom(bytes, { untilTag });
  } catch (e) {
    // dicom-parser throws strings, and wraps data-set errors as {exception, dataSet}.
    const inner = (e as { exception?: unknown })?.exception ?? e;
    const reason = inner instanceof Error ? inner.message : String(inner);
    throw new BadInputError(`Not a readable DICOM file: ${reason}`);
  }
}

const DEFLATED = "1.2.840.10008.1.2.1.99";
const EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1";

/** End of the file meta group from its (0002,0000) group length, when present. */
function metaGroupEnd(bytes: Uint8Array): number | undefined {
  if (bytes.length < 144) return undefined;
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const isGroupLength = v.getUint16(132, true) === 2 && v.getUint16(134, true) === 0 &&
    bytes[136] === 0x55 && bytes[137] === 0x4c; // "UL"
  return isGroupLength ? 144 + v.getUint32(140, true) : undefined;
}

function numbers(ds: DicomDataSet, tag: string, n: number): number[] | undefined {
  const text = ds.string(tag);
  if (text === undefined) return undefined;
  const parts = text.split("\\").map((s) => Number(s.trim()));
  if (parts.length !== n || parts.some((x) => !Number.isFinite(x))) {
    throw new BadInputError(`DICOM element (${tag.slice(1, 5)},${tag.slice(5)}) is "${text}"`);
  }
  return parts;
}

function optionalInt(ds: DicomDataSet, tag: string): number | undefined {
  const s = ds.string(tag);
  if (s === undefined || s.trim() === "") return undefined;
  const v = Number(s);
  return Number.isFinite(v) ? v : undefined;
}

/** Extracts the slice facts of a parsed data set (see {@linkcode DicomSliceInfo}). */
export function sliceInfo(ds: DicomDataSet): DicomSliceInfo {
  const slope = ds.floatString("x00281053");
  const intercept = ds.floatString("x00281052");
  return {
    transferSyntax: deflatedSyntax.get(ds) ?? (ds.string("x00020010")?.trim() ||
      IMPLICIT_VR_LITTLE_ENDIAN),
    sopClass: ds.string("x00080016") ?? ds.string("x00020002") ?? "",
    sopInstance: ds.string("x00080018") ?? "",
    modality: (ds.string("x00080060") ?? "").toUpperCase(),
    imageType: (ds.string("x00080008") ?? "").split("\\").map((s) => s.trim().toUpperCase()),
    seriesUid: ds.string("x0020000e") ?? "",
    studyUid: ds.string("x0020000d") ?? "",
    frameOfReferenceUid: ds.string("x00200052") ?? "",
    photometric: (ds.string("x00280004") ?? "").trim().toUpperCase(),
    seriesNumber: optionalInt(ds, "x00200011"),
    seriesDescription: ds.string("x0008103e") ?? "",
    instanceNumber: optionalInt(ds, "x00200013"),
    rows: ds.uint16("x00280010") ?? 0,
    columns: ds.uint16("x00280011") ?? 0,
    frames: optionalInt(ds, "x00280008") ?? 1,
    samplesPerPixel: ds.uint16("x00280002") ?? 1,
    bitsAllocated: ds.uint16("x00280100") ?? 0,
    bitsStored: ds.uint16("x00280101") ?? ds.uint16("x00280100") ?? 0,
    pixelRepresentation: ds.uint16("x00280103") ?? 0,
    position: numbers(ds, "x00200032", 3) as DicomSliceInfo["position"],
    orientation: numbers(ds, "x00200037", 6) as DicomSliceInfo["orientation"],
    pixelSpacing: numbers(ds, "x00280030", 2) as DicomSliceInfo["pixelSpacing"],
    slope: slope !== undefined && Number.isFinite(slope) && slope !== 0 ? slope : 1,
    intercept: intercept !== undefined && Number.isFinite(intercept) ? intercept : 0,
  };
}

/** The data set of the first item of sequence `tag` in `ds`, if any. */
function firstItem(ds: DicomDataSet | undefined, tag: string): DicomDataSet | undefined {
  return ds?.elements[tag]?.items?.[0]?.dataSet as DicomDataSet | undefined;
}

/**
 * The slices of a multi-frame (Enhanced or Legacy Converted Enhanced CT) file: one info
 * per frame, with `frame` set and the geometry and rescale of its functional groups (the
 * frame's own, else the shared ones): Plane Position, Plane Orientation, Pixel Measures
 * and Pixel Value Transformation. A single-frame file gives its own info. Throws naming
 * the reason when the frames cannot be placed.
 */
export function frameInfos(ds: DicomDataSet, info: DicomSliceInfo): DicomSliceInfo[] {
  if (info.frames <= 1) return [info];
  const perFrame = ds.elements.x52009230?.items ?? [];
  if (perFrame.length !== info.frames) {
    throw new BadInputError(
      `multi-frame image (${info.frames} frames) without a Per-frame Functional Groups ` +
        `item per frame (found ${perFrame.length}), so its frames cannot be placed`,
    );
  }
  const shared = firstItem(ds, "x52009229");
  return perFrame.map((item, frame) => {
    const own = item.dataSet as DicomDataSet | undefined;
    // A functional group from this frame's item, else from the shared item.
    const group = (tag: string) => firstItem(own, tag) ?? firstItem(shared, tag);
    const position = group("x00209113");
    const orientation = group("x00209116");
    const measures = group("x00289110");
    const rescale = group("x00289145");
    const slope = rescale?.floatString("x00281053");
    const intercept = rescale?.floatString("x00281052");
    return {
      ...info,
      frames: 1,
      frame,
      position: position
        ? numbers(position, "x00200032", 3) as DicomSliceInfo["position"]
        : info.position,
      orientation: orientation
        ? numbers(orientation, "x00200037", 6) as DicomSliceInfo["orientation"]
        : info.orientation,
      pixelSpacing: measures
        ? numbers(measures, "x00280030", 2) as DicomSliceInfo["pixelSpacing"]
        : info.pixelSpacing,
      slope: slope !== undefined && Number.isFinite(slope) && slope !== 0 ? slope : info.slope,
      intercept: intercept !== undefined && Number.isFinite(intercept) ? intercept : info.intercept,
    };
  });
}

/** How the pixels of a transfer syntax are decoded. */
export type PixelEncoding =
  | "native"
  | "native-big-endian"
  | "rle"
  | "jpeg2000"
  | "htj2k"
  | "jpeg-lossless"
  | "jpeg-ls";

/** Encodings whose frames are compressed and decoded by a codec. */
export type CompressedEncoding = Exclude<PixelEncoding, "native" | "native-big-endian">;

/** The header fields a frame decoder needs: plain data, so it can be posted to a worker. */
export type FrameInfo = Pick<
  DicomSliceInfo,
  "rows" | "columns" | "bitsAllocated" | "bitsStored" | "pixelRepresentation"
>;
