// Verifying a cache, in a folder or at a URL (http(s)://, s3://): every case read and
// checked (metadata against what the writer writes, integrity record, checksums and
// positions of every chunk, none missing), every dataset group's metadata, what the cache
// holds against its consolidated copy, and each fingerprint recomputed.
import { join } from "node:path";
import { CacheReader, type CacheReaderOptions, folderPath } from "../read/cache_reader.ts";
import { folderOrder } from "../format/stored_keys.ts";
import { consolidatedSha256, firstDifference } from "../format/integrity.ts";
import { DamagedCacheError, NotACacheError } from "../errors.ts";
import { type CaseCheck, checkCaseFiles } from "./_check_case.ts";
import { type CaseFiles, folderFiles, remoteFiles } from "./_case_files.ts";

export type { CaseCheck } from "./_check_case.ts";

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
  /** Called before each node is checked (progress display). */
  onStart?: (entry: { dataset: string; name: string }, index: number, total: number) => void;
  /** Called with each node's result. */
  onCase?: (check: CaseCheck) => void;
}

/** What verifying a cache found. */
export interface VerifyReport {
  /**
   * Every case, dataset group and the cache's root with its result: the cases and groups
   * in cache order, the root (its consolidated metadata) last.
   */
  checks: CaseCheck[];
  /** Bytes read. */
  bytes: number;
  /** Wall time in seconds. */
  seconds: number;
}

type Json = Record<string, unknown>;

/** True for the locations verified over the network (`http(s)`, `s3`). */
function isRemote(location: string): boolean {
  return /^(https?|s3):\/\//i.test(location);
}

/** A case of `reader`'s cache as a {@linkcode CaseFiles}: its folder, or its URL. */
function caseFiles(reader: CacheReader, dataset: string, name: string, n: number): CaseFiles {
  return reader.kind === "file"
    ? folderFiles(reader.location, dataset, name)
    : remoteFiles(reader, `/${dataset}/${name}`, n);
}

/** A fresh check of a node. */
function newCheck(dataset: string, name: string, node: CaseCheck["node"]): CaseCheck {
  return { dataset, name, node, problems: [], notes: [], bytes: 0, chunks: 0 };
}

/** Parses stored metadata text; a problem when it cannot be. */
function parse(text: string): Json | string {
  try {
    const v = JSON.parse(text);
    return v && typeof v === "object" && !Array.isArray(v) ? v : "not a JSON object";
  } catch (e) {
    return `unreadable (${(e as Error).message})`;
  }
}

/** Checks one case; `metas` gets its stored metadata when it can be read. */
async function checkOneCase(
  reader: CacheReader,
  dataset: string,
  name: string,
  options: VerifyCaseOptions,
  holds?: number,
  metas?: Map<string, Json>,
): Promise<CaseCheck> {
  const check = newCheck(dataset, name, "case");
  const files = caseFiles(reader, dataset, name, options.concurrency ?? 8);
  try {
    const text = await files.metadata();
    if (text === undefined) {
      check.problems.push(
        `zarr.json: ${files.missing("zarr.json")}` +
          (holds ? ` (the case's folder holds ${holds} other entries)` : ""),
      );
      return check;
    }
    const meta = parse(text);
    if (typeof meta === "string") {
      check.problems.push(`zarr.json: ${meta}`);
      return check;
    }
    metas?.set(`${dataset}/${name}`, meta);
    await checkCaseFiles(files, `/${dataset}/${name}`, meta, check, options.maxProblems ?? 5);
  } catch (e) {
    check.problems.push(`zarr.json: ${(e as Error).message}`);
  } finally {
    files.close();
    check.bytes = await files.bytes().catch(() => 0);
  }
  return check;
}

