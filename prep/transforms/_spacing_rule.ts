// MONAI's rule for the output grid of `Spacing` as pure affine math, no voxels
// (MONAI 1.3.2: `monai/data/utils.py` `zoom_affine`, `compute_shape_offset`;
// `monai/transforms/spatial/array.py` `Spacing`; `functional.py` `spatial_resample`).
import type { Mat4, Shape3 } from "../volume.ts";
import {
  choleskyUpper3,
  columnNorms,
  invert3,
  linearPart,
  roundHalfEven,
  solve4,
} from "./_affine.ts";

/** MONAI's `AFFINE_TOL`: spacings and affines closer than this count as equal. */
export const AFFINE_TOL = 1e-3;

/**
 * The spacing `Spacing` resamples to: the target, except on an axis whose own spacing is
 * within {@linkcode AFFINE_TOL} mm of it, which keeps its own (MONAI's
 * `min_pixdim`/`max_pixdim` rule with both unset).
 */
export function targetSpacing(affine: Mat4, spacingMm: readonly number[]): Shape3 {
  const own = columnNorms(affine);
  return [0, 1, 2].map((a) => {
    const t = spacingMm[a];
    return t - AFFINE_TOL <= own[a] && own[a] <= t + AFFINE_TOL ? own[a] : t;
  }) as Shape3;
}

/**
 * MONAI's `zoom_affine(affine, spacing, diagonal=False)`: the rotation of the affine's
 * QR decomposition (its columns made orthonormal in order, so a shear is dropped and
 * the first column keeps its direction) times the new spacing; zero translation.
 *
 * `rzs = Q R` with `R` the Cholesky factor of `rzsᵀ rzs`, `Q = rzs R⁻¹`; the result is
 * `Q diag(sign(diag(R)) |spacing|)` (the signs are all positive).
 */
export function zoomAffine(affine: Mat4, spacingMm: readonly number[]): Mat4 {
  const rzs = linearPart(affine);
  const g = [0, 1, 2].map((i) =>
    [0, 1, 2].map((j) => rzs[0][i] * rzs[0][j] + rzs[1][i] * rzs[1][j] + rzs[2][i] * rzs[2][j])
  );
  const zs = choleskyUpper3(g);
  const zsInv = invert3(zs);
  const out: Mat4 = [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]];
  for (let r = 0; r < 3; r++) {
    for (let c = 0; c < 3; c++) {
      const q = rzs[r][0] * zsInv[0][c] + rzs[r][1] * zsInv[1][c] + rzs[r][2] * zsInv[2][c];
      out[r][c] = q * Math.sign(zs[c][c]) * Math.abs(spacingMm[c]);
    }
  }
  return out;
}

/** The result of {@linkcode shapeOffset}. */
export interface ShapeOffset {
  /** Voxel counts of the output grid. */
  shape: Shape3;
  /** World position of the output's voxel 0. */
  offset: [number, number, number];
  /**
   * Index (0-7, axis 0 the slowest bit) of the input corner that is the output's voxel
   * 0, or `undefined` when no corner is smallest along every output axis (a rotation
   * between the grids, or rounding noise in one) and the grids are centred instead.
   */
  corner?: number;
}

/**
 * MONAI's `compute_shape_offset(shape, in_affine, out_affine, scale_extent=False)`.
 *
 * The 8 corner voxel centres of the input are mapped into the output grid
 * (`solve(out, in) @ corner`); the shape is `round(max - min + 1)` per axis (half to
 * even). The offset is the world position of the corner that is smallest along all
 * three output axes at once (within 1e-8 voxel); when no corner is (the grids are
 * rotated against each other, or a float32 header left the columns a hair from
 * orthogonal), the output is centred on the input instead:
 * `offset = in[:3,:3] @ (n_in / 2) + in[:3,3] - out[:3,:3] @ (n_out / 2)`, with whole
 * voxel counts, not the `n - 1` of the voxel centres.
 *
 * ```
 * axis-aligned: corner 0 is smallest      rotated: no corner is smallest on both axes
 *   o---o            voxel 0 = corner 0        o             centre of the input
 *   |   |                                     / \            = centre of the output
 *   o---o                                    o   o           (n / 2 on both sides)
 * ```
 */
export function shapeOffset(shape: Shape3, inAffine: Mat4, outAffine: Mat4): ShapeOffset {
  const m = solve4(outAffine, inAffine);
  const out: number[][] = [];
  const world: number[][] = [];
  for (let k = 0; k < 8; k++) {
    const c = [(k >> 2) & 1, (k >> 1) & 1, k & 1].map((bit, a) => (bit ? shape[a] - 1 : 0));
    const p = [c[0], c[1], c[2], 1];
    out.push([0, 1, 2].map((r) => m[r][0] * p[0] + m[r][1] * p[1] + m[r][2] * p[2] + m[r][3]));
    world.push(
      [0, 1, 2].map((r) =>
        inAffine[r][0] * p[0] + inAffine[r][1] * p[1] + inAffine[r][2] * p[2] + inAffine[r][3]
      ),
    );
  }
  const lo = [0, 1, 2].map((a) => Math.min(...out.map((p) => p[a])));
  const hi = [0, 1, 2].map((a) => Math.max(...out.map((p) => p[a])));
  const outShape = [0, 1, 2].map((a) => roundHalfEven(hi[a] - lo[a] + 1)) as Shape3;
  for (let k = 0; k < 8; k++) {
    if ([0, 1, 2].every((a) => Math.abs(lo[a] - out[k][a]) <= 1e-8)) {
      return { shape: outShape, offset: world[k] as [number, number, number], corner: k };
    }
  }
  const offset = [0, 1, 2].map((r) =>
    inAffine[r][0] * (shape[0] / 2) + inAffine[r][1] * (shape[1] / 2) +
    inAffine[r][2] * (shape[2] / 2) + inAffine[r][3] -
    (outAffine[r][0] * (outShape[0] / 2) + outAffine[r][1] * (outShape[1] / 2) +
      outAffine[r][2] * (outShape[2] / 2))
  ) as [number, number, number];
  return { shape: outShape, offset };
}

/**
 * MONAI's `spatial_resample` returns its input untouched (values cast to float32, the
 * input's affine kept) when the output grid is the input's: the same shape, and the
 * affines, or the voxel mapping `solve(in, out)` and the identity, equal within
 * {@linkcode AFFINE_TOL} (`allclose`, rtol 1e-5).
 */
export function gridUnchanged(
  shape: Shape3,
  affine: Mat4,
  grid: { shape: Shape3; affine: Mat4 },
): boolean {
  if (grid.shape.some((n, a) => n !== shape[a])) return false;
  const close = (a: Mat4, b: Mat4) =>
    a.every((row, r) =>
      row.every((v, c) => Math.abs(v - b[r][c]) <= AFFINE_TOL + 1e-5 * Math.abs(b[r][c]))
    );
  if (close(affine, grid.affine)) return true;
  const eye: Mat4 = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]];
  return close(solve4(affine, grid.affine), eye);
}
