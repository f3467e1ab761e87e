// Tests of the `voco.lorenzo` prediction: exact round trips at any values, the running
// sums that undo it, and whole lorenzo caches written, read, cropped, verified and
// refused where they cannot hold the values.
import { join } from "node:path";
import { FileSystemStore } from "@zarrita/storage";
import {
  LorenzoCodec,
  lorenzoDecode,
  lorenzoDecodeBytes,
  lorenzoEncode,
} from "../../../cache/codecs/lorenzo.ts";
import { shuffleBytes } from "../../../cache/codecs/blosc.ts";
import { chunkCodecs, writeCase } from "../../../cache/write/write_case.ts";
import { readCase } from "../../../cache/read/read_case.ts";
import { CacheReader } from "../../../cache/read/cache_reader.ts";
import { quantize, storageEncoding } from "../../../cache/format/quantize.ts";
import { registerCodecs } from "../../../cache/codecs/register.ts";
import * as zarr from "zarrita";
import { ensureDataset, initCache } from "../../../cache/write/cache_dir.ts";
import { verifyCache } from "../../../cache/inspect/verify.ts";
import { main as prepMain } from "../../../tasks/prep.ts";
import { writePhantoms } from "../../tasks/_run.ts";
import { testVolume } from "../_caches.ts";
import { exitCodeOf } from "../../../cli/run.ts";
import { assert, assertEquals, assertRejects, runTask, tempDir } from "../../_helpers.ts";

/** Seeded uint32s. */
function rand(seed: number): () => number {
  let s = seed;
  return () => (s = (s * 1664525 + 1013904223) >>> 0);
}

/** Three running sums, one along each axis, modulo 2^bits: the inverse by definition. */
function runningSums(r: Uint16Array | Uint8Array, shape: number[]): number[] {
  const [nx, ny, nz] = shape, mask = (1 << (r.BYTES_PER_ELEMENT * 8)) - 1;
  const v = Array.from(r, (u) => (u >>> 1) ^ -(u & 1));
  const at = (x: number, y: number, z: number) => (x * ny + y) * nz + z;
  for (let x = 0; x < nx; x++) {
    for (let y = 0; y < ny; y++) {
      for (let z = 0; z < nz; z++) {
        if (z > 0) v[at(x, y, z)] += v[at(x, y, z - 1)];
      }
    }
  }
  for (let x = 0; x < nx; x++) {
    for (let y = 1; y < ny; y++) for (let z = 0; z < nz; z++) v[at(x, y, z)] += v[at(x, y - 1, z)];
  }
  for (let x = 1; x < nx; x++) {
    for (let y = 0; y < ny; y++) for (let z = 0; z < nz; z++) v[at(x, y, z)] += v[at(x - 1, y, z)];
  }
  return v.map((x) => ((x % (mask + 1)) + mask + 1) & mask);
}

