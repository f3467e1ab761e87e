// Tests of sharded cases: the shard file's layout, zarrita reading it, crops that read
// only the inner chunks they touch, and damage named down to the inner chunk.
import * as zarr from "zarrita";
import { join } from "node:path";
import { FileSystemStore } from "@zarrita/storage";
import { writeCase } from "../../../cache/write/write_case.ts";
import { openCase, readCase } from "../../../cache/read/read_case.ts";
import { storageEncoding } from "../../../cache/format/quantize.ts";
import { registerCodecs } from "../../../cache/codecs/register.ts";
import { decodeShardIndex, encodeShard, shardIndexBytes } from "../../../cache/codecs/shard.ts";
import { crc32c } from "../../../cache/codecs/crc32c.ts";
import { makePhantom } from "../../../prep/synthetic/phantom.ts";
import { scaleIntensityRange } from "../../../prep/transforms/window.ts";
import { assert, assertEquals, assertRejects, tempDir } from "../../_helpers.ts";

const ENC = storageEncoding("uint16", [0, 1], { windowWidthHu: 425 });
const volume = () =>
  scaleIntensityRange(makePhantom({ shape: [40, 30, 20] }), { windowHu: [-175, 250] });

Deno.test("encodeShard() lays the chunks end to end, then the index and its crc32c", () => {
  const a = new Uint8Array([1, 2, 3]), b = new Uint8Array([4, 5]);
  const shard = encodeShard([a, null, b]);
  assertEquals(shard.length, 5 + shardIndexBytes(3));
  assertEquals(Array.from(shard.subarray(0, 5)), [1, 2, 3, 4, 5]);
  const index = shard.subarray(5);
  const view = new DataView(index.buffer, index.byteOffset);
  const word = (at: number) => String(view.getBigUint64(at, true));
  assertEquals([word(0), word(8)], ["0", "3"]);
  assertEquals([word(16), word(24)], [String(2n ** 64n - 1n), String(2n ** 64n - 1n)]); // not stored
  assertEquals([word(32), word(40)], ["3", "2"]);
  assertEquals(view.getUint32(48, true), crc32c(index.subarray(0, 48)));
  assertEquals(decodeShardIndex(index, 3, 5), [{ offset: 0, length: 3 }, null, {
    offset: 3,
    length: 2,
  }]);
});

Deno.test("a sharded case is one file that zarrita reads as the chunked one", async () => {
  await using dir = await tempDir();
  const v = volume();
  for (const layout of ["sharded", "chunked"] as const) {
    await writeCase(new FileSystemStore(join(dir.path, layout)), "/", v, {
      encoding: ENC,
      chunk: 16,
      layout,
    });
  }
  const files = await Array.fromAsync(Deno.readDir(join(dir.path, "sharded", "c", "0", "0")));
  assertEquals(files.map((f) => f.name), ["0"]);
  registerCodecs();
  const read = async (layout: string) => {
    const arr = await zarr.open.v3(new FileSystemStore(join(dir.path, layout)), { kind: "array" });
    return await zarr.get(arr, null);
  };
  const [s, c] = [await read("sharded"), await read("chunked")];
  assertEquals(s.shape, [40, 30, 20]);
  assert((s.data as Uint16Array).every((x, i) => x === (c.data as Uint16Array)[i]), "same values");
});

