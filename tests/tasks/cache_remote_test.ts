// Tests of `deno task cache ls`, `stats` and `verify` on a cache at a URL: served by a
// real `cache serve` on 127.0.0.1 and by a real S3 server (s3rver), against the folder.
import { join } from "node:path";
import { main as prepMain } from "../../tasks/prep.ts";
import { main as cacheMain } from "../../tasks/cache.ts";
import { UsageError } from "../../cli/run.ts";
import { serveCache } from "../../cache/store/serve.ts";
import { consolidate } from "../../cache/write/consolidate.ts";
import { CacheReader } from "../../cache/read/cache_reader.ts";
import { verifyCase } from "../../cache/inspect/verify.ts";
import { assert, assertEquals, assertRejects, runTask, tempDir } from "../_helpers.ts";
import { CREDS, startS3 } from "../cache/_s3.ts";
import { denoTask, writePhantoms } from "./_run.ts";

/**
 * A small cache of two groups, `sh` (the default sharded layout) and `ch` (chunked),
 * two cases each of 32³ chunks.
 */
async function mixedCache(dir: string): Promise<string> {
  const out = join(dir, "c.zarr");
  await writePhantoms(join(dir, "in"), 2);
  for (const [group, layout] of [["sh", "sharded"], ["ch", "chunked"]]) {
    const r = await runTask(prepMain, [
      join(dir, "in"),
      "--out",
      out,
      "--quiet",
      "--dataset-name",
      group,
      "--chunk",
      "32",
      "--layout",
      layout,
    ]);
    assertEquals(r.code, 0, r.text);
  }
  return out;
}

/** `cache <args>` run in this process; its JSON output parsed. */
async function json(args: string[]): Promise<Record<string, unknown>> {
  const r = await runTask(cacheMain, [...args, "--json"]);
  return JSON.parse(r.text);
}

/** Flips one bit of byte `at` of a file. */
async function flip(path: string, at: number): Promise<void> {
  const b = await Deno.readFile(path);
  b[at] ^= 0x10;
  await Deno.writeFile(path, b);
}

