// Rotation by quarter turns in the plane of two axes (MONAI `Rotate90`, as `np.rot90`).
import type { Shape3, Volume, VoxelArray } from "../../prep/volume.ts";
import { matmul4 } from "../../prep/transforms/_affine.ts";

/** One quarter turn in the x-y plane: `out[i, j, k] = in[j, ny - 1 - i, k]` (np.rot90). */
function quarterTurnXY<T extends VoxelArray>(volume: Volume<T>): Volume<T> {
  const [sx, sy, sz] = volume.shape;
  const src = volume.data;
  const out = new (src.constructor as new (n: number) => T)(src.length);
  // Output shape [sy, sx, sz].
  for (let i = 0; i < sy; i++) {
    for (let j = 0; j < sx; j++) {
      const from = (j * sy + (sy - 1 - i)) * sz;
      out.set(src.subarray(from, from + sz) as never, (i * sx + j) * sz);
    }
  }
  const m = [[0, 1, 0, 0], [-1, 0, 0, sy - 1], [0, 0, 1, 0], [0, 0, 0, 1]];
  return { data: out, shape: [sy, sx, sz] as Shape3, affine: matmul4(volume.affine, m) };
}

/**
 * Rotates by `k` quarter turns in the plane of the first two spatial axes, as MONAI's
 * `Rotate90(k, spatial_axes=(0, 1))`, i.e. `np.rot90(x, k, axes=(0, 1))` (from axis 0
 * towards axis 1). The affine keeps every value at its world position.
 */
export function rotate90<T extends VoxelArray>(volume: Volume<T>, k: number): Volume<T> {
  const turns = ((k % 4) + 4) % 4;
  let v = volume;
  for (let t = 0; t < turns; t++) v = quarterTurnXY(v);
  return v === volume ? { ...volume, data: volume.data.slice() as T } : v;
}
