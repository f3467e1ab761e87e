// WebAssembly (SIMD) source of the instance-norm kernels, compiled at load time by
// `_wasm.ts`: the float64 arithmetic of the typed-array version in `instance_norm.ts`,
// operation for operation (each channel's sums run over the voxels in order, in float64),
// two channels per f64x2, so the results are bitwise the same on any thread split.
//
// Layout: one sample's `[voxels, C]` f32 values (channels last), a part's channels
// c0 <= i < c1 (multiples of 4). Statistics are f64 arrays indexed by channel. Pointers are
// byte offsets into the shared memory.

/** WAT: `$lo`, `$hi` = the f32x4 in `$v` as two f64x2 (lanes 0-1 and 2-3). */
const WIDEN = `
        (local.set $lo (f64x2.promote_low_f32x4 (local.get $v)))
        (local.set $hi (f64x2.promote_low_f32x4
          (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $v) (local.get $v))))`;

/** WAT: the f32x4 of two f64x2 rounded to f32 (`lo` lanes 0-1, `hi` lanes 2-3). */
const narrow = (lo: string, hi: string) =>
  `(i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23
    (f32x4.demote_f64x2_zero ${lo}) (f32x4.demote_f64x2_zero ${hi}))`;

/**
 * A loop over every voxel and every channel quad of the part: `$p` the byte offset of the
 * quad in `$x`-relative terms (add it to a base), `$s` the channel's byte offset in the f64
 * statistics (8 bytes a channel), `body` once per quad.
 */
function voxelsAndQuads(body: string): string {
  return `
    (local.set $row (i32.const 0))
    (local.set $vox (i32.const 0))
    (block $vdone
      (loop $vl
        (br_if $vdone (i32.ge_u (local.get $vox) (local.get $voxels)))
        (local.set $q (local.get $c0))
        (loop $ql
          (local.set $p (i32.shl (i32.add (local.get $row) (local.get $q)) (i32.const 2)))
          (local.set $s (i32.shl (local.get $q) (i32.const 3)))
          ${body}
          (br_if $ql (i32.lt_u (local.tee $q (i32.add (local.get $q) (i32.const 4))) (local.get $c1))))
        (local.set $row (i32.add (local.get $row) (local.get $c)))
        (local.set $vox (i32.add (local.get $vox) (i32.const 1)))
        (br $vl)))`;
}

/** A loop over the part's channel pairs with `$s` their byte offset in the statistics. */
function pairs(body: string): string {
  return `
    (local.set $s (i32.shl (local.get $c0) (i32.const 3)))
    (local.set $q (i32.shl (local.get $c1) (i32.const 3)))
    (block $pdone
      (loop $pl
        (br_if $pdone (i32.ge_u (local.get $s) (local.get $q)))
        ${body}
        (local.set $s (i32.add (local.get $s) (i32.const 16)))
        (br $pl)))`;
}

/** `$a[s..s+16) += value_lo`, `$a[s+16..s+32) += value_hi` for a statistics array `$a`. */
const accumulate = (a: string, lo: string, hi: string) => `
          (v128.store (i32.add (local.get ${a}) (local.get $s))
            (f64x2.add (v128.load (i32.add (local.get ${a}) (local.get $s))) ${lo}))
          (v128.store offset=16 (i32.add (local.get ${a}) (local.get $s))
            (f64x2.add (v128.load offset=16 (i32.add (local.get ${a}) (local.get $s))) ${hi}))`;

const stat = (a: string, offset = 0) =>
  `(v128.load offset=${offset} (i32.add (local.get ${a}) (local.get $s)))`;

const LOCALS = `
    (local $row i32) (local $vox i32) (local $q i32) (local $p i32) (local $s i32)
    (local $v v128) (local $lo v128) (local $hi v128) (local $lo2 v128) (local $hi2 v128)
    (local $n v128)`;

/** WAT: `$pre` = `$yv` plus the residual at `$p` when `$res` is not 0. */
const PRE = `(local.set $pre (local.get $yv))
          (if (local.get $res) (then (local.set $pre
            (f32x4.add (local.get $yv) (v128.load (i32.add (local.get $res) (local.get $p)))))))`;

/**
 * WAT: `$act` = LeakyReLU(`$pre`): the product in f32 with the slope rounded to f32 (as
 * tfjs-wasm), or in f64 then rounded (as tfjs-cpu) when `$wide`.
 */
