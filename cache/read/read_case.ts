// Reading cached cases: attributes, the whole volume, or a crop that touches only its
// chunks, dequantised to float32.
import * as zarr from "zarrita";
import type { CaseAffine as Mat4, CaseShape as Shape3, CaseVolume } from "../format/case_volume.ts";
import { registerCodecs } from "../codecs/register.ts";
import { checkedStore, describeChunkError } from "./checked_store.ts";
import type { AsyncReadable } from "@zarrita/storage";
import {
  chunkGrids,
  integrityProblems,
  integrityRecord,
  recordedCrcs,
} from "../format/integrity.ts";
import { DamagedCacheError, VocoError } from "../errors.ts";
import { FetchError } from "../store/http_store.ts";
import { type DirectReader, directReader } from "./_direct.ts";
import { type DecodedFrame, unshuffleBlocks } from "../codecs/blosc.ts";
import { type LorenzoArray, lorenzoDecodeBytes } from "../codecs/lorenzo.ts";
import { type CropMemory, cropMemory } from "./_crop_wasm.ts";

/** Largest box assembled in the kernel's memory (which never shrinks); larger boxes in place. */
const WASM_MAX_BYTES = 64 * 1024 * 1024;

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
  const arr = await openCaseArray(store, path);
  return arr.attrs as unknown as CaseAttributes;
}

/** A cached case opened once for many reads (its metadata parsed, its codecs ready). */
export interface OpenCase {
  /** The case's path in the store, e.g. `/btcv/img0001`. */
  path: `/${string}`;
  /** Array shape, in the cache's axis order (RAS voxel order). */
  shape: Shape3;
  /** The case's attributes. */
  attributes: CaseAttributes;
  /** The whole case as a float32 volume (quantised values decoded). */
  read(): Promise<CaseVolume>;
  /**
   * The box of `size` voxels starting at voxel `start` as a float32 volume, its affine
   * moved to the box's first voxel; only the chunks the box touches are read. Throws a
   * `RangeError` naming the case when the box leaves the array.
   */
  readCrop(start: Shape3, size: Shape3, options?: ReadCropOptions): Promise<CaseVolume>;
}

/** Options of a crop read. */
export interface ReadCropOptions {
  /**
   * Memory to read the crop into (at least the box's voxel count): the returned volume's
   * data is then a view of it from its start. A sampler that keeps a few such buffers
   * saves the first touch of a fresh array's pages, about a fifth of a 192 × 192 × 64
   * crop's time (`deno task bench cache`).
   */
  into?: Float32Array;
}

/**
 * Opens a cached case for reading: the whole volume or crops of it (what a pre-training
 * sampler does, many times per case).
 *
 * @example
 * ```ts
 * const c = await openCase(new FileSystemStore("cache"), "/btcv/img0001");
 * const crop = await c.readCrop([0, 0, 0], [96, 96, 96]);
 * ```
 */
export async function openCase(store: ReadableStore, path: `/${string}`): Promise<OpenCase> {
  const { arr, direct, wasm } = await openChecked(store, path, true);
  const attributes = arr.attrs as unknown as CaseAttributes;
  const shape = arr.shape as Shape3;
  // An array written without our attributes (a foreign Zarr array) gets voxel coordinates.
  const affine: Mat4 = attributes.affine ??
    [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]];
  const reading: CaseReading = {
    path,
    arr,
    direct,
    wasm,
    inner: arr.chunks as Shape3,
    scale: attributes.scale_factor,
    offset: attributes.add_offset ?? 0,
  };
  const box = (start: Shape3, size: Shape3, into?: Float32Array) =>
    readBox(reading, start, size, into);
  return {
    path,
    shape,
    attributes,
    async read() {
      return { data: await box([0, 0, 0], shape), shape, affine };
    },
    async readCrop(start, size, options = {}) {
      for (let a = 0; a < 3; a++) {
        if (
          !Number.isInteger(start[a]) || !Number.isInteger(size[a]) || start[a] < 0 ||
          size[a] < 1 || start[a] + size[a] > shape[a]
        ) {
          throw new RangeError(
            `Case ${path}: crop at [${start}] of size [${size}] leaves the array ` +
              `(shape [${shape}])`,
          );
        }
      }
      const data = await box(start, size, options.into);
      // The crop's first voxel is voxel `start` of the case.
      const moved = affine.map((row, r) =>
        r === 3 ? [...row] : [
          row[0],
          row[1],
          row[2],
          row[3] + row[0] * start[0] + row[1] * start[1] + row[2] * start[2],
        ]
      ) as Mat4;
      return { data, shape: [...size] as Shape3, affine: moved };
    },
  };
}

