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
    tapRuns(`(v128.store (local.get $wq) (f32x4.add (v128.load (local.get $wq))
                  ${products}))`)
  }
          (br_if $col (i32.lt_u (local.tee $co (i32.add (local.get $co) (i32.const 4))) (local.get $cop))))`;
}

/** A kernel over every output row (b, z, y): blocks of V voxels along x, then single ones. */
function kernel(name: string, block: (v: number) => string): string {
  const locals = [
    ...range(V).map((q) => `(local $a${q} v128)`),
    ...range(V).slice(1).map((q) => `(local $s${q} i32) (local $t${q} i32)`),
  ].join(" ");
  return `
  (func (export "${name}") (param $x i32) (param $w i32) (param $y i32)
      (param $b i32) (param $d i32) (param $h i32) (param $wd i32)
      (param $cin i32) (param $cop i32) (param $k i32)
    (local $hp i32) (local $wp i32) (local $run i32) (local $cop4 i32)
    (local $bz i32) (local $zb i32) (local $yy i32) (local $x0 i32) (local $o i32) (local $co i32)
    (local $dz i32) (local $dy i32) (local $ip i32) (local $wq i32) (local $op i32) (local $end i32)
    (local $wv v128) ${locals}
    (local.set $hp (i32.sub (i32.add (local.get $h) (local.get $k)) (i32.const 1)))
    (local.set $wp (i32.sub (i32.add (local.get $wd) (local.get $k)) (i32.const 1)))
    (local.set $run (i32.shl (i32.mul (local.get $k) (local.get $cin)) (i32.const 2)))
    (local.set $cop4 (i32.shl (local.get $cop) (i32.const 2)))
    ${
    range(V).slice(1).map((q) =>
      `(local.set $s${q} (i32.shl (i32.mul (local.get $cin) (i32.const ${q})) (i32.const 2)))
    (local.set $t${q} (i32.shl (i32.mul (local.get $cop) (i32.const ${q})) (i32.const 2)))`
    ).join("\n    ")
  }
    ;; bz runs over (b, z); the padded slab of (b, z) starts at zb = b (D+k-1) + z
    (local.set $bz (i32.const 0))
    (loop $lbz
      (local.set $zb (i32.add (local.get $bz) (i32.mul (i32.div_u (local.get $bz) (local.get $d))
        (i32.sub (local.get $k) (i32.const 1)))))
      (local.set $yy (i32.const 0))
      (loop $lyy
        (local.set $o (i32.mul (i32.add (i32.mul (local.get $bz) (local.get $h)) (local.get $yy))
          (local.get $wd)))
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
        (br_if $lyy (i32.lt_u (local.tee $yy (i32.add (local.get $yy) (i32.const 1))) (local.get $h))))
      (br_if $lbz (i32.lt_u (local.tee $bz (i32.add (local.get $bz) (i32.const 1)))
        (i32.mul (local.get $b) (local.get $d)))))
  )`;
}

/** The module: `forward` and `weightGrad`, both (xp, w, y, B, D, H, W, Ci, Co, k). */
export const CONV_WAT = `
(module
  (memory (export "memory") 1)
  ${kernel("forward", forwardBlock)}
  ${kernel("weightGrad", weightGradBlock)}
)
`;
