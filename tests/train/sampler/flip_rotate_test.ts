// Tests of the augmentation transforms: flips, quarter turns (np.rot90) and intensity shift.
import { flipAxis } from "../../../train/sampler/flip.ts";
import { rotate90 } from "../../../train/sampler/rotate90.ts";
import { shiftIntensity } from "../../../train/sampler/shift_intensity.ts";
import { applyPoint } from "../../../prep/transforms/_affine.ts";
import type { Volume } from "../../../prep/volume.ts";
import { assertClose, assertEquals } from "../../_helpers.ts";

// A 2 x 3 x 2 volume holding 0..11 in C order, spacing 1, 2, 3, origin (10, 20, 30).
const vol = (): Volume<Float32Array> => ({
  data: Float32Array.from({ length: 12 }, (_, i) => i),
  shape: [2, 3, 2],
  affine: [[1, 0, 0, 10], [0, 2, 0, 20], [0, 0, 3, 30], [0, 0, 0, 1]],
});

/** Each output voxel's world position holds the value the input had there. */
function assertWorldKept(input: Volume<Float32Array>, out: Volume<Float32Array>) {
  const [sx, sy, sz] = out.shape;
  for (let x = 0; x < sx; x++) {
    for (let y = 0; y < sy; y++) {
      for (let z = 0; z < sz; z++) {
        const w = applyPoint(out.affine, [x, y, z]);
        const i = [(w[0] - 10) / 1, (w[1] - 20) / 2, (w[2] - 30) / 3];
        const v = input.data[(i[0] * input.shape[1] + i[1]) * input.shape[2] + i[2]];
        assertEquals(out.data[(x * sy + y) * sz + z], v, `voxel ${x},${y},${z}`);
      }
    }
  }
}

Deno.test("flipAxis() reverses one axis as np.flip and keeps world positions", () => {
  // np.flip(np.arange(12).reshape(2, 3, 2), axis).ravel()
  assertEquals([...flipAxis(vol(), 0).data], [6, 7, 8, 9, 10, 11, 0, 1, 2, 3, 4, 5]);
  assertEquals([...flipAxis(vol(), 1).data], [4, 5, 2, 3, 0, 1, 10, 11, 8, 9, 6, 7]);
  assertEquals([...flipAxis(vol(), 2).data], [1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10]);
  for (const a of [0, 1, 2] as const) assertWorldKept(vol(), flipAxis(vol(), a));
});

Deno.test("rotate90() turns the x-y plane as np.rot90(x, k, axes=(0, 1))", () => {
  // np.rot90(np.arange(12).reshape(2, 3, 2), k, axes=(0, 1)).ravel(), shapes (3,2,2), (2,3,2), (3,2,2)
  const r1 = rotate90(vol(), 1);
  assertEquals(r1.shape, [3, 2, 2]);
  assertEquals([...r1.data], [4, 5, 10, 11, 2, 3, 8, 9, 0, 1, 6, 7]);
  assertEquals([...rotate90(vol(), 2).data], [10, 11, 8, 9, 6, 7, 4, 5, 2, 3, 0, 1]);
  assertEquals([...rotate90(vol(), 3).data], [6, 7, 0, 1, 8, 9, 2, 3, 10, 11, 4, 5]);
  assertEquals([...rotate90(vol(), 4).data], [...vol().data]);
  for (const k of [1, 2, 3]) assertWorldKept(vol(), rotate90(vol(), k));
});

Deno.test("shiftIntensity() adds the offset to every voxel", () => {
  assertClose([...shiftIntensity(vol(), -0.25).data], [...vol().data].map((v) => v - 0.25), 1e-6);
});
