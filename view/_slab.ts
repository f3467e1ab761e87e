// Reads slices [z0, z1) of a cached case through `CacheReader` (only the chunks they touch)
// and lays them out as the page's NIfTI volume stores them: x fastest, in the stored type
// (integers recovered exactly from the dequantised values).
import type { CacheCaseInfo, CacheReader } from "../cache/read/cache_reader.ts";
import type { WireType } from "./_nifti_header.ts";

/** Slices `[z0, z1)` of `info`'s case, x fastest, as little-endian `type` values. */
export async function readSlab(
  reader: CacheReader,
  info: CacheCaseInfo,
  type: WireType,
  z0: number,
  z1: number,
): Promise<Uint8Array<ArrayBuffer>> {
  const [nx, ny] = info.shape!;
  const dz = z1 - z0;
  const crop = await reader.readCrop(info.path, [0, 0, z0], [nx, ny, dz]);
  const src = crop.data; // [x][y][z], z fastest
  const a = info.attributes;
  const quantised = type !== "float32" && typeof a?.scale_factor === "number";
  const scale = quantised ? a!.scale_factor! : 1, offset = quantised ? (a!.add_offset ?? 0) : 0;
  const n = nx * ny * dz;
  const out = type === "float32"
    ? new Float32Array(n)
    : type === "uint16"
    ? new Uint16Array(n)
    : new Uint8Array(n);
  const plane = nx * ny;
  const exact = type === "float32";
  let i = 0;
  for (let x = 0; x < nx; x++) {
    for (let y = 0; y < ny; y++) {
      let o = y * nx + x;
      for (let z = 0; z < dz; z++, o += plane) {
        const v = src[i++];
        out[o] = exact ? v : Math.round((v - offset) / scale);
      }
    }
  }
  return new Uint8Array(out.buffer);
}
