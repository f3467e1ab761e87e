// One writer per run folder: the process that trains in it holds an exclusive lock on
// `run.lock` (flock, which the system releases when the process ends, kill -9 included, so a
// dead holder's lock is free at once) and writes its pid, host and start time into it. A
// second process is refused with the holder named. No process table is read: the tasks run
// without the permission to look into /proc.
import { join } from "node:path";
import { BadInputError } from "../../cache/errors.ts";

/** The lock file of a run folder. */
export const LOCK_FILE = "run.lock";

/** What `run.lock` records about its holder. */
export interface LockOwner {
  /** Process id. */
  pid: number;
  /** Host name. */
  host: string;
  /** When the lock was taken (ISO 8601). */
  since: string;
}

/** A held lock; {@linkcode RunLock.release} removes the file and frees the lock. */
export interface RunLock {
  /** The lock file. */
  path: string;
  /** Removes the lock file and releases the lock. */
  release(): Promise<void>;
}

function hostName(): string {
  try {
    return Deno.hostname();
  } catch {
    return "";
  }
}

async function holder(path: string): Promise<string> {
  try {
    const o = JSON.parse(await Deno.readTextFile(path)) as Partial<LockOwner>;
    if (typeof o.pid === "number") {
      return `process ${o.pid} on ${o.host || "an unknown host"} since ${o.since}`;
    }
  } catch { /* being written */ }
  return "another process";
}

/**
 * Takes the lock of run folder `dir` (which exists) for this process. Throws a
 * {@linkcode BadInputError} naming the holder when another process has it.
 */
export async function lockRun(dir: string): Promise<RunLock> {
  const path = join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 10; attempt++) {
    const file = await Deno.open(path, { read: true, write: true, create: true });
    let locked: boolean;
    try {
      locked = await file.tryLock(true);
    } catch (e) {
      file.close();
      throw new BadInputError(`${path}: cannot lock it here (${(e as Error).message})`, {
        path,
        cause: e,
      });
    }
    if (!locked) {
      file.close();
      throw new BadInputError(
        `${dir} is in use by ${await holder(path)} (${path}): one process trains in a run ` +
          "folder at a time",
        { path },
      );
    }
    // A holder that was releasing may have removed the file we opened: lock the new one.
    const mine = await file.stat(), named = await Deno.stat(path).catch(() => undefined);
    if (!named || named.ino !== mine.ino) {
      file.close();
      continue;
    }
    const owner: LockOwner = { pid: Deno.pid, host: hostName(), since: new Date().toISOString() };
    await file.truncate(0);
    await file.write(new TextEncoder().encode(JSON.stringify(owner) + "\n"));
    return {
      path,
      async release() {
        await Deno.remove(path).catch(() => {});
        file.close();
      },
    };
  }
  throw new BadInputError(`${dir}: could not take the lock ${path} (others keep taking it)`, {
    path,
  });
}
