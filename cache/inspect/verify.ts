// Verifying a cache, in a folder or at a URL (http(s)://, s3://): every chunk of every
// case read and checked (checksums, sizes, none missing), the metadata and attributes
// checked, and each fingerprint recomputed.
import { join } from "node:path";
import type * as zarr from "zarrita";
import { FileSystemStore } from "@zarrita/storage";
import { type CacheEntry, listCases } from "../write/cache_dir.ts";
import { openCaseArray } from "../read/read_case.ts";
import { describeChunkError } from "../read/checked_store.ts";
import { caseFingerprint, settingsHash } from "../format/fingerprint.ts";
import { decodeShardIndex, shardIndexBytes } from "../codecs/shard.ts";
import { CacheReader, type CacheReaderOptions, folderPath } from "../read/cache_reader.ts";
import { folderSize } from "./stats.ts";
import { chunkKey, folderOrder, storedKeys } from "../format/stored_keys.ts";
import { gate } from "../store/limit.ts";

/** What verifying one case found. */
export interface CaseCheck {
  /** Dataset group. */
  dataset: string;
  /** Case name (empty for a dataset group's own metadata). */
  name: string;
  /** What is wrong; empty when the case is sound. */
  problems: string[];
  /** Remarks that are not damage (a case written before checksums existed). */
  notes: string[];
  /** Bytes of the case's files (at a URL: of those read, the whole files). */
  bytes: number;
  /** Chunks read (inner chunks of a shard). */
  chunks: number;
}

/** Options of {@linkcode verifyCase}: how to read a cache at a URL, and when to stop. */
export interface VerifyCaseOptions extends CacheReaderOptions {
  /**
   * Problems recorded per case before the rest of its chunks are skipped.
   * @default {5}
   */
  maxProblems?: number;
  /**
   * Files (shards, or chunks of a chunked case) fetched at once from a URL; a folder is
   * read one file at a time.
   * @default {8}
   */
  concurrency?: number;
}

/** Options of {@linkcode verifyCache}. */
export interface VerifyOptions extends VerifyCaseOptions {
  /** Called before each case (progress display). */
  onStart?: (entry: Pick<CacheEntry, "dataset" | "name">, index: number, total: number) => void;
  /** Called with each case's result. */
  onCase?: (check: CaseCheck) => void;
}

/** What verifying a cache found. */
export interface VerifyReport {
  /** Every case (and damaged dataset group) with its result, in cache order. */
  checks: CaseCheck[];
  /** Bytes read. */
  bytes: number;
  /** Wall time in seconds. */
  seconds: number;
}

/** True for the locations verified through a {@linkcode CacheReader} (`http(s)`, `s3`). */
function isRemote(location: string): boolean {
  return /^(https?|s3):\/\//i.test(location);
}

/** A zarrita store with ranges (what {@linkcode openCaseArray} reads chunks through). */
type RangeStore = zarr.AsyncReadable & Required<Pick<zarr.AsyncReadable, "getRange">>;

/** A byte range as zarrita asks for it. */
type Range = { offset: number; length: number } | { suffixLength: number };

/** A range of `all`, copied: typed arrays over it must start aligned. */
function slice(all: Uint8Array, r: Range): Uint8Array {
  return "suffixLength" in r
    ? Uint8Array.prototype.slice.call(all, Math.max(0, all.length - r.suffixLength))
    : Uint8Array.prototype.slice.call(all, r.offset, r.offset + r.length);
}

/**
 * The files of one case, wherever they are stored: all the checks read through this, so
 * that a folder and a URL are verified by the same code.
 */
interface CaseFiles {
  /** The case's own `zarr.json` as text; throws saying why when it cannot be read. */
  metadata(): Promise<string>;
  /** Bytes of the case's file `key` (`c/0/0/0`), `undefined` when it is missing. */
  size(key: string): Promise<number | undefined>;
  /** The last `n` bytes of the case's file `key`, of `size` bytes. */
  tail(key: string, size: number, n: number): Promise<Uint8Array>;
  /** The store the case's array is opened on: each file read whole once, then sliced. */
  store: RangeStore;
  /** Starts reading the case's files `keys` ahead of their use (a few at once). */
  prefetch(keys: readonly string[]): void;
  /** Stops reading ahead; what was read stays. */
  close(): void;
  /** Bytes of the case's files (a folder: all of them; a URL: those read). */
  bytes(): Promise<number>;
}

/**
 * A case in the folder `root`. Every byte is read anyway: each file once, whole, rather
 * than a read per chunk; the shard index checks read only the file's tail first.
 */
