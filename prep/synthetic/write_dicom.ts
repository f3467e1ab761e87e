// A DICOM series writer (every transfer syntax the reader takes), for tests and
// benchmarks.
import { deflateRawSync } from "node:zlib";
import type { Volume, VoxelArray } from "../volume.ts";
import { columnNorms } from "../transforms/_affine.ts";
import { encodeRle } from "../formats/dicom/_rle.ts";
import { encodeJpegLossless } from "./_jpeg_lossless.ts";

/** One data element to write: tag as `0xGGGGEEEE`, VR, and value. */
export interface DicomElement {
  /** Tag, group in the high 16 bits. */
  tag: number;
  /** Value representation (`UI`, `US`, `DS`, `OW`, …). */
  vr: string;
  /**
   * A string (backslash-separated for several values), numbers (`US`/`UL`), bytes, or
   * for `SQ` the items, each a list of elements.
   */
  value: string | number[] | Uint8Array | DicomElement[][];
}

/** Transfer syntaxes {@linkcode writeDicomSeries} can write, by short name. */
export const WRITE_SYNTAXES = {
  "implicit": "1.2.840.10008.1.2",
  "explicit": "1.2.840.10008.1.2.1",
  "deflated": "1.2.840.10008.1.2.1.99",
  "big-endian": "1.2.840.10008.1.2.2",
  "rle": "1.2.840.10008.1.2.5",
  "jpeg-lossless": "1.2.840.10008.1.2.4.70",
  "jpeg-ls": "1.2.840.10008.1.2.4.80",
  "jpeg2000": "1.2.840.10008.1.2.4.90",
  "htj2k": "1.2.840.10008.1.2.4.201",
} as const;

/** Options of {@linkcode writeDicomSeries}. */
export interface WriteDicomOptions {
  /**
   * Transfer syntax.
   * @default {"explicit"}
   */
  syntax?: keyof typeof WRITE_SYNTAXES;
  /**
   * Stored pixels: `signed` int16 with intercept 0, or `unsigned` uint16 with intercept
   * -1024 (as many scanners write).
   * @default {"signed"}
   */
  pixels?: "signed" | "unsigned";
  /** Series instance UID. @default {a new UID} */
  seriesUid?: string;
  /** Study instance UID. @default {a new UID} */
  studyUid?: string;
  /** Modality. @default {"CT"} */
  modality?: string;
  /** Image type values. @default {"ORIGINAL\\PRIMARY\\AXIAL"} */
  imageType?: string;
  /** Series number. @default {1} */
  seriesNumber?: number;
  /** Patient ID. @default {"PHANTOM"} */
  patientId?: string;
  /** File name of slice `index`. @default {`IM${index + 1}.dcm`, 4 digits} */
  fileName?: (index: number) => string;
  /** Elements added to every file (replacing generated ones with the same tag). */
  extraElements?: DicomElement[];
  /**
   * Write one Enhanced CT file whose frames are the slices (positions in per-frame
   * functional groups, spacing, orientation and rescale in shared ones), as recent
   * scanners export, instead of one file per slice.
   * @default {false}
   */
  multiFrame?: boolean;
  /**
   * With `multiFrame` and a compressed syntax: write the basic offset table of the frames
   * (some writers leave it empty, one fragment per frame).
   * @default {true}
   */
  offsetTable?: boolean;
}

const CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2";
const ENHANCED_CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1";

/** A new UID under the `2.25` root (a random UUID as a decimal integer). */
export function newUid(): string {
  return `2.25.${BigInt(`0x${crypto.randomUUID().replaceAll("-", "")}`)}`;
}

interface WasmEncoder {
  getDecodedBuffer(info: Record<string, unknown>): Uint8Array;
  encode(): void;
  getEncodedBuffer(): Uint8Array;
  delete(): void;
}
type EncoderCodec = Record<string, new () => WasmEncoder>;
/** The WebAssembly encoder class of each syntax encoded by a codec. */
const ENCODERS = {
  "jpeg2000": "J2KEncoder",
  "htj2k": "HTJ2KEncoder",
  "jpeg-ls": "JpegLSEncoder",
} as const;

