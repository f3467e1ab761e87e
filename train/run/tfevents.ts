// TensorBoard event files (`events.out.tfevents.*`) written without TensorFlow: TFRecord
// framing (length, masked CRC-32C of the length, the record, masked CRC-32C of the record)
// around hand-encoded protobuf `Event` messages holding scalar `Summary` values, so that
// `tensorboard --logdir runs` shows a run's curves. A reader of the same files is here too,
// for tests and for the viewer.
import { crc32c } from "../../cache/codecs/crc32c.ts";

/** One scalar read back from an event file. */
export interface ScalarEvent {
  /** The optimiser step. */
  step: number;
  /** Seconds since the epoch when it was written. */
  wallTime: number;
  /** The scalar's tag (`loss`, `lr`, ...). */
  tag: string;
  /** Its value (float32, as TensorBoard stores it). */
  value: number;
}

/** One event of a file, decoded as far as this module writes them. */
export interface DecodedEvent {
  /** Seconds since the epoch. */
  wallTime: number;
  /** The step (0 when absent). */
  step: number;
  /** `brain.Event:2` on a file's first event. */
  fileVersion?: string;
  /** A session log's status (1 START: TensorBoard drops earlier events from `step` on). */
  sessionStatus?: number;
  /** Scalars of the event's summary. */
  scalars: { tag: string; value: number }[];
}

/** TFRecord's masked CRC-32C (`((crc >>> 15) | (crc << 17)) + 0xa282ead8`). */
export function maskedCrc32c(bytes: Uint8Array): number {
  const c = crc32c(bytes);
  return ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/** One TFRecord: 8-byte length, its masked CRC, the data, the data's masked CRC. */
export function tfRecord(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(16 + data.length);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(data.length), true);
  view.setUint32(8, maskedCrc32c(out.subarray(0, 8)), true);
  out.set(data, 12);
  view.setUint32(12 + data.length, maskedCrc32c(data), true);
  return out;
}

/** A minimal protobuf writer: varints, fixed 32/64-bit fields, length-delimited fields. */
class Proto {
  readonly #bytes: number[] = [];
  #varint(v: bigint): void {
    let x = BigInt.asUintN(64, v);
    while (x >= 0x80n) {
      this.#bytes.push(Number(x & 0x7fn) | 0x80);
      x >>= 7n;
    }
    this.#bytes.push(Number(x));
  }
  #key(field: number, wire: number): void {
    this.#varint(BigInt((field << 3) | wire));
  }
  int(field: number, v: number): this {
    this.#key(field, 0);
    this.#varint(BigInt(Math.trunc(v)));
    return this;
  }
  double(field: number, v: number): this {
    this.#key(field, 1);
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, v, true);
    this.#bytes.push(...b);
    return this;
  }
  float(field: number, v: number): this {
    this.#key(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.#bytes.push(...b);
    return this;
  }
  bytes(field: number, v: Uint8Array | string): this {
    const b = typeof v === "string" ? new TextEncoder().encode(v) : v;
    this.#key(field, 2);
    this.#varint(BigInt(b.length));
    this.#bytes.push(...b);
    return this;
  }
  done(): Uint8Array {
    return Uint8Array.from(this.#bytes);
  }
}

// Field numbers of tensorflow/core/util/event.proto and framework/summary.proto.
const EVENT = { wallTime: 1, step: 2, fileVersion: 3, summary: 5, sessionLog: 6 };
const SUMMARY_VALUE = 1, VALUE_TAG = 1, VALUE_SIMPLE = 2, SESSION_STATUS = 1;

/** The bytes of an `Event` holding `scalars` at `step` (non-finite values are kept). */
export function scalarEvent(
  step: number,
  scalars: Readonly<Record<string, number>>,
  wallTime: number,
): Uint8Array {
  const summary = new Proto();
  for (const [tag, value] of Object.entries(scalars)) {
    summary.bytes(
      SUMMARY_VALUE,
      new Proto().bytes(VALUE_TAG, tag).float(VALUE_SIMPLE, value).done(),
    );
  }
  return new Proto().double(EVENT.wallTime, wallTime).int(EVENT.step, step)
    .bytes(EVENT.summary, summary.done()).done();
}

/** The first event of every file: `file_version: "brain.Event:2"`. */
export function fileVersionEvent(wallTime: number): Uint8Array {
  return new Proto().double(EVENT.wallTime, wallTime).bytes(EVENT.fileVersion, "brain.Event:2")
    .done();
}

/**
 * A `SessionLog` START at `step`: TensorBoard then drops the events of earlier files from
 * `step` on (a resumed run's steps after its checkpoint, which it redoes).
 */
export function sessionStartEvent(step: number, wallTime: number): Uint8Array {
  const log = new Proto().int(SESSION_STATUS, 1).done();
  return new Proto().double(EVENT.wallTime, wallTime).int(EVENT.step, step)
    .bytes(EVENT.sessionLog, log).done();
}

/** Options of {@linkcode EventWriter.create}. */
export interface EventWriterOptions {
  /** Host name in the file name. @default {Deno.hostname(), or "localhost"} */
  host?: string;
  /** Seconds since the epoch, for the file name and each event. @default {Date.now() / 1000} */
  now?: () => number;
}

/**
 * Appends TensorBoard events to a new `events.out.tfevents.<time>.<host>.<pid>` file in a
 * folder: each `scalars` call is one record written at once (a crash loses nothing written).
 */
export class EventWriter {
  /** The file's path. */
  readonly path: string;
  readonly #now: () => number;

  private constructor(path: string, now: () => number) {
    this.path = path;
    this.#now = now;
  }

