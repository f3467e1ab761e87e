// The output grid of the spacing step against MONAI's rule derived independently
// (tests/prep/_monai_rule.ts): rotated, sheared, flipped, permuted and random affines.
import {
  isSameGrid,
  resampleToGrid,
  resampleToSpacing,
  spacingGrid,
} from "../../../prep/transforms/resample.ts";
import { axisOrientation, orientToRas, rasGeometry } from "../../../prep/transforms/orient.ts";
import { applyRecipe, resolveRecipe } from "../../../prep/recipes/recipe.ts";
import type { Mat4, Shape3 } from "../../../prep/volume.ts";
import {
  affineOf,
  expectedOrientation,
  expectedRas,
  expectedSpacingGrid,
  mul3,
  polarFactor,
  randomRotation,
  rotation,
  seeded,
  toVoxel,
  toWorld,
  worldRamp,
} from "../_monai_rule.ts";
import { assert, assertClose, assertEquals } from "../../_helpers.ts";

const S15 = [1.5, 1.5, 1.5];

/** An affine `R diag(spacing)` (or `R B diag(spacing)` with a shear matrix B) plus `t`. */
function affine(r: number[][], spacing: number[], t: number[], shear: number[][] = IDENTITY): Mat4 {
  const m = mul3(mul3(r, shear), [[spacing[0], 0, 0], [0, spacing[1], 0], [0, 0, spacing[2]]]);
  return affineOf(m, t);
}
const IDENTITY = [[1, 0, 0], [0, 1, 0], [0, 0, 1]];

function checkGrid(shape: Shape3, a: Mat4, spacing = S15, label = "") {
  const want = expectedSpacingGrid(shape, a, spacing);
  const got = spacingGrid(shape, a, spacing);
  assertEquals(got.shape, want.shape, `${label} shape`);
  assertClose(got.affine, want.affine, 1e-9, `${label} affine`);
  return want;
}

Deno.test("spacingGrid() keeps a float64 rotation and voxel 0 where the input's is", () => {
  const r = mul3(rotation(0, 10), rotation(2, 25));
  const a = affine(r, [0.7, 0.8, 2.5], [-120, 33, 80]);
  const want = checkGrid([60, 50, 30], a);
  assertEquals(want.branch, "corner");
  assertClose(toWorld(want.affine, [0, 0, 0]), toWorld(a, [0, 0, 0]), 1e-9);
  // The columns keep the rotation: each output column is parallel to the input's.
  for (let c = 0; c < 3; c++) {
    const ratio = [0, 1, 2].map((row) => want.affine[row][c] / a[row][c]).filter(Number.isFinite);
    assertClose(ratio, ratio.map(() => ratio[0]), 1e-9);
  }
});

Deno.test("spacingGrid() centres the grids when a float32 header leaves the rotation a hair off orthogonal", () => {
  // The shared oblique CT's case: MONAI finds no corner smallest on all axes and centres
  // the output on the input with whole voxel counts, 0.41 mm from voxel 0 there.
  const r = mul3(rotation(0, 10), rotation(2, 25));
  const a = affine(r, [3, 3, 3], [-166.06682, -80.3377, 81.59081]).map((row) =>
    row.map(Math.fround)
  );
  const want = checkGrid([122, 101, 112], a);
  assertEquals(want.branch, "centre");
  const shift = toWorld(want.affine, [0, 0, 0]).map((v, i) => v - a[i][3]);
  assert(Math.hypot(...shift) > 0.1, `origin moved only ${Math.hypot(...shift)} mm`);
});

Deno.test("spacingGrid() drops a shear (gantry tilt) from the directions, whichever way it leans", () => {
  for (const tilt of [15, -15, 30]) {
    const shear = [[1, 0, 0], [0, 1, Math.tan(tilt * Math.PI / 180)], [0, 0, 1]];
    const a = affine(IDENTITY, [0.7, 0.7, 2.5], [-170, -150, -300], shear);
    const want = checkGrid([80, 70, 40], a, S15, `tilt ${tilt}`);
    // Orthonormal columns of 1.5 mm: the shear is gone.
    const got = spacingGrid([80, 70, 40], a, S15).affine;
    for (let i = 0; i < 3; i++) {
      for (let j = 0; j < 3; j++) {
        const d = [0, 1, 2].reduce((s, r) => s + got[r][i] * got[r][j], 0);
        assertClose(d, i === j ? 2.25 : 0, 1e-9, `tilt ${tilt} columns ${i}, ${j}`);
      }
    }
    // Leaning forward, corner 0 is the smallest; leaning back, none is and MONAI centres.
    assertEquals(want.branch, tilt > 0 ? "corner" : "centre", `tilt ${tilt}`);
  }
});

