// Tests of the TensorBoard event files: protobuf bytes as event.proto lays them out, TFRecord
// framing with masked CRC-32C read back and checked, damage detected, a resumed run's START.
import {
  decodeEvent,
  EventWriter,
  maskedCrc32c,
  readScalars,
  readTfRecords,
  scalarEvent,
  tfRecord,
} from "../../../train/run/tfevents.ts";
import { crc32c } from "../../../cache/codecs/crc32c.ts";
import { assert, assertEquals, tempDir } from "../../_helpers.ts";

Deno.test("scalarEvent() lays out an Event with a Summary as event.proto numbers its fields", () => {
  const bytes = scalarEvent(5, { loss: 1.5 }, 0);
  const f32 = new Uint8Array(new Float32Array([1.5]).buffer);
  const value = [0x0a, 4, ...new TextEncoder().encode("loss"), 0x15, ...f32];
  const expected = [
    0x09,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0, // wall_time: field 1, fixed64
    0x10,
    5, // step: field 2, varint
    0x2a,
    value.length + 2,
    0x0a,
    value.length,
    ...value, // summary (5) > value (1)
  ];
  assertEquals([...bytes], expected);
  // A large step takes a multi-byte varint.
  assertEquals(decodeEvent(scalarEvent(300_000, { a: 1 }, 1.5)).step, 300_000);
});

Deno.test("tfRecord() frames data with masked CRC-32Cs that readTfRecords() checks", () => {
  const data = new TextEncoder().encode("123456789");
  const rec = tfRecord(data);
  const view = new DataView(rec.buffer);
  assertEquals(Number(view.getBigUint64(0, true)), 9);
  const c = 0xe3069283; // the CRC-32C check value of "123456789"
  assertEquals(crc32c(data), c);
  assertEquals(view.getUint32(12 + 9, true), ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0);
  assertEquals(maskedCrc32c(new Uint8Array(0)), 0xa282ead8, "the mask of an empty record");
  assertEquals(readTfRecords(rec).map((r) => new TextDecoder().decode(r)), ["123456789"]);
  // Every single-byte change is caught, in the header and in the data.
  for (let i = 0; i < rec.length; i++) {
    const bad = rec.slice();
    bad[i] ^= 0x10;
    let threw = false;
    try {
      readTfRecords(bad);
    } catch {
      threw = true;
    }
    assert(threw, `damage at byte ${i} went unnoticed`);
  }
  const two = new Uint8Array([...rec, ...tfRecord(new Uint8Array([1, 2]))]);
  assertEquals(readTfRecords(two).length, 2);
  const cut = two.subarray(0, two.length - 3);
  let message = "";
  try {
    readTfRecords(cut);
  } catch (e) {
    message = (e as Error).message;
  }
  assert(/at byte 25: cut/.test(message), message);
  assertEquals(readTfRecords(cut, true).length, 1, "a file being written: the cut tail waits");
});

Deno.test("EventWriter writes a file TensorBoard reads: version first, then scalars by step", async () => {
  await using dir = await tempDir();
  let t = 1_700_000_000;
  const w = await EventWriter.create(dir.path, { host: "host/a b", now: () => t++ });
  assert(/events\.out\.tfevents\.1700000000\.host_a_b\.\d+$/.test(w.path), w.path);
  await w.scalars(1, { "loss/loss": 2.5, "train/lr": 1e-4 });
  await w.sessionStart(2);
  await w.scalars(2, { "loss/loss": NaN });
  const bytes = await Deno.readFile(w.path);
  const events = readTfRecords(bytes).map(decodeEvent);
  assertEquals(events[0].fileVersion, "brain.Event:2");
  assertEquals(events[2].sessionStatus, 1);
  assertEquals(events[2].step, 2);
  const scalars = readScalars(bytes);
  assertEquals(scalars.map((s) => [s.step, s.tag]), [[1, "loss/loss"], [1, "train/lr"], [
    2,
    "loss/loss",
  ]]);
  assertEquals(scalars[1].value, Math.fround(1e-4));
  assert(Number.isNaN(scalars[2].value), "NaN kept, as TensorBoard shows it");
  assertEquals(scalars[0].wallTime, 1_700_000_002);
  // A second writer in the same second gets its own file.
  t = 1_700_000_000;
  const w2 = await EventWriter.create(dir.path, { host: "host/a b", now: () => t });
  assert(w2.path !== w.path, "two writers, two files");
});
