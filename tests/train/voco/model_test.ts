// Tests of VocoModel's step in passes: the backward recomputed segment by segment gives the
// same losses as one taped pass, and the gradients to float32 rounding; nothing leaks.
import * as tf from "@tensorflow/tfjs-core";
import { useBackend } from "../../../train/backend.ts";
import { VocoModel } from "../../../train/voco/model.ts";
import { assert, assertEquals } from "../../_helpers.ts";

Deno.test("a step in passes of 2 crops, backward in segments, equals one taped pass (v2 and v1, cpu)", async () => {
  await useBackend("cpu");
  const roi = 32, batch = 1, crops = 1, k = 4, rows = batch * (crops + k);
  let seed = 7;
  const rnd = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
  const inputs = new Float32Array(rows * roi ** 3).map(rnd);
  const labels = new Float32Array(batch * crops * k).map(rnd);
  for (const version of ["v2", "v1"] as const) {
    const results: { terms: Record<string, number>; grads: Map<string, Float32Array> }[] = [];
    for (const cropBatch of [undefined, 2]) {
      const before = tf.memory().numTensors;
      const model = new VocoModel({ version, featureSize: 12, headDims: [16, 16, 16], cropBatch });
      const r = await model.gradients({ inputs, labels, batch, crops, roi }, 0);
      const grads = new Map<string, Float32Array>();
      for (const [name, g] of r.grads) grads.set(name, (await g.data()) as Float32Array);
      await model.apply(r.grads, 1e-3);
      model.dispose();
      assertEquals(tf.memory().numTensors, before, `${version} ${cropBatch}: tensors leaked`);
      results.push({ terms: r.terms, grads });
    }
    const [one, parts] = results;
    assertEquals(parts.terms, one.terms, `${version}: the losses differ`);
    assertEquals([...parts.grads.keys()].sort(), [...one.grads.keys()].sort());
    // Within 1e-4 of each tensor's largest value, or 1e-6 of the largest gradient of all: a
    // gradient that nearly cancels (encoder1's 1x1 conv before an instance norm, 1e-6 of
    // the others in v1) keeps only rounding noise, whose sum order differs between passes.
    const top = Math.max(
      ...[...one.grads.values()].map((a) => a.reduce((m, x) => Math.max(m, Math.abs(x)), 0)),
    );
    for (const [name, a] of one.grads) {
      const b = parts.grads.get(name)!;
      let d = 0, m = 0;
      for (let i = 0; i < a.length; i++) {
        d = Math.max(d, Math.abs(a[i] - b[i]));
        m = Math.max(m, Math.abs(a[i]));
      }
      // Biases before a BatchNorm have a gradient of rounding noise in both (see check).
      if (/layer[12]\.0\.bias$/.test(name)) continue;
      assert(d <= 1e-4 * m + 1e-6 * top, `${version} ${name}: differs by ${d / m} of its largest`);
    }
  }
});
