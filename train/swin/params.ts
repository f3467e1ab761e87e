// The backbone's parameters: MONAI key names and shapes, initialisation, and layout
// conversion between PyTorch and tfjs.
import * as tf from "@tensorflow/tfjs-core";
import { featureLength, type SwinConfig } from "./config.ts";

/** How a parameter is stored in PyTorch versus here (tfjs, channels last). */
export type ParamKind = "linear" | "conv" | "vector" | "table";

/** A parameter's MONAI name, PyTorch shape and kind. */
export interface ParamSpec {
  /** MONAI `state_dict` key. */
  name: string;
  /** Shape in PyTorch (Linear `[out, in]`, Conv3d `[out, in, kd, kh, kw]`). */
  torchShape: number[];
  /** Layout family, which decides the transposition. */
  kind: ParamKind;
}

/** The model's trainable parameters by MONAI name, in tfjs layouts. */
export type Params = Map<string, tf.Variable>;

/**
 * Every parameter of the VoCo backbone (`swinViT.*`, `encoder1..4`, `encoder10`) and head
 * (`head.*`, left out with `head: false`), in MONAI's `state_dict` order, with PyTorch
 * shapes.
 */
export function paramSpecs(c: SwinConfig, options: { head?: boolean } = {}): ParamSpec[] {
  const out: ParamSpec[] = [];
  const lin = (name: string, o: number, i: number, bias = true) => {
    out.push({ name: `${name}.weight`, torchShape: [o, i], kind: "linear" });
    if (bias) out.push({ name: `${name}.bias`, torchShape: [o], kind: "vector" });
  };
  const norm = (name: string, n: number) => {
    out.push({ name: `${name}.weight`, torchShape: [n], kind: "vector" });
    out.push({ name: `${name}.bias`, torchShape: [n], kind: "vector" });
  };
  const conv = (name: string, o: number, i: number, k: number) =>
    out.push({ name: `${name}.weight`, torchShape: [o, i, k, k, k], kind: "conv" });
  const resBlock = (name: string, i: number, o: number) => {
    conv(`${name}.layer.conv1.conv`, o, i, 3);
    conv(`${name}.layer.conv2.conv`, o, o, 3);
    if (i !== o) conv(`${name}.layer.conv3.conv`, o, i, 1);
  };
  const f = c.featureSize, p = c.patchSize, w = c.windowSize;
  conv("swinViT.patch_embed.proj", f, c.inChannels, p);
  out.push({ name: "swinViT.patch_embed.proj.bias", torchShape: [f], kind: "vector" });
  for (let s = 0; s < 4; s++) {
    const dim = f * 2 ** s;
    for (let b = 0; b < c.depths[s]; b++) {
      const blk = `swinViT.layers${s + 1}.0.blocks.${b}`;
      norm(`${blk}.norm1`, dim);
      out.push({
        name: `${blk}.attn.relative_position_bias_table`,
        torchShape: [(2 * w - 1) ** 3, c.numHeads[s]],
        kind: "table",
      });
      lin(`${blk}.attn.qkv`, 3 * dim, dim);
      lin(`${blk}.attn.proj`, dim, dim);
      norm(`${blk}.norm2`, dim);
      lin(`${blk}.mlp.linear1`, dim * c.mlpRatio, dim);
      lin(`${blk}.mlp.linear2`, dim, dim * c.mlpRatio);
    }
    lin(`swinViT.layers${s + 1}.0.downsample.reduction`, 2 * dim, 8 * dim, false);
    norm(`swinViT.layers${s + 1}.0.downsample.norm`, 8 * dim);
  }
  for (let s = 0; s < 4; s++) resBlock(`swinViT.layers${s + 1}c.0`, f * 2 ** s, f * 2 ** s);
  resBlock("encoder1", c.inChannels, f);
  resBlock("encoder2", f, f);
  resBlock("encoder3", 2 * f, 2 * f);
  resBlock("encoder4", 4 * f, 4 * f);
  resBlock("encoder10", 16 * f, 16 * f);
  if (options.head === false) return out;
  const [h1, h2, h3] = c.headDims;
  lin("head.layer1.0", h1, featureLength(c));
  lin("head.layer2.0", h2, h1);
  lin("head.layer3.0", h3, h2);
  return out;
}

