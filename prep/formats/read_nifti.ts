// Reading NIfTI-1 and NIfTI-2 (`.nii`, `.nii.gz`) into a volume with its RAS affine.
import * as nifti from "nifti-reader-js";
import { inflateDeclared, inflatePrefix, isGzip } from "./decompress.ts";
import { checkAffine, checkDeclaredSize } from "./_checks.ts";
import type { Mat4, Shape3, Volume, VoxelArray } from "../volume.ts";
import { voxelCount } from "../volume.ts";
import { countNonFinite, decodeVoxels } from "./_voxels.ts";
import { BadInputError } from "../../cache/errors.ts";

/** What a reader returns: the image in Hounsfield units and facts about the source. */
export interface LoadedImage {
  /**
   * The image in Hounsfield units. Voxels keep their stored integer type when no rescale
   * applies (no copy); rescaled, float64 and big-endian data become float32, as MONAI
   * loads them.
   */
  volume: Volume<VoxelArray>;
  /** Name of the reader (`nifti`, …). */
  format: string;
  /** Storage type of the source voxels (`int16`, `float32`, …). */
  sourceDtype: string;
  /**
   * Shape and voxel-to-RAS affine of the source in its own axis order: what MONAI's loader
   * (nibabel, ITK, pydicom) hands MONAI's transforms, before any reorientation.
   */
  sourceGeometry: { shape: Shape3; affine: Mat4 };
  /** Things the reader passed over and the run should report (trailing data, …). */
  warnings?: string[];
}

/**
 * The voxel types read: every scalar type nibabel reads (NIfTI has no float16). 64-bit
 * integers and float128 become float32, as MONAI's loader casts them.
 */
const DTYPES: Record<number, { name: string; bytes: number }> = {
  2: { name: "uint8", bytes: 1 },
  4: { name: "int16", bytes: 2 },
  8: { name: "int32", bytes: 4 },
  16: { name: "float32", bytes: 4 },
  64: { name: "float64", bytes: 8 },
  256: { name: "int8", bytes: 1 },
  512: { name: "uint16", bytes: 2 },
  768: { name: "uint32", bytes: 4 },
  1024: { name: "int64", bytes: 8 },
  1280: { name: "uint64", bytes: 8 },
  1536: { name: "float128", bytes: 16 },
};

/** NIfTI datatypes that are not scalar numbers, named with why they are refused. */
const REFUSED_DTYPES: Record<number, string> = {
  0: "0 (none): the header declares no voxel type",
  1: "1 (binary, one bit per voxel): a mask, not CT",
  32: "32 (complex64): a complex-valued image (MR k-space or phase), not CT",
  128: "128 (RGB24): a colour image, not CT",
  255: "255 (all): not a voxel type",
  1792: "1792 (complex128): a complex-valued image, not CT",
  2048: "2048 (complex256): a complex-valued image, not CT",
  2304: "2304 (RGBA32): a colour image, not CT",
};

/**
 * Reads a NIfTI-1 or NIfTI-2 image (`.nii`, or gzip-compressed `.nii.gz`).
 *
 * The voxel-to-world affine is the one MONAI's loader (nibabel, then MONAI's header
 * check) gives: the sform when its code is 1-5, else the qform when its code is, else
 * nibabel's base affine (pixdim scaling, x flipped, centred on the volume); and the qform
 * instead of an sform whose voxel sizes disagree with pixdim (a sheared sform: a gantry
 * tilt), with a warning. Voxels are decoded in the file's byte order and scaled by
 * `scl_slope`/`scl_inter` when the slope is finite and non-zero. Bad input throws a
 * `BadInputError` that names the reason.
 *
 * NIfTI stores the first axis fastest, which is C order over the reversed axes; the
 * returned volume is that view, shape `[k, j, i]` with the affine's columns reversed to
 * match, so no voxel is moved here. `orientToRas` (or a resampling) puts the axes in RAS
 * order later, in the one pass that has to touch every voxel anyway.
 *
 * @example Read a file
 * ```ts ignore
 * const { volume } = readNifti(await Deno.readFile("ct.nii.gz"));
 * console.log(volume.shape, volume.affine);
 * ```
 */
