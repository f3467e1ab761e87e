// The Zarr `blosc` codec with byte shuffle and zstd on the runtime's native zstd; other
// Blosc frames go to numcodecs.
import * as zarr from "zarrita";
import { ZstdEncoder, ZstdScratch } from "./zstd.ts";

/** One kept zstd encoder per level, and one decoder, for the frames of this thread. */
const encoders = new Map<number, ZstdEncoder>();
const encoderAt = (level: number) => {
  let e = encoders.get(level);
  if (!e) encoders.set(level, e = new ZstdEncoder(level));
  return e;
};
const decoder = new ZstdScratch();

/**
 * The zstd level c-blosc 1 compresses at for a Blosc `clevel` (its `zstd_wrap_compress`):
 * `2 * clevel - 1` for 1..8, zstd's maximum (22) for 9; 0 stores the bytes uncompressed
 * (a memcpyed frame). Followed so that a `clevel` in the metadata means what it means to
 * c-blosc, numcodecs and tensorstore.
 */
export function bloscZstdLevel(clevel: number): number {
  if (!Number.isInteger(clevel) || clevel < 0 || clevel > 9) {
    throw new RangeError(`Blosc clevel must be 0..9, got ${clevel}`);
  }
  return clevel === 9 ? 22 : clevel === 0 ? 0 : 2 * clevel - 1;
}

/** Configuration of the Zarr v3 `blosc` codec. */
export interface BloscConfig {
  /** Inner compressor: `zstd` (native) or `lz4` (c-blosc via numcodecs' WebAssembly). */
  cname?: string;
  /** Compression level. @default {5} */
  clevel?: number;
  /** Shuffle filter. @default {"shuffle"} */
  shuffle?: "noshuffle" | "shuffle" | "bitshuffle";
  /** Element size in bytes for the shuffle. @default {1} */
  typesize?: number;
  /** Block size; 0 lets the writer choose. @default {0} */
  blocksize?: number;
}

const HEADER = 16;
const FLAG_SHUFFLE = 0x01;
const FLAG_MEMCPYED = 0x02;
const FLAG_BITSHUFFLE = 0x04;
const FLAG_DONT_SPLIT = 0x10;
const ZSTD_FORMAT = 4;
/** c-blosc's limits for splitting a block into one stream per byte of the type. */
const MAX_SPLITS = 16;
const MIN_BUFFERSIZE = 128;

/**
 * The Zarr v3 `blosc` codec (Blosc 1 chunk format) with zstd on the runtime's native
 * zstd, and c-blosc's byte shuffle and bitshuffle.
 *
 * Written here rather than taken from numcodecs because numcodecs' WebAssembly Blosc
 * decodes zstd at about 70 MB/s on this data, while the frame format is small: a 16-byte
 * header, block offsets, and per block a length-prefixed zstd stream of the filtered
 * bytes. The writer emits unsplit blocks (one per chunk, or of `blockBytes`); the reader
 * handles any block layout with zstd or no compression and hands other frames (lz4) to
 * numcodecs. Output is decoded by c-blosc, so zarr-python and tensorstore read it (tests
 * check this with numcodecs' c-blosc). Other inner compressors (`lz4`) are encoded by
 * c-blosc itself, through numcodecs.
 */
export class NativeBloscCodec {
  /** Codec kind, as zarrita's pipeline expects. */
  readonly kind = "bytes_to_bytes";
  #config: Required<BloscConfig>;
  #blockBytes: number;