async function wasmEncoder(which: keyof typeof ENCODERS): Promise<EncoderCodec> {
  const m = which === "jpeg2000"
    ? await import("@cornerstonejs/codec-openjpeg/wasmjs")
    : which === "htj2k"
    ? await import("@cornerstonejs/codec-openjph/wasmjs")
    : await import("@cornerstonejs/codec-charls/wasmjs");
  const factory = m.default as (o: Record<string, unknown>) => Promise<EncoderCodec>;
  return await factory({ print: () => {}, printErr: () => {} });
}

/**
 * Writes a volume as a DICOM CT series, one Part 10 file per slice: array axis 0 becomes
 * the columns, axis 1 the rows, axis 2 the slices (so a volume written as NIfTI,
 * MetaImage and DICOM is the same image). Axes 0 and 1 must be orthogonal. Values are
 * rounded to integer Hounsfield units. For the demo, the tests and the benchmark; every
 * transfer syntax the reader decodes can be written.
 */
export async function writeDicomSeries(
  volume: Volume<VoxelArray>,
  options: WriteDicomOptions = {},
): Promise<{ name: string; bytes: Uint8Array }[]> {
  const syntaxName = options.syntax ?? "explicit";
  const syntax = WRITE_SYNTAXES[syntaxName];
  const signed = (options.pixels ?? "signed") === "signed";
  const intercept = signed ? 0 : -1024;
  const [nc, nr, ns] = volume.shape;
  const a = volume.affine;
  const [colMm, rowMm] = columnNorms(a);
  // RAS -> LPS: negate x and y.
  const lps = (r: number, c: number) => (r < 2 ? -a[r][c] : a[r][c]);
  const rowDir = [0, 1, 2].map((r) => lps(r, 0) / colMm);
  const colDir = [0, 1, 2].map((r) => lps(r, 1) / rowMm);
  const dot = rowDir.reduce((s, v, k) => s + v * colDir[k], 0);
  if (Math.abs(dot) > 1e-6) throw new RangeError("Axes 0 and 1 must be orthogonal to form slices");
  const seriesUid = options.seriesUid ?? newUid();
  const studyUid = options.studyUid ?? newUid();
  const codec = syntaxName in ENCODERS
    ? await wasmEncoder(syntaxName as keyof typeof ENCODERS)
    : undefined;
  const ds = (x: number) => Number(x.toFixed(6)).toString();
  const files: { name: string; bytes: Uint8Array }[] = [];
  const native = !(syntaxName in ENCODERS) && syntaxName !== "rle" &&
    syntaxName !== "jpeg-lossless";
  const frames: Uint8Array[] = [];
  const positions: number[][] = [];
  // The elements every file has: identity, series, image pixel module.
  const common = (sopClass: string, sopUid: string, instance: number): DicomElement[] => [
    { tag: 0x00080008, vr: "CS", value: options.imageType ?? "ORIGINAL\\PRIMARY\\AXIAL" },
    { tag: 0x00080016, vr: "UI", value: sopClass },
    { tag: 0x00080018, vr: "UI", value: sopUid },
    { tag: 0x00080060, vr: "CS", value: options.modality ?? "CT" },
    { tag: 0x0008103e, vr: "LO", value: "voco synthetic series" },
    { tag: 0x00100020, vr: "LO", value: options.patientId ?? "PHANTOM" },
    { tag: 0x0020000d, vr: "UI", value: studyUid },
    { tag: 0x0020000e, vr: "UI", value: seriesUid },
    { tag: 0x00200011, vr: "IS", value: String(options.seriesNumber ?? 1) },
    { tag: 0x00200013, vr: "IS", value: String(instance) },
    { tag: 0x00280002, vr: "US", value: [1] },
    { tag: 0x00280004, vr: "CS", value: "MONOCHROME2" },
    { tag: 0x00280010, vr: "US", value: [nr] },
    { tag: 0x00280011, vr: "US", value: [nc] },
    { tag: 0x00280100, vr: "US", value: [16] },
    { tag: 0x00280101, vr: "US", value: [16] },
    { tag: 0x00280102, vr: "US", value: [15] },
    { tag: 0x00280103, vr: "US", value: [signed ? 1 : 0] },
  ];
  const extra = options.extraElements ?? [];
  const withExtra = (elements: DicomElement[]) => [
    ...elements.filter((e) => !extra.some((x) => x.tag === e.tag)),
    ...extra,
  ];
  const plane = nr * nc;
  const raw = new Uint16Array(plane);
  for (let k = 0; k < ns; k++) {
    for (let r = 0; r < nr; r++) {
      for (let c = 0; c < nc; c++) {
        const v = Math.round(volume.data[(c * nr + r) * ns + k] - intercept);
        raw[r * nc + c] = signed
          ? Math.max(-32768, Math.min(32767, v)) & 0xffff
          : Math.max(0, Math.min(65535, v));
      }
    }
    const le = new Uint8Array(raw.buffer.slice(0));
    const frame = encodeFrame(raw, le, { syntaxName, codec, rows: nr, columns: nc, signed });
    const pos = [0, 1, 2].map((r) => lps(r, 2) * k + lps(r, 3));
    if (options.multiFrame) {
      frames.push(frame);
      positions.push(pos);
      continue;
    }
    const sopUid = newUid();
    const elements: DicomElement[] = [
      ...common(CT_IMAGE_STORAGE, sopUid, k + 1),
      { tag: 0x00180050, vr: "DS", value: ds(columnNorms(a)[2]) },
      { tag: 0x00200032, vr: "DS", value: pos.map(ds).join("\\") },
      { tag: 0x00200037, vr: "DS", value: [...rowDir, ...colDir].map(ds).join("\\") },
      { tag: 0x00280030, vr: "DS", value: `${ds(rowMm)}\\${ds(colMm)}` },
      { tag: 0x00281052, vr: "DS", value: String(intercept) },
      { tag: 0x00281053, vr: "DS", value: "1" },
      pixelDataElement([frame], native, false),
    ];
    files.push({
      name: options.fileName?.(k) ?? `IM${String(k + 1).padStart(4, "0")}.dcm`,
      bytes: writeDicomFile(withExtra(elements), syntax, CT_IMAGE_STORAGE, sopUid),
    });
  }
  if (options.multiFrame) {
    const sopUid = newUid();
    const elements = enhancedElements(common(ENHANCED_CT_IMAGE_STORAGE, sopUid, 1), {
      slices: ns,
      sliceMm: ds(columnNorms(a)[2]),
      pixelSpacing: `${ds(rowMm)}\\${ds(colMm)}`,
      orientation: [...rowDir, ...colDir].map(ds).join("\\"),
      intercept,
      positions: positions.map((pos) => pos.map(ds).join("\\")),
      pixelData: pixelDataElement(frames, native, options.offsetTable ?? true),
    });
    files.push({
      name: options.fileName?.(0) ?? "ENHANCED.dcm",
      bytes: writeDicomFile(withExtra(elements), syntax, ENHANCED_CT_IMAGE_STORAGE, sopUid),
    });
  }
  return files;
}

