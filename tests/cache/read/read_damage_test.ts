// Reads of damaged cases: never other numbers, and errors that name the case, the chunk
// and the reason in words (no "position out of range", no failed allocation).
import { join } from "node:path";
import { FileSystemStore } from "@zarrita/storage";
import { CacheReader } from "../../../cache/read/cache_reader.ts";
import { openCase, readCase } from "../../../cache/read/read_case.ts";
import { writeCase } from "../../../cache/write/write_case.ts";
import { DamagedCacheError } from "../../../cache/errors.ts";
import { assert, assertEquals, assertRejects, tempDir } from "../../_helpers.ts";
import { ENCODING, testVolume, writeShardedCase, writeTestCache } from "../_caches.ts";

const INTERNAL = /"position"|allocation failed|Cannot read|undefined/;

/** Asserts that every reader refuses case `name` of `root` with damage matching `pattern`. */
async function refusedEverywhere(root: string, name: string, pattern: RegExp): Promise<void> {
  const store = new FileSystemStore(root);
  const reader = await CacheReader.open(root);
  for (
    const read of [
      () => readCase(store, `/${name}`),
      async () => (await openCase(store, `/${name}`)).readCrop([0, 0, 0], [8, 8, 8]),
      () => reader.readCrop(name, [-4, 0, 0], [16, 16, 16]),
    ]
  ) {
    const e = await assertRejects(read, pattern);
    assert(e instanceof DamagedCacheError, `${e.name}: ${e.message}`);
    assert(e.message.includes(name.split("/")[1]), e.message);
    assert(!INTERNAL.test(e.message), e.message);
  }
}

Deno.test("a shard cut to 0 bytes, or short of its index checksum, is named in words", async () => {
  await using dir = await tempDir();
  const root = join(dir.path, "c.zarr");
  await writeTestCache(root);
  const shard = join(root, "ds", "a", "c", "0", "0", "0");
  const bytes = await Deno.readFile(shard);
  await Deno.writeFile(shard, new Uint8Array(0));
  await refusedEverywhere(root, "ds/a", /shard c\/0\/0\/0: .*shorter than its index.*truncated/);
  await Deno.writeFile(shard, bytes.subarray(0, bytes.length - 4));
  await refusedEverywhere(root, "ds/a", /shard index of c\/0\/0\/0: crc32c mismatch/);
});

Deno.test("an index without a checksum that points far away is damage, not a huge allocation", async () => {
  await using dir = await tempDir();
  const root = join(dir.path, "c.zarr");
  await writeTestCache(root);
  // A sharded array as other writers make it: its index has no crc32c.
  await writeShardedCase(root, "ds/old", testVolume([20, 20, 20]), [8, 8, 8]);
  const shard = join(root, "ds", "old", "c", "0", "0", "0");
  const bytes = await Deno.readFile(shard);
  // The length of inner chunk 0 made enormous (byte 13 of the 16-byte entry's length).
  bytes[bytes.length - 27 * 16 + 13] = 0x7f;
  await Deno.writeFile(shard, bytes);
  const e = await assertRejects(
    () => readCase(new FileSystemStore(root), "/ds/old"),
    /Case \/ds\/old: shard index of c\/0\/0\/0: inner chunk \[0,0,0\] is said to take \d+ bytes/,
  );
  assert(e instanceof DamagedCacheError && !INTERNAL.test(e.message), e.message);
});

Deno.test("a data_type edited in a case without integrity record fails on decoded sizes, not NaN", async () => {
  await using dir = await tempDir();
  const root = join(dir.path, "c.zarr");
  const store = new FileSystemStore(root);
  await writeCase(store, "/ds/a", testVolume([20, 18, 16]), { encoding: ENCODING, chunk: 8 });
  const path = join(root, "ds", "a", "zarr.json");
  const meta = JSON.parse(await Deno.readTextFile(path));
  delete meta.attributes.voco_integrity; // as written before records
  await Deno.writeTextFile(path, JSON.stringify({ ...meta, data_type: "float32" }));
  await assertRejects(
    () => readCase(store, "/ds/a"),
    /Case \/ds\/a: chunk \[\d,\d,\d\] decodes to 256 values of Float32Array, not 512 of float32/,
  );
  // With its record, the edit is seen before any chunk is read.
  await writeCase(store, "/ds/b", testVolume([20, 18, 16]), { encoding: ENCODING, chunk: 8 });
  const pathB = join(root, "ds", "b", "zarr.json");
  const metaB = JSON.parse(await Deno.readTextFile(pathB));
  await Deno.writeTextFile(pathB, JSON.stringify({ ...metaB, data_type: "int16" }));
  await assertRejects(
    () => readCase(store, "/ds/b"),
    /Case \/ds\/b: zarr\.json: its metadata does not match the metadata_sha256/,
  );
});

Deno.test("a chunk swapped with another, and a case folder copied over another, are refused", async () => {
  await using dir = await tempDir();
  const root = join(dir.path, "c.zarr");
  const store = new FileSystemStore(root);
  const v = testVolume([20, 18, 16]);
  for (const name of ["a", "b"]) {
    await writeCase(store, `/ds/${name}`, v, { encoding: ENCODING, chunk: 8, layout: "chunked" });
  }
  const chunk = (c: string, k: string) => join(root, "ds", c, "c", "0", "1", k);
  const [x, y] = [await Deno.readFile(chunk("a", "0")), await Deno.readFile(chunk("a", "1"))];
  await Deno.writeFile(chunk("a", "0"), y);
  await Deno.writeFile(chunk("a", "1"), x);
  await assertRejects(
    () => readCase(store, "/ds/a"),
    /Case \/ds\/a: chunk c\/0\/1\/[01]: holds a sound chunk, but not the one written there/,
  );
  // b's folder replaced by a copy of a (same shape, every chunk sound).
  await Deno.remove(join(root, "ds", "b"), { recursive: true });
  await Deno.mkdir(join(root, "ds", "b", "c", "0", "1"), { recursive: true });
  await Deno.copyFile(join(root, "ds", "a", "zarr.json"), join(root, "ds", "b", "zarr.json"));
  const e = await assertRejects(
    () => readCase(store, "/ds/b"),
    /Case \/ds\/b: zarr\.json: it was written as case ds\/a, not ds\/b/,
  );
  assertEquals((e as DamagedCacheError).case, "ds/b");
});
