// The Zarr v3 `sharding_indexed` codec, writing side: inner chunks laid end to end in one
// file, then the index (offset and length of each, uint64 little endian) and its CRC-32C.
import { appendCrc32c, checkCrc32c } from "./crc32c.ts";

/** Index entry of an inner chunk that is not stored (both words 2^64 - 1, per the spec). */
export const EMPTY_ENTRY = 0xffffffffffffffffn;

/** Bytes of an encoded shard index of `count` inner chunks: 16 per chunk + the checksum. */
export function shardIndexBytes(count: number): number {
  return 16 * count + 4;
}

/** A Zarr v3 codec entry (`{ name, configuration }`). */
export interface CodecMeta {
  /** Codec name (`bytes`, `blosc`, `crc32c`, `sharding_indexed`). */
  name: string;
  /** Its configuration, when it has one. */
  configuration?: Record<string, unknown>;
}

/**
 * The `sharding_indexed` codec entry of an array whose inner chunks have `innerShape` and
 * are encoded with `innerCodecs`; the index is `bytes` (little endian) + `crc32c`, at the
 * end of the shard.
 */
export function shardingCodec(innerShape: readonly number[], innerCodecs: CodecMeta[]): CodecMeta {
  return {
    name: "sharding_indexed",
    configuration: {
      chunk_shape: [...innerShape],
      codecs: innerCodecs,
      index_codecs: [
        { name: "bytes", configuration: { endian: "little" } },
        { name: "crc32c" },
      ],
      index_location: "end",
    },
  };
}

/**
 * One shard file from its encoded inner chunks, in C order of the shard's inner-chunk
 * grid (`null` for a chunk not stored): the chunks end to end, then the index and its
 * CRC-32C.
 */
export function encodeShard(chunks: readonly (Uint8Array | null)[]): Uint8Array {
  const dataBytes = chunks.reduce((a, c) => a + (c?.length ?? 0), 0);
  const index = new Uint8Array(16 * chunks.length);
  const view = new DataView(index.buffer);
  const out = new Uint8Array(dataBytes + shardIndexBytes(chunks.length));
  let offset = 0;
  chunks.forEach((c, i) => {
    if (c === null) {
      view.setBigUint64(16 * i, EMPTY_ENTRY, true);
      view.setBigUint64(16 * i + 8, EMPTY_ENTRY, true);
      return;
    }
    out.set(c, offset);
    view.setBigUint64(16 * i, BigInt(offset), true);
    view.setBigUint64(16 * i + 8, BigInt(c.length), true);
    offset += c.length;
  });
  out.set(appendCrc32c(index), dataBytes);
  return out;
}

/** Where one inner chunk lies in its shard; `null` when it is not stored. */
export type ShardEntry = { offset: number; length: number } | null;

/**
 * Decodes a shard index of `count` inner chunks (the last {@linkcode shardIndexBytes}
 * bytes of a shard): checks its CRC-32C (throws a `ChecksumError` when it does not match)
 * and that every stored chunk lies inside the `dataBytes` before the index (throws a
 * `RangeError` otherwise).
 */
export function decodeShardIndex(
  bytes: Uint8Array,
  count: number,
  dataBytes = Infinity,
): ShardEntry[] {
  if (bytes.length !== shardIndexBytes(count)) {
    throw new RangeError(
      `Shard index of ${count} chunks takes ${shardIndexBytes(count)} bytes, got ${bytes.length}`,
    );
  }
  const body = checkCrc32c(bytes);
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const out: ShardEntry[] = [];
  for (let i = 0; i < count; i++) {
    const o = view.getBigUint64(16 * i, true), n = view.getBigUint64(16 * i + 8, true);
    if (o === EMPTY_ENTRY && n === EMPTY_ENTRY) {
      out.push(null);
      continue;
    }
    if (o + n > BigInt(Math.min(dataBytes, Number.MAX_SAFE_INTEGER))) {
      throw new RangeError(
        `Shard index: inner chunk ${i} at ${o} + ${n} bytes runs past the chunk data ` +
          `(${dataBytes} bytes)`,
      );
    }
    out.push({ offset: Number(o), length: Number(n) });
  }
  return out;
}

/** Encodes entries back into an index with its CRC-32C (the inverse of the decoder). */
export function encodeShardIndex(entries: readonly ShardEntry[]): Uint8Array {
  const index = new Uint8Array(16 * entries.length);
  const view = new DataView(index.buffer);
  entries.forEach((e, i) => {
    view.setBigUint64(16 * i, e ? BigInt(e.offset) : EMPTY_ENTRY, true);
    view.setBigUint64(16 * i + 8, e ? BigInt(e.length) : EMPTY_ENTRY, true);
  });
  return appendCrc32c(index);
}
