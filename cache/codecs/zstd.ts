// The Zarr `zstd` codec on Node's native zstd (node:zlib), faster than the WebAssembly
// build zarrita would load; and a zstd decoder and encoder kept across frames, for the
// many small frames of crops and Blosc blocks.
import * as zarr from "zarrita";
import {
  constants,
  createZstdCompress,
  createZstdDecompress,
  zstdCompressSync,
  zstdDecompressSync,
  type ZstdOptions,
} from "node:zlib";

/** Configuration of the Zarr v3 `zstd` codec. */
export interface ZstdConfig {
  /**
   * Compression level.
   * @default {3}
   */
  level?: number;
  /**
   * Append a content checksum to every frame.
   * @default {false}
   */
  checksum?: boolean;
}

/**
 * The Zarr v3 `zstd` bytes-to-bytes codec on the runtime's native zstd (`node:zlib`).
 *
 * zarrita ships a WebAssembly zstd from numcodecs that decodes at roughly 70 MB/s on
 * this data; the native binding decodes several times faster and can also encode, which
 * zarrita's default cannot. The frames are standard zstd with their decoded size in the
 * header, so any Zarr reader (zarr-python with any numcodecs >= 0.14, tensorstore,
 * zarrita's own codec) decodes them.
 */
export class NativeZstdCodec {
  /** Codec kind, as zarrita's pipeline expects. */
  readonly kind = "bytes_to_bytes";
  #level: number;
  #checksum: boolean;

  /** Makes a codec for the given configuration. */
  constructor(config: ZstdConfig = {}) {
    const level = config.level ?? 3;
    if (!Number.isInteger(level) || level < -131072 || level > 22) {
      throw new RangeError(`zstd level must be an integer up to 22, got ${config.level}`);
    }
    this.#level = level;
    this.#checksum = config.checksum ?? false;
  }

  /** zarrita's factory hook. */
  static fromConfig(config: ZstdConfig): NativeZstdCodec {
    return new NativeZstdCodec(config);
  }

  /**
   * Compresses one chunk into one frame whose header records the decoded size
   * (Frame_Content_Size), as libzstd's one-shot `ZSTD_compress` writes it: numcodecs'
   * Zstd before 0.16.2 (zarr-python's decoder) rejects a frame without it.
   */
  encode(bytes: Uint8Array): Uint8Array {
    const out = pledgedFrame(bytes, this.#level, this.#checksum);
    // The frame must decode to the chunk: checked once here (a fraction of the
    // compression's time), since a reader that expects one frame refuses anything else.
    if (zstdDecode(out, bytes.length).length !== bytes.length) {
      throw new Error("zstd: the encoded frame does not decode to the chunk's size");
    }
    return out;
  }

  /** Decompresses one chunk; `size`, when known, the bytes it decodes to. */
  decode(bytes: Uint8Array, size?: number): Uint8Array {
    return zstdDecode(bytes, size);
  }
}

/** A zstd frame of no content, as a last `ZSTD_e_end` on empty input writes it. */
const EMPTY_FRAME = [0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x00, 0x01, 0x00, 0x00];

/**
 * `out` without the empty frames at its end. Deno's one-shot `zstdCompressSync` follows
 * the data's frame with an empty one for some input sizes (64 KiB and 221,184 bytes, a 48³
 * uint16 chunk, among them): zstd decoders that take concatenated frames do not mind, but
 * tensorstore's `zstd` codec expects one frame and refuses the chunk ("End of data
 * expected; remaining length: 9").
 */
export function oneFrame(out: Uint8Array): Uint8Array {
  const n = EMPTY_FRAME.length;
  while (out.length > n && EMPTY_FRAME.every((b, i) => out[out.length - n + i] === b)) {
    out = out.subarray(0, out.length - n);
  }
  return out;
}

/**
 * `bytes` as one zstd frame by node:zlib's one-shot compressor with the size pledged: the
 * header records it, and zstd picks its parameters for that size, as libzstd's
 * `ZSTD_compress` does (the pledge is Node's and Deno's option, missing from their
 * ZstdOptions type).
 */
function pledgedFrame(bytes: Uint8Array, level: number, checksum = false): Uint8Array {
  const options: ZstdOptions & { pledgedSrcSize: number } = {
    pledgedSrcSize: bytes.length,
    params: {
      [constants.ZSTD_c_compressionLevel]: level,
      [constants.ZSTD_c_checksumFlag]: checksum ? 1 : 0,
    },
  };
  const z = zstdCompressSync(bytes, options);
  return oneFrame(new Uint8Array(z.buffer, z.byteOffset, z.byteLength));
}

/** Largest decoded size announced to zstd up front (larger frames grow as they decode). */
const MAX_SIZE_HINT = 64 * 1024 * 1024;

/**
 * One zstd frame decoded by the runtime's native zstd, `size` the bytes it should decode
 * to: the output is then allocated once at that size (node:zlib otherwise decodes into
 * 16 KiB pieces and joins them, and with exactly `size` it would allocate one more piece
 * to find the end), about a third faster on 48³ chunks.
 */
export function zstdDecode(part: Uint8Array, size?: number): Uint8Array {
  const hint = size !== undefined && size >= 0 && size <= MAX_SIZE_HINT
    ? { chunkSize: Math.max(64, size + 64) }
    : undefined;
  const z = zstdDecompressSync(part, hint);
  return new Uint8Array(z.buffer, z.byteOffset, z.byteLength);
}

/** The native zstd stream handle of a node:zlib decompressor (its Node-compatible internals). */
interface ZstdHandle {
  reset(): void;
  writeSync(
    flush: number,
    input: Uint8Array,
    inOff: number,
    inLen: number,
    out: Uint8Array,
    outOff: number,
    outLen: number,
  ): void;
  onerror: (message: string, errno: number) => void;
}

/**
 * The native handle and write state inside a node:zlib zstd stream (its Node-compatible
 * internals), errors reported to `onerror`; undefined where the runtime has none.
 */
function nativeHandle(
  make: () => unknown,
  onerror: (message: string) => void,
): { handle: ZstdHandle; state: Uint32Array } | undefined {
  try {
    const stream = make() as { _handle?: ZstdHandle; _writeState?: Uint32Array };
    const handle = stream._handle, state = stream._writeState;
    if (
      !handle || typeof handle.reset !== "function" ||
      typeof handle.writeSync !== "function" || !(state instanceof Uint32Array)
    ) return undefined;
    handle.onerror = onerror;
    return { handle, state };
  } catch {
    return undefined;
  }
}

/**
 * Largest input {@linkcode ZstdEncoder} compresses through its kept compressor: up to
 * 64 KiB the frames are as small as with the size pledged (a 36 KiB block at level 3:
 * 34,201 bytes kept, 34,212 pledged).
 */
const KEPT_MAX = 64 * 1024;

/** Flush mode that ends a zstd frame (`ZSTD_e_end`). */
const ZSTD_E_END = 2;

/**
 * Decodes zstd frames into one buffer that it reuses, through one native decoder kept
 * across frames: what a crop read needs, for it copies each decoded chunk into the crop
 * before decoding the next. node:zlib's one-shot `zstdDecompressSync` builds a stream
 * object, a native decoder and an output buffer per frame (about 20 µs, and fresh pages
 * for every output); kept, the decoder runs at libzstd's own speed, about twice as fast
 * on a crop's 48³ chunks. It drives the decoder through the node:zlib stream's native
 * handle (`_handle.reset`/`writeSync`, as node:zlib itself does); where a runtime has no
 * such handle it falls back to `zstdDecompressSync`.
 */
export class ZstdScratch {
  #handle: ZstdHandle | undefined;
  #state: Uint32Array | undefined;
  #error: string | undefined;
  #buffer = new Uint8Array(0);
  #native = true;
  readonly #provide?: (size: number) => Uint8Array;

