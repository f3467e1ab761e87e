// Tests of `renderPreview` and `cache preview`: one case's mid-slices in mm, a contact
// sheet with names, from a folder and over HTTP.
import { join } from "node:path";
import { decode } from "fast-png";
import { CacheReader } from "../../../cache/read/cache_reader.ts";
import { OUTLINE, paddingBox, renderPreview } from "../../../cache/inspect/preview.ts";
import { planPrep, runPlan } from "../../../prep/pipeline/plan.ts";
import { makePhantom } from "../../../prep/synthetic/phantom.ts";
import { writeNifti } from "../../../prep/formats/write_nifti.ts";
import { serveCache } from "../../../cache/store/serve.ts";
import { main as cacheMain } from "../../../tasks/cache.ts";
import { assert, assertEquals, assertRejects, runTask, tempDir } from "../../_helpers.ts";
import { exitCodeOf } from "../../../cli/run.ts";
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

Deno.test("a thin series padded to the recipe's minimum shape is drawn with the outline of its own voxels", async () => {
  await using dir = await tempDir();
  const inputs = join(dir.path, "in");
  await Deno.mkdir(inputs);
  // 6 slices of 4 mm: 16 slices at 1.5 mm, zero-padded to 64 by voco-v2.
  const thin = makePhantom({ shape: [80, 80, 6], spacingMm: [2, 2, 4], seed: 3 });
  await Deno.writeFile(join(inputs, "thin.nii.gz"), writeNifti(thin));
  const root = join(dir.path, "c.zarr");
  await runPlan(await planPrep({ out: root, inputs: [inputs] }), { workers: 1 });
  const reader = await CacheReader.open(root);
  const [info] = await reader.list();
  assert(info.shape, "listed with its shape");
  const box = paddingBox(info.shape, info.attributes ?? {});
  assert(box, "the case records its padding");
  const [z0, z1] = box[2];
  assert(z1 - z0 < 20 && info.shape[2] === 64, `${box} in ${info.shape}`);
  const outlined = (png: ReturnType<typeof decode>) => png.data.filter((x) => x === OUTLINE).length;
  const drawn = outlined(decode(await renderPreview(reader, [info.path])));
  const without = outlined(decode(await renderPreview(reader, [info.path], { outline: false })));
  assert(drawn - without > 50, `outline pixels: ${drawn} with, ${without} without`);
  // A case without padding is drawn the same either way.
  await writeTestCache(join(dir.path, "plain.zarr"));
  const plain = await CacheReader.open(join(dir.path, "plain.zarr"));
  const a = await renderPreview(plain, ["ds/a"]),
    b = await renderPreview(plain, ["ds/a"], { outline: false });
  assert(a.length === b.length && a.every((x, i) => x === b[i]), "no outline without padding");
});

Deno.test("cache preview of a case the cache lacks exits 2 naming the closest case, writing nothing", async () => {
  await using dir = await tempDir();
  const root = join(dir.path, "c.zarr");
  await writeTestCache(root);
  const out = join(dir.path, "p.png");
  for (const spec of ["ds/aa", "a"]) {
    const e = await assertRejects(() =>
      runTask(cacheMain, ["preview", root, "--case", spec, "--out", out])
    );
    assertEquals(exitCodeOf(e), 2, String(e));
    assert((e as Error).message.includes(`--case ${spec}: no such case in ${root}`), String(e));
    assert((e as Error).message.includes("did you mean ds/a"), String(e));
  }
  assertEquals(await Deno.stat(out).then(() => true, () => false), false, "no PNG written");
});