/**
 * Verifies the case `name` (`dataset/case`) of the cache at `cache`: a folder path, a
 * `file://`, `http(s)://` or `s3://bucket/prefix` URL (read as {@linkcode CacheReader}
 * reads it, with the same options), or a reader already open. Checks its metadata
 * against what the writer writes, its attributes, its integrity record (digest, name,
 * chunk positions) and fingerprint, each shard index (checksum, bounds, one entry per
 * chunk), and reads every chunk, its checksum and position checked and decoded to its
 * full size; a chunk missing from a case written whole is a problem. Files are read whole,
 * once each (a shard is one request at a URL). Throws when `cache` is not a cache.
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
  return await checkOneCase(reader, parts[0], parts[1], options);
}

/** A dataset group's stored metadata against what the writer writes. */
async function checkGroup(
  reader: CacheReader,
  dataset: string,
  holds: number | undefined,
  metas: Map<string, Json>,
): Promise<CaseCheck> {
  const check = newCheck(dataset, "", "group");
  let bytes: Uint8Array | undefined;
  try {
    bytes = await reader.getStored(`/${dataset}/zarr.json`);
  } catch (e) {
    check.problems.push(`zarr.json: ${(e as Error).message}`);
    return check;
  }
  if (!bytes) {
    check.problems.push(
      `zarr.json is missing${holds ? ` (the folder holds ${holds} entries)` : ""}: readers ` +
        `that list the cache do not see its cases`,
    );
    return check;
  }
  check.bytes = bytes.length;
  const meta = parse(new TextDecoder().decode(bytes));
  if (typeof meta === "string") {
    check.problems.push(`zarr.json: ${meta}`);
    return check;
  }
  metas.set(dataset, meta);
  if (meta.node_type !== "group") {
    check.problems.push(`zarr.json: node_type is ${JSON.stringify(meta.node_type)}, not group`);
  }
  if (meta.zarr_format !== 3) {
    check.problems.push(`zarr.json: zarr_format is ${JSON.stringify(meta.zarr_format)}, not 3`);
  }
  const name = (meta.attributes as Json | undefined)?.dataset;
  if (name !== dataset) {
    check.problems.push(`zarr.json: attributes.dataset is ${JSON.stringify(name)}, not ${dataset}`);
  }
  return check;
}

/**
 * The root's check: its consolidated copy against its digest and against the metadata
 * each node holds (`metas`), and the stored nodes (`stored`, when the cache could be
 * listed) it lacks.
 */
async function checkRoot(
  reader: CacheReader,
  metas: Map<string, Json>,
  stored: Set<string> | undefined,
  maxProblems: number,
): Promise<CaseCheck> {
  const check = newCheck("", "", "cache");
  const voco = reader.attributes.voco_cache as Json | undefined;
  if (!voco || typeof voco !== "object") {
    check.notes.push("the root holds no voco_cache attributes (not written by this toolkit)");
  }
  const consolidated = reader.consolidatedNodes();
  if (!consolidated) return check;
  const p: string[] = [];
  const recorded = voco?.consolidated_sha256;
  if (typeof recorded === "string") {
    if (await consolidatedSha256(Object.fromEntries(consolidated)) !== recorded) {
      p.push(
        "consolidated metadata: it no longer matches the digest written with it (a node " +
          "added, dropped or edited)",
      );
    }
  } else {
    check.notes.push(
      "consolidated metadata written before digests (cache consolidate rewrites it with one)",
    );
  }
  for (const [key, meta] of consolidated) {
    const parts = key.split("/");
    if (parts.length > 2 || !parts[0]) {
      p.push(`consolidated metadata: lists ${key}, which is no dataset group or case`);
      continue;
    }
    const own = metas.get(key);
    if (!own) {
      p.push(`consolidated metadata: lists ${key}, which has no readable zarr.json`);
      continue;
    }
    const where = firstDifference(meta, own);
    if (where) p.push(`consolidated metadata: ${key} differs from its zarr.json at ${where}`);
  }
  for (const key of stored ?? []) {
    if (metas.has(key) && !consolidated.has(key)) {
      p.push(
        `consolidated metadata: ${key} is not in it (readers of the consolidated copy do not ` +
          `see it)`,
      );
    }
  }
  if (p.length > maxProblems) {
    check.problems.push(
      ...p.slice(0, maxProblems - 1),
      `... and ${p.length - maxProblems + 1} more`,
    );
  } else check.problems.push(...p);
  return check;
}

/**
 * Why the folder `root` is a damaged cache although it cannot be opened as one (its root
 * `zarr.json` is missing or unreadable, but it holds dataset groups), or `undefined`.
 */
async function damagedRoot(root: string, e: unknown): Promise<string | undefined> {
  if (!(e instanceof NotACacheError) && !(e instanceof Error && /Unreadable/.test(e.message))) {
    return undefined;
  }
  const groups: string[] = [];
  try {
    for await (const d of Deno.readDir(root)) {
      if (!d.isDirectory || d.name.startsWith(".")) continue;
      const meta = await Deno.readTextFile(join(root, d.name, "zarr.json")).catch(() => "");
      if (meta.includes('"group"')) groups.push(d.name);
    }
  } catch {
    return undefined;
  }
  if (!groups.length) return undefined;
  return `zarr.json of the cache root: ${(e as Error).message}; the folder holds dataset ` +
    `groups (${groups.sort().join(", ")})`;
}

