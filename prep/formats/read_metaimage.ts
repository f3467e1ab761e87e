// Reading MetaImage (`.mha`, `.mhd` + data file) headers and voxels.
import { inflateDeclared } from "./decompress.ts";
import { checkAffine, checkDeclaredSize } from "./_checks.ts";
import { countNonFinite, decodeVoxels } from "./_voxels.ts";
import type { LoadedImage } from "./read_nifti.ts";
import type { Mat4, Shape3 } from "../volume.ts";
import { voxelCount } from "../volume.ts";
import { BadInputError } from "../../cache/errors.ts";

// MetaImage (ITK's .mhd/.mha) is a short text header of `Key = Value` lines. No npm package
// reads it without a browser or ITK-wasm (tens of MB); the format is small enough to parse.

const ELEMENT_TYPES: Record<string, { name: string; bytes: number }> = {
  MET_CHAR: { name: "int8", bytes: 1 },
  MET_UCHAR: { name: "uint8", bytes: 1 },
  MET_SHORT: { name: "int16", bytes: 2 },
  MET_USHORT: { name: "uint16", bytes: 2 },
  MET_INT: { name: "int32", bytes: 4 },
  MET_UINT: { name: "uint32", bytes: 4 },
  MET_LONG: { name: "int32", bytes: 4 },
  MET_ULONG: { name: "uint32", bytes: 4 },
  MET_LONG_LONG: { name: "int64", bytes: 8 },
  MET_ULONG_LONG: { name: "uint64", bytes: 8 },
  MET_FLOAT: { name: "float32", bytes: 4 },
  MET_DOUBLE: { name: "float64", bytes: 8 },
};

/** A parsed MetaImage header: its fields (keys as written) and where the header ends. */
export interface MetaImageHeader {
  /** The `Key = Value` fields, keys as written. */
  fields: Map<string, string>;
  /** Byte offset just after the `ElementDataFile` line (where LOCAL data starts). */
  dataOffset: number;
}

/**
 * Parses the text header of a `.mhd`/`.mha` file, up to and including the
 * `ElementDataFile` line (which MetaImage requires to be last). Throws a `BadInputError`
 * when the bytes are not a MetaImage header.
 */
export function parseMetaImageHeader(bytes: Uint8Array): MetaImageHeader {
  const fields = new Map<string, string>();
  let pos = 0;
  const limit = Math.min(bytes.length, 1 << 20);
  while (pos < limit) {
    let end = bytes.indexOf(0x0a, pos);
    if (end < 0 || end > limit) end = limit;
    const line = new TextDecoder("latin1").decode(bytes.subarray(pos, end)).trim();
    pos = end + 1;
    if (line === "") continue;
    const eq = line.indexOf("=");
    if (eq < 0) throw new BadInputError(`Not a MetaImage header: line "${line.slice(0, 40)}"`);
    const key = line.slice(0, eq).trim();
    fields.set(key, line.slice(eq + 1).trim());
    if (key === "ElementDataFile") return { fields, dataOffset: Math.min(pos, bytes.length) };
  }
  throw new BadInputError("Not a MetaImage header: no ElementDataFile line");
}

/** The data file a `.mhd` header names (relative to the header), or `undefined` for LOCAL. */
export function metaImageDataFile(header: MetaImageHeader): string | undefined {
  const name = header.fields.get("ElementDataFile")!;
  if (name.toUpperCase() === "LOCAL") return undefined;
  if (/^LIST\b/i.test(name) || name.includes("%")) {
    throw new BadInputError(`ElementDataFile "${name}" (one file per slice) is not supported`);
  }
  return name;
}

function get(h: MetaImageHeader, ...keys: string[]): string | undefined {
  for (const k of keys) {
    for (const [key, value] of h.fields) if (key.toLowerCase() === k.toLowerCase()) return value;
  }
  return undefined;
}

