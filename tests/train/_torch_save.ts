// A test writer of `torch.save` files (zip format) without Python, following what PyTorch
// 2.x writes: protocol-2 pickle `<archive>/data.pkl` as CPython's Pickler emits it for a
// state dict (OrderedDict with `_metadata`, `_rebuild_tensor_v2` with persistent storage
// ids, memo puts and gets), `.format_version`, `.storage_alignment`, `byteorder`,
// `data/<key>` storages (keys sorted as strings), `version` and `.data/serialization_id`,
// every entry stored uncompressed with its data 64-byte aligned by an "FB" extra field
// (as caffe2's PyTorchStreamWriter pads), and optionally zip64 records.

/** Storage element types the writer encodes. */
export type StorageDtype = "F32" | "F64" | "F16" | "BF16" | "I64";

const STORAGE_CLASS: Record<StorageDtype, string> = {
  F32: "FloatStorage",
  F64: "DoubleStorage",
  F16: "HalfStorage",
  BF16: "BFloat16Storage",
  I64: "LongStorage",
};
const SIZE: Record<StorageDtype, number> = { F32: 4, F64: 8, F16: 2, BF16: 2, I64: 8 };

/** A typed storage: raw little-endian element bytes. */
export class Storage {
  constructor(readonly dtype: StorageDtype, readonly bytes: Uint8Array) {}
  /** Elements in the storage. */
  get numel(): number {
    return this.bytes.length / SIZE[this.dtype];
  }
}

/** A tensor: a view of a storage. */
export class Tensor {
  constructor(
    readonly storage: Storage,
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
    readonly parameter = false,
  ) {}
}

/** `collections.OrderedDict`, optionally with a state dict's `_metadata` attribute. */
export class OrderedDict {
  constructor(readonly items: [string, PyObj][], readonly metadata?: OrderedDict) {}
}

/** A Python tuple. */
export class Tuple {
  constructor(readonly items: PyObj[]) {}
}

/** A Python float, for integral values (`3.0`). */
export class Float {
  constructor(readonly value: number) {}
}

/** `module.name(*args)`: any global call, for pickles that must be refused. */
export class Call {
  constructor(readonly module: string, readonly name: string, readonly args: PyObj[]) {}
}

/** What the writer pickles: plain dicts are `Map`s, lists arrays. */
export type PyObj =
  | null
  | boolean
  | number
  | string
  | PyObj[]
  | Map<string, PyObj>
  | OrderedDict
  | Tuple
  | Float
  | Call
  | Tensor;

/** Half-precision bits of a value that float16 represents exactly (or ±0, ±Infinity). */
export function halfBits(v: number): number {
  const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
  const a = Math.abs(v);
  if (a === 0) return sign;
  if (a === Infinity) return sign | 0x7c00;
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  if (e < -14) return sign | Math.round(a / 2 ** -24); // subnormal
  const f = (a / 2 ** e - 1) * 1024;
  if (!Number.isInteger(f) || e > 15) throw new RangeError(`${v} is not exact in float16`);
  return sign | ((e + 15) << 10) | f;
}

/** A storage of `dtype` holding `values` (F16 values must be exact in float16). */
export function storageOf(dtype: StorageDtype, values: ArrayLike<number>): Storage {
  const bytes = new Uint8Array(values.length * SIZE[dtype]);
  const dv = new DataView(bytes.buffer);
  const f32 = new Float32Array(1), u32 = new Uint32Array(f32.buffer);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (dtype === "F32") dv.setFloat32(4 * i, v, true);
    else if (dtype === "F64") dv.setFloat64(8 * i, v, true);
    else if (dtype === "F16") dv.setUint16(2 * i, halfBits(v), true);
    else if (dtype === "BF16") (f32[0] = v, dv.setUint16(2 * i, u32[0] >>> 16, true));
    else dv.setBigInt64(8 * i, BigInt(v), true);
  }
  return new Storage(dtype, bytes);
}

