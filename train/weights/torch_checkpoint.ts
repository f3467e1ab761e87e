// Reads the tensors of a PyTorch `torch.save` checkpoint (the zip format of PyTorch >= 1.6)
// without Python: the zip's `data.pkl` is run by a pickle VM that understands only what
// state dicts are made of, and the tensors are read from the `data/<key>` storage entries.
import type { SafetensorsDtype } from "./safetensors.ts";
import { PyDict, PyGlobal, unpickle } from "./_pickle.ts";
import { readZipDirectory, type ZipEntry } from "./_zip_stored.ts";
import { BadInputError } from "../../cache/errors.ts";

/** Element types of torch storages that this reader converts (safetensors' plus bfloat16). */
export type TorchDtype = SafetensorsDtype | "BF16";

/** One tensor of a checkpoint, as `NamedTensor` of safetensors, with bfloat16 allowed. */
export interface TorchTensor {
  /** Element type of the storage in the file. */
  dtype: TorchDtype;
  /** Shape (PyTorch's). */
  shape: number[];
  /** Values as float32 in C order (strides and offsets applied; F32 may view the file). */
  data: Float32Array;
}

/** Options of {@linkcode readTorchCheckpoint}. */
export interface ReadTorchCheckpointOptions {
  /**
   * Dotted path of the state dict inside the checkpoint (`"teacher"`, `"model.state_dict"`).
   * @default found by the rule of {@linkcode readTorchCheckpoint}
   */
  select?: string;
}

/** The state dict of a checkpoint. */
export interface TorchCheckpoint {
  /** The state dict's tensors by key, in the file's order. */
  tensors: Map<string, TorchTensor>;
  /** Where the state dict was in the pickled object: `[]` for the object itself. */
  location: string[];
  /** The archive's folder name (torch.save uses the file name without extension). */
  archive: string;
}

/** Keys under which training scripts nest the state dict, in the order they are tried. */
const STATE_DICT_KEYS = [
  "state_dict",
  "model",
  "model_state_dict",
  "net",
  "network",
  "student",
  "module",
];

const STORAGES: Record<string, TorchDtype> = {
  FloatStorage: "F32",
  DoubleStorage: "F64",
  HalfStorage: "F16",
  BFloat16Storage: "BF16",
  LongStorage: "I64",
  IntStorage: "I32",
  ShortStorage: "I16",
  CharStorage: "I8",
  ByteStorage: "U8",
  BoolStorage: "BOOL",
};

const SIZES: Record<TorchDtype, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

/** The callables a state dict's pickle uses, by `module.name`. */
const ALLOWED = new Set([
  "collections.OrderedDict",
  "torch._utils._rebuild_tensor",
  "torch._utils._rebuild_tensor_v2",
  "torch._utils._rebuild_parameter",
  "torch._utils._rebuild_parameter_with_state",
]);

class StorageRef {
  constructor(readonly dtype: TorchDtype, readonly key: string, readonly numel: number) {}
}

class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
  ) {}
}

const isInts = (v: unknown): v is number[] =>
  Array.isArray(v) && v.every((x) => Number.isSafeInteger(x) && x >= 0);

function rebuildTensor(args: unknown[]): TensorRef {
  const [storage, offset, shape, stride] = args;
  if (
    !(storage instanceof StorageRef) || !Number.isSafeInteger(offset) || !isInts(shape) ||
    !isInts(stride) || shape.length !== stride.length
  ) {
    throw new BadInputError("Bad arguments to torch._utils._rebuild_tensor_v2");
  }
  return new TensorRef(storage, offset as number, shape, stride);
}

