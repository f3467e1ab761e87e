// Small caches for the reader and server tests: plain, sharded (Zarr v3 sharding_indexed,
// written here from the spec) and consolidated.
import { join } from "node:path";
import { FileSystemStore } from "@zarrita/storage";
import { ensureDataset, initCache } from "../../cache/write/cache_dir.ts";
import { writeCase } from "../../cache/write/write_case.ts";
import { storageEncoding } from "../../cache/format/quantize.ts";
import { NativeZstdCodec } from "../../cache/codecs/zstd.ts";
import type { CaseShape, CaseVolume } from "../../cache/format/case_volume.ts";

/** A volume of smooth values in 0..1 with a known affine. */
export function testVolume(shape: CaseShape, seed = 1): CaseVolume {
  const data = new Float32Array(shape[0] * shape[1] * shape[2]);
  let s = seed;
  for (let i = 0; i < data.length; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    data[i] = (Math.sin(i / 37) + 1) / 2 * 0.9 + (s % 1000) / 10000;
  }
  return {
    data,
    shape,
    affine: [[1.5, 0, 0, -10], [0, 1.5, 0, 20], [0, 0, 1.5, 5], [0, 0, 0, 1]],
  };
}

/** The uint16 encoding prep uses for a 0..1 window of 425 HU. */
export const ENCODING = storageEncoding("uint16", [0, 1], { windowWidthHu: 425 });

/**
 * A cache at `root` with group `ds`, cases `a` (40 x 36 x 20, 16³ chunks, blosc-zstd)
 * and `b` (24 x 24 x 24, zstd), as prep writes them.
 */
export async function writeTestCache(root: string): Promise<Record<string, CaseVolume>> {
  await initCache(root);
  await ensureDataset(root, "ds");
  const store = new FileSystemStore(root);
  const a = testVolume([40, 36, 20], 1), b = testVolume([24, 24, 24], 2);
  const attrs = (v: CaseVolume) => ({ affine: v.affine, spacing: [1.5, 1.5, 1.5] });
  await writeCase(store, "/ds/a", a, { encoding: ENCODING, chunk: 16, attributes: attrs(a) });
  await writeCase(store, "/ds/b", b, {
    encoding: ENCODING,
    chunk: 16,
    compressor: "zstd",
    attributes: attrs(b),
  });
  return { a, b };
}

/**
 * Writes `volume` as a Zarr v3 array with `sharding_indexed` at `root/path`: one shard
 * covering the whole volume, inner chunks of `inner` voxels (bytes + zstd) in C order,
 * the index (offset, length as uint64 little endian) at the end.
 */
export async function writeShardedCase(
  root: string,
  path: string,
  volume: CaseVolume,
  inner: CaseShape,
): Promise<void> {
  const { shape } = volume;
  const grid = shape.map((n, a) => Math.ceil(n / inner[a]));
  const shard = grid.map((g, a) => g * inner[a]);
  const stored = new Uint16Array(volume.data.length);
  for (let i = 0; i < stored.length; i++) {
    stored[i] = Math.round((volume.data[i] - ENCODING.addOffset!) / ENCODING.scaleFactor!);
  }
  const zstd = new NativeZstdCodec({ level: 3 });
  const parts: Uint8Array[] = [];
  const index = new BigUint64Array(grid[0] * grid[1] * grid[2] * 2);
  let offset = 0;
  for (let i = 0; i < grid[0]; i++) {
    for (let j = 0; j < grid[1]; j++) {
      for (let k = 0; k < grid[2]; k++) {
        const chunk = new Uint16Array(inner[0] * inner[1] * inner[2]);
        for (let x = 0; x < inner[0]; x++) {
          for (let y = 0; y < inner[1]; y++) {
            for (let z = 0; z < inner[2]; z++) {
              const X = i * inner[0] + x, Y = j * inner[1] + y, Z = k * inner[2] + z;
              if (X < shape[0] && Y < shape[1] && Z < shape[2]) {
                chunk[(x * inner[1] + y) * inner[2] + z] =
                  stored[(X * shape[1] + Y) * shape[2] + Z];
              }
            }
          }
        }
        const bytes = zstd.encode(new Uint8Array(chunk.buffer));
        const n = (i * grid[1] + j) * grid[2] + k;
        index[2 * n] = BigInt(offset);
        index[2 * n + 1] = BigInt(bytes.length);
        parts.push(bytes);
        offset += bytes.length;
      }
    }
  }
  parts.push(new Uint8Array(index.buffer));
  const file = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    file.set(p, at);
    at += p.length;
  }
  const dir = join(root, path);
  await Deno.mkdir(join(dir, "c", "0", "0"), { recursive: true });
  await Deno.writeFile(join(dir, "c", "0", "0", "0"), file);
  const meta = {
    zarr_format: 3,
    node_type: "array",
    shape,
    data_type: "uint16",
    chunk_grid: { name: "regular", configuration: { chunk_shape: shard } },
    chunk_key_encoding: { name: "default", configuration: { separator: "/" } },
    fill_value: 0,
    codecs: [{
      name: "sharding_indexed",
      configuration: {
        chunk_shape: inner,
        codecs: [
          { name: "bytes", configuration: { endian: "little" } },
          { name: "zstd", configuration: { level: 3, checksum: false } },
        ],
        index_codecs: [{ name: "bytes", configuration: { endian: "little" } }],
        index_location: "end",
      },
    }],
    attributes: {
      affine: volume.affine,
      spacing: [1.5, 1.5, 1.5],
      scale_factor: ENCODING.scaleFactor,
      add_offset: ENCODING.addOffset,
    },
    dimension_names: ["x", "y", "z"],
  };
  await Deno.writeTextFile(join(dir, "zarr.json"), JSON.stringify(meta));
}

/**
 * Adds `consolidated_metadata` to the root `zarr.json` (the convention zarr-python 3
 * writes: keys relative to the root, every group and array below it).
 */
export async function consolidate(root: string): Promise<void> {
  const metadata: Record<string, unknown> = {};
  for (const ds of await Array.fromAsync(Deno.readDir(root))) {
    if (!ds.isDirectory || ds.name.startsWith(".")) continue;
    metadata[ds.name] = JSON.parse(await Deno.readTextFile(join(root, ds.name, "zarr.json")));
    for (const c of await Array.fromAsync(Deno.readDir(join(root, ds.name)))) {
      if (!c.isDirectory) continue;
      metadata[`${ds.name}/${c.name}`] = JSON.parse(
        await Deno.readTextFile(join(root, ds.name, c.name, "zarr.json")),
      );
    }
  }
  const rootMeta = JSON.parse(await Deno.readTextFile(join(root, "zarr.json")));
  rootMeta.consolidated_metadata = { kind: "inline", must_understand: false, metadata };
  await Deno.writeTextFile(join(root, "zarr.json"), JSON.stringify(rootMeta));
}

/** Sends one raw HTTP/1.1 request line to `port` on 127.0.0.1; the status code. */
export async function rawStatus(port: number, target: string): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(
      new TextEncoder().encode(
        `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`,
      ),
    );
    const buf = new Uint8Array(512);
    const n = await conn.read(buf);
    const line = new TextDecoder().decode(buf.subarray(0, n ?? 0)).split("\r\n")[0];
    return Number(line.split(" ")[1]);
  } finally {
    conn.close();
  }
}
