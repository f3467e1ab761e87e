// Consolidated metadata: the whole hierarchy's metadata in the root zarr.json, as
// zarr-python 3 writes it, so that opening a remote cache costs one request.
import { join } from "node:path";
import { STAGING_DIR } from "../format/format.ts";
import { writeJsonAtomic } from "./cache_dir.ts";
import { consolidatedSha256 } from "../format/integrity.ts";
import { NotACacheError } from "../errors.ts";

type Json = Record<string, unknown>;

async function readJson(path: string): Promise<Json | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch {
    return undefined;
  }
}

async function subfolders(dir: string): Promise<string[]> {
  try {
    return (await Array.fromAsync(Deno.readDir(dir)))
      .filter((e) => e.isDirectory && e.name !== STAGING_DIR).map((e) => e.name).sort();
  } catch {
    return [];
  }
}

/**
 * The metadata of every node below the root (dataset groups and case arrays), keyed by
 * its path relative to the root (`btcv`, `btcv/img0001`), as the `metadata` member of
 * zarr-python 3's `consolidated_metadata`. Nodes whose `zarr.json` cannot be read are
 * left out.
 */
export async function hierarchyMetadata(root: string): Promise<Record<string, Json>> {
  const out: Record<string, Json> = {};
  for (const dataset of await subfolders(root)) {
    const group = await readJson(join(root, dataset, "zarr.json"));
    if (group?.node_type !== "group") continue;
    const { consolidated_metadata: _, ...plain } = group;
    out[dataset] = plain;
    for (const name of await subfolders(join(root, dataset))) {
      const meta = await readJson(join(root, dataset, name, "zarr.json"));
      if (meta?.node_type === "array") out[`${dataset}/${name}`] = meta;
    }
  }
  return out;
}

/** Whether the cache's root `zarr.json` holds consolidated metadata. */
export async function isConsolidated(root: string): Promise<boolean> {
  const meta = await readJson(join(root, "zarr.json"));
  return typeof meta?.consolidated_metadata === "object" && meta.consolidated_metadata !== null;
}

/**
 * Makes the root's consolidated metadata hold what the cache holds: `"fresh"` when it
 * already does (nothing written), `"written"` when the cache had none, `"refreshed"`
 * when it was out of date (a case added, removed or rewritten since).
 */
export async function ensureConsolidated(root: string): Promise<"fresh" | "written" | "refreshed"> {
  const meta = await readJson(join(root, "zarr.json"));
  const cm = meta?.consolidated_metadata as Json | undefined;
  if (cm && typeof cm === "object") {
    const now = await consolidatedSha256(await hierarchyMetadata(root));
    const digest = ((meta!.attributes as Json | undefined)?.voco_cache as Json | undefined)
      ?.consolidated_sha256;
    const held = await consolidatedSha256((cm.metadata ?? {}) as Record<string, Json>);
    if (digest === now && held === now) return "fresh";
  }
  await consolidate(root);
  return cm ? "refreshed" : "written";
}

/**
 * Writes the hierarchy's metadata into the root `zarr.json` as `consolidated_metadata`
 * (`{kind: "inline", must_understand: false, metadata: {...}}`, zarr-python 3's
 * convention, which zarrita's `withConsolidatedMetadata` reads too), and its digest as
 * `voco_cache.consolidated_sha256` of the root's attributes (so that a node added to or
 * dropped from the copy is seen). Runs under a lock file, so that of several runs
 * finishing together the last one to write has seen every case published before it.
 * Returns the number of nodes recorded.
 */
export async function consolidate(root: string): Promise<number> {
  const path = join(root, "zarr.json");
  const meta = await readJson(path);
  if (meta?.node_type !== "group") {
    throw new NotACacheError(`${root} is not a cache (no root group)`, { path: root });
  }
  await Deno.mkdir(join(root, STAGING_DIR), { recursive: true });
  using lock = await Deno.open(join(root, STAGING_DIR, "consolidate.lock"), {
    create: true,
    write: true,
  });
  await lock.lock(true);
  try {
    const fresh = (await readJson(path)) ?? meta;
    const metadata = await hierarchyMetadata(root);
    const attributes = (fresh.attributes ?? {}) as Json;
    const voco = { ...(attributes.voco_cache ?? {}) as Json };
    voco.consolidated_sha256 = await consolidatedSha256(metadata);
    await writeJsonAtomic(root, path, {
      ...fresh,
      attributes: { ...attributes, voco_cache: voco },
      consolidated_metadata: { kind: "inline", must_understand: false, metadata },
    });
    return Object.keys(metadata).length;
  } finally {
    await lock.unlock();
  }
}

/**
 * Rewrites the consolidated metadata when the cache has some (after a prep run, a removal),
 * so that it never lists what is gone nor misses what was added. Returns whether it did.
 */
export async function refreshConsolidated(root: string): Promise<boolean> {
  if (!(await isConsolidated(root))) return false;
  await consolidate(root);
  return true;
}
