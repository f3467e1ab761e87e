// The tfjs SwinUNETR-v2: MONAI names and layouts, weight round trips, golden parity.
import * as tf from "@tensorflow/tfjs-core";
import { useBackend } from "../../train/backend.ts";
import { readSafetensors } from "../../train/weights/safetensors.ts";
import { swinConfig } from "../../train/swin/config.ts";
import { initParams, paramSpecs } from "../../train/swin/params.ts";
import { exportWeights, importWeights } from "../../train/swin/weights.ts";
import { relativePositionIndex } from "../../train/swin/_windows.ts";
import { compareWithReference } from "../../train/swin/check.ts";
import { vocoForward } from "../../train/swin/backbone.ts";
import { main as modelMain } from "../../tasks/model.ts";
import { HAVE_SHARED, SHARED } from "../_shared.ts";
import { assert, assertEquals, runTask } from "../_helpers.ts";

const WEIGHTS = `${SHARED}golden/swinvit-v2-fs12.weights.safetensors`;
const IO = `${SHARED}golden/swinvit-v2-fs12.io.safetensors`;
const ignore = !HAVE_SHARED;

Deno.test({
  name: "paramSpecs() lists MONAI's state_dict keys and shapes, in order",
  ignore,
  async fn() {
    const { tensors } = readSafetensors(await Deno.readFile(WEIGHTS));
    const golden = [...tensors].filter(([k]) => !k.endsWith("relative_position_index"));
    const specs = paramSpecs(swinConfig(12));
    assertEquals(specs.map((s) => s.name), golden.map(([k]) => k));
    assertEquals(specs.map((s) => s.torchShape), golden.map(([, t]) => t.shape));
    const index = tensors.get("swinViT.layers1.0.blocks.0.attn.relative_position_index")!;
    assertEquals([...relativePositionIndex(7)], [...index.data]);
  },
});

Deno.test({
  name: "importWeights() -> exportWeights() -> importWeights() is bit-exact, with MONAI's key set",
  ignore,
  async fn() {
    await useBackend("cpu");
    const before = tf.memory().numTensors;
    const bytes = await Deno.readFile(WEIGHTS);
    const golden = readSafetensors(bytes).tensors;
    const a = importWeights(bytes);
    const exported = await exportWeights(a.params, a.config);
    const back = readSafetensors(exported).tensors;
    assertEquals([...back.keys()].sort(), [...golden.keys()].sort());
    for (const [k, t] of golden) {
      assertEquals(back.get(k)!.shape, t.shape, k);
      assert(back.get(k)!.data.every((v, i) => Object.is(v, t.data[i])), `${k} differs`);
    }
    assertEquals(back.get("swinViT.layers2.0.blocks.1.attn.relative_position_index")!.dtype, "I64");
    const b = importWeights(exported);
    for (const [k, v] of a.params) {
      const same = tf.tidy(() => tf.all(tf.equal(v, b.params.get(k)!)).dataSync()[0]);
      assert(same === 1, k);
    }
    for (const p of [a.params, b.params]) for (const v of p.values()) v.dispose();
    assertEquals(tf.memory().numTensors, before, "no tensor leaked");
  },
});

Deno.test("initParams() is seeded and exports a checkpoint importWeights() reads back", async () => {
  await useBackend("cpu");
  const config = swinConfig(24);
  const p1 = initParams(config, 3), p2 = initParams(config, 3);
  const name = "swinViT.layers1.0.blocks.0.attn.qkv.weight";
  assertEquals([...p1.get(name)!.dataSync()], [...p2.get(name)!.dataSync()]);
  assertEquals(p1.get(name)!.shape, [24, 72]);
  const back = importWeights(await exportWeights(p1, config));
  assertEquals(back.config.featureSize, 24);
  assertEquals([...back.params.get(name)!.dataSync()], [...p1.get(name)!.dataSync()]);
  for (const p of [p1, p2, back.params]) for (const v of p.values()) v.dispose();
});

Deno.test({
  name: "the tfjs model equals MONAI on the golden input (cpu), without leaking tensors",
  ignore,
  async fn() {
    await useBackend("cpu");
    const before = tf.memory().numTensors;
    const { rows } = await compareWithReference(
      await Deno.readFile(WEIGHTS),
      await Deno.readFile(IO),
    );
    assertEquals(rows.length, 7);
    for (const r of rows) assert(r.maxAbs <= 1e-4, `${r.name}: max abs difference ${r.maxAbs}`);
    assertEquals(tf.memory().numTensors, before, "no tensor leaked");
  },
});

Deno.test({
  name: "deno task model check reports the golden parity on wasm",
  ignore,
  async fn() {
    // The head's batch-of-two BatchNorm amplifies float32 noise of the features (5e-6)
    // by up to 1 / (2 sqrt(eps)) = 158, so the projection's margin is the thinnest.
    const { code, text } = await runTask(modelMain, [
      "check",
      "--weights",
      WEIGHTS,
      "--io",
      IO,
      "--backend",
      "wasm",
    ]);
    assertEquals(code, 0, text);
    for (const line of text.split("\n").filter((l) => /^\s+(hidden|features)/.test(l))) {
      const maxAbs = Number(line.trim().split(/\s+/)[2]);
      assert(maxAbs <= 1e-4, line);
    }
    assert(/model check \(wasm/.test(text), text);
  },
});

Deno.test("a training step (wasm, fwd + bwd + Adam) updates the parameters and leaks no tensor", async () => {
  await useBackend("wasm");
  const config = swinConfig(12);
  const params = initParams(config, 1);
  const vars = [...params.values()];
  const x = tf.randomNormal([1, 64, 64, 64, 1], 0, 1, "float32", 2) as tf.Tensor5D;
  const optimizer = tf.train.adam(1e-3);
  const before = tf.memory().numTensors;
  const initial = vars.map((v) => v.dataSync().slice());
  const counts: number[] = [];
  for (let step = 0; step < 2; step++) {
    tf.tidy(() => {
      const { grads } = tf.variableGrads(() => {
        const { features, projection } = vocoForward(x, params, config, { training: true });
        return tf.add(tf.mean(tf.square(features)), tf.mean(tf.square(projection))) as tf.Scalar;
      }, vars);
      optimizer.applyGradients(grads as tf.NamedTensorMap as Record<string, tf.Variable>);
    });
    counts.push(tf.memory().numTensors - before);
  }
  // Adam keeps two moments per variable; nothing else may stay.
  assertEquals(counts, [2 * vars.length, 2 * vars.length]);
  // With one crop, the head's batch statistics make BatchNorm's output 0, so the head's
  // Linear layers around them get no gradient (the last one's bias does); the backbone
  // learns through the features term.
  const unchanged = vars.filter((v, i) => v.dataSync().every((a, j) => a === initial[i][j]));
  assertEquals(unchanged.map((v) => [...params].find(([, p]) => p === v)![0]), [
    "head.layer1.0.weight",
    "head.layer1.0.bias",
    "head.layer2.0.weight",
    "head.layer2.0.bias",
    "head.layer3.0.weight",
  ]);
  optimizer.dispose();
  tf.dispose([x, ...vars]);
});