Deno.test("readCrop() of a sharded case reads the index once and only the inner chunks it touches", async () => {
  const store = new Map<string, Uint8Array>();
  await writeCase(store, "/case", volume(), { encoding: ENC, chunk: 16 });
  const ranges: string[] = [];
  const counting = {
    get: (k: `/${string}`) => Promise.resolve(store.get(k)),
    getRange: (
      k: `/${string}`,
      r: { offset: number; length: number } | { suffixLength: number },
    ) => {
      const all = store.get(k)!;
      ranges.push("suffixLength" in r ? "index" : `${r.offset}+${r.length}`);
      return Promise.resolve(
        "suffixLength" in r
          ? all.slice(all.length - r.suffixLength)
          : all.slice(r.offset, r.offset + r.length),
      );
    },
  };
  const c = await openCase(counting, "/case");
  const whole = (await readCase(store, "/case")).data;
  // [2..14) x [17..30) x [3..10): inner chunks x 0, y 1, z 0: one chunk.
  const crop = await c.readCrop([2, 17, 3], [12, 13, 7]);
  assertEquals(ranges.length, 2, ranges.join(", "));
  assertEquals(ranges[0], "index");
  for (let x = 0; x < 12; x++) {
    for (let y = 0; y < 13; y++) {
      for (let z = 0; z < 7; z++) {
        assertEquals(crop.data[(x * 13 + y) * 7 + z], whole[((x + 2) * 30 + y + 17) * 20 + z + 3]);
      }
    }
  }
  ranges.length = 0;
  // Spanning two inner chunks along each axis: 8 reads, the index cached.
  await c.readCrop([10, 10, 10], [10, 10, 10]);
  assertEquals(ranges.length, 8, ranges.join(", "));
});

Deno.test("a damaged or missing inner chunk fails the read naming the case and the chunk", async () => {
  const store = new Map<string, Uint8Array>();
  await writeCase(store, "/ds/a", volume(), {
    encoding: ENC,
    chunk: 16,
    attributes: { fingerprint: "f" },
  });
  const shard = store.get("/ds/a/c/0/0/0")!;
  const entries = decodeShardIndex(shard.subarray(shard.length - shardIndexBytes(12)), 12);
  // Inner chunk [1,0,1] is entry 1*4 + 0*2 + 1 = 5 of the 3 x 2 x 2 grid.
  const damaged = shard.slice();
  damaged[entries[5]!.offset + 20] ^= 0x40;
  store.set("/ds/a/c/0/0/0", damaged);
  const c = await openCase(store, "/ds/a");
  await c.readCrop([0, 0, 0], [16, 16, 16]); // chunk [0,0,0] is sound
  await assertRejects(
    () => c.readCrop([16, 0, 16], [4, 4, 4]),
    /Case \/ds\/a: .*inner chunk \[1,0,1\] of shard c\/0\/0\/0: crc32c mismatch/,
  );
  // The index saying a chunk was never written, in a case written whole.
  entries[5] = null;
  const { encodeShardIndex } = await import("../../../cache/codecs/shard.ts");
  const data = shard.subarray(0, shard.length - shardIndexBytes(12));
  const holed = new Uint8Array(data.length + shardIndexBytes(12));
  holed.set(data);
  holed.set(encodeShardIndex(entries), data.length);
  store.set("/ds/a/c/0/0/0", holed);
  const again = await openCase(store, "/ds/a");
  await assertRejects(
    () => again.read(),
    /Case \/ds\/a: inner chunk \[1,0,1\] of shard c\/0\/0\/0 is missing \(the case was written whole/,
  );
  store.delete("/ds/a/c/0/0/0");
  await assertRejects(() => readCase(store, "/ds/a"), /Case \/ds\/a: shard c\/0\/0\/0 is missing/);
});

Deno.test("a chunk file deleted from a chunked case is damage, not zeros", async () => {
  const store = new Map<string, Uint8Array>();
  await writeCase(store, "/ds/a", volume(), { encoding: ENC, chunk: 16, layout: "chunked" });
  store.delete("/ds/a/c/1/0/1");
  await assertRejects(() => readCase(store, "/ds/a"), /Case \/ds\/a: chunk c\/1\/0\/1 is missing/);
  const bad = store.get("/ds/a/c/0/0/0")!;
  bad[bad.length - 9] ^= 1;
  const c = await openCase(store, "/ds/a");
  await assertRejects(
    () => c.readCrop([0, 0, 0], [2, 2, 2]),
    /Case \/ds\/a: .*chunk c\/0\/0\/0: crc32c mismatch/,
  );
});
