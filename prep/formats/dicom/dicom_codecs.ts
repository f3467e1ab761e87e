// DICOM pixel data: the transfer syntaxes read, frame extraction, and decoding through
// the codec packages (JPEG 2000, HTJ2K, JPEG-LS, JPEG lossless, RLE).
import dicomParser from "dicom-parser";
import type {
  CompressedEncoding,
  DicomDataSet,
  DicomSliceInfo,
  FrameInfo,
  PixelEncoding,
} from "./dicom_parse.ts";
import { decodeRle } from "./_rle.ts";
import { checkCodestream } from "./_codestream.ts";
import { describeError } from "../_checks.ts";
import { BadInputError } from "../../../cache/errors.ts";

export type { CompressedEncoding, FrameInfo, PixelEncoding };

/** Decoded pixels of one frame, typed by bits allocated and pixel representation. */
export type PixelArray =
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array;

/** Transfer syntaxes this reader decodes, by UID. */
export const TRANSFER_SYNTAXES: ReadonlyMap<string, { name: string; encoding: PixelEncoding }> =
  new Map([
    ["1.2.840.10008.1.2", { name: "implicit VR little endian", encoding: "native" }],
    ["1.2.840.10008.1.2.1", { name: "explicit VR little endian", encoding: "native" }],
    ["1.2.840.10008.1.2.1.99", { name: "deflated explicit VR little endian", encoding: "native" }],
    ["1.2.840.10008.1.2.2", {
      name: "explicit VR big endian",
      encoding: "native-big-endian",
    }],
    ["1.2.840.10008.1.2.5", { name: "RLE lossless", encoding: "rle" }],
    ["1.2.840.10008.1.2.4.57", { name: "JPEG lossless (process 14)", encoding: "jpeg-lossless" }],
    ["1.2.840.10008.1.2.4.70", { name: "JPEG lossless SV1", encoding: "jpeg-lossless" }],
    ["1.2.840.10008.1.2.4.80", { name: "JPEG-LS lossless", encoding: "jpeg-ls" }],
    ["1.2.840.10008.1.2.4.81", { name: "JPEG-LS near-lossless", encoding: "jpeg-ls" }],
    ["1.2.840.10008.1.2.4.90", { name: "JPEG 2000 lossless", encoding: "jpeg2000" }],
    ["1.2.840.10008.1.2.4.91", { name: "JPEG 2000", encoding: "jpeg2000" }],
    ["1.2.840.10008.1.2.4.201", { name: "HTJ2K lossless", encoding: "htj2k" }],
    ["1.2.840.10008.1.2.4.202", { name: "HTJ2K lossless RPCL", encoding: "htj2k" }],
    ["1.2.840.10008.1.2.4.203", { name: "HTJ2K", encoding: "htj2k" }],
  ]);

/** The part of an Emscripten codec decoder that we use (openjpeg, openjph and charls share it). */
interface WasmDecoder {
  getEncodedBuffer(length: number): Uint8Array;
  decode(): void;
  getFrameInfo(): {
    width: number;
    height: number;
    bitsPerSample: number;
    componentCount?: number;
    isSigned?: boolean;
  };
  getDecodedBuffer(): Uint8Array;
  delete(): void;
}
type WasmCodec = Record<string, new () => WasmDecoder>;
type Factory = (module: Record<string, unknown>) => Promise<WasmCodec>;

// Decoders are WebAssembly builds loaded once per worker, only when a file needs them.
// Each factory gets its own options object: Emscripten uses it as the module itself.
const quiet = () => ({ print: () => {}, printErr: () => {} });
let openjpeg: Promise<WasmCodec> | undefined;
let charls: Promise<WasmCodec> | undefined;
let openjph: Promise<WasmCodec> | undefined;
const loadOpenJpeg = () =>
  openjpeg ??= import("@cornerstonejs/codec-openjpeg/decodewasmjs").then((m) =>
    (m.default as Factory)(quiet())
  );
