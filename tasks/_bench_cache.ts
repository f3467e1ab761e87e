// `deno task bench cache`: size, write and read speed of each chunk compressor on a real
// preprocessed volume, to choose the cache's default by measuring all three together.
import { readNifti } from "../prep/formats/read_nifti.ts";
import { applyRecipe, resolveRecipe } from "../prep/recipes/recipe.ts";
import { writeCase } from "../cache/write_case.ts";
import { openCase, readCase } from "../cache/read_case.ts";
import type { Shape3 } from "../prep/volume.ts";
import { storageEncoding } from "../cache/quantize.ts";
import { type Compressor, DEFAULT_CHUNK } from "../cache/format.ts";
import { registerCodecs } from "../cache/codecs.ts";
import { formatBytes } from "./_cli.ts";
import { FileSystemStore } from "@zarrita/storage";
import { ensureDataset, initCache } from "../cache/cache_dir.ts";
import { CacheReader } from "../cache/reader.ts";
import { serveCache } from "../cache/serve.ts";

/** Compressor settings compared: the compressor and its level. */
const SETTINGS: [Compressor, number][] = [
  ["blosc-zstd", 1],
  ["blosc-zstd", 3],
  ["blosc-zstd", 5],
  ["blosc-lz4", 5],
  ["zstd", 3],
  ["none", 0],
];

function best(times: number[]): number {
  return Math.min(...times) / 1000;
}

/** Options of {@linkcode benchCache}. */
export interface BenchCacheOptions {
  /** Chunk edge in voxels. @default {DEFAULT_CHUNK} */
  chunk?: number;
  /** Random 96³ crop reads per setting. @default {20} */
  crops?: number;
}

/** Runs the cache benchmark on `file` (a NIfTI CT) prepped with voco-v2 as uint16. */
export async function benchCache(file: string, options: BenchCacheOptions = {}): Promise<void> {
  const { chunk = DEFAULT_CHUNK, crops = 20 } = options;
  registerCodecs();
  const recipe = resolveRecipe("voco-v2");
  const { volume } = applyRecipe(readNifti(await Deno.readFile(file)).volume, recipe);
  const encoding = storageEncoding("uint16", [0, 1], { windowWidthHu: 425 });
  const voxels = volume.data.length, rawBytes = voxels * 2;
  console.log(
    `cache benchmark: ${volume.shape.join(" x ")} voxels (voco-v2), uint16 at 1 HU steps, ` +
      `${chunk}³ chunks, in memory (codec time only); MB/s of uint16 data`,
  );
  console.log(
    `  ${"compressor".padEnd(16)} ${"size".padStart(9)} ${"vs float32".padStart(10)} ` +
      `${"write".padStart(9)} ${"read all".padStart(9)} ${"96³ crop".padStart(9)}`,
  );
  const edge = Math.min(96, ...volume.shape);
  let seed = 11;
  const rand = (n: number) => {
    seed = (seed * 1664525 + 1013904223) >>> 0;
    return seed % n;
  };
  for (const [compressor, level] of SETTINGS) {
    const writes: number[] = [], reads: number[] = [];
    let store = new Map<string, Uint8Array>();
    for (let rep = 0; rep < 3; rep++) {
      store = new Map();
      let t = performance.now();
      await writeCase(store, "/case", volume, { encoding, chunk, compressor, level });
      writes.push(performance.now() - t);
      t = performance.now();
      await readCase(store, "/case");
      reads.push(performance.now() - t);
    }
    let bytes = 0;
    for (const [k, v] of store) if (!k.endsWith("zarr.json")) bytes += v.length;
    const opened = await openCase(store, "/case");
    const t = performance.now();
    for (let c = 0; c < crops; c++) {
      const start = volume.shape.map((n) => rand(n - edge + 1)) as Shape3;
      await opened.readCrop(start, [edge, edge, edge]);
    }
    const crop = crops ? (performance.now() - t) / crops : 0;
    const mbs = (ms: number) => `${(rawBytes / 1e6 / (ms / 1000)).toFixed(0)} MB/s`;
    console.log(
      `  ${`${compressor} ${compressor === "none" ? "" : level}`.padEnd(16)} ` +
        `${formatBytes(bytes).padStart(9)} ${`${(voxels * 4 / bytes).toFixed(1)}x`.padStart(10)} ` +
        `${mbs(best(writes) * 1000).padStart(9)} ${mbs(best(reads) * 1000).padStart(9)} ` +
        `${`${crop.toFixed(0)} ms`.padStart(9)}`,
    );
  }
}

/** Options of {@linkcode benchCrops}. */
export interface BenchCropsOptions {
  /** Random crops read per location (after one warm-up crop). @default {30} */
  crops?: number;
  /** Crop size in voxels. @default {[192, 192, 64]} */
  size?: Shape3;
}

/**
 * Random crops (192 x 192 x 64 by default, what the voco-v2 sampler reads per volume) from
 * `file` prepped with the default recipe and storage into a temporary cache folder, read
 * with `CacheReader` from the folder and over loopback HTTP from `cache serve` (the server
 * in this process, on the same thread: one core for both): time per crop (best, median),
 * bytes and requests per crop.
 */
export async function benchCrops(file: string, options: BenchCropsOptions = {}): Promise<void> {
  const { crops = 30, size = [192, 192, 64] } = options;
  registerCodecs();
  const { volume } = applyRecipe(
    readNifti(await Deno.readFile(file)).volume,
    resolveRecipe("voco-v2"),
  );
  const dir = await Deno.makeTempDir({ prefix: "voco-bench-crops-" });
  try {
    await initCache(dir);
    await ensureDataset(dir, "bench");
    const encoding = storageEncoding("uint16", [0, 1], { windowWidthHu: 425 });
    await writeCase(new FileSystemStore(dir), "/bench/ct", volume, {
      encoding,
      attributes: { affine: volume.affine },
    });
    const server = await serveCache(dir, { port: 0 });
    try {
      console.log(
        `crop benchmark: ${size.join(" x ")} crops of ${file.split("/").pop()} ` +
          `(voco-v2, ${volume.shape.join(" x ")} voxels, uint16, ${DEFAULT_CHUNK}³ chunks, ` +
          `blosc-zstd); best of ${crops}, one thread (the server shares it over HTTP); ` +
          `a shared machine: the numbers are noisy`,
      );
      for (const [label, location] of [["folder", dir], ["HTTP", server.url]]) {
        const reader = await CacheReader.open(location);
        let seed = 5;
        const rand = (n: number) => {
          seed = (seed * 1664525 + 1013904223) >>> 0;
          return n > 0 ? seed % n : 0;
        };
        const start = () => volume.shape.map((n, a) => rand(n - size[a] + 1)) as Shape3;
        await reader.readCrop("bench/ct", start(), size); // warm-up: metadata, codecs
        const times: number[] = [];
        const s0 = reader.stats();
        for (let c = 0; c < crops; c++) {
          const t = performance.now();
          await reader.readCrop("bench/ct", start(), size);
          times.push(performance.now() - t);
        }
        const s1 = reader.stats();
        times.sort((a, b) => a - b);
        const per = (x: number) => x / Math.max(1, crops);
        console.log(
          `  ${label.padEnd(7)} best ${times[0]?.toFixed(1)} ms, median ` +
            `${times[times.length >> 1]?.toFixed(1)} ms; ` +
            `${formatBytes(per(s1.bytes - s0.bytes))} and ${
              per(s1.requests - s0.requests).toFixed(1)
            } ${label === "HTTP" ? "requests" : "reads"} per crop`,
        );
      }
    } finally {
      await server.shutdown();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
