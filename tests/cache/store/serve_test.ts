// Tests of `serveCache`: range requests, validators, CORS, HEAD, no listing, no path
// traversal, bounded concurrency and a loopback load test (127.0.0.1 only).
import { join } from "node:path";
import { serveCache } from "../../../cache/store/serve.ts";
import { assert, assertEquals, tempDir } from "../../_helpers.ts";
import { rawStatus, writeTestCache } from "../_caches.ts";

const CHUNK = "ds/a/c/0/0/0";

Deno.test("serveCache() answers ranges (206, suffix, 416), HEAD, ETag and 304, CORS", async () => {
  await using dir = await tempDir();
  const root = join(dir.path, "c.zarr");
  await writeTestCache(root);
  const file = await Deno.readFile(join(root, CHUNK));
  const server = await serveCache(root, { port: 0 });
  try {
    assert(server.url.startsWith("http://127.0.0.1:"), server.url);
    const url = server.url + CHUNK;
    const full = await fetch(url);
    assertEquals(full.status, 200);
    assertEquals(new Uint8Array(await full.arrayBuffer()), file);
    assertEquals(full.headers.get("access-control-allow-origin"), "*");
    assertEquals(full.headers.get("accept-ranges"), "bytes");
    const etag = full.headers.get("etag")!;
    const part = await fetch(url, { headers: { range: "bytes=3-10" } });
    assertEquals(part.status, 206);
    assertEquals(part.headers.get("content-range"), `bytes 3-10/${file.length}`);
    assertEquals(new Uint8Array(await part.arrayBuffer()), file.subarray(3, 11));
    const tail = await fetch(url, { headers: { range: "bytes=-5" } });
    assertEquals(tail.status, 206);
    assertEquals(new Uint8Array(await tail.arrayBuffer()), file.subarray(file.length - 5));
    const past = await fetch(url, { headers: { range: `bytes=${file.length}-` } });
    assertEquals(past.status, 416);
    assertEquals(past.headers.get("content-range"), `bytes */${file.length}`);
    await past.body?.cancel();
    const head = await fetch(url, { method: "HEAD" });
    assertEquals(head.status, 200);
    assertEquals(head.headers.get("content-length"), String(file.length));
    assertEquals((await head.arrayBuffer()).byteLength, 0);
    const cached = await fetch(url, { headers: { "if-none-match": etag } });
    assertEquals(cached.status, 304);
    await cached.body?.cancel();
    // A stale If-Range gets the whole file instead of the range.
    const stale = await fetch(url, { headers: { range: "bytes=0-1", "if-range": '"x"' } });
    assertEquals(stale.status, 200);
    await stale.body?.cancel();
    const pre = await fetch(url, {
      method: "OPTIONS",
      headers: { origin: "http://viewer.example", "access-control-request-headers": "range" },
    });
    assertEquals(pre.status, 204);
    assert(pre.headers.get("access-control-allow-headers")!.includes("Range"));
    const meta = await fetch(server.url + "zarr.json");
    assertEquals(meta.headers.get("content-type"), "application/json");
    await meta.body?.cancel();
    const post = await fetch(url, { method: "POST", body: "x" });
    assertEquals(post.status, 405);
    await post.body?.cancel();
  } finally {
    await server.shutdown();
  }
});

Deno.test("serveCache() lists no folder and serves nothing outside the cache", async () => {
  await using dir = await tempDir();
  const root = join(dir.path, "c.zarr");
  await writeTestCache(root);
  await Deno.writeTextFile(join(dir.path, "secret.txt"), "secret");
  await Deno.mkdir(join(root, ".staging", "run-1"), { recursive: true });
  await Deno.writeTextFile(join(root, ".staging", "run-1", "owner.json"), "{}");
  await Deno.symlink(join(dir.path, "secret.txt"), join(root, "ds", "link_out"));
  await Deno.symlink(dir.path, join(root, "ds", "dir_out"));
  await Deno.symlink(join(root, "ds", "a", "zarr.json"), join(root, "ds", "link_in"));
  const server = await serveCache(root, { port: 0 });
  try {
    const status = async (path: string) => {
      const r = await fetch(server.url + path);
      await r.body?.cancel();
      return r.status;
    };
    for (const path of ["", "ds", "ds/", "ds/a/c", "ds/link_out", "ds/dir_out/secret.txt"]) {
      assertEquals(await status(path), 404, path);
    }
    assertEquals(await status("ds/link_in"), 200, "a link inside the cache");
    assertEquals(await status("ds/a/zarr.json"), 200);
    // Raw request lines: what a client that does not normalise would send.
    for (
      const target of [
        "/..%2fsecret.txt",
        "/ds/..%2F..%2Fsecret.txt",
        "/%2e%2e/secret.txt",
        "/ds/%2E%2E/%2e%2e/secret.txt",
        "/../secret.txt",
        "/ds%5c..%5c..%5csecret.txt",
        "/.staging/run-1/owner.json",
        "/%2estaging/run-1/owner.json",
        "/ds/a/zarr.json%00",
        "/%ff",
      ]
    ) {
      const s = await rawStatus(server.port, target);
      assert(s === 404 || s === 400, `${target}: ${s}`);
    }
    assertEquals(await rawStatus(server.port, "/ds/a/zarr.json"), 200);
  } finally {
    await server.shutdown();
  }
});

