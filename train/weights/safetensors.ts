// Safetensors (Hugging Face's weight format): an 8-byte little-endian header length, a JSON
// header `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}`, then
// the raw little-endian bytes. Written here: the format is a page long and the npm
// packages for it target Node buffers or pull in the whole Hugging Face hub client.
import { BadInputError } from "../../cache/errors.ts";

/** Element types of a safetensors file that this toolkit reads and writes. */
export type SafetensorsDtype = "F32" | "F64" | "F16" | "I64" | "I32" | "I16" | "I8" | "U8" | "BOOL";

/** One named tensor of a safetensors file. */
export interface NamedTensor {
  /** Element type as written in the file. */
  dtype: SafetensorsDtype;
  /** Shape (row-major, PyTorch's layout). */
  shape: number[];
  /** Values as float32 (F16, I64 … are converted; F32 is a view of the file when aligned). */
  data: Float32Array;
}

const SIZES: Record<SafetensorsDtype, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

/**
 * Largest header read: 16 MiB. The toolkit's headers are under 200 kB (a checkpoint of
 * feature size 192 lists about 1,000 tensors); 100,000 tensors would need about 10 MB. A
 * bigger header is refused before it is decoded (a 100 MB one costs a minute and 1.5 GB).
 */
export const MAX_HEADER_BYTES = 16 * 1024 * 1024;

const isCount = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0;

/**
 * Reads a safetensors file into float32 tensors, in file order, with its metadata.
 * Throws a `BadInputError` naming the problem for a malformed file (a header over
 * {@linkcode MAX_HEADER_BYTES}, bad JSON, an entry that is not `{dtype, shape,
 * data_offsets}`, offsets outside the file).
 */
export function readSafetensors(
  bytes: Uint8Array,
): { tensors: Map<string, NamedTensor>; metadata: Record<string, string> } {
  if (bytes.length < 8) throw new BadInputError("Not a safetensors file: shorter than 8 bytes");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  if (headerLength > MAX_HEADER_BYTES) {
    throw new BadInputError(
      `Not a safetensors file this toolkit reads: its header is ${headerLength} bytes, more ` +
        `than ${MAX_HEADER_BYTES} (real weight files have headers of a few hundred kB)`,
    );
  }
  if (headerLength > bytes.length - 8) {
    throw new BadInputError(
      `Not a safetensors file: header length ${headerLength} exceeds the file`,
    );
  }
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
  } catch (e) {
    throw new BadInputError(`Not a safetensors file: bad JSON header (${(e as Error).message})`);
  }
  if (header === null || typeof header !== "object" || Array.isArray(header)) {
    throw new BadInputError("Not a safetensors file: its header is not a JSON object");
  }
  const base = 8 + headerLength;
  const tensors = new Map<string, NamedTensor>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") {
      if (entry === null || typeof entry !== "object" || Array.isArray(entry)) {
        throw new BadInputError("Not a safetensors file: __metadata__ is not an object");
      }
      metadata = entry as Record<string, string>;
      continue;
    }
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown } | null;
    const offsets = e?.data_offsets;
    if (
      e === null || typeof e !== "object" || !Array.isArray(e.shape) || !e.shape.every(isCount) ||
      !Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)
    ) {
      throw new BadInputError(
        `Tensor ${name.slice(0, 100)}: not a {dtype, shape, data_offsets} entry`,
      );
    }
    const dtype = e.dtype as SafetensorsDtype, shape = e.shape as number[];
    const [begin, end] = offsets as [number, number];
    const size = Object.hasOwn(SIZES, dtype) ? SIZES[dtype] : undefined;
    if (!size) throw new BadInputError(`Tensor ${name}: unsupported dtype ${String(dtype)}`);
    const n = shape.reduce((a, b) => a * b, 1);
    if (end - begin !== n * size || base + end > bytes.length) {
      throw new BadInputError(
        `Tensor ${name}: offsets ${begin}..${end} do not fit ${dtype}[${shape}]`,
      );
    }
    const at = bytes.byteOffset + base + begin;
    const slice = () => bytes.buffer.slice(at, at + n * size);
    let data: Float32Array;
    if (dtype === "F32") {
      data = at % 4 === 0 ? new Float32Array(bytes.buffer, at, n) : new Float32Array(slice());
    } else {
      const dv = new DataView(bytes.buffer, at, n * size);
      data = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        data[i] = dtype === "F64"
          ? dv.getFloat64(8 * i, true)
          : dtype === "F16"
          ? halfToFloat(dv.getUint16(2 * i, true))
          : dtype === "I64"
          ? Number(dv.getBigInt64(8 * i, true))
          : dtype === "I32"
          ? dv.getInt32(4 * i, true)
          : dtype === "I16"
          ? dv.getInt16(2 * i, true)
          : dtype === "I8"
          ? dv.getInt8(i)
          : dv.getUint8(i);
      }
    }
    tensors.set(name, { dtype, shape, data });
  }
  return { tensors, metadata };
}

/**
 * Writes float32 tensors (row-major, the given order) as a safetensors file. `dtype` of
 * each entry may be `F32` (default) or `I64` (integer buffers such as PyTorch's
 * `relative_position_index`, when the reader expects them).
 */
export function writeSafetensors(
  tensors: Iterable<[string, { shape: number[]; data: ArrayLike<number>; dtype?: "F32" | "I64" }]>,
  metadata: Record<string, string> = {},
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  const entries = [...tensors];
  let offset = 0;
  for (const [name, t] of entries) {
    const dtype = t.dtype ?? "F32";
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length) {
      throw new RangeError(`Tensor ${name}: ${t.data.length} values for shape ${t.shape}`);
    }
    const bytes = n * SIZES[dtype];
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - ((8 + json.length) % 8)) % 8); // align the data to 8 bytes
  const head = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + head.length + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  let at = 8 + head.length;
  for (const [, t] of entries) {
    if ((t.dtype ?? "F32") === "F32") {
      new Float32Array(out.buffer, at, t.data.length).set(t.data);
      at += 4 * t.data.length;
    } else {
      for (let i = 0; i < t.data.length; i++, at += 8) {
        view.setBigInt64(at, BigInt(Math.round(t.data[i])), true);
      }
    }
  }
  return out;
}
