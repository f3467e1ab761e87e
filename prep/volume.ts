/**
 * The one plain-data volume type shared by every stage of the pipeline.
 *
 * @module
 */

/** A 4 x 4 affine matrix, row-major, as nested rows (`m[row][col]`). */
export type Mat4 = number[][];

/** Voxel counts along the three array axes. */
export type Shape3 = [number, number, number];

/** Numeric typed arrays a volume may hold. */
export type VoxelArray =
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | Float32Array
  | Float64Array;

/**
 * A 3-D scalar image.
 *
 * `data` is in C order over `shape` (the last axis varies fastest, as in NumPy and in
 * the MONAI output), and `affine` maps a voxel index `(i, j, k, 1)` to world
 * millimetres in RAS (right, anterior, superior), voxel centres at integer indices.
 */
export interface Volume<T extends VoxelArray = VoxelArray> {
  /** Voxel values in C order. */
  data: T;
  /** Voxel counts `[x, y, z]` of the array axes. */
  shape: Shape3;
  /** Voxel index to RAS millimetres. */
  affine: Mat4;
}

/** Number of voxels of a shape. */
export function voxelCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}