/** A contiguous tensor with its own storage. */
export function tensorOf(
  values: ArrayLike<number>,
  shape: number[],
  dtype: StorageDtype = "F32",
  parameter = false,
): Tensor {
  const stride = shape.map((_, a) => shape.slice(a + 1).reduce((x, y) => x * y, 1));
  return new Tensor(storageOf(dtype, values), 0, shape, stride, parameter);
}

/** A state dict as `model.state_dict()` returns it (OrderedDict with `_metadata`). */
export function stateDict(entries: Iterable<[string, Tensor]>): OrderedDict {
  const items = [...entries];
  const modules = new Set([""]);
  for (const [k] of items) modules.add(k.split(".").slice(0, -1).join("."));
  const version = () => new Map<string, PyObj>([["version", 1]]);
  const metadata = new OrderedDict([...modules].map((m) => [m, version()]));
  return new OrderedDict(items, metadata);
}

/** CPython's protocol-2 Pickler, with torch.save's persistent ids for storages. */
class Pickler {
  out: number[] = [];
  memo = new Map<unknown, number>();
  storages = new Map<Storage, string>();

  byte(...b: number[]) {
    for (const x of b) this.out.push(x);
  }
  u32(v: number) {
    this.byte(v & 255, (v >>> 8) & 255, (v >>> 16) & 255, (v >>> 24) & 255);
  }
  put(obj: unknown) {
    const i = this.memo.size;
    this.memo.set(obj, i);
    if (i < 256) this.byte(0x71, i);
    else (this.byte(0x72), this.u32(i));
  }
  get(obj: unknown): boolean {
    const i = this.memo.get(obj);
    if (i === undefined) return false;
    if (i < 256) this.byte(0x68, i);
    else (this.byte(0x6a), this.u32(i));
    return true;
  }
  global(module: string, name: string) {
    const key = `global:${module}.${name}`;
    if (this.get(key)) return;
    this.byte(0x63, ...new TextEncoder().encode(`${module}\n${name}\n`));
    this.put(key);
  }
  int(v: number) {
    if (v >= 0 && v < 256) this.byte(0x4b, v);
    else if (v >= 0 && v < 65536) this.byte(0x4d, v & 255, v >> 8);
    else if (v >= -(2 ** 31) && v < 2 ** 31) (this.byte(0x4a), this.u32(v >>> 0));
    else {
      // LONG1: minimal little-endian two's complement
      const bytes: number[] = [];
      let x = BigInt(v);
      for (;;) {
        const b = Number(x & 255n);
        bytes.push(b);
        x >>= 8n;
        if ((x === 0n && !(b & 0x80)) || (x === -1n && b & 0x80)) break;
      }
      this.byte(0x8a, bytes.length, ...bytes);
    }
  }
  tuple(items: PyObj[], memoKey: unknown = {}) {
    if (!items.length) return this.byte(0x29);
    if (items.length > 3) this.byte(0x28);
    for (const x of items) this.save(x);
    this.byte(items.length > 3 ? 0x74 : [0x85, 0x86, 0x87][items.length - 1]);
    this.put(memoKey);
  }
  setItems(items: [PyObj, PyObj][]) {
    for (let i = 0; i < items.length; i += 1000) {
      const batch = items.slice(i, i + 1000);
      if (batch.length > 1) this.byte(0x28);
      for (const [k, v] of batch) (this.save(k), this.save(v));
      this.byte(batch.length > 1 ? 0x75 : 0x73);
    }
  }
  storage(s: Storage) {
    // persistent_id: ('storage', torch.<Type>Storage, key, location, numel), then BINPERSID
    let key = this.storages.get(s);
    if (key === undefined) this.storages.set(s, key = String(this.storages.size));
    this.byte(0x28);
    this.save("storage");
    this.global("torch", STORAGE_CLASS[s.dtype]);
    this.save(key);
    this.save("cpu");
    this.int(s.numel);
    this.byte(0x74);
    this.put({});
    this.byte(0x51);
  }
  emptyOrderedDict() {
    this.global("collections", "OrderedDict");
    this.byte(0x29, 0x52);
    this.put({});
  }
  save(obj: PyObj) {
    if (obj === null) return this.byte(0x4e);
    if (obj === true) return this.byte(0x88);
    if (obj === false) return this.byte(0x89);
    if (typeof obj === "number") {
      if (Number.isInteger(obj)) return this.int(obj);
      obj = new Float(obj);
    }
    if (obj instanceof Float) {
      const b = new Uint8Array(8);
      new DataView(b.buffer).setFloat64(0, obj.value, false);
      return this.byte(0x47, ...b);
    }
    if (this.get(obj)) return;
    if (typeof obj === "string") {
      const b = new TextEncoder().encode(obj);
      this.byte(0x58);
      this.u32(b.length);
      this.byte(...b);
      return this.put(obj);
    }
    if (obj instanceof Tuple) return this.tuple(obj.items, obj);
    if (Array.isArray(obj)) {
      this.byte(0x5d);
      this.put(obj);
      if (obj.length === 1) (this.save(obj[0]), this.byte(0x61));
      else if (obj.length) (this.byte(0x28), obj.forEach((x) => this.save(x)), this.byte(0x65));
      return;
    }
    if (obj instanceof Map) {
      this.byte(0x7d);
      this.put(obj);
      return this.setItems([...obj]);
    }
    if (obj instanceof OrderedDict) {
      this.global("collections", "OrderedDict");
      this.byte(0x29, 0x52);
      this.put(obj);
      this.setItems(obj.items);
      if (obj.metadata) {
        this.save(new Map<string, PyObj>([["_metadata", obj.metadata]]));
        this.byte(0x62);
      }
      return;
    }
    if (obj instanceof Call) {
      this.global(obj.module, obj.name);
      this.tuple(obj.args);
      this.byte(0x52);
      return this.put(obj);
    }
    // A tensor: Tensor.__reduce_ex__ -> _rebuild_tensor_v2(storage, offset, size, stride,
    // requires_grad, OrderedDict()); a Parameter wraps it in _rebuild_parameter.
    if (obj.parameter) this.global("torch._utils", "_rebuild_parameter");
    this.global("torch._utils", "_rebuild_tensor_v2");
    this.byte(0x28);
    this.storage(obj.storage);
    this.int(obj.offset);
    this.tuple(obj.shape);
    this.tuple(obj.stride);
    this.byte(0x89);
    this.emptyOrderedDict();
    this.byte(0x74);
    this.put({});
    this.byte(0x52);
    this.put(obj);
    if (obj.parameter) {
      this.byte(0x88); // requires_grad
      this.emptyOrderedDict();
      this.byte(0x87);
      this.put({});
      this.byte(0x52);
      this.put({});
    }
  }
}

