// The run charts of the viewer page: one SVG per metric (loss, each loss term, learning
// rate, agreement, step time, samples/s), every ticked run overlaid in its own colour, the
// raw line faint and the smoothed one (TensorBoard's debiased moving average) solid.

const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#111827"];
const METRICS = [
  ["loss", "loss"],
  ["intra", "loss: intra"],
  ["inter", "loss: inter"],
  ["pos", "loss: pos"],
  ["neg", "loss: neg"],
  ["reg", "loss: reg"],
  ["lr", "learning rate"],
  ["agreement", "agreement"],
  ["seconds", "step time (s)"],
  ["samples_per_s", "samples / s"],
];

/** TensorBoard's smoothing of `points` with weight `w`, debiased at the start. */
export function smooth(points, w) {
  let last = 0, n = 0;
  return points.map(([x, y]) => {
    last = last * w + (1 - w) * y;
    n++;
    return [x, w === 0 ? y : last / (1 - w ** n)];
  });
}

const esc = (s) => String(s).replace(/[<>&"]/g, (c) => `&#${c.charCodeAt(0)};`);

const fmt = (v) =>
  Math.abs(v) >= 1e4
    ? `${+(v / 1e3).toPrecision(3)}k`
    : Math.abs(v) < 1e-2 && v !== 0
    ? v.toExponential(1)
    : `${+v.toPrecision(3)}`;

function chart(title, lines, w) {
  const W = 460, H = 220, L = 56, R = 10, T = 24, B = 28;
  const all = lines.flatMap((l) => l.points);
  if (!all.length) return "";
  let [x0, x1] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  let [y0, y1] = [Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))];
  if (x0 === x1) x0 -= 1, x1 += 1;
  if (y0 === y1) y0 -= Math.abs(y0) * 0.1 || 1, y1 += Math.abs(y1) * 0.1 || 1;
  const px = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const py = (y) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  const path = (pts) =>
    pts.map(([x, y], i) => `${i ? "L" : "M"}${px(x).toFixed(1)} ${py(y).toFixed(1)}`).join("");
  const grid = [0, 0.25, 0.5, 0.75, 1].map((f) => {
    const y = y0 + f * (y1 - y0), x = x0 + f * (x1 - x0);
    return `<line x1="${L}" x2="${W - R}" y1="${py(y).toFixed(1)}" y2="${
      py(y).toFixed(1)
    }" stroke="#e5e7eb"/>` +
      `<text x="${L - 4}" y="${(py(y) + 4).toFixed(1)}" text-anchor="end">${fmt(y)}</text>` +
      `<text x="${px(x).toFixed(1)}" y="${H - 10}" text-anchor="middle">${
        fmt(Math.round(x))
      }</text>`;
  }).join("");
  const drawn = lines.map((l) =>
    `<path class="raw" d="${
      path(l.points)
    }" fill="none" stroke="${l.color}" stroke-width="1" stroke-opacity="${w > 0 ? 0.3 : 1}"/>` +
    (w > 0
      ? `<path class="smooth" d="${
        path(smooth(l.points, w))
      }" fill="none" stroke="${l.color}" stroke-width="2"/>`
      : "") +
    (l.points.length === 1
      ? `<circle cx="${px(l.points[0][0])}" cy="${py(l.points[0][1])}" r="3" fill="${l.color}"/>`
      : "")
  ).join("");
  const legend = lines.map((l, i) =>
    `<tspan fill="${l.color}" dx="${i ? 12 : 0}">■ ${esc(l.name)} ${
      fmt(l.points.at(-1)[1])
    }</tspan>`
  ).join("");
  return `<svg class="chart" data-metric="${title}" xmlns="http://www.w3.org/2000/svg" width="100%" viewBox="0 0 ${W} ${H}" font-size="11" font-family="system-ui, sans-serif">` +
    `<text x="${L}" y="14" font-weight="bold" font-size="12">${title}</text><text x="${
      W - R
    }" y="14" text-anchor="end">${legend}</text>` +
    grid +
    `<rect x="${L}" y="${T}" width="${W - L - R}" height="${
      H - T - B
    }" fill="none" stroke="#9ca3af"/>` + drawn + `</svg>`;
}

/** Draws every metric some run has, one chart each, into `container`. */
export function drawCharts(container, runs, w) {
  const html = METRICS.map(([key, title]) => {
    const lines = runs.map((r, i) => ({
      name: r.name,
      color: COLORS[i % COLORS.length],
      points: r.rows.filter((row) => Number.isFinite(row[key])).map((row) => [row.step, row[key]]),
    })).filter((l) => l.points.length);
    return lines.length ? chart(title, lines, w) : "";
  }).join("");
  container.innerHTML = html || `<p class="muted">No metrics yet.</p>`;
}