  /** Creates the file in `dir` with its `file_version` event. */
  static async create(dir: string, options: EventWriterOptions = {}): Promise<EventWriter> {
    const now = options.now ?? (() => Date.now() / 1000);
    let host = options.host;
    if (host === undefined) {
      try {
        host = Deno.hostname();
      } catch {
        host = "localhost";
      }
    }
    const safeHost = host.replace(/[^\w.-]/g, "_") || "localhost";
    const base = `${dir}/events.out.tfevents.${Math.floor(now())}.${safeHost}.${Deno.pid}`;
    let path = base;
    for (let i = 1; await exists(path); i++) path = `${base}.${i}`;
    const w = new EventWriter(path, now);
    await Deno.writeFile(path, tfRecord(fileVersionEvent(now())), { createNew: true });
    return w;
  }

  /** Appends one event of scalars at `step`. */
  async scalars(step: number, values: Readonly<Record<string, number>>): Promise<void> {
    await Deno.writeFile(this.path, tfRecord(scalarEvent(step, values, this.#now())), {
      append: true,
    });
  }

  /** Appends a session START at `step` (see {@linkcode sessionStartEvent}). */
  async sessionStart(step: number): Promise<void> {
    await Deno.writeFile(this.path, tfRecord(sessionStartEvent(step, this.#now())), {
      append: true,
    });
  }
}

async function exists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

/**
 * The records of a TFRecord file, each checked against its two masked CRCs. A damaged or
 * cut record throws naming its offset, unless `tolerateTail` (a file being written: a cut
 * last record ends the list).
 */
export function readTfRecords(bytes: Uint8Array, tolerateTail = false): Uint8Array[] {
  const out: Uint8Array[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  while (at < bytes.length) {
    if (at + 12 > bytes.length) {
      if (tolerateTail) break;
      throw new RangeError(`TFRecord at byte ${at}: cut in its header`);
    }
    const len = Number(view.getBigUint64(at, true));
    if (view.getUint32(at + 8, true) !== maskedCrc32c(bytes.subarray(at, at + 8))) {
      throw new RangeError(`TFRecord at byte ${at}: its length fails its CRC`);
    }
    if (at + 16 + len > bytes.length) {
      if (tolerateTail) break;
      throw new RangeError(`TFRecord at byte ${at}: cut (${len} bytes announced)`);
    }
    const data = bytes.subarray(at + 12, at + 12 + len);
    if (view.getUint32(at + 12 + len, true) !== maskedCrc32c(data)) {
      throw new RangeError(`TFRecord at byte ${at}: its data fail their CRC`);
    }
    out.push(data);
    at += 16 + len;
  }
  return out;
}

/** Fields of one protobuf message: number -> values (varints as bigint, others raw). */
function fields(bytes: Uint8Array): Map<number, (bigint | Uint8Array)[]> {
  const out = new Map<number, (bigint | Uint8Array)[]>();
  let at = 0;
  const varint = (): bigint => {
    let v = 0n, shift = 0n;
    for (;;) {
      if (at >= bytes.length) throw new RangeError("protobuf varint runs past the message");
      const b = bytes[at++];
      v |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
      shift += 7n;
    }
  };
  while (at < bytes.length) {
    const key = Number(varint()), field = key >>> 3, wire = key & 7;
    let value: bigint | Uint8Array;
    if (wire === 0) value = varint();
    else if (wire === 1 || wire === 5) {
      const n = wire === 1 ? 8 : 4;
      value = bytes.subarray(at, at + n);
      at += n;
    } else if (wire === 2) {
      const n = Number(varint());
      value = bytes.subarray(at, at + n);
      at += n;
    } else throw new RangeError(`protobuf wire type ${wire} is not read here`);
    if (at > bytes.length) throw new RangeError("protobuf field runs past the message");
    out.set(field, [...(out.get(field) ?? []), value]);
  }
  return out;
}

const raw = (v: bigint | Uint8Array | undefined) => v instanceof Uint8Array ? v : undefined;
const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

/** Decodes one `Event` message (wall time, step, file version, session status, scalars). */
export function decodeEvent(bytes: Uint8Array): DecodedEvent {
  const f = fields(bytes);
  const wt = raw(f.get(EVENT.wallTime)?.[0]);
  const step = f.get(EVENT.step)?.[0];
  const version = raw(f.get(EVENT.fileVersion)?.[0]);
  const log = raw(f.get(EVENT.sessionLog)?.[0]);
  const scalars: DecodedEvent["scalars"] = [];
  const summary = raw(f.get(EVENT.summary)?.[0]);
  for (const v of summary ? fields(summary).get(SUMMARY_VALUE) ?? [] : []) {
    const vf = fields(raw(v)!);
    const tag = raw(vf.get(VALUE_TAG)?.[0]), value = raw(vf.get(VALUE_SIMPLE)?.[0]);
    if (tag && value) {
      scalars.push({ tag: new TextDecoder().decode(tag), value: dv(value).getFloat32(0, true) });
    }
  }
  const status = log ? fields(log).get(SESSION_STATUS)?.[0] : undefined;
  return {
    wallTime: wt ? dv(wt).getFloat64(0, true) : 0,
    step: typeof step === "bigint" ? Number(step) : 0,
    ...(version ? { fileVersion: new TextDecoder().decode(version) } : {}),
    ...(typeof status === "bigint" ? { sessionStatus: Number(status) } : {}),
    scalars,
  };
}

/** Every scalar of an event file's bytes, in file order (see {@linkcode readTfRecords}). */
export function readScalars(bytes: Uint8Array, tolerateTail = false): ScalarEvent[] {
  return readTfRecords(bytes, tolerateTail).map(decodeEvent).flatMap((e) =>
    e.scalars.map((s) => ({ step: e.step, wallTime: e.wallTime, ...s }))
  );
}
