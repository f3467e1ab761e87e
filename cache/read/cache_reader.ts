// Reading a cache from anywhere (a folder, an http(s):// URL, an s3:// URL): listing its
// cases and reading zero-padded crops through zarrita with coalesced range requests.
import * as zarr from "zarrita";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type FetchStats, HttpStore } from "../store/http_store.ts";
import { listS3Folders, listS3Objects, resolveS3, type S3Options } from "../store/s3.ts";
import { type CaseAttributes, type OpenCase, openCase, type ReadCropOptions } from "./read_case.ts";
import type { CaseAffine, CaseShape, CaseVolume } from "../format/case_volume.ts";
import { STAGING_DIR } from "../format/format.ts";
import { mapLimit } from "../store/limit.ts";
import { coalesceRanges } from "../store/coalesce.ts";
import { FileStore } from "../store/file_store.ts";
import { BadInputError, DamagedCacheError, NotACacheError } from "../errors.ts";
import { consolidatedSha256, integrityProblems } from "../format/integrity.ts";

/** Options of {@linkcode CacheReader.open}: plain data, so a Worker can be given them. */
export interface CacheReaderOptions extends S3Options {
  /** Headers sent with every HTTP request (an `Authorization`, say). @default {{}} */
  headers?: Record<string, string>;
  /** Time for one HTTP request, in ms. @default {30000} */
  timeoutMs?: number;
  /** Retries of an HTTP request that failed on the network or with 5xx. @default {2} */
  retries?: number;
  /**
   * Byte gap up to which range requests to one file (inner chunks of a shard) are merged
   * into one; 0 merges only touching ranges.
   * @default {0}
   */
  coalesceGapBytes?: number;
  /** Cases kept open (metadata parsed) for further crops. @default {64} */
  maxOpenCases?: number;
}

/** Where a {@linkcode CacheReader} reads from. */
export type CacheLocationKind = "file" | "http" | "s3";

/** One case of a cache as listed by {@linkcode CacheReader.list}. */
export interface CacheCaseInfo {
  /** Dataset group name. */
  dataset: string;
  /** Case array name. */
  name: string;
  /** Store path, `/dataset/name`. */
  path: `/${string}`;
  /** Array shape `[x, y, z]`; absent when the metadata is unreadable. */
  shape?: CaseShape;
  /** Stored data type (`uint16`, `float32`, ...). */
  dataType?: string;
  /** Shape of the unit a read decodes (the inner chunk of a sharded array). */
  chunkShape?: number[];
  /** Shape of a shard (one stored object) when the array is sharded. */
  shardShape?: number[];
  /** The case's attributes. */
  attributes?: CaseAttributes;
  /** Why the case cannot be read, when it cannot. */
  error?: string;
}

/** What a folder of the cache (a dataset group's, a case's) holds, as stored. */
export interface StoredNode {
  /** Whether it holds a `zarr.json`. */
  meta: boolean;
  /** Entries besides `zarr.json` (a folder's own: case folders, `c/`; on S3: objects). */
  entries: number;
}

/** The nodes a cache holds as stored (not as its consolidated copy says). */
export interface StoredNodes {
  /** Dataset groups by name (`ds`). */
  groups: Map<string, StoredNode>;
  /** Cases by name (`ds/a`). */
  cases: Map<string, StoredNode>;
}

/** One stored object of a cache (a file, an S3 object) and its size. */
export interface StoredObject {
  /** Its key relative to the listed prefix (`ds/case/c/0/0/0`). */
  key: string;
  /** Size in bytes. */
  size: number;
}

type Meta = Record<string, unknown>;

/** True when `s` is a URL this reader opens (`http:`, `https:`, `s3:`, `file:`). */
export function isCacheUrl(s: string): boolean {
  return /^(https?|s3|file):\/\//i.test(s);
}

/** A folder location as a path (a `file://` URL converted; anything else as it is). */
export function folderPath(location: string): string {
  return /^file:\/\//i.test(location) ? fileURLToPath(location) : location;
}

