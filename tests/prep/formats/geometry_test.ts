// Geometry through the readers, as it fails in the wild: rotated, flipped, permuted and
// sheared affines in a NIfTI sform and qform, a MetaImage TransformMatrix and DICOM
// orientation and positions, each read and prepped against MONAI's rule derived
// independently (tests/prep/_monai_rule.ts) from the affine MONAI's loader sees.
import { readNifti } from "../../../prep/formats/read_nifti.ts";
import type { LoadedImage } from "../../../prep/formats/read_nifti.ts";
import { readMetaImage } from "../../../prep/formats/read_metaimage.ts";
import { readDicomSeries } from "../../../prep/formats/dicom/read_dicom.ts";
import { writeNifti } from "../../../prep/formats/write_nifti.ts";
import { writeMetaImage } from "../../../prep/synthetic/write_metaimage.ts";
import { writeDicomSeries } from "../../../prep/synthetic/write_dicom.ts";
import { orientedAffine } from "../../../prep/synthetic/phantom.ts";
import { applyRecipe, type Recipe } from "../../../prep/recipes/recipe.ts";
import type { Mat4, Shape3 } from "../../../prep/volume.ts";
import {
  affineOf,
  expectedOrientation,
  expectedRas,
  expectedSpacingGrid,
  mul3,
  randomRotation,
  rotation,
  seeded,
  toVoxel,
  toWorld,
  worldRamp,
} from "../_monai_rule.ts";
import { assert, assertClose, assertEquals } from "../../_helpers.ts";

const RECIPE: Recipe = {
  name: "geometry",
  steps: [{ op: "orient", axcodes: "RAS" }, { op: "spacing", spacingMm: [1.5, 1.5, 1.5] }],
};
const GRADIENT = [2, -1.5, 1]; // HU per mm: the test volumes are world-linear ramps

/** `r @ a` on the 3 x 3 part, the translation kept. */
function turned(r: number[][], a: Mat4, shift = [0, 0, 0]): Mat4 {
  const m = mul3(r, a.slice(0, 3).map((row) => row.slice(0, 3)));
  return affineOf(m, [0, 1, 2].map((i) => a[i][3] + shift[i]));
}

/**
 * Preps a read image and checks it against the rule applied to the affine MONAI's loader
 * gives (`sourceGeometry`, in the file's own axis order, as nibabel, ITK and pydicom
 * hand it to MONAI): shape, affine, and the value at every output voxel whose world
 * position lies inside the input (the ramp at that position, within `tolHu`).
 */
function checkPrep(img: LoadedImage, label: string, tolHu: number): void {
  const { shape, affine } = img.sourceGeometry;
  const ras = expectedRas(shape, affine, expectedOrientation(affine));
  const want = expectedSpacingGrid(ras.shape, ras.affine, [1.5, 1.5, 1.5]);
  const got = applyRecipe(img.volume, RECIPE).volume;
  assertEquals(got.shape, want.shape, `${label} shape`);
  assertClose(got.affine, want.affine, 1e-9, `${label} affine`);
  let inside = 0;
  for (let i = 0; i < got.shape[0]; i++) {
    for (let j = 0; j < got.shape[1]; j++) {
      for (let k = 0; k < got.shape[2]; k++) {
        const w = toWorld(got.affine, [i, j, k]);
        const p = toVoxel(affine, w);
        if (p.some((x, d) => x < 0 || x > shape[d] - 1)) continue;
        const v = got.data[(i * got.shape[1] + j) * got.shape[2] + k];
        const ramp = GRADIENT[0] * w[0] + GRADIENT[1] * w[1] + GRADIENT[2] * w[2];
        assertClose(v, ramp, tolHu, `${label} value at ${i},${j},${k}`);
        inside++;
      }
    }
  }
  assert(inside > 20, `${label}: only ${inside} output voxels inside the input`);
}

const SHAPE: Shape3 = [14, 11, 9];
const CODES = ["RAS", "LPS", "PIR", "SLA", "ILP"];
const TURNS = [
  mul3(rotation(0, 10), rotation(2, 25)),
  rotation(1, -40),
  mul3(rotation(2, 44), rotation(0, 5)),
];

