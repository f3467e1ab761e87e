// Tests of the cache codecs against numcodecs and zarrita.
import Blosc from "numcodecs/blosc";
import { constants, zstdCompressSync } from "node:zlib";
import {
  bitshuffleBytes,
  bitunshuffleBytes,
  bloscZstdLevel,
  NativeBloscCodec,
  shuffleBytes,
  unshuffleBytes,
} from "../../../cache/codecs/blosc.ts";
import { NativeZstdCodec, oneFrame, ZstdEncoder, ZstdScratch } from "../../../cache/codecs/zstd.ts";
import { writeCase } from "../../../cache/write/write_case.ts";
import { openCase, readCase } from "../../../cache/read/read_case.ts";
import { storageEncoding } from "../../../cache/format/quantize.ts";
import {
  type Compressor,
  COMPRESSORS,
  type Layout,
  LAYOUTS,
} from "../../../cache/format/format.ts";
import { makePhantom } from "../../../prep/synthetic/phantom.ts";
import { scaleIntensityRange } from "../../../prep/transforms/window.ts";
import { assert, assertEquals, assertRejects } from "../../_helpers.ts";

function sample(n: number): Uint8Array {
  const u = new Uint16Array(n);
  for (let i = 0; i < n; i++) u[i] = (Math.sin(i / 50) * 200 + 200) | (i % 7);
  return new Uint8Array(u.buffer);
}

/** numcodecs' Blosc: c-blosc compiled to WebAssembly, the reference implementation. */
const cBlosc = (typesize: number) =>
  Blosc.fromConfig(
    { cname: "zstd", clevel: 3, shuffle: typesize > 1 ? 1 : 0, blocksize: 0, id: "blosc" } as never,
  );

Deno.test("shuffleBytes() and unshuffleBytes() are inverse, tail included", () => {
  const b = sample(1001).subarray(0, 2001);
  for (const t of [2, 4, 3]) {
    assertEquals(Array.from(unshuffleBytes(shuffleBytes(b, t), t)), Array.from(b));
  }
});

Deno.test("NativeBloscCodec frames decode with c-blosc (numcodecs) and back", async () => {
  for (const typesize of [1, 2, 4]) {
    const bytes = sample(64 * 64 * 16);
    const ours = new NativeBloscCodec({ cname: "zstd", clevel: 3, shuffle: "shuffle", typesize });
    const ref = cBlosc(typesize);
    const frame = await ours.encode(bytes);
    assert(frame.length < bytes.length / 2, "compresses");
    const viaC = await ref.decode(frame) as Uint8Array;
    assertEquals(viaC.length, bytes.length);
    assert(viaC.every((v, i) => v === bytes[i]), `c-blosc decodes typesize ${typesize}`);
    const theirs = await ref.encode(bytes) as Uint8Array;
    const back = await ours.decode(theirs);
    assert(back.every((v, i) => v === bytes[i]), `we decode c-blosc typesize ${typesize}`);
  }
});

Deno.test("bitshuffled NativeBloscCodec frames are c-blosc's bit for bit, both ways", async () => {
  // The definition: row 8j + b holds bit b of byte j of every element (element i at bit
  // i % 8 of byte i / 8); blocks of other than a multiple of 8 elements stay as they are.
  const naive = (a: Uint8Array, t: number) => {
    const n = Math.floor(a.length / t), out = a.slice();
    if (n % 8) return out;
    out.fill(0, 0, n * t);
    for (let j = 0; j < t; j++) {
      for (let b = 0; b < 8; b++) {
        for (let i = 0; i < n; i++) {
          if ((a[i * t + j] >> b) & 1) out[(j * 8 + b) * (n / 8) + (i >> 3)] |= 1 << (i & 7);
        }
      }
    }
    return out;
  };
  const odd = sample(1000).subarray(0, 1999);
  for (const t of [1, 2, 3, 4]) {
    for (const len of [0, 16, 120, 1999]) {
      const b = odd.subarray(0, len);
      assertEquals(Array.from(bitshuffleBytes(b, t)), Array.from(naive(b, t)), `t ${t} len ${len}`);
      assertEquals(Array.from(bitunshuffleBytes(bitshuffleBytes(b, t), t)), Array.from(b));
    }
  }
  for (const typesize of [1, 2, 4]) {
    for (const n of [64 * 64 * 16, 1000 * typesize + 3]) {
      const bytes = sample(n).subarray(0, n);
      const ours = new NativeBloscCodec({
        cname: "zstd",
        clevel: 3,
        shuffle: "bitshuffle",
        typesize,
      });
      const frame = await ours.encode(bytes);
      assertEquals(frame[2] & 0x07, 0x04, "the bitshuffle flag, alone");
      const ref = Blosc.fromConfig(
        { cname: "zstd", clevel: 3, shuffle: 2, blocksize: 0, id: "blosc" } as never,
      );
      const viaC = await ref.decode(frame) as Uint8Array;
      assert(viaC.every((v, i) => v === bytes[i]), `c-blosc decodes typesize ${typesize}, ${n} B`);
      const theirs = await ref.encode(bytes) as Uint8Array;
      const back = await ours.decode(theirs);
      assert(
        back.every((v, i) => v === bytes[i]),
        `we decode c-blosc typesize ${typesize}, ${n} B`,
      );
    }
  }
});