/** What {@linkcode readBox} needs of an opened case. */
interface CaseReading {
  path: string;
  arr: zarr.Array<zarr.DataType, zarr.Readable>;
  direct?: DirectReader;
  wasm?: CropMemory;
  inner: Shape3;
  scale: number | undefined;
  offset: number;
}

/**
 * The box of `size` voxels at `start` (inside the array) as float32: only the chunks it
 * touches are read (in parallel), each decoded value written once into the box,
 * dequantised on the way.
 */
async function readBox(
  r: CaseReading,
  start: Shape3,
  size: Shape3,
  into?: Float32Array,
): Promise<Float32Array> {
  const { path, arr, direct, wasm, inner, scale, offset } = r;
  const values = inner[0] * inner[1] * inner[2];
  const Typed = TYPED[arr.dtype as string];
  const slab = inner[1] * inner[2] * (VALUE_BYTES[arr.dtype as string] ?? 1);
  const n = size[0] * size[1] * size[2];
  if (into && into.length < n) {
    throw new RangeError(`Case ${path}: ${into.length} values given for a crop of ${n}`);
  }
  const target = into?.subarray(0, n);
  // The box is assembled in the kernel's memory (then copied out once), or in place.
  const at = wasm && n * 4 <= WASM_MAX_BYTES ? wasm.alloc(n * 4) : undefined;
  const plain = at === undefined ? target ?? new Float32Array(n) : undefined;
  const place: Placement = {
    out: () => plain ?? new Float32Array(wasm!.buffer, at!, n),
    wasm: at === undefined ? undefined : { memory: wasm!, at },
    start,
    size,
    inner,
    scale,
    offset,
  };
  const first = start.map((s, a) => Math.floor(s / inner[a]));
  const last = start.map((s, a) => Math.floor((s + size[a] - 1) / inner[a]));
  const jobs: Promise<void>[] = [];
  // Lorenzo residuals become values over the whole chunk, in a buffer of this read's own
  // (each chunk is copied into the box before the next is decoded).
  const predicted = direct?.predicted
    ? new (Typed as unknown as new (n: number) => LorenzoArray)(values)
    : undefined;
  for (let i = first[0]; i <= last[0]; i++) {
    for (let j = first[1]; j <= last[1]; j++) {
      for (let k = first[2]; k <= last[2]; k++) {
        const coords: Shape3 = [i, j, k];
        // Name the chunk (a new error: zarrita hands one error, of a shard's index, to
        // every chunk of the shard).
        const named = (e: unknown) => {
          throw chunkError(e, coords);
        };
        if (direct) {
          jobs.push(
            direct.chunk(coords, (c) => {
              if ("fill" in c) return fillChunk(place, coords, c.fill);
              const data = predicted
                ? predictedValues(c, predicted, inner, arr.dtype as string, coords)
                : decodedValues(c, values, arr.dtype as string, coords, slab);
              // Still shuffled when handed back as they came (16-bit values only).
              copyChunk(place, coords, data, c.typesize === 2 && data === c.bytes ? c : undefined);
            }, predicted ? undefined : slabBytes(place, coords, slab)).catch((e) => {
              // A chunk of the wrong size is named already.
              if (e instanceof DamagedCacheError && e.where === `chunk [${coords}]`) throw e;
              named(e);
            }),
          );
          continue;
        }
        jobs.push(
          arr.getChunk(coords).then((chunk) => {
            const data = chunk.data as ArrayLike<number>;
            // Never other numbers: a chunk decodes to the chunk's size and dtype.
            if (data.length !== values || (Typed && !(data instanceof Typed))) {
              throw wrongSize(
                coords,
                `${data.length} values of ${data.constructor.name}`,
                values,
                arr.dtype as string,
              );
            }
            copyChunk(place, coords, data, undefined, chunk.stride);
          }, named),
        );
      }
    }
  }
  // Every read settles before the box's memory is given back (a late chunk must not
  // write into another crop's); the first failure is the one reported.
  let failure: { error: unknown } | undefined;
  await Promise.all(jobs.map((job) => job.catch((error) => void (failure ??= { error }))));
  try {
    if (failure) throw caseError(path, failure.error);
    if (plain) return plain;
    if (!target) return new Float32Array(place.out());
    target.set(place.out());
    return target;
  } finally {
    if (at !== undefined) wasm!.release(at);
  }
}