// High-throughput JPEG 2000 (Part 15), as Imaging Data Commons distributes CT: OpenJPH
// decodes a 512² slice in about 5 ms, against about 21 ms for the same slice as Part 1.
const loadOpenJph = () =>
  openjph ??= import("@cornerstonejs/codec-openjph/wasmjs").then((m) =>
    (m.default as Factory)(quiet())
  );
const loadCharls = () =>
  charls ??= import("@cornerstonejs/codec-charls/decodewasmjs").then((m) =>
    (m.default as Factory)(quiet())
  );

function runWasm(codec: WasmCodec, className: string, frame: Uint8Array, info: FrameInfo) {
  const decoder = new codec[className]();
  try {
    decoder.getEncodedBuffer(frame.length).set(frame);
    try {
      decoder.decode();
    } catch (e) {
      // Emscripten builds throw C++ exceptions as bare numbers: give them a message.
      if (e instanceof Error) throw e;
      throw new BadInputError(`${className} could not decode the frame (corrupt or unsupported)`);
    }
    const fi = decoder.getFrameInfo();
    if (fi.width !== info.columns || fi.height !== info.rows) {
      throw new BadInputError(
        `Compressed frame is ${fi.width}x${fi.height}, header says ${info.columns}x${info.rows}`,
      );
    }
    if ((fi.componentCount ?? 1) !== 1 || fi.bitsPerSample > info.bitsAllocated) {
      throw new BadInputError(
        `${className} decoded ${fi.componentCount ?? 1} component(s) of ${fi.bitsPerSample} ` +
          `bits, the header says 1 of at most ${info.bitsAllocated} (Bits Allocated)`,
      );
    }
    return exactLength(decoder.getDecodedBuffer().slice(), info, className);
  } finally {
    decoder.delete();
  }
}

/** A decoder's output, checked to hold exactly one frame of the header's pixel size. */
function exactLength(bytes: Uint8Array, info: FrameInfo, decoder: string): Uint8Array {
  const expected = info.rows * info.columns * (info.bitsAllocated / 8);
  if (bytes.length !== expected) {
    throw new BadInputError(
      `${decoder} returned ${bytes.length} bytes for a ${info.columns}x${info.rows} frame of ` +
        `${info.bitsAllocated}-bit pixels (${expected} expected): the codestream does not ` +
        `match the header`,
    );
  }
  return bytes;
}

function typed(bytes: Uint8Array, info: FrameInfo, bigEndian = false): PixelArray {
  const n = info.rows * info.columns;
  const signed = info.pixelRepresentation === 1;
  const size = info.bitsAllocated / 8;
  if (bytes.length < n * size) {
    throw new BadInputError(`Pixel data has ${bytes.length} bytes, ${n * size} expected`);
  }
  // Copy: the source may be unaligned, and the result must own its buffer.
  const own = bytes.slice(0, n * size);
  if (bigEndian && size > 1) {
    for (let i = 0; i < own.length; i += size) own.subarray(i, i + size).reverse();
  }
  let pixels: PixelArray;
  switch (info.bitsAllocated) {
    case 8:
      pixels = signed ? new Int8Array(own.buffer) : own;
      break;
    case 16:
      pixels = signed ? new Int16Array(own.buffer) : new Uint16Array(own.buffer);
      break;
    case 32:
      pixels = signed ? new Int32Array(own.buffer) : new Uint32Array(own.buffer);
      break;
    default:
      throw new BadInputError(
        `Bits allocated ${info.bitsAllocated} is not supported (8, 16 or 32)`,
      );
  }
  applyBitsStored(pixels, info);
  return pixels;
}

