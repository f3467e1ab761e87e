// Tests of writing a case: the chunk codecs (each compressor's level range) and the
// integrity record every case is sealed with.
import { join } from "node:path";
import { FileSystemStore } from "@zarrita/storage";
import { chunkCodecs, writeCase } from "../../../cache/write/write_case.ts";
import { COMPRESSOR_LEVELS } from "../../../cache/format/format.ts";
import { storageEncoding } from "../../../cache/format/quantize.ts";
import { integrityProblems, metadataSha256 } from "../../../cache/format/integrity.ts";
import { assertEquals, assertRejects, tempDir } from "../../_helpers.ts";

const I4 = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]];

const ENC = { dtype: "uint16" } as const;

Deno.test("chunkCodecs() refuses a level outside the compressor's range", async () => {
  assertEquals(COMPRESSOR_LEVELS["blosc-lz4"], [0, 9]);
  assertEquals(chunkCodecs("blosc-zstd", ENC, 9)[1].configuration?.clevel, 9);
  assertEquals(chunkCodecs("zstd", ENC, 22)[1].configuration?.level, 22);
  await assertRejects(
    () => chunkCodecs("blosc-zstd", ENC, 15),
    /level 15 is outside blosc-zstd's range 0\.\.9/,
  );
  await assertRejects(() => chunkCodecs("blosc-lz4", ENC, -1), /outside blosc-lz4's range/);
  await assertRejects(() => chunkCodecs("zstd", ENC, 0), /outside zstd's range 1\.\.22/);
  assertEquals(chunkCodecs("none", ENC, 0).map((c) => c.name), ["bytes", "crc32c"]);
});

Deno.test("writeCase() seals every case: its name, each chunk's checksum, the metadata's digest", async () => {
  await using dir = await tempDir();
  const store = new FileSystemStore(dir.path);
  const v = { data: new Float32Array(20 * 18 * 16).fill(0.5), shape: [20, 18, 16], affine: I4 };
  for (const layout of ["sharded", "chunked"] as const) {
    const n = await writeCase(store, `/ds/${layout}`, v as never, {
      encoding: storageEncoding("uint16", [0, 1]),
      chunk: 8,
      layout,
    });
    const meta = JSON.parse(await Deno.readTextFile(join(dir.path, "ds", layout, "zarr.json")));
    const record = meta.attributes.voco_integrity;
    assertEquals([record.version, record.case, record.chunks_crc32c.length], [
      1,
      `ds/${layout}`,
      8 * n,
    ]);
    assertEquals(record.metadata_sha256, await metadataSha256(meta));
    assertEquals(await integrityProblems(meta, `/ds/${layout}`), []);
    assertEquals(await integrityProblems(meta, "/ds/other"), [
      `it was written as case ds/${layout}, not ds/other (a case folder copied or moved)`,
    ]);
  }
});

Deno.test("writeCase() cuts Blosc frames into 8-slab blocks up to level 3, one block above", async () => {
  await using dir = await tempDir();
  const store = new FileSystemStore(dir.path);
  const data = new Float32Array(16 * 16 * 16).map((_, i) => (Math.sin(i / 9) + 1) / 2);
  const v = { data, shape: [16, 16, 16], affine: I4 };
  for (
    const [level, blocksize] of [[1, 8 * 16 * 16 * 2], [3, 8 * 16 * 16 * 2], [4, 8192], [9, 8192]]
  ) {
    await writeCase(store, `/ds/l${level}`, v as never, {
      encoding: storageEncoding("uint16", [0, 1]),
      chunk: 16,
      layout: "chunked",
      level,
    });
    const frame = await Deno.readFile(join(dir.path, "ds", `l${level}`, "c", "0", "0", "0"));
    const header = new DataView(frame.buffer, frame.byteOffset);
    assertEquals([header.getUint32(4, true), header.getUint32(8, true)], [8192, blocksize]);
    const meta = JSON.parse(
      await Deno.readTextFile(join(dir.path, "ds", `l${level}`, "zarr.json")),
    );
    assertEquals(meta.codecs[1].configuration.clevel, level, "the level as given, in the metadata");
  }
});