Deno.test("spacingGrid() follows the rule on flipped and permuted axes, after orientation to RAS", () => {
  const r = mul3(rotation(1, 12), rotation(2, -8));
  // Array axes stored as P, I, L with spacings 0.9, 2, 0.6 (as a sagittal series might).
  const perm = [[0, 0, -1], [-1, 0, 0], [0, -1, 0]];
  const a = affine(mul3(r, perm), [0.9, 2, 0.6], [100, 90, 120]);
  const shape: Shape3 = [40, 30, 70];
  const ori = axisOrientation(a);
  assertEquals(ori, expectedOrientation(a));
  assertEquals(ori.map((o) => "RAS"[o.axis]).join(""), "ASR");
  const ras = rasGeometry(shape, a);
  const want = expectedRas(shape, a, ori);
  assertEquals(ras.shape, want.shape);
  assertClose(ras.affine, want.affine, 1e-9);
  checkGrid(ras.shape, ras.affine);
});

Deno.test("spacingGrid() equals MONAI's rule on 300 seeded random rotated, sheared and flipped affines", () => {
  const rand = seeded(20);
  const branches = { corner: 0, centre: 0 };
  for (let n = 0; n < 300; n++) {
    const r = randomRotation(rand);
    const spacing = [0, 1, 2].map(() => 0.3 + rand() * 4.7);
    const s = rand() < 0.4 ? rand() - 0.5 : 0;
    const shear = [[1, 0, 0], [0, 1, s], [0, 0, 1]];
    const flip = [0, 1, 2].map(() => (rand() < 0.3 ? -1 : 1));
    const m = mul3(mul3(r, shear), [[flip[0], 0, 0], [0, flip[1], 0], [0, 0, flip[2]]]);
    let a = affine(m, spacing, [0, 1, 2].map(() => (rand() - 0.5) * 400));
    if (rand() < 0.5) a = a.map((row) => row.map(Math.fround)); // as a float32 header stores it
    const shape = [0, 1, 2].map(() => 2 + Math.floor(rand() * 200)) as Shape3;
    const target = rand() < 0.2 ? [spacing[0] + 5e-4, 1.5, 2] : [1.5, 1.5, 1.5];
    const ras = rasGeometry(shape, a);
    branches[checkGrid(ras.shape, ras.affine, target, `affine ${n}`).branch]++;
  }
  // Both branches of compute_shape_offset were exercised.
  assert(branches.corner > 20 && branches.centre > 20, JSON.stringify(branches));
});

Deno.test("axisOrientation() is nibabel's io_orientation on 300 seeded random sheared affines", () => {
  const rand = seeded(7);
  for (let n = 0; n < 300; n++) {
    const shear = [[1, rand() - 0.5, rand() - 0.5], [0, 1, rand() - 0.5], [0, 0, 1]];
    const flip = [[rand() < 0.5 ? -1 : 1, 0, 0], [0, 1, 0], [0, 0, rand() < 0.5 ? -1 : 1]];
    const m = mul3(mul3(randomRotation(rand), shear), flip);
    const a = affineOf(m, [0, 0, 0]);
    assertEquals(axisOrientation(a), expectedOrientation(a), `affine ${n}`);
  }
  // The test's own polar factor is orthogonal (so the comparison means something).
  const u = polarFactor([[1, 0.4, 0], [0.1, 1, 0.3], [0, 0, 2]]);
  assertClose(mul3(u, [0, 1, 2].map((i) => [0, 1, 2].map((j) => u[j][i]))), IDENTITY, 1e-12);
});

Deno.test("axisOrientation() reads through a shear as nibabel does, not by the largest cosine", () => {
  // Column 2 has the largest x cosine left after column 0 took z (0.738 against column
  // 1's 0.724), yet nibabel gives x to column 1: it takes the axes in array order from
  // the closest rotation to the sheared columns.
  const a = affineOf(
    [[0.109, -0.747, -0.779], [0.112, 0.661, -0.699], [0.988, 0.263, -0.138]],
    [0, 0, 0],
  );
  assertEquals(axisOrientation(a), [
    { axis: 2, sign: 1 },
    { axis: 0, sign: -1 },
    { axis: 1, sign: -1 },
  ]);
  assertEquals(axisOrientation(a), expectedOrientation(a));
});

