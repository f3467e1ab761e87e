// Tests of the run plot: well-formed SVG, one line per series, panels for the learning rate,
// agreement and step time, legends beside the data, smoothing, resume markers, odd input.
import { lossPlotSvg } from "../../../train/run/plot.ts";
import { assert, assertEquals } from "../../_helpers.ts";

/** Throws unless `xml` is well formed: balanced tags, quoted attributes, escaped text. */
function assertWellFormed(xml: string) {
  const stack: string[] = [];
  const token = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|([^<]+)|(<)/g;
  let m;
  while ((m = token.exec(xml))) {
    const [, close, name, , selfClose, text, stray] = m;
    if (stray) throw new Error(`Stray "<" at ${m.index}: ${xml.slice(m.index, m.index + 40)}`);
    if (text !== undefined) {
      const bad = text.match(/&(?!(lt|gt|amp|quot|apos|#\d+);)/);
      if (bad) throw new Error(`Unescaped "&" in text: ${text}`);
      continue;
    }
    if (close) {
      const open = stack.pop();
      if (open !== name) throw new Error(`</${name}> closes <${open}>`);
    } else if (!selfClose) stack.push(name);
  }
  assertEquals(stack, [], "unclosed tags");
}

const paths = (svg: string) => [...svg.matchAll(/<path d="([^"]*)"/g)].map((m) => m[1]);
const coordinates = (d: string) =>
  d.split(/[ML]/).filter((p) => p).map((p) => p.split(" ").map(Number));

function v2Rows(n: number) {
  return Array.from({ length: n }, (_, i) => ({
    step: i + 1,
    loss: 3 - Math.log1p(i) * 0.2,
    intra: 1.5 - Math.log1p(i) * 0.1,
    inter: 1.2 - Math.log1p(i) * 0.08,
    reg: 0.3,
    lr: 1e-4 * i,
    samples_per_s: 0.2,
  }));
}

const frames = (svg: string) =>
  [...svg.matchAll(
    /<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)" fill="none"/g,
  )]
    .map((m) => m.slice(1).map(Number));

Deno.test("lossPlotSvg() draws one path per series with legends, a title and numeric ticks", () => {
  const svg = lossPlotSvg(v2Rows(50), { title: "run <a&b>", smoothing: 0 });
  assertWellFormed(svg);
  assert(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'), "an SVG root");
  assertEquals(paths(svg).length, 5, "loss, three terms, and the learning rate");
  for (const name of ["loss", "intra", "inter", "reg", "lr"]) {
    assert(svg.includes(`<title>${name}</title>`), `path of ${name}`);
    assert(new RegExp(`>${name}  [\\d.e-]+</text>`).test(svg), `legend entry of ${name}`);
  }
  assert(!/>samples_per_s /.test(svg), "speed is neither a loss nor a panel");
  assert(svg.includes(">learning rate</text>"), "the lr panel's axis title");
  assert(svg.includes("run &lt;a&amp;b&gt;"), "escaped title");
  assertEquals(frames(svg).length, 2, "two panels");
  const ticks = [...svg.matchAll(/text-anchor="(?:middle|end)">([^<]+)</g)].map((m) => m[1]);
  assertEquals(ticks.slice(0, 5), ["0.5", "1.0", "1.5", "2.0", "2.5"], "the loss panel's y ticks");
  const x = ticks.filter((t) => ["10", "20", "30", "40", "50"].includes(t));
  assertEquals(x, ["10", "20", "30", "40", "50"], "x ticks, once, under the last panel");
  assert(!/NaN|Infinity|undefined/.test(svg), "no NaN in the SVG");
  for (const d of paths(svg)) assertEquals(coordinates(d).length, 50);
  // v1 terms, chosen explicitly or found.
  const v1 = lossPlotSvg([{ step: 1, loss: 1, pos: 0.5, neg: 0.4, reg: 0.1 }, {
    step: 2,
    loss: 0.9,
    pos: 0.45,
    neg: 0.35,
    reg: 0.1,
  }], { smoothing: 0 });
  assertEquals([...v1.matchAll(/<title>(\w+)<\/title>/g)].map((m) => m[1]), [
    "reg",
    "neg",
    "pos",
    "loss",
  ]);
  const chosen = lossPlotSvg(v2Rows(5), { series: ["loss"], panels: [], smoothing: 0 });
  assertEquals(paths(chosen).length, 1);
});

Deno.test("lossPlotSvg() keeps every legend right of the data, never over a line", () => {
  const rows = v2Rows(30).map((r, i) => ({ ...r, agreement: 0.5 + i / 100, seconds: 2 }));
  const svg = lossPlotSvg(rows, { runName: "v2-btcv" });
  const boxes = frames(svg);
  assertEquals(boxes.length, 4, "loss, lr, agreement and step time panels");
  const right = Math.max(...boxes.map(([x, , w]) => x + w));
  const legends = [...svg.matchAll(/<text class="legend" x="([\d.]+)"[^>]*>([^<]+)</g)];
  assertEquals(legends.length, 7);
  for (const [, x] of legends) assert(Number(x) > right, `legend at x ${x} inside the data`);
  for (const d of paths(svg)) {
    for (const [px] of coordinates(d)) {
      assert(px <= right + 0.1, `a line leaves its panel at ${px}`);
    }
  }
  assert(svg.includes("v2-btcv · VoCo pre-training loss"), "the run's name in the title");
  assert(svg.includes(">agreement</text>") && svg.includes(">s / step</text>"), "axis titles");
});

Deno.test("lossPlotSvg() draws a smoothed line over the faint raw one, debiased from the start", () => {
  const rows = v2Rows(40).map((r, i) => ({ ...r, loss: i % 2 ? 3 : 1 }));
  const svg = lossPlotSvg(rows, { smoothing: 0.9, panels: [] });
  const smooth = [...svg.matchAll(/<path class="smooth" d="([^"]*)"/g)].map((m) => m[1]);
  assertEquals(smooth.length, 4, "one smoothed line per series");
  assertEquals((svg.match(/stroke-opacity="0.3"/g) ?? []).length, 4, "raw lines faint");
  // The constant term smooths to itself (debiased), the alternating loss to near its mean.
  const all = paths(svg);
  const regRaw = coordinates(all[0]), regSmooth = coordinates(smooth[0]);
  assertEquals(regSmooth.map(([, y]) => y), regRaw.map(([, y]) => y));
  const lossRaw = coordinates(all.at(-1)!).map(([, y]) => y);
  const lossSmooth = coordinates(smooth.at(-1)!).map(([, y]) => y);
  const spread = (ys: number[]) => Math.max(...ys.slice(20)) - Math.min(...ys.slice(20));
  assert(spread(lossSmooth) < spread(lossRaw) / 3, "smoothing narrows the alternation");
  assert(svg.includes("smoothed 0.9"), "the note says so");
});

Deno.test("lossPlotSvg() marks each step where the run was resumed, in every panel", () => {
  const svg = lossPlotSvg(v2Rows(50), { resumedAt: [20, 35] });
  assertEquals((svg.match(/<line class="resumed"/g) ?? []).length, 4, "2 resumes x 2 panels");
  assert(svg.includes("<title>resumed at step 20</title>"), "a tooltip");
  assert(svg.includes("resumed at step 20, 35"), "the note");
  const [x, , w] = frames(svg)[0];
  const at = [...svg.matchAll(/<line class="resumed" x1="([\d.]+)"/g)].map((m) => Number(m[1]));
  const expected = x + ((20 - 1) / 49) * w;
  assert(Math.abs(at[0] - expected) < 0.1, `marker at ${at[0]}, expected ${expected}`);
});

Deno.test("lossPlotSvg() handles zero rows, one row and non-finite values", () => {
  const none = lossPlotSvg([]);
  assertWellFormed(none);
  assertEquals(paths(none).length, 0);
  assert(none.includes("no data yet") && none.includes("0 rows"), "says there is no data");
  const one = lossPlotSvg([{ step: 7, loss: 1.25, intra: 0.5, inter: 0.5, reg: 0.25 }], {
    smoothing: 0,
  });
  assertWellFormed(one);
  assertEquals(paths(one).length, 4);
  assertEquals((one.match(/<circle /g) ?? []).length, 4, "single points drawn as dots");
  assert(!/NaN|Infinity/.test(one), "no NaN with a single point");
  const rows: Record<string, number>[] = v2Rows(20);
  rows[5].loss = NaN;
  rows[6].reg = Infinity;
  rows[7].reg = -Infinity;
  const odd = lossPlotSvg(rows, { panels: [] });
  assertWellFormed(odd);
  assert(!/NaN|Infinity/.test(odd), "no NaN in coordinates");
  assert(odd.includes("non-finite values skipped: loss 1, reg 2"), "notes the skipped values");
  const loss = paths(odd).at(-1)!; // the raw loss, drawn last (smoothed lines are not listed)
  assertEquals((loss.match(/M/g) ?? []).length, 2, "the line breaks at the gap");
  assertEquals(coordinates(loss).length, 19);
});

Deno.test("lossPlotSvg() keeps at most maxPoints per series and the spikes in them", () => {
  const rows: Record<string, number>[] = v2Rows(12000);
  rows[7000].loss = 50;
  const svg = lossPlotSvg(rows, { smoothing: 0 });
  assertWellFormed(svg);
  assert(svg.includes("12000 rows, last step 12000"), "counts the rows");
  assert(svg.includes("min/max of ≤ 2000 points per series"), "notes the downsampling");
  for (const d of paths(svg)) {
    const n = coordinates(d).length;
    assert(n <= 2000 && n >= 1000, `${n} points`);
  }
  const ys = coordinates(paths(svg)[3]).map(([, y]) => y);
  assert(Math.min(...ys) < 80, "the spike is kept (near the top of the plot)");
  const x = [...svg.matchAll(/text-anchor="middle">([\d.]+k)</g)].map((m) => m[1]);
  assertEquals(x, ["2.5k", "5k", "7.5k", "10k"]);
  assert(svg.length < 600_000, `${svg.length} characters`);
});
