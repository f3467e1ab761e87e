import * as zarr from "zarrita";
import type { Mat4, Shape3, Volume } from "../prep/volume.ts";
import { dequantize } from "./quantize.ts";
import { registerCodecs } from "./codecs.ts";

/** A readable store, as zarrita defines it. */
export type ReadableStore = zarr.Readable;

/** Attributes every cached case carries (see README "Cache layout"). */
export interface CaseAttributes {
  /** Voxel index to RAS mm of the cached array. */
  affine: Mat4;
  /** Voxel spacing in mm. */
  spacing: [number, number, number];
  /** Source path relative to the dataset root. */
  source: string;
  /** Source file size in bytes. */
  source_bytes: number;
  /** SHA-256 of the source file (hex). */
  source_sha256: string;
  /** Recipe name and steps. */
  recipe: { name: string; steps: unknown[] };
  /** Hash of source identity, recipe, storage options and format version. */
  fingerprint: string;
  /** Decoding scale of quantised storage. */
  scale_factor?: number;
  /** Decoding offset of quantised storage. */
  add_offset?: number;
  /** Other recorded facts (original geometry, crop box, …). */
  [key: string]: unknown;
}

/** Reads the attributes of a cached case without touching its chunks. */
export async function readCaseAttributes(
  store: ReadableStore,
  path: `/${string}`,
): Promise<CaseAttributes> {
  registerCodecs();
  const arr = await zarr.open.v3(new zarr.Location(store, path), { kind: "array" });
  return arr.attrs as unknown as CaseAttributes;
}

/**
 * Reads a cached case as a float32 volume in RAS (quantised values decoded with the
 * stored `scale_factor`/`add_offset`).
 */
export async function readCase(
  store: ReadableStore,
  path: `/${string}`,
): Promise<Volume<Float32Array> & { attributes: CaseAttributes }> {
  registerCodecs();
  const arr = await zarr.open.v3(new zarr.Location(store, path), { kind: "array" });
  let chunk;
  try {
    chunk = await zarr.get(arr);
  } catch (e) {
    // zarrita does not say which array failed: name the case.
    if (e instanceof Error) {
      const cause = e.cause instanceof Error ? `: ${e.cause.message}` : "";
      e.message = `Case ${path}: ${e.message}${cause}`;
    }
    throw e;
  }
  const attributes = arr.attrs as unknown as CaseAttributes;
  return {
    data: dequantize(chunk.data as ArrayLike<number>, {
      scaleFactor: attributes.scale_factor,
      addOffset: attributes.add_offset,
    }),
    shape: arr.shape as Shape3,
    affine: attributes.affine,
    attributes,
  };
}