/** Where decoded chunks go: the float32 box, its place in the array, the dequantisation. */
interface Placement {
  /** The box's values (a fresh view each time: the kernel's memory may have grown). */
  out: () => Float32Array;
  /** Where the box lies in the kernel's memory, when it is assembled there. */
  wasm?: { memory: CropMemory; at: number };
  start: Shape3;
  size: Shape3;
  inner: Shape3;
  scale: number | undefined;
  offset: number;
}

/** The error of a chunk that decodes to other than `values` values of `dtype`. */
function wrongSize(coords: Shape3, got: string, values: number, dtype: string): Error {
  return new DamagedCacheError(
    `chunk [${coords}] decodes to ${got}, not ${values} of ${dtype}`,
    { where: `chunk [${coords}]` },
  );
}

/**
 * The values of a directly decoded chunk as a typed array of its data type (still
 * byte-shuffled when `c.typesize` > 1); throws when they are not the chunk's size.
 */
function decodedValues(
  c: DecodedFrame,
  values: number,
  dtype: string,
  coords: Shape3,
  slab: number,
): ArrayLike<number> {
  const Typed = TYPED[dtype] as unknown as {
    new (b: ArrayBufferLike, o: number, n: number): ArrayLike<number>;
    BYTES_PER_ELEMENT: number;
    name: string;
  };
  const size = Typed.BYTES_PER_ELEMENT;
  let { bytes } = c;
  if (bytes.length !== values * size) {
    throw wrongSize(
      coords,
      bytes.length % size
        ? `${bytes.length} bytes`
        : `${bytes.length / size} values of ${Typed.name}`,
      values,
      dtype,
    );
  }
  // 16-bit values shuffled in blocks of whole x-slabs: undone by copyChunk.
  if (
    c.typesize === 2 && size === 2 && (c.blocksize >= bytes.length || c.blocksize % slab === 0)
  ) {
    return bytes;
  }
  if (c.typesize > 1) bytes = unshuffleBlocks(c);
  if (bytes.byteOffset % size) bytes = bytes.slice();
  return dtype === "uint8" ? bytes : new Typed(bytes.buffer, bytes.byteOffset, values);
}

/**
 * The values of a directly decoded chunk of `voco.lorenzo` residuals, into `out` (the
 * shuffle undone in the same pass); throws when they are not the chunk's size.
 */
function predictedValues(
  c: DecodedFrame,
  out: LorenzoArray,
  inner: Shape3,
  dtype: string,
  coords: Shape3,
): LorenzoArray {
  if (c.bytes.length !== out.byteLength) {
    throw wrongSize(coords, `${c.bytes.length} bytes`, out.length, dtype);
  }
  return lorenzoDecodeBytes(c.bytes, c.typesize, c.blocksize, out, inner);
}

/**
 * The bytes of chunk `coords` (in its C order) that the box needs: its x-slabs (`slab`
 * bytes each) that the box crosses, so that Blosc blocks of other slabs can be skipped.
 */
function slabBytes(p: Placement, coords: Shape3, slab: number): [number, number] {
  const { origin, lo, hi } = overlap(p, coords);
  return [(lo[0] - origin[0]) * slab, (hi[0] - origin[0]) * slab];
}

