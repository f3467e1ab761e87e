// Tests of `renderPreview` and `cache preview`: one case's mid-slices in mm, a contact
// sheet with names, from a folder and over HTTP.
import { join } from "node:path";
import { decode } from "fast-png";
import { CacheReader } from "../../../cache/read/cache_reader.ts";
import { renderPreview } from "../../../cache/inspect/preview.ts";
import { serveCache } from "../../../cache/store/serve.ts";
import { main as cacheMain } from "../../../tasks/cache.ts";
import { assert, assertEquals, runTask, tempDir } from "../../_helpers.ts";
import { consolidate, writeTestCache } from "../_caches.ts";

Deno.test("renderPreview() draws a case's three mid-slices in mm under its name", async () => {
  await using dir = await tempDir();
  const root = join(dir.path, "c.zarr");
  const vols = await writeTestCache(root);
  const reader = await CacheReader.open(root);
  const png = decode(await renderPreview(reader, ["ds/a"]));
  assertEquals(png.channels, 1);
  // 40 x 36 x 20 voxels of 1.5 mm: views 40x36, 40x20, 36x20 px side by side (gaps 4),
  // padding 6 around, a label line of 10 + 6 px.
  assertEquals(png.width, 6 + 40 + 4 + 40 + 4 + 36 + 6);
  assertEquals(png.height, 6 + 16 + 36 + 6);
  const px = (x: number, y: number) => png.data[y * png.width + x];
  // Axial view, top-left pixel: the largest x and y at the middle z (radiological).
  const [X, Y, Z] = vols.a.shape;
  const v = vols.a.data[((X - 1) * Y + (Y - 1)) * Z + (Z >> 1)];
  assert(Math.abs(px(6, 22) - Math.round(v * 255)) <= 1, `${px(6, 22)} vs ${v * 255}`);
  let label = 0;
  for (let y = 6; y < 16; y++) for (let x = 6; x < 60; x++) label += px(x, y) === 255 ? 1 : 0;
  assert(label > 20, `the name is drawn (${label} white pixels)`);
});

Deno.test("cache preview writes a contact sheet of a served cache with every case", async () => {
  await using dir = await tempDir();
  const root = join(dir.path, "c.zarr");
  await writeTestCache(root);
  await consolidate(root);
  const server = await serveCache(root, { port: 0 });
  try {
    const out = join(dir.path, "sheet.png");
    const r = await runTask(cacheMain, [
      "preview",
      server.url,
      "--dataset",
      "ds",
      "--tile-height",
      "48",
      "--out",
      out,
    ]);
    assertEquals(r.code, 0, r.text);
    assert(r.text.includes("2 case(s)"), r.text);
    const png = decode(await Deno.readFile(out));
    assertEquals(png.height, 6 + 16 + 48 + 6, "one row of two tiles");
    const listed = await runTask(cacheMain, ["inspect", server.url]);
    assertEquals(listed.code, 0, listed.text);
    assert(/ds\/a\s+40x36x20\s+1\.50x1\.50x1\.50\s+uint16/.test(listed.text), listed.text);
  } finally {
    await server.shutdown();
  }
});
