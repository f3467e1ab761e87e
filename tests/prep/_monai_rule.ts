// MONAI's Orientation + Spacing geometry written out again from the rule, for tests: an
// independent derivation (Gram-Schmidt instead of Cholesky, cofactor inverses instead of
// LU, an eigen-decomposition for the polar factor), sharing no code with prep/transforms.
import type { Mat4, Shape3, Volume } from "../../prep/volume.ts";

/** A seeded random number generator (mulberry32), uniform in [0, 1). */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type M3 = number[][];

const col = (m: M3 | Mat4, c: number) => [m[0][c], m[1][c], m[2][c]];
const dot = (a: number[], b: number[]) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
const norm = (a: number[]) => Math.sqrt(dot(a, a));

/** 3 x 3 inverse by the adjugate. */
export function inverse3(m: M3): M3 {
  const c = (r0: number, r1: number, c0: number, c1: number) =>
    m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0];
  const adj = [
    [c(1, 2, 1, 2), -c(0, 2, 1, 2), c(0, 1, 1, 2)],
    [-c(1, 2, 0, 2), c(0, 2, 0, 2), -c(0, 1, 0, 2)],
    [c(1, 2, 0, 1), -c(0, 2, 0, 1), c(0, 1, 0, 1)],
  ];
  const det = m[0][0] * adj[0][0] + m[0][1] * adj[1][0] + m[0][2] * adj[2][0];
  return adj.map((r) => r.map((v) => v / det));
}

/** The 3 x 3 product `a b`. */
export function mul3(a: M3, b: M3): M3 {
  return [0, 1, 2].map((i) =>
    [0, 1, 2].map((j) => a[i][0] * b[0][j] + a[i][1] * b[1][j] + a[i][2] * b[2][j])
  );
}

/** Rotation about a world axis (0 = x, 1 = y, 2 = z) by `deg` degrees. */
export function rotation(axis: number, deg: number): M3 {
  const t = deg * Math.PI / 180, c = Math.cos(t), s = Math.sin(t);
  const m = [[1, 0, 0], [0, 1, 0], [0, 0, 1]];
  const [i, j] = [0, 1, 2].filter((a) => a !== axis);
  m[i][i] = c;
  m[i][j] = -s;
  m[j][i] = s;
  m[j][j] = c;
  return m;
}