Deno.test("lorenzoEncode() and lorenzoDecode() round-trip any values, and the sums undo it", () => {
  const next = rand(3);
  const shapes = [[1, 1, 1], [1, 7, 1], [5, 1, 9], [4, 6, 3], [16, 16, 16], [3, 48, 5]];
  for (const shape of shapes) {
    const n = shape[0] * shape[1] * shape[2];
    const cases: (Uint16Array | Uint8Array)[] = [
      new Uint16Array(n).map(() => next() & 0xffff), // all 16 bits
      new Uint16Array(n).map((_, i) => (i % 2 ? 65535 : 0)), // the largest jumps
      new Uint16Array(n).map(() => next() % 426), // the default's 1-HU levels
      new Uint8Array(n).map(() => next() & 0xff),
      new Uint8Array(n).map((_, i) => (i % 3 ? 255 : 0)),
    ];
    for (const values of cases) {
      const r = lorenzoEncode(values, shape);
      assertEquals(r.constructor, values.constructor);
      assertEquals(runningSums(r, shape), Array.from(values), `sums, ${shape}`);
      const back = lorenzoDecode(r.slice(), shape);
      assert(
        back.every((v, i) => v === values[i]),
        `round trip ${shape} ${values.constructor.name}`,
      );
      // From the decoded bytes: in element order, and (16-bit) byte-shuffled in blocks.
      const bytes = new Uint8Array(r.buffer, r.byteOffset, r.byteLength);
      const out = () => new (values.constructor as new (n: number) => typeof values)(n);
      const plain = lorenzoDecodeBytes(bytes, 1, bytes.length, out(), shape);
      assert(plain.every((v, i) => v === values[i]), `from bytes ${shape}`);
      if (values instanceof Uint16Array) {
        for (const blocksize of [bytes.length, 2 * (1 + (n >> 2)), 6]) {
          const shuffled = new Uint8Array(bytes.length);
          for (let at = 0; at < bytes.length; at += blocksize) {
            const block = bytes.subarray(at, Math.min(bytes.length, at + blocksize));
            shuffled.set(shuffleBytes(block, 2), at);
          }
          const got = lorenzoDecodeBytes(shuffled, 2, blocksize, out(), shape);
          assert(got.every((v, i) => v === values[i]), `shuffled in ${blocksize}-byte blocks`);
        }
      }
    }
  }
});

Deno.test("a smooth chunk leaves residuals only on its first faces", () => {
  // Any v = a + bx + cy + dz + exy + fxz + gyz has zero third differences inside.
  const shape = [8, 9, 10];
  const v = new Uint16Array(8 * 9 * 10).map((_, i) => {
    const x = Math.floor(i / 90), y = Math.floor(i / 10) % 9, z = i % 10;
    return 3 * x + 5 * y + 7 * z + 11 + 2 * x * y + x * z + 4 * y * z;
  });
  const r = lorenzoEncode(v, shape);
  let inside = 0;
  for (let x = 1; x < 8; x++) {
    for (let y = 1; y < 9; y++) {
      for (let z = 1; z < 10; z++) {
        inside += r[(x * 9 + y) * 10 + z] ? 0 : 1;
      }
    }
  }
  assertEquals(inside, 7 * 8 * 9, "products of two axes too are predicted exactly inside");
  assert(r.slice(0, 10).some((x) => x !== 0), "the first row holds the values' steps");
});

Deno.test("LorenzoCodec and the writer refuse what they cannot store exactly", async () => {
  const codec = LorenzoCodec.fromConfig();
  const chunk = { data: new Uint16Array(24), shape: [2, 3, 4], stride: [12, 4, 1] };
  assertEquals(
    Array.from(codec.decode(codec.encode(chunk)).data as Uint16Array),
    new Array(24).fill(0),
  );
  let threw = "";
  try {
    codec.decode({ ...chunk, stride: [1, 2, 6] }); // F order
  } catch (e) {
    threw = String(e);
  }
  assert(/C-order/.test(threw), threw);
  await assertRejects(
    () => chunkCodecs("lorenzo", { dtype: "float32" }, 3),
    /lorenzo compressor stores uint16 or uint8/,
  );
  assertEquals(chunkCodecs("lorenzo", { dtype: "uint16" }, 3).map((c) => c.name), [
    "voco.lorenzo",
    "bytes",
    "blosc",
    "crc32c",
  ]);
});

