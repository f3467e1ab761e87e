// Tests of `CacheReader`: a folder and `cache serve` over loopback HTTP give the same
// bits, crops past the edge are zero-padded, sharded cases read with few requests, and
// errors name the location, the case and the reason.
import { join } from "node:path";
import { CacheReader } from "../../../cache/read/cache_reader.ts";
import { openCase } from "../../../cache/read/read_case.ts";
import { serveCache } from "../../../cache/store/serve.ts";
import { FileSystemStore } from "@zarrita/storage";
import type { CaseShape } from "../../../cache/format/case_volume.ts";
import { assert, assertClose, assertEquals, assertRejects, tempDir } from "../../_helpers.ts";
import { consolidate, ENCODING, writeShardedCase, writeTestCache } from "../_caches.ts";

/** The value of `v` at voxel `p`, or 0 outside. */
function at(v: { data: Float32Array; shape: CaseShape }, p: number[]): number {
  if (p.some((c, a) => c < 0 || c >= v.shape[a])) return 0;
  return v.data[(p[0] * v.shape[1] + p[1]) * v.shape[2] + p[2]];
}

Deno.test("CacheReader reads the same bits from a folder and over HTTP from cache serve", async () => {
  await using dir = await tempDir();
  const root = join(dir.path, "c.zarr");
  const vols = await writeTestCache(root);
  await consolidate(root);
  const server = await serveCache(root, { port: 0 });
  try {
    const local = await CacheReader.open(root);
    const http = await CacheReader.open(server.url, { timeoutMs: 5000 });
    assertEquals(local.kind, "file");
    assertEquals(http.kind, "http");
    assert(http.consolidated, "consolidated metadata found");
    const listed = await http.list();
    assertEquals(listed.map((c) => c.path), ["/ds/a", "/ds/b"]);
    assertEquals(listed[0].shape, [40, 36, 20]);
    assertEquals(listed[0].chunkShape, [16, 16, 16]);
    assertEquals(listed[0].dataType, "uint16");
    assertEquals((await local.list()).map((c) => c.shape), listed.map((c) => c.shape));
    const boxes: [CaseShape, CaseShape][] = [
      [[0, 0, 0], [40, 36, 20]],
      [[5, 7, 3], [20, 16, 12]],
      [[-4, 30, 15], [12, 12, 12]], // past three edges
      [[38, -2, -1], [5, 4, 3]],
      [[100, 0, 0], [4, 4, 4]], // wholly outside: zeros
    ];
    // Memory given with `into` (stale values in it, longer than the crop) holds the same.
    const into = new Float32Array(40 * 36 * 20 + 7).fill(Number.NaN);
    for (const [start, size] of boxes) {
      const a = await local.readCrop("ds/a", start, size);
      const b = await http.readCrop("/ds/a", start, size);
      assertEquals(b.shape, size);
      assertEquals(a.data, b.data, `crop ${start} + ${size}`);
      for (const reader of [local, http]) {
        const c = await reader.readCrop("ds/a", start, size, { into });
        assertEquals(c.data.buffer, into.buffer, "read into the memory given");
        assertEquals(c.data.byteOffset, 0);
        assertEquals(c.data, a.data, `crop ${start} + ${size} into stale memory (${reader.kind})`);
        into.fill(Number.NaN);
      }
      assertEquals(a.affine, b.affine);
      // Against the source volume, within half a quantisation step.
      const src = vols.a;
      const p = [start[0] + 1, start[1] + 2, start[2] + 1];
      const i = ((p[0] - start[0]) * size[1] + p[1] - start[1]) * size[2] + p[2] - start[2];
      assertClose(b.data[i], at(src, p), ENCODING.scaleFactor! / 2 + 1e-6);
      assertClose(b.affine[0][3], -10 + 1.5 * start[0], 1e-9);
    }
    const short = await assertRejects(
      () => local.readCrop("ds/a", [0, 0, 0], [8, 8, 8], { into: new Float32Array(511) }),
      /511 values given for a crop of 512/,
    );
    assert(short instanceof RangeError);
    // The same as openCase() on the folder.
    const ref = await (await openCase(new FileSystemStore(root), "/ds/b")).read();
    assertEquals((await http.readCrop("ds/b", [0, 0, 0], [24, 24, 24])).data, ref.data);
  } finally {
    await server.shutdown();
  }
});