/**
 * Makes the bits above Bits Stored carry no value, in place, as DICOM PS3.5 §8.1.1 asks
 * ("receiving applications may not assume anything about the contents of unused bits"):
 * unsigned values are masked, signed ones sign-extended from their high bit. This clears
 * overlay bits that old scanners left in the pixel words, and reads 12-bit signed data
 * that a writer (or a codec blind to the sign: JPEG-LS, some JPEG 2000 encoders) did not
 * sign-extend. A no-op for data that follows the standard. pydicom (3.0 on), GDCM and
 * dcm2niix do the same.
 */
export function applyBitsStored(pixels: PixelArray, info: FrameInfo): void {
  const stored = info.bitsStored, allocated = info.bitsAllocated;
  if (!(stored > 0 && stored < allocated)) return;
  if (info.pixelRepresentation === 1) {
    const shift = 32 - stored;
    for (let i = 0; i < pixels.length; i++) pixels[i] = (pixels[i] << shift) >> shift;
  } else {
    const mask = 2 ** stored - 1;
    for (let i = 0; i < pixels.length; i++) pixels[i] = pixels[i] & mask;
  }
}

/** One compressed frame, extracted from its file, with how to decode it. */
export interface EncodedFrame {
  /** The codec to run. */
  encoding: CompressedEncoding;
  /** The frame's bytes (fragments joined). */
  bytes: Uint8Array;
  /** Frame geometry and pixel type. */
  info: FrameInfo;
}

/**
 * The pixels of one frame of a single-sample DICOM image (frame `info.frame` of a
 * multi-frame file, see `frameInfos`): native pixel data is returned
 * as raw stored values (no rescale); compressed pixel data is returned as an
 * {@linkcode EncodedFrame} for {@linkcode decodeFrame}, which may run in another thread.
 * Throws a `BadInputError` naming the transfer syntax when it is not supported.
 */
export function extractFrame(ds: DicomDataSet, info: DicomSliceInfo): PixelArray | EncodedFrame {
  const syntax = TRANSFER_SYNTAXES.get(info.transferSyntax);
  if (!syntax) {
    throw new BadInputError(
      `Transfer syntax ${info.transferSyntax} is not supported (supported: ` +
        [...TRANSFER_SYNTAXES.values()].map((s) => s.name).join(", ") + ")",
    );
  }
  if (info.samplesPerPixel !== 1) {
    throw new BadInputError(`${info.samplesPerPixel} samples per pixel: not a greyscale CT image`);
  }
  const element = ds.elements.x7fe00010;
  if (!element) throw new BadInputError("No pixel data element (7FE0,0010): truncated file?");
  const frame = info.frame ?? 0;
  if (syntax.encoding === "native" || syntax.encoding === "native-big-endian") {
    const size = info.rows * info.columns * info.bitsAllocated / 8;
    const frames = Math.max(1, Number(ds.string("x00280008") ?? 1) || 1);
    if (element.length >= 2 * frames * size) {
      throw new BadInputError(
        `Pixel Data holds ${element.length} bytes, twice or more the ${frames * size} that ` +
          `Rows x Columns x Bits Allocated declare (${info.columns}x${info.rows}x` +
          `${info.bitsAllocated}${frames > 1 ? `, ${frames} frames` : ""}): the header is wrong`,
      );
    }
    const start = element.dataOffset + frame * size;
    const bytes = ds.byteArray.subarray(
      start,
      Math.min(start + size, element.dataOffset + element.length),
    );
    return typed(bytes, info, syntax.encoding === "native-big-endian");
  }
  if (!element.encapsulatedPixelData || !element.fragments?.length) {
    throw new BadInputError(`Pixel data of a ${syntax.name} file is not encapsulated`);
  }
  let bytes: Uint8Array;
  try {
    bytes = encapsulatedFrame(ds, element, info.frame);
  } catch (e) {
    if (e instanceof BadInputError) throw e;
    throw new BadInputError(
      `Cannot read frame ${(info.frame ?? 0) + 1} of the encapsulated pixel data ` +
        `(offset table or fragments damaged: ${describeError(e)})`,
    );
  }
  return { encoding: syntax.encoding, bytes, info: decoderInfo(info) };
}