  /**
   * Makes a codec for the given configuration. `blockBytes` (the writer's choice, as
   * c-blosc's automatic block size is: not part of the metadata) splits each chunk into
   * blocks of that many bytes, each shuffled and compressed on its own, so that a reader
   * can decode only the blocks it needs; by default a chunk is one block.
   */
  constructor(config: BloscConfig = {}, options: { blockBytes?: number } = {}) {
    this.#blockBytes = options.blockBytes ?? 0;
    this.#config = {
      cname: config.cname ?? "zstd",
      clevel: config.clevel ?? 5,
      shuffle: config.shuffle ?? "shuffle",
      typesize: config.typesize ?? 1,
      blocksize: config.blocksize ?? 0,
    };
    const t = this.#config.typesize;
    if (!Number.isInteger(t) || t < 1 || t > 255) {
      throw new RangeError(`Blosc typesize must be 1..255, got ${t}`);
    }
  }

  /** zarrita's factory hook. */
  static fromConfig(config: BloscConfig): NativeBloscCodec {
    return new NativeBloscCodec(config);
  }

  /**
   * Compresses one chunk into a Blosc 1 frame: one block, or blocks of `blockBytes` (a
   * whole number of elements), each filtered on its own and stored compressed, or as it
   * is when zstd cannot make it smaller (as c-blosc does); a plain (memcpyed) frame when
   * nothing compresses or `clevel` is 0. zstd's level is c-blosc's for the `clevel`
   * ({@linkcode bloscZstdLevel}).
   */
  encode(bytes: Uint8Array): Uint8Array | Promise<Uint8Array> {
    const { cname, clevel, shuffle } = this.#config;
    if (cname !== "zstd") return numcodecsEncode(bytes, this.#config);
    const level = bloscZstdLevel(clevel);
    const bits = shuffle === "bitshuffle";
    const typesize = shuffle === "noshuffle" ? 1 : this.#config.typesize;
    const n = bytes.length;
    const blocksize = this.#blockBytes > 0 && this.#blockBytes < n &&
        this.#blockBytes % typesize === 0
      ? this.#blockBytes
      : n;
    // c-blosc bitshuffles any typesize (1 too) once the block holds a whole element.
    const filter = (block: Uint8Array) =>
      bits
        ? (block.length >= typesize ? bitshuffleBytes(block, typesize) : block)
        : typesize > 1
        ? shuffleBytes(block, typesize)
        : block;
    const streams: Uint8Array[] = [];
    let total = HEADER;
    for (let start = 0; level > 0 && start < n; start += blocksize) {
      const filtered = filter(bytes.subarray(start, Math.min(n, start + blocksize)));
      const z = encoderAt(level).encode(filtered);
      streams.push(z.length < filtered.length ? z : filtered);
      total += 8 + streams[streams.length - 1].length;
    }
    if (level === 0 || total >= HEADER + n) {
      // Incompressible or level 0: a memcpyed frame holds the plain bytes after the header.
      const out = new Uint8Array(HEADER + n);
      const flags = (ZSTD_FORMAT << 5) | FLAG_DONT_SPLIT | FLAG_MEMCPYED;
      writeHeader(out, flags, typesize, n, n, HEADER + n);
      out.set(bytes, HEADER);
      return out;
    }
    const out = new Uint8Array(total);
    const flag = bits ? FLAG_BITSHUFFLE : typesize > 1 ? FLAG_SHUFFLE : 0;
    writeHeader(out, (ZSTD_FORMAT << 5) | FLAG_DONT_SPLIT | flag, typesize, n, blocksize, total);
    const view = new DataView(out.buffer);
    let p = HEADER + 4 * streams.length;
    streams.forEach((z, b) => {
      view.setInt32(HEADER + 4 * b, p, true); // bstarts[b]: where block b starts
      view.setInt32(p, z.length, true);
      out.set(z, p + 4);
      p += 4 + z.length;
    });
    return out;
  }

  /** Decompresses one Blosc 1 frame. */
  async decode(bytes: Uint8Array): Promise<Uint8Array> {
    return (this.decodeFrame(bytes) ?? await numcodecsDecode(bytes, this.#config)) as Uint8Array;
  }

  /**
   * Decodes one Blosc 1 frame without waiting, in element order: `undefined` for the
   * frames only numcodecs decodes (lz4).
   */
  decodeFrame(bytes: Uint8Array): Uint8Array | undefined;
  /**
   * Decodes the blocks of one Blosc 1 frame that hold bytes `want` (all by default) into
   * the scratch decoder's buffer, leaving the byte shuffle to the caller, who can undo it
   * while copying the values out (one pass over the bytes instead of two): `typesize` is
   * the shuffle's element size (1 when the bytes are in element order), each block of
   * `blocksize` bytes shuffled on its own; a plain (memcpyed) frame is a view of `bytes`.
   * Valid until the scratch decodes again, and not to be changed; the other blocks' bytes
   * are stale. A frame that claims to decode to more than `maxBytes` is refused before
   * decoding; `undefined` for the frames only numcodecs decodes (lz4).
   */
  decodeFrame(
    bytes: Uint8Array,
    scratch: ZstdScratch,
    maxBytes?: number,
    want?: readonly [number, number],
  ): DecodedFrame | undefined;
  decodeFrame(
    bytes: Uint8Array,
    scratch?: ZstdScratch,
    maxBytes = Infinity,
    want?: readonly [number, number],
  ): DecodedFrame | Uint8Array | undefined {
    const frame = this.#frame(bytes, scratch, maxBytes, want);
    if (scratch || !frame) return frame;
    return frame.typesize > 1 ? unshuffleBlocks(frame) : frame.bytes;
  }

  #frame(
    bytes: Uint8Array,
    scratch: ZstdScratch | undefined,
    maxBytes: number,
    want: readonly [number, number] | undefined,
  ): DecodedFrame | undefined {
    checkHeader(bytes);
    const flags = bytes[2];
    const compressor = flags >> 5;
    if (compressor !== ZSTD_FORMAT && !(flags & FLAG_MEMCPYED)) return undefined;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const typesize = bytes[3];
    const nbytes = view.getUint32(4, true);
    const blocksize = view.getUint32(8, true);
    if (nbytes > maxBytes) {
      throw new SyntaxError(
        `Corrupt Blosc chunk: its header gives ${nbytes} decoded bytes, more than a chunk ` +
          `holds (${maxBytes})`,
      );
    }
    if (flags & FLAG_MEMCPYED) {
      if (HEADER + nbytes > bytes.length) {
        throw new SyntaxError("Corrupt Blosc chunk: its plain bytes run past the end of the chunk");
      }
      const plain = bytes.subarray(HEADER, HEADER + nbytes);
      return { bytes: scratch ? plain : plain.slice(), typesize: 1, blocksize: nbytes };
    }
    const nblocks = Math.ceil(nbytes / blocksize);
    // As c-blosc's blosc_d: byte shuffle first, else bitshuffle (of blocks holding a whole
    // element); a block split into one stream per byte when the frame allows and the
    // block is full and large enough.
    const shuffled = (flags & FLAG_SHUFFLE) !== 0 && typesize > 1;
    const bits = !shuffled && (flags & FLAG_BITSHUFFLE) !== 0;
    const splits = (bsize: number) =>
      (flags & FLAG_DONT_SPLIT) === 0 && typesize <= MAX_SPLITS &&
        Math.floor(blocksize / typesize) >= MIN_BUFFERSIZE && bsize === blocksize
        ? typesize
        : 1;
    const unfilter = (block: Uint8Array) =>
      shuffled
        ? unshuffleBytes(block, typesize)
        : bits && block.length >= typesize
        ? bitunshuffleBytes(block, typesize)
        : block;
    const stream = (b: number, bsize: number) => {
      const p = view.getInt32(HEADER + 4 * b, true);
      const csize = p >= HEADER && p + 4 <= bytes.length ? view.getInt32(p, true) : -1;
      if (csize < 0 || p + 4 + csize > bytes.length) {
        throw new SyntaxError("Corrupt Blosc chunk: a block runs past the end of the chunk");
      }
      const part = bytes.subarray(p + 4, p + 4 + csize);
      return csize === bsize ? { raw: part } : { z: part };
    };
    if (scratch && splits(blocksize) === 1) {
      // One stream per block (what this writer emits), decoded into the scratch buffer,
      // the blocks that hold bytes `want` only; the byte shuffle left to the caller.
      const out = scratch.buffer(nbytes);
      const [from, to] = want ?? [0, nbytes];
      const last = Math.min(nblocks - 1, Math.floor((Math.min(to, nbytes) - 1) / blocksize));
      for (let b = Math.max(0, Math.floor(from / blocksize)); b <= last; b++) {
        const start = b * blocksize, bsize = Math.min(blocksize, nbytes - start);
        const s = stream(b, bsize);
        if (s.raw) out.set(s.raw, start);
        else scratch.decodeInto(s.z!, out.subarray(start, start + bsize + 1), bsize);
        if (bits) out.set(unfilter(out.subarray(start, start + bsize)), start);
      }
      return { bytes: out.subarray(0, nbytes), typesize: shuffled ? typesize : 1, blocksize };
    }
    if (nblocks === 1 && splits(nbytes) === 1) {
      // One block, one stream: no intermediate copies.
      const s = stream(0, nbytes);
      const raw = s.raw ?? decoder.decode(s.z!, nbytes);
      // A new array (zarrita's pipeline keeps what it gets): unfiltered, or copied.
      const plain = unfilter(raw);
      const bytes = plain === raw ? raw.slice() : plain;
      return { bytes, typesize: 1, blocksize: nbytes };
    }
    const out = new Uint8Array(nbytes);
    for (let b = 0; b < nblocks; b++) {
      const start = b * blocksize;
      const bsize = Math.min(blocksize, nbytes - start);
      let p = view.getInt32(HEADER + 4 * b, true);
      const block = new Uint8Array(bsize + 1); // a byte past the end: see decodeInto
      const streams = splits(bsize);
      const ssize = Math.floor(bsize / streams);
      for (let s = 0; s < streams; s++) {
        const csize = p >= HEADER && p + 4 <= bytes.length ? view.getInt32(p, true) : -1;
        p += 4;
        if (csize < 0 || p + csize > bytes.length) {
          throw new SyntaxError("Corrupt Blosc chunk: a block runs past the end of the chunk");
        }
        const part = bytes.subarray(p, p + csize);
        p += csize;
        if (csize === ssize) block.set(part, s * ssize);
        else decoder.decodeInto(part, block.subarray(s * ssize, (s + 1) * ssize + 1), ssize);
      }
      out.set(unfilter(block.subarray(0, bsize)), start);
    }
    return { bytes: out, typesize: 1, blocksize };
  }
}

/**
 * A decoded Blosc frame: its bytes, each block of `blocksize` bytes byte-shuffled on its
 * own when `typesize` > 1 (in element order when 1).
 */
export interface DecodedFrame {
  /** The decoded bytes. */
  bytes: Uint8Array;
  /** The byte shuffle's element size; 1 for bytes in element order. */
  typesize: number;
  /** Bytes per block (the last one may be shorter). */
  blocksize: number;
}

/** The bytes of `frame` in element order: each block's shuffle undone. */
export function unshuffleBlocks(frame: DecodedFrame): Uint8Array {
  const { bytes, typesize, blocksize } = frame;
  if (typesize <= 1) return bytes;
  if (blocksize >= bytes.length) return unshuffleBytes(bytes, typesize);
  const out = new Uint8Array(bytes.length);
  for (let start = 0; start < bytes.length; start += blocksize) {
    const end = Math.min(bytes.length, start + blocksize);
    out.set(unshuffleBytes(bytes.subarray(start, end), typesize), start);
  }
  return out;
}

/**
 * Rejects bytes that cannot be a Blosc 1 chunk: too short, an unknown format version, or
 * a compressed size (header bytes 12..15) other than the chunk's length, as a damaged or
 * truncated file gives. Without this, such bytes could decode to garbage values.
 */
function checkHeader(bytes: Uint8Array): void {
  if (bytes.length < HEADER) {
    throw new SyntaxError(`Corrupt Blosc chunk: ${bytes.length} bytes, shorter than a header`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const cbytes = view.getUint32(12, true);
  if (bytes[0] < 1 || bytes[0] > 4 || bytes[3] === 0 || cbytes !== bytes.length) {
    throw new SyntaxError(
      `Corrupt Blosc chunk: its header gives format ${bytes[0]} and ${cbytes} bytes, ` +
        `the chunk has ${bytes.length} bytes`,
    );
  }
  if (view.getUint32(4, true) > 0 && view.getUint32(8, true) === 0) {
    throw new SyntaxError("Corrupt Blosc chunk: block size 0");
  }
}

function writeHeader(
  out: Uint8Array,
  flags: number,
  typesize: number,
  nbytes: number,
  blocksize: number,
  cbytes: number,
): void {
  const view = new DataView(out.buffer, out.byteOffset);
  out[0] = 2; // Blosc format version
  out[1] = 1; // zstd format version
  out[2] = flags;
  out[3] = typesize;
  view.setUint32(4, nbytes, true);
  view.setUint32(8, blocksize, true);
  view.setUint32(12, cbytes, true);
}

/** Byte shuffle of one block: byte j of element i goes to `j * n + i`; a tail stays. */
export function shuffleBytes(src: Uint8Array, typesize: number): Uint8Array {
  const n = Math.floor(src.length / typesize);
  const out = new Uint8Array(src.length);
  for (let j = 0; j < typesize; j++) {
    const base = j * n;
    for (let i = 0, k = j; i < n; i++, k += typesize) out[base + i] = src[k];
  }
  out.set(src.subarray(n * typesize), n * typesize);
  return out;
}

const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Inverse of {@linkcode shuffleBytes}. */
export function unshuffleBytes(src: Uint8Array, typesize: number): Uint8Array {
  const n = Math.floor(src.length / typesize);
  const out = new Uint8Array(src.length);
  if (typesize === 2 && littleEndian) {
    // One 16-bit store per element: twice as fast as two byte stores.
    const out16 = new Uint16Array(out.buffer, 0, n);
    const hi = src.subarray(n, 2 * n);
    for (let i = 0; i < n; i++) out16[i] = src[i] | (hi[i] << 8);
  } else if (typesize === 2) {
    for (let i = 0, k = 0; i < n; i++, k += 2) {
      out[k] = src[i];
      out[k + 1] = src[n + i];
    }
  } else {
    for (let j = 0; j < typesize; j++) {
      const base = j * n;
      for (let i = 0, k = j; i < n; i++, k += typesize) out[k] = src[base + i];
    }
  }
  out.set(src.subarray(n * typesize), n * typesize);
  return out;
}

/**
 * The 8 × 8 bit matrix of bytes `lo` (bytes 0..3) and `hi` (bytes 4..7) transposed: bit k
 * of byte m becomes bit m of byte k (bitshuffle's `TRANS_BIT_8X8` on 32-bit halves).
 */
function transpose8(lo: number, hi: number, out: Int32Array): void {
  let t = (lo ^ (lo >>> 7)) & 0x00aa00aa;
  lo ^= t ^ (t << 7);
  t = (hi ^ (hi >>> 7)) & 0x00aa00aa;
  hi ^= t ^ (t << 7);
  t = (lo ^ (lo >>> 14)) & 0x0000cccc;
  lo ^= t ^ (t << 14);
  t = (hi ^ (hi >>> 14)) & 0x0000cccc;
  hi ^= t ^ (t << 14);
  t = (lo ^ (hi << 4)) & 0xf0f0f0f0;
  out[0] = lo ^ t;
  out[1] = hi ^ (t >>> 4);
}

/**
 * Bitshuffle of one block as c-blosc does it (`blosc_internal_bitshuffle`): for
 * `n` = whole elements, when a multiple of 8, row `8j + b` (n/8 bytes) holds bit b of
 * byte j of every element, element i at bit i % 8 of byte i / 8; the bytes past the
 * last whole element stay. Fewer or other than a multiple of 8 elements: a copy.
 */
export function bitshuffleBytes(src: Uint8Array, typesize: number): Uint8Array {
  const n = Math.floor(src.length / typesize);
  const out = src.slice();
  if (n % 8 !== 0 || n === 0) return out;
  const row = n / 8, w = new Int32Array(2);
  for (let g = 0; g < row; g++) {
    const e = 8 * g * typesize;
    for (let j = 0; j < typesize; j++) {
      const p = e + j;
      transpose8(
        src[p] | (src[p + typesize] << 8) | (src[p + 2 * typesize] << 16) |
          (src[p + 3 * typesize] << 24),
        src[p + 4 * typesize] | (src[p + 5 * typesize] << 8) | (src[p + 6 * typesize] << 16) |
          (src[p + 7 * typesize] << 24),
        w,
      );
      const r = 8 * j * row + g;
      for (let m = 0; m < 4; m++) {
        out[r + m * row] = w[0] >>> (8 * m);
        out[r + (m + 4) * row] = w[1] >>> (8 * m);
      }
    }
  }
  return out;
}

/** Inverse of {@linkcode bitshuffleBytes} (c-blosc's `blosc_internal_bitunshuffle`). */
export function bitunshuffleBytes(src: Uint8Array, typesize: number): Uint8Array {
  const n = Math.floor(src.length / typesize);
  const out = src.slice();
  if (n % 8 !== 0 || n === 0) return out;
  const row = n / 8, w = new Int32Array(2);
  for (let g = 0; g < row; g++) {
    const e = 8 * g * typesize;
    for (let j = 0; j < typesize; j++) {
      const r = 8 * j * row + g;
      transpose8(
        src[r] | (src[r + row] << 8) | (src[r + 2 * row] << 16) | (src[r + 3 * row] << 24),
        src[r + 4 * row] | (src[r + 5 * row] << 8) | (src[r + 6 * row] << 16) |
          (src[r + 7 * row] << 24),
        w,
      );
      const p = e + j;
      for (let k = 0; k < 4; k++) {
        out[p + k * typesize] = w[0] >>> (8 * k);
        out[p + (k + 4) * typesize] = w[1] >>> (8 * k);
      }
    }
  }
  return out;
}

async function numcodecsEncode(
  bytes: Uint8Array,
  config: Required<BloscConfig>,
): Promise<Uint8Array> {
  const { default: Blosc } = await import("numcodecs/blosc");
  const shuffle = { noshuffle: 0, shuffle: 1, bitshuffle: 2 }[config.shuffle];
  const codec = Blosc.fromConfig({
    cname: config.cname,
    clevel: config.clevel,
    shuffle,
    blocksize: config.blocksize,
    id: "blosc",
  } as never);
  return await codec.encode(bytes) as Uint8Array;
}

async function numcodecsDecode(bytes: Uint8Array, config: BloscConfig): Promise<Uint8Array> {
  const { default: Blosc } = await import("numcodecs/blosc");
  const codec = Blosc.fromConfig({
    cname: config.cname ?? "zstd",
    clevel: config.clevel ?? 5,
    shuffle: 1,
    blocksize: 0,
    id: "blosc",
  } as never);
  return await codec.decode(bytes) as Uint8Array;
}

let registered = false;

/** Makes zarrita use {@linkcode NativeBloscCodec} for the `blosc` codec (idempotent). */
export function registerNativeBlosc(): void {
  if (registered) return;
  zarr.registry.set("blosc", () => Promise.resolve(NativeBloscCodec as never));
  registered = true;
}