Deno.test("cache ls, stats and verify over HTTP (cache serve) give what the folder gives", async () => {
  await using dir = await tempDir();
  const out = await mixedCache(dir.path);
  await consolidate(out);
  const server = await serveCache(out, { port: 0 });
  try {
    const url = server.url;
    // The same cases, shapes, layouts, bytes and files as the folder's listing.
    const local = await json(["ls", out]), remote = await json(["ls", url]);
    assertEquals(remote.cache, url);
    assertEquals(remote.cases, local.cases);
    const layouts = (local.cases as { layout: string; files: number }[]).map((c) =>
      `${c.layout} ${c.files}`
    );
    assertEquals(layouts, ["chunked 9", "chunked 9", "sharded 2", "sharded 2"]);
    const text = async (args: string[]) => (await runTask(cacheMain, args)).text;
    assertEquals(await text(["ls", url]), await text(["ls", out]));
    assertEquals(
      await text(["ls", url, "--dataset", "sh"]),
      await text(["ls", out, "--dataset", "sh"]),
    );
    const ls = await runTask(cacheMain, ["ls", url, "--dataset", "ch"]);
    assert(/^ch: 2 case\(s\), [\d.]+ kB$/m.test(ls.text), ls.text);
    assert(
      / {2}case0 {2}64x64x64 {2}1\.50x1\.50x1\.50 {2}[\d.]+ kB {2}case0\.nii\.gz/.test(ls.text),
    );
    const ls2 = await json(["stats", out]), rs = await json(["stats", url]);
    assertEquals(rs.datasets, ls2.datasets);
    assertEquals(rs.total, ls2.total);
    const st = (await text(["stats", url])).split("\n");
    assertEquals(st[0], url);
    assertEquals(st.slice(1), (await text(["stats", out])).split("\n").slice(1));

    // verify: sound over HTTP, the same cases and bytes as the folder's.
    const ok = await runTask(cacheMain, ["verify", url, "--quiet"]);
    assertEquals(ok.code, 0, ok.text);
    assert(
      new RegExp(`^${url}: verified 4 case\\(s\\), 32 chunks, .* MB/s\\): all sound$`, "m")
        .test(ok.text),
      ok.text,
    );
    const v = await json(["verify", url]), lv = await json(["verify", out]);
    assertEquals([v.cases, v.bytes, v.broken], [lv.cases, lv.bytes, lv.broken]);
    // One request per file: the root, the case's zarr.json and its one shard, read whole.
    const reader = await CacheReader.open(url);
    const check = await verifyCase(reader, "sh/case0");
    assertEquals([check.problems, check.chunks], [[], 8]);
    assertEquals(reader.stats().requests, 3);

    // Damage in the served folder: a flipped bit in a shard, a chunk file gone.
    await flip(join(out, "sh", "case1", "c", "0", "0", "0"), 100);
    await Deno.remove(join(out, "ch", "case0", "c", "1", "0", "1"));
    await Deno.remove(join(out, "ch", "case1", "zarr.json")); // still in the consolidated list
    const bad = await runTask(cacheMain, ["verify", url, "--quiet"]);
    assertEquals(bad.code, 1, bad.text);
    assert(
      /BROKEN sh\/case1: inner chunk \[\d,\d,\d\] of shard c\/0\/0\/0: crc32c mismatch/.test(
        bad.text,
      ),
      bad.text,
    );
    assert(/BROKEN ch\/case0: chunk c\/1\/0\/1 is missing/.test(bad.text), bad.text);
    assert(
      bad.text.includes(`BROKEN ch/case1: zarr.json: missing (404 at ${url}ch/case1/zarr.json)`),
      bad.text,
    );
    // The consolidated copy still lists the case whose zarr.json is gone: the root is broken too.
    assert(
      bad.text.includes(
        "BROKEN (cache root): consolidated metadata: lists ch/case1, which has no readable zarr.json",
      ),
      bad.text,
    );
    assert(
      /verified 4 case\(s\), .*: 4 broken; verify --fix on the cache folder itself removes them/
        .test(bad.text),
      bad.text,
    );
    // The cache at a URL is read-only: --fix is bad usage (exit 2), nothing is touched.
    const e = await assertRejects(
      () => runTask(cacheMain, ["verify", url, "--fix"]),
      /--fix cannot repair http:\/\/127\.0\.0\.1:\d+\/: .*read-only.*on the machine that holds/,
    );
    assert(e instanceof UsageError, String(e));
    await assertRejects(() => runTask(cacheMain, ["rm", url, "sh/case1"]), /read-only/);
    assert(await Deno.stat(join(out, "sh", "case1")).then(() => true), "case1 kept");
    // The server gone: the case's check names the URL and the network error.
    const gone = await CacheReader.open(url, { retries: 0, timeoutMs: 2000 });
    await server.shutdown();
    const lost = await verifyCase(gone, "sh/case0");
    assert(
      new RegExp(`^zarr\\.json: GET ${url}sh/case0/zarr\\.json: network error`).test(
        lost.problems[0],
      ),
      lost.problems.join("; "),
    );
  } finally {
    await server.shutdown().catch(() => {});
  }
});

Deno.test("cache ls, stats and verify of an HTTP cache without consolidated metadata say so (exit 2: nothing done)", async () => {
  await using dir = await tempDir();
  const out = await mixedCache(dir.path);
  const server = await serveCache(out, { port: 0 });
  try {
    for (const command of ["ls", "stats", "verify"]) {
      const r = await denoTask(["cache", command, server.url]);
      assertEquals(r.code, 2, `${command}: ${r.stdout}${r.stderr}`);
      assert(
        r.stderr.includes(
          `cache: Cache ${server.url} cannot be listed: a plain HTTP server lists no folders, ` +
            `so the cache needs consolidated metadata in its root zarr.json (run "deno task ` +
            `cache consolidate"`,
        ),
        r.stderr,
      );
    }
  } finally {
    await server.shutdown();
  }
});

