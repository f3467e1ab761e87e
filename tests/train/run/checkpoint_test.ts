// Tests of checkpoints read back: damaged metadata and non-finite values are refused with
// the file named; a model holding NaN is never saved, and the good checkpoints stay.
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { useBackend } from "../../../train/backend.ts";
import { VocoModel } from "../../../train/voco/model.ts";
import {
  checkpointName,
  listCheckpoints,
  readCheckpoint,
  saveCheckpoint,
} from "../../../train/run/checkpoint.ts";
import { readSafetensors, writeSafetensors } from "../../../train/weights/safetensors.ts";
import { assert, assertEquals, assertRejects, tempDir } from "../../_helpers.ts";

/** Rewrites a checkpoint file with other metadata or a changed tensor. */
async function rewrite(
  from: string,
  to: string,
  change: { metadata?: Record<string, string>; poison?: number },
) {
  const { tensors, metadata } = readSafetensors(await Deno.readFile(from));
  const entries = [...tensors].map(([k, t], i) => {
    const data = Float32Array.from(t.data);
    if (change.poison !== undefined && i === 3) data[data.length - 1] = change.poison;
    return [k, { shape: t.shape, data }] as [string, { shape: number[]; data: Float32Array }];
  });
  await Deno.writeFile(to, writeSafetensors(entries, { ...metadata, ...change.metadata }));
}

Deno.test("checkpoints with damaged metadata or non-finite values are refused, naming the file", async () => {
  await useBackend("cpu");
  await using tmp = await tempDir();
  const model = new VocoModel({ version: "v2", featureSize: 12, headDims: [16, 16, 16] });
  try {
    const good = await saveCheckpoint(tmp.path, model, { step: 3, position: 3 });
    assertEquals((await readCheckpoint(good)).state, { step: 3, position: 3 });
    const cases: [string, Parameters<typeof rewrite>[2], RegExp][] = [
      ["ckpt-0000004.safetensors", { metadata: { step: "-5" } }, /damaged: .*not all whole/],
      ["ckpt-0000005.safetensors", { metadata: { step: "5", position: "1e3" } }, /not all whole/],
      ["ckpt-0000006.safetensors", { metadata: { step: "7" } }, /says step 7, its name step 6/],
      ["ckpt-0000008.safetensors", { metadata: { step: "8" }, poison: NaN }, /NaN or infinite/],
      ["ckpt-0000009.safetensors", { metadata: { step: "9" }, poison: -Infinity }, /-Infinity/],
    ];
    for (const [name, change, pattern] of cases) {
      const path = join(tmp.path, name);
      await rewrite(good, path, change);
      const e = await assertRejects(() => readCheckpoint(path), pattern);
      assert(e.message.includes(name), e.message);
      assertEquals((e as { kind?: string }).kind, "bad-input");
    }
  } finally {
    model.dispose();
  }
});

Deno.test("a model holding NaN is not saved and the earlier checkpoints stay", async () => {
  await useBackend("cpu");
  await using tmp = await tempDir();
  const model = new VocoModel({ version: "v2", featureSize: 12, headDims: [16, 16, 16] });
  try {
    for (const step of [1, 2, 3]) {
      await saveCheckpoint(tmp.path, model, { step, position: step }, 3);
    }
    const [name, v] = [...model.trained].find(([n]) => n.startsWith("student."))!;
    const bad = tf.fill(v.shape, NaN);
    v.assign(bad);
    bad.dispose();
    await assertRejects(
      () => saveCheckpoint(tmp.path, model, { step: 4, position: 4 }, 3),
      new RegExp(`Step 4: 1 tensors hold NaN .*model\\.${name.replaceAll(".", "\\.")}`),
    );
    assertEquals(await listCheckpoints(tmp.path), [1, 2, 3]);
    assertEquals(
      [...Deno.readDirSync(tmp.path)].map((e) => e.name).sort(),
      [1, 2, 3].map(checkpointName),
    );
  } finally {
    model.dispose();
  }
});