/** The part of chunk `coords` inside the box: its first and last+1 voxel per axis. */
function overlap(p: Placement, coords: Shape3) {
  const origin = coords.map((c, a) => c * p.inner[a]);
  const lo = origin.map((o, a) => Math.max(o, p.start[a]));
  const hi = origin.map((o, a) => Math.min(o + p.inner[a], p.start[a] + p.size[a]));
  return { origin, lo, hi };
}

/** Fills the part of chunk `coords` inside the box with `fill`, dequantised. */
function fillChunk(p: Placement, coords: Shape3, fill: number): void {
  const { lo, hi } = overlap(p, coords);
  const v = p.scale === undefined ? fill : fill * p.scale + p.offset;
  const out = p.out();
  for (let x = lo[0]; x < hi[0]; x++) {
    for (let y = lo[1]; y < hi[1]; y++) {
      const dst = ((x - p.start[0]) * p.size[1] + (y - p.start[1])) * p.size[2] - p.start[2];
      out.fill(v, dst + lo[2], dst + hi[2]);
    }
  }
}

/**
 * Copies the part of one decoded chunk that lies in the box, dequantising the values.
 * `data` is in C order (`stride`, by default the chunk's own), or for `typesize` 2 the
 * bytes of 16-bit values byte-shuffled (all low bytes, then all high bytes), which are
 * put together here instead of in a pass of their own.
 */
function copyChunk(
  p: Placement,
  coords: Shape3,
  data: ArrayLike<number>,
  shuffled?: DecodedFrame,
  stride: readonly number[] = [p.inner[1] * p.inner[2], p.inner[2], 1],
): void {
  const { start, size } = p;
  const { origin, lo, hi } = overlap(p, coords);
  const s = p.scale ?? 1, o = p.scale === undefined ? 0 : p.offset;
  const yz = (lo[1] - origin[1]) * stride[1] + (lo[2] - origin[2]) * stride[2];
  const dst = (x: number) =>
    ((x - start[0]) * size[1] + (lo[1] - start[1])) * size[2] + (lo[2] - start[2]);
  if (!shuffled) {
    const n = [hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]] as const;
    const src = (lo[0] - origin[0]) * stride[0] + yz;
    return copyStrided(p.out(), data, src, dst(lo[0]), n, stride, size, s, o);
  }
  // 16-bit values byte-shuffled block by block, each block whole x-slabs: per block,
  // its low bytes, then its high bytes.
  const bytes = shuffled.bytes, total = bytes.length >> 1, block = shuffled.blocksize >> 1;
  const perBlock = shuffled.blocksize >= bytes.length ? Infinity : block / stride[0];
  for (let x = lo[0] - origin[0]; x < hi[0] - origin[0];) {
    const b = Math.floor(x / perBlock), from = b === 0 ? 0 : b * perBlock; // 0 * Infinity
    const end = Math.min(hi[0] - origin[0], from + perBlock);
    const first = b * block, count = Math.min(block, total - first);
    const src = (x - from) * stride[0] + yz;
    const n = [end - x, hi[1] - lo[1], hi[2] - lo[2]] as const;
    const low = 2 * first, high = 2 * first + count;
    if (p.wasm && bytes.buffer === p.wasm.memory.buffer) {
      // Decoded into the kernel's memory: copied there, by the kernel.
      const at = bytes.byteOffset + src;
      p.wasm.memory.copy16(
        at + low,
        at + high,
        p.wasm.at + 4 * dst(x + origin[0]),
        n[0],
        n[1],
        n[2],
        stride[0],
        stride[1],
        size[1] * size[2],
        size[2],
        s,
        o,
      );
    } else {
      copyShuffled16(
        p.out(),
        bytes.subarray(low, low + count),
        bytes.subarray(high, high + count),
        src,
        dst(x + origin[0]),
        n,
        stride,
        size,
        s,
        o,
      );
    }
    x = end;
  }
}

/**
 * The box `n` of 16-bit values stored byte-shuffled (`low` bytes, `high` bytes) from
 * element `src` (C order, strides `stride`, the last 1), dequantised into `out` (of
 * shape `size`) from element `dst`. Its own function, with plain numbers in its loops,
 * so that it compiles to one tight loop.
 */
