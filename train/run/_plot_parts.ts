// Parts of the run plot (`plot.ts`): round ticks and their labels, min/max decimation,
// TensorBoard's debiased smoothing, series taken from metrics rows, and one drawn panel.

/** A metrics row as the plot reads it: `step` and numeric values by key. */
export type PlotRow = Readonly<Record<string, unknown>>;

/** One series of a panel, ready to draw. */
export interface Series {
  /** The row key. */
  name: string;
  /** Stroke colour. */
  color: string;
  /** Raw points, split where a non-finite value breaks the line, decimated. */
  runs: [number, number][][];
  /** The smoothed points, split and decimated like `runs`. */
  smooth: [number, number][][];
  /** The last finite raw value, and the last smoothed one. */
  last?: number;
  lastSmooth?: number;
  /** Finite points before decimation, and non-finite values skipped. */
  total: number;
  bad: number;
}

/** XML text or attribute value, escaped. */
export const escape = (s: string): string =>
  s.replace(
    /[<>&"']/g,
    (c) => `&${{ "<": "lt", ">": "gt", "&": "amp", '"': "quot", "'": "apos" }[c]};`,
  );

/** A number for SVG coordinates. */
export const f = (v: number): string => v.toFixed(1);

/** Evenly spaced round tick values covering [lo, hi]. */
export function ticks(
  lo: number,
  hi: number,
  count: number,
  minStep = 0,
): { values: number[]; step: number } {
  const raw = Math.max((hi - lo) / count, minStep);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const values: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) {
    values.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  }
  return { values, step };
}

/** Tick labels: as few digits as the step needs; 2k, 4k (1.5M) when the ticks reach 10^4. */
export function labels(values: number[], step: number): string[] {
  const max = Math.max(...values.map(Math.abs));
  const [div, unit] = max >= 1e6 && step >= 1e5
    ? [1e6, "M"]
    : max >= 1e4 && step >= 1e3
    ? [1e3, "k"]
    : [1, ""];
  return values.map((v) => {
    if (v === 0) return "0";
    if (unit) return `${Number((v / div).toPrecision(6))}${unit}`;
    if (step < 1e-3 || max >= 1e7) {
      return v.toExponential(Math.max(0, Math.round(Math.log10(max / step))));
    }
    let digits = 0; // the decimals of the step (0.25 needs two)
    while (digits < 12 && Math.abs(step * 10 ** digits - Math.round(step * 10 ** digits)) > 1e-6) {
      digits++;
    }
    return v.toFixed(digits);
  });
}

