// A synthetic CT phantom with a known affine, for tests, the demo and benchmarks.
import type { Mat4, Shape3, Volume } from "../volume.ts";

/** Options of {@linkcode makePhantom}. */
export interface PhantomOptions {
  /** Voxel counts. @default {[96, 96, 64]} */
  shape?: Shape3;
  /** Voxel spacing in mm. @default {[2, 2, 3]} */
  spacingMm?: [number, number, number];
  /** Orientation code of the array axes, e.g. `"RAS"` or `"LPS"`. @default {"RAS"} */
  orientation?: string;
  /** Seed of the noise. @default {1} */
  seed?: number;
}

/**
 * A synthetic CT-like phantom in Hounsfield units: air outside, a body ellipsoid of
 * fat and soft tissue, two lungs, a liver, two kidneys and a spine of bone, with noise.
 * The anatomy lives in world (RAS) coordinates, so the same phantom stored in another
 * orientation or spacing shows the same body. For the demo and tests; no downloads.
 */
export function makePhantom(options: PhantomOptions = {}): Volume<Float32Array> {
  const shape = options.shape ?? [96, 96, 64];
  const spacing = options.spacingMm ?? [2, 2, 3];
  const affine = orientedAffine(options.orientation ?? "RAS", shape, spacing);
  let seed = options.seed ?? 1;
  const rand = () => {
    seed = (seed * 1664525 + 1013904223) >>> 0;
    return seed / 4294967296;
  };
  const [nx, ny, nz] = shape;
  const data = new Float32Array(nx * ny * nz);
  const extent = [0, 1, 2].map((a) => (shape[a] - 1) * spacing[a] / 2);
  const ell = (p: number[], c: number[], r: number[]) =>
    ((p[0] - c[0]) / r[0]) ** 2 + ((p[1] - c[1]) / r[1]) ** 2 + ((p[2] - c[2]) / r[2]) ** 2;
  const bx = extent[0] * 0.8, by = extent[1] * 0.6, bz = extent[2] * 1.2;
  let o = 0;
  for (let i = 0; i < nx; i++) {
    for (let j = 0; j < ny; j++) {
      for (let k = 0; k < nz; k++, o++) {
        const p = [0, 1, 2].map((r) =>
          affine[r][0] * i + affine[r][1] * j + affine[r][2] * k + affine[r][3]
        );
        let hu = -1000;
        const body = ell(p, [0, 0, 0], [bx, by, bz]);
        if (body < 1) {
          hu = body > 0.8 ? -100 : 40;
          if (ell(p, [-bx * 0.45, by * 0.1, bz * 0.4], [bx * 0.3, by * 0.5, bz * 0.5]) < 1) {
            hu = -850;
          }
          if (ell(p, [bx * 0.45, by * 0.1, bz * 0.4], [bx * 0.3, by * 0.5, bz * 0.5]) < 1) {
            hu = -850;
          }
          if (ell(p, [-bx * 0.35, by * 0.2, -bz * 0.3], [bx * 0.35, by * 0.4, bz * 0.3]) < 1) {
            hu = 60;
          }
          if (ell(p, [bx * 0.4, -by * 0.4, -bz * 0.4], [bx * 0.12, by * 0.15, bz * 0.15]) < 1) {
            hu = 30;
          }
          if (ell(p, [-bx * 0.4, -by * 0.4, -bz * 0.4], [bx * 0.12, by * 0.15, bz * 0.15]) < 1) {
            hu = 30;
          }
          if (ell(p, [0, -by * 0.75, p[2]], [bx * 0.1, by * 0.12, 1e9]) < 1) hu = 700;
          hu += (rand() - 0.5) * 30;
        }
        data[o] = Math.round(hu);
      }
    }
  }
  return { data, shape, affine };
}

/** An axis-aligned affine for an orientation code, centred on the world origin. */
export function orientedAffine(code: string, shape: Shape3, spacing: number[]): Mat4 {
  const axes: Record<string, [number, number]> = {
    R: [0, 1],
    L: [0, -1],
    A: [1, 1],
    P: [1, -1],
    S: [2, 1],
    I: [2, -1],
  };
  const m: Mat4 = [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]];
  const letters = code.toUpperCase().split("");
  if (letters.length !== 3 || new Set(letters.map((l) => axes[l]?.[0])).size !== 3) {
    throw new RangeError(`Invalid orientation code "${code}"`);
  }
  letters.forEach((l, c) => {
    const [r, sign] = axes[l];
    m[r][c] = sign * spacing[c];
    m[r][3] = -sign * spacing[c] * (shape[c] - 1) / 2;
  });
  return m;
}
