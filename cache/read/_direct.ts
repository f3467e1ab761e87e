// Reading the chunks of the codec chains the cache writer emits without zarrita's generic
// pipeline: the bytes fetched through the checking store view (so every check stays), the
// checksum checked, zstd or Blosc-zstd decoded at the chunk's known size, and Blosc's
// byte shuffle left for the copy into the crop to undo (one pass instead of two).
import type { AsyncReadable } from "@zarrita/storage";
import { Crc32cCodec } from "../codecs/crc32c.ts";
import { type DecodedFrame, NativeBloscCodec, unshuffleBlocks } from "../codecs/blosc.ts";
import { zstdDecode, ZstdScratch } from "../codecs/zstd.ts";
import { decodeShardIndex, type ShardEntry } from "../codecs/shard.ts";
import { DamagedCacheError } from "../errors.ts";
import { LORENZO } from "../codecs/lorenzo.ts";

type Json = Record<string, unknown>;
type Codec = { name?: unknown; configuration?: Json };

/**
 * One decoded chunk: its bytes in element order (`typesize` 1), or each block of
 * `blocksize` bytes byte-shuffled with `typesize`; or a chunk not stored (`fill`).
 */
export type DirectChunk = DecodedFrame | { fill: number };

/** Reads decoded chunks by grid coordinates (inner chunks of a sharded array). */
export interface DirectReader {
  /**
   * Reads chunk `coords`, decodes and checks it, and hands it to `use`, which must copy
   * what it needs before it returns: the bytes are a view of a buffer reused for the
   * next chunk. Calls made together (in one synchronous loop) request their bytes
   * together, so that a coalescing store can merge them. With `want` (a range of the
   * decoded bytes), Blosc blocks holding none of it may be left undecoded (stale).
   */
  chunk(
    coords: readonly number[],
    use: (c: DirectChunk) => void,
    want?: readonly [number, number],
  ): Promise<void>;
  /**
   * Whether the chunks hold `voco.lorenzo` residuals (the chain's first codec), which the
   * caller turns back into values from the whole decoded chunk (no `want`).
   */
  readonly predicted: boolean;
}

/** What {@linkcode directReader} needs besides the array's metadata. */
export interface DirectReaderOptions {
  /** The case's path in the store (`/ds/case`, or `/`). */
  path: `/${string}`;
  /** The checking store view (labels chunks, checks shard indexes, raises missing chunks). */
  store: AsyncReadable & Required<Pick<AsyncReadable, "getRange">>;
  /** Bytes of one stored value. */
  valueBytes: number;
  /**
   * Where zstd decodes a chunk of `size` bytes (`size` + 1 bytes long at least, its view
   * valid until the chunk has been used); a buffer of the reader's own by default.
   */
  buffer?: (size: number) => Uint8Array;
}

const BYTES_PER_ENTRY = 16;

/** The bytes-to-bytes codecs this reader decodes, by name. */
const KNOWN = new Set(["blosc", "zstd", "crc32c"]);

const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Whether `c` is the `bytes` codec storing little-endian values (or bytes, any order). */
function isLittleBytes(c: Codec | undefined, valueBytes: number): boolean {
  if (c?.name !== "bytes") return false;
  const endian = c.configuration?.endian;
  return endian === "little" || (endian === undefined && valueBytes === 1);
}

/** The chunk key of grid position `coords` under `base`, as the default encoding writes it. */
function keyMaker(meta: Json, base: string): ((coords: readonly number[]) => string) | undefined {
  const enc = meta.chunk_key_encoding as Codec | undefined;
  if (enc !== undefined && enc.name !== "default") return undefined;
  const sep = enc?.configuration?.separator ?? "/";
  if (sep !== "/" && sep !== ".") return undefined;
  return (coords) => `${base}/c${sep}${coords.join(sep as string)}`;
}

