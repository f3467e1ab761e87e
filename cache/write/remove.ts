// Removing cases or whole dataset groups from a cache, safely: only inside a VoCo cache,
// only nodes that exist, never through a symbolic link out of it.
import { join, relative } from "node:path";
import { isVocoCache, removeCase, removeDataset } from "./cache_dir.ts";
import { isValidNodeName } from "../format/format.ts";
import { refreshConsolidated } from "./consolidate.ts";
import { BadInputError, NotACacheError } from "../errors.ts";

/**
 * Removes each of `specs` (`DATASET` for a group with all its cases, `DATASET/CASE` for
 * one case) from the cache at `root`, and refreshes its consolidated metadata. Every spec
 * is checked before anything is removed: `root` must be a VoCo cache (a Zarr group with
 * `voco_cache` attributes), each name a valid node name (no `..`, no `/` beyond the one),
 * each node present and a real folder inside the cache (not a symbolic link). Throws a
 * `BadInputError` naming the first bad spec (a `NotACacheError` when `root` is no cache). Returns the removed specs.
 */
export async function removeFromCache(root: string, specs: readonly string[]): Promise<string[]> {
  if (!(await isVocoCache(root))) {
    throw new NotACacheError(
      `${root} is not a VoCo cache (no root zarr.json with voco_cache): refused`,
      { path: root },
    );
  }
  const realRoot = await Deno.realPath(root);
  const targets: { spec: string; dataset: string; name?: string }[] = [];
  for (const spec of specs) {
    const parts = spec.replace(/\/+$/, "").split("/");
    if (parts.length > 2 || !parts.every(isValidNodeName)) {
      throw new BadInputError(`"${spec}" is not DATASET or DATASET/CASE of the cache`);
    }
    const [dataset, name] = parts;
    const path = join(root, ...parts);
    const info = await Deno.lstat(path).catch(() => undefined);
    if (!info) throw new BadInputError(`${spec}: no such ${name ? "case" : "dataset"} in ${root}`);
    if (!info.isDirectory) throw new BadInputError(`${spec}: not a folder of the cache (a link?)`);
    const real = await Deno.realPath(path);
    if (relative(realRoot, real).startsWith("..") || real === realRoot) {
      throw new BadInputError(`${spec}: lies outside the cache`);
    }
    const meta = await Deno.readTextFile(join(path, "zarr.json")).then(
      (t) => JSON.parse(t),
      () => undefined,
    );
    const want = name ? "array" : "group";
    // A case whose metadata is damaged can still be removed; a stray folder cannot.
    if (meta && meta.node_type !== want) throw new BadInputError(`${spec}: not a Zarr ${want}`);
    if (!meta && !(await Deno.stat(join(path, "zarr.json")).catch(() => undefined))) {
      throw new BadInputError(`${spec}: not a Zarr node (no zarr.json): refused`);
    }
    targets.push({ spec, dataset, name });
  }
  for (const t of targets) {
    if (t.name) await removeCase(root, t.dataset, t.name);
    else await removeDataset(root, t.dataset);
  }
  await refreshConsolidated(root);
  return targets.map((t) => t.spec);
}
