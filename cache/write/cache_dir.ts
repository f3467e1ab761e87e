// The cache folder on disk: the root group, dataset groups, staging folders of live runs,
// and publishing a finished case into place with a rename.
import { join } from "node:path";
import { NotACacheError } from "../errors.ts";
import {
  CACHE_FORMAT_VERSION,
  isValidNodeName,
  type Layout,
  LAYOUTS,
  STAGING_DIR,
} from "../format/format.ts";

/** One case of the cache. */
export interface CacheEntry {
  /** Dataset group name. */
  dataset: string;
  /** Case array name. */
  name: string;
  /** Folder of the case's Zarr array. */
  dir: string;
  /** Why the entry cannot be read (unreadable metadata); absent when it can. */
  error?: string;
}

async function readJson(path: string): Promise<Record<string, unknown> | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw new SyntaxError(`Unreadable Zarr metadata ${path}: ${(e as Error).message}`);
  }
}

/**
 * Why `root` cannot hold a cache, or `undefined` when it can (a cache already, an empty
 * folder, or nothing yet): a file, a Zarr array, or a folder with other files (so a typo
 * in `--out` cannot scatter a cache into a home or source folder).
 */
export async function cacheFolderProblem(root: string): Promise<string | undefined> {
  const info = await Deno.stat(root).catch(() => undefined);
  if (!info) return undefined;
  if (!info.isDirectory) return `${root} is a file, not a cache folder`;
  const verdict = (meta: Record<string, unknown>) =>
    meta.node_type === "group" ? undefined : `${root} is a Zarr array, not a cache`;
  let meta: Record<string, unknown> | undefined;
  try {
    meta = await readJson(join(root, "zarr.json"));
  } catch (e) {
    return `${(e as Error).message} (deno task cache verify --fix writes it again)`;
  }
  if (meta) return verdict(meta);
  for await (const entry of Deno.readDir(root)) {
    if (entry.name === STAGING_DIR) continue;
    // Another run may be creating the cache right now: it writes the root's zarr.json
    // before anything but .staging, so a second look finds it.
    const now = await readJson(join(root, "zarr.json")).catch(() => undefined);
    if (now) return verdict(now);
    return `${root} is not empty and not a cache (found "${entry.name}")`;
  }
  return undefined;
}

/**
 * Writes `value` as the JSON file `path` of the cache at `root` unless the file exists,
 * in one step: a temporary file in the staging folder, then a hard link (which fails
 * when the file exists), so that of runs starting together exactly one creates it and
 * none overwrites what another wrote since. Returns whether this call created it. Where
 * the file system has no hard links, a rename (the last writer wins) stands in.
 */
async function createJsonOnce(root: string, path: string, value: unknown): Promise<boolean> {
  const dir = join(root, STAGING_DIR);
  await Deno.mkdir(dir, { recursive: true });
  const tmp = join(dir, `tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}.json`);
  await Deno.writeTextFile(tmp, JSON.stringify(value, null, 2));
  try {
    await Deno.link(tmp, path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) return false;
    if (await readJson(path).catch(() => undefined)) return false;
    await Deno.rename(tmp, path);
    return true;
  } finally {
    await Deno.remove(tmp).catch(() => {});
  }
}

/**
 * Writes `value` as the JSON file `path` of the cache at `root` in one step: a temporary
 * file in the staging folder, then a rename, so that a reader (or another run) never
 * sees half a file, whatever moment a process is killed at.
 */
