// What a training loop calls after each step to make its run visible: the step's scalars
// appended to a TensorBoard event file, and `loss.svg` redrawn every few steps (not only
// at checkpoints). Resumes are found from the run folder's event files and marked.
import { join } from "node:path";
import { decodeEvent, EventWriter, readTfRecords } from "./tfevents.ts";
import { lossPlotSvg } from "./plot.ts";
import { writeFileAtomic } from "./folder.ts";
import { LOSS_TERMS } from "../voco/loss.ts";
import type { PlotRow } from "./_plot_parts.ts";

/** Options of {@linkcode runLogger}. */
export interface RunLoggerOptions {
  /** The run's name, in the plot's title. @default the folder's name */
  name?: string;
  /** Title after the name. @default "VoCo pre-training" */
  title?: string;
  /** Redraw `loss.svg` every this many steps (0: only on `flush`). @default 10 */
  plotEvery?: number;
  /**
   * Steps already done (a resumed run's checkpoint step): the plot marks it and TensorBoard
   * is told to drop the earlier files' events after it. @default 0
   */
  startStep?: number;
  /**
   * The rows done before this process (a resumed run's). @default the rows of the folder's
   * `metrics.jsonl` up to `startStep`
   */
  rows?: readonly PlotRow[];
  /** Write TensorBoard event files. @default true */
  tensorboard?: boolean;
  /** Told about a failed write (the run goes on). @default console.error, once */
  onError?: (e: Error) => void;
}

/** The object {@linkcode runLogger} returns. */
export interface RunLogger {
  /** Steps where the run was resumed, oldest first. */
  readonly resumedAt: readonly number[];
  /** The event file this process writes (absent without TensorBoard). */
  readonly eventFile?: string;
  /** Records one step: its scalars to TensorBoard, and `loss.svg` every `plotEvery` steps. */
  onStep(row: PlotRow): Promise<void>;
  /** Redraws `loss.svg` now (call it at a checkpoint and at the end). */
  flush(): Promise<void>;
}

const LOSS_KEYS = new Set<string>(["loss", ...LOSS_TERMS.v2, ...LOSS_TERMS.v1]);

/** The TensorBoard tag of a metrics key: `loss/<term>` for the loss and its terms, else `train/<key>`. */
export function tensorboardTag(key: string): string {
  return LOSS_KEYS.has(key) || key.startsWith("loss_") ? `loss/${key}` : `train/${key}`;
}

/** The first step with scalars in an event file (undefined when it has none yet). */
async function firstStep(path: string): Promise<number | undefined> {
  using file = await Deno.open(path);
  const head = new Uint8Array(65536);
  const n = (await file.read(head)) ?? 0;
  for (const rec of readTfRecords(head.subarray(0, n), true)) {
    const e = decodeEvent(rec);
    if (e.scalars.length) return e.step;
  }
  return undefined;
}

/** Steps where earlier processes of the run in `dir` resumed (from their event files). */
export async function resumesOf(dir: string): Promise<number[]> {
  const firsts: number[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (!e.isFile || !e.name.startsWith("events.out.tfevents.")) continue;
    const s = await firstStep(join(dir, e.name)).catch(() => undefined);
    if (s !== undefined && s > 1) firsts.push(s - 1);
  }
  return [...new Set(firsts)].sort((a, b) => a - b);
}

async function readRows(dir: string, maxStep: number): Promise<PlotRow[]> {
  const text = await Deno.readTextFile(join(dir, "metrics.jsonl")).catch(() => "");
  const rows: PlotRow[] = [];
  for (const line of text.split("\n")) {
    try {
      const r = JSON.parse(line);
      if (typeof r?.step === "number" && r.step <= maxStep) rows.push(r);
    } catch { /* a cut last line or a blank one */ }
  }
  return rows;
}

/**
 * A logger for the run in `dir` (which must exist). Call `onStep(row)` after each step
 * with the row written to `metrics.jsonl`, and `flush()` at checkpoints and at the end.
 * A failed write is reported to `onError` and never stops the run.
 *
 * @example Wiring it into a loop
 * ```ts ignore
 * const log = await runLogger(dir, { name: "v2-btcv", startStep });
 * for (...) { ...; await log.onStep(row); if (checkpoint) await log.flush(); }
 * await log.flush();
 * ```
 */
export async function runLogger(dir: string, options: RunLoggerOptions = {}): Promise<RunLogger> {
  const { plotEvery = 10, startStep = 0, tensorboard = true } = options;
  let warned = false;
  const onError = options.onError ?? ((e: Error) => {
    if (!warned) console.error(`Run log of ${dir}: ${e.message} (the run goes on)`);
    warned = true;
  });
  const resumedAt = [...new Set([...await resumesOf(dir), ...(startStep > 0 ? [startStep] : [])])]
    .filter((s) => s <= startStep).sort((a, b) => a - b);
  const rows: PlotRow[] = [...(options.rows ?? await readRows(dir, startStep))];
  let writer: EventWriter | undefined;
  if (tensorboard) {
    writer = await EventWriter.create(dir);
    if (startStep > 0) await writer.sessionStart(startStep + 1);
  }
  const name = options.name ?? dir.replace(/\/+$/, "").split("/").at(-1);
  const plot = async () => {
    const svg = lossPlotSvg(rows, {
      runName: name,
      title: options.title ?? "VoCo pre-training",
      resumedAt,
    });
    await writeFileAtomic(join(dir, "loss.svg"), svg);
  };
  let sincePlot = 0;
  return {
    resumedAt,
    eventFile: writer?.path,
    async onStep(row) {
      rows.push(row);
      if (writer && typeof row.step === "number") {
        const scalars: Record<string, number> = {};
        for (const [k, v] of Object.entries(row)) {
          if (k !== "step" && typeof v === "number") scalars[tensorboardTag(k)] = v;
        }
        await writer.scalars(row.step, scalars).catch((e) => onError(e as Error));
      }
      if (plotEvery > 0 && ++sincePlot >= plotEvery) {
        sincePlot = 0;
        await plot().catch((e) => onError(e as Error));
      }
    },
    async flush() {
      sincePlot = 0;
      await plot().catch((e) => onError(e as Error));
    },
  };
}
