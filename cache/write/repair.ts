// `cache verify --fix`: what a verify report found broken in a cache folder, repaired so
// that the next `prep` rebuilds it: broken cases removed, dataset group and root metadata
// rewritten, the consolidated copy rewritten from what the cache holds.
import { join } from "node:path";
import { CACHE_FORMAT_VERSION, isValidNodeName } from "../format/format.ts";
import { removeCase, writeJsonAtomic } from "./cache_dir.ts";
import { consolidate, isConsolidated } from "./consolidate.ts";

/** A node a verify report names, with what was found (a `CaseCheck` of `cache/inspect`). */
export interface BrokenNode {
  /** Dataset group (empty for the root). */
  dataset: string;
  /** Case name (empty for a group and the root). */
  name: string;
  /** What was checked. @default {"case"} */
  node?: "case" | "group" | "cache";
  /** What is wrong; nothing is done for a node without problems. */
  problems: readonly string[];
}

/** Whether `path` exists (a link counts as itself). */
const exists = (path: string) => Deno.lstat(path).then(() => true, () => false);

/** The layout the cache's cases were written with, from the first one that says. */
async function layoutOfCases(root: string): Promise<string | undefined> {
  const dirs = async (dir: string) =>
    (await Array.fromAsync(Deno.readDir(dir)).catch(() => []))
      .filter((d) => d.isDirectory && !d.name.startsWith(".")).map((d) => join(dir, d.name));
  for (const group of await dirs(root)) {
    for (const c of await dirs(group)) {
      const meta = await Deno.readTextFile(join(c, "zarr.json")).then(JSON.parse, () => undefined);
      const layout = meta?.attributes?.storage?.layout;
      if (layout === "sharded" || layout === "chunked") return layout;
    }
  }
  return undefined;
}

/**
 * Repairs the cache folder `root` after `cache verify` found `nodes` broken: each broken
 * case is removed (renamed out of the cache first, so that the next `prep` rebuilds it;
 * one listed only in the consolidated copy has nothing to remove); a broken dataset
 * group's `zarr.json` is written again (its cases then listed and verified again); a
 * missing or unreadable root `zarr.json` is written again; and the consolidated metadata,
 * when the cache has it or it was found broken, is rewritten from what the cache holds.
 * Returns what was done, one line each.
 */
export async function repairCache(root: string, nodes: readonly BrokenNode[]): Promise<string[]> {
  const done: string[] = [];
  const broken = nodes.filter((n) => n.problems.length);
  const rootBroken = broken.find((n) => (n.node ?? "case") === "cache");
  if (rootBroken && !(await Deno.readTextFile(join(root, "zarr.json")).then(JSON.parse, () => 0))) {
    const layout = await layoutOfCases(root);
    await writeJsonAtomic(root, join(root, "zarr.json"), {
      zarr_format: 3,
      node_type: "group",
      attributes: {
        voco_cache: {
          format_version: CACHE_FORMAT_VERSION,
          created: new Date().toISOString(),
          ...(layout ? { layout } : {}),
        },
      },
    });
    done.push("wrote the cache's root zarr.json again");
  }
  for (const n of broken) {
    const kind = n.node ?? "case";
    if (kind === "case" && isValidNodeName(n.dataset) && isValidNodeName(n.name)) {
      if (!(await exists(join(root, n.dataset, n.name)))) continue;
      await removeCase(root, n.dataset, n.name);
      done.push(`removed ${n.dataset}/${n.name}`);
    } else if (kind === "group" && isValidNodeName(n.dataset)) {
      await writeJsonAtomic(root, join(root, n.dataset, "zarr.json"), {
        zarr_format: 3,
        node_type: "group",
        attributes: { dataset: n.dataset },
      });
      done.push(`wrote ${n.dataset}/zarr.json again`);
    }
  }
  if ((done.length || rootBroken) && await isConsolidated(root)) {
    await consolidate(root);
    done.push("rewrote the consolidated metadata");
  }
  return done;
}