Deno.test("serveCache() bounds concurrency: a full queue gets 503, small files need no slot", async () => {
  await using dir = await tempDir();
  const root = join(dir.path, "c.zarr");
  await writeTestCache(root);
  // 64 MiB: more than the socket buffers take, so the first body stays unsent.
  await Deno.writeFile(join(root, "ds", "big"), new Uint8Array(64 << 20));
  const server = await serveCache(root, { port: 0, maxConcurrent: 1, maxQueued: 0 });
  try {
    const held = await fetch(server.url + "ds/big"); // its body not read: the slot stays taken
    await new Promise((r) => setTimeout(r, 100));
    const busy = await fetch(server.url + "ds/big", { headers: { range: "bytes=0-999999" } });
    assertEquals(busy.status, 503);
    assertEquals(busy.headers.get("retry-after"), "1");
    await busy.body?.cancel();
    // A chunk of 256 KiB or less is read whole, without a slot: answered all the same.
    const small = await fetch(server.url + CHUNK);
    assertEquals(small.status, 200);
    await small.arrayBuffer();
    assertEquals((await held.arrayBuffer()).byteLength, 64 << 20);
    const again = await fetch(server.url + "ds/big", { headers: { range: "bytes=0-999999" } });
    assertEquals(again.status, 206);
    assertEquals((await again.arrayBuffer()).byteLength, 1e6);
  } finally {
    await server.shutdown();
  }
});

Deno.test("serveCache() answers 2000 parallel range reads on loopback, none failed, memory bounded", async () => {
  await using dir = await tempDir();
  const root = join(dir.path, "c.zarr");
  await writeTestCache(root);
  // A 4 MiB file to read ranges of.
  const big = new Uint8Array(4 << 20);
  for (let i = 0; i < big.length; i++) big[i] = (i * 2654435761) >>> 24;
  await Deno.writeFile(join(root, "ds", "a", "c", "big"), big);
  const server = await serveCache(root, { port: 0, maxConcurrent: 32 });
  const rss0 = Deno.memoryUsage().rss;
  const t0 = performance.now();
  try {
    let failed = 0, next = 0, seed = 7;
    const total = 2000;
    const worker = async () => {
      while (next < total) {
        next++;
        seed = (seed * 1664525 + 1013904223) >>> 0;
        const start = seed % (big.length - 65536);
        const len = 1 + (seed >>> 16) % 65536;
        const r = await fetch(server.url + "ds/a/c/big", {
          headers: { range: `bytes=${start}-${start + len - 1}` },
          signal: AbortSignal.timeout(20000),
        });
        const got = new Uint8Array(await r.arrayBuffer());
        if (r.status !== 206 || got.length !== len || got[len - 1] !== big[start + len - 1]) {
          failed++;
        }
      }
    };
    await Promise.all(Array.from({ length: 64 }, worker));
    assertEquals(failed, 0, "failed range reads");
    assertEquals(server.counts()[206], total);
    const seconds = (performance.now() - t0) / 1000;
    assert(seconds < 60, `took ${seconds.toFixed(1)} s`);
    const grown = (Deno.memoryUsage().rss - rss0) / 2 ** 20;
    assert(grown < 256, `resident memory grew by ${grown.toFixed(0)} MiB`);
  } finally {
    await server.shutdown();
  }
});
