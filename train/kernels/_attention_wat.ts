// WebAssembly (SIMD) source of the window-attention kernel, compiled at load time by
// `_wasm.ts`. One call handles one (window, head): q, k, v (and dq, dk, dv) are `[n, d]`
// f32 rows `ld` floats apart (slices of the qkv activation), out and its gradient g are
// rows `ldo` floats apart, the bias and mask are `[n, n]`. Keys are vectorised four at a
// time: k and v are first transposed to `[d, n4]` (n4 = n rounded up to 4, zero padded) so
// that each score row and each gradient row is a run of f32x4 multiply-adds, four channels
// per pass (d must be a multiple of 4, as SwinUNETR's head sizes are). Padding keys
// score -inf, so their probability is exactly 0. Handwritten because no npm package
// offers fused attention for wasm and the stock tfjs ops are slow here (window_attention.ts).
//
// Pointers are byte offsets into the (shared, imported) memory; scratch needs 2·d·n4 + n4 floats
// forward and 4·d·n4 + 2·n4 backward. Bias and mask rows are read as f32x4 up to 3 floats
// past their end (into the next row; those scores are then overwritten with -inf), and
// bias gradient rows get +0 there, so the caller leaves 16 zeroed bytes after each buffer.
const f4 = (v: string) => `(v128.const f32x4 ${v} ${v} ${v} ${v})`;

/** Four copies of a statement for m = 0..3 (channels are handled four at a time). */
const four = (f: (m: number) => string) => [0, 1, 2, 3].map(f).join("\n");

/** Address of column m (`$e<m>` bytes further) at pointer local `p`. */
const col = (p: string, m: number) =>
  m ? `(i32.add (local.get ${p}) (local.get $e${m}))` : `(local.get ${p})`;

/** WAT statements setting `$e1..$e3` to 1..3 column strides (`$end` bytes each). */
const STRIDES = four((m) =>
  m ? `(local.set $e${m} (i32.mul (local.get $end) (i32.const ${m})))` : ""
);

/**
 * WAT statements that set local `$e` to e^x per lane of local `$x` (x <= 0), clobbering
 * `$x`, `$keep`, `$m`, `$r`: Cephes expf (Cody-Waite reduction, degree-7 polynomial, about 1 ulp),
 * exactly 0 below -87 (-inf included). Written inline because V8 did not inline it as a
 * function (a fifth of the kernel's time went to the calls).
 */
function expInline(): string {
  return `
    (local.set $keep (f32x4.gt (local.get $x) ${f4("-87")}))
    ${expKept()}`;
}

/** {@linkcode expInline} after `$keep` (lanes of `$x` above -87) is set. */
function expKept(): string {
  const step = (c: string) =>
    `(local.set $e (f32x4.add (f32x4.mul (local.get $e) (local.get $r)) ${f4(c)}))`;
  return `
    (local.set $x (f32x4.max (local.get $x) ${f4("-87")}))
    (local.set $m (f32x4.nearest (f32x4.mul (local.get $x) ${f4("1.44269504088896341")})))
    (local.set $r (f32x4.sub
      (f32x4.sub (local.get $x) (f32x4.mul (local.get $m) ${f4("0.693359375")}))
      (f32x4.mul (local.get $m) ${f4("-2.12194440e-4")})))
    (local.set $e ${f4("1.9875691500e-4")})
    ${step("1.3981999507e-3")}
    ${step("8.3334519073e-3")}
    ${step("4.1665795894e-2")}
    ${step("1.6666665459e-1")}
    ${step("5.0000001201e-1")}
    (local.set $e (f32x4.add
      (f32x4.add (f32x4.mul (f32x4.mul (local.get $e) (local.get $r)) (local.get $r)) (local.get $r))
      ${f4("1")}))
    (local.set $e (v128.and (local.get $keep) (f32x4.mul (local.get $e)
      (i32x4.shl (i32x4.add (i32x4.trunc_sat_f32x4_s (local.get $m)) (v128.const i32x4 127 127 127 127))
        (i32.const 23)))))`;
}

/**
 * One score quad of the head-size-4 kernels at byte offset `j`: bias (+ mask) +
 * ((q0 k0 + q1 k1) + (q2 k2 + q3 k3)), the same operations in the same order as the
 * general kernel's passes.
 */
function score4(j: string, withMask: boolean): string {
  const bm = withMask
    ? `(f32x4.add (v128.load (i32.add (local.get $brow) ${j})) (v128.load (i32.add (local.get $mrow) ${j})))`
    : `(v128.load (i32.add (local.get $brow) ${j}))`;
  return `(f32x4.add ${bm}
      (f32x4.add
        (f32x4.add (f32x4.mul (local.get $q0) (v128.load (i32.add (local.get $kt) ${j})))
                   (f32x4.mul (local.get $q1) (v128.load (i32.add (local.get $kt1) ${j}))))
        (f32x4.add (f32x4.mul (local.get $q2) (v128.load (i32.add (local.get $kt2) ${j})))
                   (f32x4.mul (local.get $q3) (v128.load (i32.add (local.get $kt3) ${j}))))))`;
}

/** Both variants (with and without a mask) of a loop body that uses {@linkcode score4}. */
function withAndWithoutMask(body: (withMask: boolean) => string): string {
  return `(if (local.get $hasMask) (then ${body(true)}) (else ${body(false)}))`;
}

