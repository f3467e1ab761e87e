// WebAssembly (SIMD) source of the 3-D convolution kernels (stride 1, odd kernel k), compiled
// at load time by `_wasm.ts`. Layouts are channels-last, f32:
//   input  xp [B, D+k-1, H+k-1, W+k-1, Ci]  zero-padded by the caller
//   weight w  [k, k, k, Ci, Co]             Co a multiple of 4 (the caller pads it)
//   output y  [B, D, H, W, Co]
// `forward` computes y = conv(xp, w); the input gradient is the same kernel applied to the
// padded output gradient with the flipped, transposed weights. `weightGrad` adds
// dw[tap, ci, co] += sum_v xp[v + tap, ci] dy[v, co].
//
// For a fixed (dz, dy) the k·Ci inputs of the k taps along x are contiguous, and so are
// their weight rows, which makes the inner loop one run over k·Ci values. Both kernels work
// on blocks of 8 neighbouring voxels along x (a scalar-voxel loop takes the rest) and 4
// output channels, so the 8 accumulators (or the 8 dy values) stay in registers. Written
// by hand because tfjs' conv3d is slow and wrong on wasm, and im2col + matMul spent most of
// its time building and transposing the column matrix.

const V = 8;

/**
 * Start of the run of k·Ci inputs for (dz, dy): `$ip` at input voxel (b, z+dz, y+dy, x0),
 * `$wq` at weight row (dz, dy, 0, 0, co), `$end` one past the run.
 */
const RUN_START = `
              (local.set $ip (i32.add (local.get $x) (i32.shl (i32.mul (local.get $cin)
                (i32.add (i32.mul (i32.add (i32.mul (i32.add (local.get $zb) (local.get $dz))
                  (local.get $hp)) (i32.add (local.get $yy) (local.get $dy))) (local.get $wp))
                  (local.get $x0))) (i32.const 2))))
              (local.set $wq (i32.add (local.get $w) (i32.shl (i32.add (i32.mul (i32.mul
                (i32.mul (i32.add (i32.mul (local.get $dz) (local.get $k)) (local.get $dy))
                  (local.get $k)) (local.get $cin)) (local.get $cop)) (local.get $co)) (i32.const 2))))
              (local.set $end (i32.add (local.get $ip) (local.get $run)))`;
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** Address of voxel q of the block: local `base` plus `q` times a stride (`$s<q>`/`$t<q>`). */
const at = (base: string, stride: "s" | "t", q: number) =>
  q ? `(i32.add (local.get ${base}) (local.get $${stride}${q}))` : `(local.get ${base})`;

/** `$op` at y (or dy) of voxel (o + x0), channel co. */
const OUT_AT = `(local.set $op (i32.add (local.get $y) (i32.shl (i32.add (i32.mul
            (i32.add (local.get $o) (local.get $x0)) (local.get $cop)) (local.get $co)) (i32.const 2))))`;

/** Every (dz, dy) run of k·Ci inputs and weight rows, with `body` once per input value. */
function tapRuns(body: string): string {
  return `
          (local.set $dz (i32.const 0))
          (loop $lz
            (local.set $dy (i32.const 0))
            (loop $ly
              ${RUN_START}
              (loop $lt
                ${body}
                (local.set $wq (i32.add (local.get $wq) (local.get $cop4)))
                (br_if $lt (i32.lt_u (local.tee $ip (i32.add (local.get $ip) (i32.const 4))) (local.get $end))))
              (br_if $ly (i32.lt_u (local.tee $dy (i32.add (local.get $dy) (i32.const 1))) (local.get $k))))
            (br_if $lz (i32.lt_u (local.tee $dz (i32.add (local.get $dz) (i32.const 1))) (local.get $k))))`;
}

/**
 * The weight rows u in [u0, u1) (u = (dz·k + dy)·k·Ci + t over each (dz, dy) run of
 * t < k·Ci inputs), with `body` once per input value: a thread's share of `weightGrad`.
 * Each dw row still sums the voxels in the same order, so any split gives the same values.
 */