const LEAKY = `(local.set $v (local.get $pre))
          ${WIDEN}
          (local.set $act (v128.bitselect
            (if (result v128) (local.get $wide)
              (then ${
  narrow(
    "(f64x2.mul (local.get $lo) (f64x2.splat (local.get $slope)))",
    "(f64x2.mul (local.get $hi) (f64x2.splat (local.get $slope)))",
  )
})
              (else (f32x4.mul (local.get $pre) (local.get $slope32))))
            (local.get $pre)
            (f32x4.lt (local.get $pre) (v128.const f32x4 0 0 0 0))))`;

/** WAT: `$dpre` = the LeakyReLU's input gradient from g at `$p`, as tfjs' (where z > 0). */
const DPRE = `(local.set $gv (v128.load (i32.add (local.get $g) (local.get $p))))
          (local.set $dpre (v128.bitselect (local.get $gv)
            (f32x4.mul (local.get $gv) (local.get $slope32))
            (f32x4.gt (v128.load (i32.add (local.get $z) (local.get $p))) (v128.const f32x4 0 0 0 0))))`;

const ACT_LOCALS = `(local $yv v128) (local $pre v128) (local $act v128) (local $gv v128)
    (local $dpre v128) (local $slope32 v128)`;

/**
 * The module: `forward (x, y, voxels, c, c0, c1, mean, inv, eps)` writes y = (x - mean) inv
 * and the statistics (mean, and 1 / sqrt(var + eps) in inv); `backward (g, y, dx, voxels,
 * c, c0, c1, sum, dot, inv)` writes dx = inv ((g - mean(g)) - y mean(g y)).
 * `forwardAct (x, y, z, res, voxels, c, c0, c1, mean, inv, eps, slope, wide)` also writes
 * z = LeakyReLU(y + res) (y stored only when y is not 0, no residual when res is 0);
 * `backwardAct (g, z, y, dx, dres, voxels, c, c0, c1, sum, dot, inv, slope)` takes z's
 * gradient g through the LeakyReLU (into dres too, when not 0) and the norm.
 */