function nums(h: MetaImageHeader, n: number, ...keys: string[]): number[] | undefined {
  const text = get(h, ...keys);
  if (text === undefined) return undefined;
  const v = text.split(/\s+/).map(Number);
  if (v.length !== n || v.some((x) => !Number.isFinite(x))) {
    throw new BadInputError(`MetaImage ${keys[0]} = "${text}" is not ${n} numbers`);
  }
  return v;
}

/** A MetaImage boolean field: absent is false; `True`/`False` (or 1/0), else an error. */
function flag(h: MetaImageHeader, ...keys: string[]): boolean {
  const text = get(h, ...keys);
  if (text === undefined) return false;
  if (/^(true|1)$/i.test(text)) return true;
  if (/^(false|0)$/i.test(text)) return false;
  throw new BadInputError(`MetaImage ${keys[0]} = "${text}" is not True or False`);
}

/**
 * Reads a MetaImage: a header with its data after it (`ElementDataFile = LOCAL`, a
 * `.mha`: pass its bytes alone) or a header that names a data file (a `.mhd`, or a `.mha`
 * as ITK may write it: pass both, header first). Handles every scalar element type
 * (64-bit ones become float32, as MONAI's loader casts them), `CompressedData` (zlib),
 * `BinaryDataByteOrderMSB`, `HeaderSize` (including -1: the data are the last bytes of
 * the file), and the geometry as ITK reads it (`Offset`/`Origin`/`Position`,
 * `ElementSpacing`, negative meaning a flipped axis, `TransformMatrix`/`Orientation`/
 * `Rotation`, whose consecutive triples are the axes' direction cosines, kept as written:
 * a sheared or rotated matrix gives a sheared or rotated affine). MetaImage geometry is
 * LPS, as in ITK; the returned affine is RAS. The volume is C order over [z, y, x] (the
 * file's x-fastest order), like the NIfTI reader's.
 */