export function readNifti(bytes: Uint8Array): LoadedImage {
  const gzip = isGzip(bytes);
  // The header first (540 bytes hold either version), so that the voxels are inflated
  // only up to what it declares: a small file cannot inflate to gigabytes.
  const head = (gzip ? inflatePrefix(bytes, "gzip", 540) : bytes.subarray(0, 540)).slice();
  if (!nifti.isNIFTI(head.buffer)) {
    throw new BadInputError("Not a NIfTI-1/NIfTI-2 file (no valid header magic)");
  }
  // Extensions are not read: clear the flag so the parser does not look past the head.
  const isV2 = nifti.isNIFTI2(head.buffer);
  if (!isV2) head.fill(0, 348, 352);
  let header: nifti.NIFTI1 | nifti.NIFTI2;
  try {
    header = nifti.readHeader(head.buffer);
  } catch (e) {
    throw new BadInputError(`Unreadable NIfTI header (${(e as Error).message})`);
  }
  const dtype = DTYPES[header.datatypeCode];
  if (!dtype) {
    const code = header.datatypeCode;
    throw new BadInputError(
      `Unsupported NIfTI datatype ${REFUSED_DTYPES[code] ?? `${code} (not a NIfTI type code)`}` +
        `; a CT volume has scalar voxels (uint8 to uint64, int8 to int64, float32, ` +
        `float64, float128)`,
    );
  }
  const shape = spatialShape(header.dims);
  const n = voxelCount(shape);
  const offset = voxOffset(Number(header.vox_offset), isV2);
  checkScaling(header);
  checkDeclaredSize("NIfTI header", shape, dtype.bytes);
  const need = n * dtype.bytes;
  let raw = bytes, trailing = bytes.length > offset + need;
  if (gzip) ({ data: raw, trailing } = inflateDeclared(bytes, "gzip", offset + need));
  if (offset + need > raw.byteLength) {
    throw new BadInputError(
      `Header promises ${need} bytes of voxels at offset ${offset} (shape ${shape.join("x")}, ` +
        `${dtype.name}) but the data holds only ${raw.byteLength} bytes`,
    );
  }
  // The voxel decoder wants an ArrayBuffer; gunzip's may run past the data (zlib's output
  // chunk), which is fine as long as sizes are checked against raw.
  const buffer = raw.byteOffset === 0 ? raw.buffer as ArrayBuffer : raw.slice().buffer;
  const data = decodeVoxels(buffer, offset, n, dtype.name, header.littleEndian, header);
  if (data instanceof Float32Array) {
    const bad = countNonFinite(data);
    if (bad > 0) throw new BadInputError(`Image holds ${bad} NaN or infinite voxels`);
  }
  const { affine, warning } = loaderAffine(header, head.buffer, shape, isV2);
  // C order over [z, y, x]: reverse the shape and the affine's first three columns.
  const reversed: Mat4 = affine.map((r) => [r[2], r[1], r[0], r[3]]);
  const warnings = [
    ...(warning ? [warning] : []),
    ...(trailing
      ? [
        `trailing data after the ${offset + need} bytes the header declares ` +
        `(${gzip ? "not inflated" : `${bytes.length - offset - need} bytes`}; ignored)`,
      ]
      : []),
  ];
  return {
    volume: { data, shape: [shape[2], shape[1], shape[0]], affine: reversed },
    format: "nifti",
    sourceDtype: dtype.name,
    sourceGeometry: { shape, affine },
    ...(warnings.length ? { warnings } : {}),
  };
}

/**
 * Checks `vox_offset` as nibabel does for a single file: finite, integral, past the
 * header (352 bytes for NIfTI-1 with its extension flag, 540 for NIfTI-2).
 */
function voxOffset(value: number, isV2: boolean): number {
  const min = isV2 ? 540 : 352;
  if (!Number.isFinite(value) || !Number.isInteger(value) || value < min) {
    throw new BadInputError(
      `NIfTI vox_offset = ${value} is invalid: the voxels of a single-file NIfTI-${
        isV2 ? 2 : 1
      } start at a whole byte offset of at least ${min}`,
    );
  }
  return value;
}

/** nibabel: a valid slope with a non-finite intercept is an error, not "no scaling". */
function checkScaling(h: { scl_slope: number; scl_inter: number }): void {
  const slopeValid = Number.isFinite(h.scl_slope) && h.scl_slope !== 0;
  if (slopeValid && !Number.isFinite(h.scl_inter)) {
    throw new BadInputError(
      `NIfTI scl_inter = ${h.scl_inter} with scl_slope = ${h.scl_slope}: a valid slope ` +
        `needs a finite intercept`,
    );
  }
}