/** One slice's pixel data: native little-endian bytes, or one compressed frame. */
function encodeFrame(
  raw: Uint16Array,
  le: Uint8Array,
  o: {
    syntaxName: string;
    codec?: EncoderCodec;
    rows: number;
    columns: number;
    signed: boolean;
  },
): Uint8Array {
  const { syntaxName, codec } = o;
  if (syntaxName === "rle") return encodeRle(le, 2);
  if (syntaxName === "jpeg-lossless") return encodeJpegLossless(raw, o.rows, o.columns, 16);
  if (!codec) return le;
  const enc = new codec[ENCODERS[syntaxName as keyof typeof ENCODERS]]();
  try {
    enc.getDecodedBuffer({
      width: o.columns,
      height: o.rows,
      bitsPerSample: 16,
      componentCount: 1,
      isSigned: o.signed,
      isUsingColorTransform: false,
    }).set(le);
    enc.encode();
    return enc.getEncodedBuffer().slice();
  } finally {
    enc.delete();
  }
}

/**
 * The elements of an Enhanced CT file: the shared functional groups (pixel measures,
 * orientation, rescale), one per-frame group per slice (its position), the pixel data.
 */
function enhancedElements(
  common: DicomElement[],
  f: {
    slices: number;
    sliceMm: string;
    pixelSpacing: string;
    orientation: string;
    intercept: number;
    positions: string[];
    pixelData: DicomElement;
  },
): DicomElement[] {
  const item = (...elements: DicomElement[]) => [elements];
  return [
    ...common,
    { tag: 0x00280008, vr: "IS", value: String(f.slices) },
    {
      tag: 0x52009229,
      vr: "SQ",
      value: item(
        {
          tag: 0x00289110,
          vr: "SQ",
          value: item(
            { tag: 0x00180050, vr: "DS", value: f.sliceMm },
            { tag: 0x00280030, vr: "DS", value: f.pixelSpacing },
          ),
        },
        {
          tag: 0x00209116,
          vr: "SQ",
          value: item({ tag: 0x00200037, vr: "DS", value: f.orientation }),
        },
        {
          tag: 0x00289145,
          vr: "SQ",
          value: item(
            { tag: 0x00281052, vr: "DS", value: String(f.intercept) },
            { tag: 0x00281053, vr: "DS", value: "1" },
            { tag: 0x00281054, vr: "LO", value: "HU" },
          ),
        },
      ),
    },
    {
      tag: 0x52009230,
      vr: "SQ",
      value: f.positions.map((pos) => [{
        tag: 0x00209113,
        vr: "SQ",
        value: item({ tag: 0x00200032, vr: "DS", value: pos }),
      }]),
    },
    f.pixelData,
  ];
}

