// Shared helpers of the command-line tasks: usage errors, running a task, Ctrl-C, sizes,
// durations, progress. The argument parser is in `_args.ts`.
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
 * A progress line on stderr: a bar, counts, ETA and the current item. Redrawn in place
 * on a terminal; on a pipe or log file, one line per finished item.
 */
export class Progress {
  #total: number;
  #done = 0;
  #start = performance.now();
  #tty = Deno.stderr.isTerminal();
  #current = "";
  #enc = new TextEncoder();
  #quiet: boolean;

  /** Starts a progress display for `total` items. */
  constructor(total: number, quiet = false) {
    this.#total = total;
    this.#quiet = quiet;
  }

  /** Shows `name` as the item being worked on. */
  working(name: string): void {
    this.#current = name;
    if (this.#tty) this.#draw();
  }

  /**
   * Counts one finished item. `line` is always shown (a failure, for example); `detail`
   * (a per-item log line) only on a pipe or log file, where no bar is drawn, and never
   * when quiet.
   */
  tick(line?: string, detail?: string): void {
    this.#done++;
    if (this.#quiet) {
      if (line) console.error(line);
      return;
    }
    if (this.#tty) {
      if (line) this.#write(`\r\x1b[2K${line}\n`);
      this.#draw();
    } else {
      const text = [line, detail].filter(Boolean).join("  ");
      this.#write(`${this.#status()}${text ? `  ${text}` : ""}\n`);
    }
  }

  /** Clears the progress line. */
  end(): void {
    if (this.#tty && !this.#quiet) this.#write("\r\x1b[2K");
  }

  #status(): string {
    const elapsed = (performance.now() - this.#start) / 1000;
    const eta = this.#done > 0 ? (elapsed / this.#done) * (this.#total - this.#done) : NaN;
    const frac = this.#total ? this.#done / this.#total : 1;
    const width = 24;
    const fill = Math.round(frac * width);
    return `[${"#".repeat(fill)}${".".repeat(width - fill)}] ${this.#done}/${this.#total} ` +
      `${(frac * 100).toFixed(0)}% elapsed ${formatSeconds(elapsed)} ETA ${formatSeconds(eta)}`;
  }

  #draw(): void {
    if (this.#quiet) return;
    const cols = (() => {
      try {
        return Deno.consoleSize().columns;
      } catch {
        return 100;
      }
    })();
    const line = `${this.#status()}  ${this.#current}`.slice(0, cols - 1);
    this.#write(`\r\x1b[2K${line}`);
  }

  #write(s: string): void {
    Deno.stderr.writeSync(this.#enc.encode(s));
  }
}

/**
 * A status line for work of unknown length (scanning a folder tree): redrawn at most 5
 * times a second on a terminal, a line every 10 s otherwise, nothing when quiet.
 */
export class StatusLine {
  #tty = Deno.stderr.isTerminal();
  #last = 0;
  #shown = false;
  #enc = new TextEncoder();
  #quiet: boolean;

  /** A status line; `quiet` silences it. */
  constructor(quiet = false) {
    this.#quiet = quiet;
  }

  /** Shows `text` unless the last update was too recent. */
  update(text: string): void {
    const now = performance.now();
    if (this.#quiet || now - this.#last < (this.#tty ? 200 : 10_000)) return;
    this.#last = now;
    this.#shown = true;
    Deno.stderr.writeSync(this.#enc.encode(this.#tty ? `\r\x1b[2K${text}` : `${text}\n`));
  }

  /** Clears the line (on a terminal). */
  end(): void {
    if (this.#tty && this.#shown) Deno.stderr.writeSync(this.#enc.encode("\r\x1b[2K"));
    this.#shown = false;
  }
}

/**
 * Exit codes of every task: 0 done; 1 done, but items failed and were skipped (cases,
 * samples), damage was found, or a check exceeded its tolerance; 2 nothing was done: bad
 * usage, or an input named on the command line is missing or unusable; 3 an internal
 * error (a bug); 130 stopped with Ctrl-C.
 */
export const EXIT = { ok: 0, failed: 1, usage: 2, internal: 3, interrupted: 130 } as const;

/** The exit code for an error that ended a task, by its kind (see {@linkcode EXIT}). */
export function exitCodeOf(e: unknown): number {
  const kind = errorKind(e);
  if (kind === "usage" || kind === "bad-input" || kind === "not-a-cache") return EXIT.usage;
  return EXIT.failed;
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
    } else {
      console.error(`${name}: ${(e as Error).message}`);
    }
    Deno.exit(exitCodeOf(e));
  }
}