Deno.test("NativeBloscCodec frames of several blocks are c-blosc's, and decode in part", async () => {
  const bytes = sample(64 * 64 * 16).subarray(0, 64 * 64 * 16 * 2 - 6); // a short last block
  for (const shuffle of ["shuffle", "bitshuffle", "noshuffle"] as const) {
    const codec = new NativeBloscCodec(
      { cname: "zstd", clevel: 3, shuffle, typesize: 2 },
      { blockBytes: 4096 },
    );
    const frame = await codec.encode(bytes);
    assertEquals(new DataView(frame.buffer).getUint32(8, true), 4096, "the block size");
    const viaC = await cBlosc(2).decode(frame) as Uint8Array;
    assert(viaC.every((v, i) => v === bytes[i]), `c-blosc decodes ${shuffle}`);
    assert((await codec.decode(frame)).every((v, i) => v === bytes[i]), `we decode ${shuffle}`);
  }
  // Only the blocks holding the wanted bytes are decoded; each is shuffled on its own.
  const codec = new NativeBloscCodec({ cname: "zstd", typesize: 2 }, { blockBytes: 4096 });
  const frame = await codec.encode(bytes);
  const part = codec.decodeFrame(frame, new ZstdScratch(), bytes.length, [5000, 9000])!;
  assertEquals([part.typesize, part.blocksize, part.bytes.length], [2, 4096, bytes.length]);
  const block1 = unshuffleBytes(part.bytes.subarray(4096, 8192), 2);
  assert(block1.every((v, i) => v === bytes[4096 + i]), "block 1, unshuffled on its own");
  const block2 = unshuffleBytes(part.bytes.subarray(8192, 12288), 2);
  assert(block2.every((v, i) => v === bytes[8192 + i]), "block 2");
});

Deno.test("ZstdEncoder's frames, from one kept compressor, decode with numcodecs' zstd", async () => {
  const { default: Zstd } = await import("numcodecs/zstd");
  const ref = Zstd.fromConfig({ level: 3, id: "zstd" } as never);
  const encoder = new ZstdEncoder(3);
  for (const n of [0, 1, 100, 70000, 300000]) {
    const bytes = sample(Math.ceil(n / 2)).subarray(0, n);
    const frame = encoder.encode(bytes);
    const back = await ref.decode(frame, new Uint8Array(n) as never) as Uint8Array;
    assertEquals(back.length, n);
    assert(back.every((v, i) => v === bytes[i]), `${n} bytes`);
    const oneShot = zstdCompressSync(bytes).length;
    assert(frame.length <= oneShot * 1.01 + 16, `as small as one-shot zstd: ${frame.length}`);
  }
  const noise = crypto.getRandomValues(new Uint8Array(50000)); // incompressible
  const frame = encoder.encode(noise);
  assert((await ref.decode(frame) as Uint8Array).every((v, i) => v === noise[i]));
});

Deno.test("ZstdEncoder pledges the size of large inputs: the frames of c-blosc's ZSTD_compress", () => {
  // A kept compressor forgets a pledged size when reset, and zstd then picks parameters
  // for an unknown size: larger frames at every level but the highest.
  const bytes = sample(48 * 48 * 48); // a 48³ uint16 chunk
  for (const level of [3, 15]) {
    const frame = new ZstdEncoder(level).encode(bytes);
    const pledged = zstdCompressSync(bytes, {
      params: { [constants.ZSTD_c_compressionLevel]: level },
      pledgedSrcSize: bytes.length,
    } as never);
    assertEquals(frame.length, oneFrame(new Uint8Array(pledged)).length, `level ${level}`);
    assert((frame[4] & 0xc0) !== 0, "the frame header records the content size");
  }
});