const CRC_TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c;
});

function crc32(b: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < b.length; i++) c = CRC_TABLE[(c ^ b[i]) & 255] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** Options of {@linkcode torchSave}. */
export interface TorchSaveOptions {
  /** Folder name of the entries (torch.save: the file name without extension). */
  archive?: string;
  /** Writes zip64 central-directory fields and end records, as for files over 4 GiB. */
  zip64?: boolean;
  /** Byte order of the storages and of the `byteorder` record. */
  byteorder?: "little" | "big";
  /** `data.pkl` as given (a hand-made, hostile pickle) instead of `obj` pickled. */
  pickle?: Uint8Array;
}

/** Serialises `obj` as `torch.save(obj, f)` does (zip format, pickle protocol 2). */
export function torchSave(obj: PyObj, options: TorchSaveOptions = {}): Uint8Array {
  const { archive = "archive", zip64 = false, byteorder = "little" } = options;
  const p = new Pickler();
  if (!options.pickle) {
    p.byte(0x80, 2);
    p.save(obj);
    p.byte(0x2e);
  }
  const text = (s: string) => new TextEncoder().encode(s);
  const records: [string, Uint8Array][] = [
    ["data.pkl", options.pickle ?? Uint8Array.from(p.out)],
    [".format_version", text("1")],
    [".storage_alignment", text("64")],
    ["byteorder", text(byteorder)],
  ];
  const keys = [...p.storages].map(([s, k]) => [k, s] as const).sort(([a], [b]) => a < b ? -1 : 1);
  for (const [key, s] of keys) {
    let bytes = s.bytes;
    if (byteorder === "big") {
      const n = SIZE[s.dtype];
      bytes = bytes.slice();
      for (let i = 0; i < bytes.length; i += n) bytes.subarray(i, i + n).reverse();
    }
    records.push([`data/${key}`, bytes]);
  }
  records.push(["version", text("3\n")], [".data/serialization_id", text("1234567890123456")]);

  const chunks: Uint8Array[] = [];
  let size = 0;
  const central: Uint8Array[] = [];
  for (const [name, data] of records) {
    const full = text(`${archive}/${name}`);
    const start = size + 30 + full.length + 4;
    const pad = (64 - (start % 64)) % 64;
    const local = new Uint8Array(30 + full.length + 4 + pad);
    const lv = new DataView(local.buffer);
    const crc = crc32(data);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint16(4, 20, true);
    lv.setUint32(14, crc, true);
    lv.setUint32(18, data.length, true);
    lv.setUint32(22, data.length, true);
    lv.setUint16(26, full.length, true);
    lv.setUint16(28, 4 + pad, true);
    local.set(full, 30);
    local.set([0x46, 0x42, pad & 255, pad >> 8], 30 + full.length); // "FB" padding field
    local.fill(0x5a, 34 + full.length); // 'Z'
    const c = new Uint8Array(46 + full.length + (zip64 ? 28 : 0));
    const cv = new DataView(c.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint16(4, zip64 ? 45 : 20, true);
    cv.setUint16(6, zip64 ? 45 : 20, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, zip64 ? 0xffffffff : data.length, true);
    cv.setUint32(24, zip64 ? 0xffffffff : data.length, true);
    cv.setUint16(28, full.length, true);
    cv.setUint16(30, zip64 ? 28 : 0, true);
    cv.setUint32(42, zip64 ? 0xffffffff : size, true);
    c.set(full, 46);
    if (zip64) {
      const e = 46 + full.length;
      cv.setUint16(e, 1, true);
      cv.setUint16(e + 2, 24, true);
      cv.setBigUint64(e + 4, BigInt(data.length), true);
      cv.setBigUint64(e + 12, BigInt(data.length), true);
      cv.setBigUint64(e + 20, BigInt(size), true);
    }
    central.push(c);
    chunks.push(local, data);
    size += local.length + data.length;
  }
  const dirOffset = size;
  const dirSize = central.reduce((a, c) => a + c.length, 0);
  chunks.push(...central);
  size += dirSize;
  if (zip64) {
    const z = new Uint8Array(56 + 20);
    const zv = new DataView(z.buffer);
    zv.setUint32(0, 0x06064b50, true);
    zv.setBigUint64(4, 44n, true);
    zv.setUint16(12, 45, true);
    zv.setUint16(14, 45, true);
    zv.setBigUint64(24, BigInt(records.length), true);
    zv.setBigUint64(32, BigInt(records.length), true);
    zv.setBigUint64(40, BigInt(dirSize), true);
    zv.setBigUint64(48, BigInt(dirOffset), true);
    zv.setUint32(56, 0x07064b50, true);
    zv.setBigUint64(64, BigInt(size), true);
    zv.setUint32(72, 1, true);
    chunks.push(z);
    size += z.length;
  }
  const end = new Uint8Array(22);
  const ev = new DataView(end.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, zip64 ? 0xffff : records.length, true);
  ev.setUint16(10, zip64 ? 0xffff : records.length, true);
  ev.setUint32(12, zip64 ? 0xffffffff : dirSize, true);
  ev.setUint32(16, zip64 ? 0xffffffff : dirOffset, true);
  chunks.push(end);
  size += end.length;
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) (out.set(c, at), at += c.length);
  return out;
}
