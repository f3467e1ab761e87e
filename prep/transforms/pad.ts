// Zero padding to a minimum shape, centred (MONAI `SpatialPad`).
import type { Mat4, Shape3, Volume, VoxelArray } from "../volume.ts";
import { shiftOrigin } from "./_affine.ts";

/** Options of {@linkcode padToMinShape}. */
export interface PadOptions {
  /** Minimum voxel count per axis. */
  minShape: readonly [number, number, number];
}

/**
 * The grid {@linkcode padToMinShape} makes: `floor(d / 2)` voxels before each axis short of
 * `minShape` by `d`, and the shape grown to `minShape`; the origin moves by the voxels
 * added before.
 */
export function padGrid(
  shape: Shape3,
  affine: Mat4,
  minShape: readonly [number, number, number],
): { shape: Shape3; affine: Mat4; before: number[] } {
  const before = [0, 1, 2].map((a) => Math.floor(Math.max(0, minShape[a] - shape[a]) / 2));
  return {
    shape: [0, 1, 2].map((a) => Math.max(shape[a], minShape[a])) as Shape3,
    affine: shiftOrigin(affine, before.map((b) => -b)),
    before,
  };
}

/**
 * Pads with zeros so every axis has at least `minShape` voxels (MONAI's `SpatialPad`,
 * `method="symmetric"`): `floor(d / 2)` before and the rest after, where `d` is the
 * shortfall. The affine keeps every voxel at its world position.
 */
export function padToMinShape<T extends VoxelArray>(
  volume: Volume<T>,
  options: PadOptions,
): Volume<T> {
  const { shape, affine, before } = padGrid(volume.shape, volume.affine, options.minShape);
  if (shape.every((n, a) => n === volume.shape[a])) return volume;
  const Ctor = volume.data.constructor as new (n: number) => T;
  const out = new Ctor(shape[0] * shape[1] * shape[2]);
  const [sx, sy, sz] = volume.shape;
  for (let x = 0; x < sx; x++) {
    for (let y = 0; y < sy; y++) {
      const i = (x * sy + y) * sz;
      const o = ((x + before[0]) * shape[1] + y + before[1]) * shape[2] + before[2];
      out.set(volume.data.subarray(i, i + sz) as never, o);
    }
  }
  return { data: out, shape, affine };
}