/** The pickle hooks of a state dict: storages by key, and the allowed callables only. */
function torchHooks() {
  const storages = new Map<string, StorageRef>();
  return {
    global(module: string, name: string): unknown {
      const q = `${module}.${name}`;
      if (ALLOWED.has(q) || (module === "torch" && name in STORAGES)) {
        return new PyGlobal(module, name);
      }
      throw new BadInputError(
        `The pickle references ${q}, which a state dict does not need; refusing it ` +
          "(loading it would run code). Save the weights alone: " +
          "torch.save(model.state_dict(), path)",
      );
    },
    persistentLoad(pid: unknown): unknown {
      if (!Array.isArray(pid) || pid[0] !== "storage" || pid.length < 5) {
        throw new BadInputError(`Unknown persistent id ${JSON.stringify(String(pid))}`);
      }
      const [, type, key, , numel] = pid;
      if (!(type instanceof PyGlobal) || !(type.name in STORAGES)) {
        throw new BadInputError(`Unsupported storage type ${String(type?.qualified ?? type)}`);
      }
      if (typeof key !== "string" || !Number.isSafeInteger(numel)) {
        throw new BadInputError(`Bad storage persistent id for key ${String(key)}`);
      }
      let s = storages.get(key);
      if (!s) storages.set(key, s = new StorageRef(STORAGES[type.name], key, numel));
      return s;
    },
    reduce(callable: unknown, args: unknown[]): unknown {
      const q = callable instanceof PyGlobal ? callable.qualified : String(callable);
      switch (q) {
        case "collections.OrderedDict": {
          const d = new PyDict();
          if (Array.isArray(args[0])) {
            for (const kv of args[0]) if (Array.isArray(kv)) d.items.set(kv[0], kv[1]);
          }
          return d;
        }
        case "torch._utils._rebuild_tensor":
        case "torch._utils._rebuild_tensor_v2":
          return rebuildTensor(args);
        case "torch._utils._rebuild_parameter":
        case "torch._utils._rebuild_parameter_with_state":
          if (!(args[0] instanceof TensorRef)) {
            throw new BadInputError(`Bad arguments to ${q}`);
          }
          return args[0];
        default:
          throw new BadInputError(`The pickle calls ${q}, which a state dict does not need`);
      }
    },
    build(obj: unknown, state: unknown): unknown {
      if (obj instanceof PyDict && state instanceof PyDict) {
        for (const [k, v] of state.items) obj.attrs.set(String(k), v);
        return obj;
      }
      if (obj instanceof TensorRef) return obj; // a parameter's extra state
      throw new BadInputError(`The pickle sets the state of ${describe(obj)}, not of a dict`);
    },
  };
}

function describe(v: unknown): string {
  if (v instanceof PyDict) return "dict";
  if (v instanceof TensorRef) return "tensor";
  if (Array.isArray(v)) return "list";
  if (v === null) return "None";
  if (v instanceof Uint8Array) return "bytes";
  return typeof v === "string" ? "str" : typeof v;
}

const isStateDict = (v: unknown): v is PyDict =>
  v instanceof PyDict && v.items.size > 0 &&
  [...v.items].every(([k, t]) => typeof k === "string" && t instanceof TensorRef);

/** Whether a dict is a state dict (not a type guard: a dict that is not one stays a dict). */
const tensorsOnly = (d: PyDict): boolean => isStateDict(d);

/** Where a dict's state dict is: the dict itself, or under `key` in `child`. */
type Found = { dict: PyDict; key?: string; child?: PyDict };

/**
 * The state dict inside `root` by the rule of readTorchCheckpoint, with its path. Each
 * dict is judged once however many paths lead to it (a pickle's memo can share a dict
 * under many keys: 64 levels of two keys are 2^64 paths), without recursion (nesting may
 * be as deep as the file is long), and a dict inside itself is not followed.
 */