/** WAT: `$kt1..3` and `$vt1..3`, the columns of the transposed k and v (head size 4). */
const COLUMNS4 = [1, 2, 3].map((m) =>
  `(local.set $kt${m} (i32.add (local.get $kt) (local.get $e${m})))
    (local.set $vt${m} (i32.add (local.get $vt) (local.get $e${m})))`
).join("\n    ");

/** WAT: `$q0..3`, the query row's values times the scale, splatted. */
const QUERY4 = four((m) =>
  `(local.set $q${m} (f32x4.splat (f32.mul (local.get $scale)
        (f32.load offset=${4 * m} (i32.add (local.get $q) (local.get $qrow))))))`
);

/** WAT: -inf in the score row past n (up to n4). */
const TAIL = `(local.set $j (local.get $n))
        (block $tdone
          (loop $tl
            (br_if $tdone (i32.ge_u (local.get $j) (local.get $n4)))
            (f32.store (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2))) (f32.const -inf))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $tl)))`;

/**
 * Head size 4 (SwinUNETR's at feature size 12): the general kernels' arithmetic, operation
 * for operation, in fewer passes over each score row (scores with the row maximum;
 * exponentials with the sum and the output; in the backward pass probabilities with dp, dv
 * and delta, then ds with dbias, dq and dk), the query row in registers, and every group of
 * four keys whose probabilities are all exactly 0 (the shift mask's -100 sends them below
 * expf's -87 cut) skipped: what it would add is +-0, which leaves every sum as it is.
 */
