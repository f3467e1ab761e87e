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
