// Comparing our backbone's outputs with MONAI reference outputs (`model check`).
import * as tf from "@tensorflow/tfjs-core";
import { readSafetensors } from "../weights/safetensors.ts";
import { importWeights } from "./weights.ts";
import { vocoForward } from "./backbone.ts";
import { BadInputError, errorKind } from "../../cache/errors.ts";

/** One output compared with its reference. */
export interface OutputDiff {
  /** Output name as in the reference file (`hidden_states_out.0`, `features`, …). */
  name: string;
  /** Shape (PyTorch layout, NCDHW for volumes). */
  shape: number[];
  /** Largest absolute difference. */
  maxAbs: number;
  /** Largest absolute difference over the largest absolute reference value. */
  maxRel: number;
}

/**
 * Loads MONAI weights, runs the reference inputs (`input`, NCDHW) through the VoCo
 * backbone and head in eval mode on the current backend, and compares every stored output
 * (`hidden_states_out.0..4` NCDHW, `features`, `projection`). Returns one row per output
 * present in the reference file, and the forward time. A bad-input error names the file
 * (`names`) it is about.
 */
export async function compareWithReference(
  weights: Uint8Array,
  io: Uint8Array,
  names: { weights?: string; io?: string } = {},
): Promise<{ rows: OutputDiff[]; seconds: number }> {
  let loaded: ReturnType<typeof importWeights>;
  try {
    loaded = importWeights(weights);
  } catch (e) {
    throw named(names.weights, e);
  }
  try {
    return await compare(loaded.params, loaded.config, io);
  } catch (e) {
    throw named(names.io, e);
  } finally {
    for (const v of loaded.params.values()) v.dispose();
  }
}

/** `e`, a bad-input error prefixed with the `file` it is about (when one is named). */
function named(file: string | undefined, e: unknown): unknown {
  if (file === undefined || errorKind(e) !== "bad-input") return e;
  return new BadInputError(`${file}: ${(e as Error).message}`, { cause: e, path: file });
}

async function compare(
  params: ReturnType<typeof importWeights>["params"],
  config: ReturnType<typeof importWeights>["config"],
  io: Uint8Array,
): Promise<{ rows: OutputDiff[]; seconds: number }> {
  const ref = readSafetensors(io).tensors;
  const input = ref.get("input");
  if (!input || input.shape.length !== 5) throw new BadInputError("The IO file has no 5-D `input`");
  tf.engine().startScope();
  try {
    {
      const shape = input.shape as [number, number, number, number, number];
      const x = tf.transpose(tf.tensor5d(input.data, shape), [0, 2, 3, 4, 1]);
      const t0 = performance.now();
      const out = vocoForward(x, params, config);
      const ours = new Map<string, tf.Tensor>([
        ...out.hidden.map((h, i) =>
          [`hidden_states_out.${i}`, tf.transpose(h, [0, 4, 1, 2, 3])] as [string, tf.Tensor]
        ),
        ["features", out.features],
        ["projection", out.projection],
      ]);
      // Read asynchronously: GPU backends cannot read synchronously under Deno.
      const values = new Map(
        await Promise.all([...ours].map(async ([k, t]) => [k, await t.data()] as const)),
      );
      const seconds = (performance.now() - t0) / 1000;
      const rows: OutputDiff[] = [];
      for (const [name, r] of ref) {
        const a = values.get(name);
        if (!a) continue;
        if (a.length !== r.data.length) {
          throw new BadInputError(
            `Output ${name}: ${a.length} values, reference has ${r.data.length}`,
          );
        }
        let maxAbs = 0, refMax = 0;
        for (let i = 0; i < a.length; i++) {
          maxAbs = Math.max(maxAbs, Math.abs(a[i] - r.data[i]));
          refMax = Math.max(refMax, Math.abs(r.data[i]));
        }
        rows.push({ name, shape: r.shape, maxAbs, maxRel: maxAbs / (refMax || 1) });
      }
      return { rows, seconds };
    }
  } finally {
    tf.engine().endScope();
  }
}
