// What a cache holds, case by case and dataset by dataset: shapes, bytes stored, and
// what the same volumes would take as float32 and as MONAI PersistentDataset pickles; of
// a folder, or of a cache at a URL (http(s)://, s3://).
import { join } from "node:path";
import {
  type CacheCaseInfo,
  CacheReader,
  type CacheReaderOptions,
  folderPath,
} from "../read/cache_reader.ts";
import { folderOrder, storedKeys } from "../format/stored_keys.ts";
import { mapLimit } from "../store/limit.ts";

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
  /** Bytes of its files (at a URL: of the objects stored, see {@linkcode listCaseInfo}). */
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

/** Options of {@linkcode listCaseInfo}: how to read a cache at a URL. */
export interface ListCaseInfoOptions extends CacheReaderOptions {
  /** HEAD requests sent at once to a plain HTTP server (sizes). @default {16} */
  concurrency?: number;
}

/**
 * Every case of the cache at `location` with its shape, spacing, bytes and source:
 * `location` is a folder path, or a `file://`, `http(s)://` or `s3://bucket/prefix` URL
 * (read as {@linkcode CacheReader} reads it, with the same options). A plain HTTP server
 * lists no folders: the cache then needs consolidated metadata, else this throws saying
 * so.
 */
export async function listCaseInfo(
  location: string,
  options: ListCaseInfoOptions = {},
): Promise<CaseInfo[]> {
  const remote = /^(https?|s3):\/\//i.test(location);
  const reader = await CacheReader.open(remote ? location : folderPath(location), options);
  if (remote) return await remoteCaseInfo(reader, options);
  const out: CaseInfo[] = [];
  for (const c of folderOrder(await reader.list())) {
    const size = c.error
      ? { bytes: 0, files: 0 }
      : await folderSize(join(reader.location, c.dataset, c.name)).catch(() => ({
        bytes: 0,
        files: 0,
      }));
    out.push(caseInfoOf(c, size));
  }
  return out;
}

/**
 * {@linkcode listCaseInfo} of a cache at a URL. The shapes and attributes come from the
 * reader's listing (one request with consolidated metadata). The bytes and files are
 * what is stored, as a folder walk counts them, measured as cheaply as each kind of
 * server allows: on S3, one ListObjectsV2 of the whole cache (each object's size, 1000
 * objects a request, whatever the layout); on a plain HTTP server, which lists nothing,
 * a HEAD request (its Content-Length) for the case's zarr.json and each stored file its
 * metadata names (one shard per case by default; every chunk of a chunked case),
 * `concurrency` at a time. A shard's index would give only its chunks' extent, not the
 * file's size, and costs a GET of the same number of requests; reading chunk files to
 * measure them would read the cache. A file missing (404) is not counted, as a folder
 * walk would not find it.
 */
async function remoteCaseInfo(
  reader: CacheReader,
  options: ListCaseInfoOptions,
): Promise<CaseInfo[]> {
  const cases = folderOrder(await reader.list());
  const sizes = new Map<string, { bytes: number; files: number }>();
  const add = (path: string, size: number) => {
    const s = sizes.get(path) ?? { bytes: 0, files: 0 };
    s.bytes += size;
    s.files++;
    sizes.set(path, s);
  };
  let listed = false;
  if (reader.kind === "s3") {
    try {
      for (const o of await reader.listStored("")) {
        const [dataset, name] = o.key.split("/", 2);
        if (name !== undefined && o.key.length > dataset.length + name.length + 1) {
          add(`/${dataset}/${name}`, o.size);
        }
      }
      listed = true;
    } catch {
      // Listing refused (a public bucket that allows reads only): HEAD each file instead.
    }
  }
  if (!listed) {
    const files: { path: string; key: `/${string}` }[] = [];
    for (const c of cases.filter((c) => !c.error)) {
      // With consolidated metadata (which a plain HTTP listing needs), no request.
      const meta = await reader.store.get(`${c.path}/zarr.json`);
      const parsed = meta ? JSON.parse(new TextDecoder().decode(meta)) : {};
      for (const k of ["zarr.json", ...storedKeys(parsed)]) {
        files.push({ path: c.path, key: `${c.path}/${k}` });
      }
    }
    const got = await mapLimit(files, options.concurrency ?? 16, (f) => reader.size(f.key));
    files.forEach((f, i) => got[i] !== undefined && add(f.path, got[i]!));
  }
  return cases.map((c) => caseInfoOf(c, sizes.get(c.path) ?? { bytes: 0, files: 0 }));
}

/** A listed case as {@linkcode CaseInfo}, with its stored bytes and files. */
function caseInfoOf(c: CacheCaseInfo, stored: { bytes: number; files: number }): CaseInfo {
  if (c.error || !c.shape) {
    // As for a folder, whose listing gives no sizes for an unreadable case.
    return { dataset: c.dataset, name: c.name, bytes: 0, files: 0, error: c.error ?? "no shape" };
  }
  const a: Record<string, unknown> = c.attributes ?? {};
  return {
    dataset: c.dataset,
    name: c.name,
    shape: c.shape,
    spacing: a.spacing as number[] | undefined,
    dtype: c.dataType,
    layout: c.shardShape ? "sharded" : "chunked",
    ...stored,
    source: a.source as string | undefined,
    recipe: (a.recipe as { name?: string } | undefined)?.name,
  };
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