/** How an array's chunks are stored, as far as this reader needs it. */
interface ChunkLayout {
  /** The key of a chunk (or shard) by its grid position. */
  key: (coords: readonly number[]) => string;
  /** The codecs after `bytes` (the bytes-to-bytes chain), in encoding order. */
  steps: Codec[];
  /** Shape of the unit a read decodes (the inner chunk when sharded). */
  chunkShape: number[];
  /** Inner chunks per shard, their count, and whether the index ends in a CRC-32C. */
  shard?: { grid: number[]; count: number; crc: boolean };
  /** Whether `voco.lorenzo` comes first: the values decoded are its residuals. */
  predicted: boolean;
}

/** The layout of `meta`'s chunks, or `undefined` when this reader does not know it. */
function chunkLayout(meta: Json, base: string, valueBytes: number): ChunkLayout | undefined {
  const codecs = meta.codecs as Codec[] | undefined;
  const outer = ((meta.chunk_grid as Codec | undefined)?.configuration)?.chunk_shape as
    | number[]
    | undefined;
  if (!Array.isArray(codecs) || !Array.isArray(meta.shape) || !Array.isArray(outer)) {
    return undefined;
  }
  const key = keyMaker(meta, base);
  if (!key || (meta.storage_transformers as unknown[] | undefined)?.length) return undefined;
  let chain = codecs, chunkShape = outer;
  let shard: ChunkLayout["shard"];
  if (codecs.length === 1 && codecs[0]?.name === "sharding_indexed") {
    const c = codecs[0].configuration ?? {};
    const inner = c.chunk_shape as number[] | undefined;
    const index = c.index_codecs as Codec[] | undefined;
    if (!Array.isArray(inner) || inner.length !== outer.length) return undefined;
    if ((c.index_location ?? "end") !== "end" || !Array.isArray(index)) return undefined;
    if (!isLittleBytes(index[0], 8)) return undefined;
    if (index.length > 2 || (index.length === 2 && index[1]?.name !== "crc32c")) return undefined;
    const grid = outer.map((n, a) => n / inner[a]);
    if (!grid.every((n) => Number.isInteger(n) && n >= 1)) return undefined;
    chain = (c.codecs ?? []) as Codec[];
    chunkShape = inner;
    shard = { grid, count: grid.reduce((x, y) => x * y, 1), crc: index.length === 2 };
  }
  const predicted = chain[0]?.name === LORENZO && valueBytes <= 2;
  if (predicted) chain = chain.slice(1);
  if (!isLittleBytes(chain[0], valueBytes)) return undefined;
  const steps = chain.slice(1);
  if (!steps.every((c) => KNOWN.has(c?.name as string))) return undefined;
  return { key, steps, chunkShape, shard, predicted };
}

/**
 * The decoder of one stored chunk of `size` decoded bytes through `steps` (run
 * backwards), zstd output in `scratch`; hands the result to `use` before it returns.
 */
function chunkDecoder(
  steps: Codec[],
  size: number,
  scratch: ZstdScratch,
): (
  bytes: Uint8Array,
  use: (c: DirectChunk) => void,
  want?: readonly [number, number],
) => Promise<void> {
  const decoders = [...steps].reverse().map((c) =>
    c.name === "crc32c"
      ? { kind: "crc32c" as const, codec: new Crc32cCodec() }
      : c.name === "zstd"
      ? { kind: "zstd" as const }
      : { kind: "blosc" as const, codec: new NativeBloscCodec(c.configuration ?? {}) }
  );
  return async (bytes, use, want) => {
    let frame: DecodedFrame = { bytes, typesize: 1, blocksize: bytes.length };
    for (let i = 0; i < decoders.length; i++) {
      const d = decoders[i];
      const last = i === decoders.length - 1;
      // A codec after a shuffled stage: undo the shuffle first (never written so).
      const input = frame.typesize > 1 ? unshuffleBlocks(frame) : frame.bytes;
      if (d.kind === "crc32c") frame = plain(d.codec.decode(input));
      else if (d.kind === "zstd") {
        frame = plain(last ? scratch.decode(input, size) : zstdDecode(input));
      } else {
        // Frames only numcodecs decodes come back as fresh arrays, after a wait.
        frame = d.codec.decodeFrame(input, scratch, size, last ? want : undefined) ??
          plain(await d.codec.decode(input));
      }
    }
    use(frame);
  };
}

