// Hostile weight files, generated here: a pickle whose shared dicts make 2^64 paths, nesting
// 300,000 deep (pickle and safetensors), a 100 MB safetensors header. Each is refused
// quickly, with a clear message, using little memory.
import { join } from "node:path";
import { readTorchCheckpoint } from "../../../train/weights/torch_checkpoint.ts";
import { readSafetensors } from "../../../train/weights/safetensors.ts";
import { loadInitWeights } from "../../../train/swin/init_weights.ts";
import { swinConfig } from "../../../train/swin/config.ts";
import { torchSave } from "../_torch_save.ts";
import { assert, assertRejects, tempDir } from "../../_helpers.ts";

const str = (s: string) => [0x8c, s.length, ...new TextEncoder().encode(s)];

/** 64 levels of `{"a": d, "b": d}` over one shared `d` (memo gets): 2^64 paths, 1.4 kB. */
function dagPickle(levels = 64): Uint8Array {
  const b: number[] = [0x80, 2];
  b.push(0x7d, 0x71, 0, ...str("x"), 0x4b, 1, 0x73, 0x30); // d0 = {"x": 1}; POP
  for (let i = 1; i <= levels; i++) {
    // d_i = {"a": d_(i-1), "b": d_(i-1)}; POP
    b.push(0x7d, 0x71, i, 0x28, ...str("a"), 0x68, i - 1, ...str("b"), 0x68, i - 1, 0x75, 0x30);
  }
  b.push(0x68, levels, 0x2e); // the top one; STOP
  return Uint8Array.from(b);
}

/** `{"a": {"a": ... {} ...}}`, `depth` deep, built on the pickle stack without a memo. */
function deepPickle(depth: number): Uint8Array {
  const out = new Uint8Array(2 + depth * 4 + 1 + depth + 1);
  out.set([0x80, 2]);
  let at = 2;
  for (let i = 0; i < depth; i++) (out.set([0x7d, ...str("a")], at), at += 4);
  out[at++] = 0x7d;
  out.fill(0x73, at, at + depth); // SETITEM, innermost first
  out[at + depth] = 0x2e;
  return out;
}

Deno.test("a torch.save pickle of shared dicts with 2^64 paths is searched once per dict", () => {
  const bytes = torchSave(null, { pickle: dagPickle() });
  assert(bytes.length < 4096, `${bytes.length} bytes`);
  const t0 = performance.now();
  const e = (() => {
    try {
      readTorchCheckpoint(bytes);
    } catch (e) {
      return e as Error;
    }
  })();
  assert(
    e &&
      /No state dict of tensors found in the checkpoint; it holds a \(dict\), b \(dict\)/.test(
        e.message,
      ),
    String(e),
  );
  assert(performance.now() - t0 < 2000, `${performance.now() - t0} ms`);
});

Deno.test("nesting 300,000 deep in a pickle or a safetensors header gives a clear error", async () => {
  const t0 = performance.now();
  await assertRejects(
    () => readTorchCheckpoint(torchSave(null, { pickle: deepPickle(300_000) })),
    /No state dict of tensors found in the checkpoint; it holds a \(dict\)/,
  );
  const json = `{"w":${"[".repeat(300_000)}${"]".repeat(300_000)}}`;
  const head = new TextEncoder().encode(json);
  const file = new Uint8Array(8 + head.length);
  new DataView(file.buffer).setBigUint64(0, BigInt(head.length), true);
  file.set(head, 8);
  await assertRejects(
    () => readSafetensors(file),
    /Tensor w: not a \{dtype, shape, data_offsets\}/,
  );
  assert(performance.now() - t0 < 10_000, `${performance.now() - t0} ms`);
});

Deno.test("a 100 MB safetensors header is refused before it is decoded", async () => {
  await using tmp = await tempDir();
  const path = join(tmp.path, "huge.safetensors");
  const size = 100_000_000;
  // Only the header, written a megabyte at a time: entries of valid JSON, then a brace.
  const entry = new TextEncoder().encode(
    '"t0000000":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},',
  );
  const block = new Uint8Array(1 << 20);
  for (let i = 0; i + entry.length <= block.length; i += entry.length) block.set(entry, i);
  block.fill(0x20, Math.floor(block.length / entry.length) * entry.length);
  const f = await Deno.open(path, { write: true, create: true });
  try {
    const len = new Uint8Array(8);
    new DataView(len.buffer).setBigUint64(0, BigInt(size), true);
    await f.write(len);
    await f.write(Uint8Array.of(0x7b));
    let left = size - 2;
    while (left > 0) {
      const n = Math.min(left, block.length);
      let done = 0;
      while (done < n) done += await f.write(block.subarray(done, n));
      left -= n;
    }
    await f.write(Uint8Array.of(0x7d));
  } finally {
    f.close();
  }
  const t0 = performance.now();
  await assertRejects(
    () => loadInitWeights(path, swinConfig(12)),
    /huge\.safetensors: .*header is 100000000 bytes, more than 16777216/,
  );
  assert(performance.now() - t0 < 5000, `${performance.now() - t0} ms`);
});