/** A value for the legend: 4 significant digits. */
export const short = (v: number): string =>
  (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(2) : `${Number(v.toPrecision(4))}`;

/** Min-max decimation of one run of points to about `budget` points, in step order. */
export function decimate(run: [number, number][], budget: number): [number, number][] {
  if (run.length <= budget) return run;
  const buckets = Math.max(1, Math.floor(budget / 2));
  const out: [number, number][] = [];
  for (let b = 0; b < buckets; b++) {
    const start = Math.floor((b * run.length) / buckets);
    const end = Math.floor(((b + 1) * run.length) / buckets);
    let lo = start, hi = start;
    for (let i = start; i < end; i++) {
      if (run[i][1] < run[lo][1]) lo = i;
      if (run[i][1] > run[hi][1]) hi = i;
    }
    for (const i of lo === hi ? [lo] : lo < hi ? [lo, hi] : [hi, lo]) out.push(run[i]);
  }
  return out;
}

/**
 * TensorBoard's smoothing: an exponential moving average with weight `w` (0 keeps the raw
 * values), debiased so that the first points are not pulled towards zero. The average
 * runs across gaps (non-finite values are skipped, as TensorBoard does).
 */
export function smooth(runs: [number, number][][], w: number): [number, number][][] {
  let last = 0, n = 0;
  return runs.map((run) =>
    run.map(([x, y]) => {
      last = last * w + (1 - w) * y;
      n++;
      return [x, w === 0 ? y : last / (1 - w ** n)] as [number, number];
    })
  );
}

/** Rows with a finite numeric `step`, sorted by step (stable). */
export function sortRows(rows: ReadonlyArray<PlotRow>): PlotRow[] {
  return rows.filter((r) => typeof r.step === "number" && Number.isFinite(r.step))
    .map((r, i) => ({ r, i }))
    .sort((a, b) => (a.r.step as number) - (b.r.step as number) || a.i - b.i)
    .map(({ r }) => r);
}

/** The series `name` of sorted rows, smoothed with `w` and decimated to `maxPoints`. */
export function seriesOf(
  sorted: readonly PlotRow[],
  name: string,
  color: string,
  w: number,
  maxPoints: number,
): Series {
  const runs: [number, number][][] = [[]];
  let bad = 0, total = 0;
  for (const r of sorted) {
    const v = r[name];
    if (typeof v !== "number") continue;
    if (!Number.isFinite(v)) {
      bad++;
      if (runs[runs.length - 1].length) runs.push([]);
      continue;
    }
    runs[runs.length - 1].push([r.step as number, v]);
    total++;
  }
  const kept = runs.filter((r) => r.length);
  const smoothed = smooth(kept, w);
  const budget = (r: unknown[]) => Math.max(2, Math.floor((maxPoints * r.length) / (total || 1)));
  return {
    name,
    color,
    runs: kept.map((r) => decimate(r, budget(r))),
    smooth: smoothed.map((r) => decimate(r, budget(r))),
    last: kept.at(-1)?.at(-1)?.[1],
    lastSmooth: smoothed.at(-1)?.at(-1)?.[1],
    total,
    bad,
  };
}

/** Where a panel lies in the SVG and what it shows. */
export interface PanelBox {
  /** Left, top, width and height of the data area, in pixels. */
  x: number;
  y: number;
  w: number;
  h: number;
  /** The y axis' title. */
  label: string;
  /** Draw the x tick labels and the "step" title under this panel. */
  xLabels: boolean;
}

/** The y range of some series with a 5 % margin (from 0 when it is near). */
function yRange(series: readonly Series[]): [number, number] {
  let y0 = Infinity, y1 = -Infinity;
  for (const s of series) {
    for (const [, y] of s.runs.flat()) y0 = Math.min(y0, y), y1 = Math.max(y1, y);
  }
  if (y0 > y1) return [0, 1];
  if (y0 === y1) {
    const d = Math.abs(y0) * 0.1 || 1;
    return [y0 - d, y1 + d];
  }
  const d = (y1 - y0) * 0.05;
  return [y0 >= 0 && y0 - d < 0 ? 0 : y0 - d, y1 + d];
}

/**
 * One panel: grid, ticks, frame, a dashed line at each resumed step, then each series'
 * raw line (faint when smoothed) and its smoothed line, the first series on top.
 */
export function drawPanel(
  box: PanelBox,
  series: readonly Series[],
  x: [number, number],
  resumedAt: readonly number[],
  smoothed: boolean,
): string[] {
  const [y0, y1] = yRange(series);
  const px = (v: number) => box.x + ((v - x[0]) / (x[1] - x[0])) * box.w;
  const py = (v: number) => box.y + box.h - ((v - y0) / (y1 - y0)) * box.h;
  const xt = ticks(x[0], x[1], Math.max(2, Math.floor(box.w / 110)), 1); // steps are integers
  const yt = ticks(y0, y1, Math.max(2, Math.floor(box.h / 40)));
  const out = [`<g stroke="#e5e7eb" stroke-width="1">`];
  for (const v of xt.values) {
    out.push(`<line x1="${f(px(v))}" y1="${box.y}" x2="${f(px(v))}" y2="${box.y + box.h}"/>`);
  }
  for (const v of yt.values) {
    out.push(`<line x1="${box.x}" y1="${f(py(v))}" x2="${box.x + box.w}" y2="${f(py(v))}"/>`);
  }
  out.push(`</g>`, `<g fill="#374151">`);
  if (box.xLabels) {
    labels(xt.values, xt.step).forEach((l, i) =>
      out.push(
        `<text x="${f(px(xt.values[i]))}" y="${
          box.y + box.h + 16
        }" text-anchor="middle">${l}</text>`,
      )
    );
  }
  labels(yt.values, yt.step).forEach((l, i) =>
    out.push(`<text x="${box.x - 6}" y="${f(py(yt.values[i]) + 4)}" text-anchor="end">${l}</text>`)
  );
  out.push(
    `<text transform="translate(14 ${f(box.y + box.h / 2)}) rotate(-90)" ` +
      `text-anchor="middle">${escape(box.label)}</text>`,
    `</g>`,
    `<rect x="${box.x}" y="${box.y}" width="${box.w}" height="${box.h}" fill="none" ` +
      `stroke="#9ca3af"/>`,
  );
  for (const step of resumedAt.filter((s) => s >= x[0] && s <= x[1])) {
    out.push(
      `<line class="resumed" x1="${f(px(step))}" y1="${box.y}" x2="${f(px(step))}" ` +
        `y2="${box.y + box.h}" stroke="#f59e0b" stroke-width="1.5" stroke-dasharray="5 4">` +
        `<title>resumed at step ${step}</title></line>`,
    );
  }
  const path = (runs: [number, number][][]) =>
    runs.map((run) => run.map(([a, b], i) => `${i ? "L" : "M"}${f(px(a))} ${f(py(b))}`).join(""))
      .join("");
  for (const [i, s] of [...series].reverse().entries()) {
    if (!s.runs.length) continue;
    const top = i === series.length - 1;
    const width = top ? 2.2 : 1.5;
    const faint = smoothed ? ` stroke-opacity="0.3"` : "";
    out.push(
      `<path d="${path(s.runs)}" fill="none" stroke="${s.color}" stroke-width="${
        smoothed ? 1 : width
      }"${faint} stroke-linejoin="round"><title>${escape(s.name)}</title></path>`,
    );
    if (smoothed) {
      out.push(
        `<path class="smooth" d="${path(s.smooth)}" fill="none" stroke="${s.color}" ` +
          `stroke-width="${width}" stroke-linejoin="round"><title>${
            escape(s.name)
          } (smoothed)</title></path>`,
      );
    }
    for (const run of s.runs.filter((r) => r.length === 1)) {
      out.push(
        `<circle cx="${f(px(run[0][0]))}" cy="${f(py(run[0][1]))}" r="3" fill="${s.color}"/>`,
      );
    }
  }
  return out;
}
