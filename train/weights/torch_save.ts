// Writes a `torch.save` file (the zip format of PyTorch >= 1.6) without Python: a
// protocol-2 pickle of a plain dict whose "state_dict" is an OrderedDict of tensors
// (`torch._utils._rebuild_tensor_v2` over storages `data/<n>`), and a few metadata values,
// each zip entry stored uncompressed with its data 64-byte aligned as PyTorch writes it.
// `torch.load(f, weights_only=True)` opens it; so does `readTorchCheckpoint`.

/** A tensor to write: float32 values, or int64 (`relative_position_index` buffers). */
export interface TorchSaveTensor {
  /** Shape (PyTorch's layout). */
  shape: number[];
  /** Values in C order. */
  data: ArrayLike<number>;
  /** Element type. @default {"F32"} */
  dtype?: "F32" | "I64";
}

/** Pickle protocol 2, only what a state dict and plain metadata need. */
class Pickler {
  readonly parts: Uint8Array[] = [];
  #memo = 0;
  #globals = new Map<string, number>();

  bytes(...b: number[]) {
    this.parts.push(Uint8Array.from(b));
  }
  #u32(v: number): number[] {
    return [v & 255, (v >>> 8) & 255, (v >>> 16) & 255, (v >>> 24) & 255];
  }
  put(): number {
    const i = this.#memo++;
    this.bytes(...(i < 256 ? [0x71, i] : [0x72, ...this.#u32(i)]));
    return i;
  }
  global(module: string, name: string) {
    const key = `${module}.${name}`, at = this.#globals.get(key);
    if (at !== undefined) {
      return this.bytes(...(at < 256 ? [0x68, at] : [0x6a, ...this.#u32(at)]));
    }
    this.parts.push(new TextEncoder().encode(`c${module}\n${name}\n`));
    this.#globals.set(key, this.put());
  }
  int(v: number) {
    if (v >= 0 && v < 256) this.bytes(0x4b, v);
    else if (v >= 0 && v < 65536) this.bytes(0x4d, v & 255, v >> 8);
    else if (v >= -(2 ** 31) && v < 2 ** 31) this.bytes(0x4a, ...this.#u32(v >>> 0));
    else {
      const out: number[] = [];
      let x = BigInt(v);
      for (;;) {
        const b = Number(x & 255n);
        out.push(b);
        x >>= 8n;
        if ((x === 0n && !(b & 0x80)) || (x === -1n && b & 0x80)) break;
      }
      this.bytes(0x8a, out.length, ...out);
    }
  }
  str(s: string) {
    const b = new TextEncoder().encode(s);
    this.bytes(0x58, ...this.#u32(b.length));
    this.parts.push(b);
    this.put();
  }
  tuple(items: number[]) {
    if (items.length === 0) return this.bytes(0x29);
    this.bytes(0x28);
    for (const x of items) this.int(x);
    this.bytes(0x74);
    this.put();
  }
  orderedDict() {
    this.global("collections", "OrderedDict");
    this.bytes(0x29, 0x52);
    this.put();
  }
  /** `_rebuild_tensor_v2(storage, 0, shape, stride, False, OrderedDict())`. */
  tensor(key: string, t: TorchSaveTensor) {
    const stride = t.shape.map((_, a) => t.shape.slice(a + 1).reduce((x, y) => x * y, 1));
    this.global("torch._utils", "_rebuild_tensor_v2");
    this.bytes(0x28, 0x28); // MARK (args), MARK (persistent id)
    this.str("storage");
    this.global("torch", t.dtype === "I64" ? "LongStorage" : "FloatStorage");
    this.str(key);
    this.str("cpu");
    this.int(t.data.length);
    this.bytes(0x74); // TUPLE
    this.put();
    this.bytes(0x51); // BINPERSID
    this.int(0);
    this.tuple(t.shape);
    this.tuple(stride);
    this.bytes(0x89); // False
    this.orderedDict();
    this.bytes(0x74, 0x52); // TUPLE, REDUCE
    this.put();
  }
}

const CRC = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c;
});

function crc32(b: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < b.length; i++) c = CRC[(c ^ b[i]) & 255] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function storageBytes(t: TorchSaveTensor): Uint8Array {
  if ((t.dtype ?? "F32") === "F32") {
    return new Uint8Array(Float32Array.from(t.data).buffer);
  }
  const out = new BigInt64Array(t.data.length);
  for (let i = 0; i < t.data.length; i++) out[i] = BigInt(Math.round(t.data[i]));
  return new Uint8Array(out.buffer);
}

/** The zip archive of `torch.save`: entries stored, each one's data 64-byte aligned. */
function zipStored(archive: string, records: [string, Uint8Array][]): Uint8Array {
  const enc = new TextEncoder();
  const chunks: Uint8Array[] = [], central: Uint8Array[] = [];
  let size = 0;
  for (const [name, data] of records) {
    const full = enc.encode(`${archive}/${name}`);
    const pad = (64 - ((size + 30 + full.length + 4) % 64)) % 64;
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
    local.fill(0x5a, 34 + full.length);
    const c = new Uint8Array(46 + full.length);
    const cv = new DataView(c.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint16(4, 20, true);
    cv.setUint16(6, 20, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, data.length, true);
    cv.setUint32(24, data.length, true);
    cv.setUint16(28, full.length, true);
    cv.setUint32(42, size, true);
    c.set(full, 46);
    central.push(c);
    chunks.push(local, data);
    size += local.length + data.length;
  }
  const dirSize = central.reduce((a, c) => a + c.length, 0);
  if (size + dirSize >= 2 ** 32) {
    throw new RangeError("torch.save files over 4 GiB (zip64) are not written here");
  }
  const end = new Uint8Array(22);
  const ev = new DataView(end.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, records.length, true);
  ev.setUint16(10, records.length, true);
  ev.setUint32(12, dirSize, true);
  ev.setUint32(16, size, true);
  const out = new Uint8Array(size + dirSize + 22);
  let at = 0;
  for (const c of [...chunks, ...central, end]) (out.set(c, at), at += c.length);
  return out;
}

/**
 * `torch.save({"state_dict": OrderedDict(tensors), **metadata}, f)`: the bytes of a file
 * that `torch.load(f, weights_only=True)` opens, the tensors in the given order, the
 * metadata as ints (whole numbers) or strings.
 */
export function writeTorchSave(
  tensors: Iterable<[string, TorchSaveTensor]>,
  metadata: Record<string, string | number> = {},
  archive = "archive",
): Uint8Array {
  const p = new Pickler();
  const entries = [...tensors];
  p.bytes(0x80, 2, 0x7d); // PROTO 2, EMPTY_DICT
  p.put();
  p.bytes(0x28); // MARK: the top dict's items
  p.str("state_dict");
  p.orderedDict();
  if (entries.length) p.bytes(0x28);
  entries.forEach(([name, t], i) => {
    p.str(name);
    p.tensor(String(i), t);
  });
  if (entries.length) p.bytes(0x75); // SETITEMS
  for (const [k, v] of Object.entries(metadata)) {
    p.str(k);
    if (typeof v === "number" && Number.isSafeInteger(v)) p.int(v);
    else p.str(String(v));
  }
  p.bytes(0x75, 0x2e); // SETITEMS, STOP
  const enc = new TextEncoder();
  const pickle = new Uint8Array(p.parts.reduce((a, b) => a + b.length, 0));
  let at = 0;
  for (const b of p.parts) (pickle.set(b, at), at += b.length);
  return zipStored(archive, [
    ["data.pkl", pickle],
    [".format_version", enc.encode("1")],
    [".storage_alignment", enc.encode("64")],
    ["byteorder", enc.encode("little")],
    ...entries.map(([, t], i) => [`data/${i}`, storageBytes(t)] as [string, Uint8Array]),
    ["version", enc.encode("3\n")],
  ]);
}