Deno.test("resampleToSpacing() samples rotated and sheared inputs at the world position of each output voxel", () => {
  const g = [0.5, -0.3, 0.2];
  const cases: [string, Mat4][] = [
    ["rotated", affine(mul3(rotation(0, 20), rotation(2, 35)), [1.1, 0.9, 2.2], [5, -7, 3])],
    ["sheared", affine(IDENTITY, [1, 1, 2], [0, 0, 0], [[1, 0, 0], [0, 1, -0.4], [0, 0, 1]])],
    [
      "float32 rotated",
      affine(rotation(2, 25), [3, 3, 3], [1, 2, 3]).map((r) => r.map(Math.fround)),
    ],
  ];
  for (const [label, a] of cases) {
    const shape: Shape3 = [14, 12, 10];
    const v = worldRamp(shape, a, g);
    const r = resampleToSpacing(v, { spacingMm: [1.5, 1.5, 1.5] });
    assertEquals(r.shape, expectedSpacingGrid(shape, a, S15).shape, label);
    let checked = 0;
    for (let i = 0; i < r.shape[0]; i++) {
      for (let j = 0; j < r.shape[1]; j++) {
        for (let k = 0; k < r.shape[2]; k++) {
          const w = toWorld(r.affine, [i, j, k]);
          const p = toVoxel(a, w);
          // Only samples inside the input: outside, border padding clamps them.
          if (p.some((x, d) => x < 0 || x > shape[d] - 1)) continue;
          const want = g[0] * w[0] + g[1] * w[1] + g[2] * w[2];
          assertClose(
            r.data[(i * r.shape[1] + j) * r.shape[2] + k],
            want,
            1e-3,
            `${label} ${i},${j},${k}`,
          );
          checked++;
        }
      }
    }
    assert(checked > 200, `${label}: only ${checked} voxels inside`);
  }
});

Deno.test("resampleToSpacing() returns the input untouched when its spacing is within 1e-3 mm of the target", () => {
  // MONAI keeps an axis' own spacing within AFFINE_TOL of the target, and then finds the
  // grid unchanged: the values and the affine come back as they were.
  const a = affine(rotation(2, 5), [1.5004, 1.4996, 1.5], [10, 20, 30]);
  const v = worldRamp([6, 5, 4], a, [1, 2, 3]);
  const grid = spacingGrid(v.shape, a, S15);
  assert(isSameGrid(v.shape, a, grid));
  const r = resampleToSpacing(v, { spacingMm: [1.5, 1.5, 1.5] });
  assertEquals(Array.from(r.data), Array.from(v.data));
  assertEquals(r.affine, a);
  // A millimetre's difference is resampled.
  const b = affine(rotation(2, 5), [1.502, 1.5, 1.5], [10, 20, 30]);
  assert(!isSameGrid(v.shape, b, spacingGrid(v.shape, b, S15)));
});

Deno.test("applyRecipe() orients and resamples in one pass exactly as the two steps apart", () => {
  const rand = seeded(3);
  for (let n = 0; n < 6; n++) {
    const r = randomRotation(rand);
    const a = affine(r, [0.8, 1.1, 2], [3, -4, 5], [[1, 0, 0], [0, 1, n % 2 ? 0.2 : 0], [0, 0, 1]]);
    const v = worldRamp([11, 9, 7], a, [0.1, 0.2, -0.3]);
    const spacing: [number, number, number] = [1.5, 1.5, 1.5];
    const fused = applyRecipe(v, {
      name: "t",
      steps: [{ op: "orient", axcodes: "RAS" }, { op: "spacing", spacingMm: spacing }],
    }, { axesReversed: false }).volume;
    const apart = resampleToSpacing(orientToRas(v), { spacingMm: spacing });
    assertEquals(fused.shape, apart.shape);
    assertClose(fused.affine, apart.affine, 1e-12);
    assertClose(Array.from(fused.data), Array.from(apart.data), 1e-4);
    const grid = resampleToGrid(orientToRas(v), { shape: apart.shape, affine: apart.affine });
    assertClose(Array.from(grid.data), Array.from(apart.data), 1e-4);
  }
  // The built-in recipe runs on such an input end to end.
  assertEquals(resolveRecipe("voco-v2").steps[0].op, "orient");
});
