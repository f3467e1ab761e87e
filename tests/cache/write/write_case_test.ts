// Tests of the chunk codecs a case is written with: each compressor's level range.
import { chunkCodecs } from "../../../cache/write/write_case.ts";
import { COMPRESSOR_LEVELS } from "../../../cache/format/format.ts";
import { assertEquals, assertRejects } from "../../_helpers.ts";

const ENC = { dtype: "uint16" } as const;

Deno.test("chunkCodecs() refuses a level outside the compressor's range", async () => {
  assertEquals(COMPRESSOR_LEVELS["blosc-lz4"], [0, 9]);
  assertEquals(chunkCodecs("blosc-zstd", ENC, 9)[1].configuration?.clevel, 9);
  assertEquals(chunkCodecs("zstd", ENC, 22)[1].configuration?.level, 22);
  await assertRejects(
    () => chunkCodecs("blosc-zstd", ENC, 15),
    /level 15 is outside blosc-zstd's range 0\.\.9/,
  );
  await assertRejects(() => chunkCodecs("blosc-lz4", ENC, -1), /outside blosc-lz4's range/);
  await assertRejects(() => chunkCodecs("zstd", ENC, 0), /outside zstd's range 1\.\.22/);
  assertEquals(chunkCodecs("none", ENC, 0).map((c) => c.name), ["bytes", "crc32c"]);
});
