import type { Mat4, Shape3, Volume, VoxelArray } from "./volume.ts";
import { matmul4 } from "./_affine.ts";

/**
 * For each array axis, the world axis (0 = x, 1 = y, 2 = z) it runs along most closely
 * and the direction (+1 towards R/A/S, -1 towards L/P/I), as nibabel's
 * `io_orientation` decides it: the largest remaining direction cosine first.
 */
export function axisOrientation(affine: Mat4): { axis: number; sign: 1 | -1 }[] {
  const cos = [0, 1, 2].map((c) => {
    const norm = Math.hypot(affine[0][c], affine[1][c], affine[2][c]);
    return [0, 1, 2].map((r) => affine[r][c] / norm);
  });
  const out: { axis: number; sign: 1 | -1 }[] = [];
  const usedIn = new Set<number>();
  const usedWorld = new Set<number>();
  for (let step = 0; step < 3; step++) {
    let best = -1, bi = 0, bw = 0;
    for (let i = 0; i < 3; i++) {
      if (usedIn.has(i)) continue;
      for (let w = 0; w < 3; w++) {
        if (usedWorld.has(w)) continue;
        if (Math.abs(cos[i][w]) > best) [best, bi, bw] = [Math.abs(cos[i][w]), i, w];
      }
    }
    usedIn.add(bi);
    usedWorld.add(bw);
    out[bi] = { axis: bw, sign: cos[bi][bw] < 0 ? -1 : 1 };
  }
  return out;
}

/** Orientation code of an affine, e.g. `"RAS"` or `"LPS"`. */
export function orientationCode(affine: Mat4): string {
  const letters = [["L", "R"], ["P", "A"], ["I", "S"]];
  return axisOrientation(affine).map((o) => letters[o.axis][o.sign > 0 ? 1 : 0]).join("");
}

/**
 * Shape and affine that {@linkcode orientToRas} gives a volume, without touching voxels
 * (lets a resampling read straight from the stored axes).
 */
export function rasGeometry(shape: Shape3, affine: Mat4): { shape: Shape3; affine: Mat4 } {
  const ori = axisOrientation(affine);
  const src = [0, 1, 2].map((r) => ori.findIndex((o) => o.axis === r));
  const toInput: Mat4 = [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]];
  for (let r = 0; r < 3; r++) {
    const c = src[r];
    const flip = ori[c].sign < 0;
    toInput[c][r] = flip ? -1 : 1;
    toInput[c][3] = flip ? shape[c] - 1 : 0;
  }
  return { shape: src.map((c) => shape[c]) as Shape3, affine: matmul4(affine, toInput) };
}

/**
 * Reorients a volume to RAS by permuting and flipping its axes (MONAI's
 * `Orientation(axcodes="RAS")`): no interpolation, values are copied unchanged and the
 * affine keeps every voxel at its world position.
 */
export function orientToRas<T extends VoxelArray>(volume: Volume<T>): Volume<T> {
  const ori = axisOrientation(volume.affine);
  if (ori.every((o, i) => o.axis === i && o.sign === 1)) return volume;
  const [, n1, n2] = volume.shape;
  const inStrides = [n1 * n2, n2, 1];
  // For output axis r: the input axis feeding it and whether it is flipped.
  const src = [0, 1, 2].map((r) => ori.findIndex((o) => o.axis === r));
  const shape = src.map((c) => volume.shape[c]) as Shape3;
  // index_in[c] = flip ? n_c - 1 - index_out[r] : index_out[r]
  const toInput: Mat4 = [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]];
  let base = 0;
  const step = [0, 0, 0];
  for (let r = 0; r < 3; r++) {
    const c = src[r];
    const flip = ori[c].sign < 0;
    toInput[c][r] = flip ? -1 : 1;
    toInput[c][3] = flip ? volume.shape[c] - 1 : 0;
    step[r] = flip ? -inStrides[c] : inStrides[c];
    if (flip) base += (volume.shape[c] - 1) * inStrides[c];
  }
  const input = volume.data;
  const Ctor = input.constructor as new (n: number) => T;
  const out = new Ctor(input.length);
  const [s0, s1, s2] = step;
  let o = 0;
  for (let x = 0; x < shape[0]; x++) {
    for (let y = 0; y < shape[1]; y++) {
      let i = base + x * s0 + y * s1;
      const end = o + shape[2];
      if (s2 === 1) {
        out.set(input.subarray(i, i + shape[2]) as never, o);
        o = end;
      } else {
        for (; o < end; o++, i += s2) out[o] = input[i];
      }
    }
  }
  return { data: out, shape, affine: matmul4(volume.affine, toInput) };
}
