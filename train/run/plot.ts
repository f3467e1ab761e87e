// The plot of a pre-training run (`loss.svg`): a dependency-free SVG of the metrics rows,
// the loss and its terms on top, then the learning rate, the agreement and the step time in
// panels of their own, raw and smoothed, the legends beside the data, the run's name, and a
// marker at every step where the run was resumed.
import {
  drawPanel,
  escape,
  f,
  type PanelBox,
  type PlotRow,
  type Series,
  seriesOf,
  short,
  sortRows,
} from "./_plot_parts.ts";

/** Options of {@linkcode lossPlotSvg}. */
export interface LossPlotOptions {
  /**
   * Keys of the rows drawn in the loss panel, one line each, in legend order.
   * @default "loss", then the VoCo terms present ("intra", "inter", "pos", "neg", "reg") and
   * any key starting with "loss_"
   */
  series?: string[];
  /**
   * Keys drawn below the loss, one panel each, when some row has them.
   * @default ["lr", "agreement", "seconds"]
   */
  panels?: string[];
  /** The run's name, in the title. @default none */
  runName?: string;
  /** Title above the chart. @default "VoCo pre-training loss", after the run's name */
  title?: string;
  /** Steps where the run was resumed, marked by a dashed line. @default [] */
  resumedAt?: readonly number[];
  /** TensorBoard's smoothing weight, 0..1 (0 draws the raw lines only). @default 0.6 */
  smoothing?: number;
  /** Width in pixels. @default 900 */
  width?: number;
  /** Height of the loss panel in pixels (each other panel is 110). @default 280 */
  lossHeight?: number;
  /** Most points drawn per series; longer series keep each bucket's min and max. @default 2000 */
  maxPoints?: number;
}

const TERMS = ["intra", "inter", "pos", "neg", "reg"];
const COLORS = ["#111827", "#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2"];
const PANEL_LABELS: Record<string, string> = {
  lr: "learning rate",
  agreement: "agreement",
  seconds: "s / step",
};
const LEFT = 72, LEGEND = 215, TOP = 62, GAP = 22, BOTTOM = 44, PANEL_H = 110;

/** The loss panel's default series: the total loss, the VoCo terms, any `loss_*` key. */
function lossSeries(sorted: readonly PlotRow[]): string[] {
  const has = (k: string) => sorted.some((r) => typeof r[k] === "number");
  return [
    ...(has("loss") ? ["loss"] : []),
    ...TERMS.filter(has),
    ...[...new Set(sorted.flatMap((r) => Object.keys(r)))].filter((k) =>
      k.startsWith("loss_") && has(k)
    ),
  ];
}

/** A panel's legend, beside its top right corner: each series and its last value. */
function legend(box: PanelBox, series: readonly Series[], smoothed: boolean): string[] {
  const out: string[] = [];
  const x = box.x + box.w + 14;
  series.forEach((s, i) => {
    const y = box.y + 12 + 18 * i;
    const value = s.last === undefined ? "–" : short(s.last);
    const sm = smoothed && s.lastSmooth !== undefined ? ` (${short(s.lastSmooth)})` : "";
    out.push(
      `<line x1="${f(x)}" y1="${y - 4}" x2="${f(x + 18)}" y2="${y - 4}" stroke="${s.color}" ` +
        `stroke-width="2.5"/>`,
      `<text class="legend" x="${f(x + 24)}" y="${y}" fill="#111827">${
        escape(s.name)
      }  ${value}${sm}</text>`,
    );
  });
  return out;
}

/**
 * Draws training metrics as an SVG: x is `step`; the loss panel holds the total loss
 * (darker, on top) and each term, the panels below the learning rate, the agreement and
 * the step time when the rows have them. With `smoothing` > 0 each line is drawn faint as
 * it is and solid smoothed (TensorBoard's debiased moving average). Legends with the last
 * values stand right of the data, never over it; a dashed line marks each `resumedAt`
 * step. Non-finite values are skipped and break their line; rows are sorted by step; a
 * series longer than `maxPoints` keeps the minimum and maximum of each bucket, so spikes
 * stay visible. Zero rows draw empty axes saying so; a single point is drawn as a dot.
 *
 * @example Two steps of a v2 run
 * ```ts
 * import { lossPlotSvg } from "./plot.ts";
 * const svg = lossPlotSvg([
 *   { step: 1, loss: 2.5, intra: 1.2, inter: 1.1, reg: 0.2, lr: 1e-4 },
 *   { step: 2, loss: 2.1, intra: 1.0, inter: 0.9, reg: 0.2, lr: 2e-4 },
 * ], { runName: "v2-btcv", smoothing: 0 });
 * if ((svg.match(/<path /g) ?? []).length !== 5) throw new Error("one path per series");
 * ```
 */