Deno.test("Blosc clevel means c-blosc's zstd level: 2 x clevel - 1, 22 for 9, stored for 0", async () => {
  assertEquals([0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map(bloscZstdLevel), [
    0,
    1,
    3,
    5,
    7,
    9,
    11,
    13,
    15,
    22,
  ]);
  for (const bad of [-1, 10, 2.5]) {
    let threw = false;
    try {
      bloscZstdLevel(bad);
    } catch {
      threw = true;
    }
    assert(threw, `clevel ${bad} refused`);
  }
  const bytes = sample(48 * 48 * 48);
  for (const clevel of [1, 3, 9]) {
    const frame = await new NativeBloscCodec({ cname: "zstd", clevel, typesize: 2 }).encode(bytes);
    // One block: 16-byte header, one block start, then the block's length and zstd stream.
    const stream = frame.subarray(16 + 4 + 4);
    const expected = new ZstdEncoder(bloscZstdLevel(clevel)).encode(shuffleBytes(bytes, 2));
    assertEquals(stream.length, expected.length, `clevel ${clevel}`);
    assert(stream.every((v, i) => v === expected[i]), `clevel ${clevel}: zstd level's bytes`);
    const viaC = await cBlosc(2).decode(frame) as Uint8Array;
    assert(viaC.every((v, i) => v === bytes[i]), `c-blosc decodes clevel ${clevel}`);
  }
  const stored = await new NativeBloscCodec({ cname: "zstd", clevel: 0, typesize: 2 }).encode(
    bytes,
  );
  assertEquals([stored.length, stored[2] & 0x02], [bytes.length + 16, 0x02], "memcpyed at 0");
  assert((await cBlosc(2).decode(stored) as Uint8Array).every((v, i) => v === bytes[i]));
});

Deno.test("NativeBloscCodec stores incompressible data as a memcpyed frame", async () => {
  const rnd = crypto.getRandomValues(new Uint8Array(5000));
  const frame = await new NativeBloscCodec({ typesize: 2 }).encode(rnd);
  assertEquals(frame.length, rnd.length + 16);
  const viaC = await cBlosc(2).decode(frame) as Uint8Array;
  assert(viaC.every((v, i) => v === rnd[i]));
});

Deno.test("NativeZstdCodec round-trips and emits standard zstd frames", async () => {
  const bytes = sample(10000);
  const codec = new NativeZstdCodec({ level: 3 });
  const frame = codec.encode(bytes);
  assertEquals(Array.from(frame.subarray(0, 4)), [0x28, 0xb5, 0x2f, 0xfd]);
  const { default: Zstd } = await import("numcodecs/zstd");
  const viaWasm = await Zstd.fromConfig({ level: 3, id: "zstd" } as never).decode(
    frame,
  ) as Uint8Array;
  assert(viaWasm.every((v, i) => v === bytes[i]));
  assert(codec.decode(frame).every((v, i) => v === bytes[i]));
});

/**
 * The Frame_Content_Size of a zstd frame's header (RFC 8878, 3.1.1.1), or undefined when
 * the header leaves it out.
 */
function zstdContentSize(frame: Uint8Array): number | undefined {
  assertEquals(Array.from(frame.subarray(0, 4)), [0x28, 0xb5, 0x2f, 0xfd]);
  const fhd = frame[4];
  const single = (fhd >> 5) & 1;
  const fcsBytes = [single ? 1 : 0, 2, 4, 8][fhd >> 6];
  if (fcsBytes === 0) return undefined;
  const at = 5 + (single ? 0 : 1) + [0, 1, 2, 4][fhd & 3];
  let n = 0;
  for (let i = fcsBytes - 1; i >= 0; i--) n = n * 256 + frame[at + i];
  return fcsBytes === 2 ? n + 256 : n;
}

Deno.test("zstd chunks record their decoded size (numcodecs < 0.16.2 cannot decode without)", async () => {
  // zarr-python decodes the zstd codec with numcodecs' Zstd, which before 0.16.2 raised
  // "Zstd decompression error: invalid input data" on a frame without Frame_Content_Size.
  for (const n of [100, 300, 10000, 48 * 48 * 48 * 2]) {
    const bytes = sample(Math.ceil(n / 2)).subarray(0, n);
    assertEquals(zstdContentSize(new NativeZstdCodec({ level: 3 }).encode(bytes)), n);
  }
  // Chunks written before, without the size, still decode.
  const raw = sample(5000), old = zstdCompressSync(raw);
  assertEquals(zstdContentSize(old), undefined);
  assert(new NativeZstdCodec().decode(old).every((v, i) => v === raw[i]));
  // Through the writer: every inner chunk of a zstd shard, and every chunk of a chunked case.
  const v = scaleIntensityRange(makePhantom({ shape: [20, 18, 10] }), { windowHu: [-175, 250] });
  const encoding = storageEncoding("uint16", [0, 1], { windowWidthHu: 425 });
  for (const layout of LAYOUTS) {
    const store = new Map<string, Uint8Array>();
    await writeCase(store, "/case", v, { encoding, chunk: 8, compressor: "zstd", layout });
    const frames = layout === "chunked"
      ? [...store].filter(([k]) => k.includes("/c/")).map(([, b]) => b.subarray(0, -4))
      : shardChunks(store.get("/case/c/0/0/0")!, 3 * 3 * 2);
    assertEquals(frames.length, 18);
    for (const f of frames) assertEquals(zstdContentSize(f), 8 * 8 * 8 * 2, layout);
  }
});

/** The bytes of the zstd frame at the start of `bytes`, walked block by block (RFC 8878). */
function zstdFrameLength(bytes: Uint8Array): number {
  assertEquals(Array.from(bytes.subarray(0, 4)), [0x28, 0xb5, 0x2f, 0xfd]);
  const fhd = bytes[4];
  const single = (fhd >> 5) & 1;
  const fcsBytes = [single ? 1 : 0, 2, 4, 8][fhd >> 6];
  let at = 5 + (single ? 0 : 1) + [0, 1, 2, 4][fhd & 3] + fcsBytes;
  for (;;) {
    const header = bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16);
    const type = (header >> 1) & 3, size = header >>> 3;
    at += 3 + (type === 1 ? 1 : size); // an RLE block stores one byte
    if (header & 1) break;
  }
  return at + ((fhd >> 2) & 1 ? 4 : 0);
}

