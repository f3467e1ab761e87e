// DICOM RLE Lossless (PS3.5 annex G): a 64-byte header of segment offsets, then one
// PackBits segment per byte plane (most significant byte first). Written here: it is a
// few dozen lines, and the only npm decoders come inside whole image-loader packages.
import { BadInputError } from "../../../cache/errors.ts";

/**
 * Decodes one RLE frame into little-endian pixel bytes (`rows * columns * bytesPerSample`),
 * one sample per pixel.
 */
export function decodeRle(frame: Uint8Array, pixels: number, bytesPerSample: number): Uint8Array {
  if (frame.length < 64) throw new BadInputError("RLE frame shorter than its 64-byte header");
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const segments = view.getUint32(0, true);
  if (segments !== bytesPerSample) {
    throw new BadInputError(`RLE frame has ${segments} segments, expected ${bytesPerSample}`);
  }
  const out = new Uint8Array(pixels * bytesPerSample);
  for (let s = 0; s < segments; s++) {
    const start = view.getUint32(4 + 4 * s, true);
    const end = s + 1 < segments ? view.getUint32(8 + 4 * s, true) : frame.length;
    if (start < 64 || end > frame.length || end < start) {
      throw new BadInputError(`RLE segment ${s} has a bad offset ${start}`);
    }
    // Segment 0 holds the most significant bytes; little-endian output puts them last.
    const byte = bytesPerSample - 1 - s;
    let p = start, o = 0;
    while (p < end && o < pixels) {
      const n = frame[p++];
      if (n < 128) {
        const count = Math.min(n + 1, pixels - o, end - p);
        for (let i = 0; i < count; i++) out[(o + i) * bytesPerSample + byte] = frame[p + i];
        p += n + 1;
        o += count;
      } else if (n > 128) {
        const count = Math.min(257 - n, pixels - o);
        const value = frame[p++];
        for (let i = 0; i < count; i++) out[(o + i) * bytesPerSample + byte] = value;
        o += count;
      }
    }
    if (o < pixels) throw new BadInputError(`RLE segment ${s} ends after ${o} of ${pixels} pixels`);
  }
  return out;
}

/** Encodes little-endian pixel bytes as one RLE frame (the inverse of {@linkcode decodeRle}). */
export function encodeRle(pixelBytes: Uint8Array, bytesPerSample: number): Uint8Array {
  const pixels = pixelBytes.length / bytesPerSample;
  const segments: Uint8Array[] = [];
  for (let s = 0; s < bytesPerSample; s++) {
    const byte = bytesPerSample - 1 - s;
    const plane = new Uint8Array(pixels);
    for (let i = 0; i < pixels; i++) plane[i] = pixelBytes[i * bytesPerSample + byte];
    segments.push(packBits(plane));
  }
  const total = 64 + segments.reduce((a, s) => a + s.length, 0);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  view.setUint32(0, segments.length, true);
  let offset = 64;
  segments.forEach((seg, s) => {
    view.setUint32(4 + 4 * s, offset, true);
    out.set(seg, offset);
    offset += seg.length;
  });
  return out;
}

function packBits(plane: Uint8Array): Uint8Array {
  const out: number[] = [];
  let i = 0;
  const n = plane.length;
  while (i < n) {
    let run = 1;
    while (i + run < n && run < 128 && plane[i + run] === plane[i]) run++;
    if (run >= 3) {
      out.push(257 - run, plane[i]);
      i += run;
      continue;
    }
    let lit = 0;
    while (i + lit < n && lit < 128) {
      if (
        i + lit + 2 < n && plane[i + lit] === plane[i + lit + 1] &&
        plane[i + lit] === plane[i + lit + 2]
      ) break;
      lit++;
    }
    out.push(lit - 1);
    for (let k = 0; k < lit; k++) out.push(plane[i + k]);
    i += lit;
  }
  if (out.length % 2) out.push(128); // segments are padded to even length with a no-op
  return Uint8Array.from(out);
}
