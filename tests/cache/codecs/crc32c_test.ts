// Tests of the CRC-32C and the checking crc32c codec.
import {
  appendCrc32c,
  checkCrc32c,
  ChecksumError,
  crc32c,
  Crc32cCodec,
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
