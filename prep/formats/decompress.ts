// Gzip detection and decompression for image files (`.nii.gz`).
import { gunzipSync } from "node:zlib";

/** True when `bytes` start with the gzip magic number. */
export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/**
 * Inflates a gzip stream (all members) with the runtime's native zlib.
 *
 * Measured on the shared example CT: `node:zlib` `gunzipSync` 25 ms, Deno's
 * `DecompressionStream` 45 ms, fflate slower still, so the native call wins. The output
 * buffer is sized from the gzip trailer (ISIZE) when it is plausible, so zlib writes one
 * chunk instead of thousands of 16 KiB ones to concatenate: 0.45 s instead of 0.59 s for
 * a 141 MB volume. A truncated or corrupt stream throws a `SyntaxError` naming the reason.
 */
export function gunzip(bytes: Uint8Array): Uint8Array {
  try {
    const out = gunzipSync(bytes, { chunkSize: outputChunkSize(bytes) });
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new SyntaxError(`Corrupt or truncated gzip data (${reason})`, { cause });
  }
}

/**
 * zlib's output chunk size for `bytes`: the trailer's uncompressed size (of the last
 * member) + 1 when deflate could have produced it (at most 1032:1) and it is below 1 GiB,
 * else zlib's default.
 */
function outputChunkSize(bytes: Uint8Array): number {
  const fallback = 16 * 1024;
  if (bytes.length < 18) return fallback;
  const isize = new DataView(bytes.buffer, bytes.byteOffset + bytes.length - 4, 4)
    .getUint32(0, true);
  if (isize === 0 || isize > 1032 * bytes.length || isize >= 2 ** 30) return fallback;
  return Math.max(fallback, isize + 1);
}
