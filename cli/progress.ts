// Progress on stderr for long work: a bar with counts and ETA (redrawn in place on a
// terminal, a line per item in a log), and a status line for work of unknown length.
import { formatSeconds } from "../cache/text.ts";

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

  /** Shows `text` unless the last update was too recent (or `always`). */
  update(text: string, always = false): void {
    const now = performance.now();
    if (this.#quiet || (!always && now - this.#last < (this.#tty ? 200 : 10_000))) return;
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