/** A uniformly random rotation (from a random unit quaternion). */
export function randomRotation(rand: () => number): M3 {
  const g = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  let [w, x, y, z] = [g(), g(), g(), g()];
  const n = Math.hypot(w, x, y, z);
  [w, x, y, z] = [w / n, x / n, y / n, z / n];
  return [
    [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
    [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
    [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
  ];
}

/** An affine from its 3 x 3 part and translation. */
export function affineOf(m: M3, t: number[]): Mat4 {
  return [[...m[0], t[0]], [...m[1], t[1]], [...m[2], t[2]], [0, 0, 0, 1]];
}

/** World position of voxel `p`. */
export function toWorld(a: Mat4, p: readonly number[]): number[] {
  return [0, 1, 2].map((r) => a[r][0] * p[0] + a[r][1] * p[1] + a[r][2] * p[2] + a[r][3]);
}

/** Voxel coordinates of world point `w` (cofactor inverse of the 3 x 3 part). */
export function toVoxel(a: Mat4, w: readonly number[]): number[] {
  const inv = inverse3(
    [col(a, 0), col(a, 1), col(a, 2)].map((_, r) => [a[r][0], a[r][1], a[r][2]]),
  );
  const d = [0, 1, 2].map((r) => w[r] - a[r][3]);
  return [0, 1, 2].map((r) => inv[r][0] * d[0] + inv[r][1] * d[1] + inv[r][2] * d[2]);
}

/** NumPy's `round`: half to even. */
export function roundEven(x: number): number {
  const f = Math.floor(x);
  const diff = x - f;
  if (diff > 0.5) return f + 1;
  if (diff < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** The expected grid and which branch of `compute_shape_offset` gave its origin. */
export interface ExpectedGrid {
  /** Output voxel counts. */
  shape: Shape3;
  /** Output affine. */
  affine: Mat4;
  /** `corner`: voxel 0 is an input corner; `centre`: the grids are centred. */
  branch: "corner" | "centre";
}

/**
 * MONAI 1.3.2 `Spacing(pixdim, diagonal=False)` on an image of `shape` and `affine`:
 * - per axis the target, or the image's own spacing when within 1e-3 mm of it;
 * - directions: the columns made orthonormal in order (Gram-Schmidt: `zoom_affine`'s
 *   QR rotation), times the spacing;
 * - the 8 corner voxel centres in output voxel coordinates; shape `round(ptp + 1)`;
 * - origin: the corner smallest along every output axis (to 1e-8), else
 *   `A_in (n / 2) + t_in - A_out (n_out / 2)`.
 */
export function expectedSpacingGrid(
  shape: Shape3,
  affine: Mat4,
  spacingMm: readonly number[],
): ExpectedGrid {
  const cols = [0, 1, 2].map((c) => col(affine, c));
  const target = cols.map((c, a) => {
    const own = norm(c);
    return Math.abs(own - spacingMm[a]) <= 1e-3 ? own : spacingMm[a];
  });
  const q: number[][] = [];
  for (const c of cols) {
    let v = c.slice();
    for (const u of q) {
      const d = dot(u, c);
      v = v.map((x, i) => x - d * u[i]);
    }
    const n = norm(v);
    q.push(v.map((x) => x / n));
  }
  const out3 = [0, 1, 2].map((r) => [0, 1, 2].map((c) => q[c][r] * target[c]));
  const outInv = inverse3(out3);
  const corners: number[][] = [];
  for (const i of [0, shape[0] - 1]) {
    for (const j of [0, shape[1] - 1]) {
      for (const k of [0, shape[2] - 1]) corners.push([i, j, k]);
    }
  }
  const world = corners.map((p) => toWorld(affine, p));
  const grid = world.map((w) => [0, 1, 2].map((r) => dot(outInv[r], w)));
  const lo = [0, 1, 2].map((a) => Math.min(...grid.map((g) => g[a])));
  const hi = [0, 1, 2].map((a) => Math.max(...grid.map((g) => g[a])));
  const outShape = [0, 1, 2].map((a) => roundEven(hi[a] - lo[a] + 1)) as Shape3;
  const k = grid.findIndex((g) => g.every((v, a) => Math.abs(v - lo[a]) <= 1e-8));
  const origin = k >= 0
    ? world[k]
    : [0, 1, 2].map((r) =>
      dot(affine[r].slice(0, 3), shape.map((n) => n / 2)) + affine[r][3] -
      dot(out3[r], outShape.map((n) => n / 2))
    );
  return {
    shape: outShape,
    affine: affineOf(out3, origin),
    branch: k >= 0 ? "corner" : "centre",
  };
}

/**
 * The closest orthogonal matrix to `m` (polar factor), as `m (mᵀm)^(-1/2)` with the
 * square root from a Jacobi eigen-decomposition of `mᵀm`.
 */
export function polarFactor(m: M3): M3 {
  const a = mul3([0, 1, 2].map((i) => [0, 1, 2].map((j) => m[j][i])), m);
  const v = [[1, 0, 0], [0, 1, 0], [0, 0, 1]];
  for (let sweep = 0; sweep < 50; sweep++) {
    for (const [p, r] of [[0, 1], [0, 2], [1, 2]]) {
      if (Math.abs(a[p][r]) < 1e-300) continue;
      const theta = (a[r][r] - a[p][p]) / (2 * a[p][r]);
      const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
      const c = 1 / Math.sqrt(t * t + 1), s = t * c;
      for (let k = 0; k < 3; k++) {
        const akp = a[k][p], akr = a[k][r];
        a[k][p] = c * akp - s * akr;
        a[k][r] = s * akp + c * akr;
      }
      for (let k = 0; k < 3; k++) {
        const apk = a[p][k], ark = a[r][k];
        a[p][k] = c * apk - s * ark;
        a[r][k] = s * apk + c * ark;
      }
      for (let k = 0; k < 3; k++) {
        const vkp = v[k][p], vkr = v[k][r];
        v[k][p] = c * vkp - s * vkr;
        v[k][r] = s * vkp + c * vkr;
      }
    }
  }
  const invSqrt = [0, 1, 2].map((i) =>
    [0, 1, 2].map((j) => [0, 1, 2].reduce((s, k) => s + v[i][k] * v[j][k] / Math.sqrt(a[k][k]), 0))
  );
  return mul3(m, invSqrt);
}

/**
 * nibabel's `io_orientation` from the rule: unit columns, their polar factor, then array
 * axes in order take the world axis of their largest remaining component.
 */
export function expectedOrientation(affine: Mat4): { axis: number; sign: 1 | -1 }[] {
  const m = [0, 1, 2].map((r) => [0, 1, 2].map((c) => affine[r][c] / norm(col(affine, c))));
  const u = polarFactor(m);
  const used = new Set<number>();
  return [0, 1, 2].map((i) => {
    const w = [0, 1, 2].filter((r) => !used.has(r))
      .reduce(
        (b, r) => (Math.abs(u[r][i]) > Math.abs(u[b][i]) ? r : b),
        [0, 1, 2].find((r) => !used.has(r))!,
      );
    used.add(w);
    return { axis: w, sign: u[w][i] < 0 ? -1 : 1 };
  });
}

/**
 * MONAI's `Orientation("RAS")` geometry from an orientation: RAS axis `r` is the array
 * axis running along world axis `r`, reversed when it runs towards L, P or I.
 */
export function expectedRas(
  shape: Shape3,
  affine: Mat4,
  ori: { axis: number; sign: 1 | -1 }[],
): { shape: Shape3; affine: Mat4 } {
  const src = [0, 1, 2].map((r) => ori.findIndex((o) => o.axis === r));
  const outShape = src.map((c) => shape[c]) as Shape3;
  // Voxel 0 of the result is the input voxel with the flipped axes at their ends.
  const first = [0, 1, 2].map((c) => (ori[c].sign < 0 ? shape[c] - 1 : 0));
  const origin = toWorld(affine, first);
  const m = [0, 1, 2].map((r) => src.map((c) => affine[r][c] * ori[c].sign));
  return { shape: outShape, affine: affineOf(m, origin) };
}

/** A volume whose voxel values are a linear function of world position. */
export function worldRamp(shape: Shape3, a: Mat4, g: number[]): Volume<Float32Array> {
  const data = new Float32Array(shape[0] * shape[1] * shape[2]);
  let o = 0;
  for (let i = 0; i < shape[0]; i++) {
    for (let j = 0; j < shape[1]; j++) {
      for (let k = 0; k < shape[2]; k++, o++) {
        const w = toWorld(a, [i, j, k]);
        data[o] = g[0] * w[0] + g[1] * w[1] + g[2] * w[2];
      }
    }
  }
  return { data, shape, affine: a };
}