function copyShuffled16(
  out: Float32Array,
  low: Uint8Array,
  high: Uint8Array,
  src: number,
  dst: number,
  n: readonly [number, number, number],
  stride: readonly number[],
  size: Shape3,
  s: number,
  o: number,
): void {
  const [nx, ny, nz] = n;
  const sx = stride[0], sy = stride[1], dx = size[1] * size[2], dy = size[2];
  for (let x = 0; x < nx; x++) {
    let i0 = src + x * sx, j0 = dst + x * dx;
    for (let y = 0; y < ny; y++, i0 += sy, j0 += dy) {
      const end = j0 + nz;
      for (let i = i0, j = j0; j < end; i++, j++) out[j] = (low[i] | (high[i] << 8)) * s + o;
    }
  }
}

/** {@linkcode copyShuffled16} for values in element order, of any type and strides. */
function copyStrided(
  out: Float32Array,
  data: ArrayLike<number>,
  src: number,
  dst: number,
  n: readonly [number, number, number],
  stride: readonly number[],
  size: Shape3,
  s: number,
  o: number,
): void {
  const [nx, ny, nz] = n;
  const sx = stride[0], sy = stride[1], sz = stride[2], dx = size[1] * size[2], dy = size[2];
  for (let x = 0; x < nx; x++) {
    let i0 = src + x * sx, j0 = dst + x * dx;
    for (let y = 0; y < ny; y++, i0 += sy, j0 += dy) {
      const end = j0 + nz;
      for (let i = i0, j = j0; j < end; i += sz, j++) out[j] = data[i] * s + o;
    }
  }
}

/** The typed array each stored data type decodes to. */
const TYPED: Record<string, new (n: number) => ArrayLike<number>> = {
  uint8: Uint8Array,
  int8: Int8Array,
  uint16: Uint16Array,
  int16: Int16Array,
  uint32: Uint32Array,
  int32: Int32Array,
  float32: Float32Array,
  float64: Float64Array,
};

/** Bytes a stored value of each data type takes. */
const VALUE_BYTES: Record<string, number> = {
  uint8: 1,
  int8: 1,
  uint16: 2,
  int16: 2,
  uint32: 4,
  int32: 4,
  float32: 4,
  float64: 8,
};

/**
 * The error of reading chunk `coords`, naming it: damage stays damage (a checksum, a
 * missing or truncated chunk, bytes that do not decode), a network error stays one.
 */
function chunkError(e: unknown, coords: readonly number[]): Error {
  const message = describeChunkError(e, coords);
  const cause = e instanceof Error && e.cause instanceof Error ? e.cause : undefined;
  const network = e instanceof FetchError || cause instanceof FetchError;
  if (network) return new Error(message, { cause: e });
  const where = e instanceof DamagedCacheError && e.where ? e.where : `chunk [${coords}]`;
  const damage = e instanceof VocoError || cause instanceof VocoError;
  return new DamagedCacheError(
    damage ? message : `${message} (the stored bytes do not decode: the cache is damaged)`,
    { where, cause: e },
  );
}

/** `e` with the case named first (zarrita does not say which array failed), kind kept. */
function caseError(path: string, e: unknown): unknown {
  if (!(e instanceof Error) || e.message.startsWith(`Case ${path}:`)) return e;
  const message = `Case ${path}: ${e.message}`;
  if (e instanceof DamagedCacheError) {
    return new DamagedCacheError(message, { case: path.slice(1), where: e.where, cause: e });
  }
  return new Error(message, { cause: e });
}

type ArrayMeta = Record<string, unknown> & {
  data_type?: unknown;
  attributes?: Record<string, unknown>;
};

/**
 * The zarrita array of a cached case, read through a store view that names the chunk of
 * a checksum error and raises a chunk missing from a case written whole (one whose
 * attributes carry `stored_chunks`, a `fingerprint` or an integrity record: the cache
 * writer stores every chunk) instead of returning the fill value. A case with an
 * integrity record (`voco_integrity`) is checked before any chunk is read: its metadata
 * against its digest, its name against `path`; then each chunk against the checksum
 * written at its position. Sharded and unsharded arrays alike. Damage throws a
 * {@linkcode DamagedCacheError} naming the case and the reason.
 */
