// Tests of the transforms: orientation, spacing, window, crop, pad, resize.
import { axisOrientation, orientationCode, orientToRas } from "../../../prep/transforms/orient.ts";
import { resampleToSpacing, spacingGrid } from "../../../prep/transforms/resample.ts";
import { scaleIntensityRange } from "../../../prep/transforms/window.ts";
import { cropToBox, foregroundBox } from "../../../prep/transforms/crop.ts";
import { padToMinShape } from "../../../prep/transforms/pad.ts";
import { resizeToShape } from "../../../prep/transforms/resize.ts";
import { orientedAffine } from "../../../prep/synthetic/phantom.ts";
import { applyPoint } from "../../../prep/transforms/_affine.ts";
import type { Shape3, Volume } from "../../../prep/volume.ts";
import { assert, assertClose, assertEquals, permuteAxes } from "../../_helpers.ts";

function ramp(shape: Shape3, code = "RAS", spacing = [1, 1, 1]): Volume<Float32Array> {
  const n = shape[0] * shape[1] * shape[2];
  return {
    data: new Float32Array(n).map((_, i) => i),
    shape,
    affine: orientedAffine(code, shape, spacing),
  };
}

Deno.test("orientationCode() names the axes of an affine", () => {
  assertEquals(orientationCode(orientedAffine("LPS", [2, 2, 2], [1, 1, 1])), "LPS");
  assertEquals(orientationCode(orientedAffine("SLA", [2, 2, 2], [1, 2, 3])), "SLA");
  assertEquals(axisOrientation(orientedAffine("PIR", [2, 2, 2], [1, 1, 1])), [
    { axis: 1, sign: -1 },
    { axis: 2, sign: -1 },
    { axis: 0, sign: 1 },
  ]);
});

Deno.test("orientToRas() keeps every voxel at its world position", () => {
  const v = ramp([4, 3, 5], "RAS", [1, 2, 3]);
  const lps = permuteAxes(v, [2, 0, 1], [true, false, true]);
  assert(orientationCode(lps.affine) !== "RAS");
  const back = orientToRas(lps);
  assertEquals(orientationCode(back.affine), "RAS");
  assertEquals(back.shape, v.shape);
  assertEquals(Array.from(back.data), Array.from(v.data));
  assertClose(back.affine, v.affine, 1e-12);
});

Deno.test("spacingGrid() follows n_out = round((n_in - 1) * s_in / s_out) + 1", () => {
  const g = spacingGrid([122, 101, 112], orientedAffine("RAS", [122, 101, 112], [3, 3, 3]), [
    1.5,
    1.5,
    1.5,
  ]);
  assertEquals(g.shape, [243, 201, 223]);
  const a = orientedAffine("RAS", [10, 10, 10], [0.7, 0.7, 2.5]);
  const g2 = spacingGrid([10, 10, 10], a, [1.5, 1.5, 1.5]);
  assertEquals(g2.shape, [5, 5, 16]); // round(6.3 + 1) = 7? no: round(9 * .7 / 1.5) + 1 = 5
  // The first voxel centre stays in place for an axis-aligned RAS image.
  assertClose(applyPoint(g2.affine, [0, 0, 0]), applyPoint(a, [0, 0, 0]), 1e-9);
});

Deno.test("spacingGrid() puts the origin at the corner with the smallest coordinates", () => {
  const a = orientedAffine("LPS", [10, 8, 6], [1, 1, 1]);
  const g = spacingGrid([10, 8, 6], a, [2, 2, 2]);
  // Columns keep their directions, so voxel 0 of the output is the input's (0,0,0)
  // corner mapped to the smallest output index along every axis.
  const far = applyPoint(g.affine, [g.shape[0] - 1, g.shape[1] - 1, g.shape[2] - 1]);
  const lo = applyPoint(a, [9, 7, 5]);
  assertClose(far.slice(0, 2), lo.slice(0, 2), 1.01);
});

Deno.test("resampleToSpacing() interpolates linearly and is exact on a linear ramp", () => {
  const v = ramp([5, 5, 5], "RAS", [2, 2, 2]);
  const r = resampleToSpacing(v, { spacingMm: [1, 1, 1] });
  assertEquals(r.shape, [9, 9, 9]);
  // Value at output (1,1,1) is the mean of the input's voxel (0,0,0) and (1,1,1) ramp.
  assertClose(r.data[(1 * 9 + 1) * 9 + 1], (0 + 25 + 5 + 1) / 2, 1e-5);
});

Deno.test("scaleIntensityRange() maps the window to 0..1 and clips", () => {
  const v = {
    data: new Float32Array([-1000, -175, 37.5, 250, 3000]),
    shape: [5, 1, 1] as Shape3,
    affine: orientedAffine("RAS", [5, 1, 1], [1, 1, 1]),
  };
  const w = scaleIntensityRange(v, { windowHu: [-175, 250] });
  assertClose(Array.from(w.data), [0, 0, 0.5, 1, 1], 1e-7);
});

Deno.test("foregroundBox() and cropToBox() keep world positions", () => {
  const v = ramp([6, 5, 4]);
  v.data.fill(0);
  v.data[(2 * 5 + 1) * 4 + 3] = 1;
  v.data[(4 * 5 + 3) * 4 + 1] = 1;
  const box = foregroundBox(v)!;
  assertEquals(box, { start: [2, 1, 1], end: [5, 4, 4] });
  const c = cropToBox(v, box);
  assertEquals(c.shape, [3, 3, 3]);
  assertClose(applyPoint(c.affine, [0, 0, 0]), applyPoint(v.affine, [2, 1, 1]), 1e-12);
  assert(foregroundBox({ ...v, data: new Float32Array(120) }) === undefined);
});

Deno.test("padToMinShape() pads floor(d/2) before and the rest after", () => {
  const v = ramp([3, 64, 70]);
  const p = padToMinShape(v, { minShape: [64, 64, 64] });
  assertEquals(p.shape, [64, 64, 70]);
  assertClose(applyPoint(p.affine, [30, 0, 0]), applyPoint(v.affine, [0, 0, 0]), 1e-12);
  assertEquals(p.data[(30 * 64) * 70 + 5], v.data[5]);
  assertEquals(p.data[0], 0);
});

Deno.test("resizeToShape() samples with align_corners=True and scales the affine", () => {
  const v = ramp([3, 2, 2]);
  const r = resizeToShape(v, { shape: [5, 2, 2] });
  // Along x the input ramp steps by 4 per voxel; output j samples x = j/2.
  assertClose([0, 1, 2, 3, 4].map((j) => r.data[j * 4]), [0, 2, 4, 6, 8], 1e-6);
  assertClose(r.affine[0][0], 3 / 5, 1e-12);
  assertClose(r.affine[0][3], v.affine[0][3] + (3 / 5 - 1) / 2, 1e-12);
});
