// The crop reader's own decoding (no zarrita pipeline for the writer's codecs, the
// WebAssembly copy for 16-bit cases): the same numbers as the stored values dequantised,
// in every layout, compressor, Blosc filter and data type, crops read one by one and all
// at once; and the pieces it stands on (range coalescing, the reused zstd decoder).
import { FileSystemStore } from "@zarrita/storage";
import { zstdCompressSync } from "node:zlib";
import { openCase } from "../../../cache/read/read_case.ts";
import { type BloscShuffle, writeCase } from "../../../cache/write/write_case.ts";
import { quantize, storageEncoding } from "../../../cache/format/quantize.ts";
import type { Compressor, Layout } from "../../../cache/format/format.ts";
import type { CaseShape } from "../../../cache/format/case_volume.ts";
import { coalesceRanges } from "../../../cache/store/coalesce.ts";
import { ZstdScratch } from "../../../cache/codecs/zstd.ts";
import { CropMemory } from "../../../cache/read/_crop_wasm.ts";
import { assert, assertEquals, assertRejects, tempDir } from "../../_helpers.ts";
import { testVolume } from "../_caches.ts";

const SHAPE: CaseShape = [37, 29, 23];

Deno.test("openCase().readCrop() returns the stored values dequantised, bit for bit, in every storage", async () => {
  await using dir = await tempDir();
  const store = new FileSystemStore(dir.path);
  const volume = testVolume(SHAPE, 7);
  const settings: [Layout, Compressor, "uint16" | "uint8" | "float32", BloscShuffle?][] = [
    ["sharded", "blosc-zstd", "uint16"],
    ["chunked", "blosc-zstd", "uint16"],
    ["sharded", "blosc-zstd", "uint16", "bitshuffle"],
    ["sharded", "blosc-zstd", "uint16", "noshuffle"],
    ["sharded", "zstd", "uint16"],
    ["sharded", "none", "uint16"],
    ["sharded", "blosc-lz4", "uint16"],
    ["sharded", "blosc-zstd", "uint8"],
    ["chunked", "blosc-zstd", "float32"],
    ["sharded", "lorenzo", "uint16"], // residuals turned back into values, whole chunks
    ["chunked", "lorenzo", "uint8"],
  ];
  let seed = 3;
  const rand = (n: number) => (seed = (seed * 1664525 + 1013904223) >>> 0) % n;
  for (const [i, [layout, compressor, dtype, shuffle]] of settings.entries()) {
    const encoding = storageEncoding(dtype, [0, 1], { windowWidthHu: 425 });
    await writeCase(store, `/c${i}`, volume, {
      encoding,
      chunk: 16, // Blosc blocks of 8 x-slabs: two per chunk, one in the edge chunks
      layout,
      compressor,
      level: compressor === "none" ? 0 : 3,
      shuffle,
    });
    const stored = quantize(volume.data, encoding);
    const value = (v: number) =>
      encoding.scaleFactor === undefined
        ? v
        : Math.fround(v * encoding.scaleFactor + (encoding.addOffset ?? 0));
    const c = await openCase(store, `/c${i}`);
    const boxes = Array.from({ length: 12 }, () => {
      const size = SHAPE.map((n) => 1 + rand(n)) as CaseShape;
      return { start: size.map((s, a) => rand(SHAPE[a] - s + 1)) as CaseShape, size };
    });
    // One by one, then all at once (the boxes share the decoder and the kernel's memory).
    const single = [];
    for (const b of boxes) single.push(await c.readCrop(b.start, b.size));
    const together = await Promise.all(boxes.map((b) => c.readCrop(b.start, b.size)));
    for (const [k, { start, size }] of boxes.entries()) {
      let bad = 0;
      for (let x = 0; x < size[0]; x++) {
        for (let y = 0; y < size[1]; y++) {
          for (let z = 0; z < size[2]; z++) {
            const want = value(
              stored[((start[0] + x) * SHAPE[1] + start[1] + y) * SHAPE[2] + start[2] + z],
            );
            const at = (x * size[1] + y) * size[2] + z;
            if (!Object.is(single[k].data[at], want)) bad++;
            if (!Object.is(together[k].data[at], want)) bad++;
          }
        }
      }
      assertEquals(bad, 0, `${layout} ${compressor} ${dtype} ${shuffle ?? ""}: box ${k}`);
    }
    assertEquals(Array.from((await c.read()).data), Array.from(stored, value));
  }
});

