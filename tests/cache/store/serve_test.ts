// Tests of `serveCache`: range requests, validators, CORS, HEAD, no listing, no path
// traversal, bounded concurrency and a loopback load test (127.0.0.1 only).
import { join } from "node:path";
import { cacheHandler, serveCache } from "../../../cache/store/serve.ts";
import { CacheReader } from "../../../cache/read/cache_reader.ts";
import { assert, assertEquals, assertRejects, tempDir } from "../../_helpers.ts";
import { NotACacheError } from "../../../cache/errors.ts";
import { exitCodeOf } from "../../../cli/run.ts";
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

/** Opens `n` loopback connections that each ask for `path` and never read the answer. */
async function stalledClients(port: number, path: string, n: number): Promise<Deno.Conn[]> {
  const conns: Deno.Conn[] = [];
  for (let i = 0; i < n; i++) {
    const c = await Deno.connect({ hostname: "127.0.0.1", port });
    await c.write(new TextEncoder().encode(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`));
    conns.push(c);
  }
  return conns;
}

Deno.test("serveCache() answers metadata while clients stall, and cuts the stalled ones off", async () => {
  await using dir = await tempDir();
  const root = join(dir.path, "c.zarr");
  await writeTestCache(root);
  // 16 MiB: more than loopback socket buffers take, so a client that reads nothing stalls.
  await Deno.writeFile(join(root, "ds", "big"), new Uint8Array(16 << 20));
  const server = await serveCache(root, { port: 0, maxConcurrent: 4, idleTimeoutMs: 400 });
  const conns = await stalledClients(server.port, "/ds/big", 12);
  try {
    await new Promise((r) => setTimeout(r, 150));
    // Every slot is held by a stalled client: metadata and small chunks need none.
    let t0 = performance.now();
    for (const path of ["zarr.json", "ds/a/zarr.json", CHUNK]) {
      const r = await fetch(server.url + path, { signal: AbortSignal.timeout(5000) });
      assertEquals(r.status, 200, path);
      await r.arrayBuffer();
    }
    assert(performance.now() - t0 < 1000, `metadata took ${performance.now() - t0} ms`);
    // A body needs a slot: stalled clients are cut off after 0.4 s each, so one comes.
    t0 = performance.now();
    const r = await fetch(server.url + "ds/big", {
      headers: { range: "bytes=0-999999" },
      signal: AbortSignal.timeout(10000),
    });
    assertEquals(r.status, 206);
    assertEquals((await r.arrayBuffer()).byteLength, 1e6);
    const waited = performance.now() - t0;
    assert(waited < 5000, `waited ${waited.toFixed(0)} ms for a slot`);
  } finally {
    for (const c of conns) c.close();
    await server.shutdown();
  }
});

Deno.test("cacheHandler() gives one client at most its share of the slots", async () => {
  await using dir = await tempDir();
  const root = join(dir.path, "c.zarr");
  await writeTestCache(root);
  await Deno.writeFile(join(root, "ds", "big"), new Uint8Array(1 << 20));
  const handler = await cacheHandler(root, { maxConcurrent: 4, maxPerClient: 2 });
  const get = (ip: string) =>
    handler(new Request("http://cache/ds/big"), { remoteAddr: { hostname: ip } });
  const soon = <T>(p: Promise<T>) =>
    Promise.race([p, new Promise<"waiting">((r) => setTimeout(() => r("waiting"), 200))]);
  // Bodies not read: each response holds its slot.
  const [a1, a2] = [await get("10.0.0.1"), await get("10.0.0.1")];
  const a3 = get("10.0.0.1");
  assertEquals(await soon(a3), "waiting", "a third request of the same client waits");
  const b1 = await soon(get("10.0.0.2"));
  assert(b1 !== "waiting" && b1.status === 200, "another client is served at once");
  await a1.body!.cancel();
  const third = await soon(a3);
  assert(third !== "waiting" && third.status === 200, "a freed slot goes to the waiting one");
  for (const r of [a2, b1, third]) await r.body!.cancel();
});

Deno.test("serveCache() serves regular files only: a FIFO is 404 at once, every time", async () => {
  await using dir = await tempDir();
  const root = join(dir.path, "c.zarr");
  await writeTestCache(root);
  const made = await new Deno.Command("mkfifo", { args: [join(root, "ds", "a", "fifo")] })
    .output().catch(() => undefined);
  if (!made?.success) {
    console.log("mkfifo is not available here: skipped");
    return;
  }
  const server = await serveCache(root, { port: 0, maxConcurrent: 4 });
  try {
    const t0 = performance.now();
    const statuses = await Promise.all(
      Array.from({ length: 100 }, async () => {
        const r = await fetch(server.url + "ds/a/fifo", { signal: AbortSignal.timeout(5000) });
        await r.body?.cancel();
        return r.status;
      }),
    );
    assertEquals(new Set(statuses), new Set([404]));
    assert(performance.now() - t0 < 5000, "no request waited on the FIFO");
    const ok = await fetch(server.url + CHUNK);
    assertEquals(ok.status, 200);
    await ok.arrayBuffer();
  } finally {
    await server.shutdown();
  }
});

Deno.test("serveCache() serves nothing under .staging or a hidden folder, whatever link leads there", async () => {
  await using dir = await tempDir();
  const root = join(dir.path, "c.zarr");
  await writeTestCache(root);
  await Deno.mkdir(join(root, ".staging", "run-1"), { recursive: true });
  await Deno.writeTextFile(join(root, ".staging", "run-1", "owner.json"), "{}");
  await Deno.mkdir(join(root, "ds", ".hidden"));
  await Deno.writeTextFile(join(root, "ds", ".hidden", "x.json"), "{}");
  await Deno.symlink(join(root, ".staging"), join(root, "ds", "peek"));
  await Deno.symlink("../../.staging/run-1/owner.json", join(root, "ds", "a", "owner.json"));
  await Deno.symlink(".hidden", join(root, "ds", "shown"));
  const server = await serveCache(root, { port: 0 });
  try {
    for (const path of ["ds/peek/run-1/owner.json", "ds/a/owner.json", "ds/shown/x.json"]) {
      const r = await fetch(server.url + path);
      await r.body?.cancel();
      assertEquals(r.status, 404, path);
    }
  } finally {
    await server.shutdown();
  }
});

Deno.test("serveCache() consolidates an unconsolidated cache on start, or says why it cannot", async () => {
  await using dir = await tempDir();
  const root = join(dir.path, "c.zarr");
  await writeTestCache(root);
  const server = await serveCache(root, { port: 0, consolidate: true });
  try {
    assert(/^consolidated metadata of .* \(URL clients list the cache/.test(server.consolidated!));
    const reader = await CacheReader.open(server.url);
    assertEquals((await reader.list()).map((c) => c.name), ["a", "b"]);
  } finally {
    await server.shutdown();
  }
  const again = await serveCache(root, { port: 0, consolidate: true });
  assertEquals(again.consolidated, undefined, "up to date: nothing to say");
  await again.shutdown();
  // Where it cannot be written (here: .staging is a file), serving says so and goes on.
  const other = join(dir.path, "d.zarr");
  await writeTestCache(other);
  await Deno.remove(join(other, ".staging"), { recursive: true }).catch(() => {});
  await Deno.writeTextFile(join(other, ".staging"), "");
  const third = await serveCache(other, { port: 0, consolidate: true });
  try {
    assert(/^note: .* could not be written .* cannot list them$/.test(third.consolidated!));
  } finally {
    await third.shutdown();
  }
});

Deno.test("serveCache() refuses a folder that is not a cache (no root zarr.json): nothing is served", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(join(dir.path, "notes.txt"), "private");
  const e = await assertRejects(() => serveCache(dir.path, { port: 0 }));
  assert(e instanceof NotACacheError, String(e));
  assert(e.message.includes(`${dir.path} is not a VoCo cache`), e.message);
  assertEquals(exitCodeOf(e), 2);
  // A file is refused too, naming it.
  const file = join(dir.path, "notes.txt");
  const f = await assertRejects(() => serveCache(file, { port: 0 }));
  assert(f instanceof NotACacheError && f.message.includes(file), String(f));
});