const HEAD4 = `
  (func (export "forward4") (param $q i32) (param $k i32) (param $v i32) (param $bias i32)
      (param $mask i32) (param $queries i32) (param $out i32) (param $stats i32)
      (param $scratch i32) (param $n i32) (param $d i32) (param $ld i32) (param $ldo i32)
      (param $scale f32) (param $hasMask i32)
    (local $n4 i32) (local $end i32) (local $last i32) (local $kt i32) (local $vt i32) (local $row i32)
    (local $i i32) (local $j i32) (local $qrow i32) (local $orow i32) (local $brow i32) (local $mrow i32)
    (local $kt1 i32) (local $kt2 i32) (local $kt3 i32) (local $vt1 i32) (local $vt2 i32) (local $vt3 i32)
    (local $e1 i32) (local $e2 i32) (local $e3 i32)
    (local $inv f32) (local $mx v128) (local $mxv v128) (local $s v128) (local $acc v128)
    (local $e v128) (local $x v128) (local $keep v128) (local $m v128) (local $r v128)
    (local $q0 v128) (local $q1 v128) (local $q2 v128) (local $q3 v128)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    (local.set $n4 (i32.and (i32.add (local.get $n) (i32.const 3)) (i32.const -4)))
    (local.set $end (i32.shl (local.get $n4) (i32.const 2)))
    (local.set $last (i32.sub (local.get $end) (i32.const 16)))
    ${STRIDES}
    (local.set $kt (local.get $scratch))
    (local.set $vt (i32.add (local.get $kt) (i32.shl (local.get $end) (i32.const 2))))
    (local.set $row (i32.add (local.get $vt) (i32.shl (local.get $end) (i32.const 2))))
    ${COLUMNS4}
    (call $toColumns (local.get $k) (local.get $kt) (local.get $n) (local.get $n4) (i32.const 4) (local.get $ld))
    (call $toColumns (local.get $v) (local.get $vt) (local.get $n) (local.get $n4) (i32.const 4) (local.get $ld))
    (local.set $i (i32.const 0))
    (loop $il
      (if (i32.load8_u (i32.add (local.get $queries) (local.get $i)))
        (then
          (local.set $qrow (i32.shl (i32.mul (local.get $i) (local.get $ld)) (i32.const 2)))
          ${QUERY4}
          (local.set $brow (i32.add (local.get $bias) (i32.shl (i32.mul (local.get $i) (local.get $n)) (i32.const 2))))
          (local.set $mrow (i32.add (local.get $mask) (i32.shl (i32.mul (local.get $i) (local.get $n)) (i32.const 2))))
          ;; scores and their maximum; the last quad after its lanes past n are -inf
          (local.set $mx (v128.const f32x4 -inf -inf -inf -inf))
          ${
  withAndWithoutMask((withMask) => `
          (local.set $j (i32.const 0))
          (block $sdone
            (loop $sl
              (br_if $sdone (i32.ge_u (local.get $j) (local.get $last)))
              (local.set $s ${score4("(local.get $j)", withMask)})
              (v128.store (i32.add (local.get $row) (local.get $j)) (local.get $s))
              (local.set $mx (f32x4.max (local.get $mx) (local.get $s)))
              (local.set $j (i32.add (local.get $j) (i32.const 16)))
              (br $sl)))
          (v128.store (i32.add (local.get $row) (local.get $last)) ${
    score4("(local.get $last)", withMask)
  })`)
}
          ${TAIL}
          (local.set $mx (f32x4.max (local.get $mx) (v128.load (i32.add (local.get $row) (local.get $last)))))
          (local.set $mxv (f32x4.splat (call $hmax (local.get $mx))))
          ;; exponentials, their sum and the output, quads below the cut skipped
          (local.set $acc (v128.const f32x4 0 0 0 0))
          ${four((m) => `(local.set $a${m} (v128.const f32x4 0 0 0 0))`)}
          (local.set $j (i32.const 0))
          (loop $l
            (local.set $x (f32x4.sub (v128.load (i32.add (local.get $row) (local.get $j))) (local.get $mxv)))
            (local.set $keep (f32x4.gt (local.get $x) ${f4("-87")}))
            (if (v128.any_true (local.get $keep))
              (then
                ${expKept()}
                (local.set $acc (f32x4.add (local.get $acc) (local.get $e)))
                (local.set $a0 (f32x4.add (local.get $a0)
                  (f32x4.mul (local.get $e) (v128.load (i32.add (local.get $vt) (local.get $j))))))
                ${
  [1, 2, 3].map((m) =>
    `(local.set $a${m} (f32x4.add (local.get $a${m})
                  (f32x4.mul (local.get $e) (v128.load (i32.add (local.get $vt${m}) (local.get $j))))))`
  ).join("\n                ")
}))
            (br_if $l (i32.lt_u (local.tee $j (i32.add (local.get $j) (i32.const 16))) (local.get $end))))
          (local.set $inv (f32.div (f32.const 1) (call $hsum (local.get $acc))))
          (f32.store (i32.add (local.get $stats) (i32.shl (local.get $i) (i32.const 3))) (call $hmax (local.get $mx)))
          (f32.store offset=4 (i32.add (local.get $stats) (i32.shl (local.get $i) (i32.const 3))) (local.get $inv))
          (local.set $orow (i32.add (local.get $out) (i32.shl (i32.mul (local.get $i) (local.get $ldo)) (i32.const 2))))
          ${
  four((m) =>
    `(f32.store offset=${4 * m} (local.get $orow)
            (f32.mul (call $hsum (local.get $a${m})) (local.get $inv)))`
  )
}))
      (br_if $il (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (local.get $n)))))

  (func (export "backward4") (param $q i32) (param $k i32) (param $v i32) (param $bias i32)
      (param $mask i32) (param $queries i32) (param $stats i32) (param $g i32)
      (param $dq i32) (param $dk i32) (param $dv i32) (param $dbias i32)
      (param $scratch i32) (param $n i32) (param $d i32) (param $ld i32) (param $ldo i32)
      (param $scale f32) (param $hasMask i32)
    (local $n4 i32) (local $end i32) (local $cols i32) (local $kt i32) (local $vt i32)
    (local $dkt i32) (local $dvt i32) (local $row i32) (local $drow i32)
    (local $i i32) (local $j i32) (local $qrow i32) (local $grow i32) (local $brow i32) (local $mrow i32)
    (local $dbrow i32) (local $pj i32)
    (local $kt1 i32) (local $kt2 i32) (local $kt3 i32) (local $vt1 i32) (local $vt2 i32) (local $vt3 i32)
    (local $e1 i32) (local $e2 i32) (local $e3 i32)
    (local $mxv v128) (local $invv v128) (local $p v128) (local $dp v128) (local $acc v128)
    (local $delta v128) (local $ds v128)
    (local $e v128) (local $x v128) (local $keep v128) (local $m v128) (local $r v128)
    (local $q0 v128) (local $q1 v128) (local $q2 v128) (local $q3 v128)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    (local $b0 v128) (local $b1 v128) (local $b2 v128) (local $b3 v128)
    (local.set $n4 (i32.and (i32.add (local.get $n) (i32.const 3)) (i32.const -4)))
    (local.set $end (i32.shl (local.get $n4) (i32.const 2)))
    ${STRIDES}
    (local.set $cols (i32.shl (local.get $end) (i32.const 2)))
    (local.set $kt (local.get $scratch))
    (local.set $vt (i32.add (local.get $kt) (local.get $cols)))
    (local.set $dkt (i32.add (local.get $vt) (local.get $cols)))
    (local.set $dvt (i32.add (local.get $dkt) (local.get $cols)))
    (local.set $row (i32.add (local.get $dvt) (local.get $cols)))
    (local.set $drow (i32.add (local.get $row) (local.get $end)))
    ${COLUMNS4}
    (call $toColumns (local.get $k) (local.get $kt) (local.get $n) (local.get $n4) (i32.const 4) (local.get $ld))
    (call $toColumns (local.get $v) (local.get $vt) (local.get $n) (local.get $n4) (i32.const 4) (local.get $ld))
    (memory.fill (local.get $dkt) (i32.const 0) (i32.shl (local.get $cols) (i32.const 1)))
    (local.set $i (i32.const 0))
    (loop $il
      (if (i32.load8_u (i32.add (local.get $queries) (local.get $i)))
        (then
          (local.set $qrow (i32.shl (i32.mul (local.get $i) (local.get $ld)) (i32.const 2)))
          (local.set $grow (i32.add (local.get $g) (i32.shl (i32.mul (local.get $i) (local.get $ldo)) (i32.const 2))))
          (local.set $brow (i32.add (local.get $bias) (i32.shl (i32.mul (local.get $i) (local.get $n)) (i32.const 2))))
          (local.set $mrow (i32.add (local.get $mask) (i32.shl (i32.mul (local.get $i) (local.get $n)) (i32.const 2))))
          (local.set $dbrow (i32.add (local.get $dbias) (i32.shl (i32.mul (local.get $i) (local.get $n)) (i32.const 2))))
          ${QUERY4}
          ${four((m) => `(local.set $a${m} (v128.load32_splat offset=${4 * m} (local.get $grow)))`)}
          (local.set $mxv (v128.load32_splat (i32.add (local.get $stats) (i32.shl (local.get $i) (i32.const 3)))))
          (local.set $invv (v128.load32_splat offset=4 (i32.add (local.get $stats) (i32.shl (local.get $i) (i32.const 3)))))
          ;; scores, -inf past n
          ${
  withAndWithoutMask((withMask) => `
          (local.set $j (i32.const 0))
          (loop $sl
            (v128.store (i32.add (local.get $row) (local.get $j)) ${
    score4("(local.get $j)", withMask)
  })
            (br_if $sl (i32.lt_u (local.tee $j (i32.add (local.get $j) (i32.const 16))) (local.get $end))))`)
}
          ${TAIL}
          ;; p (0 where below the cut), dp = g_i . v_j, dv += p g_i, delta = sum p dp
          (local.set $acc (v128.const f32x4 0 0 0 0))
          (local.set $j (i32.const 0))
          (loop $l
            (local.set $x (f32x4.sub (v128.load (i32.add (local.get $row) (local.get $j))) (local.get $mxv)))
            (local.set $keep (f32x4.gt (local.get $x) ${f4("-87")}))
            (if (v128.any_true (local.get $keep))
              (then
                ${expKept()}
                (local.set $p (f32x4.mul (local.get $invv) (local.get $e)))
                (v128.store (i32.add (local.get $row) (local.get $j)) (local.get $p))
                (local.set $dp
                  (f32x4.add
                    (f32x4.add (f32x4.mul (local.get $a0) (v128.load (i32.add (local.get $vt) (local.get $j))))
                               (f32x4.mul (local.get $a1) (v128.load (i32.add (local.get $vt1) (local.get $j)))))
                    (f32x4.add (f32x4.mul (local.get $a2) (v128.load (i32.add (local.get $vt2) (local.get $j))))
                               (f32x4.mul (local.get $a3) (v128.load (i32.add (local.get $vt3) (local.get $j)))))))
                (v128.store (i32.add (local.get $drow) (local.get $j)) (local.get $dp))
                (local.set $pj (i32.add (local.get $dvt) (local.get $j)))
                ${
  four((m) =>
    `(v128.store ${col("$pj", m)} (f32x4.add (v128.load ${col("$pj", m)})
                  (f32x4.mul (local.get $a${m}) (local.get $p))))`
  )
}
                (local.set $acc (f32x4.add (local.get $acc) (f32x4.mul (local.get $p) (local.get $dp)))))
              (else (v128.store (i32.add (local.get $row) (local.get $j)) (v128.const i32x4 0 0 0 0))))
            (br_if $l (i32.lt_u (local.tee $j (i32.add (local.get $j) (i32.const 16))) (local.get $end))))
          (local.set $delta (f32x4.splat (call $hsum (local.get $acc))))
          ;; ds = p (dp - delta): into dbias, dq (b) and dk, quads of p = 0 skipped
          ${four((m) => `(local.set $b${m} (v128.const f32x4 0 0 0 0))`)}
          (local.set $j (i32.const 0))
          (loop $l
            (local.set $p (v128.load (i32.add (local.get $row) (local.get $j))))
            (if (v128.any_true (local.get $p))
              (then
                (local.set $ds (f32x4.mul (local.get $p)
                  (f32x4.sub (v128.load (i32.add (local.get $drow) (local.get $j))) (local.get $delta))))
                (v128.store (i32.add (local.get $dbrow) (local.get $j))
                  (f32x4.add (v128.load (i32.add (local.get $dbrow) (local.get $j))) (local.get $ds)))
                (local.set $b0 (f32x4.add (local.get $b0)
                  (f32x4.mul (local.get $ds) (v128.load (i32.add (local.get $kt) (local.get $j))))))
                ${
  [1, 2, 3].map((m) =>
    `(local.set $b${m} (f32x4.add (local.get $b${m})
                  (f32x4.mul (local.get $ds) (v128.load (i32.add (local.get $kt${m}) (local.get $j))))))`
  ).join("\n                ")
}
                (local.set $pj (i32.add (local.get $dkt) (local.get $j)))
                ${
  four((m) =>
    `(v128.store ${col("$pj", m)} (f32x4.add (v128.load ${col("$pj", m)})
                  (f32x4.mul (local.get $ds) (local.get $q${m}))))`
  )
}))
            (br_if $l (i32.lt_u (local.tee $j (i32.add (local.get $j) (i32.const 16))) (local.get $end))))
          ${
  four((m) =>
    `(f32.store offset=${4 * m} (i32.add (local.get $dq) (local.get $qrow))
            (f32.mul (local.get $scale) (call $hsum (local.get $b${m}))))`
  )
}))
      (br_if $il (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (local.get $n))))
    (call $fromColumns (local.get $dkt) (local.get $dk) (local.get $n) (local.get $n4) (i32.const 4) (local.get $ld))
    (call $fromColumns (local.get $dvt) (local.get $dv) (local.get $n) (local.get $n4) (i32.const 4) (local.get $ld)))
`;

