// Tests of the loss plot: well-formed SVG, one line per series, robustness to odd input.
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

Deno.test("lossPlotSvg() draws one path per series with a legend, title and numeric ticks", () => {
  const svg = lossPlotSvg(v2Rows(50), { title: "run <a&b>" });
  assertWellFormed(svg);
  assert(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'), "an SVG root");
  assertEquals(paths(svg).length, 4);
  for (const name of ["loss", "intra", "inter", "reg"]) {
    assert(svg.includes(`<title>${name}</title>`), `path of ${name}`);
    assert(new RegExp(`>${name}  [\\d.]+</text>`).test(svg), `legend entry of ${name}`);
  }
  assert(!/>lr |>samples_per_s /.test(svg), "learning rate and speed are not losses");
  assert(svg.includes("run &lt;a&amp;b&gt;"), "escaped title");
  const ticks = [...svg.matchAll(/text-anchor="(?:middle|end)">([^<]+)</g)].map((m) => m[1]);
  assertEquals(ticks.slice(0, 5), ["10", "20", "30", "40", "50"], "x ticks");
  assertEquals(ticks.slice(5, 8), ["1", "2", "3"], "y ticks");
  assert(!/NaN|Infinity|undefined/.test(svg), "no NaN in the SVG");
  for (const d of paths(svg)) assertEquals(coordinates(d).length, 50);
  // v1 terms, chosen explicitly or found.
  const v1 = lossPlotSvg([{ step: 1, loss: 1, pos: 0.5, neg: 0.4, reg: 0.1 }, {
    step: 2,
    loss: 0.9,
    pos: 0.45,
    neg: 0.35,
    reg: 0.1,
  }]);
  assertEquals([...v1.matchAll(/<title>(\w+)<\/title>/g)].map((m) => m[1]), [
    "reg",
    "neg",
    "pos",
    "loss",
  ]);
  const chosen = lossPlotSvg(v2Rows(5), { series: ["loss", "lr"] });
  assertEquals(paths(chosen).length, 2);
});

Deno.test("lossPlotSvg() handles zero rows, one row and non-finite values", () => {
  const none = lossPlotSvg([]);
  assertWellFormed(none);
  assertEquals(paths(none).length, 0);
  assert(none.includes("no data yet") && none.includes("0 rows"), "says there is no data");
  const one = lossPlotSvg([{ step: 7, loss: 1.25, intra: 0.5, inter: 0.5, reg: 0.25 }]);
  assertWellFormed(one);
  assertEquals(paths(one).length, 4);
  assertEquals((one.match(/<circle /g) ?? []).length, 4, "single points drawn as dots");
  assert(!/NaN|Infinity/.test(one), "no NaN with a single point");
  const rows: Record<string, number>[] = v2Rows(20);
  rows[5].loss = NaN;
  rows[6].reg = Infinity;
  rows[7].reg = -Infinity;
  const odd = lossPlotSvg(rows);
  assertWellFormed(odd);
  assert(!/NaN|Infinity/.test(odd), "no NaN in coordinates");
  assert(odd.includes("non-finite values skipped: loss 1, reg 2"), "notes the skipped values");
  const loss = paths(odd)[3]; // drawn last (on top)
  assertEquals((loss.match(/M/g) ?? []).length, 2, "the line breaks at the gap");
  assertEquals(coordinates(loss).length, 19);
});

Deno.test("lossPlotSvg() keeps at most maxPoints per series and the spikes in them", () => {
  const rows: Record<string, number>[] = v2Rows(12000);
  rows[7000].loss = 50;
  const svg = lossPlotSvg(rows);
  assertWellFormed(svg);
  assert(svg.includes("12000 rows, last step 12000"), "counts the rows");
  assert(svg.includes("min/max of ≤ 2000 points per series"), "notes the downsampling");
  for (const d of paths(svg)) {
    const n = coordinates(d).length;
    assert(n <= 2000 && n >= 1000, `${n} points`);
  }
  const ys = coordinates(paths(svg)[3]).map(([, y]) => y);
  assert(Math.min(...ys) < 80, "the spike is kept (near the top of the plot)");
  const x = [...svg.matchAll(/text-anchor="middle">(\d+k)</g)].map((m) => m[1]);
  assertEquals(x, ["2k", "4k", "6k", "8k", "10k", "12k"]);
  assert(svg.length < 400_000, `${svg.length} characters`);
});
