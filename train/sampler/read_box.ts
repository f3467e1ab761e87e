// Reading a box of a cached case that may run past the volume's edge: only the part
// inside is read (its chunks alone), the rest is zeros, as `SpatialPadd` would give.
import type { OpenCase } from "../../cache/read_case.ts";
import type { Shape3, Volume } from "../../prep/volume.ts";
import { shiftOrigin } from "../../prep/transforms/_affine.ts";

/** The box `start + size` of `c` (start may be negative), zero outside the volume. */
export async function readPaddedBox(
  c: OpenCase,
  start: Shape3,
  size: Shape3,
): Promise<Volume<Float32Array>> {
  const lo = start.map((s) => Math.max(0, s)) as Shape3;
  const hi = start.map((s, a) => Math.min(c.shape[a], s + size[a])) as Shape3;
  const affine = shiftOrigin(c.attributes.affine ?? identity(), start);
  if (lo.every((v, a) => v === start[a]) && hi.every((v, a) => v === start[a] + size[a])) {
    const crop = await c.readCrop(start, size);
    return { ...crop, affine };
  }
  const out = new Float32Array(size[0] * size[1] * size[2]);
  if (hi.every((v, a) => v > lo[a])) {
    const inner = hi.map((v, a) => v - lo[a]) as Shape3;
    const crop = await c.readCrop(lo, inner);
    const off = lo.map((v, a) => v - start[a]);
    for (let x = 0; x < inner[0]; x++) {
      for (let y = 0; y < inner[1]; y++) {
        const from = (x * inner[1] + y) * inner[2];
        const to = ((x + off[0]) * size[1] + y + off[1]) * size[2] + off[2];
        out.set(crop.data.subarray(from, from + inner[2]), to);
      }
    }
  }
  return { data: out, shape: [...size] as Shape3, affine };
}

function identity(): number[][] {
  return [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]];
}
