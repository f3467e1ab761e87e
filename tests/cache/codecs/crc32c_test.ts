// Tests of the CRC-32C and the checking crc32c codec.
import {
  appendCrc32c,
  checkCrc32c,
  ChecksumError,
  crc32c,
  Crc32cCodec,
  crc32cInHardware,
  crc32cTables,
} from "../../../cache/codecs/crc32c.ts";
import { assert, assertEquals, assertRejects } from "../../_helpers.ts";

/** The bit-by-bit definition, to check the tables against. */
function slowCrc32c(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return ~c >>> 0;
}

Deno.test("crc32c() gives the standard's check value and the bitwise result at every length", () => {
  assertEquals(crc32c(new TextEncoder().encode("123456789")), 0xe3069283);
  assertEquals(crc32c(new Uint8Array(0)), 0);
  // 32 zero bytes: the iSCSI test vector (RFC 3720, B.4).
  assertEquals(crc32c(new Uint8Array(32)), 0x8a9136aa);
  const bytes = new Uint8Array(300).map((_, i) => (i * 131 + 7) & 0xff);
  for (let n = 0; n < bytes.length; n += 7) {
    assertEquals(crc32c(bytes.subarray(0, n)), slowCrc32c(bytes.subarray(0, n)), `length ${n}`);
    // Continuing from the CRC of a prefix gives the CRC of the whole.
    const half = n >> 1;
    assertEquals(
      crc32c(bytes.subarray(half, n), crc32c(bytes.subarray(0, half))),
      slowCrc32c(bytes.subarray(0, n)),
    );
  }
});

Deno.test("crc32c() through ISA-L equals the tables at every length, offset and start", () => {
  if (!crc32cInHardware()) {
    console.warn("Skipping ISA-L's CRC-32C: libisal.so.2 (Debian's libisal2) is not installed.");
    return;
  }
  const bytes = new Uint8Array(70_000).map((_, i) => (i * 2654435761) >>> 13 & 0xff);
  let seed = 7;
  const rand = (n: number) => (seed = (seed * 1664525 + 1013904223) >>> 0) % n;
  for (let t = 0; t < 300; t++) {
    const from = rand(64), n = t < 40 ? 250 + t : rand(bytes.length - from);
    const part = bytes.subarray(from, from + n);
    const start = rand(0x7fffffff) * 2 + rand(2);
    assertEquals(crc32c(part, start), crc32cTables(part, start), `${n} bytes at ${from}`);
  }
  assertEquals(crc32c(new Uint8Array(1000)), slowCrc32c(new Uint8Array(1000)));
  // A damaged byte changes it, as in the tables.
  const damaged = bytes.slice(0, 5000);
  damaged[4321] ^= 0x10;
  assert(crc32c(damaged) !== crc32c(bytes.subarray(0, 5000)));
});

Deno.test("the crc32c codec appends the checksum little endian and refuses damaged bytes", async () => {
  const codec = Crc32cCodec.fromConfig();
  const body = new TextEncoder().encode("123456789");
  const enc = codec.encode(body);
  assertEquals(Array.from(enc.subarray(9)), [0x83, 0x92, 0x06, 0xe3]);
  assertEquals(codec.computeEncodedSize(9), 13);
  assertEquals(Array.from(codec.decode(enc)), Array.from(body));
  const bad = appendCrc32c(body);
  bad[3] ^= 1;
  const e = await assertRejects(
    () => checkCrc32c(bad),
    /crc32c mismatch: stored 0xe3069283, computed 0x[0-9a-f]{8} over 9 bytes/,
  );
  assert(e instanceof ChecksumError);
  await assertRejects(() => codec.decode(new Uint8Array(3)), /too short to hold a checksum/);
});
