// Tests of the safetensors reader and writer.
import { readSafetensors, writeSafetensors } from "../../../train/weights/safetensors.ts";
import { assert, assertEquals } from "../../_helpers.ts";

Deno.test("writeSafetensors() then readSafetensors() gives the tensors and metadata back", () => {
  const a = Float32Array.from({ length: 24 }, (_, i) => i * 0.5 - 3);
  const bytes = writeSafetensors([
    ["a.weight", { shape: [2, 3, 4], data: a }],
    ["b.index", { shape: [2, 2], data: [0, 7, -3, 9], dtype: "I64" }],
  ], { format: "pt" });
  const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assertEquals((8 + headerLength) % 8, 0, "data aligned to 8 bytes");
  const { tensors, metadata } = readSafetensors(bytes);
  assertEquals(metadata, { format: "pt" });
  assertEquals([...tensors.keys()], ["a.weight", "b.index"]);
  assertEquals(tensors.get("a.weight")!.shape, [2, 3, 4]);
  assertEquals([...tensors.get("a.weight")!.data], [...a]);
  assertEquals(tensors.get("b.index")!.dtype, "I64");
  assertEquals([...tensors.get("b.index")!.data], [0, 7, -3, 9]);
});

Deno.test("readSafetensors() rejects malformed files with the reason", () => {
  const ok = writeSafetensors([["x", { shape: [4], data: [1, 2, 3, 4] }]]);
  for (
    const [bytes, pattern] of [
      [ok.subarray(0, 5), /shorter than 8 bytes/],
      [ok.subarray(0, ok.length - 4), /offsets .* do not fit/],
      [Uint8Array.from([255, 255, 0, 0, 0, 0, 0, 0, 1, 2]), /exceeds the file/],
    ] as const
  ) {
    let message = "no error";
    try {
      readSafetensors(bytes);
    } catch (e) {
      message = (e as Error).message;
    }
    assert(pattern.test(message), `"${message}" does not match ${pattern}`);
  }
});
