// Checks a compressed frame's own header (JPEG 2000 SIZ, JPEG/JPEG-LS SOF) against the
// DICOM header before any decoder sees the frame: a lying codestream fails with the
// reason instead of sending a codec into an endless loop or returning garbage.
import type { CompressedEncoding, FrameInfo } from "./dicom_parse.ts";
import { BadInputError } from "../../../cache/errors.ts";

/** Most tiles a JPEG 2000 frame may have (the standard's tile index is 16-bit). */
const MAX_TILES = 65535;

/**
 * Throws a `BadInputError` naming the field when the codestream of a compressed frame does
 * not describe the image its DICOM header declares: one component, the header's columns
 * and rows, a precision no larger than Bits Allocated, and for JPEG 2000 (and HTJ2K) no
 * subsampling and a sane tile grid. RLE frames carry no such header (their decoder is
 * bounded by the declared size).
 */
export function checkCodestream(
  encoding: CompressedEncoding,
  bytes: Uint8Array,
  info: FrameInfo,
): void {
  if (encoding === "jpeg2000" || encoding === "htj2k") checkJ2k(bytes, info);
  else if (encoding === "jpeg-ls" || encoding === "jpeg-lossless") checkJpeg(bytes, info);
}

function fail(what: string, message: string): never {
  throw new BadInputError(`${what}: ${message}`);
}

/** The JPEG 2000 codestream of a frame: the frame itself, or a JP2 file's `jp2c` box. */
function j2kCodestream(bytes: Uint8Array): Uint8Array | undefined {
  if (bytes[0] === 0xff && bytes[1] === 0x4f) return bytes;
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // A JP2 file: boxes of (length, type); the codestream is in the `jp2c` box.
  for (let at = 0; at + 8 <= bytes.length;) {
    let length = v.getUint32(at);
    const type = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
    let header = 8;
    if (length === 1 && at + 16 <= bytes.length) {
      length = Number(v.getBigUint64(at + 8));
      header = 16;
    }
    if (type === "jp2c") return bytes.subarray(at + header);
    if (length < header) return undefined;
    at += length;
  }
  return undefined;
}

function checkJ2k(bytes: Uint8Array, info: FrameInfo): void {
  const what = "JPEG 2000 codestream";
  const cs = j2kCodestream(bytes);
  if (!cs || cs.length < 47) fail(what, "no start-of-codestream marker (FF4F), or cut short");
  const v = new DataView(cs.buffer, cs.byteOffset, cs.byteLength);
  if (v.getUint16(2) !== 0xff51) fail(what, "no SIZ marker (FF51) after the start marker");
  const lsiz = v.getUint16(4);
  const [xsiz, ysiz, xo, yo, xt, yt, xto, yto] = [8, 12, 16, 20, 24, 28, 32, 36].map((o) =>
    v.getUint32(o)
  );
  const csiz = v.getUint16(40);
  if (csiz !== 1) fail(what, `SIZ declares ${csiz} components; a CT frame has 1`);
  if (lsiz !== 38 + 3 * csiz) fail(what, `SIZ length ${lsiz} does not match its 1 component`);
  const width = xsiz - xo, height = ysiz - yo;
  if (!(xsiz > xo && ysiz > yo) || width !== info.columns || height !== info.rows) {
    fail(
      what,
      `SIZ image is ${xsiz > xo ? width : 0}x${ysiz > yo ? height : 0}, ` +
        `the DICOM header says ${info.columns}x${info.rows}`,
    );
  }
  if (xt === 0 || yt === 0 || xto > xo || yto > yo || xto + xt <= xo || yto + yt <= yo) {
    fail(what, `SIZ tile grid (${xt}x${yt} at ${xto},${yto}) does not cover the image`);
  }
  const tiles = Math.ceil((xsiz - xto) / xt) * Math.ceil((ysiz - yto) / yt);
  if (tiles > MAX_TILES) fail(what, `SIZ declares ${tiles} tiles (at most ${MAX_TILES})`);
  const ssiz = cs[42], xr = cs[43], yr = cs[44];
  if (xr !== 1 || yr !== 1) {
    fail(what, `SIZ subsampling is ${xr}x${yr}; a CT frame is not subsampled (1x1)`);
  }
  checkPrecision(what, (ssiz & 0x7f) + 1, (ssiz & 0x80) !== 0, info);
}

/** JPEG (lossless, process 14) and JPEG-LS: the SOF segment (FFC3, FFF7, …). */
function checkJpeg(bytes: Uint8Array, info: FrameInfo): void {
  const what = "JPEG codestream";
  if (bytes[0] !== 0xff || bytes[1] !== 0xd8) fail(what, "no start-of-image marker (FFD8)");
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let at = 2; at + 4 <= bytes.length;) {
    if (bytes[at] !== 0xff) fail(what, `no marker at byte ${at} before the frame header`);
    const marker = bytes[at + 1];
    if (marker === 0xff) {
      at++;
      continue;
    }
    const length = v.getUint16(at + 2);
    const isSof = (marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker)) ||
      marker === 0xf7;
    if (isSof) {
      if (at + 10 > bytes.length) fail(what, "frame header cut short");
      const precision = bytes[at + 4];
      const height = v.getUint16(at + 5), width = v.getUint16(at + 7);
      const components = bytes[at + 9];
      if (components !== 1) fail(what, `frame header declares ${components} components; CT has 1`);
      if (width !== info.columns || height !== info.rows) {
        fail(
          what,
          `frame header says ${width}x${height}, the DICOM header ${info.columns}x${info.rows}`,
        );
      }
      checkPrecision(what, precision, false, info);
      return;
    }
    if (marker === 0xda || marker === 0xd9) break;
    at += 2 + length;
  }
  fail(what, "no frame header (SOF marker) before the scan");
}

function checkPrecision(what: string, bits: number, signed: boolean, info: FrameInfo): void {
  if (bits > info.bitsAllocated) {
    fail(
      what,
      `samples are ${bits}-bit, more than the DICOM header's Bits Allocated ${info.bitsAllocated}`,
    );
  }
  // A signed codestream read as unsigned pixels turns every negative value into a large
  // one. (The other way round is harmless: Bits Stored sign-extends the values.)
  if (signed && info.pixelRepresentation !== 1) {
    fail(what, "samples are signed, but the DICOM header says unsigned (Pixel Representation 0)");
  }
}