export function lossPlotSvg(rows: ReadonlyArray<PlotRow>, options: LossPlotOptions = {}): string {
  const { width = 900, lossHeight = 280, maxPoints = 2000, resumedAt = [] } = options;
  const w = Math.min(0.999, Math.max(0, options.smoothing ?? 0.6));
  const sorted = sortRows(rows);
  const has = (k: string) => sorted.some((r) => typeof r[k] === "number");
  const groups = [
    { label: "loss", keys: options.series ?? lossSeries(sorted), h: lossHeight },
    ...(options.panels ?? ["lr", "agreement", "seconds"]).filter(has)
      .map((k) => ({ label: PANEL_LABELS[k] ?? k, keys: [k], h: PANEL_H })),
  ];
  let color = 0;
  const panels = groups.map((g) => ({
    ...g,
    series: g.keys.map((k) => seriesOf(sorted, k, COLORS[color++ % COLORS.length], w, maxPoints)),
  }));
  const all = panels.flatMap((p) => p.series);
  const xs = all.flatMap((s) => s.runs.flat().map(([x]) => x));
  const x: [number, number] = xs.length ? [Math.min(...xs), Math.max(...xs)] : [0, 10];
  if (x[0] === x[1]) x[0] -= 1, x[1] += 1;
  const height = TOP + panels.reduce((a, p) => a + p.h + GAP, 0) - GAP + BOTTOM;
  const pw = width - LEFT - LEGEND;
  const title = [options.runName, options.title ?? "VoCo pre-training loss"].filter(Boolean)
    .join(" · ");
  const last = sorted.at(-1)?.step as number | undefined;
  const skipped = all.filter((s) => s.bad).map((s) => `${s.name} ${s.bad}`);
  const notes = [
    `${sorted.length} row${sorted.length === 1 ? "" : "s"}` +
    (last !== undefined ? `, last step ${last}` : ""),
    ...(skipped.length ? [`non-finite values skipped: ${skipped.join(", ")}`] : []),
    ...(all.some((s) => s.total > s.runs.reduce((a, r) => a + r.length, 0))
      ? [`min/max of ≤ ${maxPoints} points per series`]
      : []),
    ...(w > 0 && xs.length ? [`smoothed ${w} (value in brackets)`] : []),
    ...(resumedAt.length ? [`resumed at step ${resumedAt.join(", ")}`] : []),
  ];
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
    `viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${LEFT}" y="22" font-size="16" font-weight="bold" fill="#111827">${
      escape(title)
    }</text>`,
    `<text x="${LEFT}" y="40" fill="#6b7280">${escape(notes.join(" · "))}</text>`,
  ];
  let y = TOP;
  panels.forEach((p, i) => {
    const box: PanelBox = {
      x: LEFT,
      y,
      w: pw,
      h: p.h,
      label: p.label,
      xLabels: i === panels.length - 1,
    };
    out.push(...drawPanel(box, p.series, x, resumedAt, w > 0), ...legend(box, p.series, w > 0));
    if (!xs.length && i === 0) {
      out.push(
        `<text x="${f(LEFT + pw / 2)}" y="${f(y + p.h / 2)}" text-anchor="middle" ` +
          `fill="#9ca3af" font-size="16">no data yet</text>`,
      );
    }
    y += p.h + GAP;
  });
  for (const step of resumedAt.filter((s) => s >= x[0] && s <= x[1])) {
    const at = LEFT + ((step - x[0]) / (x[1] - x[0])) * pw;
    out.push(`<text x="${f(at + 3)}" y="${TOP - 4}" fill="#b45309">resumed</text>`);
  }
  out.push(
    `<text x="${f(LEFT + pw / 2)}" y="${
      height - 8
    }" text-anchor="middle" fill="#374151">step</text>`,
    `</svg>`,
  );
  return out.join("\n") + "\n";
}
