// What a cache holds, case by case and dataset by dataset: shapes, bytes on disk, and
// what the same volumes would take as float32 and as MONAI PersistentDataset pickles.
import { join } from "node:path";
import { listCases } from "./cache_dir.ts";

/** One case as `cache ls` shows it. */
export interface CaseInfo {
  /** Dataset group. */
  dataset: string;
  /** Case name (empty for a damaged dataset group). */
  name: string;
  /** Array shape `[X, Y, Z]`. */
  shape?: number[];
  /** Voxel spacing in mm. */
  spacing?: number[];
  /** Stored dtype. */
  dtype?: string;
  /** `sharded` or `chunked`. */
  layout?: string;
  /** Bytes of its files. */
  bytes: number;
  /** Number of its files (`zarr.json` included). */
  files: number;
  /** Source path relative to its dataset root. */
  source?: string;
  /** Recipe name. */
  recipe?: string;
  /** Why its metadata cannot be read. */
  error?: string;
}

/** Totals of one dataset group, as `cache stats` shows them. */
export interface DatasetStats {
  /** Dataset group. */
  dataset: string;
  /** Readable cases. */
  cases: number;
  /** Cases whose metadata cannot be read. */
  broken: number;
  /** Bytes on disk. */
  bytes: number;
  /** Files on disk. */
  files: number;
  /** Voxels of all cases. */
  voxels: number;
  /** The same voxels as float32. */
  float32Bytes: number;
  /** What a MONAI PersistentDataset of them would take (see {@linkcode PICKLE_OVERHEAD}). */
  persistentBytes: number;
  /** Cases per recipe name. */
  recipes: Record<string, number>;
}

/**
 * Bytes a MONAI `PersistentDataset` pickle adds to a case's float32 voxels: the torch
 * zip container, the MetaTensor's affine and meta dict, the key names. Measured around
 * 3-5 kB for a VoCo-preprocessed CT; an estimate, small next to the voxels.
 */
export const PICKLE_OVERHEAD = 4096;

/** Bytes and regular files under `dir`, recursively. */
export async function folderSize(dir: string): Promise<{ bytes: number; files: number }> {
  let bytes = 0, files = 0;
  for await (const e of Deno.readDir(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) {
      const r = await folderSize(p);
      bytes += r.bytes;
      files += r.files;
    } else if (e.isFile) {
      bytes += (await Deno.stat(p)).size;
      files++;
    }
  }
  return { bytes, files };
}

/** Every case of the cache at `root` with its shape, spacing, bytes and source. */
export async function listCaseInfo(root: string): Promise<CaseInfo[]> {
  const out: CaseInfo[] = [];
  for (const c of await listCases(root)) {
    if (c.error || !c.name) {
      out.push({ dataset: c.dataset, name: c.name, bytes: 0, files: 0, error: c.error });
      continue;
    }
    const { bytes, files } = await folderSize(c.dir).catch(() => ({ bytes: 0, files: 0 }));
    try {
      const meta = JSON.parse(await Deno.readTextFile(join(c.dir, "zarr.json")));
      const a = meta.attributes ?? {};
      const sharded = (meta.codecs ?? []).some((x: { name: string }) =>
        x.name === "sharding_indexed"
      );
      out.push({
        dataset: c.dataset,
        name: c.name,
        shape: meta.shape,
        spacing: a.spacing,
        dtype: meta.data_type,
        layout: sharded ? "sharded" : "chunked",
        bytes,
        files,
        source: a.source,
        recipe: a.recipe?.name,
      });
    } catch (e) {
      out.push({ dataset: c.dataset, name: c.name, bytes, files, error: (e as Error).message });
    }
  }
  return out;
}

/** Totals per dataset group of {@linkcode listCaseInfo}'s cases, in group order. */
export function datasetStats(cases: readonly CaseInfo[]): DatasetStats[] {
  const by = new Map<string, DatasetStats>();
  for (const c of cases) {
    let s = by.get(c.dataset);
    if (!s) {
      s = {
        dataset: c.dataset,
        cases: 0,
        broken: 0,
        bytes: 0,
        files: 0,
        voxels: 0,
        float32Bytes: 0,
        persistentBytes: 0,
        recipes: {},
      };
      by.set(c.dataset, s);
    }
    s.bytes += c.bytes;
    s.files += c.files;
    if (c.error || !c.shape) {
      s.broken++;
      continue;
    }
    const voxels = c.shape.reduce((a, b) => a * b, 1);
    s.cases++;
    s.voxels += voxels;
    s.float32Bytes += 4 * voxels;
    s.persistentBytes += 4 * voxels + PICKLE_OVERHEAD;
    const r = c.recipe ?? "?";
    s.recipes[r] = (s.recipes[r] ?? 0) + 1;
  }
  return [...by.values()];
}