Deno.test("the crop kernel's memory hands out separate regions, reuses freed ones, and shrinks when idle", async () => {
  const m = await CropMemory.create();
  const scratch = m.scratch(1000);
  const a = m.alloc(1000), b = m.alloc(5000);
  assert(a + 1000 <= b || b + 5000 <= a, "regions do not overlap");
  assert(scratch.byteOffset + 1001 <= a || a + 1000 <= scratch.byteOffset, "nor the scratch");
  m.release(a);
  assertEquals(m.alloc(900), a, "a freed region is reused");
  const big = [m.alloc(20e6), m.alloc(20e6)];
  assert(m.buffer.byteLength > 40e6);
  for (const r of [...big, a, b]) m.release(r);
  assert(m.buffer.byteLength <= 65536, `idle: ${m.buffer.byteLength} bytes left`);
  assertEquals(m.scratch(10).length, 11, "and works on");
});

Deno.test("coalesceRanges() reads touching ranges asked for together once, and hands out views", async () => {
  const file = new Uint8Array(100).map((_, i) => i);
  const reads: [number, number][] = [];
  const store = {
    getRange(_key: `/${string}`, range: { offset: number; length: number }) {
      reads.push([range.offset, range.length]);
      const end = Math.min(file.length, range.offset + range.length);
      return Promise.resolve(file.slice(range.offset, end));
    },
  };
  const get = coalesceRanges(store as never);
  const parts = await Promise.all([
    get("/f", { offset: 10, length: 5 }),
    get("/f", { offset: 0, length: 10 }),
    get("/f", { offset: 40, length: 5 }),
    get("/f", { offset: 95, length: 10 }), // past the end: short, as the store answers
  ]);
  assertEquals(reads, [[0, 15], [40, 5], [95, 10]]);
  assertEquals(parts.map((p) => Array.from(p!)), [
    [10, 11, 12, 13, 14],
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [40, 41, 42, 43, 44],
    [95, 96, 97, 98, 99],
  ]);
  reads.length = 0;
  const gap = coalesceRanges(store as never, 30);
  await Promise.all([gap("/f", { offset: 0, length: 5 }), gap("/f", { offset: 30, length: 5 })]);
  assertEquals(reads, [[0, 35]]);
  const failing = coalesceRanges({ getRange: () => Promise.reject(new Error("gone")) } as never);
  await assertRejects(() => failing("/f", { offset: 0, length: 1 }), /gone/);
});

Deno.test("ZstdScratch decodes frames into one buffer, and refuses damaged or mis-sized ones", async () => {
  const z = new ZstdScratch();
  const data = new Uint8Array(5000).map((_, i) => (i * 7) % 251);
  const frame = new Uint8Array(zstdCompressSync(data)); // a copy: Buffer.slice() is a view
  const same = (a: Uint8Array, b: Uint8Array) =>
    a.length === b.length && a.every((v, i) => v === b[i]);
  assert(same(z.decode(frame, data.length), data));
  const other = zstdCompressSync(data.subarray(0, 300));
  const first = z.decode(other, 300);
  assert(same(first, data.subarray(0, 300)));
  await assertRejects(() => Promise.resolve().then(() => z.decode(frame, 4999)), /more than 4999/);
  await assertRejects(() => Promise.resolve().then(() => z.decode(frame, 5001)), /5000 bytes/);
  await assertRejects(
    () => Promise.resolve().then(() => z.decode(frame.subarray(0, frame.length - 3), 5000)),
    /zstd/,
  );
  const garbage = new Uint8Array(frame.length + 4);
  garbage.set(frame);
  await assertRejects(() => Promise.resolve().then(() => z.decode(garbage, 5000)), /zstd/);
  const bad = frame.slice();
  bad[bad.length >> 1] ^= 0xff;
  try {
    const out = z.decode(bad, 5000); // a flipped byte zstd cannot see decodes to others
    assert(out.some((v, i) => v !== data[i]), "zstd decoded a damaged frame unchanged");
  } catch (e) {
    assert(/zstd/.test((e as Error).message), (e as Error).message);
  }
  // After a failure the next frame decodes.
  assert(same(z.decode(frame, data.length), data));
});
