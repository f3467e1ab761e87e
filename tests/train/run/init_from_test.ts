// Tests of `--init-from`: a run's student starts from weights in a torch.save file.
import { useBackend } from "../../../train/backend.ts";
import { VocoModel } from "../../../train/voco/model.ts";
import { initFrom } from "../../../train/run/init_from.ts";
import { exportWeights } from "../../../train/swin/weights.ts";
import { readSafetensors } from "../../../train/weights/safetensors.ts";
import { stateDict, tensorOf, torchSave } from "../_torch_save.ts";
import { assert, assertEquals, tempDir } from "../../_helpers.ts";

Deno.test("initFrom() loads a VoCo_10k-style .pt (module., swin_vit) into the student backbone", async () => {
  await useBackend("cpu");
  const source = new VocoModel({ version: "v2", featureSize: 12, headDims: [16, 16, 16], seed: 1 });
  const target = new VocoModel({ version: "v2", featureSize: 12, headDims: [16, 16, 16], seed: 2 });
  await using tmp = await tempDir();
  try {
    const exported = readSafetensors(
      await exportWeights(source.backbone, source.config, {}, { head: false }),
    ).tensors;
    const entries = [...exported].map(([k, t]) =>
      [
        `module.${k.replace("swinViT", "swin_vit")}`,
        tensorOf(t.data, t.shape, t.dtype === "I64" ? "I64" : "F32"),
      ] as [string, ReturnType<typeof tensorOf>]
    );
    const path = `${tmp.path}/VoCo_10k.pt`;
    await Deno.writeFile(path, torchSave(stateDict(entries), { archive: "VoCo_10k" }));
    const report = await initFrom(target, path);
    assertEquals(report.format, "torch");
    assertEquals(report.loaded, source.backbone.size);
    for (const [name, v] of source.backbone) {
      const a = await v.data(), b = await target.backbone.get(name)!.data();
      assert(a.every((x, i) => x === b[i]), `${name} differs`);
    }
    // The heads keep their own initialisation.
    const h = await target.studentHead.get("student.layer1.0.weight")!.data();
    const hs = await source.studentHead.get("student.layer1.0.weight")!.data();
    assert(h.some((x, i) => x !== hs[i]), "the head was not loaded");
  } finally {
    source.dispose();
    target.dispose();
  }
});