/**
 * Verifies the cache at `location`: a folder path, a `file://`, `http(s)://` or
 * `s3://bucket/prefix` URL. Every case ({@linkcode verifyCase}); every dataset group's
 * metadata; every folder that holds files but no `zarr.json` (a case or a group readers
 * would not see); and, when the root holds consolidated metadata, that copy against its
 * digest and against each node's own `zarr.json` (a node it lacks, lists in vain, or
 * holds otherwise). A folder and S3 are listed as stored; a plain HTTP server lists
 * nothing, so the cache must then hold consolidated metadata, else this throws saying
 * so. Throws when `location` is not a cache.
 */
export async function verifyCache(
  location: string,
  options: VerifyOptions = {},
): Promise<VerifyReport> {
  const t0 = performance.now();
  const maxProblems = options.maxProblems ?? 5;
  const where = isRemote(location) ? location : folderPath(location);
  let reader: CacheReader;
  try {
    reader = await CacheReader.open(where, options);
  } catch (e) {
    // A root zarr.json that is there but unreadable is damage wherever the cache is.
    const why = e instanceof DamagedCacheError
      ? `zarr.json of the cache root: ${e.message}`
      : isRemote(location)
      ? undefined
      : await damagedRoot(where, e);
    if (!why) throw e;
    const check = { ...newCheck("", "", "cache"), problems: [why] };
    options.onStart?.({ dataset: "", name: "" }, 0, 1);
    options.onCase?.(check);
    return { checks: [check], bytes: 0, seconds: (performance.now() - t0) / 1000 };
  }
  const stored = await reader.storedNodes();
  const consolidated = reader.consolidatedNodes();
  if (!stored && !consolidated) await reader.list(); // throws: a plain HTTP server lists nothing
  const groups = new Map<string, number | undefined>();
  const cases = new Map<string, number | undefined>();
  for (const [key, n] of stored?.groups ?? []) if (n.meta || n.entries) groups.set(key, n.entries);
  for (const [key, n] of stored?.cases ?? []) if (n.meta || n.entries) cases.set(key, n.entries);
  for (const [key, meta] of consolidated ?? []) {
    const parts = key.split("/");
    if (parts.length === 1 && meta?.node_type === "group" && !groups.has(key)) {
      groups.set(key, undefined);
    }
    if (parts.length === 2 && parts.every(Boolean) && !cases.has(key)) cases.set(key, undefined);
  }
  for (const key of cases.keys()) {
    if (!groups.has(key.split("/")[0])) groups.set(key.split("/")[0], undefined);
  }
  const order = folderOrder([...cases.keys()].map((k) => {
    const [dataset, name] = k.split("/");
    return { dataset, name };
  }));
  const nodes = folderOrder([
    ...[...groups.keys()].map((dataset) => ({ dataset, name: "" })),
    ...order,
  ]);
  const metas = new Map<string, Json>();
  const checks: CaseCheck[] = [];
  for (let i = 0; i < nodes.length; i++) {
    const { dataset, name } = nodes[i];
    options.onStart?.(nodes[i], i, nodes.length + 1);
    const check = name
      ? await checkOneCase(reader, dataset, name, options, cases.get(`${dataset}/${name}`), metas)
      : await checkGroup(
        reader,
        dataset,
        (groups.get(dataset) ?? 0) + [...cases.keys()].filter((k) => k.startsWith(`${dataset}/`))
          .length,
        metas,
      );
    checks.push(check);
    options.onCase?.(check);
  }
  const storedKeys = stored
    ? new Set([...stored.groups.keys(), ...stored.cases.keys()])
    : undefined;
  options.onStart?.({ dataset: "", name: "" }, nodes.length, nodes.length + 1);
  const root = await checkRoot(reader, metas, storedKeys, maxProblems);
  checks.push(root);
  options.onCase?.(root);
  const bytes = checks.reduce((a, c) => a + c.bytes, 0);
  return { checks, bytes, seconds: (performance.now() - t0) / 1000 };
}
