// The core of shifted-window attention, softmax(q kᵀ · scale + bias + mask) v, fused over
// typed arrays with a recomputing backward pass (as flash attention does): no
// [windows, heads, n, n] tensor is ever materialised, which is what made the stock ops
// slow (batched matMul falls back to a naive loop on wasm, broadcast adds are slow on cpu)
// and too big for the wasm heap. The forward keeps one log-sum-exp per query row; the
// backward recomputes each probability from it.
import * as tf from "@tensorflow/tfjs-core";
import { readSync } from "./_read.ts";

const POW2 = Float64Array.from({ length: 1076 }, (_, i) => 2 ** -i);

/**
 * e^x for x <= 0 (softmax arguments after subtracting the row maximum), to within 2e-8
 * relative: e^x = 2^-m · e^(r) with r in (-ln 2, 0], a 10-term Taylor polynomial for
 * e^r. About five times faster than Math.exp, which dominated this kernel.
 */
function expNonPositive(x: number): number {
  const y = -x * Math.LOG2E;
  if (y >= 1075) return 0;
  const m = Math.floor(y);
  const r = (m - y) * Math.LN2; // in (-ln 2, 0]
  const e = 1 + r * (1 + r * (1 / 2 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120 + r *
                          (1 / 720 + r * (1 / 5040 + r * (1 / 40320 + r * (1 / 362880)))))))));
  return e * POW2[m];
}

/**
 * `softmax(q kᵀ · scale + bias + mask) v` per window and head: q, k, v `[W·B, heads, n, d]`,
 * bias `[heads, n, n]` (differentiable), mask `[W, n, n]` (constant; window w of every batch
 * element uses mask w) or none. `queries` (`[W·B · n]`, optional) marks the query tokens
 * whose output is wanted: rows marked 0 (padding, which the caller drops) are left zero
 * and skipped, forward and backward; as keys every token still counts, as in MONAI.
 * Returns `[W·B, heads, n, d]`.
 */
export function windowAttentionCore(
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  bias: tf.Tensor3D,
  scale: number,
  mask?: Float32Array,
  queries?: Uint8Array,
): tf.Tensor4D {
  const [bw, heads, n, d] = q.shape;
  const windows = mask ? mask.length / (n * n) : 1;
  const maskOr0 = mask ?? new Float32Array(n * n); // no branch in the inner loops
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [qt, kt, vt, bt] = args as tf.Tensor[];
    const qs = readSync(qt), ks = readSync(kt), vs = readSync(vt), bs = readSync(bt);
    const out = new Float32Array(qs.length);
    const lse = new Float32Array(bw * heads * n);
    const p = new Float64Array(n), qi = new Float64Array(d), acc = new Float64Array(d);
    for (let w = 0; w < bw; w++) {
      const mBase = (w % windows) * n * n;
      for (let h = 0; h < heads; h++) {
        const base = (w * heads + h) * n; // row index of (w, h, 0)
        for (let i = 0; i < n; i++) {
          if (queries && !queries[w * n + i]) continue;
          const qo = (base + i) * d, bo = (h * n + i) * n, mo = mBase + i * n;
          for (let c = 0; c < d; c++) qi[c] = qs[qo + c] * scale;
          let max = -Infinity;
          for (let j = 0; j < n; j++) {
            const ko = (base + j) * d;
            let s = bs[bo + j] + maskOr0[mo + j];
            for (let c = 0; c < d; c++) s += qi[c] * ks[ko + c];
            p[j] = s;
            if (s > max) max = s;
          }
          // One pass: exponentials, their sum and the weighted sum of v.
          acc.fill(0);
          let sum = 0;
          for (let j = 0; j < n; j++) {
            const e = expNonPositive(p[j] - max), vo = (base + j) * d;
            sum += e;
            for (let c = 0; c < d; c++) acc[c] += e * vs[vo + c];
          }
          lse[base + i] = max + Math.log(sum);
          for (let c = 0; c < d; c++) out[qo + c] = acc[c] / sum;
        }
      }
    }
    return {
      value: tf.tensor4d(out, [bw, heads, n, d]),
      gradFunc: (dy: tf.Tensor) => {
        const g = readSync(dy);
        const dq = new Float32Array(qs.length), dk = new Float32Array(ks.length);
        const dv = new Float32Array(vs.length), db = new Float32Array(heads * n * n);
        const qi = new Float64Array(d), gi = new Float64Array(d), dqi = new Float64Array(d);
        for (let w = 0; w < bw; w++) {
          const mBase = (w % windows) * n * n;
          for (let h = 0; h < heads; h++) {
            const base = (w * heads + h) * n;
            for (let i = 0; i < n; i++) {
              if (queries && !queries[w * n + i]) continue;
              const qo = (base + i) * d, bo = (h * n + i) * n, mo = mBase + i * n;
              let di = 0; // dO_i · O_i = sum_j dP_ij P_ij
              for (let c = 0; c < d; c++) {
                qi[c] = qs[qo + c] * scale;
                gi[c] = g[qo + c];
                di += gi[c] * out[qo + c];
              }
              dqi.fill(0);
              const l = lse[base + i];
              for (let j = 0; j < n; j++) {
                const ko = (base + j) * d;
                let s = bs[bo + j] + maskOr0[mo + j] - l, dp = 0;
                for (let c = 0; c < d; c++) {
                  s += qi[c] * ks[ko + c];
                  dp += gi[c] * vs[ko + c];
                }
                const pij = expNonPositive(Math.min(0, s));
                const ds = pij * (dp - di);
                db[bo + j] += ds;
                for (let c = 0; c < d; c++) {
                  dqi[c] += ds * ks[ko + c];
                  dk[ko + c] += ds * qi[c];
                  dv[ko + c] += pij * gi[c];
                }
              }
              for (let c = 0; c < d; c++) dq[qo + c] = dqi[c] * scale;
            }
          }
        }
        return [
          tf.tensor4d(dq, [bw, heads, n, d]),
          tf.tensor4d(dk, [bw, heads, n, d]),
          tf.tensor4d(dv, [bw, heads, n, d]),
          tf.tensor3d(db, [heads, n, n]),
        ];
      },
    };
  });
  return f(q, k, v, bias) as tf.Tensor4D;
}
