// Running a task as a program: its exit code by the kind of error that ended it (one rule
// for every task), Ctrl-C, and the message helpers tasks print with. The argument parser
// is in `args.ts`, progress lines in `progress.ts`.
import { errorKind, UsageError } from "../cache/errors.ts";
import { formatBytes, formatSeconds } from "../cache/text.ts";

export { formatBytes, formatSeconds, UsageError };

/** Exit code of a run stopped with Ctrl-C (128 + SIGINT), as shells report it. */
export const EXIT_INTERRUPTED = 130;

/**
 * Ctrl-C handling for a long task: the first Ctrl-C calls `onFirst` (the task stops
 * starting new work, writes what it must and then exits with {@linkcode EXIT_INTERRUPTED});
 * a second one exits at once with that code. `dispose()` removes the handler.
 */
export function onInterrupt(
  onFirst: () => void,
): { readonly interrupted: boolean; dispose(): void } {
  let interrupted = false;
  const handler = () => {
    if (interrupted) {
      console.error("\nInterrupted twice: quitting now.");
      Deno.exit(EXIT_INTERRUPTED);
    }
    interrupted = true;
    onFirst();
  };
  Deno.addSignalListener("SIGINT", handler);
  return {
    get interrupted() {
      return interrupted;
    },
    dispose: () => Deno.removeSignalListener("SIGINT", handler),
  };
}

/**
 * Exit codes of every task: 0 done; 1 done, but items failed and were skipped (cases,
 * samples), damage was found, or a check exceeded its tolerance; 2 nothing was done: bad
 * usage, or an input named on the command line is missing or unusable; 3 an internal
 * error (a bug); 130 stopped with Ctrl-C.
 */
export const EXIT = { ok: 0, failed: 1, usage: 2, internal: 3, interrupted: 130 } as const;

/** Whether `e` (or an error it wraps) is one of the system's I/O errors (a full disk, ...). */
function isSystemError(e: unknown): boolean {
  for (let at = e, depth = 0; at instanceof Error && depth < 16; at = at.cause, depth++) {
    if (Object.values(Deno.errors).some((Kind) => at instanceof Kind)) return true;
  }
  return false;
}

/**
 * The exit code for an error that ended a task, by its kind (see {@linkcode EXIT}): bad
 * usage, bad input and a folder that is no cache 2; a damaged cache, an unreachable server
 * or a system error (disk full, permission) 1; anything else is a bug, 3.
 */
export function exitCodeOf(e: unknown): number {
  const kind = errorKind(e);
  if (kind === "usage" || kind === "bad-input" || kind === "not-a-cache") return EXIT.usage;
  if (kind === "damaged-cache" || kind === "unavailable" || isSystemError(e)) return EXIT.failed;
  return EXIT.internal;
}

/**
 * Runs a task's `main(args)` as the program: exits with its code. A usage error prints
 * the help hint and exits 2; other errors print their message and exit by kind
 * ({@linkcode exitCodeOf}).
 */
export async function runMain(
  name: string,
  main: (args: string[]) => Promise<number>,
): Promise<never> {
  try {
    Deno.exit(await main(Deno.args));
  } catch (e) {
    if (e instanceof UsageError) {
      const command = e.command ?? name;
      console.error(`${command}: ${e.message}\nRun "deno task ${command} --help" for usage.`);
    } else if (exitCodeOf(e) === EXIT.internal) {
      // Not an error of the input or the system: a bug of the toolkit, shown in full.
      console.error(
        `${name}: internal error (please report it with what follows): ` +
          ((e as Error)?.stack ?? String(e)),
      );
    } else {
      console.error(`${name}: ${(e as Error).message}`);
    }
    Deno.exit(exitCodeOf(e));
  }
}