function spatialShape(dims: number[]): Shape3 {
  const rank = dims[0];
  if (rank < 1 || rank > 7) throw new BadInputError(`Invalid NIfTI dim[0] = ${rank}`);
  const all = dims.slice(1, rank + 1);
  const bad = all.findIndex((d) => !Number.isInteger(d) || d < 1);
  if (bad >= 0) {
    throw new BadInputError(
      `Invalid NIfTI dim[${bad + 1}] = ${all[bad]} (dim[0] = ${rank}): every dimension up ` +
        `to dim[0] must be at least 1`,
    );
  }
  const extra = all.slice(3).filter((d) => d > 1);
  if (extra.length > 0) {
    throw new BadInputError(
      `Image is ${rank}-D (shape ${all.join("x")}); a 3-D CT volume is needed`,
    );
  }
  const shape = [all[0] ?? 1, all[1] ?? 1, all[2] ?? 1] as Shape3;
  if (shape.some((d) => !Number.isInteger(d) || d < 1)) {
    throw new BadInputError(`Invalid image shape ${shape.join("x")}`);
  }
  if (shape.some((d) => d < 2)) {
    throw new BadInputError(`Image is 2-D (shape ${shape.join("x")}); a 3-D CT volume is needed`);
  }
  return shape;
}

interface HeaderFields {
  sform_code: number;
  qform_code: number;
  dims: number[];
  pixDims: number[];
  quatern_b: number;
  quatern_c: number;
  quatern_d: number;
  qoffset_x: number;
  qoffset_y: number;
  qoffset_z: number;
  littleEndian: boolean;
}

/** nibabel sets a transform code outside 0-5 to 0 (unknown) when it loads a header. */
function xformCode(code: number): number {
  return Number.isInteger(code) && code >= 0 && code <= 5 ? code : 0;
}

/**
 * The affine MONAI's `NibabelReader` loads: nibabel's `get_best_affine` (the sform when
 * its code is set, else the qform when its code is set, else the base affine: pixdim
 * scaling, x flipped, centred), then MONAI's `correct_nifti_header_if_necessary`: for a
 * 3-D header whose chosen sform has column norms that disagree with pixdim[1:4]
 * (`np.allclose`), the sform is replaced by the qform, rounded to float32 as the header
 * field stores it (computed whatever the qform code). That is what happens to a sheared
 * sform (a gantry tilt converted to NIfTI with its qform unsheared): the qform is used,
 * and the returned warning says so.
 */
function loaderAffine(
  h: HeaderFields,
  buffer: ArrayBuffer,
  shape: Shape3,
  isV2: boolean,
): { affine: Mat4; warning?: string } {
  const sformCode = xformCode(h.sform_code), qformCode = xformCode(h.qform_code);
  let affine: Mat4;
  let warning: string | undefined;
  if (sformCode !== 0) {
    const view = new DataView(buffer);
    affine = [0, 1, 2].map((r) =>
      [0, 1, 2, 3].map((c) =>
        isV2
          ? view.getFloat64(400 + (r * 4 + c) * 8, h.littleEndian)
          : view.getFloat32(280 + (r * 4 + c) * 4, h.littleEndian)
      )
    );
    affine.push([0, 0, 0, 1]);
    const pix = [h.pixDims[1], h.pixDims[2], h.pixDims[3]];
    const norms = [0, 1, 2].map((c) => Math.hypot(affine[0][c], affine[1][c], affine[2][c]));
    const agree = pix.every((p, a) => Math.abs(p - norms[a]) <= 1e-8 + 1e-5 * Math.abs(norms[a]));
    if (h.dims[0] === 3 && !agree) {
      checkAffine(affine, "NIfTI sform");
      const why = `the sform's voxel sizes (${norms.map(fmt).join(", ")} mm) disagree with ` +
        `pixdim (${pix.map(fmt).join(", ")})`;
      let q: Mat4;
      try {
        q = qformAffine(h, isV2);
      } catch (e) {
        throw new BadInputError(
          `${why}, so MONAI's loader replaces the sform by the qform, and that cannot be ` +
            `built: ${(e as Error).message}`,
        );
      }
      const shear = shearDegrees(affine);
      affine = isV2 ? q : q.map((r) => r.map(Math.fround));
      warning = `${why}: the qform is used instead, as MONAI's loader does` +
        (shear > 0.01 ? ` (the sform is sheared by ${fmt(shear)} degrees: a gantry tilt?)` : "");
    }
  } else if (qformCode !== 0) {
    affine = qformAffine(h, isV2);
  } else {
    const zooms = positiveZooms(h.pixDims);
    affine = [
      [-zooms[0], 0, 0, ((shape[0] - 1) / 2) * zooms[0]],
      [0, zooms[1], 0, -((shape[1] - 1) / 2) * zooms[1]],
      [0, 0, zooms[2], -((shape[2] - 1) / 2) * zooms[2]],
      [0, 0, 0, 1],
    ];
  }
  checkAffine(affine, "NIfTI header");
  return warning ? { affine, warning } : { affine };
}

