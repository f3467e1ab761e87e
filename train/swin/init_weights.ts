// Starting weights for `pretrain --init-from`: our safetensors, MONAI/PyTorch safetensors or
// a `torch.save` checkpoint (the published VoCo ones included), told apart by content, with
// the key fixes the VoCo README applies, matched against the backbone's parameters.
import { BadInputError } from "../../cache/errors.ts";
import { readSafetensors } from "../weights/safetensors.ts";
import { nonFiniteTensors } from "../run/finite.ts";
import { readTorchCheckpoint } from "../weights/torch_checkpoint.ts";
import type { SwinConfig } from "./config.ts";
import { paramSpecs } from "./params.ts";

/** File formats that {@linkcode loadInitWeights} reads. */
export type InitWeightsFormat = "safetensors" | "torch";

/** Options of {@linkcode loadInitWeights}. */
export interface LoadInitWeightsOptions {
  /** Name of the source in messages when `source` is bytes. @default "the weights" */
  name?: string;
  /**
   * Keeps only keys under this prefix, with the prefix removed (`"student."` for a file
   * that holds several networks); applied after the `module.` prefix is stripped.
   * @default "" (every key)
   */
  prefix?: string;
  /**
   * For `torch.save` files: dotted path of the state dict in the checkpoint (`"teacher"`).
   * @default found as {@linkcode readTorchCheckpoint} documents
   */
  select?: string;
}

/** The weights found for the backbone. */
export interface InitWeights {
  /** Values by MONAI key, in PyTorch layout (as `paramSpecs` shapes), float32. */
  params: Map<string, Float32Array>;
  /** Parameters of the backbone and head that the file lacks (to initialise fresh). */
  missing: string[];
  /** Keys of the file (after the fixes) that the backbone does not have. */
  unexpected: string[];
  /** How the file was read. */
  format: InitWeightsFormat;
  /** Keys changed by the fixes (`module.` stripped, `swin_vit` renamed). */
  renamed: number;
  /** For `torch.save` files, where the state dict was (`["state_dict"]`); else `[]`. */
  location: string[];
}

/** The key fixes of the VoCo README: no DataParallel `module.` prefix, `swinViT` naming. */
function fixKey(key: string): string {
  let k = key;
  while (k.startsWith("module.")) k = k.slice("module.".length);
  return k.replaceAll("swin_vit", "swinViT");
}

/**
 * Reads starting weights for the backbone from a file path or its bytes: a safetensors file
 * (ours, from `exportWeights`, or MONAI's) or a PyTorch `torch.save` checkpoint (`.pt`,
 * `.pth`; zip format), recognised by content (zip signature versus safetensors header), not
 * by extension. Keys are fixed as the VoCo README does for `VoCo_10k.pt`: a leading
 * `module.` is stripped and `swin_vit` becomes `swinViT`. Only keys of
 * `paramSpecs(config)` are kept; `relative_position_index` buffers are dropped silently
 * (the window size defines them); the others are returned as `unexpected`.
 *
 * Errors ({@linkcode BadInputError}) name the file and the reason: an unreadable or unknown
 * format, a refused pickle, no backbone key at all, a shape that differs from the config
 * (then the feature size the file was made with is named when the patch embedding shows
 * it), or NaN or infinite values in a backbone weight (the tensors named).
 */
export async function loadInitWeights(
  source: string | Uint8Array,
  config: SwinConfig,
  options: LoadInitWeightsOptions = {},
): Promise<InitWeights> {
  const { prefix = "", select } = options;
  const name = typeof source === "string" ? source : options.name ?? "the weights";
  const fail = (e: unknown): never => {
    throw new BadInputError(`${name}: ${(e as Error).message}`, {
      cause: e,
      path: typeof source === "string" ? source : undefined,
    });
  };
  let bytes: Uint8Array;
  try {
    bytes = typeof source === "string" ? await Deno.readFile(source) : source;
  } catch (e) {
    return fail(e);
  }
  let tensors: Map<string, { shape: number[]; data: Float32Array }>;
  let format: InitWeightsFormat, location: string[] = [];
  try {
    if (bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04) {
      format = "torch";
      const checkpoint = readTorchCheckpoint(bytes, { select });
      tensors = checkpoint.tensors;
      location = checkpoint.location;
    } else if (bytes.length >= 9 && bytes[8] === 0x7b) { // '{' opens the safetensors header
      format = "safetensors";
      tensors = readSafetensors(bytes).tensors;
    } else if (bytes[0] === 0x80) {
      throw new SyntaxError(
        "a bare pickle or a legacy torch.save file (PyTorch < 1.6); save it again with a " +
          "recent PyTorch (zip format) or as safetensors",
      );
    } else {
      throw new SyntaxError("neither safetensors nor a torch.save zip archive");
    }
  } catch (e) {
    return fail(e);
  }

  const specs = paramSpecs(config);
  const known = new Map(specs.map((s) => [s.name, s]));
  const params = new Map<string, Float32Array>();
  const unexpected: string[] = [];
  const mismatched: string[] = [];
  let renamed = 0;
  for (const [key, t] of tensors) {
    let k = fixKey(key);
    if (k !== key) renamed++;
    if (prefix) {
      if (!k.startsWith(prefix)) continue;
      k = k.slice(prefix.length);
    }
    const spec = known.get(k);
    if (!spec) {
      if (!k.endsWith(".relative_position_index")) unexpected.push(k);
      continue;
    }
    if (t.shape.join() !== spec.torchShape.join()) {
      mismatched.push(`${k} [${t.shape}] (expected [${spec.torchShape}])`);
      continue;
    }
    params.set(k, t.data);
  }
  if (mismatched.length) {
    const embed = [...tensors].find(([k]) => fixKey(k).endsWith("swinViT.patch_embed.proj.weight"));
    const hint = embed && embed[1].shape[0] !== config.featureSize
      ? `; the file has feature size ${embed[1].shape[0]}, the config ${config.featureSize}`
      : "";
    fail(
      new RangeError(
        `${mismatched.length} weights have another shape than the backbone's: ` +
          `${mismatched.slice(0, 3).join(", ")}${mismatched.length > 3 ? ", ..." : ""}${hint}`,
      ),
    );
  }
  if (!params.size) {
    const first = [...tensors.keys()].slice(0, 3).join(", ");
    fail(
      new RangeError(
        `none of its ${tensors.size} keys is a backbone parameter ` +
          `(first keys: ${first || "none"}${prefix ? `; prefix "${prefix}"` : ""})`,
      ),
    );
  }
  const bad = nonFiniteTensors([...params].map(([k, data]) => [k, { data }]));
  if (bad.count > 0) {
    fail(
      new RangeError(
        `${bad.count} backbone weights hold NaN or infinite values (${bad.names.join(", ")}); ` +
          "a run cannot start from them",
      ),
    );
  }
  const missing = specs.map((s) => s.name).filter((k) => !params.has(k));
  return { params, missing, unexpected, format: format!, renamed, location };
}