type DicomElementInfo = NonNullable<DicomDataSet["elements"][string]>;

/**
 * The bytes of one frame of encapsulated pixel data: every fragment for a single-frame
 * file; for frame `frame` of a multi-frame file, the frame the offset table points at,
 * or fragment `frame` when there is one fragment per frame.
 */
function encapsulatedFrame(
  ds: DicomDataSet,
  element: DicomElementInfo,
  frame: number | undefined,
): Uint8Array {
  const fragments = element.fragments!;
  if (frame === undefined) {
    return dicomParser.readEncapsulatedPixelDataFromFragments(ds, element, 0, fragments.length);
  }
  if (element.basicOffsetTable?.length) {
    return dicomParser.readEncapsulatedImageFrame(ds, element, frame);
  }
  const frames = Number(ds.string("x00280008") ?? 1);
  if (fragments.length !== frames) {
    throw new BadInputError(
      `Cannot find frame ${frame + 1}: no offset table and ${fragments.length} fragments ` +
        `for ${frames} frames`,
    );
  }
  return dicomParser.readEncapsulatedPixelDataFromFragments(ds, element, frame, 1);
}

/** The header fields a frame decoder needs, as plain data. */
function decoderInfo(info: DicomSliceInfo): FrameInfo {
  const { rows, columns, bitsAllocated, bitsStored, pixelRepresentation } = info;
  return { rows, columns, bitsAllocated, bitsStored, pixelRepresentation };
}

/** Whether the transfer syntax `uid` is one this reader decodes with a codec. */
export function isCompressedSyntax(uid: string): boolean {
  const encoding = TRANSFER_SYNTAXES.get(uid)?.encoding;
  return encoding !== undefined && encoding !== "native" && encoding !== "native-big-endian";
}

/** Whether {@linkcode extractFrame} returned a frame still to decode. */
export function isEncodedFrame(x: PixelArray | EncodedFrame): x is EncodedFrame {
  return !ArrayBuffer.isView(x);
}

/** Decodes one compressed frame to raw stored values. */
export async function decodeFrame(frame: EncodedFrame): Promise<PixelArray> {
  const { bytes, info } = frame;
  checkCodestream(frame.encoding, bytes, info);
  switch (frame.encoding) {
    case "rle":
      return typed(decodeRle(bytes, info.rows * info.columns, info.bitsAllocated / 8), info);
    case "jpeg2000":
      return typed(runWasm(await loadOpenJpeg(), "J2KDecoder", bytes, info), info);
    case "htj2k":
      return typed(runWasm(await loadOpenJph(), "HTJ2KDecoder", bytes, info), info);
    case "jpeg-ls":
      return typed(runWasm(await loadCharls(), "JpegLSDecoder", bytes, info), info);
    case "jpeg-lossless": {
      const { Decoder } = await import("jpeg-lossless-decoder-js");
      let out;
      try {
        out = new Decoder().decompress(bytes.buffer, bytes.byteOffset, bytes.length);
      } catch (e) {
        throw new BadInputError(`JPEG lossless decoder failed: ${describeError(e)}`);
      }
      const raw = new Uint8Array(out);
      return typed(exactLength(raw, info, "JPEG lossless decoder"), info);
    }
  }
}

/**
 * Decodes the pixels of a single-frame, single-sample DICOM image in any transfer syntax
 * of {@linkcode TRANSFER_SYNTAXES}, in this thread. Raw stored values are returned (no
 * rescale). Throws a `BadInputError` naming the transfer syntax when it is not supported.
 */
export async function decodePixels(ds: DicomDataSet, info: DicomSliceInfo): Promise<PixelArray> {
  const frame = extractFrame(ds, info);
  return isEncodedFrame(frame) ? await decodeFrame(frame) : frame;
}
