// A small pickle virtual machine for the data that PyTorch state dicts hold (protocols 2-5:
// containers, numbers, strings, memo, persistent ids). It never imports or calls anything:
// a global is a name handed to the caller's `global` hook, which refuses all but the few it
// implements itself, and REDUCE / NEWOBJ / BUILD go to hooks likewise.
import { BadInputError } from "../../cache/errors.ts";

/** A Python dict (plain or `collections.OrderedDict`), its keys in insertion order. */
export class PyDict {
  /** Items; keys are strings, numbers, booleans, null, or the objects themselves. */
  readonly items = new Map<unknown, unknown>();
  /** Attributes set by BUILD (an OrderedDict state dict's `_metadata`). */
  readonly attrs = new Map<string, unknown>();
}

/** A global (`module.name`) that the caller's hook accepted. */
export class PyGlobal {
  constructor(readonly module: string, readonly name: string) {}
  /** `module.name`. */
  get qualified(): string {
    return `${this.module}.${this.name}`;
  }
}

/** What the unpickler asks of its caller. */
export interface PickleHooks {
  /** Resolves `module.name`; throws to refuse it. */
  global(module: string, name: string): unknown;
  /** Builds the object for a persistent id (BINPERSID / PERSID). */
  persistentLoad(pid: unknown): unknown;
  /** Applies a callable to arguments (REDUCE, and NEWOBJ with `cls.__new__(cls, *args)`). */
  reduce(callable: unknown, args: unknown[]): unknown;
  /** Sets the state of an object (BUILD); returns the object to keep on the stack. */
  build(obj: unknown, state: unknown): unknown;
}