export async function openCaseArray(
  store: ReadableStore,
  path: `/${string}`,
): Promise<zarr.Array<zarr.DataType, zarr.Readable>> {
  return (await openChecked(store, path)).arr;
}

/**
 * {@linkcode openCaseArray}'s array, and a {@linkcode DirectReader} over the same
 * checking store view when the case's codecs are a chain it decodes (the writer's).
 */
async function openChecked(
  store: ReadableStore,
  path: `/${string}`,
  kernel = false,
): Promise<{
  arr: zarr.Array<zarr.DataType, zarr.Readable>;
  direct?: DirectReader;
  wasm?: CropMemory;
}> {
  registerCodecs();
  const metaKey = `${path === "/" ? "" : path}/zarr.json` as const;
  const caseName = path.slice(1);
  const damaged = (reason: string, where = "zarr.json", cause?: unknown) =>
    new DamagedCacheError(`Case ${path}: ${where}: ${reason}`, { case: caseName, where, cause });
  const raw = await store.get(metaKey);
  if (!raw) throw new Deno.errors.NotFound(`Case ${path}: no zarr.json (not in the cache)`);
  let meta: ArrayMeta;
  try {
    meta = JSON.parse(new TextDecoder().decode(raw));
  } catch (e) {
    throw damaged(`unreadable (${(e as Error).message})`, "zarr.json", e);
  }
  if (!meta || typeof meta !== "object" || Array.isArray(meta)) throw damaged("not an object");
  const a = meta.attributes ?? {};
  const record = integrityRecord(meta);
  if (record) {
    const problems = await integrityProblems(meta, path);
    if (problems.length) throw damaged(problems.join("; "));
  }
  const grids = chunkGrids(meta);
  const storage = a.storage as { dtype?: unknown } | undefined;
  if (storage?.dtype !== undefined && storage.dtype !== meta.data_type) {
    throw damaged(`data_type ${meta.data_type}, but the case was stored as ${storage.dtype}`);
  }
  const crcs = record ? recordedCrcs(record) : undefined;
  const unit = (grids?.chunk ?? []).reduce((x: number, y: number) => x * y, 1);
  const checked = checkedStore(store, {
    path,
    whole: typeof a.stored_chunks === "number" || typeof a.fingerprint === "string" ||
      record !== undefined,
    shardGrid: grids?.shardGrid,
    crcs: crcs instanceof Uint32Array ? crcs : undefined,
    chunkGrid: grids?.grid,
    maxChunkBytes: 2 * unit * (VALUE_BYTES[meta.data_type as string] ?? 8) + 65536,
  });
  const view: AsyncReadable = {
    get: async (key, opts) => key === metaKey ? raw : await checked.get(key, opts),
    getRange: checked.getRange,
  };
  let arr: zarr.Array<zarr.DataType, zarr.Readable>;
  try {
    arr = await zarr.open.v3(new zarr.Location(view, path), { kind: "array" });
  } catch (e) {
    throw damaged(`cannot be opened as a Zarr v3 array (${(e as Error).message})`, "zarr.json", e);
  }
  const valueBytes = TYPED[arr.dtype as string] ? VALUE_BYTES[arr.dtype as string] : undefined;
  // 16-bit cases (the default) decode into, and are copied by, the kernel's memory.
  const wasm = kernel && arr.dtype === "uint16" ? await cropMemory() : undefined;
  const direct = valueBytes === undefined ? undefined : directReader(meta, {
    path,
    store: checked,
    valueBytes,
    buffer: wasm ? (size) => wasm.scratch(size) : undefined,
  });
  return { arr, direct, wasm: direct ? wasm : undefined };
}

/**
 * Reads a cached case as a float32 volume in RAS (quantised values decoded with the
 * stored `scale_factor`/`add_offset`).
 */
export async function readCase(
  store: ReadableStore,
  path: `/${string}`,
): Promise<CaseVolume & { attributes: CaseAttributes }> {
  const c = await openCase(store, path);
  return { ...await c.read(), attributes: c.attributes };
}