/** The pixel data element of frames: native bytes, or encapsulated with an offset table. */
function pixelDataElement(
  frames: readonly Uint8Array[],
  native: boolean,
  offsetTable: boolean,
): DicomElement {
  if (native) return { tag: 0x7fe00010, vr: "OW", value: concat([...frames]) };
  return { tag: 0x7fe00010, vr: "OB", value: encapsulate(frames, offsetTable) };
}

/**
 * Items of an encapsulated pixel data value: a basic offset table (when asked), then one
 * fragment per frame.
 */
function encapsulate(frames: readonly Uint8Array[], offsetTable: boolean): Uint8Array {
  const bodies = frames.map((f) => (f.length % 2 ? concat([f, new Uint8Array(1)]) : f));
  const item = (length: number) => {
    const h = new Uint8Array(8);
    const v = new DataView(h.buffer);
    v.setUint16(0, 0xfffe, true);
    v.setUint16(2, 0xe000, true);
    v.setUint32(4, length, true);
    return h;
  };
  const offsets = new Uint8Array(offsetTable ? 4 * frames.length : 0);
  const ov = new DataView(offsets.buffer);
  let at = 0;
  bodies.forEach((b, k) => {
    if (offsets.length) ov.setUint32(4 * k, at, true);
    at += 8 + b.length;
  });
  const tail = new Uint8Array(8);
  const t = new DataView(tail.buffer);
  t.setUint16(0, 0xfffe, true);
  t.setUint16(2, 0xe0dd, true);
  return concat([
    item(offsets.length),
    offsets,
    ...bodies.flatMap((b) => [item(b.length), b]),
    tail,
  ]);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

const LONG_VRS = new Set(["OB", "OW", "OF", "SQ", "UT", "UN"]);

function encodeElements(
  elements: readonly DicomElement[],
  mode: "explicit-le" | "implicit-le" | "explicit-be",
): Uint8Array {
  const le = mode !== "explicit-be";
  const parts: Uint8Array[] = [];
  for (const e of [...elements].sort((x, y) => x.tag - y.tag)) {
    let value: Uint8Array;
    let undefinedLength = false;
    if (e.vr === "SQ") {
      // Items of explicit length, each a data set in the same encoding.
      value = concat((e.value as DicomElement[][]).flatMap((items) => {
        const body = encodeElements(items, mode);
        const head = new Uint8Array(8);
        const h = new DataView(head.buffer);
        h.setUint16(0, 0xfffe, le);
        h.setUint16(2, 0xe000, le);
        h.setUint32(4, body.length, le);
        return [head, body];
      }));
    } else if (typeof e.value === "string") {
      value = new TextEncoder().encode(e.value);
      if (value.length % 2) value = concat([value, Uint8Array.of(e.vr === "UI" ? 0 : 0x20)]);
    } else if (e.value instanceof Uint8Array) {
      value = e.value;
      undefinedLength = e.tag === 0x7fe00010 && e.vr === "OB";
      if (!le && e.vr === "OW") {
        value = value.slice();
        for (let i = 0; i < value.length; i += 2) value.subarray(i, i + 2).reverse();
      }
    } else {
      const numbers = e.value as number[];
      const size = e.vr === "UL" ? 4 : 2;
      value = new Uint8Array(numbers.length * size);
      const dv = new DataView(value.buffer);
      numbers.forEach((x, i) =>
        size === 4 ? dv.setUint32(4 * i, x, le) : dv.setUint16(2 * i, x, le)
      );
    }
    const long = mode === "implicit-le" || LONG_VRS.has(e.vr);
    const head = new Uint8Array(mode === "implicit-le" ? 8 : long ? 12 : 8);
    const h = new DataView(head.buffer);
    h.setUint16(0, e.tag >>> 16, le);
    h.setUint16(2, e.tag & 0xffff, le);
    const length = undefinedLength ? 0xffffffff : value.length;
    if (mode === "implicit-le") h.setUint32(4, length, true);
    else {
      head[4] = e.vr.charCodeAt(0);
      head[5] = e.vr.charCodeAt(1);
      if (long) h.setUint32(8, length, le);
      else h.setUint16(6, length, le);
    }
    parts.push(head, value);
  }
  return concat(parts);
}

/**
 * Encodes a Part 10 DICOM file: preamble, `DICM`, the file meta group (explicit VR little
 * endian) and the data set in the given transfer syntax (implicit or explicit VR, big
 * endian, or deflated). Pixel data must already be encoded for that syntax.
 */
export function writeDicomFile(
  elements: readonly DicomElement[],
  transferSyntax: string,
  sopClass: string,
  sopInstance: string,
): Uint8Array {
  const metaBody = encodeElements([
    { tag: 0x00020001, vr: "OB", value: Uint8Array.of(0, 1) },
    { tag: 0x00020002, vr: "UI", value: sopClass },
    { tag: 0x00020003, vr: "UI", value: sopInstance },
    { tag: 0x00020010, vr: "UI", value: transferSyntax },
    { tag: 0x00020012, vr: "UI", value: "2.25.1" },
  ], "explicit-le");
  const groupLength = encodeElements(
    [{ tag: 0x00020000, vr: "UL", value: [metaBody.length] }],
    "explicit-le",
  );
  const mode = transferSyntax === WRITE_SYNTAXES.implicit
    ? "implicit-le"
    : transferSyntax === WRITE_SYNTAXES["big-endian"]
    ? "explicit-be"
    : "explicit-le";
  let body = encodeElements(elements, mode);
  if (transferSyntax === WRITE_SYNTAXES.deflated) body = new Uint8Array(deflateRawSync(body));
  const preamble = new Uint8Array(132);
  preamble.set([0x44, 0x49, 0x43, 0x4d], 128);
  return concat([preamble, groupLength, metaBody, body]);
}
