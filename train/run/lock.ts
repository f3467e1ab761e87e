// One writer per run folder: `run.lock` names the process that trains in it (pid, host,
// since when, a heartbeat refreshed every minute). A second process is refused with the
// holder named; the lock of a process that is gone is taken over, as prep takes over the
// staging folders of dead runs: on this host when the pid no longer exists, from another
// host when the heartbeat is older than ten minutes.
import { join } from "node:path";
import { BadInputError } from "../../cache/errors.ts";

/** The lock file of a run folder. */
export const LOCK_FILE = "run.lock";

/** A lock is taken for abandoned when its heartbeat is this old (another host). */
export const LOCK_STALE_MS = 10 * 60 * 1000;

const HEARTBEAT_MS = 60 * 1000;

/** What `run.lock` records. */
export interface LockOwner {
  /** Process id. */
  pid: number;
  /** Host name. */
  host: string;
  /** When the lock was taken (ISO 8601). */
  since: string;
  /** Last sign of life, ms since the epoch. */
  heartbeat: number;
}

/** A held lock; {@linkcode RunLock.release} removes it. */
export interface RunLock {
  /** The lock file. */
  path: string;
  /** Stops the heartbeat and removes the lock file. */
  release(): Promise<void>;
}

function hostName(): string {
  try {
    return Deno.hostname();
  } catch {
    return "";
  }
}

/** Whether `pid` exists on this host; `undefined` where that cannot be told. */
function processAlive(pid: number): boolean | undefined {
  if (Deno.build.os !== "linux") return undefined;
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

async function readOwner(path: string): Promise<{ text: string; owner?: Partial<LockOwner> }> {
  const text = await Deno.readTextFile(path);
  try {
    return { text, owner: JSON.parse(text) };
  } catch {
    return { text }; // being written, or cut by a kill: judged by its age
  }
}

/** Whether the lock's holder is gone. */
async function isStale(path: string, owner?: Partial<LockOwner>): Promise<boolean> {
  const here = owner?.host === hostName() && typeof owner?.pid === "number";
  const beat = typeof owner?.heartbeat === "number"
    ? owner.heartbeat
    : (await Deno.stat(path).catch(() => undefined))?.mtime?.getTime() ?? 0;
  const old = Date.now() - beat > LOCK_STALE_MS;
  if (here) return !(processAlive(owner!.pid!) ?? !old);
  return old;
}

/**
 * Takes the lock of run folder `dir` (which exists) for this process. Throws a
 * {@linkcode BadInputError} naming the holder when another live process has it.
 */
export async function lockRun(dir: string): Promise<RunLock> {
  const path = join(dir, LOCK_FILE);
  const since = new Date().toISOString();
  const mine = (): LockOwner => ({
    pid: Deno.pid,
    host: hostName(),
    since,
    heartbeat: Date.now(),
  });
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const file = await Deno.open(path, { createNew: true, write: true });
      try {
        await file.write(new TextEncoder().encode(JSON.stringify(mine())));
      } finally {
        file.close();
      }
      const timer = setInterval(() => {
        Deno.writeTextFile(path, JSON.stringify(mine())).catch(() => {});
      }, HEARTBEAT_MS);
      Deno.unrefTimer(timer);
      return {
        path,
        async release() {
          clearInterval(timer);
          await Deno.remove(path).catch(() => {});
        },
      };
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    }
    const { text, owner } = await readOwner(path).catch(() => ({ text: "", owner: undefined }));
    if (text === "" && !(await Deno.stat(path).catch(() => undefined))) continue; // just released
    if (!(await isStale(path, owner))) {
      const who = owner?.pid !== undefined
        ? `process ${owner.pid} on ${owner.host || "an unknown host"} since ${owner.since}`
        : "another process";
      throw new BadInputError(
        `${dir} is in use by ${who} (${path}): one process trains in a run folder at a ` +
          `time. If that process is gone, remove ${path}`,
        { path },
      );
    }
    await takeOver(path, text);
  }
  throw new BadInputError(`${dir}: could not take the lock ${path} (others keep taking it)`, {
    path,
  });
}

/**
 * Removes a stale lock whose content is `seen`, atomically: the file is renamed away first,
 * and if what was renamed is not the stale lock (a live process took it over meanwhile),
 * it is linked back in place.
 */
async function takeOver(path: string, seen: string): Promise<void> {
  const aside = `${path}.stale-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  try {
    await Deno.rename(path, aside);
  } catch {
    return; // someone else moved it
  }
  const got = await Deno.readTextFile(aside).catch(() => "");
  if (got !== seen) await Deno.link(aside, path).catch(() => {});
  await Deno.remove(aside).catch(() => {});
}
