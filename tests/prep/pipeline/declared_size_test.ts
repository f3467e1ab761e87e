// What prep learns from a file's name and header before reading it: a NIfTI that declares
// more voxels than --max-voxels is refused before a byte is inflated, and an image hidden
// behind a leading dot (`..nii.gz`) is named as skipped rather than passed over in silence.
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { processCase } from "../../../prep/pipeline/process_case.ts";
import { discoverInputs } from "../../../prep/pipeline/discover.ts";
import { resolveRecipe } from "../../../prep/recipes/recipe.ts";
import { makePhantom } from "../../../prep/synthetic/phantom.ts";
import { writeNifti } from "../../../prep/formats/write_nifti.ts";
import { assert, assertEquals, assertRejects, tempDir } from "../../_helpers.ts";

Deno.test("a .nii.gz declaring 1024^3 voxels is refused from its header, before inflating", async () => {
  await using dir = await tempDir();
  const raw = writeNifti(makePhantom({ shape: [16, 16, 16] }), { gzip: false });
  // The header says 1024 x 1024 x 1024 int16 (2 GiB); the stream holds 8 KiB of voxels.
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  for (let a = 0; a < 3; a++) view.setInt16(42 + 2 * a, 1024, true);
  const path = join(dir.path, "big.nii.gz");
  await Deno.writeFile(path, gzipSync(raw));
  const rss0 = Deno.memoryUsage().rss;
  await assertRejects(
    () =>
      processCase({
        path,
        files: [path],
        format: "nifti",
        source: "big.nii.gz",
        stagingDir: join(dir.path, "staging"),
        recipe: resolveRecipe("voco-v2"),
        storage: { dtype: "uint16", compressor: "blosc-zstd", level: 3, chunk: 48 },
        settingsHash: "x",
        maxVoxels: 2 ** 29,
      }),
    /The image declares 1024x1024x1024 voxels \(4\.29 GB as float32\), more than --max-voxels 536870912; refused before reading its voxels/,
  );
  const grown = (Deno.memoryUsage().rss - rss0) / 2 ** 20;
  assert(grown < 64, `resident memory grew by ${grown.toFixed(0)} MiB`);
});

Deno.test("an image named with a leading dot (..nii.gz) is skipped with the reason, not in silence", async () => {
  await using dir = await tempDir();
  const bytes = writeNifti(makePhantom({ shape: [16, 16, 16] }));
  for (const name of ["case0.nii.gz", "..nii.gz", ".DS_Store"]) {
    await Deno.writeFile(join(dir.path, name), bytes);
  }
  const found = await discoverInputs([dir.path]);
  assertEquals(found.cases.map((c) => c.name), ["case0"]);
  assertEquals(found.skipped.map((s) => [s.path.split("/").pop(), s.reason]), [
    ["..nii.gz", "hidden (its name starts with a dot): rename it to prep it"],
  ]);
});