Deno.test("zstd chunks are one frame, nothing after it (tensorstore refuses a trailing frame)", () => {
  // Deno's zstdCompressSync follows the frame with an empty one for some sizes, 64 KiB and
  // a 48³ uint16 chunk among them; tensorstore then says "End of data expected".
  const codec = new NativeZstdCodec({ level: 3 }), kept = new ZstdEncoder(3);
  for (const n of [1000, 65536, 100000, 131072, 200000, 48 * 48 * 48 * 2]) {
    const bytes = sample(Math.ceil(n / 2)).subarray(0, n).map((v) => v & 15);
    for (const frame of [codec.encode(bytes), kept.encode(bytes)]) {
      assertEquals(zstdFrameLength(frame), frame.length, `${n} bytes`);
      assert(codec.decode(frame, n).every((v, i) => v === bytes[i]));
    }
  }
  const empty = [0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x00, 0x01, 0x00, 0x00];
  const frame = codec.encode(sample(500));
  const padded = new Uint8Array([...frame, ...empty, ...empty]);
  assertEquals(oneFrame(padded), frame);
  assertEquals(oneFrame(new Uint8Array(empty)).length, empty.length, "a lone empty frame stays");
});

/** The inner chunks of a shard of `count` chunks, their CRC-32C dropped. */
function shardChunks(shard: Uint8Array, count: number): Uint8Array[] {
  const index = new DataView(shard.buffer, shard.byteOffset + shard.length - 4 - 16 * count);
  return Array.from({ length: count }, (_, i) => {
    const o = Number(index.getBigUint64(16 * i, true));
    const n = Number(index.getBigUint64(16 * i + 8, true));
    return shard.subarray(o, o + n - 4);
  });
}

