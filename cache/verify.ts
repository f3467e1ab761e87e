// Verifying a cache: every chunk of every case read and checked (checksums, sizes, none
// missing), the metadata and attributes checked, and each fingerprint recomputed.
import { join } from "node:path";
import { FileSystemStore } from "@zarrita/storage";
import { type CacheEntry, listCases } from "./cache_dir.ts";
import { openCaseArray } from "./read_case.ts";
import { describeChunkError } from "./_checked_store.ts";
import { caseFingerprint, settingsHash } from "./fingerprint.ts";
import { decodeShardIndex, shardIndexBytes } from "./shard.ts";

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
  /** Bytes of the case's files. */
  bytes: number;
  /** Chunks read (inner chunks of a shard). */
  chunks: number;
}

/** Options of {@linkcode verifyCache}. */
export interface VerifyOptions {
  /** Called before each case (progress display). */
  onStart?: (entry: CacheEntry, index: number, total: number) => void;
  /** Called with each case's result. */
  onCase?: (check: CaseCheck) => void;
  /**
   * Problems recorded per case before the rest of its chunks are skipped.
   * @default {5}
   */
  maxProblems?: number;
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

async function filesBytes(dir: string): Promise<number> {
  let total = 0;
  for await (const e of Deno.readDir(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) total += await filesBytes(p);
    else if (e.isFile) total += (await Deno.stat(p)).size;
  }
  return total;
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
 * Verifies one case of the cache at `root`: its metadata and attributes, its fingerprint,
 * the shard index (checksum, bounds, one entry per chunk), and every chunk read, its
 * checksum checked and decoded to its full size. A chunk missing from a case written
 * whole is a problem.
 */
export async function verifyCase(
  root: string,
  entry: CacheEntry,
  maxProblems = 5,
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
  check.bytes = await filesBytes(entry.dir).catch(() => 0);
  let meta: Record<string, unknown>;
  try {
    meta = JSON.parse(await Deno.readTextFile(join(entry.dir, "zarr.json")));
  } catch (e) {
    check.problems.push(`zarr.json: ${(e as Error).message}`);
    return check;
  }
  check.problems.push(...await checkMetadata(meta));
  if (check.problems.length) return check;
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
  if (sharding) {
    // Each shard's index: checksum, one entry per inner chunk, inside the file.
    const shardGrid = shape.map((n, a) => Math.ceil(n / outer[a]));
    const perShard = outer.reduce((acc, n, a) => acc * (n / inner[a]), 1);
    for (let i = 0; i < shardGrid[0]; i++) {
      for (let j = 0; j < shardGrid[1]; j++) {
        for (let k = 0; k < shardGrid[2]; k++) {
          const key = `c/${i}/${j}/${k}`;
          const file = join(entry.dir, key);
          const size = (await Deno.stat(file).catch(() => undefined))?.size;
          if (size === undefined) {
            check.problems.push(`shard ${key} is missing`);
            continue;
          }
          const n = shardIndexBytes(perShard);
          if (size < n) {
            check.problems.push(`shard ${key}: ${size} bytes, shorter than its index (${n})`);
            continue;
          }
          using f = await Deno.open(file);
          const tail = new Uint8Array(n);
          await f.seek(size - n, Deno.SeekMode.Start);
          let got = 0;
          while (got < n) {
            const r = await f.read(tail.subarray(got));
            if (r === null) break;
            got += r;
          }
          try {
            decodeShardIndex(tail, perShard, size - n);
          } catch (e) {
            check.problems.push(`shard index of ${key}: ${(e as Error).message}`);
          }
        }
      }
    }
    if (check.problems.length) return check;
  }
  // Every byte is read anyway: each file once, whole, rather than a read per chunk.
  const fs = new FileSystemStore(root);
  const files = new Map<string, Promise<Uint8Array | undefined>>();
  const whole = (key: `/${string}`) => {
    if (!files.has(key)) files.set(key, fs.get(key));
    return files.get(key)!;
  };
  const store = {
    get: (key: `/${string}`) => fs.get(key),
    getRange: async (
      key: `/${string}`,
      r: { offset: number; length: number } | { suffixLength: number },
    ) => {
      const all = await whole(key);
      if (!all) return undefined;
      // Copies, not views: typed arrays over them must start aligned.
      return "suffixLength" in r
        ? Uint8Array.prototype.slice.call(all, Math.max(0, all.length - r.suffixLength))
        : Uint8Array.prototype.slice.call(all, r.offset, r.offset + r.length);
    },
  };
  const arr = await openCaseArray(store, `/${entry.dataset}/${entry.name}`);
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
  return check;
}

/**
 * Verifies every case of the cache at `root` ({@linkcode verifyCase}) and every dataset
 * group's metadata. Throws when `root` is not a cache.
 */
export async function verifyCache(
  root: string,
  options: VerifyOptions = {},
): Promise<VerifyReport> {
  const t0 = performance.now();
  const entries = await listCases(root);
  const checks: CaseCheck[] = [];
  let bytes = 0;
  for (let i = 0; i < entries.length; i++) {
    options.onStart?.(entries[i], i, entries.length);
    const check = await verifyCase(root, entries[i], options.maxProblems ?? 5);
    bytes += check.bytes;
    checks.push(check);
    options.onCase?.(check);
  }
  return { checks, bytes, seconds: (performance.now() - t0) / 1000 };
}