/** Bytes in element order, as a decoded frame. */
function plain(bytes: Uint8Array): DecodedFrame {
  return { bytes, typesize: 1, blocksize: bytes.length };
}

/**
 * A direct reader of the array `meta` describes, or `undefined` when its codecs are not
 * a chain this reader knows (`voco.lorenzo` or not, `bytes` little endian, then any of
 * `blosc`, `zstd`, `crc32c`; optionally inside `sharding_indexed` whose index is `bytes`
 * + `crc32c` at the end), when the platform is big endian, or when its grids do not fit:
 * zarrita's pipeline reads those.
 */
export function directReader(meta: Json, options: DirectReaderOptions): DirectReader | undefined {
  if (!littleEndian) return undefined;
  const { store, valueBytes } = options;
  const base = options.path === "/" ? "" : options.path;
  const layout = chunkLayout(meta, base, valueBytes);
  if (!layout) return undefined;
  const { key, shard, predicted } = layout;
  const size = layout.chunkShape.reduce((x, y) => x * y, 1) * valueBytes;
  const fill = typeof meta.fill_value === "number" ? meta.fill_value : 0;
  // One decoding buffer for every chunk (each is copied out before the next decodes).
  const decode = chunkDecoder(layout.steps, size, new ZstdScratch(options.buffer));
  if (!shard) {
    return {
      predicted,
      async chunk(coords, use, want) {
        const bytes = await store.get(key(coords) as `/${string}`);
        return bytes ? await decode(bytes, use, want) : use({ fill });
      },
    };
  }
  const index = shardIndexes(store, base, shard.count, shard.crc);
  const { grid } = shard;
  return {
    predicted,
    async chunk(coords, use, want) {
      let local = 0;
      const at = coords.map((c, a) => Math.floor(c / grid[a]));
      for (let a = 0; a < coords.length; a++) local = local * grid[a] + coords[a] - at[a] * grid[a];
      const shardKey = key(at);
      const e = (await index(shardKey))?.[local];
      if (!e) return use({ fill });
      const bytes = await store.getRange(shardKey as `/${string}`, {
        offset: e.offset,
        length: e.length,
      });
      return bytes ? await decode(bytes, use, want) : use({ fill });
    },
  };
}

/**
 * The shard indexes of `count` inner chunks, each read once (a failed read is tried
 * again next time): `null` for a shard not stored.
 */
function shardIndexes(
  store: DirectReaderOptions["store"],
  base: string,
  count: number,
  crc: boolean,
): (shardKey: string) => Promise<ShardEntry[] | null> {
  const indexes = new Map<string, Promise<ShardEntry[] | null>>();
  const suffixLength = BYTES_PER_ENTRY * count + (crc ? 4 : 0);
  return (shardKey) => {
    let p = indexes.get(shardKey);
    if (!p) {
      p = store.getRange(shardKey as `/${string}`, { suffixLength }).then((bytes) => {
        if (!bytes) return null;
        if (bytes.length !== suffixLength) {
          const where = `shard index of ${shardKey.slice(base.length + 1)}`;
          throw new DamagedCacheError(`${where}: ${bytes.length} bytes, not ${suffixLength}`, {
            where,
          });
        }
        return crc ? decodeShardIndex(bytes, count) : plainIndex(bytes, count);
      });
      p.catch(() => indexes.delete(shardKey));
      indexes.set(shardKey, p);
    }
    return p;
  };
}

/** A shard index without a checksum, decoded (entries of all ones: not stored). */
function plainIndex(bytes: Uint8Array, count: number): ShardEntry[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: ShardEntry[] = [];
  for (let i = 0; i < count; i++) {
    const o = view.getBigUint64(16 * i, true), n = view.getBigUint64(16 * i + 8, true);
    out.push(
      o === 0xffffffffffffffffn && n === 0xffffffffffffffffn
        ? null
        : { offset: Number(o), length: Number(n) },
    );
  }
  return out;
}
