// A tiny voco-v2 (or voco-v1) cache of phantoms for the training tests and the benchmark.
import { join } from "node:path";
import { discoverCases } from "../../prep/pipeline/discover.ts";
import { runPrep } from "../../prep/pipeline/run_prep.ts";
import { resolveRecipe } from "../../prep/recipes/recipe.ts";
import { makePhantom } from "../../prep/synthetic/phantom.ts";
import { writeNifti } from "../../prep/formats/write_nifti.ts";

/** Writes `n` phantoms and preps them into `dir/cache.zarr`; resolves to the cache path. */
export async function tinyCache(dir: string, n = 3, recipe = "voco-v2"): Promise<string> {
  const inputs = join(dir, "inputs");
  await Deno.mkdir(inputs, { recursive: true });
  for (let i = 0; i < n; i++) {
    const v = makePhantom({ shape: [96, 96, 48], spacingMm: [2, 2, 3], seed: i + 1 });
    await Deno.writeFile(join(inputs, `case${i}.nii.gz`), writeNifti(v));
  }
  const out = join(dir, "cache.zarr");
  const summary = await runPrep(await discoverCases([inputs]), {
    out,
    dataset: "phantoms",
    recipe: resolveRecipe(recipe),
    storage: { dtype: "uint16", compressor: "blosc-zstd", level: 3, chunk: 64 },
    workers: 1,
  });
  const failed = summary.reports.filter((r) => r.status === "failed");
  if (failed.length) throw new Error(`prep failed: ${JSON.stringify(failed)}`);
  return out;
}