Deno.test("a rotated, flipped or permuted NIfTI affine, in the sform or the qform, preps as MONAI's rule says", () => {
  for (const code of CODES) {
    for (const [t, turn] of TURNS.entries()) {
      const a = turned(turn, orientedAffine(code, SHAPE, [1.2, 0.9, 2.1]), [4, -3, 7]);
      const v = worldRamp(SHAPE, a, GRADIENT);
      for (const transform of ["sform", "qform"] as const) {
        const label = `${code} turn ${t} ${transform}`;
        const img = readNifti(writeNifti(v, { dtype: "float32", transform }));
        assertClose(img.sourceGeometry.affine, a, 1e-4, `${label} affine read`);
        assertEquals(img.warnings, undefined, label);
        checkPrep(img, label, 0.01);
      }
    }
  }
});

Deno.test("40 seeded random NIfTI affines (any rotation, flips, spacing; sform and qform) prep as MONAI's rule says", () => {
  const rand = seeded(42);
  for (let n = 0; n < 40; n++) {
    const flip = [0, 1, 2].map(() => (rand() < 0.5 ? -1 : 1));
    const spacing = [0, 1, 2].map(() => 0.6 + rand() * 2.4);
    const m = mul3(
      randomRotation(rand),
      [0, 1, 2].map((r) => [0, 1, 2].map((c) => r === c ? flip[c] * spacing[c] : 0)),
    );
    const a = affineOf(m, [0, 1, 2].map(() => (rand() - 0.5) * 100));
    const shape = [0, 1, 2].map(() => 8 + Math.floor(rand() * 10)) as Shape3;
    const transform = n % 2 ? "qform" as const : "sform" as const;
    const img = readNifti(
      writeNifti(worldRamp(shape, a, GRADIENT), { dtype: "float32", transform }),
    );
    assertClose(img.sourceGeometry.affine, a, 1e-4, `affine ${n} read`);
    checkPrep(img, `random ${n} ${transform}`, 0.01);
  }
});

Deno.test("a gantry-tilted NIfTI: a sheared sform with an unsheared qform is read as MONAI's loader does, with a warning", () => {
  const tilt = Math.tan(15 * Math.PI / 180);
  const plain = orientedAffine("RAS", SHAPE, [1, 1, 2]);
  const sheared = plain.map((r) => r.slice());
  sheared[1][2] = 2 * tilt; // each slice 2 mm up also moves 2 tan(15°) mm forward
  const v = worldRamp(SHAPE, plain, GRADIENT);
  // pixdim agrees with the qform: MONAI replaces the sform by the qform.
  const both = readNifti(writeNifti({ ...v, affine: sheared }, {
    dtype: "float32",
    transform: "both",
    qformAffine: plain,
  }));
  assertClose(both.sourceGeometry.affine, plain, 1e-5);
  assert(
    /sform's voxel sizes \(1, 1, 2\.07\d* mm\) disagree with pixdim \(1, 1, 2\): the qform is used instead.*sheared by 15 degrees/
      .test(`${both.warnings}`),
    `${both.warnings}`,
  );
  checkPrep(both, "tilt, qform used", 0.01);
  // pixdim agrees with the sheared sform: MONAI keeps it, and Spacing drops the shear.
  const vs = worldRamp(SHAPE, sheared, GRADIENT);
  const kept = readNifti(writeNifti(vs, {
    dtype: "float32",
    transform: "both",
    qformAffine: plain,
    pixdimMm: [1, 1, Math.hypot(2, 2 * tilt)],
  }));
  assertClose(kept.sourceGeometry.affine, sheared, 1e-5);
  assertEquals(kept.warnings, undefined);
  checkPrep(kept, "tilt, sform kept", 0.01);
  const out = applyRecipe(kept.volume, RECIPE).volume.affine;
  assertClose(
    out.slice(0, 3).map((r) => r.slice(0, 3)),
    [[1.5, 0, 0], [0, 1.5, 0], [0, 0, 1.5]],
    1e-9,
  );
});

Deno.test("NIfTI transform codes outside 0-5 count as 0, as nibabel fixes them on load", () => {
  const a = orientedAffine("LPS", SHAPE, [1, 1, 2]);
  const q = turned(rotation(2, 30), a);
  const bytes = writeNifti(worldRamp(SHAPE, a, GRADIENT), {
    dtype: "float32",
    transform: "both",
    qformAffine: q,
    gzip: false,
  });
  new DataView(bytes.buffer).setInt16(254, 7, true); // sform_code 7: invalid
  assertClose(readNifti(bytes).sourceGeometry.affine, q, 1e-5);
  new DataView(bytes.buffer).setInt16(254, 3, true); // talairach: valid, the sform wins
  assertClose(readNifti(bytes).sourceGeometry.affine, a, 1e-5);
});

