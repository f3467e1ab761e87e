// The loss plot of a pre-training run (`loss.svg`): a dependency-free SVG line chart of the
// metrics rows, the total loss and each term, with axes, ticks, a legend and notes.

/** Options of {@linkcode lossPlotSvg}. */
export interface LossPlotOptions {
  /**
   * Keys of the rows to draw, one line each, in legend order.
   * @default "loss", then the VoCo terms present ("intra", "inter", "pos", "neg", "reg") and
   * any key starting with "loss_"
   */
  series?: string[];
  /** Title above the chart. @default "VoCo pre-training loss" */
  title?: string;
  /** Width in pixels. @default 800 */
  width?: number;
  /** Height in pixels. @default 450 */
  height?: number;
  /** Most points drawn per series; longer series keep each bucket's min and max. @default 2000 */
  maxPoints?: number;
}

const TERMS = ["intra", "inter", "pos", "neg", "reg"];
const COLORS = ["#111827", "#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2"];

const escape = (s: string) =>
  s.replace(
    /[<>&"']/g,
    (c) => `&${{ "<": "lt", ">": "gt", "&": "amp", '"': "quot", "'": "apos" }[c]};`,
  );

/** Evenly spaced round tick values covering [lo, hi]. */
function ticks(
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
function labels(values: number[], step: number): string[] {
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
const short = (v: number) =>
  (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(2) : `${Number(v.toPrecision(4))}`;

/** Min-max decimation of one run of points to about `budget` points, in step order. */
function decimate(run: [number, number][], budget: number): [number, number][] {
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
 * Draws training metrics as an SVG line chart: x is `step`, one line per series (the total
 * loss first, darker, then each term), a legend with each series' last value, round axis
 * ticks, a title, and a note line (steps, values skipped). Non-finite values are skipped
 * and break their line; rows are sorted by step; a series longer than `maxPoints` keeps
 * the minimum and maximum of each bucket, so spikes stay visible. Zero rows draw empty
 * axes saying so; a single point is drawn as a dot.
 *
 * @example Two steps of a v2 run
 * ```ts
 * import { lossPlotSvg } from "./plot.ts";
 * const svg = lossPlotSvg([
 *   { step: 1, loss: 2.5, intra: 1.2, inter: 1.1, reg: 0.2 },
 *   { step: 2, loss: 2.1, intra: 1.0, inter: 0.9, reg: 0.2 },
 * ]);
 * if ((svg.match(/<path /g) ?? []).length !== 4) throw new Error("one path per series");
 * ```
 */
export function lossPlotSvg(
  rows: ReadonlyArray<Readonly<Record<string, unknown>>>,
  options: LossPlotOptions = {},
): string {
  const {
    title = "VoCo pre-training loss",
    width = 800,
    height = 450,
    maxPoints = 2000,
  } = options;
  const num = (v: unknown): v is number => typeof v === "number";
  const sorted = rows.filter((r) => num(r.step) && Number.isFinite(r.step))
    .map((r, i) => ({ r, i }))
    .sort((a, b) => (a.r.step as number) - (b.r.step as number) || a.i - b.i)
    .map(({ r }) => r);
  const has = (k: string) => sorted.some((r) => num(r[k]));
  const names = options.series ?? [
    ...(has("loss") ? ["loss"] : []),
    ...TERMS.filter(has),
    ...[...new Set(sorted.flatMap((r) => Object.keys(r)))].filter((k) =>
      k.startsWith("loss_") && has(k)
    ),
  ];

  const skipped: string[] = [];
  const series = names.map((name, s) => {
    const runs: [number, number][][] = [[]];
    let bad = 0, count = 0;
    for (const r of sorted) {
      const v = r[name];
      if (!num(v)) continue;
      if (!Number.isFinite(v)) {
        bad++;
        if (runs[runs.length - 1].length) runs.push([]);
        continue;
      }
      runs[runs.length - 1].push([r.step as number, v]);
      count++;
    }
    if (bad) skipped.push(`${name} ${bad}`);
    const kept = runs.filter((r) => r.length).map((r) =>
      decimate(r, Math.max(2, Math.floor((maxPoints * r.length) / Math.max(1, count))))
    );
    const last = kept.length ? kept[kept.length - 1].at(-1)![1] : undefined;
    return { name, color: COLORS[s % COLORS.length], runs: kept, last, total: count };
  });

  const points = series.flatMap((s) => s.runs.flat());
  const empty = points.length === 0;
  let [x0, x1] = empty ? [0, 10] : [Infinity, -Infinity];
  let [y0, y1] = empty ? [0, 1] : [Infinity, -Infinity];
  for (const [x, y] of points) {
    x0 = Math.min(x0, x), x1 = Math.max(x1, x), y0 = Math.min(y0, y), y1 = Math.max(y1, y);
  }
  if (x0 === x1) x0 -= 1, x1 += 1;
  if (y0 === y1) {
    const d = Math.abs(y0) * 0.1 || 1;
    y0 -= d, y1 += d;
  } else {
    const d = (y1 - y0) * 0.05;
    y0 = y0 >= 0 && y0 - d < 0 ? 0 : y0 - d, y1 += d;
  }

  const left = 72, right = 24, top = 58, bottom = 52;
  const pw = width - left - right, ph = height - top - bottom;
  const px = (x: number) => left + ((x - x0) / (x1 - x0)) * pw;
  const py = (y: number) => top + ph - ((y - y0) / (y1 - y0)) * ph;
  const f = (v: number) => v.toFixed(1);
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
      `viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${f(left)}" y="22" font-size="16" font-weight="bold" fill="#111827">${
      escape(title)
    }</text>`,
  );
  const lastStep = sorted.length ? sorted[sorted.length - 1].step as number : 0;
  const notes = [
    `${sorted.length} row${sorted.length === 1 ? "" : "s"}` +
    (sorted.length ? `, last step ${lastStep}` : ""),
    ...(skipped.length ? [`non-finite values skipped: ${skipped.join(", ")}`] : []),
    ...(series.some((s) => s.total > s.runs.reduce((a, r) => a + r.length, 0))
      ? [`min/max of ≤ ${maxPoints} points per series`]
      : []),
  ];
  out.push(`<text x="${f(left)}" y="40" fill="#6b7280">${escape(notes.join(" · "))}</text>`);

  // Grid, ticks and axes.
  const xt = ticks(x0, x1, Math.max(2, Math.floor(pw / 110)), 1); // steps are integers
  const yt = ticks(y0, y1, Math.max(2, Math.floor(ph / 60)));
  out.push(`<g stroke="#e5e7eb" stroke-width="1">`);
  for (const v of xt.values) {
    out.push(`<line x1="${f(px(v))}" y1="${top}" x2="${f(px(v))}" y2="${top + ph}"/>`);
  }
  for (const v of yt.values) {
    out.push(`<line x1="${left}" y1="${f(py(v))}" x2="${left + pw}" y2="${f(py(v))}"/>`);
  }
  out.push(`</g>`, `<g fill="#374151">`);
  const xl = labels(xt.values, xt.step), yl = labels(yt.values, yt.step);
  xt.values.forEach((v, i) =>
    out.push(`<text x="${f(px(v))}" y="${top + ph + 18}" text-anchor="middle">${xl[i]}</text>`)
  );
  yt.values.forEach((v, i) =>
    out.push(`<text x="${left - 8}" y="${f(py(v) + 4)}" text-anchor="end">${yl[i]}</text>`)
  );
  out.push(
    `<text x="${f(left + pw / 2)}" y="${height - 10}" text-anchor="middle">step</text>`,
    `<text transform="translate(16 ${
      f(top + ph / 2)
    }) rotate(-90)" text-anchor="middle">loss</text>`,
    `</g>`,
    `<rect x="${left}" y="${top}" width="${pw}" height="${ph}" fill="none" stroke="#9ca3af"/>`,
  );
  if (empty) {
    out.push(
      `<text x="${f(left + pw / 2)}" y="${f(top + ph / 2)}" text-anchor="middle" ` +
        `fill="#9ca3af" font-size="16">no data yet</text>`,
    );
  }

  // Lines, terms first so that the total loss is drawn on top.
  for (const s of [...series].reverse()) {
    if (!s.runs.length) continue;
    const d = s.runs.map((run) =>
      run.map(([x, y], i) => `${i ? "L" : "M"}${f(px(x))} ${f(py(y))}`).join("")
    ).join("");
    const widthPx = s.name === "loss" ? 2.2 : 1.5;
    out.push(
      `<path d="${d}" fill="none" stroke="${s.color}" stroke-width="${widthPx}" ` +
        `stroke-linejoin="round" stroke-linecap="round"><title>${escape(s.name)}</title></path>`,
    );
    for (const run of s.runs.filter((r) => r.length === 1)) {
      out.push(
        `<circle cx="${f(px(run[0][0]))}" cy="${f(py(run[0][1]))}" r="3" fill="${s.color}"/>`,
      );
    }
  }

  // Legend, top right inside the plot.
  if (series.length) {
    const labels = series.map((s) => `${s.name}  ${s.last === undefined ? "–" : short(s.last)}`);
    const lw = 36 + 7 * Math.max(...labels.map((l) => l.length));
    const lx = left + pw - lw - 8, ly = top + 8;
    out.push(
      `<rect x="${f(lx)}" y="${ly}" width="${lw}" height="${8 + 18 * series.length}" ` +
        `fill="#ffffff" fill-opacity="0.85" stroke="#d1d5db"/>`,
    );
    series.forEach((s, i) => {
      const y = ly + 16 + 18 * i;
      out.push(
        `<line x1="${f(lx + 8)}" y1="${y - 4}" x2="${f(lx + 26)}" y2="${
          y - 4
        }" stroke="${s.color}" stroke-width="2.5"/>`,
        `<text x="${f(lx + 32)}" y="${y}" fill="#111827">${escape(labels[i])}</text>`,
      );
    });
  }
  out.push(`</svg>`);
  return out.join("\n") + "\n";
}
