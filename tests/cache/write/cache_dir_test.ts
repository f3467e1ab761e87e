// Tests of the cache folder: creating a new cache from many runs at once.
import { join } from "node:path";
import { cacheFolderProblem, ensureDataset, initCache } from "../../../cache/write/cache_dir.ts";
import { assertEquals, tempDir } from "../../_helpers.ts";

Deno.test("initCache() and cacheFolderProblem() from many runs at once on a new folder: one root, none refused", async () => {
  await using dir = await tempDir();
  for (let round = 0; round < 20; round++) {
    const root = join(dir.path, `c${round}.zarr`);
    const runs = Array.from({ length: 8 }, async (_, i) => {
      // Some runs look first (as prep does), some create at once, then make their group.
      if (i % 2) assertEquals(await cacheFolderProblem(root), undefined);
      await initCache(root, { layout: "sharded" });
      await ensureDataset(root, `ds${i}`);
      assertEquals(await cacheFolderProblem(root), undefined);
    });
    await Promise.all(runs);
    const meta = JSON.parse(await Deno.readTextFile(join(root, "zarr.json")));
    assertEquals([meta.node_type, meta.attributes.voco_cache.layout], ["group", "sharded"]);
    const left = await Array.fromAsync(Deno.readDir(join(root, ".staging")));
    assertEquals(left.map((e) => e.name), [], "no temporary file left");
  }
});
