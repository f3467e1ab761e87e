// `deno task bench cache`: size, files, write speed and random-crop reads of each layout,
// inner chunk edge and compressor on a real preprocessed volume, written to disk, to
// choose the cache's defaults by measuring them together.
import { join } from "node:path";
import { FileSystemStore } from "@zarrita/storage";
import { readNifti } from "../prep/formats/read_nifti.ts";
import { applyRecipe, resolveRecipe } from "../prep/recipes/recipe.ts";
import { type BloscShuffle, writeCase } from "../cache/write/write_case.ts";
import { openCase } from "../cache/read/read_case.ts";
import type { Shape3 } from "../prep/volume.ts";
import { quantize, type StorageEncoding, storageEncoding } from "../cache/format/quantize.ts";
import type { CaseVolume } from "../cache/format/case_volume.ts";
import {
  type Compressor,
  DEFAULT_COMPRESSOR,
  DEFAULT_INNER_CHUNK,
  DEFAULT_LAYOUT,
  DEFAULT_LEVEL,
  type Layout,
} from "../cache/format/format.ts";
import { NativeBloscCodec } from "../cache/codecs/blosc.ts";
import { registerCodecs } from "../cache/codecs/register.ts";
import { folderSize, PICKLE_OVERHEAD } from "../cache/inspect/stats.ts";
import { formatBytes } from "../cache/text.ts";
import { ensureDataset, initCache } from "../cache/write/cache_dir.ts";
import { CacheReader } from "../cache/read/cache_reader.ts";
import { serveCache } from "../cache/store/serve.ts";
import { findReference, notMeasured, runReference } from "./_reference.ts";

/** One storage setting compared: layout, chunk edge (inner, when sharded), compressor, level. */
interface Setting {
  layout: Layout;
  edge: number;
  compressor: Compressor;
  level: number;
  /** Blosc's filter, when not the default byte shuffle. */
  shuffle?: BloscShuffle;
  /** Not written, only the size of the chunks after numcodecs' delta filter (`chunkBytes`). */
  sizeOnly?: "delta";
}

/** The settings compared (the default, `DEFAULT_*`, is marked in the table). */
const SETTINGS: Setting[] = [
  { layout: "chunked", edge: 64, compressor: "blosc-zstd", level: 3 },
  { layout: "sharded", edge: 64, compressor: "blosc-zstd", level: 3 },
  { layout: "sharded", edge: 48, compressor: "blosc-zstd", level: 3 },
  { layout: "sharded", edge: 32, compressor: "blosc-zstd", level: 3 },
  { layout: "sharded", edge: 48, compressor: "blosc-zstd", level: 1 },
  { layout: "sharded", edge: 48, compressor: "blosc-zstd", level: 5 },
  { layout: "sharded", edge: 48, compressor: "blosc-zstd", level: 8 },
  { layout: "sharded", edge: 48, compressor: "blosc-zstd", level: 9 },
  { layout: "sharded", edge: 48, compressor: "blosc-zstd", level: 3, shuffle: "bitshuffle" },
  { layout: "sharded", edge: 48, compressor: "blosc-zstd", level: 3, shuffle: "noshuffle" },
  { layout: "sharded", edge: 48, compressor: "blosc-lz4", level: 5 },
  { layout: "sharded", edge: 48, compressor: "zstd", level: 3 },
  { layout: "sharded", edge: 48, compressor: "zstd", level: 19 },
  { layout: "sharded", edge: 48, compressor: "none", level: 0 },
  { layout: "sharded", edge: 48, compressor: "lorenzo", level: 3 },
  { layout: "sharded", edge: 48, compressor: "lorenzo", level: 8 },
  { layout: "sharded", edge: 48, compressor: "blosc-zstd", level: 3, sizeOnly: "delta" },
  {
    layout: "sharded",
    edge: 48,
    compressor: "blosc-zstd",
    level: 3,
    shuffle: "bitshuffle",
    sizeOnly: "delta",
  },
];

