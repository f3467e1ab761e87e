// Tests of loadInitWeights(): safetensors and torch.save files, VoCo's key fixes, errors.
import * as tf from "@tensorflow/tfjs-core";
import { useBackend } from "../../train/backend.ts";
import { readSafetensors, writeSafetensors } from "../../train/weights/safetensors.ts";
import { swinConfig } from "../../train/swin/config.ts";
import { initParams, paramSpecs } from "../../train/swin/params.ts";
import { exportWeights } from "../../train/swin/weights.ts";
import { loadInitWeights } from "../../train/swin/init_weights.ts";
import { assert, assertEquals, assertRejects, tempDir } from "../_helpers.ts";
import { type PyObj, stateDict, type Tensor, tensorOf, torchSave } from "./_torch_save.ts";

const config = swinConfig(12);
const names = paramSpecs(config).map((s) => s.name);

/** Our exported weights (safetensors) and their tensors. */
async function exported() {
  await useBackend("cpu");
  const params = initParams(config, 3);
  const bytes = await exportWeights(params, config);
  tf.dispose([...params.values()]);
  return { bytes, tensors: readSafetensors(bytes).tensors };
}

function assertSameBits(a: Float32Array, b: Float32Array, key: string) {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  assert(x.length === y.length && x.every((v, i) => v === y[i]), `${key} differs`);
}

Deno.test("loadInitWeights() reads our exported safetensors with nothing missing", async () => {
  const { bytes, tensors } = await exported();
  const r = await loadInitWeights(bytes, config);
  assertEquals(r.format, "safetensors");
  assertEquals(r.missing, []);
  assertEquals(r.unexpected, []); // relative_position_index buffers are dropped silently
  assertEquals([...r.params.keys()], names);
  for (const k of names) assertSameBits(r.params.get(k)!, tensors.get(k)!.data, k);
});

Deno.test("loadInitWeights() reads torch.save checkpoints with VoCo's module. / swin_vit keys", async () => {
  const { tensors } = await exported();
  const torchKey = (k: string) => `module.${k.replace("swinViT", "swin_vit")}`;
  const entries: [string, Tensor][] = [...tensors]
    .filter(([k]) => !k.startsWith("head."))
    .map(([k, t]) => [torchKey(k), tensorOf(t.data, t.shape, t.dtype === "I64" ? "I64" : "F32")]);
  entries.push(["module.decoder1.layer.conv1.conv.weight", tensorOf([1, 2], [2])]);
  const checkpoint = new Map<string, PyObj>([
    ["epoch", 100],
    ["state_dict", stateDict(entries)],
  ]);
  const r = await loadInitWeights(torchSave(checkpoint, { archive: "VoCo_10k" }), config);
  assertEquals(r.format, "torch");
  assertEquals(r.location, ["state_dict"]);
  assertEquals(r.missing, names.filter((k) => k.startsWith("head.")));
  assertEquals(r.unexpected, ["decoder1.layer.conv1.conv.weight"]);
  assertEquals(r.renamed, entries.length);
  for (const k of names.filter((k) => !k.startsWith("head."))) {
    assertSameBits(r.params.get(k)!, tensors.get(k)!.data, k);
  }
  // The same with a prefix choosing one network of several.
  const two = stateDict([
    ...entries.map(([k, t]) => [k.replace("module.", "student."), t] as [string, Tensor]),
    ["teacher.swinViT.patch_embed.proj.bias", tensorOf(new Float32Array(12), [12])],
  ]);
  const s = await loadInitWeights(torchSave(two), config, { prefix: "student." });
  assertEquals(s.unexpected, ["decoder1.layer.conv1.conv.weight"]);
  assertSameBits(
    s.params.get("swinViT.patch_embed.proj.bias")!,
    tensors.get("swinViT.patch_embed.proj.bias")!.data,
    "student bias",
  );
});

Deno.test("loadInitWeights() errors name the file and the reason", async () => {
  await using dir = await tempDir();
  const { bytes } = await exported();
  const file = `${dir.path}/fs12.safetensors`;
  await Deno.writeFile(file, bytes);
  await assertRejects(
    () => loadInitWeights(file, swinConfig(24)),
    /fs12\.safetensors: \d+ weights have another shape .*feature size 12, the config 24/,
  );
  const junk = `${dir.path}/junk.pt`;
  await Deno.writeFile(junk, new TextEncoder().encode("hello, not weights"));
  await assertRejects(() => loadInitWeights(junk, config), /junk\.pt: neither safetensors/);
  await assertRejects(() => loadInitWeights(`${dir.path}/none.pt`, config), /none\.pt: /);
  const other = writeSafetensors([["fc.weight", { shape: [2], data: [1, 2] }]]);
  await assertRejects(
    () => loadInitWeights(other, config, { name: "other.safetensors" }),
    /other\.safetensors: none of its 1 keys is a backbone parameter \(first keys: fc\.weight\)/,
  );
  await assertRejects(
    () => loadInitWeights(Uint8Array.of(0x80, 2, 0x8a, 10), config, { name: "old.pth" }),
    /old\.pth: a bare pickle or a legacy torch\.save file/,
  );
});

Deno.test("loadInitWeights() refuses NaN or infinite weights, naming the tensors", async () => {
  const { tensors } = await exported();
  const entries = [...tensors].map(([k, t]) => {
    const data = Float32Array.from(t.data);
    if (k === "encoder2.layer.conv1.conv.weight") data[5] = NaN;
    if (k === "swinViT.patch_embed.proj.bias") data[0] = Infinity;
    return [k, { shape: t.shape, data }] as [string, { shape: number[]; data: Float32Array }];
  });
  const e = await assertRejects(
    () => loadInitWeights(writeSafetensors(entries), config, { name: "bad.safetensors" }),
    /bad\.safetensors: 2 backbone weights hold NaN or infinite values \(swinViT\.patch_embed\.proj\.bias \(Infinity at 0\), encoder2\.layer\.conv1\.conv\.weight \(NaN at 5\)\)/,
  );
  assertEquals((e as { kind?: string }).kind, "bad-input");
});