Deno.test("lorenzo cases read, crop and verify to the same values as blosc-zstd ones", async () => {
  await using dir = await tempDir();
  const root = join(dir.path, "c.zarr");
  await initCache(root);
  await ensureDataset(root, "ds");
  const store = new FileSystemStore(root);
  const volume = testVolume([70, 45, 38], 9);
  for (const dtype of ["uint16", "uint8"] as const) {
    for (const layout of ["sharded", "chunked"] as const) {
      for (const compressor of ["blosc-zstd", "lorenzo"] as const) {
        await writeCase(store, `/ds/${dtype}-${layout}-${compressor}`, volume, {
          encoding: storageEncoding(dtype, [0, 1], { windowWidthHu: 425 }),
          layout,
          compressor,
          chunk: 16,
        });
      }
      const name = `ds/${dtype}-${layout}`;
      const a = await readCase(store, `/${name}-blosc-zstd`);
      const b = await readCase(store, `/${name}-lorenzo`);
      assert(a.data.every((v, i) => v === b.data[i]), `${name}: the same values`);
    }
  }
  // zarrita's own pipeline, through the registered codec, reads the same values.
  registerCodecs();
  for (const layout of ["sharded", "chunked"]) {
    const arr = await zarr.open(zarr.root(store).resolve(`ds/uint16-${layout}-lorenzo`), {
      kind: "array",
    });
    const got = await zarr.get(arr);
    const want = quantize(volume.data, storageEncoding("uint16", [0, 1], { windowWidthHu: 425 }));
    assertEquals(Array.from(got.data as Uint16Array), Array.from(want), `zarrita, ${layout}`);
  }
  const reader = await CacheReader.open(root);
  for (const [start, size] of [[[5, 3, 2], [40, 30, 20]], [[-4, 40, 30], [16, 16, 16]]] as const) {
    const a = await reader.readCrop("ds/uint16-sharded-blosc-zstd", [...start], [...size]);
    const b = await reader.readCrop("ds/uint16-sharded-lorenzo", [...start], [...size]);
    assert(a.data.every((v, i) => v === b.data[i]), `crop at ${start}`);
  }
});

Deno.test("prep --compressor lorenzo: a smaller cache, sound to verify, damage found; float32 refused", async () => {
  await using dir = await tempDir();
  const inputs = join(dir.path, "in");
  await writePhantoms(inputs, 2, [60, 50, 40]);
  const outs: Record<string, string> = {};
  for (const compressor of ["blosc-zstd", "lorenzo"]) {
    const out = outs[compressor] = join(dir.path, `${compressor}.zarr`);
    const r = await runTask(prepMain, [
      inputs,
      "--out",
      out,
      "--quiet",
      "--dataset-name",
      "ds",
      "--compressor",
      compressor,
    ]);
    assertEquals(r.code, 0, r.text);
  }
  const a = await readCase(new FileSystemStore(outs["blosc-zstd"]), "/ds/case0");
  const b = await readCase(new FileSystemStore(outs.lorenzo), "/ds/case0");
  assert(a.data.every((v, i) => v === b.data[i]), "the same values");
  const size = async (out: string) =>
    (await Deno.stat(join(out, "ds", "case0", "c", "0", "0", "0"))).size;
  const [plain, predicted] = [await size(outs["blosc-zstd"]), await size(outs.lorenzo)];
  assert(predicted < plain * 0.9, `lorenzo ${predicted} B against blosc-zstd's ${plain} B`);
  const sound = await verifyCache(outs.lorenzo);
  assertEquals(sound.checks.filter((c) => c.problems.length), []);
  const shard = join(outs.lorenzo, "ds", "case0", "c", "0", "0", "0");
  const bytes = await Deno.readFile(shard);
  bytes[1000] ^= 0x20;
  await Deno.writeFile(shard, bytes);
  const damaged = await verifyCache(outs.lorenzo);
  const broken = damaged.checks.filter((c) => c.problems.length);
  assertEquals(broken.map((c) => c.name), ["case0"]);
  assert(/crc32c mismatch/.test(broken[0].problems.join(" ")), broken[0].problems.join(" "));
  const refused = await assertRejects(
    () =>
      prepMain([
        inputs,
        "--out",
        join(dir.path, "f.zarr"),
        "--compressor",
        "lorenzo",
        "--dtype",
        "float32",
      ]),
    /predicts integer levels/,
  );
  assertEquals(exitCodeOf(refused), 2, "nothing done: exit 2");
  assert(!(await Deno.stat(join(dir.path, "f.zarr")).then(() => true, () => false)), "no folder");
});
