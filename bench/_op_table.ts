// The per-op profile of `--profile` (train/kernels/profile.ts) as a table: where a training
// step's time goes, forward and backward, largest first.
import type { OpProfile } from "../train/kernels/profile.ts";

/** Groups of tfjs kernels shown as one row (the rest keep their own name). */
const GROUPS: [RegExp, string][] = [
  [
    /^tfjs (Add|AddN|Sub|Mul|RealDiv|Div|Maximum|Minimum|Neg|Square|Sqrt|Rsqrt|Exp|Log|Erf|Abs|Sign|Step|Relu|LeakyRelu|Prelu|Cast|Greater|GreaterEqual|Less|LessEqual|Equal|Select|ZerosLike|OnesLike|Fill|Pow|Reciprocal|Floor|Elu|Sigmoid|Tanh|SquaredDifference|LogicalAnd|LogicalOr|LogicalNot)$/,
    "tfjs elementwise",
  ],
  [
    /^tfjs (Reshape|Identity|Concat|Slice|Transpose|Tile|Pack|Unpack|Pad|PadV2|GatherV2|StridedSlice)$/,
    "tfjs layout (concat, slice, transpose, ...)",
  ],
  [/^tfjs (Sum|Mean|Max|Min|Prod|ArgMax|ArgMin|All|Any)$/, "tfjs reductions"],
];

/** The row label of an op: tfjs kernels grouped by kind, with the names seen in a group. */
function rowOf(label: string): string {
  for (const [re, name] of GROUPS) if (re.test(label)) return name;
  return label;
}

/** Formats `profile` over `steps` steps as a Markdown-ready table (seconds per step). */
export function opTable(profile: OpProfile, steps: number): string {
  const rows = new Map<
    string,
    { f: number; b: number; calls: number; names: Map<string, number> }
  >();
  let accounted = 0;
  for (const [label, { forward, backward }] of profile.ops) {
    const key = rowOf(label);
    let r = rows.get(key);
    if (!r) rows.set(key, r = { f: 0, b: 0, calls: 0, names: new Map() });
    r.f += forward.ms;
    r.b += backward.ms;
    r.calls += forward.calls + backward.calls;
    if (key !== label) r.names.set(label.replace(/^tfjs /, ""), forward.ms + backward.ms);
    accounted += forward.ms + backward.ms;
  }
  const other = profile.wallMs - accounted;
  const sorted = [...rows].sort((a, b) => b[1].f + b[1].b - (a[1].f + a[1].b));
  const s = (ms: number) => (ms / 1000 / steps).toFixed(2);
  const pct = (ms: number) => `${(100 * ms / profile.wallMs).toFixed(1)}%`;
  const lines = [
    `  ${"op".padEnd(46)} ${"forward".padStart(8)} ${"backward".padStart(8)} ${
      "total".padStart(8)
    } ${"share".padStart(6)} ${"calls".padStart(7)}   (s per step)`,
  ];
  for (const [label, r] of sorted) {
    const names = r.names.size
      ? ` (${
        [...r.names].sort((a, b) => b[1] - a[1]).map(([n, ms]) => `${n} ${s(ms)}`).join(", ")
      })`
      : "";
    lines.push(
      `  ${label.padEnd(46)} ${s(r.f).padStart(8)} ${s(r.b).padStart(8)} ${
        s(r.f + r.b).padStart(8)
      } ${pct(r.f + r.b).padStart(6)} ${String(Math.round(r.calls / steps)).padStart(7)}${names}`,
    );
  }
  lines.push(
    `  ${"outside ops (tape, tidy, JS glue, data wait)".padEnd(46)} ${"".padStart(8)} ${
      "".padStart(8)
    } ${s(other).padStart(8)} ${pct(other).padStart(6)}`,
    `  ${"wall".padEnd(46)} ${"".padStart(8)} ${"".padStart(8)} ${s(profile.wallMs).padStart(8)} ${
      "100%".padStart(6)
    }`,
  );
  return lines.join("\n");
}
