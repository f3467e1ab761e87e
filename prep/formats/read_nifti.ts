// Reading NIfTI-1 and NIfTI-2 (`.nii`, `.nii.gz`) into a volume with its RAS affine.
import * as nifti from "nifti-reader-js";
import { inflateDeclared, inflatePrefix, isGzip } from "./decompress.ts";
import { checkAffine, checkDeclaredSize } from "./_checks.ts";
import type { Mat4, Shape3, Volume, VoxelArray } from "../volume.ts";
import { voxelCount } from "../volume.ts";
import { countNonFinite, decodeVoxels } from "./_voxels.ts";

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
  /** Shape and voxel-to-RAS affine of the source in its own axis order (as nibabel reports). */
  sourceGeometry: { shape: Shape3; affine: Mat4 };
  /** Things the reader passed over and the run should report (trailing data, …). */
  warnings?: string[];
}

const DTYPES: Record<number, { name: string; bytes: number }> = {
  2: { name: "uint8", bytes: 1 },
  4: { name: "int16", bytes: 2 },
  8: { name: "int32", bytes: 4 },
  16: { name: "float32", bytes: 4 },
  64: { name: "float64", bytes: 8 },
  256: { name: "int8", bytes: 1 },
  512: { name: "uint16", bytes: 2 },
  768: { name: "uint32", bytes: 4 },
};

/**
 * Reads a NIfTI-1 or NIfTI-2 image (`.nii`, or gzip-compressed `.nii.gz`).
 *
 * The voxel-to-world affine is chosen as nibabel (and so MONAI) does: the sform when
 * `sform_code > 0`, else the qform when `qform_code > 0`, else nibabel's base affine
 * (pixdim scaling, x flipped, centred on the volume). Voxels are decoded in the file's
 * byte order and scaled by `scl_slope`/`scl_inter` when the slope is finite and
 * non-zero. Bad input throws a `SyntaxError`/`RangeError` that names the reason.
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
    throw new SyntaxError("Not a NIfTI-1/NIfTI-2 file (no valid header magic)");
  }
  // Extensions are not read: clear the flag so the parser does not look past the head.
  const isV2 = nifti.isNIFTI2(head.buffer);
  if (!isV2) head.fill(0, 348, 352);
  let header: nifti.NIFTI1 | nifti.NIFTI2;
  try {
    header = nifti.readHeader(head.buffer);
  } catch (e) {
    throw new SyntaxError(`Unreadable NIfTI header (${(e as Error).message})`);
  }
  const dtype = DTYPES[header.datatypeCode];
  if (!dtype) {
    throw new TypeError(`Unsupported NIfTI datatype code ${header.datatypeCode}`);
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
    throw new RangeError(
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
    if (bad > 0) throw new RangeError(`Image holds ${bad} NaN or infinite voxels`);
  }
  const affine = bestAffine(header, head.buffer, shape);
  // C order over [z, y, x]: reverse the shape and the affine's first three columns.
  const reversed: Mat4 = affine.map((r) => [r[2], r[1], r[0], r[3]]);
  const warnings = trailing
    ? [
      `trailing data after the ${offset + need} bytes the header declares ` +
      `(${gzip ? "not inflated" : `${bytes.length - offset - need} bytes`}; ignored)`,
    ]
    : undefined;
  return {
    volume: { data, shape: [shape[2], shape[1], shape[0]], affine: reversed },
    format: "nifti",
    sourceDtype: dtype.name,
    sourceGeometry: { shape, affine },
    ...(warnings ? { warnings } : {}),
  };
}

/**
 * Checks `vox_offset` as nibabel does for a single file: finite, integral, past the
 * header (352 bytes for NIfTI-1 with its extension flag, 540 for NIfTI-2).
 */
