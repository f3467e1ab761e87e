/**
 * The shape of the volumes the cache stores and returns. Declared here, structurally, so
 * that `cache/` needs nothing from `prep/`: prep's `Volume<Float32Array>` is this type.
 *
 * @module
 */

/** A 4 x 4 affine matrix, row-major, as nested rows (`m[row][col]`). */
export type CaseAffine = number[][];

/** Voxel counts along the three array axes `[x, y, z]`. */
export type CaseShape = [number, number, number];

/** A cached volume: float32 values in C order, its shape and voxel-to-RAS affine. */
export interface CaseVolume {
  /** Values in C order (the last axis varies fastest). */
  data: Float32Array;
  /** Voxel counts `[x, y, z]`. */
  shape: CaseShape;
  /** Voxel index to RAS millimetres. */
  affine: CaseAffine;
}
