// Tests of `CacheReader` on s3:// URLs against a real S3-speaking server (s3rver) on
// 127.0.0.1: signed (SigV4) and anonymous reads, ListObjectsV2 listing, same bits as a
// local read, errors that name the bucket.
import { join } from "node:path";
import { CacheReader } from "../../../cache/read/cache_reader.ts";
import { resolveS3 } from "../../../cache/store/s3.ts";
import type { CaseShape } from "../../../cache/format/case_volume.ts";
import { assert, assertEquals, assertRejects, tempDir } from "../../_helpers.ts";
import { writeShardedCase, writeTestCache } from "../_caches.ts";
import { CREDS, startS3 } from "../_s3.ts";

Deno.test("CacheReader reads s3://bucket/prefix from a real S3 server (s3rver), bit for bit", async () => {
  await using dir = await tempDir();
  const root = join(dir.path, "c.zarr");
  const vols = await writeTestCache(root);
  await writeShardedCase(root, "ds/s", vols.a, [8, 8, 8]);
  const s3 = await startS3(dir.path, root, "caches/c.zarr");
  try {
    const local = await CacheReader.open(root);
    const signed = await CacheReader.open("s3://bkt/caches/c.zarr", {
      ...CREDS,
      endpoint: s3.endpoint,
      timeoutMs: 5000,
    });
    assertEquals(signed.kind, "s3");
    const listed = await signed.list(); // ListObjectsV2: no consolidated metadata needed
    assertEquals(listed.map((c) => c.path), ["/ds/a", "/ds/b", "/ds/s"]);
    assertEquals(listed.map((c) => c.shape), (await local.list()).map((c) => c.shape));
    const boxes: [string, CaseShape, CaseShape][] = [
      ["ds/a", [3, 4, 5], [30, 30, 12]],
      ["ds/a", [-3, 20, 10], [16, 20, 16]],
      ["ds/b", [0, 0, 0], [24, 24, 24]],
      ["ds/s", [5, 5, 5], [20, 20, 10]],
    ];
    for (const [name, start, size] of boxes) {
      const a = await local.readCrop(name, start, size);
      const b = await signed.readCrop(name, start, size);
      assertEquals(a.data, b.data, `${name} ${start} + ${size}`);
    }
    assert(signed.stats().requests < 60, `${signed.stats().requests} requests`);
    // A public bucket: unsigned requests, the endpoint from AWS_ENDPOINT_URL's option.
    const anon = await CacheReader.open("s3://bkt/caches/c.zarr/", {
      endpoint: s3.endpoint,
      anonymous: true,
    });
    assertEquals(
      (await anon.readCrop("ds/b", [1, 2, 3], [4, 4, 4])).data,
      (await local.readCrop("ds/b", [1, 2, 3], [4, 4, 4])).data,
    );
    // s3rver checks the access key of a SigV4 request (not the signature itself: its
    // source says so): an unknown key is refused, and the error says why.
    await assertRejects(
      () =>
        CacheReader.open("s3://bkt/caches/c.zarr", {
          ...CREDS,
          accessKeyId: "NOSUCHKEY",
          endpoint: s3.endpoint,
        }),
      /Cannot open cache s3:\/\/bkt\/caches\/c\.zarr: GET http:.*zarr\.json: 403 Forbidden \(access denied/,
    );
    await assertRejects(
      () => CacheReader.open("s3://nobucket/c.zarr", { ...CREDS, endpoint: s3.endpoint }),
      /nobucket\/c\.zarr/,
    );
    await assertRejects(
      () => signed.readCrop("ds/none", [0, 0, 0], [1, 1, 1]),
      /Case ds\/none not found in s3:\/\/bkt\/caches\/c\.zarr/,
    );
  } finally {
    await s3.close();
  }
});

Deno.test("resolveS3() takes the endpoint and credentials from options, path-style", () => {
  const r = resolveS3("s3://my-bucket/a/b c/", {
    endpoint: "http://127.0.0.1:9000/",
    accessKeyId: "k",
    secretAccessKey: "s",
    region: "eu-west-1",
  });
  assertEquals(r.base, "http://127.0.0.1:9000/my-bucket/a/b%20c/");
  assertEquals(r.s3?.region, "eu-west-1");
  assertEquals(
    resolveS3("s3://pub/x", { region: "us-west-2", anonymous: true }).base.startsWith(
      "https://pub.s3.us-west-2.amazonaws.com/x/",
    ),
    true,
  );
  assertEquals(resolveS3("s3://pub", { anonymous: true }).s3, undefined);
});