function tapRange(body: string): string {
  return `
          (local.set $p (i32.div_u (local.get $u0) (local.get $kc)))
          (block $pdone
            (loop $lp
              (br_if $pdone (i32.ge_u (local.tee $pk (i32.mul (local.get $p) (local.get $kc)))
                (local.get $u1)))
              (local.set $dz (i32.div_u (local.get $p) (local.get $k)))
              (local.set $dy (i32.rem_u (local.get $p) (local.get $k)))
              ${RUN_START}
              ;; this run's inputs t0 <= t < t1
              (local.set $tend (select (i32.sub (local.get $u1) (local.get $pk)) (local.get $kc)
                (i32.lt_u (i32.sub (local.get $u1) (local.get $pk)) (local.get $kc))))
              (local.set $end (i32.add (local.get $ip) (i32.shl (local.get $tend) (i32.const 2))))
              (if (i32.gt_u (local.get $u0) (local.get $pk)) (then
                (local.set $ip (i32.add (local.get $ip)
                  (i32.shl (i32.sub (local.get $u0) (local.get $pk)) (i32.const 2))))
                (local.set $wq (i32.add (local.get $wq)
                  (i32.mul (i32.sub (local.get $u0) (local.get $pk)) (local.get $cop4))))))
              (loop $lt
                ${body}
                (local.set $wq (i32.add (local.get $wq) (local.get $cop4)))
                (br_if $lt (i32.lt_u (local.tee $ip (i32.add (local.get $ip) (i32.const 4))) (local.get $end))))
              (local.set $p (i32.add (local.get $p) (i32.const 1)))
              (br $lp)))`;
}

/** Forward: the block of `v` voxels at x0, every group of 4 output channels. */
function forwardBlock(v: number): string {
  const acc = range(v);
  return `
        (local.set $co (i32.const 0))
        (loop $col
          ${acc.map((q) => `(local.set $a${q} (v128.const i32x4 0 0 0 0))`).join("\n          ")}
          ${
    tapRuns(`(local.set $wv (v128.load (local.get $wq)))
                ${
      acc.map((q) =>
        `(local.set $a${q} (f32x4.add (local.get $a${q}) (f32x4.mul (local.get $wv)
                  (v128.load32_splat ${at("$ip", "s", q)}))))`
      ).join("\n                ")
    }`)
  }
          ;; y[o + x0 + q, co..co+3]
          ${OUT_AT}
          ${
    acc.map((q) => `(v128.store ${at("$op", "t", q)} (local.get $a${q}))`).join("\n          ")
  }
          (br_if $col (i32.lt_u (local.tee $co (i32.add (local.get $co) (i32.const 4))) (local.get $cop))))`;
}

/** Weight gradient: the block of `v` voxels at x0 adds its products into dw. */
function weightGradBlock(v: number): string {
  const g = range(v);
  const products = g.map((q) =>
    `(f32x4.mul (local.get $a${q}) (v128.load32_splat ${at("$ip", "s", q)}))`
  ).reduce((sum, term) => `(f32x4.add ${sum}\n                  ${term})`);
  return `
        (local.set $co (i32.const 0))
        (loop $col
          ;; dy[o + x0 + q, co..co+3] in registers
          ${OUT_AT}
          ${
    g.map((q) => `(local.set $a${q} (v128.load ${at("$op", "t", q)}))`).join("\n          ")
  }
          ${
    tapRange(`(v128.store (local.get $wq) (f32x4.add (v128.load (local.get $wq))
                  ${products}))`)
  }
          (br_if $col (i32.lt_u (local.tee $co (i32.add (local.get $co) (i32.const 4))) (local.get $cop))))`;
}

/**
 * A kernel over output rows r0 <= row < r1 of the (b, z, y) rows (r0 < r1): blocks of V voxels along x, then single ones. */