function folderFiles(root: string, dataset: string, name: string): CaseFiles {
  const dir = join(root, dataset, name);
  const fs = new FileSystemStore(root);
  const files = new Map<string, Promise<Uint8Array | undefined>>();
  const whole = (key: `/${string}`) => {
    if (!files.has(key)) files.set(key, fs.get(key));
    return files.get(key)!;
  };
  return {
    metadata: () => Deno.readTextFile(join(dir, "zarr.json")),
    size: async (key) => (await Deno.stat(join(dir, key)).catch(() => undefined))?.size,
    async tail(key, size, n) {
      using f = await Deno.open(join(dir, key));
      const tail = new Uint8Array(n);
      await f.seek(size - n, Deno.SeekMode.Start);
      let got = 0;
      while (got < n) {
        const r = await f.read(tail.subarray(got));
        if (r === null) break;
        got += r;
      }
      return tail;
    },
    store: {
      get: (key) => fs.get(key),
      getRange: async (key, r) => {
        const all = await whole(key);
        return all ? slice(all, r as Range) : undefined;
      },
    },
    prefetch() {},
    close() {},
    bytes: async () => (await folderSize(dir)).bytes,
  };
}

/**
 * A case read through `reader` (a URL): each file fetched whole once (a shard is one GET,
 * not one request per inner chunk), `concurrency` at a time, read ahead in the order the
 * checks need them; the case's `zarr.json` as stored, not its consolidated copy.
 */
function remoteFiles(reader: CacheReader, path: `/${string}`, concurrency: number): CaseFiles {
  const files = new Map<string, Promise<Uint8Array | undefined>>();
  const slots = gate(concurrency);
  let closed = false;
  const whole = (key: `/${string}`) => {
    let p = files.get(key);
    if (!p) {
      p = slots.run(() => closed ? Promise.resolve(undefined) : reader.getStored(key));
      p.catch(() => {}); // a file read ahead and never asked for must not fail the run
      files.set(key, p);
    }
    return p;
  };
  const metaKey = `${path}/zarr.json` as const;
  const at = (key: string) => `${reader.location.replace(/\/+$/, "")}${path}/${key}`;
  return {
    async metadata() {
      const b = await whole(metaKey);
      if (!b) throw new Error(`missing (404 at ${at("zarr.json")})`);
      return new TextDecoder().decode(b);
    },
    async size(key) {
      try {
        return (await whole(`${path}/${key}`))?.length;
      } catch (e) {
        // Fetch errors name their URL already; others get the file's.
        const msg = (e as Error).message;
        throw new Error(msg.includes("://") ? msg : `${msg} (${at(key)})`, { cause: e });
      }
    },
    async tail(key, size, n) {
      const all = await whole(`${path}/${key}`);
      return slice(all!, { offset: size - n, length: n });
    },
    store: {
      get: (key) => whole(key),
      getRange: async (key, r) => {
        const all = await whole(key);
        return all ? slice(all, r as Range) : undefined;
      },
    },
    prefetch(keys) {
      for (const k of keys) whole(`${path}/${k}`);
    },
    close() {
      closed = true;
    },
    async bytes() {
      let total = 0;
      for (const r of await Promise.allSettled(files.values())) {
        if (r.status === "fulfilled") total += r.value?.length ?? 0;
      }
      return total;
    },
  };
}

const DTYPES = ["uint8", "uint16", "float32"];
const isNum = (x: unknown) => typeof x === "number" && Number.isFinite(x);

/** The problems of a case's metadata and attributes, and its fingerprint recomputed. */
async function checkMetadata(meta: Record<string, unknown>): Promise<string[]> {
  const p: string[] = [];
  const shape = meta.shape as unknown[];
  if (meta.node_type !== "array") p.push(`zarr.json: node_type is ${meta.node_type}, not array`);
  if (!Array.isArray(shape) || shape.length !== 3 || !shape.every((n) => Number.isInteger(n))) {
    p.push(`zarr.json: shape ${JSON.stringify(shape)} is not three integers`);
  }
  if (!DTYPES.includes(meta.data_type as string)) {
    p.push(`zarr.json: data_type ${meta.data_type} is not one of ${DTYPES.join(", ")}`);
  }
  const a = (meta.attributes ?? {}) as Record<string, unknown>;
  const affine = a.affine as unknown[][];
  if (!Array.isArray(affine) || affine.length !== 4 || !affine.every((r) => r.every(isNum))) {
    p.push("attributes: affine is not a 4 x 4 matrix");
  }
  const spacing = a.spacing as unknown[];
  if (!Array.isArray(spacing) || spacing.length !== 3 || !spacing.every(isNum)) {
    p.push("attributes: spacing is not three numbers");
  }
  for (const key of ["source", "source_sha256", "fingerprint"]) {
    if (typeof a[key] !== "string") p.push(`attributes: ${key} is missing`);
  }
  if (!a.recipe || typeof a.recipe !== "object") p.push("attributes: recipe is missing");
  if (meta.data_type !== "float32" && !isNum(a.scale_factor)) {
    p.push(`attributes: scale_factor is missing for ${meta.data_type} values`);
  }
  const storage = a.storage as Record<string, unknown> | undefined;
  if (storage && storage.dtype !== meta.data_type) {
    p.push(`attributes: storage.dtype ${storage.dtype} but the array holds ${meta.data_type}`);
  }
  if (typeof a.fingerprint === "string" && a.recipe && storage && a.source_sha256) {
    const settings = await settingsHash({ recipe: a.recipe, storage });
    const expected = await caseFingerprint(settings, a.source_sha256 as string);
    if (expected !== a.fingerprint) {
      p.push(
        `attributes: fingerprint ${a.fingerprint.slice(0, 12)}... does not match its recipe, ` +
          `storage and source_sha256 (${expected.slice(0, 12)}...)`,
      );
    }
  }
  return p;
}