Deno.test("a MetaImage TransformMatrix, rotated, flipped, permuted or sheared, preps as MONAI's rule says", () => {
  const rand = seeded(9);
  const affines: [string, Mat4][] = [];
  for (const code of CODES) {
    for (const [t, turn] of TURNS.entries()) {
      affines.push([
        `${code} turn ${t}`,
        turned(turn, orientedAffine(code, SHAPE, [0.8, 1.3, 2]), [1, 2, 3]),
      ]);
    }
  }
  for (let n = 0; n < 20; n++) {
    const s = [0, 1, 2].map(() => 0.5 + rand() * 2);
    const shear = [[1, rand() - 0.5, rand() - 0.5], [0, 1, rand() - 0.5], [0, 0, 1]];
    const m = mul3(mul3(randomRotation(rand), shear), [[s[0], 0, 0], [0, s[1], 0], [0, 0, s[2]]]);
    affines.push([`random sheared ${n}`, affineOf(m, [rand() * 50, -rand() * 50, rand() * 20])]);
  }
  for (const [label, a] of affines) {
    for (const external of [false, true]) {
      const w = writeMetaImage(worldRamp(SHAPE, a, GRADIENT), {
        dtype: "float32",
        ...(external ? { dataFile: "x.raw" } : {}),
      });
      const img = readMetaImage(w.header, w.data);
      assertClose(img.sourceGeometry.affine, a, 1e-9, `${label} affine read`);
      checkPrep(img, `${label}${external ? " external" : ""}`, 0.01);
    }
  }
});

Deno.test("DICOM series with oblique orientation and with gantry tilt prep as MONAI's PydicomReader + Spacing would", async () => {
  // Array axes as the writer takes them: column, row, slice (MONAI's order after swap_ij).
  const shape: Shape3 = [12, 10, 8];
  const cases: [string, Mat4, number][] = [];
  for (const code of ["LPS", "RAS", "LAI"]) {
    for (const [t, turn] of TURNS.entries()) {
      cases.push([
        `${code} turn ${t}`,
        turned(turn, orientedAffine(code, shape, [0.9, 0.8, 2.5])),
        0,
      ]);
    }
  }
  for (const deg of [15, -22, 30]) {
    // The slice column leans along the rows' direction: positions off the normal.
    const a = turned(rotation(2, 10), orientedAffine("LPS", shape, [0.9, 0.8, 2.5]));
    const lean = Math.tan(deg * Math.PI / 180) * 2.5 / 0.8;
    for (let r = 0; r < 3; r++) a[r][2] += lean * a[r][1];
    cases.push([`tilt ${deg}`, a, Math.abs(deg)]);
  }
  for (const [label, a, tilt] of cases) {
    const files = await writeDicomSeries(worldRamp(shape, a, GRADIENT));
    const img = await readDicomSeries(files.map((f) => f.bytes));
    assertClose(img.sourceGeometry.affine, a, 1e-4, `${label} affine read`);
    if (tilt) {
      assert(
        new RegExp(`gantry tilt of ${tilt} degrees`).test(`${img.warnings}`),
        `${label}: ${img.warnings}`,
      );
    } else assertEquals(img.warnings, undefined, label);
    // Pixels are whole HU: the ramp is met to within the rounding of the stored values.
    checkPrep(img, label, 0.51);
  }
});

Deno.test("a DICOM slice off the line through the first and last is refused by name, never placed wrongly", async () => {
  const shape: Shape3 = [12, 10, 8];
  const a = orientedAffine("LPS", shape, [0.9, 0.8, 2.5]);
  const files = await writeDicomSeries(worldRamp(shape, a, GRADIENT));
  // Move slice 4 sideways by 2 mm or so: its ImagePositionPatient no longer on the line
  // (a shorter value padded with spaces, as DS allows, so the element keeps its length).
  const text = new TextDecoder("latin1").decode(files[3].bytes);
  const m = text.match(/(-?[\d.]+)\\(-?[\d.]+)\\(-?[\d.]+)/)!;
  const moved = `${Math.round(Number(m[1])) + 2}\\${m[2]}\\${m[3]}`.padEnd(m[0].length, " ");
  assertEquals(moved.length, m[0].length);
  const bytes = files[3].bytes.slice();
  bytes.set(new TextEncoder().encode(moved), text.indexOf(m[0]));
  const paths = files.map((f) => f.name);
  let message = "";
  try {
    await readDicomSeries(files.map((f, i) => (i === 3 ? bytes : f.bytes)), { paths });
  } catch (e) {
    message = (e as Error).message;
  }
  assert(
    /Slice positions do not lie on one line: IM0004\.dcm is [\d.]+ mm off the line/.test(message),
    message,
  );
});