function kernel(name: string, block: (v: number) => string, paddedY = false): string {
  // y's voxel (b, z, yy, 0): dense, or inside y padded as the input is (by (k-1)/2).
  const rowStart = paddedY
    ? `(i32.add (i32.mul (i32.add (i32.mul (i32.add (local.get $zb) (i32.shr_u (local.get $k) (i32.const 1)))
          (local.get $hp)) (i32.add (local.get $yy) (i32.shr_u (local.get $k) (i32.const 1)))) (local.get $wp))
          (i32.shr_u (local.get $k) (i32.const 1)))`
    : `(i32.mul (local.get $row) (local.get $wd))`;
  const locals = [
    ...range(V).map((q) => `(local $a${q} v128)`),
    ...range(V).slice(1).map((q) => `(local $s${q} i32) (local $t${q} i32)`),
  ].join(" ");
  return `
  (func (export "${name}") (param $x i32) (param $w i32) (param $y i32)
      (param $b i32) (param $d i32) (param $h i32) (param $wd i32)
      (param $cin i32) (param $cop i32) (param $k i32)
      (param $r0 i32) (param $r1 i32) (param $u0 i32) (param $u1 i32)
    (local $row i32) (local $kc i32) (local $p i32) (local $pk i32) (local $tend i32)
    (local $hp i32) (local $wp i32) (local $run i32) (local $cop4 i32)
    (local $bz i32) (local $zb i32) (local $yy i32) (local $x0 i32) (local $o i32) (local $co i32)
    (local $dz i32) (local $dy i32) (local $ip i32) (local $wq i32) (local $op i32) (local $end i32)
    (local $wv v128) ${locals}
    (local.set $hp (i32.sub (i32.add (local.get $h) (local.get $k)) (i32.const 1)))
    (local.set $wp (i32.sub (i32.add (local.get $wd) (local.get $k)) (i32.const 1)))
    (local.set $run (i32.shl (i32.mul (local.get $k) (local.get $cin)) (i32.const 2)))
    (local.set $cop4 (i32.shl (local.get $cop) (i32.const 2)))
    (local.set $kc (i32.mul (local.get $k) (local.get $cin)))
    ${
    range(V).slice(1).map((q) =>
      `(local.set $s${q} (i32.shl (i32.mul (local.get $cin) (i32.const ${q})) (i32.const 2)))
    (local.set $t${q} (i32.shl (i32.mul (local.get $cop) (i32.const ${q})) (i32.const 2)))`
    ).join("\n    ")
  }
    ;; rows r0 <= row < r1 of the (b, z, y) rows; the padded slab of (b, z) = bz starts at
    ;; zb = b (D+k-1) + z
    (local.set $row (local.get $r0))
    (loop $lrow
      (local.set $bz (i32.div_u (local.get $row) (local.get $h)))
      (local.set $yy (i32.rem_u (local.get $row) (local.get $h)))
      (local.set $zb (i32.add (local.get $bz) (i32.mul (i32.div_u (local.get $bz) (local.get $d))
        (i32.sub (local.get $k) (i32.const 1)))))
        (local.set $o ${rowStart})
        (local.set $x0 (i32.const 0))
        (block $done
          (loop $lx
            (br_if $done (i32.gt_u (i32.add (local.get $x0) (i32.const ${V})) (local.get $wd)))
            ${block(V)}
            (local.set $x0 (i32.add (local.get $x0) (i32.const ${V})))
            (br $lx)))
        (block $done
          (loop $lx
            (br_if $done (i32.ge_u (local.get $x0) (local.get $wd)))
            ${block(1)}
            (local.set $x0 (i32.add (local.get $x0) (i32.const 1)))
            (br $lx)))
        (br_if $lrow (i32.lt_u (local.tee $row (i32.add (local.get $row) (i32.const 1)))
          (local.get $r1))))
  )`;
}

/**
 * The module: `forward` and `weightGrad`, both (xp, w, y, B, D, H, W, Ci, Co, k, r0, r1,
 * u0, u1) over the shared memory: output rows [r0, r1), and for `weightGrad` weight rows
 * [u0, u1) of the k³·Ci (u0 < u1; `forward` ignores them). `weightGradPadded` reads dy
 * padded as xp is (the input gradient's own padded copy, when Co is a multiple of 4).
 */
export const CONV_WAT = `
(module
  (import "env" "memory" (memory 1 65535 shared))
  ${kernel("forward", forwardBlock)}
  ${kernel("weightGrad", weightGradBlock)}
  ${kernel("weightGradPadded", weightGradBlock, true)}
)
`;