/**
 * The checks of one case, through its {@linkcode CaseFiles}: its metadata and attributes,
 * its fingerprint, each shard index (checksum, bounds, one entry per chunk), and every
 * chunk read, its checksum checked and decoded to its full size.
 */
async function checkCase(
  files: CaseFiles,
  entry: { dataset: string; name: string; error?: string },
  maxProblems: number,
): Promise<CaseCheck> {
  const check: CaseCheck = {
    dataset: entry.dataset,
    name: entry.name,
    problems: [],
    notes: [],
    bytes: 0,
    chunks: 0,
  };
  if (entry.error) {
    check.problems.push(entry.error);
    return check;
  }
  try {
    await checkFiles(files, `/${entry.dataset}/${entry.name}`, check, maxProblems);
  } finally {
    files.close();
    check.bytes = await files.bytes().catch(() => 0);
  }
  return check;
}

async function checkFiles(
  files: CaseFiles,
  path: `/${string}`,
  check: CaseCheck,
  maxProblems: number,
): Promise<void> {
  let meta: Record<string, unknown>;
  try {
    meta = JSON.parse(await files.metadata());
  } catch (e) {
    check.problems.push(`zarr.json: ${(e as Error).message}`);
    return;
  }
  check.problems.push(...await checkMetadata(meta));
  if (check.problems.length) return;
  const codecs = meta.codecs as { name: string; configuration?: Record<string, unknown> }[];
  const sharding = codecs.find((c) => c.name === "sharding_indexed")?.configuration;
  const chunkCodecs = (sharding?.codecs ?? codecs) as { name: string }[];
  if (!chunkCodecs.some((c) => c.name === "crc32c")) {
    check.notes.push("written before chunk checksums (prep rebuilds it with them when asked)");
  }
  const shape = meta.shape as number[];
  const outer = (meta.chunk_grid as { configuration: { chunk_shape: number[] } }).configuration
    .chunk_shape;
  const inner = (sharding?.chunk_shape as number[] | undefined) ?? outer;
  const grid = shape.map((n, a) => Math.ceil(n / inner[a]));
  const count = grid[0] * grid[1] * grid[2];
  const stored = (meta.attributes as Record<string, unknown>).stored_chunks;
  if (stored !== undefined && stored !== count) {
    check.problems.push(`attributes: stored_chunks ${stored}, but the array has ${count} chunks`);
  }
  // Read ahead (at a URL) every stored file, in the order the checks below use them.
  files.prefetch(storedKeys(meta));
  if (sharding) {
    // Each shard's index: checksum, one entry per inner chunk, inside the file.
    const shardGrid = shape.map((n, a) => Math.ceil(n / outer[a]));
    const perShard = outer.reduce((acc, n, a) => acc * (n / inner[a]), 1);
    for (let i = 0; i < shardGrid[0]; i++) {
      for (let j = 0; j < shardGrid[1]; j++) {
        for (let k = 0; k < shardGrid[2]; k++) {
          const key = chunkKey(meta, [i, j, k]);
          let size: number | undefined;
          try {
            size = await files.size(key);
          } catch (e) {
            check.problems.push(`shard ${key}: ${(e as Error).message}`);
            continue;
          }
          if (size === undefined) {
            check.problems.push(`shard ${key} is missing`);
            continue;
          }
          const n = shardIndexBytes(perShard);
          if (size < n) {
            check.problems.push(`shard ${key}: ${size} bytes, shorter than its index (${n})`);
            continue;
          }
          const tail = await files.tail(key, size, n);
          try {
            decodeShardIndex(tail, perShard, size - n);
          } catch (e) {
            check.problems.push(`shard index of ${key}: ${(e as Error).message}`);
          }
        }
      }
    }
    if (check.problems.length) return;
  }
  const arr = await openCaseArray(files.store, path);
  const size = inner.reduce((a, b) => a * b, 1);
  for (let i = 0; i < grid[0] && check.problems.length < maxProblems; i++) {
    for (let j = 0; j < grid[1] && check.problems.length < maxProblems; j++) {
      for (let k = 0; k < grid[2] && check.problems.length < maxProblems; k++) {
        try {
          const chunk = await arr.getChunk([i, j, k]);
          check.chunks++;
          if ((chunk.data as ArrayLike<number>).length !== size) {
            check.problems.push(
              `chunk [${i},${j},${k}] decodes to ${(chunk.data as ArrayLike<number>).length} ` +
                `values, not ${size}`,
            );
          }
        } catch (e) {
          check.problems.push(describeChunkError(e, [i, j, k]));
        }
      }
    }
  }
}