Deno.test("CacheReader lists a served cache without consolidated metadata only by name", async () => {
  await using dir = await tempDir();
  const root = join(dir.path, "c.zarr");
  await writeTestCache(root);
  const server = await serveCache(root, { port: 0 });
  try {
    const http = await CacheReader.open(server.url);
    assert(!http.consolidated);
    await assertRejects(() => http.list(), /cannot be listed.*consolidated metadata/);
    assertEquals((await http.readCrop("ds/a", [0, 0, 0], [2, 2, 2])).shape, [2, 2, 2]);
    await assertRejects(
      () => http.readCrop("ds/nope", [0, 0, 0], [2, 2, 2]),
      /Case ds\/nope not found in http:\/\/127\.0\.0\.1:\d+\//,
    );
    await assertRejects(
      () => CacheReader.open(server.url + "ds/a/c/"),
      /is not a VoCo cache .*404/,
    );
  } finally {
    await server.shutdown();
  }
  // The server is gone: a network error naming the URL, after bounded retries.
  await assertRejects(
    () => CacheReader.open(server.url, { retries: 1, timeoutMs: 2000 }),
    /Cannot open cache http:\/\/127\.0\.0\.1:\d+\/: GET http:\/\/127\.0\.0\.1:\d+\/zarr\.json: network error/,
  );
  await assertRejects(() => CacheReader.open(join(dir.path, "none")), /does not exist/);
});

Deno.test("CacheReader reads a sharded case (sharding_indexed) with coalesced range requests", async () => {
  await using dir = await tempDir();
  const root = join(dir.path, "c.zarr");
  const vols = await writeTestCache(root);
  await writeShardedCase(root, "ds/s", vols.a, [8, 8, 8]);
  await consolidate(root);
  const server = await serveCache(root, { port: 0 });
  try {
    const local = await CacheReader.open(root);
    const http = await CacheReader.open(server.url);
    const info = (await http.list()).find((c) => c.name === "s")!;
    assertEquals(info.chunkShape, [8, 8, 8]);
    assertEquals(info.shardShape, [40, 40, 24]);
    const plain = await local.readCrop("ds/a", [0, 0, 0], [40, 36, 20]);
    const before = http.stats().requests;
    const whole = await http.readCrop("ds/s", [0, 0, 0], [40, 36, 20]);
    assertEquals(whole.data, plain.data, "sharded = unsharded, bit for bit");
    // One suffix read of the index, one coalesced read of all 5 x 5 x 3 inner chunks.
    assertEquals(http.stats().requests - before, 2);
    const mid = http.stats();
    const crop = await http.readCrop("ds/s", [9, 9, 9], [6, 6, 6]); // one inner chunk
    assertEquals(http.stats().requests - mid.requests, 1);
    assert(http.stats().bytes - mid.bytes < 2 * 8 * 8 * 8 + 64, "only its inner chunk is read");
    assertEquals(crop.data, (await local.readCrop("ds/a", [9, 9, 9], [6, 6, 6])).data);
    const edge = await http.readCrop("ds/s", [30, 30, 10], [16, 16, 16]);
    assertEquals(edge.data, (await local.readCrop("ds/a", [30, 30, 10], [16, 16, 16])).data);
  } finally {
    await server.shutdown();
  }
});

Deno.test("CacheReader opens in a Worker from a URL string and plain options", async () => {
  await using dir = await tempDir();
  const root = join(dir.path, "c.zarr");
  await writeTestCache(root);
  const server = await serveCache(root, { port: 0 });
  const worker = new Worker(new URL("./_reader_worker.ts", import.meta.url), { type: "module" });
  try {
    const got = await new Promise<{ data?: Float32Array; error?: string }>((resolve) => {
      worker.onmessage = (e) => resolve(e.data);
      worker.onerror = (e) => {
        e.preventDefault();
        resolve({ error: `worker: ${e.message}` });
      };
      worker.postMessage({
        url: server.url,
        options: { timeoutMs: 5000, retries: 0 },
        name: "ds/b",
        start: [20, 20, 20],
        size: [8, 8, 8],
      });
    });
    assert(!got.error, got.error);
    const local = await (await CacheReader.open(root)).readCrop("ds/b", [20, 20, 20], [8, 8, 8]);
    assertEquals(got.data, local.data);
  } finally {
    worker.terminate();
    await server.shutdown();
  }
});