function decodeJson(bytes: Uint8Array | undefined, what: string): Meta | undefined {
  if (!bytes) return undefined;
  let meta: unknown;
  try {
    meta = JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new DamagedCacheError(`Unreadable Zarr metadata ${what}: ${(e as Error).message}`, {
      path: what,
    });
  }
  if (!meta || typeof meta !== "object" || Array.isArray(meta)) {
    throw new DamagedCacheError(`Unreadable Zarr metadata ${what}: not a JSON object`, {
      path: what,
    });
  }
  return meta as Meta;
}

function caseInfo(dataset: string, name: string, meta: Meta | undefined): CacheCaseInfo {
  const path = `/${dataset}/${name}` as const;
  if (!meta || meta.node_type !== "array") {
    return { dataset, name, path, error: "no Zarr array metadata" };
  }
  const grid = (meta.chunk_grid as { configuration?: { chunk_shape?: number[] } })?.configuration
    ?.chunk_shape;
  const codecs = (meta.codecs ?? []) as { name: string; configuration?: Meta }[];
  const shard = codecs.find((c) => c.name === "sharding_indexed");
  return {
    dataset,
    name,
    path,
    shape: meta.shape as CaseShape,
    dataType: meta.data_type as string,
    chunkShape: shard ? shard.configuration?.chunk_shape as number[] : grid,
    shardShape: shard ? grid : undefined,
    attributes: (meta.attributes ?? {}) as CaseAttributes,
  };
}

/** {@linkcode caseInfo}, with `error` when the case's integrity record does not hold. */
async function checkedInfo(dataset: string, name: string, meta: Meta): Promise<CacheCaseInfo> {
  const info = caseInfo(dataset, name, meta);
  if (info.error) return info;
  const problems = await integrityProblems(meta, `/${dataset}/${name}`);
  return problems.length ? { dataset, name, path: info.path, error: problems.join("; ") } : info;
}

/**
 * A cache opened for reading from a local folder, an `http(s)://` URL (such as
 * `deno task cache serve`), or `s3://bucket/prefix` (an S3-compatible endpoint, signed
 * with SigV4 when credentials are given or in the `AWS_*` variables, else anonymous).
 *
 * When the root `zarr.json` holds `consolidated_metadata` (the Zarr v3 convention that
 * zarr-python writes), opening costs one request and no case metadata is fetched again.
 * Crops decode only the chunks they touch (inner chunks of sharded arrays, whose byte
 * ranges are fetched in parallel and merged when adjacent).
 *
 * @example Read a crop over HTTP
 * ```ts ignore
 * const reader = await CacheReader.open("http://127.0.0.1:8000/");
 * const [first] = await reader.list();
 * const crop = await reader.readCrop(first.path, [0, 0, 0], [192, 192, 64]);
 * console.log(crop.shape, crop.data[0]); // [192, 192, 64], a value in 0..1
 * ```
 */
export class CacheReader {
  /** The location as given (a path made absolute, or the URL). */
  readonly location: string;
  /** Where the cache is read from. */
  readonly kind: CacheLocationKind;
  /** The store crops are read through (zarrita's interface). */
  readonly store: zarr.AsyncReadable;
  /** The root group's attributes (`voco_cache`, ...). */
  readonly attributes: Meta;
  /** True when the root holds consolidated metadata (listing costs nothing more). */
  readonly consolidated: boolean;
  readonly #raw: FileStore | HttpStore;
  readonly #consolidated?: Map<string, Meta>;
  readonly #s3?: { bucketRoot: string; prefix: string };
  readonly #open = new Map<string, Promise<OpenCase>>();
  readonly #maxOpen: number;
  #consolidatedChecked = false;

