// The viewer in a real browser (headless Chromium, software WebGL): the page loads without
// console errors, lists the cases, draws a case (not blank, from a screenshot), shows the
// sampler's crops for a seed, and its run chart takes a step appended to metrics.jsonl.
import { join } from "node:path";
import { decode } from "fast-png";
import type { Page } from "puppeteer-core";
import { startViewer } from "../../view/server.ts";
import { sampleView } from "../../view/sample.ts";
import { tinyCache } from "../train/_tiny_cache.ts";
import { assert, assertEquals, tempDir } from "../_helpers.ts";
import { findChromium, launchBrowser } from "../../bench/_browser.ts";

const CHROMIUM = findChromium();
if (!CHROMIUM) {
  console.warn(
    "tests/view/browser_test.ts skipped: no Chromium (apt-get install chromium, or set CHROMIUM_PATH)",
  );
}

const row = (step: number) => ({
  step,
  loss: 3 / step,
  intra: 1,
  inter: 1,
  reg: 0.2,
  lr: 1e-4 * step,
  seconds: 2,
});

/** Waits for `fn` to be true in the page (polling), failing with `what` after `ms`. */
async function until(page: Page, fn: string, what: string, ms = 60_000) {
  try {
    await page.waitForFunction(fn, { timeout: ms, polling: 100 });
  } catch {
    throw new Error(`Timed out waiting for ${what} (${fn})`);
  }
}

Deno.test({
  name: "the viewer works in headless Chromium: cases, a drawn case, crops of a seed, a live run",
  ignore: !CHROMIUM,
  sanitizeOps: false,
  sanitizeResources: false,
}, async (t) => {
  await using dir = await tempDir();
  const cache = await tinyCache(dir.path, 2);
  const run = join(dir.path, "runs", "tiny");
  await Deno.mkdir(run, { recursive: true });
  await Deno.writeTextFile(
    join(run, "config.json"),
    JSON.stringify({ config: { seed: 0, version: "v2" } }),
  );
  await Deno.writeTextFile(
    join(run, "metrics.jsonl"),
    [1, 2, 3].map((s) => JSON.stringify(row(s)) + "\n").join(""),
  );
  const viewer = await startViewer({ caches: [cache], runs: [join(dir.path, "runs")], port: 0 });
  const browser = await launchBrowser(CHROMIUM!);
  const errors: string[] = [];
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1300, height: 900 });
    page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
    page.on("pageerror", (e) => errors.push((e as Error).message));

    await t.step("the page opens on the first case and lists the cases", async () => {
      await page.goto(viewer.url);
      await until(page, `document.body.dataset.case === "loaded"`, "the case");
      const names = await page.$$eval(
        "#case-list li.case a",
        (as) => as.map((a) => a.getAttribute("data-id")),
      );
      assertEquals(names, ["phantoms/case0", "phantoms/case1"]);
      assert(page.url().includes("case=phantoms/case0") && /z=\d+/.test(page.url()), page.url());
    });

    await t.step("the case's canvas is drawn (a screenshot is not blank)", async () => {
      const canvas = await page.$("#gl");
      const png = decode(await canvas!.screenshot({ type: "png" }) as Uint8Array);
      const { data, channels } = png;
      let bright = 0, sum = 0;
      const n = data.length / channels;
      for (let i = 0; i < data.length; i += channels) {
        const l = (data[i] + data[i + 1] + data[i + 2]) / 3;
        sum += l;
        if (l > 40) bright++;
      }
      assert(bright / n > 0.03, `${(100 * bright / n).toFixed(1)} % of the canvas is lit`);
      assert(sum / n < 250, "not a white page either");
    });

    await t.step("the crop overlay shows the sampler's crops for a seed", async () => {
      await page.goto(`${viewer.url}&sampler=1&seed=5&sample=2&crops=3`);
      await until(page, `document.body.dataset.sampler === "3"`, "the sample");
      await until(
        page,
        `document.querySelectorAll("#overlay rect.crop").length === 3`,
        "3 crops drawn",
      );
      assertEquals(await page.$$eval("#overlay rect.base", (r) => r.length), 9);
      const starts = await page.$$eval(
        ".crop-card",
        (cards) => cards.map((c) => c.textContent!.match(/at \[([^\]]+)\]/)![1]),
      );
      const info = await (await fetch(`http://127.0.0.1:${viewer.port}/api/case?id=phantoms/case0`))
        .json();
      const expected = sampleView(info.shape, "voco-v2", { seed: 5, sample: 2, crops: 3 });
      assertEquals(starts, expected.crops.map((c) => c.start.join(", ")));
    });

    await t.step("the run chart updates when a step is appended", async () => {
      await page.goto(viewer.url.replace(/\?.*/, "?view=runs&runs=0"));
      await until(page, `document.body.dataset.rows === "3"`, "3 rows");
      assert(await page.$('svg[data-metric="loss"] path.smooth'), "a smoothed loss line");
      assert(await page.$('svg[data-metric="learning rate"]'), "a learning-rate chart");
      await Deno.writeTextFile(join(run, "metrics.jsonl"), JSON.stringify(row(4)) + "\n", {
        append: true,
      });
      await until(page, `document.body.dataset.rows === "4"`, "the appended step", 10_000);
      const last = await page.$eval('svg[data-metric="loss"]', (s) => s.textContent);
      assert(last!.includes("0.75"), `the legend shows the new loss: ${last}`);
    });

    assertEquals(errors, [], "console errors");
  } finally {
    await browser.close();
    await viewer.close();
  }
});