/** Options of {@linkcode benchCache}. */
export interface BenchCacheOptions {
  /** Only this chunk edge (all compared when absent). */
  chunk?: number;
  /** Random 192 x 192 x 64 crop reads per setting (the best and the median are shown). @default {20} */
  crops?: number;
}

/**
 * Bytes of the volume's `edge`³ chunks (as the sharded layout cuts them, zero beyond the
 * edge) through Blosc (`shuffle`, `clevel`) in one block each, with the shard's index and
 * a checksum per chunk; with `delta`, after numcodecs' `Delta` filter (each value minus
 * the one before, in C order within the chunk, wrapping in uint16): what
 * `numcodecs.delta` + `blosc` would store. Size only: tensorstore has no delta codec
 * (zarr-python reads `numcodecs.delta` through numcodecs).
 */
function chunkBytes(
  values: Uint16Array,
  shape: Shape3,
  edge: number,
  level: number,
  shuffle: BloscShuffle = "shuffle",
  delta = false,
): number {
  const codec = new NativeBloscCodec({ cname: "zstd", clevel: level, typesize: 2, shuffle });
  const chunk = new Uint16Array(edge * edge * edge);
  let bytes = 0, count = 0;
  for (let i = 0; i < shape[0]; i += edge) {
    for (let j = 0; j < shape[1]; j += edge) {
      for (let k = 0; k < shape[2]; k += edge) {
        chunk.fill(0);
        for (let x = 0; x < edge && i + x < shape[0]; x++) {
          for (let y = 0; y < edge && j + y < shape[1]; y++) {
            const from = ((i + x) * shape[1] + j + y) * shape[2] + k;
            const n = Math.min(edge, shape[2] - k);
            chunk.set(values.subarray(from, from + n), (x * edge + y) * edge);
          }
        }
        if (delta) {
          for (let v = chunk.length - 1; v > 0; v--) chunk[v] = chunk[v] - chunk[v - 1];
        }
        bytes += (codec.encode(new Uint8Array(chunk.buffer)) as Uint8Array).length + 4;
        count++;
      }
    }
  }
  return bytes + 16 * count + 4;
}

/**
 * Runs the cache benchmark on `file` (a NIfTI CT) prepped with voco-v2 as uint16 at 1-HU
 * steps: each setting's files, size and how much smaller than float32 (PersistentDataset
 * stores float32), write time, and random 192 x 192 x 64 crop reads.
 */