  private constructor(
    location: string,
    kind: CacheLocationKind,
    raw: FileStore | HttpStore,
    rootMeta: Meta,
    options: CacheReaderOptions,
    s3?: { bucketRoot: string; prefix: string },
  ) {
    this.location = location;
    this.kind = kind;
    this.#raw = raw;
    this.#s3 = s3;
    this.#maxOpen = options.maxOpenCases ?? 64;
    this.attributes = (rootMeta.attributes ?? {}) as Meta;
    const cm = rootMeta.consolidated_metadata as { metadata?: Record<string, Meta> } | undefined;
    if (cm && typeof cm.metadata === "object" && cm.metadata) {
      this.#consolidated = new Map(
        Object.entries(cm.metadata).map(([k, v]) => [k.replace(/^\/+|\/+$/g, ""), v]),
      );
    }
    this.consolidated = this.#consolidated !== undefined;
    const known = this.#consolidated;
    // Touching ranges only by default: merging across gaps of 64 KiB - 1 MiB made crops
    // over loopback HTTP slower (fewer requests, but up to twice the bytes).
    const coalesced = coalesceRanges(raw, options.coalesceGapBytes ?? 0);
    const encoder = new TextEncoder();
    this.store = {
      get(key: zarr.AbsolutePath) {
        const node = key.endsWith("/zarr.json") ? key.slice(1, -"/zarr.json".length) : undefined;
        const meta = node !== undefined ? known?.get(node) : undefined;
        return meta ? Promise.resolve(encoder.encode(JSON.stringify(meta))) : raw.get(key);
      },
      getRange: coalesced,
    };
  }

  /**
   * Opens the cache at `location`: a folder path, a `file://`, `http(s)://` or
   * `s3://bucket/prefix` URL. Reads only the root `zarr.json`; throws naming the location
   * and the reason (not found, access denied, network, not a cache).
   */
  static async open(location: string, options: CacheReaderOptions = {}): Promise<CacheReader> {
    let kind: CacheLocationKind, raw: FileStore | HttpStore, shown = location;
    let s3: { bucketRoot: string; prefix: string } | undefined;
    const httpOptions = {
      headers: options.headers,
      timeoutMs: options.timeoutMs,
      retries: options.retries,
    };
    if (/^s3:\/\//i.test(location)) {
      const r = resolveS3(location, options);
      kind = "s3";
      raw = new HttpStore(r.base, { ...httpOptions, s3: r.s3 });
      s3 = { bucketRoot: r.endpoint, prefix: r.prefix };
    } else if (/^https?:\/\//i.test(location)) {
      kind = "http";
      raw = new HttpStore(location, httpOptions);
    } else {
      kind = "file";
      shown = folderPath(location);
      raw = new FileStore(shown);
    }
    let rootMeta: Meta | undefined;
    try {
      rootMeta = decodeJson(await raw.get("/zarr.json"), `${shown}/zarr.json`);
    } catch (e) {
      if (e instanceof DamagedCacheError) throw e;
      throw new Error(`Cannot open cache ${shown}: ${(e as Error).message}`, { cause: e });
    }
    if (!rootMeta) {
      const exists = kind === "file" ? await Deno.stat(shown).then(() => true, () => false) : true;
      throw new NotACacheError(
        exists
          ? `${shown} is not a VoCo cache (no Zarr group zarr.json at its root${
            kind === "file" ? "" : ": 404"
          })`
          : `Cache ${shown} does not exist`,
        { path: shown },
      );
    }
    if (rootMeta.node_type !== "group") {
      throw new NotACacheError(`${shown} is not a VoCo cache (its root is not a Zarr group)`, {
        path: shown,
      });
    }
    return new CacheReader(shown, kind, raw, rootMeta, options, s3);
  }

  /**
   * The nodes of the root's consolidated metadata by name (`ds`, `ds/a`), as stored in
   * the root `zarr.json` (unchecked); `undefined` when it has none.
   */
  consolidatedNodes(): ReadonlyMap<string, Meta> | undefined {
    return this.#consolidated;
  }

  /** Requests (or local reads) and bytes this reader has fetched so far. */
  stats(): FetchStats {
    return this.#raw instanceof HttpStore ? this.#raw.stats() : { ...this.#raw.stats };
  }

  /**
   * The stored bytes of `key` (`/ds/case/zarr.json`, `/ds/case/c/0/0/0`) as they are,
   * past the consolidated metadata (which {@linkcode CacheReader.store} answers
   * `zarr.json` keys from); `undefined` when there is no such file or object (404).
   */
  getStored(key: zarr.AbsolutePath): Promise<Uint8Array | undefined> {
    return this.#raw.get(key);
  }

  /**
   * The size in bytes of the stored file or object `key`, or `undefined` when there is
   * none: a `stat` of a folder's file, a HEAD request over HTTP and S3 (signed like the
   * reads).
   */
  async size(key: zarr.AbsolutePath): Promise<number | undefined> {
    if (this.#raw instanceof HttpStore) return await this.#raw.size(key);
    try {
      const info = await Deno.stat(join(this.location, key));
      return info.isFile ? info.size : undefined;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return undefined;
      throw e;
    }
  }

  /**
   * Every stored file or object below `prefix` (`ds/case`; "" for the whole cache), at
   * any depth, with its size, keys relative to `prefix`, in key order: a folder walk, or
   * ListObjectsV2 on S3 (a request per 1000 objects). Throws for a plain HTTP server,
   * which lists nothing.
   */
  async listStored(prefix = ""): Promise<StoredObject[]> {
    const rel = prefix.replace(/^\/+|\/+$/g, "");
    if (this.kind === "s3") {
      const { bucketRoot, prefix: root } = this.#s3!;
      return await listS3Objects(
        this.#raw as HttpStore,
        bucketRoot,
        [root, rel].filter(Boolean).join("/"),
      );
    }
    if (this.kind === "http") {
      throw new BadInputError(
        `${this.location} cannot be listed: a plain HTTP server lists no files`,
      );
    }
    const out: StoredObject[] = [];
    const walk = async (dir: string, key: string): Promise<void> => {
      for await (const e of Deno.readDir(dir)) {
        const k = key ? `${key}/${e.name}` : e.name;
        if (e.isDirectory) await walk(join(dir, e.name), k);
        else if (e.isFile) out.push({ key: k, size: (await Deno.stat(join(dir, e.name))).size });
      }
    };
    await walk(join(this.location, rel), "");
    return out.sort((a, b) => a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
  }

  /**
   * The dataset groups and cases the cache holds as stored, whatever its consolidated
   * copy says: a folder's listing (three levels deep), or ListObjectsV2 of every object
   * on S3; `undefined` for a plain HTTP server, which lists nothing. Hidden names
   * (`.staging`) are left out.
   */
  async storedNodes(): Promise<StoredNodes | undefined> {
    if (this.kind === "http") return undefined;
    const groups = new Map<string, StoredNode>(), cases = new Map<string, StoredNode>();
    const node = (map: Map<string, StoredNode>, key: string) => {
      let n = map.get(key);
      if (!n) map.set(key, n = { meta: false, entries: 0 });
      return n;
    };
    const add = (parts: string[], dir: boolean) => {
      if (parts.length < 2 || parts.some((p) => p.startsWith("."))) return;
      const group = node(groups, parts[0]);
      if (parts.length === 2) {
        if (!dir && parts[1] === "zarr.json") group.meta = true;
        else if (dir) node(cases, parts.join("/"));
        else group.entries++;
        return;
      }
      const c = node(cases, `${parts[0]}/${parts[1]}`);
      if (parts.length === 3 && parts[2] === "zarr.json" && !dir) c.meta = true;
      else c.entries++;
    };
    if (this.kind === "s3") {
      for (const o of await this.listStored("")) add(o.key.split("/"), false);
    } else {
      const list = async (parts: string[]) => {
        for await (const e of Deno.readDir(join(this.location, ...parts))) {
          if (e.name.startsWith(".")) continue;
          if (parts.length === 0) {
            if (e.isDirectory) node(groups, e.name), await list([e.name]);
            continue;
          }
          add([...parts, e.name], e.isDirectory);
          if (e.isDirectory && parts.length === 1) await list([...parts, e.name]);
        }
      };
      await list([]);
    }
    // An S3 case holding only deeper objects (chunks) still names its case.
    for (const key of cases.keys()) node(groups, key.split("/")[0]);
    return { groups, cases };
  }

  async #meta(path: string): Promise<Meta | undefined> {
    return decodeJson(
      await this.#raw.get(`/${path}/zarr.json`),
      `${this.location.replace(/\/+$/, "")}/${path}/zarr.json`,
    );
  }

  /** The folder names below `path` ("" for the root), hidden ones left out. */
  async #folders(path: string): Promise<string[]> {
    if (this.kind === "file") {
      const dir = join(this.location, path);
      const entries = await Array.fromAsync(Deno.readDir(dir));
      return entries.filter((e) => e.isDirectory && !e.name.startsWith(".")).map((e) => e.name)
        .sort();
    }
    if (this.kind === "s3") {
      const { bucketRoot, prefix } = this.#s3!;
      const names = await listS3Folders(
        this.#raw as HttpStore,
        bucketRoot,
        [prefix, path].filter(Boolean).join("/"),
      );
      return names.filter((n) => n && !n.startsWith("."));
    }
    throw new BadInputError(
      `Cache ${this.location} cannot be listed: a plain HTTP server lists no folders, so the ` +
        `cache needs consolidated metadata in its root zarr.json (run "deno task cache ` +
        `consolidate" on the cache folder, then serve it again); a case can still be read by ` +
        `its name`,
    );
  }

  /**
   * The cache's cases, dataset by dataset, in name order, with their metadata. A case
   * that cannot be used is listed with `error` (the reason): its metadata unreadable,
   * edited after writing (it no longer matches its digest), or written as another case; a
   * folder that holds files but no `zarr.json` (a case's or a dataset group's, the group
   * listed with an empty `name`). Throws a {@linkcode DamagedCacheError} when the
   * consolidated metadata no longer matches its digest (a node added or dropped).
   */
  async list(): Promise<CacheCaseInfo[]> {
    if (this.#consolidated) {
      await this.#checkConsolidated();
      const out: CacheCaseInfo[] = [];
      for (const [key, meta] of this.#consolidated) {
        const parts = key.split("/");
        if (parts.length !== 2 || meta?.node_type !== "array") continue;
        if (this.#consolidated.get(parts[0])?.node_type !== "group") continue;
        out.push(await checkedInfo(parts[0], parts[1], meta));
      }
      return out.sort((a, b) => a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
    }
    const datasets = (await this.#folders("")).filter((d) => d !== STAGING_DIR);
    const out: CacheCaseInfo[] = [];
    const broken = (dataset: string, name: string, error: string): CacheCaseInfo => ({
      dataset,
      name,
      path: `/${name ? `${dataset}/${name}` : dataset}` as `/${string}`,
      error,
    });
    for (const dataset of datasets) {
      let group: Meta | undefined;
      try {
        group = await this.#meta(dataset);
      } catch (e) {
        out.push(broken(dataset, "", (e as Error).message));
        continue;
      }
      if (group?.node_type !== "group") {
        if (group || await this.#holdsFiles(dataset)) {
          out.push(broken(
            dataset,
            "",
            group
              ? `zarr.json is no dataset group (its node_type is ${
                JSON.stringify(group.node_type) ?? "missing"
              })`
              : "no zarr.json: a folder of the cache that is no dataset group (its cases " +
                "cannot be listed)",
          ));
        }
        continue;
      }
      const names = await this.#folders(dataset);
      const cases = await mapLimit(names, 16, async (name) => {
        let meta: Meta | undefined;
        try {
          meta = await this.#meta(`${dataset}/${name}`);
        } catch (e) {
          return broken(dataset, name, (e as Error).message);
        }
        if (meta) return await checkedInfo(dataset, name, meta);
        return await this.#holdsFiles(`${dataset}/${name}`)
          ? broken(dataset, name, "no zarr.json: the case's folder holds files but no metadata")
          : undefined;
      });
      out.push(...cases.filter((c): c is CacheCaseInfo => c !== undefined));
    }
    return out;
  }

  /** Throws when the consolidated copy no longer matches the digest written with it. */
  async #checkConsolidated(): Promise<void> {
    const recorded = (this.attributes.voco_cache as Meta | undefined)?.consolidated_sha256;
    if (typeof recorded !== "string" || this.#consolidatedChecked) return;
    const digest = await consolidatedSha256(Object.fromEntries(this.#consolidated!));
    if (digest !== recorded) {
      throw new DamagedCacheError(
        `${this.location}: the consolidated metadata in the root zarr.json no longer matches ` +
          `the digest written with it (a node was added, dropped or edited): run "deno task ` +
          `cache verify" on the cache folder, and "deno task cache consolidate" to rewrite it`,
        { path: this.location, where: "consolidated_metadata" },
      );
    }
    this.#consolidatedChecked = true;
  }

  /** Whether the folder `path` holds anything (an S3 prefix always does). */
  async #holdsFiles(path: string): Promise<boolean> {
    if (this.kind !== "file") return true;
    try {
      for await (const _ of Deno.readDir(join(this.location, path))) return true;
    } catch {
      // Not a folder any more: nothing to list.
    }
    return false;
  }

  /** The case `dataset/name` (or `/dataset/name`) opened for crops; kept open for reuse. */
  openCase(name: string): Promise<OpenCase> {
    const path = `/${name.replace(/^\/+/, "")}` as `/${string}`;
    let p = this.#open.get(path);
    if (p) {
      this.#open.delete(path);
      this.#open.set(path, p); // most recent last
      return p;
    }
    p = openCase(this.store, path).catch((e: Error) => {
      this.#open.delete(path);
      if (
        e instanceof zarr.NotFoundError || e.name === "NotFoundError" ||
        e instanceof Deno.errors.NotFound
      ) {
        throw new Deno.errors.NotFound(`Case ${path.slice(1)} not found in ${this.location}`);
      }
      e.message = `${this.location}: ${e.message}`;
      throw e;
    });
    this.#open.set(path, p);
    if (this.#open.size > this.#maxOpen) this.#open.delete(this.#open.keys().next().value!);
    return p;
  }

  /**
   * The box of `size` voxels at voxel `start` of case `name` as float32 values in 0..1
   * (dequantised with the case's `scale_factor`/`add_offset`), its affine moved to the
   * box's first voxel. `start` may be negative and the box may run past the volume: the
   * voxels outside are 0, and only the chunks of the part inside are read. `into` takes
   * the values (see {@linkcode ReadCropOptions}).
   */
  async readCrop(
    name: string,
    start: CaseShape,
    size: CaseShape,
    options: ReadCropOptions = {},
  ): Promise<CaseVolume> {
    for (let a = 0; a < 3; a++) {
      if (!Number.isInteger(start[a]) || !Number.isInteger(size[a]) || size[a] < 1) {
        throw new RangeError(`Case ${name}: invalid crop at [${start}] of size [${size}]`);
      }
    }
    const c = await this.openCase(name);
    const affine = shifted(c.attributes.affine, start);
    const lo = start.map((s) => Math.max(0, s)) as CaseShape;
    const hi = start.map((s, a) => Math.min(c.shape[a], s + size[a])) as CaseShape;
    if (lo.every((v, a) => v === start[a]) && hi.every((v, a) => v === start[a] + size[a])) {
      return { ...await c.readCrop(start, size, options), affine };
    }
    const n = size[0] * size[1] * size[2];
    if (options.into && options.into.length < n) {
      throw new RangeError(`Case ${name}: ${options.into.length} values given for a crop of ${n}`);
    }
    const out = options.into?.subarray(0, n).fill(0) ?? new Float32Array(n);
    if (hi.every((v, a) => v > lo[a])) {
      const inner = hi.map((v, a) => v - lo[a]) as CaseShape;
      const crop = await c.readCrop(lo, inner);
      const off = lo.map((v, a) => v - start[a]);
      for (let x = 0; x < inner[0]; x++) {
        for (let y = 0; y < inner[1]; y++) {
          const from = (x * inner[1] + y) * inner[2];
          const to = ((x + off[0]) * size[1] + y + off[1]) * size[2] + off[2];
          out.set(crop.data.subarray(from, from + inner[2]), to);
        }
      }
    }
    return { data: out, shape: [...size] as CaseShape, affine };
  }
}

/** `affine` with its origin moved to voxel `start`. */
function shifted(affine: CaseAffine | undefined, start: CaseShape): CaseAffine {
  const m = affine ?? [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]];
  return m.map((row, r) =>
    r === 3
      ? [...row]
      : [row[0], row[1], row[2], row[3] + row[0] * start[0] + row[1] * start[1] + row[2] * start[2]]
  );
}
