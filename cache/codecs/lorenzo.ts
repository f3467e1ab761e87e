// The `voco.lorenzo` codec: each value of a chunk stored as its difference from the 3-D
// Lorenzo prediction of its neighbours before, zigzagged, so that Blosc's shuffle and zstd
// see small numbers: a lossless opt-in storage about 30 % smaller than the standard ones.
import * as zarr from "zarrita";

/** The codec's name in the array metadata (not a standard Zarr codec: readers refuse it). */
export const LORENZO = "voco.lorenzo";

/** Integer arrays the codec takes: the cache's quantised storages. */
export type LorenzoArray = Uint16Array | Uint8Array;

/**
 * The residuals of `values` (a C-order chunk of `shape`): each value minus its Lorenzo
 * prediction `v[x-1] + v[y-1] + v[z-1] - v[x-1,y-1] - v[x-1,z-1] - v[y-1,z-1] +
 * v[x-1,y-1,z-1]` (neighbours outside the chunk count 0), modulo 2^bits, then zigzagged
 * (0, -1, 1, -2, ... -> 0, 1, 2, 3, ...). The residual is the mixed third difference
 * `Δx Δy Δz v`, so three running sums, one along each axis, undo it: what
 * {@linkcode lorenzoDecode} and cache/README's NumPy lines do. A new array.
 */
export function lorenzoEncode<T extends LorenzoArray>(values: T, shape: readonly number[]): T {
  const [nx, ny, nz] = shape;
  check(values, shape);
  const bits = values.BYTES_PER_ELEMENT * 8, shift = 32 - bits, mask = (1 << bits) - 1;
  const out = new (values.constructor as new (n: number) => T)(values.length);
  const sy = nz, sx = ny * nz;
  for (let x = 0; x < nx; x++) {
    for (let y = 0; y < ny; y++) {
      const row = x * sx + y * sy;
      for (let z = 0; z < nz; z++) {
        const i = row + z;
        const p = predict(values, i, x, y, z, sx, sy);
        const d = ((values[i] - p) << shift) >> shift; // the signed difference, modulo 2^bits
        out[i] = ((d << 1) ^ (d >> 31)) & mask;
      }
    }
  }
  return out;
}

/** The values of residuals made by {@linkcode lorenzoEncode}, in place (and returned). */
export function lorenzoDecode<T extends LorenzoArray>(residuals: T, shape: readonly number[]): T {
  const [nx, ny, nz] = shape;
  check(residuals, shape);
  const mask = (1 << (residuals.BYTES_PER_ELEMENT * 8)) - 1;
  const v = residuals, sy = nz, sx = ny * nz;
  for (let x = 0; x < nx; x++) {
    for (let y = 0; y < ny; y++) {
      const row = x * sx + y * sy;
      for (let z = 0; z < nz; z++) {
        const i = row + z;
        const u = v[i];
        const d = (u >>> 1) ^ -(u & 1);
        v[i] = (d + predict(v, i, x, y, z, sx, sy)) & mask;
      }
    }
  }
  return v;
}

/** The Lorenzo prediction of value `i` at (x, y, z) from the values before it. */
function predict(
  v: LorenzoArray,
  i: number,
  x: number,
  y: number,
  z: number,
  sx: number,
  sy: number,
): number {
  let p = 0;
  if (x > 0) {
    p += v[i - sx];
    if (y > 0) {
      p -= v[i - sx - sy];
      if (z > 0) p += v[i - sx - sy - 1];
    }
    if (z > 0) p -= v[i - sx - 1];
  }
  if (y > 0) {
    p += v[i - sy];
    if (z > 0) p -= v[i - sy - 1];
  }
  if (z > 0) p += v[i - 1];
  return p;
}

function check(values: LorenzoArray, shape: readonly number[]): void {
  if (!(values instanceof Uint16Array || values instanceof Uint8Array)) {
    throw new TypeError(`${LORENZO} takes uint16 or uint8 values`);
  }
  if (shape.length !== 3 || shape[0] * shape[1] * shape[2] !== values.length) {
    throw new RangeError(`${LORENZO}: ${values.length} values for a chunk of [${shape}]`);
  }
}

/** A chunk as zarrita hands it to array-to-array codecs. */
interface ArrayChunk {
  data: unknown;
  shape: number[];
  stride: number[];
}

/**
 * The `voco.lorenzo` array-to-array codec for zarrita (before `bytes` in the chain). It
 * takes C-order chunks only, as the cache writer makes them.
 */
export class LorenzoCodec {
  /** Codec kind, as zarrita's pipeline expects. */
  readonly kind = "array_to_array";

  /** zarrita's factory hook. */
  static fromConfig(): LorenzoCodec {
    return new LorenzoCodec();
  }

  /** The residuals of a chunk. */
  encode(chunk: ArrayChunk): ArrayChunk {
    cOrder(chunk);
    return { ...chunk, data: lorenzoEncode(chunk.data as LorenzoArray, chunk.shape) };
  }

  /** The values of a chunk of residuals (decoded in place). */
  decode(chunk: ArrayChunk): ArrayChunk {
    cOrder(chunk);
    return { ...chunk, data: lorenzoDecode(chunk.data as LorenzoArray, chunk.shape) };
  }
}

function cOrder(chunk: ArrayChunk): void {
  const [, ny, nz] = chunk.shape;
  const s = chunk.stride;
  if (chunk.shape.length !== 3 || s[2] !== 1 || s[1] !== nz || s[0] !== ny * nz) {
    throw new RangeError(`${LORENZO} takes C-order 3-D chunks, got strides [${s}]`);
  }
}

let registered = false;

/** Makes zarrita decode the `voco.lorenzo` codec (idempotent). */
export function registerLorenzo(): void {
  if (registered) return;
  zarr.registry.set(LORENZO, () => Promise.resolve(LorenzoCodec as never));
  registered = true;
}