const fmt = (x: number) => Number(x.toPrecision(6)).toString();

/** The largest angle by which an affine's columns depart from orthogonal, in degrees. */
function shearDegrees(m: Mat4): number {
  const col = (c: number) => [m[0][c], m[1][c], m[2][c]];
  let worst = 0;
  for (const [i, j] of [[0, 1], [0, 2], [1, 2]]) {
    const a = col(i), b = col(j);
    const cos = (a[0] * b[0] + a[1] * b[1] + a[2] * b[2]) / (Math.hypot(...a) * Math.hypot(...b));
    worst = Math.max(worst, Math.asin(Math.min(1, Math.abs(cos))) * 180 / Math.PI);
  }
  return worst;
}

function positiveZooms(pixDims: number[]): [number, number, number] {
  const z = [pixDims[1], pixDims[2], pixDims[3]] as [number, number, number];
  if (z.some((v) => !(v > 0))) {
    throw new BadInputError(`Voxel spacing must be positive, pixdim[1:4] = ${z.join(", ")}`);
  }
  return z;
}

/**
 * nibabel's `get_qform`: the rotation of the unit quaternion (b, c, d) with
 * `a = sqrt(1 - b² - c² - d²)` (0 when that is negative by less than 3 float32 epsilons,
 * 3 float64 ones for NIfTI-2; an error beyond), times pixdim[1:4], the last negated when
 * qfac (pixdim[0]) is -1 (any value other than 1 or -1 counts as 1), plus the offsets.
 */
function qformAffine(h: HeaderFields, isV2: boolean): Mat4 {
  const [x, y, z] = [h.quatern_b, h.quatern_c, h.quatern_d];
  const w2 = 1 - (x * x + y * y + z * z);
  const threshold = -3 * (isV2 ? 2 ** -52 : 2 ** -23);
  if (w2 < threshold) {
    throw new BadInputError(
      `Invalid qform quaternion (b, c, d) = (${x}, ${y}, ${z}): b² + c² + d² exceeds 1`,
    );
  }
  const w = w2 < 0 ? 0 : Math.sqrt(w2);
  // quat2mat, normalising by the quaternion's squared norm.
  const nq = w * w + x * x + y * y + z * z;
  const s = 2 / nq;
  const [X, Y, Z] = [x * s, y * s, z * s];
  const [wX, wY, wZ, xX, xY, xZ, yY, yZ, zZ] = [
    w * X,
    w * Y,
    w * Z,
    x * X,
    x * Y,
    x * Z,
    y * Y,
    y * Z,
    z * Z,
  ];
  const r = [
    [1 - (yY + zZ), xY - wZ, xZ + wY],
    [xY + wZ, 1 - (xX + zZ), yZ - wX],
    [xZ - wY, yZ + wX, 1 - (xX + yY)],
  ];
  const zooms = positiveZooms(h.pixDims);
  if (h.pixDims[0] === -1) zooms[2] = -zooms[2];
  const offs = [h.qoffset_x, h.qoffset_y, h.qoffset_z];
  const m = r.map((row, i) => [...row.map((v, j) => v * zooms[j]), offs[i]]);
  m.push([0, 0, 0, 1]);
  return m;
}

/**
 * The geometry a NIfTI file's header declares (`shape`, `affine`, as {@linkcode readNifti}
 * returns them), read without inflating the voxels: for a `.nii.gz`, only the first 540
 * bytes are inflated. `undefined` when the header cannot be read (`readNifti` then says
 * why), so that a size check can run before a small file inflates to gigabytes.
 */
export function peekNifti(bytes: Uint8Array): { shape: Shape3; affine: Mat4 } | undefined {
  try {
    const head = (isGzip(bytes) ? inflatePrefix(bytes, "gzip", 540) : bytes.subarray(0, 540))
      .slice();
    if (!nifti.isNIFTI(head.buffer)) return undefined;
    if (!nifti.isNIFTI2(head.buffer)) head.fill(0, 348, 352);
    const header = nifti.readHeader(head.buffer);
    const shape = spatialShape(header.dims);
    const { affine } = loaderAffine(header, head.buffer, shape, nifti.isNIFTI2(head.buffer));
    return {
      shape: [shape[2], shape[1], shape[0]],
      affine: affine.map((r: number[]) => [r[2], r[1], r[0], r[3]]) as Mat4,
    };
  } catch {
    return undefined;
  }
}