export function readMetaImage(headerBytes: Uint8Array, dataBytes?: Uint8Array): LoadedImage {
  const h = parseMetaImageHeader(headerBytes);
  const objectType = get(h, "ObjectType");
  if (objectType && objectType.toLowerCase() !== "image") {
    throw new BadInputError(`MetaImage ObjectType is ${objectType}, not Image`);
  }
  const nDims = Number(get(h, "NDims"));
  if (nDims !== 3) {
    throw new BadInputError(`MetaImage has NDims = ${get(h, "NDims")}; a 3-D CT volume is needed`);
  }
  const channels = Number(get(h, "ElementNumberOfChannels") ?? 1);
  if (channels !== 1) {
    throw new BadInputError(`MetaImage has ${channels} channels per voxel; CT has 1`);
  }
  const shape = nums(h, 3, "DimSize") as Shape3 | undefined;
  if (!shape || shape.some((d) => !Number.isInteger(d) || d < 1)) {
    throw new BadInputError(`MetaImage DimSize is missing or invalid (${get(h, "DimSize")})`);
  }
  if (shape.some((d) => d < 2)) {
    throw new BadInputError(`Image is 2-D (shape ${shape.join("x")}); a 3-D CT volume is needed`);
  }
  const typeName = get(h, "ElementType") ?? "";
  const dtype = ELEMENT_TYPES[typeName.toUpperCase()];
  if (!dtype) throw new BadInputError(`Unsupported MetaImage ElementType "${typeName}"`);
  // ITK takes a negative spacing as a flipped axis (direction negated): the same affine.
  const spacing = nums(h, 3, "ElementSpacing", "ElementSize") ?? [1, 1, 1];
  if (spacing.some((s) => s === 0)) {
    throw new BadInputError(`MetaImage ElementSpacing ${spacing.join(" ")} has a zero`);
  }
  const origin = nums(h, 3, "Offset", "Origin", "Position") ?? [0, 0, 0];
  const direction = nums(h, 9, "TransformMatrix", "Orientation", "Rotation") ??
    [1, 0, 0, 0, 1, 0, 0, 0, 1];
  const msb = flag(h, "BinaryDataByteOrderMSB", "ElementByteOrderMSB");
  const compressed = flag(h, "CompressedData");
  const headerSizeText = get(h, "HeaderSize") ?? "0";
  const headerSize = Number(headerSizeText);
  if (!Number.isInteger(headerSize) || headerSize < -1 || headerSizeText.trim() === "") {
    throw new BadInputError(
      `MetaImage HeaderSize = "${headerSizeText}" is not a byte count (0 or more, or -1)`,
    );
  }
  checkDeclaredSize("MetaImage header", shape, dtype.bytes);

  const dataFile = metaImageDataFile(h);
  let data = dataFile === undefined ? headerBytes.subarray(h.dataOffset) : dataBytes;
  if (!data) {
    throw new BadInputError(
      `The header's ElementDataFile names "${dataFile}": its bytes are needed with the header`,
    );
  }
  const n = voxelCount(shape);
  const need = n * dtype.bytes;
  const voxelData = voxelBytes(data, { compressed, headerSize, need });
  const trailing = voxelData.trailing;
  data = voxelData.data;
  if (data.length < need) {
    throw new BadInputError(
      `Header promises ${need} bytes of voxels (shape ${shape.join("x")}, ${dtype.name}) ` +
        `but the data holds only ${data.length} bytes`,
    );
  }
  const owned = data.byteOffset % dtype.bytes === 0 ? data : data.slice(0, need);
  const voxels = decodeVoxels(
    owned.buffer as ArrayBuffer,
    owned.byteOffset,
    n,
    dtype.name,
    !msb,
    { scl_slope: 1, scl_inter: 0 },
  );
  if (voxels instanceof Float32Array) {
    const bad = countNonFinite(voxels);
    if (bad > 0) throw new BadInputError(`Image holds ${bad} NaN or infinite voxels`);
  }
  // world(LPS) = origin + sum_a direction[a] * spacing[a] * index[a]; RAS flips x and y.
  const sign = [-1, -1, 1];
  const affine: Mat4 = [0, 1, 2].map((r) => [
    sign[r] * direction[0 + r] * spacing[0],
    sign[r] * direction[3 + r] * spacing[1],
    sign[r] * direction[6 + r] * spacing[2],
    sign[r] * origin[r],
  ]);
  affine.push([0, 0, 0, 1]);
  checkAffine(affine, `MetaImage geometry (TransformMatrix ${direction.join(" ")})`);
  return {
    volume: {
      data: voxels,
      shape: [shape[2], shape[1], shape[0]],
      affine: affine.map((r) => [r[2], r[1], r[0], r[3]]),
    },
    format: "metaimage",
    sourceDtype: dtype.name,
    sourceGeometry: { shape, affine },
    ...(trailing
      ? {
        warnings: [
          `trailing data after the ${need} bytes of voxels declared (${trailing}; ignored)`,
        ],
      }
      : {}),
  };
}

/**
 * The voxels' bytes in the data: inflated (`CompressedData`, never past `need`), the last
 * `need` bytes (`HeaderSize = -1`), or after `HeaderSize` bytes; and what trails them.
 */
function voxelBytes(
  data: Uint8Array,
  o: { compressed: boolean; headerSize: number; need: number },
): { data: Uint8Array; trailing?: string } {
  if (o.compressed) {
    const inflated = inflateDeclared(data, "zlib", o.need);
    return { data: inflated.data, trailing: inflated.trailing ? "not inflated" : undefined };
  }
  if (o.headerSize === -1) return { data: data.subarray(Math.max(0, data.length - o.need)) };
  const rest = data.subarray(o.headerSize);
  return {
    data: rest,
    trailing: rest.length > o.need ? `${rest.length - o.need} bytes` : undefined,
  };
}
