// Reorientation to RAS by axis permutation and flips (MONAI `Orientation("RAS")`).
import type { Mat4, Shape3, Volume, VoxelArray } from "../volume.ts";
import { matmul4, polarRotation3 } from "./_affine.ts";

/** Which array axis chooses its world axis first, second and third. */
export type PickOrder = readonly [number, number, number];

/**
 * The pick order of nibabel on a volume whose axes are its source file's in reverse (as
 * every reader here hands them over: a C-order view of a file stored first axis
 * fastest, so array axis 2 is the file's first axis).
 */
export const SOURCE_FILE_ORDER: PickOrder = [2, 1, 0];

/**
 * For each array axis, the world axis (0 = x, 1 = y, 2 = z) it runs along most closely
 * and the direction (+1 towards R/A/S, -1 towards L/P/I), as nibabel's `io_orientation`
 * (which MONAI's `Orientation` calls) decides it: the columns scaled to unit length, the
 * closest rotation to them (polar decomposition, so a shear does not sway the choice),
 * then the array axes one by one in `pickOrder` (nibabel: the array's own order), each
 * taking the world axis of its largest remaining component (the first on a tie), that
 * world axis then out of the running. The order matters only near a tie (a volume
 * turned about 45 degrees).
 */
export function axisOrientation(
  affine: Mat4,
  pickOrder: PickOrder = [0, 1, 2],
): { axis: number; sign: 1 | -1 }[] {
  const norms = [0, 1, 2].map((c) => Math.hypot(affine[0][c], affine[1][c], affine[2][c]) || 1);
  const rs = [0, 1, 2].map((r) => [0, 1, 2].map((c) => affine[r][c] / norms[c]));
  const rot = polarRotation3(rs);
  const out: { axis: number; sign: 1 | -1 }[] = [];
  for (const i of pickOrder) {
    let best = -1, bw = 0;
    for (let w = 0; w < 3; w++) {
      if (Math.abs(rot[w][i]) > best) [best, bw] = [Math.abs(rot[w][i]), w];
    }
    if (!(best > 0)) throw new RangeError("Affine has no orientation (singular columns)");
    out[i] = { axis: bw, sign: rot[bw][i] < 0 ? -1 : 1 };
    rot[bw] = [0, 0, 0];
  }
  return out;
}

/** Orientation code of an affine, e.g. `"RAS"` or `"LPS"`. */
export function orientationCode(affine: Mat4): string {
  const letters = [["L", "R"], ["P", "A"], ["I", "S"]];
  return axisOrientation(affine).map((o) => letters[o.axis][o.sign > 0 ? 1 : 0]).join("");
}

/** For each RAS output axis: the stored axis feeding it and whether it is reversed. */
function rasMapping(shape: Shape3, affine: Mat4, pickOrder?: PickOrder) {
  const ori = axisOrientation(affine, pickOrder);
  const src = [0, 1, 2].map((r) => ori.findIndex((o) => o.axis === r));
  const flip = src.map((c) => ori[c].sign < 0);
  // index_in[c] = flip ? n_c - 1 - index_out[r] : index_out[r]
  const toInput: Mat4 = [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]];
  src.forEach((c, r) => {
    toInput[c][r] = flip[r] ? -1 : 1;
    toInput[c][3] = flip[r] ? shape[c] - 1 : 0;
  });
  return {
    src,
    flip,
    shape: src.map((c) => shape[c]) as Shape3,
    affine: matmul4(affine, toInput),
  };
}

/**
 * Shape and affine that {@linkcode orientToRas} gives a volume, without touching voxels
 * (lets a resampling read straight from the stored axes).
 */
export function rasGeometry(
  shape: Shape3,
  affine: Mat4,
  pickOrder?: PickOrder,
): { shape: Shape3; affine: Mat4 } {
  const m = rasMapping(shape, affine, pickOrder);
  return { shape: m.shape, affine: m.affine };
}

/**
 * Reorients a volume to RAS by permuting and flipping its axes (MONAI's
 * `Orientation(axcodes="RAS")`): no interpolation, values are copied unchanged and the
 * affine keeps every voxel at its world position. `pickOrder` as in
 * {@linkcode axisOrientation} (a reader's volume: {@linkcode SOURCE_FILE_ORDER}).
 */
export function orientToRas<T extends VoxelArray>(
  volume: Volume<T>,
  pickOrder?: PickOrder,
): Volume<T> {
  const { src, flip, shape, affine } = rasMapping(volume.shape, volume.affine, pickOrder);
  if (src.every((c, r) => c === r && !flip[r])) return volume;
  const [, n1, n2] = volume.shape;
  const inStrides = [n1 * n2, n2, 1];
  let base = 0;
  const step = src.map((c, r) => {
    if (flip[r]) base += (volume.shape[c] - 1) * inStrides[c];
    return flip[r] ? -inStrides[c] : inStrides[c];
  });
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
  return { data: out, shape, affine };
}
