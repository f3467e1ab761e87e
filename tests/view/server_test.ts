// Tests of the viewer's server and library without a browser: it listens on 127.0.0.1 and
// opens on data, its slabs are the case's stored values read chunk by chunk, its crops are
// the sampler's for a seed, bad requests are refused with their reason, runs are polled.
import { join } from "node:path";
import { startViewer } from "../../view/server.ts";
import { Catalog } from "../../view/catalog.ts";
import { sampleView } from "../../view/sample.ts";
import { RunReader } from "../../view/runs.ts";
import { CacheReader } from "../../cache/read/cache_reader.ts";
import { buildSample, sampleSpec } from "../../train/sampler/voco_sample.ts";
import { sampleRng } from "../../train/sampler/loader.ts";
import { tinyCache } from "../train/_tiny_cache.ts";
import { assert, assertEquals, assertRejects, tempDir } from "../_helpers.ts";

Deno.test("the viewer listens on 127.0.0.1, opens on the first case and answers its API", async () => {
  await using dir = await tempDir();
  const cache = await tinyCache(dir.path, 2);
  const viewer = await startViewer({ caches: [cache], port: 0 });
  try {
    assert(viewer.port > 0, "a free port");
    assertEquals(viewer.url, `http://127.0.0.1:${viewer.port}/?cache=0&case=phantoms/case0`);
    const get = async (path: string) => {
      const r = await fetch(`http://127.0.0.1:${viewer.port}${path}`);
      return { status: r.status, body: await r.text() };
    };
    /** The status line of a request naming another host (fetch cannot set Host). */
    const otherHost = async () => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: viewer.port });
      await conn.write(new TextEncoder().encode(
        "GET /api/state HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
      ));
      const buf = new Uint8Array(200);
      const n = await conn.read(buf);
      conn.close();
      return new TextDecoder().decode(buf.subarray(0, n ?? 0)).split("\r\n")[0];
    };
    const state = JSON.parse((await get("/api/state")).body);
    assertEquals(state.cases.map((c: { id: string }) => c.id), [
      "phantoms/case0",
      "phantoms/case1",
    ]);
    assertEquals(state.cases[0].recipe, "voco-v2");
    const info = JSON.parse((await get("/api/case?cache=0&id=phantoms/case1")).body);
    assertEquals([info.type, info.unit, info.window], ["uint16", "HU", [-175, 250]]);
    const page = await get("/");
    assert(page.body.includes('<script type="module" src="/app.js">'), "the page");
    const niivue = await get("/niivue.js");
    assert(
      niivue.body.length > 1e6 && niivue.body.includes("Niivue"),
      "NiiVue from the npm package",
    );
    assert(!/from\s*"[^".\/]/.test(niivue.body.slice(0, 5000)), "a bundle with no bare imports");
    const bad = await get("/api/slab?cache=0&id=phantoms/case0&z0=5&z1=4000");
    assertEquals(bad.status, 400);
    assert(bad.body.includes("not within 0.."), bad.body);
    assertEquals((await get("/api/case?cache=0&id=phantoms/nope")).status, 404);
    assertEquals((await get("/api/case?cache=7&id=phantoms/case0")).status, 400);
    assertEquals((await get("/api/sample?cache=0&id=phantoms/case0&seed=-1")).status, 400);
    assertEquals(await otherHost(), "HTTP/1.1 403 Forbidden", "DNS rebinding refused");
    assertEquals((await get("/../deno.json")).status, 404);
  } finally {
    await viewer.close();
  }
});

