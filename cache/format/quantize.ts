/** On-disk voxel types of the cache. */
export type StorageDtype = "float32" | "uint16" | "uint8";

/** How values are stored: `decoded = stored * scaleFactor + addOffset` (CF convention). */
export interface StorageEncoding {
  /** Zarr data type of the stored array. */
  dtype: StorageDtype;
  /** Step between stored levels; absent for float32. */
  scaleFactor?: number;
  /** Value of stored level 0; absent for float32. */
  addOffset?: number;
}

/** Options of {@linkcode storageEncoding}. */
export interface StorageEncodingOptions {
  /**
   * Window width in HU; `uint16` then uses one level per HU (steps of at most 1 HU),
   * the default. Without it `uint16` uses all 65535 levels.
   */
  windowWidthHu?: number;
}

/**
 * Chooses the storage encoding of a value range: `float32` stores values as they are;
 * `uint16` stores one level per Hounsfield unit of the window (half-HU worst-case error,
 * 1.2e-3 on a 0..1 scale for VoCo's 425-HU window); `uint8` stores 255 levels.
 */
export function storageEncoding(
  dtype: StorageDtype,
  valueRange: [number, number] | undefined,
  options: StorageEncodingOptions = {},
): StorageEncoding {
  if (dtype === "float32") return { dtype };
  if (!valueRange) {
    throw new RangeError(
      `Storage dtype ${dtype} needs a recipe with a clipping window; use --dtype float32`,
    );
  }
  const [lo, hi] = valueRange;
  const levels = dtype === "uint8"
    ? 255
    : options.windowWidthHu
    ? Math.min(65535, Math.max(1, Math.ceil(options.windowWidthHu)))
    : 65535;
  return { dtype, scaleFactor: (hi - lo) / levels, addOffset: lo };
}

/** Encodes float values for storage (rounded to the nearest level, clamped). */
export function quantize(
  data: Float32Array,
  enc: StorageEncoding,
): Float32Array | Uint16Array | Uint8Array {
  if (enc.dtype === "float32") return data;
  const out = enc.dtype === "uint16" ? new Uint16Array(data.length) : new Uint8Array(data.length);
  const max = enc.dtype === "uint16" ? 65535 : 255;
  const inv = 1 / enc.scaleFactor!;
  const off = enc.addOffset!;
  for (let i = 0; i < data.length; i++) {
    const q = Math.round((data[i] - off) * inv);
    out[i] = q < 0 ? 0 : q > max ? max : q;
  }
  return out;
}

/** Decodes stored values back to float32. */
export function dequantize(
  stored: ArrayLike<number>,
  enc: Pick<StorageEncoding, "scaleFactor" | "addOffset">,
): Float32Array {
  const out = new Float32Array(stored.length);
  if (enc.scaleFactor === undefined) {
    out.set(stored);
    return out;
  }
  const s = enc.scaleFactor, o = enc.addOffset ?? 0;
  for (let i = 0; i < stored.length; i++) out[i] = stored[i] * s + o;
  return out;
}

/** Bytes a volume of `shape` takes when stored raw in `dtype`. */
export function rawBytes(shape: readonly number[], dtype: StorageDtype): number {
  return shape.reduce((a, b) => a * b, 1) * (dtype === "float32" ? 4 : dtype === "uint16" ? 2 : 1);
}