Deno.test("cache ls, stats and verify of s3://bucket/prefix (s3rver) give what the folder gives", async () => {
  await using dir = await tempDir();
  const out = await mixedCache(dir.path);
  const s3 = await startS3(dir.path, out, "caches/c.zarr");
  const env = {
    AWS_ACCESS_KEY_ID: CREDS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: CREDS.secretAccessKey,
  };
  for (const [k, v] of Object.entries(env)) Deno.env.set(k, v);
  try {
    const url = "s3://bkt/caches/c.zarr";
    const flags = ["--endpoint", s3.endpoint];
    // Not consolidated: listed with ListObjectsV2, sizes from the object listing.
    const local = await json(["ls", out]), remote = await json(["ls", url, ...flags]);
    assertEquals(remote.cases, local.cases);
    assertEquals(
      (await json(["stats", url, ...flags])).total,
      (await json(["stats", out])).total,
    );
    // Sizes by a signed HEAD request, as for a bucket that allows no listing.
    const reader = await CacheReader.open(url, { endpoint: s3.endpoint });
    const shard = join(out, "sh", "case0", "c", "0", "0", "0");
    assertEquals(await reader.size("/sh/case0/c/0/0/0"), (await Deno.stat(shard)).size);
    assertEquals(await reader.size("/sh/case0/c/9/9/9"), undefined);

    const ok = await runTask(cacheMain, ["verify", url, ...flags, "--quiet"]);
    assertEquals(ok.code, 0, ok.text);
    assert(/verified 4 case\(s\), 32 chunks, .*: all sound/.test(ok.text), ok.text);
    // A damaged shard uploaded over the sound one.
    const bytes = await Deno.readFile(shard);
    bytes[60] ^= 0x01;
    await s3.put("caches/c.zarr/sh/case0/c/0/0/0", bytes);
    const bad = await runTask(cacheMain, ["verify", url, ...flags, "--quiet"]);
    assertEquals(bad.code, 1, bad.text);
    assert(
      /BROKEN sh\/case0: inner chunk \[\d,\d,\d\] of shard c\/0\/0\/0: crc32c mismatch/.test(
        bad.text,
      ),
      bad.text,
    );
    assert(/1 broken/.test(bad.text), bad.text);
    // The same damage on S3 and on the folder gives the same verdicts: chunks of ch/case0
    // swapped, ch/case1's scale edited, sh/case1's shard replaced by sh/case0's.
    await s3.put("caches/c.zarr/sh/case0/c/0/0/0", await Deno.readFile(shard)); // sound again
    const damage = async (rel: string, bytes: Uint8Array) => {
      await Deno.writeFile(join(out, rel), bytes);
      await s3.put(`caches/c.zarr/${rel}`, bytes);
    };
    const [c0, c1] = ["ch/case0/c/0/0/0", "ch/case0/c/0/0/1"];
    const [b0, b1] = [await Deno.readFile(join(out, c0)), await Deno.readFile(join(out, c1))];
    await damage(c0, b1);
    await damage(c1, b0);
    const meta = JSON.parse(await Deno.readTextFile(join(out, "ch/case1/zarr.json")));
    meta.attributes.scale_factor *= 2;
    await damage("ch/case1/zarr.json", new TextEncoder().encode(JSON.stringify(meta)));
    await damage("sh/case1/c/0/0/0", await Deno.readFile(join(out, "sh/case0/c/0/0/0")));
    const onS3 = await json(["verify", url, ...flags]), onDisk = await json(["verify", out]);
    const verdicts = (r: Record<string, unknown>) =>
      (r.broken as { dataset: string; name: string; problems: string[] }[])
        .map((b) => `${b.dataset}/${b.name}: ${b.problems[0].replace(/0x[0-9a-f]+/g, "")}`);
    assertEquals(verdicts(onS3), verdicts(onDisk));
    assertEquals(verdicts(onS3).map((v) => v.split(":")[0]), ["ch/case0", "ch/case1", "sh/case1"]);
    assert(/not the one written there/.test(verdicts(onS3)[0]), verdicts(onS3)[0]);
    assert(/metadata_sha256/.test(verdicts(onS3)[1]), verdicts(onS3)[1]);
  } finally {
    for (const k of Object.keys(env)) Deno.env.delete(k);
    await s3.close();
  }
});
