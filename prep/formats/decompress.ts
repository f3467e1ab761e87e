// Gzip and zlib decompression for image files (`.nii.gz`, MetaImage `.zraw`), never
// inflating more than the header declares.
import { gunzipSync, inflateSync } from "node:zlib";
import { Gunzip, Unzlib } from "fflate";
import { BadInputError } from "../../cache/errors.ts";

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
 * Image readers use {@linkcode inflateDeclared} instead, which stops at the declared size.
 */
export function gunzip(bytes: Uint8Array): Uint8Array {
  try {
    const out = gunzipSync(bytes, { chunkSize: outputChunkSize(bytes) });
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new BadInputError(`Corrupt or truncated gzip data (${reason})`, { cause });
  }
}

/** What {@linkcode inflateDeclared} returns. */
export interface Inflated {
  /** The first bytes of the stream, at most the declared number. */
  data: Uint8Array;
  /** Whether the stream holds more than the declared bytes (not inflated). */
  trailing: boolean;
}

/**
 * Inflates at most `declared` bytes of a `gzip` or `zlib` stream: a decompression bomb
 * (a small file inflating to gigabytes after the voxels its header declares) costs no
 * more memory than the declared voxels. The native zlib does the work, told to stop past
 * `declared`; when the stream is longer, a streaming inflater takes the first `declared`
 * bytes in 4 KiB steps and `trailing` is set. A shorter stream is returned whole (the
 * reader reports what is missing). Throws a `BadInputError` for corrupt or truncated data.
 */
export function inflateDeclared(
  bytes: Uint8Array,
  format: "gzip" | "zlib",
  declared: number,
): Inflated {
  const what = format === "gzip" ? "gzip" : "compressed (zlib)";
  try {
    const options = {
      maxOutputLength: Math.max(1, declared),
      chunkSize: Math.max(16 * 1024, Math.min(declared + 1, 1032 * bytes.length, 2 ** 30)),
    };
    const out = format === "gzip" ? gunzipSync(bytes, options) : inflateSync(bytes, options);
    return { data: new Uint8Array(out.buffer, out.byteOffset, out.byteLength), trailing: false };
  } catch (cause) {
    if ((cause as { code?: string }).code !== "ERR_BUFFER_TOO_LARGE") {
      const reason = cause instanceof Error ? cause.message : String(cause);
      throw new BadInputError(`Corrupt or truncated ${what} data (${reason})`, { cause });
    }
  }
  return { data: inflatePrefix(bytes, format, declared), trailing: true };
}

/**
 * The first `n` inflated bytes of a `gzip` or `zlib` stream (fewer when it is shorter),
 * inflating 4 KiB of input (at most 4 MiB of output) at a time: reads a header without inflating the voxels.
 */
export function inflatePrefix(bytes: Uint8Array, format: "gzip" | "zlib", n: number): Uint8Array {
  const out = new Uint8Array(n);
  let filled = 0;
  const take = (chunk: Uint8Array) => {
    const k = Math.min(chunk.length, n - filled);
    out.set(chunk.subarray(0, k), filled);
    filled += k;
  };
  const stream = format === "gzip" ? new Gunzip(take) : new Unzlib(take);
  const step = 4 * 1024;
  try {
    for (let i = 0; i < bytes.length && filled < n; i += step) {
      stream.push(bytes.subarray(i, i + step), i + step >= bytes.length);
    }
  } catch (cause) {
    if (filled < n) {
      const reason = cause instanceof Error ? cause.message : String(cause);
      throw new BadInputError(`Corrupt or truncated ${format} data (${reason})`, { cause });
    }
  }
  return out.subarray(0, filled);
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