export const ATTENTION_WAT = String.raw`
(module
  (import "env" "memory" (memory 1 65535 shared))

  (func $hsum (param $v v128) (result f32)
    (f32.add
      (f32.add (f32x4.extract_lane 0 (local.get $v)) (f32x4.extract_lane 1 (local.get $v)))
      (f32.add (f32x4.extract_lane 2 (local.get $v)) (f32x4.extract_lane 3 (local.get $v)))))

  (func $hmax (param $v v128) (result f32)
    (f32.max
      (f32.max (f32x4.extract_lane 0 (local.get $v)) (f32x4.extract_lane 1 (local.get $v)))
      (f32.max (f32x4.extract_lane 2 (local.get $v)) (f32x4.extract_lane 3 (local.get $v)))))

  ;; dst[c, j] = src[j, c] (rows ld floats apart) for j < n; dst[c, j] = 0 for n <= j < n4.
  (func $toColumns (param $src i32) (param $dst i32) (param $n i32) (param $n4 i32) (param $d i32)
      (param $ld i32)
    (local $c i32) (local $j i32) (local $row i32)
    (local.set $c (i32.const 0))
    (loop $cl
      (local.set $row (i32.add (local.get $dst) (i32.shl (i32.mul (local.get $c) (local.get $n4)) (i32.const 2))))
      (local.set $j (i32.const 0))
      (loop $jl
        (f32.store
          (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2)))
          (f32.load (i32.add (local.get $src)
            (i32.shl (i32.add (i32.mul (local.get $j) (local.get $ld)) (local.get $c)) (i32.const 2)))))
        (br_if $jl (i32.lt_u (local.tee $j (i32.add (local.get $j) (i32.const 1))) (local.get $n))))
      (memory.fill (i32.add (local.get $row) (i32.shl (local.get $n) (i32.const 2))) (i32.const 0)
        (i32.shl (i32.sub (local.get $n4) (local.get $n)) (i32.const 2)))
      (br_if $cl (i32.lt_u (local.tee $c (i32.add (local.get $c) (i32.const 1))) (local.get $d)))))

  ;; dst[j, c] = src[c, j] for j < n (dst rows ld floats apart).
  (func $fromColumns (param $src i32) (param $dst i32) (param $n i32) (param $n4 i32) (param $d i32)
      (param $ld i32)
    (local $c i32) (local $j i32) (local $row i32)
    (local.set $c (i32.const 0))
    (loop $cl
      (local.set $row (i32.add (local.get $src) (i32.shl (i32.mul (local.get $c) (local.get $n4)) (i32.const 2))))
      (local.set $j (i32.const 0))
      (loop $jl
        (f32.store
          (i32.add (local.get $dst)
            (i32.shl (i32.add (i32.mul (local.get $j) (local.get $ld)) (local.get $c)) (i32.const 2)))
          (f32.load (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2)))))
        (br_if $jl (i32.lt_u (local.tee $j (i32.add (local.get $j) (i32.const 1))) (local.get $n))))
      (br_if $cl (i32.lt_u (local.tee $c (i32.add (local.get $c) (i32.const 1))) (local.get $d)))))

  ;; row[j] = bias[j] + mask[j] + sum_c (scale q[c]) kt[c, j] for j < n, -inf for n <= j < n4.
  ;; Returns the row's maximum.
  (func $scores (param $q i32) (param $kt i32) (param $bias i32) (param $mask i32) (param $row i32)
      (param $n i32) (param $n4 i32) (param $d i32) (param $scale f32) (result f32)
    (local $j i32) (local $end i32) (local $c i32) (local $col i32) (local $mx v128) (local $pj i32)
    (local $e1 i32) (local $e2 i32) (local $e3 i32)
    (local $q0 v128) (local $q1 v128) (local $q2 v128) (local $q3 v128)
    (local.set $end (i32.shl (local.get $n4) (i32.const 2)))
    (local.set $j (i32.const 0))
    (loop $l
      (v128.store (i32.add (local.get $row) (local.get $j))
        (f32x4.add (v128.load (i32.add (local.get $bias) (local.get $j)))
                   (v128.load (i32.add (local.get $mask) (local.get $j)))))
      (br_if $l (i32.lt_u (local.tee $j (i32.add (local.get $j) (i32.const 16))) (local.get $end))))
    ${STRIDES}
    (local.set $c (i32.const 0))
    (local.set $col (local.get $kt))
    (loop $cl
      ${
  four((m) =>
    `(local.set $q${m} (f32x4.splat (f32.mul (local.get $scale)
        (f32.load offset=${
      4 * m
    } (i32.add (local.get $q) (i32.shl (local.get $c) (i32.const 2)))))))`
  )
}
      (local.set $j (i32.const 0))
      (loop $l
        (local.set $pj (i32.add (local.get $col) (local.get $j)))
        (v128.store (i32.add (local.get $row) (local.get $j))
          (f32x4.add (v128.load (i32.add (local.get $row) (local.get $j)))
            (f32x4.add
              (f32x4.add (f32x4.mul (local.get $q0) (v128.load ${col("$pj", 0)}))
                         (f32x4.mul (local.get $q1) (v128.load ${col("$pj", 1)})))
              (f32x4.add (f32x4.mul (local.get $q2) (v128.load ${col("$pj", 2)}))
                         (f32x4.mul (local.get $q3) (v128.load ${col("$pj", 3)}))))))
        (br_if $l (i32.lt_u (local.tee $j (i32.add (local.get $j) (i32.const 16))) (local.get $end))))
      (local.set $col (i32.add (local.get $col) (i32.shl (local.get $end) (i32.const 2))))
      (br_if $cl (i32.lt_u (local.tee $c (i32.add (local.get $c) (i32.const 4))) (local.get $d))))
    (local.set $j (local.get $n))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $j) (local.get $n4)))
        (f32.store (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2))) (f32.const -inf))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $l)))
    (local.set $mx (v128.const f32x4 -inf -inf -inf -inf))
    (local.set $j (i32.const 0))
    (loop $l
      (local.set $mx (f32x4.max (local.get $mx) (v128.load (i32.add (local.get $row) (local.get $j)))))
      (br_if $l (i32.lt_u (local.tee $j (i32.add (local.get $j) (i32.const 16))) (local.get $end))))
    (call $hmax (local.get $mx)))

  ;; Forward for one (window, head): out[i] = softmax(row i) v for the rows with
  ;; queries[i] != 0 (the others are left as they are); stats[2i], stats[2i+1] = the row's
  ;; maximum and 1 / sum of exponentials, for the backward pass.
  (func (export "forward") (param $q i32) (param $k i32) (param $v i32) (param $bias i32)
      (param $mask i32) (param $queries i32) (param $out i32) (param $stats i32)
      (param $scratch i32) (param $n i32) (param $d i32) (param $ld i32) (param $ldo i32)
      (param $scale f32)
    (local $orow i32) (local $n4 i32) (local $end i32) (local $kt i32) (local $vt i32) (local $row i32)
    (local $i i32) (local $j i32) (local $c i32) (local $col i32) (local $qrow i32)
    (local $mx f32) (local $inv f32) (local $mxv v128) (local $acc v128) (local $e v128)
    (local $x v128) (local $keep v128) (local $m v128) (local $r v128)
    (local $pj i32) (local $e1 i32) (local $e2 i32) (local $e3 i32)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    (local.set $n4 (i32.and (i32.add (local.get $n) (i32.const 3)) (i32.const -4)))
    (local.set $end (i32.shl (local.get $n4) (i32.const 2)))
    ${STRIDES}
    (local.set $kt (local.get $scratch))
    (local.set $vt (i32.add (local.get $kt) (i32.mul (local.get $end) (local.get $d))))
    (local.set $row (i32.add (local.get $vt) (i32.mul (local.get $end) (local.get $d))))
    (call $toColumns (local.get $k) (local.get $kt) (local.get $n) (local.get $n4) (local.get $d) (local.get $ld))
    (call $toColumns (local.get $v) (local.get $vt) (local.get $n) (local.get $n4) (local.get $d) (local.get $ld))
    (local.set $i (i32.const 0))
    (loop $il
      (if (i32.load8_u (i32.add (local.get $queries) (local.get $i)))
        (then
          (local.set $qrow (i32.shl (i32.mul (local.get $i) (local.get $ld)) (i32.const 2)))
          (local.set $mx (call $scores
            (i32.add (local.get $q) (local.get $qrow)) (local.get $kt)
            (i32.add (local.get $bias) (i32.shl (i32.mul (local.get $i) (local.get $n)) (i32.const 2)))
            (i32.add (local.get $mask) (i32.shl (i32.mul (local.get $i) (local.get $n)) (i32.const 2)))
            (local.get $row) (local.get $n) (local.get $n4) (local.get $d) (local.get $scale)))
          (local.set $orow (i32.shl (i32.mul (local.get $i) (local.get $ldo)) (i32.const 2)))
          (local.set $mxv (f32x4.splat (local.get $mx)))
          (local.set $acc (v128.const f32x4 0 0 0 0))
          (local.set $j (i32.const 0))
          (loop $l
            (local.set $x (f32x4.sub (v128.load (i32.add (local.get $row) (local.get $j))) (local.get $mxv)))
            ${expInline()}
            (v128.store (i32.add (local.get $row) (local.get $j)) (local.get $e))
            (local.set $acc (f32x4.add (local.get $acc) (local.get $e)))
            (br_if $l (i32.lt_u (local.tee $j (i32.add (local.get $j) (i32.const 16))) (local.get $end))))
          (local.set $inv (f32.div (f32.const 1) (call $hsum (local.get $acc))))
          (f32.store (i32.add (local.get $stats) (i32.shl (local.get $i) (i32.const 3))) (local.get $mx))
          (f32.store offset=4 (i32.add (local.get $stats) (i32.shl (local.get $i) (i32.const 3))) (local.get $inv))
          (local.set $c (i32.const 0))
          (local.set $col (local.get $vt))
          (loop $cl
            ${four((m) => `(local.set $a${m} (v128.const f32x4 0 0 0 0))`)}
            (local.set $j (i32.const 0))
            (loop $l
              (local.set $pj (i32.add (local.get $col) (local.get $j)))
              (local.set $e (v128.load (i32.add (local.get $row) (local.get $j))))
              ${
  four((m) =>
    `(local.set $a${m} (f32x4.add (local.get $a${m})
                (f32x4.mul (local.get $e) (v128.load ${col("$pj", m)}))))`
  )
}
              (br_if $l (i32.lt_u (local.tee $j (i32.add (local.get $j) (i32.const 16))) (local.get $end))))
            ${
  four((m) =>
    `(f32.store offset=${4 * m}
              (i32.add (i32.add (local.get $out) (local.get $orow)) (i32.shl (local.get $c) (i32.const 2)))
              (f32.mul (call $hsum (local.get $a${m})) (local.get $inv)))`
  )
}
            (local.set $col (i32.add (local.get $col) (i32.shl (local.get $end) (i32.const 2))))
            (br_if $cl (i32.lt_u (local.tee $c (i32.add (local.get $c) (i32.const 4))) (local.get $d))))))
      (br_if $il (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (local.get $n)))))

  ;; Backward for one (window, head), recomputing each probability from stats: writes
  ;; dq, dk, dv ([n, d]) and adds each score gradient to dbias ([n, n], summed over windows).
  (func (export "backward") (param $q i32) (param $k i32) (param $v i32) (param $bias i32)
      (param $mask i32) (param $queries i32) (param $stats i32) (param $g i32)
      (param $dq i32) (param $dk i32) (param $dv i32) (param $dbias i32)
      (param $scratch i32) (param $n i32) (param $d i32) (param $ld i32) (param $ldo i32)
      (param $scale f32)
    (local $grow i32) (local $n4 i32) (local $end i32) (local $cols i32) (local $kt i32) (local $vt i32)
    (local $dkt i32) (local $dvt i32) (local $row i32) (local $drow i32)
    (local $i i32) (local $j i32) (local $c i32) (local $off i32) (local $qrow i32) (local $brow i32)
    (local $mxv v128) (local $invv v128) (local $p v128) (local $acc v128)
    (local $delta v128) (local $ds v128)
    (local $e v128) (local $x v128) (local $keep v128) (local $m v128) (local $r v128)
    (local $pj i32) (local $e1 i32) (local $e2 i32) (local $e3 i32)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    (local $q0 v128) (local $q1 v128) (local $q2 v128) (local $q3 v128)
    (local.set $n4 (i32.and (i32.add (local.get $n) (i32.const 3)) (i32.const -4)))
    (local.set $end (i32.shl (local.get $n4) (i32.const 2)))
    ${STRIDES}
    (local.set $cols (i32.mul (local.get $end) (local.get $d)))
    (local.set $kt (local.get $scratch))
    (local.set $vt (i32.add (local.get $kt) (local.get $cols)))
    (local.set $dkt (i32.add (local.get $vt) (local.get $cols)))
    (local.set $dvt (i32.add (local.get $dkt) (local.get $cols)))
    (local.set $row (i32.add (local.get $dvt) (local.get $cols)))
    (local.set $drow (i32.add (local.get $row) (local.get $end)))
    (call $toColumns (local.get $k) (local.get $kt) (local.get $n) (local.get $n4) (local.get $d) (local.get $ld))
    (call $toColumns (local.get $v) (local.get $vt) (local.get $n) (local.get $n4) (local.get $d) (local.get $ld))
    (memory.fill (local.get $dkt) (i32.const 0) (i32.shl (local.get $cols) (i32.const 1)))
    (local.set $i (i32.const 0))
    (loop $il
      (if (i32.load8_u (i32.add (local.get $queries) (local.get $i)))
        (then
          (local.set $qrow (i32.shl (i32.mul (local.get $i) (local.get $ld)) (i32.const 2)))
          (local.set $grow (i32.shl (i32.mul (local.get $i) (local.get $ldo)) (i32.const 2)))
          (local.set $brow (i32.shl (i32.mul (local.get $i) (local.get $n)) (i32.const 2)))
          (drop (call $scores
            (i32.add (local.get $q) (local.get $qrow)) (local.get $kt)
            (i32.add (local.get $bias) (local.get $brow)) (i32.add (local.get $mask) (local.get $brow))
            (local.get $row) (local.get $n) (local.get $n4) (local.get $d) (local.get $scale)))
          (local.set $mxv (v128.load32_splat (i32.add (local.get $stats) (i32.shl (local.get $i) (i32.const 3)))))
          (local.set $invv (v128.load32_splat offset=4 (i32.add (local.get $stats) (i32.shl (local.get $i) (i32.const 3)))))
          ;; row = p; drow = dp = g_i . v_j, with dvt[c] += p g_i[c] on the way.
          (memory.fill (local.get $drow) (i32.const 0) (local.get $end))
          (local.set $j (i32.const 0))
          (loop $l
            (local.set $x (f32x4.sub (v128.load (i32.add (local.get $row) (local.get $j))) (local.get $mxv)))
            ${expInline()}
            (v128.store (i32.add (local.get $row) (local.get $j))
              (f32x4.mul (local.get $invv) (local.get $e)))
            (br_if $l (i32.lt_u (local.tee $j (i32.add (local.get $j) (i32.const 16))) (local.get $end))))
          (local.set $c (i32.const 0))
          (local.set $off (i32.const 0))
          (loop $cl
            ${
  four((m) =>
    `(local.set $a${m} (v128.load32_splat offset=${4 * m}
              (i32.add (i32.add (local.get $g) (local.get $grow)) (i32.shl (local.get $c) (i32.const 2)))))`
  )
}
            (local.set $j (i32.const 0))
            (loop $l
              (local.set $pj (i32.add (i32.add (local.get $vt) (local.get $off)) (local.get $j)))
              (v128.store (i32.add (local.get $drow) (local.get $j))
                (f32x4.add (v128.load (i32.add (local.get $drow) (local.get $j)))
                  (f32x4.add
                    (f32x4.add (f32x4.mul (local.get $a0) (v128.load ${col("$pj", 0)}))
                               (f32x4.mul (local.get $a1) (v128.load ${col("$pj", 1)})))
                    (f32x4.add (f32x4.mul (local.get $a2) (v128.load ${col("$pj", 2)}))
                               (f32x4.mul (local.get $a3) (v128.load ${col("$pj", 3)}))))))
              (local.set $p (v128.load (i32.add (local.get $row) (local.get $j))))
              (local.set $pj (i32.add (i32.add (local.get $dvt) (local.get $off)) (local.get $j)))
              ${
  four((m) =>
    `(v128.store ${col("$pj", m)} (f32x4.add (v128.load ${col("$pj", m)})
                (f32x4.mul (local.get $a${m}) (local.get $p))))`
  )
}
              (br_if $l (i32.lt_u (local.tee $j (i32.add (local.get $j) (i32.const 16))) (local.get $end))))
            (local.set $off (i32.add (local.get $off) (i32.shl (local.get $end) (i32.const 2))))
            (br_if $cl (i32.lt_u (local.tee $c (i32.add (local.get $c) (i32.const 4))) (local.get $d))))
          ;; delta = sum_j p dp; ds = p (dp - delta), added to the bias gradient row.
          (local.set $acc (v128.const f32x4 0 0 0 0))
          (local.set $j (i32.const 0))
          (loop $l
            (local.set $acc (f32x4.add (local.get $acc)
              (f32x4.mul (v128.load (i32.add (local.get $row) (local.get $j)))
                         (v128.load (i32.add (local.get $drow) (local.get $j))))))
            (br_if $l (i32.lt_u (local.tee $j (i32.add (local.get $j) (i32.const 16))) (local.get $end))))
          (local.set $delta (f32x4.splat (call $hsum (local.get $acc))))
          (local.set $j (i32.const 0))
          (loop $l
            (local.set $ds (f32x4.mul (v128.load (i32.add (local.get $row) (local.get $j)))
              (f32x4.sub (v128.load (i32.add (local.get $drow) (local.get $j))) (local.get $delta))))
            (v128.store (i32.add (local.get $drow) (local.get $j)) (local.get $ds))
            (v128.store (i32.add (i32.add (local.get $dbias) (local.get $brow)) (local.get $j))
              (f32x4.add (v128.load (i32.add (i32.add (local.get $dbias) (local.get $brow)) (local.get $j)))
                         (local.get $ds)))
            (br_if $l (i32.lt_u (local.tee $j (i32.add (local.get $j) (i32.const 16))) (local.get $end))))
          ;; dq[i, c] = scale sum_j ds_j k[j, c]; dkt[c] += ds (scale q[i, c]).
          (local.set $c (i32.const 0))
          (local.set $off (i32.const 0))
          (loop $cl
            ${
  four((m) =>
    `(local.set $q${m} (f32x4.splat (f32.mul (local.get $scale) (f32.load offset=${4 * m}
              (i32.add (i32.add (local.get $q) (local.get $qrow)) (i32.shl (local.get $c) (i32.const 2)))))))
            (local.set $a${m} (v128.const f32x4 0 0 0 0))`
  )
}
            (local.set $j (i32.const 0))
            (loop $l
              (local.set $ds (v128.load (i32.add (local.get $drow) (local.get $j))))
              (local.set $pj (i32.add (i32.add (local.get $kt) (local.get $off)) (local.get $j)))
              ${
  four((m) =>
    `(local.set $a${m} (f32x4.add (local.get $a${m})
                (f32x4.mul (local.get $ds) (v128.load ${col("$pj", m)}))))`
  )
}
              (local.set $pj (i32.add (i32.add (local.get $dkt) (local.get $off)) (local.get $j)))
              ${
  four((m) =>
    `(v128.store ${col("$pj", m)} (f32x4.add (v128.load ${col("$pj", m)})
                (f32x4.mul (local.get $ds) (local.get $q${m}))))`
  )
}
              (br_if $l (i32.lt_u (local.tee $j (i32.add (local.get $j) (i32.const 16))) (local.get $end))))
            ${
  four((m) =>
    `(f32.store offset=${4 * m}
              (i32.add (i32.add (local.get $dq) (local.get $qrow)) (i32.shl (local.get $c) (i32.const 2)))
              (f32.mul (local.get $scale) (call $hsum (local.get $a${m}))))`
  )
}
            (local.set $off (i32.add (local.get $off) (i32.shl (local.get $end) (i32.const 2))))
            (br_if $cl (i32.lt_u (local.tee $c (i32.add (local.get $c) (i32.const 4))) (local.get $d))))))
      (br_if $il (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (local.get $n))))
    (call $fromColumns (local.get $dkt) (local.get $dk) (local.get $n) (local.get $n4) (local.get $d) (local.get $ld))
    (call $fromColumns (local.get $dvt) (local.get $dv) (local.get $n) (local.get $n4) (local.get $d) (local.get $ld)))
${HEAD4}
)
`;