function findStateDict(root: unknown): { dict: PyDict; path: string[] } | undefined {
  if (!(root instanceof PyDict)) return undefined;
  const result = new Map<PyDict, Found | null | "open">();
  const stack: PyDict[] = [root];
  while (stack.length) {
    const d = stack[stack.length - 1];
    const state = result.get(d);
    if (state === undefined) {
      if (tensorsOnly(d)) {
        result.set(d, { dict: d });
        stack.pop();
        continue;
      }
      result.set(d, "open");
      for (const v of d.items.values()) {
        if (v instanceof PyDict && !result.has(v)) stack.push(v);
      }
      continue;
    }
    stack.pop();
    if (state !== "open") continue; // judged already (reached again through another path)
    const at = (v: unknown) => {
      const r = v instanceof PyDict ? result.get(v) : undefined;
      return typeof r === "object" && r !== null ? r : undefined;
    };
    let found: Found | null = null;
    for (const key of STATE_DICT_KEYS) {
      const r = at(d.items.get(key));
      if (r) {
        found = { dict: r.dict, key, child: d.items.get(key) as PyDict };
        break;
      }
    }
    if (!found) {
      const others = [...d.items]
        .filter(([k]) => !STATE_DICT_KEYS.includes(String(k)))
        .map(([k, v]) => ({ k, v, r: at(v) }))
        .filter((o) => o.r !== undefined);
      if (others.length === 1) {
        found = { dict: others[0].r!.dict, key: String(others[0].k), child: others[0].v as PyDict };
      }
    }
    result.set(d, found);
  }
  const top = result.get(root);
  if (typeof top !== "object" || top === null) return undefined;
  const path: string[] = [];
  for (let f: Found = top; f.key !== undefined;) {
    path.push(f.key);
    const next = result.get(f.child!);
    if (typeof next !== "object" || next === null) break;
    f = next;
  }
  return { dict: top.dict, path };
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

/** An element reader for a storage: value of element `i`. */
function elementReader(dtype: TorchDtype, dv: DataView, le: boolean): (i: number) => number {
  const bits = new Uint32Array(1), asFloat = new Float32Array(bits.buffer);
  switch (dtype) {
    case "F32":
      return (i) => dv.getFloat32(4 * i, le);
    case "F64":
      return (i) => dv.getFloat64(8 * i, le);
    case "F16":
      return (i) => halfToFloat(dv.getUint16(2 * i, le));
    case "BF16":
      return (i) => (bits[0] = dv.getUint16(2 * i, le) << 16, asFloat[0]);
    case "I64":
      return (i) => Number(dv.getBigInt64(8 * i, le));
    case "I32":
      return (i) => dv.getInt32(4 * i, le);
    case "I16":
      return (i) => dv.getInt16(2 * i, le);
    case "I8":
      return (i) => dv.getInt8(i);
    case "U8":
    case "BOOL":
      return (i) => dv.getUint8(i);
  }
}

/** Copies a (possibly strided) tensor out of its storage entry into C order. */
function materialize(
  bytes: Uint8Array,
  entry: ZipEntry,
  ref: TensorRef,
  littleEndian: boolean,
): TorchTensor {
  const { dtype } = ref.storage;
  const size = SIZES[dtype];
  const n = ref.shape.reduce((a, b) => a * b, 1);
  const available = Math.floor(entry.size / size);
  const last = ref.offset + ref.shape.reduce((a, d, i) => a + (d - 1) * ref.stride[i], 0);
  if (n > 0 && last >= available) {
    throw new BadInputError(
      `storage ${ref.storage.key} holds ${available} elements, the tensor reads element ${last}`,
    );
  }
  let contiguous = true;
  for (let a = ref.shape.length - 1, expect = 1; a >= 0; a--) {
    if (ref.shape[a] !== 1 && ref.stride[a] !== expect) contiguous = false;
    expect *= ref.shape[a];
  }
  const at = bytes.byteOffset + entry.offset;
  if (dtype === "F32" && littleEndian && contiguous) {
    const begin = at + 4 * ref.offset;
    const data = begin % 4 === 0
      ? new Float32Array(bytes.buffer, begin, n)
      : new Float32Array(bytes.buffer.slice(begin, begin + 4 * n));
    return { dtype, shape: ref.shape, data };
  }
  const read = elementReader(dtype, new DataView(bytes.buffer, at, entry.size), littleEndian);
  const data = new Float32Array(n);
  if (contiguous) {
    for (let i = 0; i < n; i++) data[i] = read(ref.offset + i);
    return { dtype, shape: ref.shape, data };
  }
  const rank = ref.shape.length, idx = new Array(rank).fill(0);
  let src = ref.offset;
  for (let o = 0; o < n; o++) {
    data[o] = read(src);
    for (let a = rank - 1; a >= 0; a--) {
      src += ref.stride[a];
      if (++idx[a] < ref.shape[a]) break;
      src -= ref.stride[a] * ref.shape[a];
      idx[a] = 0;
    }
  }
  return { dtype, shape: ref.shape, data };
}

/**
 * Reads the state dict of a `torch.save` checkpoint (zip format, PyTorch >= 1.6): a
 * `{key: tensor}` dict pickled in `<archive>/data.pkl` with the tensors' storages in
 * `<archive>/data/<key>`. Tensors of any float, integer or bool storage become float32 in
 * C order; views (storage offsets, non-contiguous strides, storages shared by several
 * tensors) are resolved; big-endian files (a `byteorder` entry of `big`) are swapped.
 *
 * The state dict is, unless `select` names its path: the pickled object itself when it is
 * a dict whose values are all tensors; else the first of `state_dict`, `model`,
 * `model_state_dict`, `net`, `network`, `student`, `module` that holds one (searched
 * recursively by the same rule); else the only other nested dict that holds one.
 *
 * Nothing in the pickle is executed: it may reference only `collections.OrderedDict`,
 * `torch._utils._rebuild_tensor(_v2)`, `torch._utils._rebuild_parameter(_with_state)` and
 * the `torch.*Storage` types, which this reader implements itself; any other global (a
 * pickled model class, `numpy` scalars, `argparse.Namespace`) is refused with a
 * `TypeError` naming it. Malformed files throw a `SyntaxError` with the reason.
 */
export function readTorchCheckpoint(
  bytes: Uint8Array,
  options: ReadTorchCheckpointOptions = {},
): TorchCheckpoint {
  const { select } = options;
  if (!(bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04)) {
    const legacy = (bytes[0] === 0x80 && bytes[2] === 0x8a) ||
      new TextDecoder().decode(bytes.subarray(257, 262)) === "ustar";
    throw new BadInputError(
      legacy
        ? "Legacy torch.save format (PyTorch < 1.6 or _use_new_zipfile_serialization=False) " +
          "is not supported; load and save it again with a recent PyTorch"
        : "Not a torch.save zip archive (no PK\\x03\\x04 signature)",
    );
  }
  const entries = readZipDirectory(bytes);
  const pkl = [...entries.keys()].find((k) => /^[^/]+\/data\.pkl$/.test(k));
  if (!pkl) throw new BadInputError("Not a torch.save archive: no <archive>/data.pkl entry");
  const archive = pkl.slice(0, -"/data.pkl".length);
  const content = (entry: ZipEntry) => {
    if (entry.method !== 0) {
      throw new BadInputError(
        `Entry ${entry.name} is compressed (method ${entry.method}); torch.save stores ` +
          "entries uncompressed (was the file re-zipped?)",
      );
    }
    return bytes.subarray(entry.offset, entry.offset + entry.size);
  };
  const order = entries.get(`${archive}/byteorder`);
  const littleEndian = !order || new TextDecoder().decode(content(order)).trim() !== "big";
  const root = unpickle(content(entries.get(pkl)!), torchHooks());

  let found: { dict: PyDict; path: string[] } | undefined;
  if (select !== undefined) {
    const path = select.split(".").filter((p) => p);
    let v: unknown = root;
    for (const p of path) v = v instanceof PyDict ? v.items.get(p) : undefined;
    if (!isStateDict(v)) {
      throw new BadInputError(`The checkpoint has no state dict at "${select}" (${describe(v)})`);
    }
    found = { dict: v, path };
  } else {
    found = findStateDict(root);
  }
  if (!found) {
    const keys = root instanceof PyDict
      ? [...root.items].map(([k, v]) => `${String(k)} (${describe(v)})`).join(", ")
      : describe(root);
    throw new BadInputError(`No state dict of tensors found in the checkpoint; it holds ${keys}`);
  }
  const tensors = new Map<string, TorchTensor>();
  for (const [key, ref] of found.dict.items as Map<string, TensorRef>) {
    const entry = entries.get(`${archive}/data/${ref.storage.key}`);
    if (!entry) {
      throw new BadInputError(`Tensor ${key}: storage ${ref.storage.key} is not in the archive`);
    }
    content(entry); // stored, not compressed
    try {
      tensors.set(key, materialize(bytes, entry, ref, littleEndian));
    } catch (e) {
      const err = e as Error;
      throw new BadInputError(`Tensor ${key}: ${err.message}`, { cause: e });
    }
  }
  return { tensors, location: found.path, archive };
}