export async function benchCache(file: string, options: BenchCacheOptions = {}): Promise<void> {
  const { crops = 20 } = options;
  registerCodecs();
  const recipe = resolveRecipe("voco-v2");
  const { volume } = applyRecipe(readNifti(await Deno.readFile(file)).volume, recipe);
  const encoding = storageEncoding("uint16", [0, 1], { windowWidthHu: 425 });
  const voxels = volume.data.length, f32 = voxels * 4;
  const size = volume.shape.map((n, a) => Math.min(n, [192, 192, 64][a])) as Shape3;
  console.log(
    `cache benchmark: ${file.split("/").pop()} after voco-v2, ${
      volume.shape.join(" x ")
    } voxels, uint16 at 1 HU steps, on disk; float32 ${formatBytes(f32)}, a ` +
      `PersistentDataset ${formatBytes(f32 + PICKLE_OVERHEAD)}`,
  );
  console.log(
    `  random ${size.join(" x ")} crops through openCase().readCrop(), one thread, ` +
      `best and median of ${crops} (the page cache warm)`,
  );
  const head = [
    "layout",
    "chunk",
    "compressor",
    "files",
    "size",
    "vs f32",
    "write",
    "crop best",
    "median",
    "read/crop",
  ];
  const rows: string[][] = [head];
  const dir = await Deno.makeTempDir({ prefix: "voco-bench-cache-" });
  const label = (x: Setting) =>
    `${x.compressor}${x.compressor === "none" ? "" : ` ${x.level}`}${`${
      x.shuffle ? ` ${x.shuffle}` : ""
    }${x.sizeOnly === "delta" ? " after delta" : ""}`}${
      x.layout === DEFAULT_LAYOUT && x.edge === DEFAULT_INNER_CHUNK &&
        x.compressor === DEFAULT_COMPRESSOR && x.level === DEFAULT_LEVEL && !x.shuffle &&
        !x.sizeOnly
        ? " ★"
        : ""
    }`;
  try {
    for (const setting of SETTINGS) {
      const { layout, edge, compressor, level, shuffle } = setting;
      if (options.chunk !== undefined && edge !== options.chunk) continue;
      if (setting.sizeOnly) {
        const t0 = performance.now();
        const bytes = chunkBytes(
          quantize(volume.data, encoding) as Uint16Array,
          volume.shape,
          edge,
          level,
          shuffle,
          setting.sizeOnly === "delta",
        );
        const write = (performance.now() - t0) / 1000;
        rows.push([
          layout,
          `${edge}³`,
          label(setting),
          "-",
          formatBytes(bytes),
          `${(f32 / bytes).toFixed(1)}x`,
          `${write.toFixed(2)} s`,
          "(size only: tensorstore has no delta)",
          "",
          "",
        ]);
        continue;
      }
      const root = join(dir, `${layout}-${edge}-${compressor}-${level}-${shuffle ?? ""}`);
      const { write, bytes, files, times, read } = await measure(root, volume, setting, {
        encoding,
        size,
        crops,
      });
      times.sort((a, b) => a - b);
      const ms = (x: number | undefined) => x === undefined ? "-" : `${x.toFixed(1)} ms`;
      rows.push([
        layout,
        `${edge}³`,
        label(setting),
        String(files),
        formatBytes(bytes),
        `${(f32 / bytes).toFixed(1)}x`,
        `${write.toFixed(2)} s`,
        ms(times[0]),
        ms(times[times.length >> 1]),
        crops ? formatBytes(read / crops) : "-",
      ]);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  const widths = head.map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  for (const r of rows) console.log(`  ${r.map((x, i) => x.padEnd(widths[i])).join("  ")}`);
}

/**
 * Writes `volume` at `root` with `setting`, then reads `crops` random boxes of `size`
 * through `openCase().readCrop()`: the write time (s), the bytes and files on disk, the
 * crop times (ms, sorted) and the bytes read for them.
 */
async function measure(
  root: string,
  volume: CaseVolume,
  setting: Setting,
  o: { encoding: StorageEncoding; size: Shape3; crops: number },
): Promise<{ write: number; bytes: number; files: number; times: number[]; read: number }> {
  const { layout, edge, compressor, level, shuffle } = setting;
  const t0 = performance.now();
  await writeCase(new FileSystemStore(root), "/", volume, {
    encoding: o.encoding,
    chunk: edge,
    compressor,
    level,
    layout,
    shuffle,
  });
  const write = (performance.now() - t0) / 1000;
  const { bytes, files } = await folderSize(root);
  const fs = new FileSystemStore(root);
  let read = 0;
  const counting = {
    get: async (k: `/${string}`) => {
      const b = await fs.get(k);
      if (b && !k.endsWith("zarr.json")) read += b.length;
      return b;
    },
    getRange: async (k: `/${string}`, r: never) => {
      const b = await fs.getRange(k, r);
      read += b?.length ?? 0;
      return b;
    },
  };
  let seed = 11;
  const rand = (n: number) => {
    seed = (seed * 1664525 + 1013904223) >>> 0;
    return seed % n;
  };
  const c = await openCase(counting, "/");
  await c.readCrop([0, 0, 0], o.size); // the shard index, read once per opened case
  read = 0;
  const times: number[] = [];
  for (let i = 0; i < o.crops; i++) {
    const start = volume.shape.map((n, a) => rand(n - o.size[a] + 1)) as Shape3;
    const t = performance.now();
    await c.readCrop(start, o.size);
    times.push(performance.now() - t);
  }
  return { write, bytes, files, times, read };
}

/** Options of {@linkcode benchCrops}. */
export interface BenchCropsOptions {
  /** Random crops read per location (after one warm-up crop). @default {30} */
  crops?: number;
  /** Crop size in voxels. @default {[192, 192, 64]} */
  size?: Shape3;
  /** Also time MONAI's PersistentDataset load-and-crop of the same volume, in this run. */
  torch?: boolean;
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
  const ref = options.torch ? await findReference() : undefined;
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
          `(voco-v2, ${volume.shape.join(" x ")} voxels, uint16, ${DEFAULT_LAYOUT}, ` +
          `${DEFAULT_INNER_CHUNK}³ blosc-zstd chunks); best of ${crops}, one thread (the server shares it over HTTP); ` +
          `a shared machine: the numbers are noisy`,
      );
      const best: Record<string, number> = {};
      // "sampler": the folder again, read into a buffer kept between crops, as the
      // sampler reads its regions (train/sampler/voco_sample.ts).
      const places = [["folder", dir], ["sampler", dir], ["HTTP", server.url]] as const;
      for (const [label, location] of places) {
        const into = label === "sampler"
          ? new Float32Array(size[0] * size[1] * size[2])
          : undefined;
        const reader = await CacheReader.open(location);
        let seed = 5;
        const rand = (n: number) => {
          seed = (seed * 1664525 + 1013904223) >>> 0;
          return n > 0 ? seed % n : 0;
        };
        const start = () => volume.shape.map((n, a) => rand(n - size[a] + 1)) as Shape3;
        await reader.readCrop("bench/ct", start(), size, { into }); // warm-up: metadata, codecs
        const times: number[] = [];
        const s0 = reader.stats();
        for (let c = 0; c < crops; c++) {
          const t = performance.now();
          await reader.readCrop("bench/ct", start(), size, { into });
          times.push(performance.now() - t);
        }
        const s1 = reader.stats();
        times.sort((a, b) => a - b);
        best[label] = times[0];
        const per = (x: number) => x / Math.max(1, crops);
        console.log(
          `  ${label === "sampler" ? "folder into a kept buffer (as the sampler reads)" : label}${
            label === "sampler" ? "" : " ".repeat(7 - label.length)
          } best ${times[0]?.toFixed(1)} ms, median ` +
            `${times[times.length >> 1]?.toFixed(1)} ms; ` +
            `${formatBytes(per(s1.bytes - s0.bytes))} and ${
              per(s1.requests - s0.requests).toFixed(1)
            } ${label === "HTTP" ? "requests" : "reads"} per crop`,
        );
      }
      if (ref && "python" in ref) {
        // PersistentDataset's float32 volume of the same case: torch.load, then the crop.
        const raw = join(dir, "volume.f32");
        await Deno.writeFile(raw, new Uint8Array(volume.data.buffer));
        const r = await runReference<{ best_ms: number; median_ms: number; torch: string }>(
          ref,
          "persistent_crop.py",
          ["--volume", raw, "--shape", volume.shape.join(","), "--crops", String(crops)],
        );
        console.log(
          `  MONAI PersistentDataset (torch ${r.torch}: torch.load + crop) best ` +
            `${r.best_ms.toFixed(1)} ms, median ${r.median_ms.toFixed(1)} ms; folder best is ` +
            `${(best.folder / r.best_ms).toFixed(2)}x its time (into a kept buffer ` +
            `${(best.sampler / r.best_ms).toFixed(2)}x), HTTP ` +
            `${(best.HTTP / r.best_ms).toFixed(2)}x (side by side in this run)`,
        );
      } else console.log(notMeasured("MONAI PersistentDataset load + crop", ref));
    } finally {
      await server.shutdown();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
