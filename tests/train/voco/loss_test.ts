// Tests of the VoCo losses and the reference step replay (`pretrain check`).
import * as tf from "@tensorflow/tfjs-core";
import { useBackend } from "../../../train/backend.ts";
import {
  positionLogits,
  regularisation,
  vocoLossV1,
  vocoLossV2,
} from "../../../train/voco/loss.ts";
import { positionLabels } from "../../../train/sampler/voco_sample.ts";
import { readSafetensors, writeSafetensors } from "../../../train/weights/safetensors.ts";
import { main as pretrainMain } from "../../../tasks/pretrain.ts";
import { HAVE_SHARED, SHARED } from "../../_shared.ts";
import { assert, assertClose, runTask } from "../../_helpers.ts";

const ignore = !HAVE_SHARED;

interface LossCase {
  center: [number, number];
  labels: number[];
  x: number[];
  bases: number[][];
  logits: number[];
  v1_pos: number;
  v1_neg: number;
  v2_intra: number;
  regularization: number;
}

Deno.test({
  name: "positionLabels() and the loss terms reproduce voco-loss.json",
  ignore,
  async fn() {
    await useBackend("cpu");
    const golden = JSON.parse(await Deno.readTextFile(`${SHARED}golden/voco-loss.json`));
    assertClose([...positionLabels(64, 64, 64, 3)], golden.grid3_roi64_center_64_64, 1e-7);
    for (const c of golden.grid4_roi96 as LossCase[]) {
      const labels = positionLabels(c.center[0], c.center[1], 96, 4);
      assertClose([...labels], c.labels, 1e-7, `labels at ${c.center}`);
      tf.tidy(() => {
        const d = c.x.length;
        const x = tf.tensor3d(c.x, [1, 1, d]);
        const bases = tf.tensor3d(c.bases.flat(), [1, c.bases.length, d]);
        const logits = positionLogits(x, bases);
        assertClose([...logits.dataSync()], c.logits, 1e-6, "logits");
        assertClose(regularisation(bases).dataSync()[0], c.regularization, 1e-6, "reg");
        // v1 with identical student and teacher rows: the logits are the same both ways.
        const rows = tf.concat(
          [tf.reshape(x, [1, d]), tf.reshape(bases, [-1, d])],
          0,
        ) as tf.Tensor2D;
        const y = tf.tensor3d(labels, [1, 1, labels.length]);
        const v1 = vocoLossV1(rows, rows, y);
        assertClose(v1.pos.dataSync()[0], c.v1_pos, 1e-6, "v1 pos");
        assertClose(v1.neg.dataSync()[0], c.v1_neg, 1e-6, "v1 neg");
        const v2 = vocoLossV2(rows, rows, y);
        assertClose(v2.intra.dataSync()[0], c.v2_intra, 1e-6, "v2 intra");
      });
    }
  },
});

for (const version of ["v2", "v1"]) {
  for (const backend of ["cpu", "wasm"]) {
    Deno.test({
      name: `pretrain check replays voco-step.${version} on ${backend} within tolerance`,
      ignore,
      async fn() {
        const r = await runTask(pretrainMain, [
          "check",
          "--io",
          `${SHARED}golden/voco-step.${version}.safetensors`,
          "--backend",
          backend,
        ]);
        assert(r.code === 0, r.text);
        assert(/all \d+ quantities match/.test(r.text), r.text);
      },
    });
  }
}

Deno.test({
  name: "pretrain check fails (exit 1) when a recorded loss is off",
  ignore,
  async fn() {
    const path = `${SHARED}golden/voco-step.v2.safetensors`;
    const { tensors, metadata } = readSafetensors(await Deno.readFile(path));
    const entries = [...tensors].map(([k, t]) => {
      const data = k === "step1.inter" ? t.data.map((v) => v + 1e-3) : t.data;
      return [k, { shape: t.shape, data }] as [string, { shape: number[]; data: Float32Array }];
    });
    const tmp = await Deno.makeTempFile({ suffix: ".safetensors" });
    try {
      await Deno.writeFile(tmp, writeSafetensors(entries, metadata));
      const r = await runTask(pretrainMain, ["check", "--io", tmp, "--backend", "cpu"]);
      assert(r.code === 1, r.text);
      assert(/step1\.inter .*EXCEEDS/.test(r.text), r.text);
    } finally {
      await Deno.remove(tmp);
    }
  },
});

Deno.test({
  name:
    "the losses and their gradients run on webgpu as on cpu (pretrain check v1), when an adapter exists",
  ignore,
  async fn() {
    const gpu = (navigator as unknown as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
    if (!gpu || !(await gpu.requestAdapter().catch(() => null))) {
      console.warn("Skipping: no WebGPU adapter here.");
      return;
    }
    // A child process: Deno's WebGPU teardown can abort the process at exit.
    const task = new URL("../../../tasks/pretrain.ts", import.meta.url).pathname;
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--frozen",
        "-A",
        task,
        "check",
        "--io",
        `${SHARED}golden/voco-step.v1.safetensors`,
        "--backend",
        "webgpu",
      ],
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(240_000),
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert(
      /VoCo v1 reference step file on webgpu/.test(text) && /all 5 quantities match/.test(text),
      text,
    );
  },
});
