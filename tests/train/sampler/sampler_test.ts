// Tests of the VoCo sampler: region and crop geometry, labels, determinism, epoch order,
// and a damaged case reported and skipped.
import { join } from "node:path";
import {
  buildSample,
  regionStart,
  sampleSpec,
  type VocoSample,
} from "../../../train/sampler/voco_sample.ts";
import { EpochOrder, listTrainingCases } from "../../../train/sampler/cases.ts";
import { BatchLoader } from "../../../train/sampler/loader.ts";
import { Rng } from "../../../train/rng.ts";
import type { Shape3 } from "../../../prep/volume.ts";
import { tinyCache } from "../_tiny_cache.ts";
import { consolidate } from "../../cache/_caches.ts";
import { serveCache } from "../../../cache/store/serve.ts";
import { CacheReader } from "../../../cache/read/cache_reader.ts";
import { CaseOpener } from "../../../train/sampler/_open.ts";
import { assert, assertEquals, assertRejects, tempDir } from "../../_helpers.ts";
import { errorKind } from "../../../cache/errors.ts";
import { exitCodeOf } from "../../../cli/run.ts";

/** A volume whose voxel value encodes its index: x * 1e6 + y * 1e3 + z (+1, so 0 = padding). */
function indexReader(shape: Shape3) {
  const boxes: [Shape3, Shape3][] = [];
  const readBox = (start: Shape3, size: Shape3) => {
    boxes.push([start, size]);
    const data = new Float32Array(size[0] * size[1] * size[2]);
    for (let x = 0; x < size[0]; x++) {
      for (let y = 0; y < size[1]; y++) {
        for (let z = 0; z < size[2]; z++) {
          const p = [start[0] + x, start[1] + y, start[2] + z];
          const inside = p.every((v, a) => v >= 0 && v < shape[a]);
          data[(x * size[1] + y) * size[2] + z] = inside ? p[0] * 1e4 + p[1] * 1e2 + p[2] + 1 : 0;
        }
      }
    }
    return Promise.resolve({
      data,
      shape: size,
      affine: [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
    });
  };
  return { boxes, readBox };
}

Deno.test("regionStart() centres a small volume in the padding and draws a larger one uniformly", () => {
  const rng = new Rng(3);
  assertEquals(regionStart([100, 192, 40], [192, 192, 64], rng), [-46, -0, -12]);
  for (let i = 0; i < 50; i++) {
    const s = regionStart([300, 200, 64], [192, 192, 64], rng);
    assert(s[0] >= 0 && s[0] <= 108 && s[1] >= 0 && s[1] <= 8 && s[2] === 0, `${s}`);
  }
});

Deno.test("buildSample() reads one region and cuts bases on the grid and labelled random crops", async () => {
  const spec = sampleSpec("v2", { roi: 64, grid: 2, crops: 3, augment: false });
  const { boxes, readBox } = indexReader([150, 140, 70]);
  const s = await buildSample([150, 140, 70], readBox, spec, new Rng(7));
  assertEquals(boxes.length, 1, "one read per sample");
  assertEquals(boxes[0][1], [128, 128, 64]);
  const n = 64 ** 3, [rx, ry, rz] = s.geometry.regionStart;
  // Base k = i * grid + j starts at (i * 64, j * 64, 0) of the region.
  for (let k = 0; k < 4; k++) {
    const first = s.crops[(3 + k) * n];
    const i = Math.floor(k / 2), j = k % 2;
    assertEquals(first, (rx + i * 64) * 1e4 + (ry + j * 64) * 1e2 + rz + 1, `base ${k}`);
  }
  s.geometry.centres.forEach(([cx, cy], c) => {
    assert(cx >= 32 && cx < 96 && cy >= 32 && cy < 96, `centre ${cx},${cy}`);
    assertEquals(s.crops[c * n], (rx + cx - 32) * 1e4 + (ry + cy - 32) * 1e2 + rz + 1);
    const labels = s.labels.subarray(c * 4, c * 4 + 4);
    const sum = labels.reduce((a, b) => a + b, 0);
    assert(Math.abs(sum - 1) < 1e-6, `labels of a crop inside the region sum to 1: ${labels}`);
  });
  // The same RNG state gives the same sample, augmented or not.
  const aug = sampleSpec("v2", { roi: 64, grid: 2, crops: 2 });
  const a = await buildSample([150, 140, 70], readBox, aug, new Rng(9));
  const b = await buildSample([150, 140, 70], readBox, aug, new Rng(9));
  assertEquals(a.crops.length, 6 * n);
  assert(a.crops.every((v, i) => v === b.crops[i]), "reproducible");
});

Deno.test("samples read into kept region buffers, many at once, equal samples read afresh", async () => {
  await using tmp = await tempDir();
  const cache = await tinyCache(tmp.path, 2);
  const reader = await CacheReader.open(cache);
  const cases = ["phantoms/case0", "phantoms/case1"];
  const shapes = await Promise.all(cases.map(async (c) => (await reader.openCase(c)).shape));
  const spec = sampleSpec("v2", { roi: 64, grid: 2, crops: 2 });
  // Fresh arrays every read (the `into` buffer ignored), one sample at a time.
  const fresh = (c: string) => (start: Shape3, size: Shape3) => reader.readCrop(c, start, size);
  const expected: VocoSample[] = [];
  for (let i = 0; i < 6; i++) {
    expected.push(await buildSample(shapes[i % 2], fresh(cases[i % 2]), spec, new Rng(100 + i)));
  }
  // Into the sampler's kept buffers, six in flight, twice (the second time into reused ones).
  const opener = new CaseOpener();
  for (let round = 0; round < 2; round++) {
    const got = await Promise.all(expected.map(async (_, i) => {
      const { shape, readBox } = await opener.open(cache, `/${cases[i % 2]}`);
      return buildSample(shape, readBox, spec, new Rng(100 + i));
    }));
    got.forEach((g, i) => {
      assertEquals(g.crops.length, expected[i].crops.length);
      assert(g.crops.every((v, k) => v === expected[i].crops[k]), `round ${round}, sample ${i}`);
    });
  }
});

Deno.test("EpochOrder visits every case once per epoch, in a seeded order", () => {
  const order = new EpochOrder(7, 1);
  for (let epoch = 0; epoch < 3; epoch++) {
    const seen = Array.from({ length: 7 }, (_, i) => order.caseAt(epoch * 7 + i));
    assertEquals([...seen].sort(), [0, 1, 2, 3, 4, 5, 6]);
  }
  const again = new EpochOrder(7, 1);
  assertEquals(again.caseAt(9), order.caseAt(9));
});

Deno.test("the loader skips a case with a damaged chunk, names it, and fills the batch", async () => {
  await using tmp = await tempDir();
  const cache = await tinyCache(tmp.path, 3);
  const { cases } = await listTrainingCases([cache], { recipe: "voco-v2" });
  // Damage every chunk of case1: its reads fail.
  const dir = join(cache, "phantoms", "case1", "c");
  for await (const e of Deno.readDir(dir)) {
    for await (const f of Deno.readDir(join(dir, e.name))) {
      const path = join(dir, e.name, f.name);
      if (f.isFile) await Deno.writeFile(path, new Uint8Array([1, 2, 3]));
      else {
        for await (const g of Deno.readDir(path)) {
          await Deno.writeFile(join(path, g.name), new Uint8Array([1, 2, 3]));
        }
      }
    }
  }
  for (const workers of [0, 1]) {
    const loader = new BatchLoader(cases, {
      batchSize: 2,
      spec: sampleSpec("v2", { grid: 2, crops: 1 }),
      seed: 0,
      workers,
    });
    try {
      const batches = [await loader.next(), await loader.next(), await loader.next()];
      for (const b of batches) {
        assertEquals(b.rows, 2 * (1 + 4));
        assert(!b.cases.includes("phantoms/case1"), b.cases.join());
      }
      assert(loader.failures.length >= 1, "failures recorded");
      assert(
        loader.failures.every((f) => f.case.endsWith("phantoms/case1")),
        JSON.stringify(loader.failures),
      );
    } finally {
      loader.close();
    }
  }
});

Deno.test("listTrainingCases() filters datasets, repeats them per epoch and names unknown ones", async () => {
  await using tmp = await tempDir();
  const cache = await tinyCache(tmp.path, 2);
  const plain = await listTrainingCases([cache], { recipe: "voco-v2" });
  assertEquals(plain.cases.map((c) => c.name), ["case0", "case1"]);
  const repeated = await listTrainingCases([cache], {
    recipe: "voco-v2",
    datasets: ["phantoms"],
    repeat: { phantoms: 3 },
  });
  assertEquals(repeated.cases.length, 6);
  assertEquals(repeated.perDataset, { phantoms: 2 });
  let message = "";
  await listTrainingCases([cache], { recipe: "voco-v2", datasets: ["btcv"] }).catch((e) =>
    message = e.message
  );
  assert(/No dataset "btcv".*there are: phantoms/.test(message), message);
});

Deno.test("the loader reads the same batches over HTTP from cache serve as from the folder", async () => {
  await using tmp = await tempDir();
  const cache = await tinyCache(tmp.path, 2);
  await consolidate(cache); // plain HTTP lists a cache from its consolidated metadata
  const server = await serveCache(cache, { port: 0 });
  try {
    const spec = sampleSpec("v2", { grid: 2, crops: 1 });
    const batches = async (location: string, workers: number) => {
      const { cases } = await listTrainingCases([location], { recipe: "voco-v2" });
      const loader = new BatchLoader(cases, { batchSize: 2, spec, seed: 3, workers });
      try {
        return [await loader.next(), await loader.next()];
      } finally {
        loader.close();
      }
    };
    const local = await batches(cache, 0);
    const remote = await batches(server.url, 1);
    for (let i = 0; i < 2; i++) {
      assertEquals(remote[i].cases, local[i].cases);
      assert(remote[i].inputs.every((v, j) => v === local[i].inputs[j]), `batch ${i} differs`);
    }
  } finally {
    await server.shutdown();
  }
});

Deno.test("when every case is damaged, the loader stops with the damage's kind (exit 1), not as a bug", async () => {
  await using tmp = await tempDir();
  const cache = await tinyCache(tmp.path, 1);
  const { cases } = await listTrainingCases([cache], { recipe: "voco-v2" });
  // Flip a byte in every 97th of each chunk file: checksums fail wherever a crop reads.
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(dir)) {
      const path = join(dir, e.name);
      if (e.isDirectory) await walk(path);
      else {
        const b = await Deno.readFile(path);
        for (let i = 0; i < b.length; i += 97) b[i] ^= 0xff;
        await Deno.writeFile(path, b);
      }
    }
  };
  await walk(join(cache, "phantoms", "case0", "c"));
  for (const workers of [0, 1]) {
    const loader = new BatchLoader(cases, {
      batchSize: 1,
      spec: sampleSpec("v2", { grid: 2, crops: 1 }),
      seed: 0,
      workers,
    });
    try {
      const e = await assertRejects(() => loader.next(), /samples in a row failed/);
      assertEquals(errorKind(e), "damaged-cache", `workers ${workers}: ${e.message}`);
      assertEquals(exitCodeOf(e), 1);
      assert(e.message.includes("phantoms/case0"), e.message);
    } finally {
      loader.close();
    }
  }
});
