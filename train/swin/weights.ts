// Importing and exporting backbone weights as safetensors in MONAI key names.
import { readSafetensors, writeSafetensors } from "../weights/safetensors.ts";
import { BadInputError } from "../../cache/errors.ts";
import { type SwinConfig, swinConfig } from "./config.ts";
import { type Params, paramSpecs, toTorch, toVariable } from "./params.ts";
import { relativePositionIndex } from "./_windows.ts";

/**
 * Loads MONAI/PyTorch weights (a safetensors file of SwinUNETR-v2 `swinViT.*`,
 * `encoder1..4`, `encoder10` and VoCo `head.*` keys) into parameters, transposing Linear
 * and Conv3d layouts. The feature size is read from the patch embedding; other keys (a
 * decoder, `relative_position_index` buffers) are ignored. Throws a `RangeError` naming
 * any missing key or shape mismatch.
 */
export function importWeights(
  bytes: Uint8Array,
  overrides: Partial<SwinConfig> = {},
): { params: Params; config: SwinConfig; ignored: string[] } {
  const { tensors } = readSafetensors(bytes);
  const embed = tensors.get("swinViT.patch_embed.proj.weight");
  if (!embed) throw new BadInputError("Not SwinUNETR weights: no swinViT.patch_embed.proj.weight");
  const head1 = tensors.get("head.layer1.0.weight");
  const head = [1, 2, 3].map((i) => tensors.get(`head.layer${i}.0.weight`)?.shape[0]);
  const config = swinConfig(embed.shape[0], {
    inChannels: embed.shape[1],
    ...(head1 && head.every((h) => h) ? { headDims: head as [number, number, number] } : {}),
    ...overrides,
  });
  const params: Params = new Map();
  const specs = paramSpecs(config);
  for (const spec of specs) {
    const t = tensors.get(spec.name);
    if (!t) throw new BadInputError(`Missing weight ${spec.name}`);
    if (t.shape.join() !== spec.torchShape.join()) {
      throw new BadInputError(
        `Weight ${spec.name} has shape [${t.shape}], expected [${spec.torchShape}]`,
      );
    }
    params.set(spec.name, toVariable(spec, t.data));
  }
  const known = new Set(specs.map((s) => s.name));
  const ignored = [...tensors.keys()].filter((k) => !known.has(k));
  return { params, config, ignored };
}

/**
 * Writes parameters as a safetensors file in MONAI's layout and names, with the
 * `relative_position_index` buffers MONAI's `state_dict` holds (int64), so that
 * `SwinUNETR(..., use_v2=True).load_state_dict(...)` takes the `swinViT.*` and
 * `encoder*` keys with strict matching, and the feature size in the metadata
 * (`feature_size`). The values are tfjs variables or plain arrays in tfjs layout (a
 * checkpoint's tensors): plain arrays need no tfjs backend.
 */
export async function exportWeights(
  params: Params | ReadonlyMap<string, Float32Array>,
  config: SwinConfig,
  metadata: Record<string, string> = {},
  options: { head?: boolean } = {},
): Promise<Uint8Array> {
  const index = relativePositionIndex(config.windowSize);
  const n = config.windowSize ** 3;
  const entries: [string, { shape: number[]; data: ArrayLike<number>; dtype?: "F32" | "I64" }][] =
    [];
  for (const spec of paramSpecs(config, options)) {
    const v = params.get(spec.name);
    if (!v) throw new RangeError(`Missing parameter ${spec.name}`);
    const data = v instanceof Float32Array ? v : (await v.data()) as Float32Array;
    if (data.length !== spec.torchShape.reduce((a, b) => a * b, 1)) {
      throw new RangeError(
        `Parameter ${spec.name} has ${data.length} values, expected [${spec.torchShape}]`,
      );
    }
    entries.push([spec.name, { shape: spec.torchShape, data: toTorch(spec, data) }]);
    if (spec.kind === "table") {
      entries.push([
        spec.name.replace("relative_position_bias_table", "relative_position_index"),
        { shape: [n, n], data: index, dtype: "I64" },
      ]);
    }
  }
  return writeSafetensors(entries, {
    format: "pt",
    feature_size: String(config.featureSize),
    ...metadata,
  });
}
