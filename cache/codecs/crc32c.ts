// CRC-32C (Castagnoli) in slice-by-8 tables, and the Zarr v3 `crc32c` codec that appends
// it to every chunk and checks it on every read (and, where the case records it, that the
// chunk is the one written at that position).
import * as zarr from "zarrita";
import { DamagedCacheError } from "../errors.ts";

/** The reflected Castagnoli polynomial. */
const POLY = 0x82f63b78;

/** Eight 256-entry tables: table k advances a byte k positions ahead (slice-by-8). */
const TABLES: Uint32Array = (() => {
  const t = new Uint32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    t[n] = c >>> 0;
  }
  for (let n = 0; n < 256; n++) {
    let c = t[n];
    for (let k = 1; k < 8; k++) {
      c = t[c & 0xff] ^ (c >>> 8);
      t[k * 256 + n] = c >>> 0;
    }
  }
  return t;
})();

/**
 * The CRC-32C of `bytes` (as iSCSI, ext4 and the Zarr v3 `crc32c` codec compute it),
 * continuing from `crc` when given (the CRC of the bytes before).
 *
 * @example The check value of the standard
 * ```ts
 * import { crc32c } from "./crc32c.ts";
 * if (crc32c(new TextEncoder().encode("123456789")) !== 0xe3069283) throw new Error();
 * ```
 */
export function crc32c(bytes: Uint8Array, crc = 0): number {
  const t = TABLES;
  let c = ~crc >>> 0;
  const n = bytes.length;
  let i = 0;
  // Eight bytes per step, two 32-bit words read from the bytes.
  const end8 = n - (n & 7);
  while (i < end8) {
    const a = (bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24)) ^
      c;
    const b = bytes[i + 4] | (bytes[i + 5] << 8) | (bytes[i + 6] << 16) | (bytes[i + 7] << 24);
    c = t[1792 + (a & 0xff)] ^ t[1536 + ((a >>> 8) & 0xff)] ^ t[1280 + ((a >>> 16) & 0xff)] ^
      t[1024 + (a >>> 24)] ^ t[768 + (b & 0xff)] ^ t[512 + ((b >>> 8) & 0xff)] ^
      t[256 + ((b >>> 16) & 0xff)] ^ t[b >>> 24];
    i += 8;
  }
  while (i < n) c = t[(c ^ bytes[i++]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

/** Raised when stored bytes do not match their CRC-32C: the data were damaged. */
export class ChecksumError extends DamagedCacheError {
  /** Makes the error; `message` says what was expected and found. */
  constructor(message: string) {
    super(message);
    this.name = "ChecksumError";
  }
}

/** What the store that read a chunk's bytes knows of them. */
export interface ChunkLabel {
  /** What the bytes are (`chunk c/0/1/2`, `inner chunk [0,1,2] of shard c/0/0/0`). */
  label: string;
  /** The CRC-32C the case's writer recorded for the chunk at this position, when known. */
  crc?: number;
}

/**
 * Labels of stored bytes, set by the store that read them, so that a checksum error
 * names the chunk and a chunk moved from elsewhere is told from the one written there.
 */
export const chunkLabels: WeakMap<Uint8Array, ChunkLabel> = new WeakMap();

/** The bytes followed by their CRC-32C (little endian), as the codec stores them. */
export function appendCrc32c(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length + 4);
  out.set(bytes);
  new DataView(out.buffer).setUint32(bytes.length, crc32c(bytes), true);
  return out;
}

/**
 * The bytes without their trailing CRC-32C; throws a {@linkcode ChecksumError} when the
 * checksum does not match (or the bytes are too short to hold one).
 */
export function checkCrc32c(bytes: Uint8Array): Uint8Array {
  if (bytes.length < 4) {
    throw new ChecksumError(`crc32c: ${bytes.length} bytes, too short to hold a checksum`);
  }
  const body = bytes.subarray(0, bytes.length - 4);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stored = view.getUint32(bytes.length - 4, true);
  const actual = crc32c(body);
  if (stored !== actual) {
    throw new ChecksumError(
      `crc32c mismatch: stored ${hex(stored)}, computed ${hex(actual)} over ${body.length} bytes`,
    );
  }
  return body;
}

function hex(x: number): string {
  return `0x${x.toString(16).padStart(8, "0")}`;
}

/**
 * The Zarr v3 `crc32c` bytes-to-bytes codec: encoding appends the CRC-32C of the bytes
 * (4 bytes, little endian); decoding checks it. zarrita's own codec strips the checksum
 * without checking it, so damaged bytes would decode to wrong values; this one refuses.
 */
export class Crc32cCodec {
  /** Codec kind, as zarrita's pipeline expects. */
  readonly kind = "bytes_to_bytes";

  /** zarrita's factory hook (the codec has no configuration). */
  static fromConfig(): Crc32cCodec {
    return new Crc32cCodec();
  }

  /** Appends the checksum. */
  encode(bytes: Uint8Array): Uint8Array {
    return appendCrc32c(bytes);
  }

  /**
   * Checks and strips the checksum; an error names the chunk when its store said which.
   * When the store knows the checksum written at the chunk's position, a sound chunk
   * with another one (moved, swapped or copied from elsewhere) is refused too.
   */
  decode(bytes: Uint8Array): Uint8Array {
    const info = chunkLabels.get(bytes);
    let body: Uint8Array;
    try {
      body = checkCrc32c(bytes);
    } catch (e) {
      if (info && e instanceof Error) e.message = `${info.label}: ${e.message}`;
      throw e;
    }
    if (info?.crc !== undefined) {
      const stored = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
        .getUint32(bytes.length - 4, true);
      if (stored !== info.crc) {
        throw new DamagedCacheError(
          `${info.label}: holds a sound chunk, but not the one written there (checksum ` +
            `${hex(stored)}, written ${hex(info.crc)}): a chunk moved, swapped or copied ` +
            `from elsewhere`,
          { where: info.label },
        );
      }
    }
    return body;
  }

  /** Size after encoding (for the shard index, whose size must be known up front). */
  computeEncodedSize(size: number): number {
    return size + 4;
  }
}

let registered = false;

/** Makes zarrita use {@linkcode Crc32cCodec} (which checks) for `crc32c` (idempotent). */
export function registerCrc32c(): void {
  if (registered) return;
  zarr.registry.set("crc32c", () => Promise.resolve(Crc32cCodec as never));
  registered = true;
}
