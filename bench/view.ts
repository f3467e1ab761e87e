// `deno task bench view`: how fast the viewer puts a 512 x 512 x 300 case on screen: the
// server's case description and slab reads over loopback (bytes read against the whole
// case), then, where Chromium is installed, the page from a click on the case to its first
// slab drawn and to the whole case drawn (headless Chromium renders WebGL in software).
import { join } from "node:path";
import { discoverCases } from "../prep/pipeline/discover.ts";
import { runPrep } from "../prep/pipeline/run_prep.ts";
import { resolveRecipe } from "../prep/recipes/recipe.ts";
import { makePhantom } from "../prep/synthetic/phantom.ts";
import { writeNifti } from "../prep/formats/write_nifti.ts";
import { startViewer } from "../view/server.ts";
import { formatBytes } from "../cache/text.ts";
import { DEFAULT_INNER_CHUNK } from "../cache/format/format.ts";

/** Settings of {@linkcode benchView}. */
export interface BenchViewOptions {
  /** Times the server's reads are repeated (best and median reported). */
  repeat: number;
  /** Chromium for the page timing (skipped when absent). */
  chromium?: string;
}

const DIR = ".tmp/bench/view";

/** A cache with a small case and a 512 x 512 x 300 one (1.5 mm, no air: nothing cropped). */
async function benchCache(): Promise<string> {
  const out = join(DIR, "view.zarr");
  if (await Deno.stat(join(out, "bench", "big", "zarr.json")).then(() => true, () => false)) {
    return out;
  }
  const inputs = join(DIR, "inputs");
  await Deno.mkdir(inputs, { recursive: true });
  for (const [name, shape] of [["big", [512, 512, 300]], ["a_small", [64, 64, 64]]] as const) {
    const v = makePhantom({ shape: [...shape], spacingMm: [1.5, 1.5, 1.5], seed: 3 });
    for (let i = 0; i < v.data.length; i++) v.data[i] = Math.max(v.data[i], -100);
    await Deno.writeFile(join(inputs, `${name}.nii.gz`), writeNifti(v));
  }
  console.error("bench view: prepping the 512 x 512 x 300 case once (a minute) ...");
  await runPrep(await discoverCases([inputs]), {
    out,
    dataset: "bench",
    recipe: resolveRecipe("voco-v2"),
    storage: { dtype: "uint16", compressor: "blosc-zstd", level: 3, chunk: DEFAULT_INNER_CHUNK },
    workers: 1,
  });
  return out;
}

const ms = (t: number) => `${t.toFixed(0)} ms`;
const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return `best ${ms(s[0])}, median ${ms(s[Math.floor(s.length / 2)])}`;
};

/** Runs the benchmark and prints its figures. */
export async function benchView(options: BenchViewOptions): Promise<void> {
  const cache = await benchCache();
  const viewer = await startViewer({ caches: [cache], port: 0 });
  const base = `http://127.0.0.1:${viewer.port}`;
  try {
    const info = await (await fetch(`${base}/api/case?id=bench/big`)).json();
    const [nx, ny, nz] = info.shape;
    console.log(
      `bench view: case ${nx} x ${ny} x ${nz} ${info.type}, slabs of ${info.slab} slices`,
    );
    const mid = Math.floor(nz / 2) - 4; // the page's first request: 8 slices around the middle
    const times: number[] = [], wholes: number[] = [];
    for (let r = 0; r < options.repeat; r++) {
      let t = performance.now();
      await (await fetch(`${base}/api/case?id=bench/big`)).json();
      await (await fetch(`${base}/api/slab?id=bench/big&z0=${mid}&z1=${mid + 8}`))
        .arrayBuffer();
      times.push(performance.now() - t);
      t = performance.now();
      for (let z = 0; z < nz; z += info.slab) {
        await (await fetch(
          `${base}/api/slab?id=bench/big&z0=${z}&z1=${Math.min(nz, z + info.slab)}`,
        )).arrayBuffer();
      }
      wholes.push(performance.now() - t);
    }
    console.log(
      `  server, case + 8 slices around the middle (the page's first request): ${stats(times)}`,
    );
    console.log(`  server, every slab one after the other: ${stats(wholes)}`);
    console.log(`  bytes per slab sent: ${formatBytes(nx * ny * info.slab * 2)}`);
    if (!options.chromium) {
      console.log("  page: skipped (no Chromium; apt-get install chromium or set CHROMIUM_PATH)");
      return;
    }
    const { launchBrowser } = await import("./_browser.ts");
    const browser = await launchBrowser(options.chromium);
    try {
      const page = await browser.newPage();
      await page.setViewport({ width: 1300, height: 900 });
      await page.goto(viewer.url);
      await page.waitForFunction(`document.body.dataset.case === "loaded"`, { timeout: 120_000 });
      await page.click(`#case-list a[data-id="bench/big"]`);
      await page.waitForFunction(`document.body.dataset.case === "loaded"`, { timeout: 600_000 });
      const s = await page.evaluate(`globalThis.viewer.status`) as Record<string, number>;
      console.log(`  page (headless Chromium, software WebGL), from the click:`);
      console.log(`    the shown slice drawn (three planes): ${ms(s.firstSlabMs)}`);
      console.log(`    the whole case drawn:                 ${ms(s.allSlabsMs)}`);
    } finally {
      await browser.close();
    }
  } finally {
    await viewer.close();
  }
}