/** A case of `reader`'s cache as a {@linkcode CaseFiles}: its folder, or its URL. */
function caseFiles(
  reader: CacheReader,
  dataset: string,
  name: string,
  concurrency: number,
): CaseFiles {
  return reader.kind === "file"
    ? folderFiles(reader.location, dataset, name)
    : remoteFiles(reader, `/${dataset}/${name}`, concurrency);
}

/**
 * Verifies the case `name` (`dataset/case`) of the cache at `cache`: a folder path, a
 * `file://`, `http(s)://` or `s3://bucket/prefix` URL (read as {@linkcode CacheReader}
 * reads it, with the same options), or a reader already open. Checks its metadata and
 * attributes, its fingerprint, each shard index (checksum, bounds, one entry per chunk),
 * and reads every chunk, its checksum checked and decoded to its full size; a chunk
 * missing from a case written whole is a problem. Files are read whole, once each (a
 * shard is one request at a URL). Throws when `cache` is not a cache.
 *
 * @example Verify one case served over HTTP
 * ```ts ignore
 * const check = await verifyCase("http://127.0.0.1:8000/", "ct/example_ct");
 * console.log(check.problems); // [] when sound, else what is wrong and where
 * ```
 */
export async function verifyCase(
  cache: string | CacheReader,
  name: string,
  options: VerifyCaseOptions = {},
): Promise<CaseCheck> {
  const parts = name.replace(/^\/+/, "").split("/");
  if (parts.length !== 2 || !parts[0] || !parts[1]) {
    throw new TypeError(`Not a case name "${name}" (expected DATASET/CASE)`);
  }
  const reader = typeof cache === "string"
    ? await CacheReader.open(isRemote(cache) ? cache : folderPath(cache), options)
    : cache;
  return await checkCase(
    caseFiles(reader, parts[0], parts[1], options.concurrency ?? 8),
    { dataset: parts[0], name: parts[1] },
    options.maxProblems ?? 5,
  );
}

/**
 * Verifies every case of the cache at `location` ({@linkcode verifyCase}): a folder path
 * (every dataset group's metadata checked too), a `file://`, `http(s)://` or
 * `s3://bucket/prefix` URL. A plain HTTP server lists no folders: the cache must then hold
 * consolidated metadata (`deno task cache consolidate`), else this throws saying so.
 * Throws when `location` is not a cache.
 */
export async function verifyCache(
  location: string,
  options: VerifyOptions = {},
): Promise<VerifyReport> {
  const t0 = performance.now();
  const maxProblems = options.maxProblems ?? 5;
  let entries: { dataset: string; name: string; error?: string }[];
  let files: (e: { dataset: string; name: string }) => CaseFiles;
  if (isRemote(location)) {
    const reader = await CacheReader.open(location, options);
    entries = folderOrder(await reader.list());
    files = (e) => caseFiles(reader, e.dataset, e.name, options.concurrency ?? 8);
  } else {
    const root = folderPath(location);
    entries = await listCases(root);
    files = (e) => folderFiles(root, e.dataset, e.name);
  }
  const checks: CaseCheck[] = [];
  let bytes = 0;
  for (let i = 0; i < entries.length; i++) {
    options.onStart?.(entries[i], i, entries.length);
    const check = await checkCase(files(entries[i]), entries[i], maxProblems);
    bytes += check.bytes;
    checks.push(check);
    options.onCase?.(check);
  }
  return { checks, bytes, seconds: (performance.now() - t0) / 1000 };
}