Deno.test("writeCase() and readCase() round-trip within half a quantisation step", async () => {
  const v = scaleIntensityRange(makePhantom({ shape: [40, 30, 20] }), { windowHu: [-175, 250] });
  for (const [dtype, tol] of [["uint16", 1.2e-3], ["uint8", 2e-3], ["float32", 0]] as const) {
    for (const [compressor, layout] of COMPRESSORS.flatMap((c) => LAYOUTS.map((l) => [c, l]))) {
      const store = new Map<string, Uint8Array>();
      const enc = storageEncoding(dtype, [0, 1], { windowWidthHu: 425 });
      if (compressor === "lorenzo" && dtype === "float32") {
        // The prediction works on integer levels: float32 is refused, never stored.
        await assertRejects(
          () =>
            writeCase(store, "/case", v, { encoding: enc, compressor, layout: layout as Layout }),
          /stores uint16 or uint8/,
        );
        assertEquals(store.size, 0);
        continue;
      }
      await writeCase(store, "/case", v, {
        encoding: enc,
        chunk: 16,
        compressor: compressor as Compressor,
        layout: layout as Layout,
      });
      const meta = JSON.parse(new TextDecoder().decode(store.get("/case/zarr.json")));
      assertEquals(meta.shape, [40, 30, 20]);
      if (layout === "chunked") {
        assertEquals(meta.chunk_grid.configuration.chunk_shape, [16, 16, 16]);
      } else {
        // One shard of whole inner chunks; 3 x 2 x 2 inner chunks of 16^3.
        assertEquals(meta.chunk_grid.configuration.chunk_shape, [48, 32, 32]);
        assertEquals(meta.codecs[0].configuration.chunk_shape, [16, 16, 16]);
        assertEquals([...store.keys()].sort(), ["/case/c/0/0/0", "/case/zarr.json"]);
      }
      assertEquals(meta.attributes.stored_chunks, 12);
      assertEquals(meta.data_type, dtype);
      const back = await readCase(store, "/case");
      let m = 0;
      for (let i = 0; i < v.data.length; i++) m = Math.max(m, Math.abs(back.data[i] - v.data[i]));
      assert(m <= tol, `${dtype}/${compressor}: max error ${m} > ${tol}`);
      if (dtype === "uint16") assertEquals(meta.attributes.scale_factor, 1 / 425);
    }
  }
});

Deno.test("openCase().readCrop() reads a box of the case with its moved affine", async () => {
  const v = scaleIntensityRange(makePhantom({ shape: [40, 30, 20] }), { windowHu: [-175, 250] });
  const affine = [[0, 0, 1.5, -10], [0, -2, 0, 20], [1.25, 0, 0, 5], [0, 0, 0, 1]];
  const store = new Map<string, Uint8Array>();
  const encoding = storageEncoding("uint16", [0, 1], { windowWidthHu: 425 });
  await writeCase(store, "/case", v, { encoding, chunk: 16, attributes: { affine } });
  const c = await openCase(store, "/case");
  assertEquals(c.shape, [40, 30, 20]);
  const whole = await c.read();
  const start = [7, 13, 2] as [number, number, number], size = [20, 17, 18] as typeof start;
  const crop = await c.readCrop(start, size);
  assertEquals(crop.shape, size);
  for (let x = 0; x < size[0]; x++) {
    for (let y = 0; y < size[1]; y++) {
      for (let z = 0; z < size[2]; z++) {
        const a = crop.data[(x * size[1] + y) * size[2] + z];
        const b = whole.data[((x + start[0]) * 30 + y + start[1]) * 20 + z + start[2]];
        if (a !== b) throw new Error(`voxel ${[x, y, z]}: ${a} != ${b}`);
      }
    }
  }
  // The crop's voxel 0 is the case's voxel `start`, in world coordinates.
  assertEquals(crop.affine.map((r) => r[3]), [-10 + 1.5 * 2, 20 - 2 * 13, 5 + 1.25 * 7, 1]);
  await assertRejects(
    () => c.readCrop([30, 0, 0], [16, 16, 16]),
    /Case \/case: crop at \[30,0,0\]/,
  );
  await assertRejects(() => c.readCrop([0, 0, 0], [0, 16, 16]), /leaves the array/);
});

Deno.test("blosc-lz4 chunks are c-blosc frames (lz4, shuffled) that c-blosc decodes", async () => {
  const bytes = sample(64 * 64 * 16);
  const frame = await new NativeBloscCodec({ cname: "lz4", clevel: 5, typesize: 2 }).encode(bytes);
  assertEquals(frame[2] >> 5, 1, "compressor field: lz4"); // Blosc format code 1 = lz4
  assert((frame[2] & 1) === 1, "byte shuffle");
  assert(frame.length < bytes.length / 2, "compresses");
  const viaC = await cBlosc(2).decode(frame) as Uint8Array;
  assert(viaC.every((v, i) => v === bytes[i]));
});