export const NORM_WAT = `
(module
  (import "env" "memory" (memory 1 65535 shared))

  (func (export "forward") (param $x i32) (param $y i32) (param $voxels i32) (param $c i32)
      (param $c0 i32) (param $c1 i32) (param $mean i32) (param $inv i32) (param $eps f64)
    ${LOCALS}
    (local.set $n (f64x2.splat (f64.convert_i32_u (local.get $voxels))))
    ${
  pairs(`(v128.store (i32.add (local.get $mean) (local.get $s)) (v128.const i64x2 0 0))
        (v128.store (i32.add (local.get $inv) (local.get $s)) (v128.const i64x2 0 0))`)
}
    ;; mean = sum x / voxels
    ${
  voxelsAndQuads(`(local.set $v (v128.load (i32.add (local.get $x) (local.get $p))))
          ${WIDEN}
          ${accumulate("$mean", "(local.get $lo)", "(local.get $hi)")}`)
}
    ${
  pairs(`(v128.store (i32.add (local.get $mean) (local.get $s))
          (f64x2.div ${stat("$mean")} (local.get $n)))`)
}
    ;; inv = 1 / sqrt(sum (x - mean)^2 / voxels + eps)
    ${
  voxelsAndQuads(`(local.set $v (v128.load (i32.add (local.get $x) (local.get $p))))
          ${WIDEN}
          (local.set $lo (f64x2.sub (local.get $lo) ${stat("$mean")}))
          (local.set $hi (f64x2.sub (local.get $hi) ${stat("$mean", 16)}))
          ${
    accumulate(
      "$inv",
      "(f64x2.mul (local.get $lo) (local.get $lo))",
      "(f64x2.mul (local.get $hi) (local.get $hi))",
    )
  }`)
}
    ${
  pairs(`(v128.store (i32.add (local.get $inv) (local.get $s))
          (f64x2.div (f64x2.splat (f64.const 1)) (f64x2.sqrt (f64x2.add
            (f64x2.div ${stat("$inv")} (local.get $n)) (f64x2.splat (local.get $eps))))))`)
}
    ;; y = (x - mean) inv
    ${
  voxelsAndQuads(`(local.set $v (v128.load (i32.add (local.get $x) (local.get $p))))
          ${WIDEN}
          (v128.store (i32.add (local.get $y) (local.get $p)) ${
    narrow(
      `(f64x2.mul (f64x2.sub (local.get $lo) ${stat("$mean")}) ${stat("$inv")})`,
      `(f64x2.mul (f64x2.sub (local.get $hi) ${stat("$mean", 16)}) ${stat("$inv", 16)})`,
    )
  })`)
}
  )

  (func (export "backward") (param $g i32) (param $y i32) (param $dx i32) (param $voxels i32)
      (param $c i32) (param $c0 i32) (param $c1 i32) (param $sum i32) (param $dot i32)
      (param $inv i32)
    ${LOCALS}
    (local.set $n (f64x2.splat (f64.convert_i32_u (local.get $voxels))))
    ${
  pairs(`(v128.store (i32.add (local.get $sum) (local.get $s)) (v128.const i64x2 0 0))
        (v128.store (i32.add (local.get $dot) (local.get $s)) (v128.const i64x2 0 0))`)
}
    ;; sum = mean g, dot = mean g y
    ${
  voxelsAndQuads(`(local.set $v (v128.load (i32.add (local.get $g) (local.get $p))))
          ${WIDEN}
          (local.set $lo2 (local.get $lo))
          (local.set $hi2 (local.get $hi))
          (local.set $v (v128.load (i32.add (local.get $y) (local.get $p))))
          ${WIDEN}
          ${accumulate("$sum", "(local.get $lo2)", "(local.get $hi2)")}
          ${
    accumulate(
      "$dot",
      "(f64x2.mul (local.get $lo2) (local.get $lo))",
      "(f64x2.mul (local.get $hi2) (local.get $hi))",
    )
  }`)
}
    ${
  pairs(`(v128.store (i32.add (local.get $sum) (local.get $s))
          (f64x2.div ${stat("$sum")} (local.get $n)))
        (v128.store (i32.add (local.get $dot) (local.get $s))
          (f64x2.div ${stat("$dot")} (local.get $n)))`)
}
    ;; dx = inv ((g - sum) - y dot)
    ${
  voxelsAndQuads(`(local.set $v (v128.load (i32.add (local.get $g) (local.get $p))))
          ${WIDEN}
          (local.set $lo2 (local.get $lo))
          (local.set $hi2 (local.get $hi))
          (local.set $v (v128.load (i32.add (local.get $y) (local.get $p))))
          ${WIDEN}
          (v128.store (i32.add (local.get $dx) (local.get $p)) ${
    narrow(
      `(f64x2.mul ${stat("$inv")} (f64x2.sub (f64x2.sub (local.get $lo2) ${stat("$sum")})
              (f64x2.mul (local.get $lo) ${stat("$dot")})))`,
      `(f64x2.mul ${stat("$inv", 16)} (f64x2.sub (f64x2.sub (local.get $hi2) ${stat("$sum", 16)})
              (f64x2.mul (local.get $hi) ${stat("$dot", 16)})))`,
    )
  })`)
}
  )
  (func (export "forwardAct") (param $x i32) (param $y i32) (param $z i32) (param $res i32)
      (param $voxels i32) (param $c i32) (param $c0 i32) (param $c1 i32) (param $mean i32)
      (param $inv i32) (param $eps f64) (param $slope f64) (param $wide i32)
    ${LOCALS} ${ACT_LOCALS}
    (local.set $slope32 (f32x4.splat (f32.demote_f64 (local.get $slope))))
    (local.set $n (f64x2.splat (f64.convert_i32_u (local.get $voxels))))
    ${
  pairs(`(v128.store (i32.add (local.get $mean) (local.get $s)) (v128.const i64x2 0 0))
        (v128.store (i32.add (local.get $inv) (local.get $s)) (v128.const i64x2 0 0))`)
}
    ;; mean = sum x / voxels
    ${
  voxelsAndQuads(`(local.set $v (v128.load (i32.add (local.get $x) (local.get $p))))
          ${WIDEN}
          ${accumulate("$mean", "(local.get $lo)", "(local.get $hi)")}`)
}
    ${
  pairs(`(v128.store (i32.add (local.get $mean) (local.get $s))
          (f64x2.div ${stat("$mean")} (local.get $n)))`)
}
    ;; inv = 1 / sqrt(sum (x - mean)^2 / voxels + eps)
    ${
  voxelsAndQuads(`(local.set $v (v128.load (i32.add (local.get $x) (local.get $p))))
          ${WIDEN}
          (local.set $lo (f64x2.sub (local.get $lo) ${stat("$mean")}))
          (local.set $hi (f64x2.sub (local.get $hi) ${stat("$mean", 16)}))
          ${
    accumulate(
      "$inv",
      "(f64x2.mul (local.get $lo) (local.get $lo))",
      "(f64x2.mul (local.get $hi) (local.get $hi))",
    )
  }`)
}
    ${
  pairs(`(v128.store (i32.add (local.get $inv) (local.get $s))
          (f64x2.div (f64x2.splat (f64.const 1)) (f64x2.sqrt (f64x2.add
            (f64x2.div ${stat("$inv")} (local.get $n)) (f64x2.splat (local.get $eps))))))`)
}
    ;; y = (x - mean) inv (stored when $y is not 0), z = LeakyReLU(y + residual)
    ${
  voxelsAndQuads(`(local.set $v (v128.load (i32.add (local.get $x) (local.get $p))))
          ${WIDEN}
          (local.set $yv ${
    narrow(
      `(f64x2.mul (f64x2.sub (local.get $lo) ${stat("$mean")}) ${stat("$inv")})`,
      `(f64x2.mul (f64x2.sub (local.get $hi) ${stat("$mean", 16)}) ${stat("$inv", 16)})`,
    )
  })
          (if (local.get $y) (then (v128.store (i32.add (local.get $y) (local.get $p)) (local.get $yv))))
          ${PRE}
          ${LEAKY}
          (v128.store (i32.add (local.get $z) (local.get $p)) (local.get $act))`)
}
  )

  (func (export "backwardAct") (param $g i32) (param $z i32) (param $y i32) (param $dx i32)
      (param $dres i32) (param $voxels i32) (param $c i32) (param $c0 i32) (param $c1 i32)
      (param $sum i32) (param $dot i32) (param $inv i32) (param $slope f64)
    ${LOCALS} ${ACT_LOCALS}
    (local.set $slope32 (f32x4.splat (f32.demote_f64 (local.get $slope))))
    (local.set $n (f64x2.splat (f64.convert_i32_u (local.get $voxels))))
    ${
  pairs(`(v128.store (i32.add (local.get $sum) (local.get $s)) (v128.const i64x2 0 0))
        (v128.store (i32.add (local.get $dot) (local.get $s)) (v128.const i64x2 0 0))`)
}
    ;; sum = mean g, dot = mean g y
    ${
  voxelsAndQuads(`${DPRE}
          (if (local.get $dres) (then (v128.store (i32.add (local.get $dres) (local.get $p)) (local.get $dpre))))
          (local.set $v (local.get $dpre))
          ${WIDEN}
          (local.set $lo2 (local.get $lo))
          (local.set $hi2 (local.get $hi))
          (local.set $v (v128.load (i32.add (local.get $y) (local.get $p))))
          ${WIDEN}
          ${accumulate("$sum", "(local.get $lo2)", "(local.get $hi2)")}
          ${
    accumulate(
      "$dot",
      "(f64x2.mul (local.get $lo2) (local.get $lo))",
      "(f64x2.mul (local.get $hi2) (local.get $hi))",
    )
  }`)
}
    ${
  pairs(`(v128.store (i32.add (local.get $sum) (local.get $s))
          (f64x2.div ${stat("$sum")} (local.get $n)))
        (v128.store (i32.add (local.get $dot) (local.get $s))
          (f64x2.div ${stat("$dot")} (local.get $n)))`)
}
    ;; dx = inv ((g - sum) - y dot)
    ${
  voxelsAndQuads(`${DPRE}
          (local.set $v (local.get $dpre))
          ${WIDEN}
          (local.set $lo2 (local.get $lo))
          (local.set $hi2 (local.get $hi))
          (local.set $v (v128.load (i32.add (local.get $y) (local.get $p))))
          ${WIDEN}
          (v128.store (i32.add (local.get $dx) (local.get $p)) ${
    narrow(
      `(f64x2.mul ${stat("$inv")} (f64x2.sub (f64x2.sub (local.get $lo2) ${stat("$sum")})
              (f64x2.mul (local.get $lo) ${stat("$dot")})))`,
      `(f64x2.mul ${stat("$inv", 16)} (f64x2.sub (f64x2.sub (local.get $hi2) ${stat("$sum", 16)})
              (f64x2.mul (local.get $hi) ${stat("$dot", 16)})))`,
    )
  })`)
}
  )
)
`;