/** Runs a pickle and returns the object it builds. Throws a `BadInputError` for bad input. */
export function unpickle(bytes: Uint8Array, hooks: PickleHooks): unknown {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const text = new TextDecoder("utf-8", { fatal: true });
  const latin1 = new TextDecoder("latin1");
  let stack: unknown[] = [];
  const marks: unknown[][] = [];
  const memo = new Map<number, unknown>();
  let at = 0;
  const need = (n: number) => {
    if (at + n > bytes.length) throw new BadInputError(`Pickle truncated at byte ${at}`);
    const start = at;
    at += n;
    return start;
  };
  const u8 = () => bytes[need(1)];
  const u16 = () => view.getUint16(need(2), true);
  const u32 = () => view.getUint32(need(4), true);
  const u64 = () => Number(view.getBigUint64(need(8), true));
  const raw = (n: number) => bytes.subarray(need(n), at);
  const line = () => {
    const end = bytes.indexOf(0x0a, at);
    if (end < 0) throw new BadInputError(`Pickle truncated at byte ${at}`);
    const s = latin1.decode(bytes.subarray(at, end));
    at = end + 1;
    return s;
  };
  const pop = () => {
    if (!stack.length) throw new BadInputError(`Pickle stack underflow at byte ${at}`);
    return stack.pop();
  };
  const top = () => stack[stack.length - 1];
  const popMark = () => {
    const items = stack;
    const prev = marks.pop();
    if (!prev) throw new BadInputError(`Pickle has no MARK for the opcode at byte ${at - 1}`);
    stack = prev;
    return items;
  };
  const long = (b: Uint8Array) => {
    // Little-endian two's complement; a number when safe, else a bigint.
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
    if (b.length && b[b.length - 1] & 0x80) v -= 1n << BigInt(8 * b.length);
    return Number.isSafeInteger(Number(v)) ? Number(v) : v;
  };
  const setItems = (dict: unknown, kv: unknown[]) => {
    if (!(dict instanceof PyDict)) throw new BadInputError("Pickle sets items on a non-dict");
    for (let i = 0; i + 1 < kv.length; i += 2) dict.items.set(kv[i], kv[i + 1]);
  };
  const append = (list: unknown, values: unknown[]) => {
    if (!Array.isArray(list)) throw new BadInputError("Pickle appends to a non-list");
    list.push(...values);
  };
  for (;;) {
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        u8();
        break;
      case 0x95: // FRAME
        u64();
        break;
      case 0x2e: // STOP
        return pop();
      case 0x28: // MARK
        marks.push(stack);
        stack = [];
        break;
      case 0x30: // POP
        pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new PyDict());
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push([]);
        break;
      case 0x74: // TUPLE
      case 0x6c: { // LIST
        const items = popMark(); // before reading `stack`: popMark() replaces it
        stack.push(items);
        break;
      }
      case 0x85: // TUPLE1
        stack.push([pop()]);
        break;
      case 0x86: { // TUPLE2
        const b = pop(), a = pop();
        stack.push([a, b]);
        break;
      }
      case 0x87: { // TUPLE3
        const c = pop(), b = pop(), a = pop();
        stack.push([a, b, c]);
        break;
      }
      case 0x64: { // DICT
        const d = new PyDict();
        setItems(d, popMark());
        stack.push(d);
        break;
      }
      case 0x61: { // APPEND
        const v = pop();
        append(top(), [v]);
        break;
      }
      case 0x65: { // APPENDS
        const values = popMark();
        append(top(), values);
        break;
      }
      case 0x73: { // SETITEM
        const v = pop(), k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: { // SETITEMS
        const kv = popMark();
        setItems(top(), kv);
        break;
      }
      case 0x8f: // EMPTY_SET
        stack.push([]);
        break;
      case 0x90: { // ADDITEMS
        const values = popMark();
        append(top(), values);
        break;
      }
      case 0x91: { // FROZENSET
        const items = popMark();
        stack.push(items);
        break;
      }
      case 0x4a: // BININT
        stack.push(view.getInt32(need(4), true));
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x8a: // LONG1
        stack.push(long(raw(u8())));
        break;
      case 0x8b: // LONG4
        stack.push(long(raw(u32())));
        break;
      case 0x49: { // INT (text; "00"/"01" are False/True in protocol 0)
        const s = line();
        stack.push(s === "00" ? false : s === "01" ? true : Number(s));
        break;
      }
      case 0x4c: // LONG (text)
        stack.push(Number(line().replace(/L$/, "")));
        break;
      case 0x47: // BINFLOAT (big-endian double)
        stack.push(view.getFloat64(need(8), false));
        break;
      case 0x46: // FLOAT (text)
        stack.push(Number(line()));
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x58: // BINUNICODE
        stack.push(text.decode(raw(u32())));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(text.decode(raw(u8())));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(text.decode(raw(u64())));
        break;
      case 0x54: // BINSTRING (Python 2 str)
        stack.push(latin1.decode(raw(u32())));
        break;
      case 0x55: // SHORT_BINSTRING
        stack.push(latin1.decode(raw(u8())));
        break;
      case 0x42: // BINBYTES
        stack.push(raw(u32()).slice());
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(raw(u8()).slice());
        break;
      case 0x8e: // BINBYTES8
      case 0x96: // BYTEARRAY8
        stack.push(raw(u64()).slice());
        break;
      case 0x63: { // GLOBAL
        const module = line();
        stack.push(hooks.global(module, line()));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop(), module = pop();
        if (typeof module !== "string" || typeof name !== "string") {
          throw new BadInputError("Pickle STACK_GLOBAL without module and name strings");
        }
        stack.push(hooks.global(module, name));
        break;
      }
      case 0x52: { // REDUCE
        const args = pop(), callable = pop();
        if (!Array.isArray(args)) {
          throw new BadInputError("Pickle REDUCE without an argument tuple");
        }
        stack.push(hooks.reduce(callable, args));
        break;
      }
      case 0x81: { // NEWOBJ
        const args = pop(), cls = pop();
        if (!Array.isArray(args)) {
          throw new BadInputError("Pickle NEWOBJ without an argument tuple");
        }
        stack.push(hooks.reduce(cls, args));
        break;
      }
      case 0x62: { // BUILD
        const state = pop();
        stack.push(hooks.build(pop(), state));
        break;
      }
      case 0x51: // BINPERSID
        stack.push(hooks.persistentLoad(pop()));
        break;
      case 0x50: // PERSID
        stack.push(hooks.persistentLoad(line()));
        break;
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x70: // PUT
        memo.set(Number(line()), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
      case 0x6a: // LONG_BINGET
      case 0x67: { // GET
        const key = op === 0x68 ? u8() : op === 0x6a ? u32() : Number(line());
        if (!memo.has(key)) throw new BadInputError(`Pickle reads memo ${key} before it is set`);
        stack.push(memo.get(key));
        break;
      }
      default:
        throw new BadInputError(
          `Unsupported pickle opcode 0x${op.toString(16).padStart(2, "0")} ` +
            `(${JSON.stringify(String.fromCharCode(op))}) at byte ${at - 1}`,
        );
    }
  }
}