Deno.test("a slab is the case's stored values, x fastest, read from the chunks of its slices only", async () => {
  await using dir = await tempDir();
  const cache = await tinyCache(dir.path, 1);
  const catalog = await Catalog.open([cache]);
  const d = catalog.describe(0, "phantoms/case0");
  const [nx, ny, nz] = d.shape;
  assert(nz > d.slab, `the phantom has ${nz / d.slab} slabs`);
  const reader = await CacheReader.open(cache);
  const whole = await reader.readCrop("phantoms/case0", [0, 0, 0], d.shape);
  const before = catalog.readers[0].stats().bytes;
  const z0 = d.slab, z1 = Math.min(nz, 2 * d.slab);
  const bytes = await catalog.slab(0, "phantoms/case0", z0, z1);
  const read = catalog.readers[0].stats().bytes - before;
  const stored = new Uint16Array(bytes.buffer);
  assertEquals(stored.length, nx * ny * (z1 - z0));
  // Decoded back with the NIfTI slope and intercept: HU, and the cache's 0..1 values.
  let worst = 0;
  for (
    const [x, y, z] of [[0, 0, z0], [nx - 1, 3, z1 - 1], [17, ny - 2, z0 + 5], [40, 40, z0 + 1]]
  ) {
    const hu = stored[(z - z0) * nx * ny + y * nx + x] * d.slope + d.inter;
    const value = whole.data[(x * ny + y) * nz + z];
    worst = Math.max(worst, Math.abs((hu + 175) / 425 - value));
  }
  assert(worst < 1e-6, `decoded values differ by ${worst}`);
  const total = (await reader.listStored("phantoms/case0")).reduce((a, o) => a + o.size, 0);
  assert(read < total * 0.75, `one slab of ${nz / d.slab} read ${read} of ${total} bytes`);
  await assertRejects(() => catalog.slab(0, "phantoms/case0", -1, 3), /not within/);
});

Deno.test("the crops drawn for a seed are the ones the sampler cuts for that seed", async () => {
  await using dir = await tempDir();
  const cache = await tinyCache(dir.path, 1);
  const reader = await CacheReader.open(cache);
  const c = await reader.openCase("phantoms/case0");
  const readBox = (s: [number, number, number], n: [number, number, number]) =>
    reader.readCrop("phantoms/case0", s, n);
  for (const [seed, sample, crops] of [[0, 0, 2], [7, 3, 4], [123, 40, 1]]) {
    const view = sampleView(c.shape, "voco-v2", { seed, sample, crops });
    const spec = sampleSpec("v2", { crops });
    const built = await buildSample(
      c.shape,
      readBox,
      { ...spec, augment: false },
      sampleRng(seed, sample),
    );
    assertEquals(view.regionStart, built.geometry.regionStart, `seed ${seed}`);
    const half = spec.base / 2;
    assertEquals(
      view.crops.map((k) => k.start),
      built.geometry.centres.map((
        [x, y],
      ) => [x - half + view.regionStart[0], y - half + view.regionStart[1], view.regionStart[2]]),
    );
    assertEquals(view.crops.flatMap((k) => k.labels), [...built.labels]);
    assertEquals(view.bases.length, 9);
  }
  const v1 = sampleView([400, 400, 120], "voco-v1", { seed: 1 });
  assertEquals([v1.version, v1.region, v1.bases.length], ["v1", [384, 384, 96], 16]);
});

Deno.test("a run's metrics are polled as they grow, and a resume that cut them is told", async () => {
  await using dir = await tempDir();
  const path = join(dir.path, "metrics.jsonl");
  const line = (s: number) => JSON.stringify({ step: s, loss: 1 / s }) + "\n";
  await Deno.writeTextFile(path, line(1) + line(2) + '{"step": 3, "lo');
  const reader = new RunReader();
  assertEquals(
    (await reader.metrics(dir.path)).rows.map((r) => r.step),
    [1, 2],
    "a cut line waits",
  );
  await Deno.writeTextFile(path, 'ss": 0.3}\n' + line(4), { append: true });
  const up = await reader.metrics(dir.path, 2);
  assertEquals([up.rows.map((r) => r.step), up.lastStep], [[3, 4], 4]);
  await Deno.writeTextFile(path, line(1) + line(2)); // resumed from step 2
  assertEquals((await reader.metrics(dir.path, 4)).lastStep, 2);
  assertEquals(await reader.config(dir.path), null, "no config.json yet");
});

Deno.test("startViewer() names what it cannot open", async () => {
  await using dir = await tempDir();
  await assertRejects(() => startViewer({}), /Nothing to show/);
  await assertRejects(() => startViewer({ runs: [join(dir.path, "none")] }), /does not exist/);
  await assertRejects(() => startViewer({ runs: [dir.path] }), /not a run folder/);
  const cache = await tinyCache(dir.path, 1);
  await assertRejects(
    () => startViewer({ caches: [cache], port: 0, openCase: "phantoms/x" }),
    /No case phantoms\/x.*phantoms\/case0/,
  );
});