export async function writeJsonAtomic(root: string, path: string, value: unknown): Promise<void> {
  const dir = join(root, STAGING_DIR);
  await Deno.mkdir(dir, { recursive: true });
  const tmp = join(dir, `tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}.json`);
  await Deno.writeTextFile(tmp, JSON.stringify(value, null, 2));
  try {
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

/** Options of {@linkcode initCache}. */
export interface InitCacheOptions {
  /**
   * Layout recorded in a new cache (`voco_cache.layout` of the root group).
   * @default {undefined: none recorded}
   */
  layout?: Layout;
}

/**
 * Makes `root` a cache (a Zarr v3 root group) if it is not one yet. Refuses a folder that
 * {@linkcode cacheFolderProblem} finds unfit. Atomic and idempotent: of processes starting
 * together on a new folder exactly one writes the root, and none is refused for finding
 * the others' files.
 */
export async function initCache(root: string, options: InitCacheOptions = {}): Promise<void> {
  const problem = await cacheFolderProblem(root);
  if (problem) throw new TypeError(problem);
  await Deno.mkdir(root, { recursive: true });
  if (await readJson(join(root, "zarr.json")).catch(() => undefined)) return;
  await createJsonOnce(root, join(root, "zarr.json"), {
    zarr_format: 3,
    node_type: "group",
    attributes: {
      voco_cache: {
        format_version: CACHE_FORMAT_VERSION,
        created: new Date().toISOString(),
        ...(options.layout ? { layout: options.layout } : {}),
      },
    },
  });
}

/**
 * The layout a cache records (`voco_cache.layout`): `chunked` for a cache made before
 * layouts were recorded, `undefined` when `root` is no cache yet.
 */
export async function cacheLayout(root: string): Promise<Layout | undefined> {
  const meta = await readJson(join(root, "zarr.json")).catch(() => undefined);
  if (meta?.node_type !== "group") return undefined;
  const layout = ((meta.attributes as Record<string, unknown> | undefined)?.voco_cache as
    | Record<string, unknown>
    | undefined)?.layout;
  return LAYOUTS.includes(layout as Layout) ? layout as Layout : "chunked";
}

/** Records `layout` as the cache's layout (the root group's other metadata kept). */
export async function setCacheLayout(root: string, layout: Layout): Promise<void> {
  const path = join(root, "zarr.json");
  const meta = await readJson(path);
  if (meta?.node_type !== "group") throw new TypeError(`${root} is not a cache`);
  const attributes = (meta.attributes ?? {}) as Record<string, unknown>;
  const voco = (attributes.voco_cache ?? {}) as Record<string, unknown>;
  if (voco.layout === layout) return;
  attributes.voco_cache = { ...voco, layout };
  await writeJsonAtomic(root, path, { ...meta, attributes });
}

/** Whether `root` is a VoCo cache: a Zarr v3 root group with `voco_cache` attributes. */
export async function isVocoCache(root: string): Promise<boolean> {
  const meta = await readJson(join(root, "zarr.json")).catch(() => undefined);
  return meta?.node_type === "group" &&
    typeof (meta.attributes as Record<string, unknown> | undefined)?.voco_cache === "object";
}

/** Creates the group of a dataset when missing, or rewrites its metadata when damaged. */
export async function ensureDataset(root: string, dataset: string): Promise<void> {
  if (!isValidNodeName(dataset)) throw new RangeError(`Invalid dataset name "${dataset}"`);
  const meta = await readJson(join(root, dataset, "zarr.json")).catch(() => undefined);
  if (meta?.node_type === "group") return;
  await Deno.mkdir(join(root, dataset), { recursive: true });
  await writeJsonAtomic(root, join(root, dataset, "zarr.json"), {
    zarr_format: 3,
    node_type: "group",
    attributes: { dataset },
  });
}

/** The fingerprint of a cached case, or `undefined` when it is not in the cache. */
export async function cachedFingerprint(
  root: string,
  dataset: string,
  name: string,
): Promise<string | undefined> {
  // Unreadable metadata (a damaged copy) counts as no case: the run rebuilds it.
  const meta = await readJson(join(root, dataset, name, "zarr.json")).catch(() => undefined);
  const attrs = meta?.attributes as Record<string, unknown> | undefined;
  return typeof attrs?.fingerprint === "string" ? attrs.fingerprint : undefined;
}

/**
 * A staging folder is taken for abandoned when its owner's heartbeat is this old (its
 * owner is on another machine, or this system cannot tell whether a process lives).
 */
export const STAGING_STALE_MS = 10 * 60 * 1000;

/** How often a run refreshes the heartbeat of its staging folder. */
const HEARTBEAT_MS = 60 * 1000;

/** The owner of a staging folder, as its `owner.json` records it. */
interface StagingOwner {
  pid: number;
  host: string;
  heartbeat: number;
}

function hostName(): string {
  try {
    return Deno.hostname();
  } catch {
    return "";
  }
}

/** A run's staging folder, with its heartbeat; {@linkcode StagingRun.close} removes it. */
export interface StagingRun {
  /** The folder; cases are written to sub-folders of it, then published. */
  dir: string;
  /** Stops the heartbeat and removes the folder. */
  close(): Promise<void>;
}

/** The file a run holds an exclusive lock on (flock) while it lives, in its staging folder. */
const STAGING_LOCK = "owner.lock";

/**
 * Creates a staging folder for one run, owned by this process on this host. The run
 * holds an exclusive lock on its `owner.lock` (the system releases it when the process
 * ends, kill -9 included), so that {@linkcode cleanStaging} on this host tells a live run
 * from a dead one without reading the process table (the tasks may not look into /proc);
 * its `owner.json` carries a heartbeat, refreshed every minute, for machines sharing the
 * cache over a network file system, where a lock may not be seen.
 */
export async function createStagingRun(root: string): Promise<StagingRun> {
  const dir = join(root, STAGING_DIR, `run-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`);
  await Deno.mkdir(dir, { recursive: true });
  const lock = await Deno.open(join(dir, STAGING_LOCK), { write: true, create: true });
  await lock.lock(true);
  const beat = () => {
    const owner: StagingOwner = { pid: Deno.pid, host: hostName(), heartbeat: Date.now() };
    return Deno.writeTextFile(join(dir, "owner.json"), JSON.stringify(owner));
  };
  await beat();
  const timer = setInterval(() => beat().catch(() => {}), HEARTBEAT_MS);
  Deno.unrefTimer(timer);
  return {
    dir,
    async close() {
      clearInterval(timer);
      lock.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/**
 * Removes the staging folders of runs that are gone: on this host, one whose lock no
 * process holds (or, for a folder without a lock, a process that no longer exists, where
 * the system lets this process tell); elsewhere, or where nothing tells, a heartbeat older
 * than {@linkcode STAGING_STALE_MS}. This process's own folders are kept.
 */
export async function cleanStaging(root: string): Promise<void> {
  const base = join(root, STAGING_DIR);
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(base));
  } catch {
    return;
  }
  const host = hostName();
  for (const e of entries) {
    const dir = join(base, e.name);
    const owner = await readJson(join(dir, "owner.json")).catch(() => undefined) as
      | Partial<StagingOwner>
      | undefined;
    const since = typeof owner?.heartbeat === "number"
      ? owner.heartbeat
      : (await Deno.stat(dir).catch(() => undefined))?.mtime?.getTime() ?? 0;
    const stale = Date.now() - since > STAGING_STALE_MS;
    const here = owner?.host === host && typeof owner.pid === "number";
    if (here && owner!.pid === Deno.pid) continue;
    const alive = here
      ? await lockHeld(join(dir, STAGING_LOCK)) ?? processAlive(owner!.pid!) ?? !stale
      : !stale;
    if (!alive) await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Whether a process holds the lock on `path`; `undefined` when there is no lock file. */
async function lockHeld(path: string): Promise<boolean | undefined> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { write: true });
  } catch {
    return undefined;
  }
  try {
    return !(await file.tryLock(true));
  } finally {
    file.close();
  }
}

/**
 * Whether process `pid` exists on this host; `undefined` where that cannot be told (not
 * Linux, or no permission to look into /proc).
 */
function processAlive(pid: number): boolean | undefined {
  if (Deno.build.os !== "linux") return undefined;
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch (e) {
    return e instanceof Deno.errors.NotFound ? false : undefined;
  }
}

/** Whether an error is a rename refused because the target folder exists, not empty. */
function targetExists(e: unknown): boolean {
  return e instanceof Deno.errors.AlreadyExists ||
    (e instanceof Error && /not empty|ENOTEMPTY|EEXIST|exists/i.test(e.message));
}

/**
 * Moves a fully written case from staging into the cache with a rename, so a reader sees
 * either the old case or the new one, never half of one. Another run may publish the same
 * case at the same time (overlapping inputs): when it got there first with the same
 * fingerprint, this copy is dropped (`"already"`); with another, this one replaces it.
 */
export async function publishCase(
  root: string,
  dataset: string,
  name: string,
  stagedDir: string,
): Promise<"published" | "already"> {
  if (!isValidNodeName(name)) throw new RangeError(`Invalid case name "${name}"`);
  const target = join(root, dataset, name);
  const mine = (await readJson(join(stagedDir, "zarr.json")))?.attributes as
    | Record<string, unknown>
    | undefined;
  for (let attempt = 0;; attempt++) {
    const old = `${stagedDir}.replaced${attempt}`;
    let replaced = false;
    try {
      await Deno.rename(target, old);
      replaced = true;
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    try {
      await Deno.rename(stagedDir, target);
      if (replaced) await Deno.remove(old, { recursive: true });
      return "published";
    } catch (e) {
      if (replaced) await Deno.remove(old, { recursive: true }).catch(() => {});
      if (!targetExists(e) || attempt >= 8) throw e;
    }
    // Another run published this case between the two renames.
    const theirs = await cachedFingerprint(root, dataset, name);
    if (theirs !== undefined && theirs === mine?.fingerprint) {
      await Deno.remove(stagedDir, { recursive: true }).catch(() => {});
      return "already";
    }
  }
}

/**
 * Lists the cases of a cache, dataset by dataset, in name order. An entry whose metadata
 * cannot be read is listed with `error` (a dataset group's with an empty `name`). Throws
 * naming the folder when it does not exist or is not a cache (no Zarr group at its root).
 */
export async function listCases(root: string): Promise<CacheEntry[]> {
  const rootMeta = await readJson(join(root, "zarr.json"));
  if (rootMeta?.node_type !== "group") {
    const exists = await Deno.stat(root).then(() => true, () => false);
    throw new NotACacheError(
      exists
        ? `${root} is not a VoCo cache (no Zarr group zarr.json at its root)`
        : `Cache ${root} does not exist`,
      { path: root },
    );
  }
  const out: CacheEntry[] = [];
  const datasets = (await Array.fromAsync(Deno.readDir(root)))
    .filter((e) => e.isDirectory && e.name !== STAGING_DIR).map((e) => e.name).sort();
  // A damaged entry is listed with its error, so one bad file cannot hide the others.
  const read = (path: string) =>
    readJson(path).then(
      (meta) => ({ meta, error: undefined }),
      (e: Error) => ({ meta: undefined, error: e.message }),
    );
  for (const dataset of datasets) {
    const group = await read(join(root, dataset, "zarr.json"));
    if (group.error) out.push({ dataset, name: "", dir: join(root, dataset), error: group.error });
    if (group.meta?.node_type !== "group") continue;
    const names = (await Array.fromAsync(Deno.readDir(join(root, dataset))))
      .filter((e) => e.isDirectory).map((e) => e.name).sort();
    for (const name of names) {
      const dir = join(root, dataset, name);
      const { meta, error } = await read(join(dir, "zarr.json"));
      if (error) out.push({ dataset, name, dir, error });
      else if (meta?.node_type === "array") out.push({ dataset, name, dir });
    }
  }
  return out;
}

/** A case of one dataset group, with its attributes when its metadata can be read. */
export interface GroupCase {
  /** Case array name. */
  name: string;
  /** The array's attributes; absent when its metadata is unreadable. */
  attributes?: Record<string, unknown>;
}

/**
 * The cases of one dataset group with their attributes, in name order; none when the
 * cache or the group does not exist.
 */
export async function readGroup(root: string, dataset: string): Promise<GroupCase[]> {
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(join(root, dataset)));
  } catch {
    return [];
  }
  const out: GroupCase[] = [];
  for (const name of entries.filter((e) => e.isDirectory).map((e) => e.name).sort()) {
    const meta = await readJson(join(root, dataset, name, "zarr.json")).catch(() => null);
    if (meta === undefined) continue; // not a Zarr node
    if (meta && meta.node_type !== "array") continue;
    out.push({ name, attributes: (meta?.attributes as Record<string, unknown>) ?? undefined });
  }
  return out;
}

/**
 * Removes a dataset group with all its cases: renamed out of the cache first (readers
 * then see it gone at once), then deleted.
 */
export async function removeDataset(root: string, dataset: string): Promise<void> {
  if (!isValidNodeName(dataset)) throw new RangeError(`Invalid dataset name "${dataset}"`);
  const doomed = join(root, STAGING_DIR, `removed-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`);
  await Deno.mkdir(join(root, STAGING_DIR), { recursive: true });
  await Deno.rename(join(root, dataset), doomed);
  await Deno.remove(doomed, { recursive: true });
}

/**
 * Removes a case from the cache: renamed out of its group first (readers then see it
 * gone at once), then deleted.
 */
export async function removeCase(root: string, dataset: string, name: string): Promise<void> {
  if (!isValidNodeName(dataset) || !isValidNodeName(name)) {
    throw new RangeError(`Invalid case name "${dataset}/${name}"`);
  }
  const doomed = join(root, STAGING_DIR, `removed-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`);
  await Deno.mkdir(join(root, STAGING_DIR), { recursive: true });
  await Deno.rename(join(root, dataset, name), doomed);
  await Deno.remove(doomed, { recursive: true });
}
