// The run folders a viewer shows: found (a run folder, or a folder of them as TensorBoard's
// --logdir), their config, and their metrics rows read incrementally from `metrics.jsonl`
// so that a page polling a long run costs only the new lines.
import { basename, join, resolve } from "node:path";
import { BadInputError } from "../cache/errors.ts";

/** A run as the page lists it. */
export interface RunEntry {
  /** Index in the viewer's list. */
  id: number;
  /** The folder's name (a parent's name before it when names repeat). */
  name: string;
  /** The folder. */
  dir: string;
}

/** What a poll of a run's metrics returns. */
export interface MetricsUpdate {
  /** Rows whose step is above the one asked for, in file order. */
  rows: Record<string, unknown>[];
  /** The last step in the file now (below the one asked for after a resume truncated it). */
  lastStep: number;
}

const isRun = async (dir: string) =>
  (await Promise.all(
    ["config.json", "metrics.jsonl"].map((f) =>
      Deno.stat(join(dir, f)).then(() => true, () => false)
    ),
  )).some(Boolean);

/** Run folders of `paths`: each a run folder, or a folder whose subfolders are runs. */
export async function findRuns(paths: readonly string[]): Promise<RunEntry[]> {
  const dirs: string[] = [];
  for (const p of paths.map((p) => resolve(p))) {
    const stat = await Deno.stat(p).catch(() => undefined);
    if (!stat?.isDirectory) throw new Deno.errors.NotFound(`Run folder ${p} does not exist`);
    if (await isRun(p)) {
      dirs.push(p);
      continue;
    }
    const subs = (await Array.fromAsync(Deno.readDir(p))).filter((e) => e.isDirectory)
      .map((e) => join(p, e.name)).sort();
    const runs = (await Promise.all(subs.map(async (s) => (await isRun(s)) ? s : ""))).filter(
      Boolean,
    );
    if (!runs.length) {
      throw new BadInputError(
        `${p} is not a run folder (no config.json or metrics.jsonl) and holds none`,
      );
    }
    dirs.push(...runs);
  }
  const names = dirs.map((d) => basename(d));
  return dirs.map((dir, id) => ({
    id,
    dir,
    name: names.filter((n) => n === names[id]).length > 1
      ? `${basename(join(dir, ".."))}/${names[id]}`
      : names[id],
  }));
}

/** Reads runs' configs and metrics, remembering how far each `metrics.jsonl` was read. */
export class RunReader {
  readonly #seen = new Map<
    string,
    { offset: number; rows: Record<string, unknown>[]; tail: string }
  >();

  /** The run's `config.json` (null while the run has not written it). */
  async config(dir: string): Promise<unknown> {
    const text = await Deno.readTextFile(join(dir, "config.json")).catch(() => null);
    if (text === null) return null;
    try {
      return JSON.parse(text);
    } catch {
      return null; // being rewritten
    }
  }

  /** The rows of `dir`'s metrics with a step above `after`, reading only what was appended. */
  async metrics(dir: string, after = -Infinity): Promise<MetricsUpdate> {
    const path = join(dir, "metrics.jsonl");
    let s = this.#seen.get(dir) ?? { offset: 0, rows: [], tail: "" };
    const size = (await Deno.stat(path).catch(() => undefined))?.size ?? 0;
    if (size < s.offset) s = { offset: 0, rows: [], tail: "" }; // rewritten (a resume)
    if (size > s.offset) {
      using file = await Deno.open(path);
      await file.seek(s.offset, Deno.SeekMode.Start);
      const buf = new Uint8Array(size - s.offset);
      let got = 0;
      while (got < buf.length) {
        const n = await file.read(buf.subarray(got));
        if (n === null) break;
        got += n;
      }
      const text = s.tail + new TextDecoder().decode(buf.subarray(0, got));
      const lines = text.split("\n");
      s.tail = lines.pop() ?? ""; // an unfinished last line waits for the next poll
      for (const line of lines) {
        try {
          const r = JSON.parse(line);
          if (typeof r?.step === "number") s.rows.push(r);
        } catch { /* a damaged line is skipped */ }
      }
      s.offset += got;
    }
    this.#seen.set(dir, s);
    const rows = s.rows.filter((r) => (r.step as number) > after);
    return { rows, lastStep: (s.rows.at(-1)?.step as number | undefined) ?? 0 };
  }
}