  /**
   * A decoder; `buffer`, when given, provides the buffer to decode a frame of `size`
   * bytes into (at least `size` + 1 bytes), else the decoder keeps one of its own.
   */
  constructor(buffer?: (size: number) => Uint8Array) {
    this.#provide = buffer;
  }

  /**
   * A buffer of at least `size` + 1 bytes to decode into: the provided one, or this
   * decoder's own (grown as needed). Valid until the next call.
   */
  buffer(size: number): Uint8Array {
    if (this.#provide) return this.#provide(size);
    if (this.#buffer.length < size + 1) this.#buffer = new Uint8Array(size + 1);
    return this.#buffer;
  }

  /**
   * Frame `frame` decoded, expected to hold exactly `size` bytes (throws otherwise, as
   * for a damaged frame). The result is a view of this decoder's buffer, valid until
   * its next `decode`.
   */
  decode(frame: Uint8Array, size: number): Uint8Array {
    return this.decodeInto(frame, this.buffer(size), size);
  }

  /**
   * Frame `frame` decoded into `out` (at least `size` + 1 bytes: the byte past `size`
   * tells a frame that decodes to more), expected to hold exactly `size` bytes; returns
   * the view of `out` it fills.
   */
  decodeInto(frame: Uint8Array, out: Uint8Array, size: number): Uint8Array {
    if (out.length < size + 1) throw new RangeError(`zstd: ${out.length} bytes for ${size} + 1`);
    const handle = this.#native ? this.#open() : undefined;
    if (!handle) {
      const plain = zstdDecode(frame, size);
      if (plain.length !== size) throw new SyntaxError(wrongSize(plain.length, size));
      out.set(plain);
      return out.subarray(0, size);
    }
    this.#error = undefined;
    handle.reset();
    const state = this.#state!;
    // Until the input is used up (the decoder may stop with the frame's last bytes
    // unread), the output is past `size`, or nothing moves.
    let inOff = 0, inLen = frame.length, made = 0, room = size + 1;
    for (;;) {
      try {
        handle.writeSync(ZSTD_E_END, frame, inOff, inLen, out, made, room);
      } catch (e) {
        this.#handle = undefined; // a fresh decoder for the next frame
        throw new SyntaxError(`zstd: ${(e as Error).message}`, { cause: e });
      }
      if (this.#error !== undefined) {
        this.#handle = undefined; // a fresh decoder for the next frame
        throw new SyntaxError(`zstd: ${this.#error}`);
      }
      const used = inLen - state[1], wrote = room - state[0];
      inOff += used, inLen -= used, made += wrote, room -= wrote;
      if (inLen === 0 || room === 0 || (used === 0 && wrote === 0)) break;
    }
    if (made !== size || inLen !== 0) {
      throw new SyntaxError(
        inLen !== 0 && made <= size
          ? `zstd: the frame does not end where its bytes do (${inLen} bytes left over)`
          : wrongSize(made, size),
      );
    }
    return out.subarray(0, size);
  }

  #open(): ZstdHandle | undefined {
    if (this.#handle) return this.#handle;
    const native = nativeHandle(() => createZstdDecompress(), (m) => this.#error = m);
    if (!native) {
      this.#native = false;
      return undefined;
    }
    this.#state = native.state;
    return this.#handle = native.handle;
  }
}

/**
 * Compresses into zstd frames at `level`. Inputs up to {@linkcode KEPT_MAX} bytes (the
 * Blosc blocks of the default level) go through one native compressor kept across frames,
 * as {@linkcode ZstdScratch} decodes: node:zlib's one-shot `zstdCompressSync` builds a
 * stream and a native context per frame, 1.6 times the time of compressing a 36 KiB
 * block. Those frames hold no content size, which every zstd decoder handles; where a
 * runtime has no such handle they fall back to `zstdCompressSync`. Larger inputs go
 * through `zstdCompressSync` with the size pledged: a kept compressor forgets the pledge
 * when reset, and zstd then picks its parameters for an input of unknown size, which on a
 * 48³ uint16 chunk makes frames 2.6 % (level 3) to 9 % (level 15) larger than the
 * `ZSTD_compress` of c-blosc and python-zstandard, which know the size.
 */
export class ZstdEncoder {
  readonly #level: number;
  #handle: ZstdHandle | undefined;
  #state: Uint32Array | undefined;
  #error: string | undefined;
  #native = true;
  #buffer = new Uint8Array(0);

  /** An encoder at zstd `level`. */
  constructor(level: number) {
    this.#level = level;
  }

  /** `bytes` as one zstd frame (a new array). */
  encode(bytes: Uint8Array): Uint8Array {
    const handle = this.#native && bytes.length <= KEPT_MAX ? this.#open() : undefined;
    if (!handle) return pledgedFrame(bytes, this.#level);
    // zstd's bound for one frame: the bytes, 1/256 more, and a header's worth.
    const bound = bytes.length + (bytes.length >> 8) + 256;
    if (this.#buffer.length < bound) this.#buffer = new Uint8Array(bound);
    let out = this.#buffer;
    this.#error = undefined;
    handle.reset();
    const state = this.#state!;
    let inOff = 0, inLen = bytes.length, made = 0;
    for (;;) {
      const room = out.length - made;
      try {
        handle.writeSync(ZSTD_E_END, bytes, inOff, inLen, out, made, room);
      } catch (e) {
        this.#handle = undefined;
        throw e;
      }
      if (this.#error !== undefined) {
        this.#handle = undefined;
        throw new Error(`zstd: ${this.#error}`);
      }
      const used = inLen - state[1], wrote = room - state[0];
      inOff += used, inLen -= used, made += wrote;
      // Done once the input is used up and the output was not filled (nothing pending).
      if (inLen === 0 && state[0] > 0) break;
      if (used === 0 && wrote === 0 && state[0] > 0) throw new Error("zstd: the encoder stalled");
      if (state[0] === 0) {
        const bigger = new Uint8Array(out.length * 2);
        bigger.set(out.subarray(0, made));
        this.#buffer = out = bigger;
      }
    }
    return out.slice(0, made);
  }

  #open(): ZstdHandle | undefined {
    if (this.#handle) return this.#handle;
    const native = nativeHandle(
      () => createZstdCompress({ params: { [constants.ZSTD_c_compressionLevel]: this.#level } }),
      (m) => this.#error = m,
    );
    if (!native) {
      this.#native = false;
      return undefined;
    }
    this.#state = native.state;
    return this.#handle = native.handle;
  }
}

function wrongSize(got: number, size: number): string {
  return `zstd: the frame decodes to ${
    got > size ? `more than ${size}` : got
  } bytes, ${size} expected`;
}

let registered = false;

/** Makes zarrita use {@linkcode NativeZstdCodec} for the `zstd` codec (idempotent). */
export function registerNativeZstd(): void {
  if (registered) return;
  zarr.registry.set("zstd", () => Promise.resolve(NativeZstdCodec as never));
  registered = true;
}