/** The tfjs shape of a parameter (Linear `[in, out]`, Conv3d `[kd, kh, kw, in, out]`). */
export function tfjsShape(spec: ParamSpec): number[] {
  const s = spec.torchShape;
  if (spec.kind === "linear") return [s[1], s[0]];
  if (spec.kind === "conv") return [s[2], s[3], s[4], s[1], s[0]];
  return s;
}

/** Transposes PyTorch-layout values to tfjs layout (a copy). */
export function fromTorch(spec: ParamSpec, data: Float32Array): Float32Array {
  return permute(
    data,
    spec.torchShape,
    spec.kind === "linear" ? [1, 0] : spec.kind === "conv" ? [2, 3, 4, 1, 0] : undefined,
  );
}

/** Transposes tfjs-layout values back to PyTorch layout (a copy). */
export function toTorch(spec: ParamSpec, data: Float32Array): Float32Array {
  return permute(
    data,
    tfjsShape(spec),
    spec.kind === "linear" ? [1, 0] : spec.kind === "conv" ? [4, 3, 0, 1, 2] : undefined,
  );
}

/** Row-major transpose of `data` of `shape` by `perm` (output axis a = input axis perm[a]). */
function permute(data: Float32Array, shape: number[], perm?: number[]): Float32Array {
  if (!perm) return data.slice();
  const rank = shape.length;
  const outShape = perm.map((p) => shape[p]);
  const inStride = new Array(rank).fill(1);
  for (let a = rank - 2; a >= 0; a--) inStride[a] = inStride[a + 1] * shape[a + 1];
  const stride = perm.map((p) => inStride[p]);
  const out = new Float32Array(data.length);
  const idx = new Array(rank).fill(0);
  for (let o = 0; o < out.length; o++) {
    let src = 0;
    for (let a = 0; a < rank; a++) src += idx[a] * stride[a];
    out[o] = data[src];
    for (let a = rank - 1; a >= 0; a--) {
      if (++idx[a] < outShape[a]) break;
      idx[a] = 0;
    }
  }
  return out;
}

/**
 * Fresh parameters, initialised as MONAI/PyTorch do: Linear and Conv weights Kaiming-
 * uniform (PyTorch's default, bound sqrt(1 / fan_in) for a = sqrt(5)), Linear biases
 * uniform in the same bound, patch embedding likewise, LayerNorm weight 1 and bias 0, the
 * relative position bias tables truncated normal with std 0.02. Seeded: the same seed
 * gives the same weights on every backend.
 */
export function initParams(c: SwinConfig, seed = 0, options: { head?: boolean } = {}): Params {
  let state = (seed * 2654435761 + 1) >>> 0;
  const rand = () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return (state + 0.5) / 4294967296;
  };
  const params: Params = new Map();
  const specs = paramSpecs(c, options);
  for (const spec of specs) {
    const n = spec.torchShape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const isNorm = /norm\d?\.(weight|bias)$|downsample\.norm\./.test(spec.name);
    if (spec.kind === "table") {
      for (let i = 0; i < n; i++) {
        let z;
        do {
          z = Math.sqrt(-2 * Math.log(rand())) * Math.cos(2 * Math.PI * rand());
        } while (Math.abs(z) > 2);
        data[i] = 0.02 * z;
      }
    } else if (isNorm) {
      data.fill(spec.name.endsWith(".weight") ? 1 : 0);
    } else {
      const weightName = spec.name.replace(/\.bias$/, ".weight");
      const w = specs.find((s) => s.name === weightName)!;
      const fanIn = w.torchShape.slice(1).reduce((a, b) => a * b, 1);
      const bound = 1 / Math.sqrt(fanIn);
      for (let i = 0; i < n; i++) data[i] = (2 * rand() - 1) * bound;
    }
    params.set(spec.name, toVariable(spec, data));
  }
  return params;
}

/** A trainable variable holding PyTorch-layout values in tfjs layout. */
export function toVariable(spec: ParamSpec, torchData: Float32Array): tf.Variable {
  const t = tf.tensor(fromTorch(spec, torchData), tfjsShape(spec));
  const v = tf.variable(t, true);
  t.dispose();
  return v;
}
