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

/**
 * The values of residuals made by {@linkcode lorenzoEncode}, in place (and returned): the
 * zigzag undone, then a running sum along z, along y and along x, each a plain pass over
 * the chunk (a typed array's store wraps modulo 2^bits, as the residuals were taken);
 * about three times faster than predicting value by value.
 */
export function lorenzoDecode<T extends LorenzoArray>(residuals: T, shape: readonly number[]): T {
  // Each value's bytes are read before the value is written over them: in place is safe.
  const bytes = new Uint8Array(residuals.buffer, residuals.byteOffset, residuals.byteLength);
  return lorenzoDecodeBytes(bytes, 1, bytes.length, residuals, shape);
}

/**
 * {@linkcode lorenzoDecode} of residuals still in their decoded bytes (little endian),
 * into `out`: for 16-bit values, `typesize` 2 reads them byte-shuffled in blocks of
 * `blocksize` bytes (all low bytes, then all high bytes), as a Blosc frame decodes, so
 * that the shuffle is undone in the same pass. Throws when the bytes are not the chunk's.
 */
export function lorenzoDecodeBytes<T extends LorenzoArray>(
  bytes: Uint8Array,
  typesize: number,
  blocksize: number,
  out: T,
  shape: readonly number[],
): T {
  check(out, shape);
  const wide = out.BYTES_PER_ELEMENT === 2, n = out.length, nz = shape[2];
  if (bytes.length !== n * out.BYTES_PER_ELEMENT) {
    throw new RangeError(`${LORENZO}: ${bytes.length} bytes for ${n} values`);
  }
  let acc = 0, left = nz, i = 0;
  if (wide && typesize === 2) {
    for (let start = 0; start < bytes.length; start += blocksize) {
      const half = Math.min(blocksize, bytes.length - start) >> 1, hi = start + half;
      for (let j = 0; j < half; j++) {
        const u = bytes[start + j] | (bytes[hi + j] << 8);
        if (left === 0) acc = 0, left = nz;
        acc += (u >>> 1) ^ -(u & 1);
        out[i++] = acc;
        left--;
      }
    }
  } else {
    for (; i < n; i++) {
      const u = wide ? bytes[2 * i] | (bytes[2 * i + 1] << 8) : bytes[i];
      if (left === 0) acc = 0, left = nz;
      acc += (u >>> 1) ^ -(u & 1);
      out[i] = acc;
      left--;
    }
  }
  return sumAlongYX(out, shape);
}

/** The running sums along y (rows within each x-slab) and along x (slab after slab). */
function sumAlongYX<T extends LorenzoArray>(v: T, shape: readonly number[]): T {
  const [nx, ny, nz] = shape, sy = nz, sx = ny * nz;
  for (let x = 0; x < nx; x++) {
    for (let i = x * sx + sy, end = (x + 1) * sx; i < end; i++) v[i] += v[i - sy];
  }
  for (let i = sx; i < v.length; i++) v[i] += v[i - sx];
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
