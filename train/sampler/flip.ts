// Flipping along one array axis (MONAI `Flip` / `RandFlip`'s transform), affine kept true.
import type { Shape3, Volume, VoxelArray } from "../../prep/volume.ts";
import { matmul4 } from "../../prep/transforms/_affine.ts";

/**
 * Reverses the voxel order along `axis` (0, 1 or 2 of `[x, y, z]`), as `np.flip`. The
 * affine maps each voxel to the world position its value came from.
 */
export function flipAxis<T extends VoxelArray>(volume: Volume<T>, axis: 0 | 1 | 2): Volume<T> {
  const [sx, sy, sz] = volume.shape;
  const src = volume.data;
  const out = new (src.constructor as new (n: number) => T)(src.length);
  if (axis === 2) {
    for (let r = 0; r < sx * sy; r++) {
      const o = r * sz;
      for (let z = 0; z < sz; z++) out[o + z] = src[o + sz - 1 - z];
    }
  } else if (axis === 1) {
    for (let x = 0; x < sx; x++) {
      for (let y = 0; y < sy; y++) {
        const from = (x * sy + sy - 1 - y) * sz;
        out.set(src.subarray(from, from + sz) as never, (x * sy + y) * sz);
      }
    }
  } else {
    const plane = sy * sz;
    for (let x = 0; x < sx; x++) {
      const from = (sx - 1 - x) * plane;
      out.set(src.subarray(from, from + plane) as never, x * plane);
    }
  }
  const m = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]];
  m[axis][axis] = -1;
  m[axis][3] = volume.shape[axis] - 1;
  return { data: out, shape: [...volume.shape] as Shape3, affine: matmul4(volume.affine, m) };
}