function voxOffset(value: number, isV2: boolean): number {
  const min = isV2 ? 540 : 352;
  if (!Number.isFinite(value) || !Number.isInteger(value) || value < min) {
    throw new RangeError(
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
    throw new RangeError(
      `NIfTI scl_inter = ${h.scl_inter} with scl_slope = ${h.scl_slope}: a valid slope ` +
        `needs a finite intercept`,
    );
  }
}

function spatialShape(dims: number[]): Shape3 {
  const rank = dims[0];
  if (rank < 1 || rank > 7) throw new RangeError(`Invalid NIfTI dim[0] = ${rank}`);
  const all = dims.slice(1, rank + 1);
  const bad = all.findIndex((d) => !Number.isInteger(d) || d < 1);
  if (bad >= 0) {
    throw new RangeError(
      `Invalid NIfTI dim[${bad + 1}] = ${all[bad]} (dim[0] = ${rank}): every dimension up ` +
        `to dim[0] must be at least 1`,
    );
  }
  const extra = all.slice(3).filter((d) => d > 1);
  if (extra.length > 0) {
    throw new RangeError(`Image is ${rank}-D (shape ${all.join("x")}); a 3-D CT volume is needed`);
  }
  const shape = [all[0] ?? 1, all[1] ?? 1, all[2] ?? 1] as Shape3;
  if (shape.some((d) => !Number.isInteger(d) || d < 1)) {
    throw new RangeError(`Invalid image shape ${shape.join("x")}`);
  }
  if (shape.some((d) => d < 2)) {
    throw new RangeError(`Image is 2-D (shape ${shape.join("x")}); a 3-D CT volume is needed`);
  }
  return shape;
}

interface HeaderFields {
  sform_code: number;
  qform_code: number;
  pixDims: number[];
  quatern_b: number;
  quatern_c: number;
  quatern_d: number;
  qoffset_x: number;
  qoffset_y: number;
  qoffset_z: number;
  littleEndian: boolean;
}

/** nibabel's `get_best_affine`, reading the srow fields from the raw header bytes. */
function bestAffine(h: HeaderFields, buffer: ArrayBuffer, shape: Shape3): Mat4 {
  let affine: Mat4;
  if (h.sform_code > 0) {
    const isV2 = h instanceof nifti.NIFTI2;
    const view = new DataView(buffer);
    affine = [0, 1, 2].map((r) =>
      [0, 1, 2, 3].map((c) =>
        isV2
          ? view.getFloat64(400 + (r * 4 + c) * 8, h.littleEndian)
          : view.getFloat32(280 + (r * 4 + c) * 4, h.littleEndian)
      )
    );
    affine.push([0, 0, 0, 1]);
  } else if (h.qform_code > 0) {
    affine = qformAffine(h);
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
  return affine;
}

function positiveZooms(pixDims: number[]): [number, number, number] {
  const z = [pixDims[1], pixDims[2], pixDims[3]] as [number, number, number];
  if (z.some((v) => !(v > 0))) {
    throw new RangeError(`Voxel spacing must be positive, pixdim[1:4] = ${z.join(", ")}`);
  }
  return z;
}

function qformAffine(h: HeaderFields): Mat4 {
  const [b, c, d] = [h.quatern_b, h.quatern_c, h.quatern_d];
  let w2 = 1 - (b * b + c * c + d * d);
  if (w2 < 0 && w2 > -1e-6) w2 = 0;
  if (w2 < 0) throw new RangeError("Invalid qform quaternion");
  const a = Math.sqrt(w2);
  const r = [
    [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
    [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
    [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - b * b - c * c],
  ];
  const zooms = positiveZooms(h.pixDims);
  const qfac = h.pixDims[0] < 0 ? -1 : 1;
  zooms[2] *= qfac;
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
    const affine = bestAffine(header, head.buffer, shape);
    return {
      shape: [shape[2], shape[1], shape[0]],
      affine: affine.map((r) => [r[2], r[1], r[0], r[3]]),
    };
  } catch {
    return undefined;
  }
}
