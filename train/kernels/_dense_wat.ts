// WebAssembly (SIMD) source of the dense-layer kernels, compiled at load time by `_wasm.ts`.
// Row-major f32 matrices, column counts in fours. Every output sums its products in order
// of the shared index, in float32, starting from 0: tfjs-wasm's matMul (XNNPACK) does the
// same, so the results are bitwise equal to it, on any split of rows between threads.

/** Columns kept in registers per pass over the shared index (8 quads). */
const QUADS = 8;
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/**
 * `rows`: c[m, :] = a[m, :] b (+ bias) for rows m0 <= m < m1 of a `[M, K]`, b `[K, N]`,
 * c `[M, N]`; up to 8 column quads at a time in registers, then the bias added (when
 * `$bias` is not 0), as tfjs adds it after the matMul.
 */
function rowsKernel(): string {
  const acc = range(QUADS);
  const block = (q: number) => `
          ${acc.slice(0, q).map((i) => `(local.set $a${i} (v128.const i32x4 0 0 0 0))`).join(" ")}
          (local.set $pa (i32.add (local.get $a) (i32.shl (i32.mul (local.get $m) (local.get $k)) (i32.const 2))))
          (local.set $pb (i32.add (local.get $b) (i32.shl (local.get $n0) (i32.const 2))))
          (local.set $kk (i32.const 0))
          (block $kdone
            (loop $kl
              (br_if $kdone (i32.ge_u (local.get $kk) (local.get $k)))
              (local.set $s (v128.load32_splat (local.get $pa)))
              ${
    acc.slice(0, q).map((i) =>
      `(local.set $a${i} (f32x4.add (local.get $a${i})
                (f32x4.mul (local.get $s) (v128.load offset=${16 * i} (local.get $pb)))))`
    ).join("\n              ")
  }
              (local.set $pa (i32.add (local.get $pa) (i32.const 4)))
              (local.set $pb (i32.add (local.get $pb) (local.get $rowb)))
              (local.set $kk (i32.add (local.get $kk) (i32.const 1)))
              (br $kl)))
          (local.set $pc (i32.add (local.get $c)
            (i32.shl (i32.add (i32.mul (local.get $m) (local.get $n)) (local.get $n0)) (i32.const 2))))
          (if (local.get $bias)
            (then
              (local.set $pd (i32.add (local.get $bias) (i32.shl (local.get $n0) (i32.const 2))))
              ${
    acc.slice(0, q).map((i) =>
      `(local.set $a${i} (f32x4.add (local.get $a${i}) (v128.load offset=${
        16 * i
      } (local.get $pd))))`
    ).join("\n              ")
  }))
          ${
    acc.slice(0, q).map((i) => `(v128.store offset=${16 * i} (local.get $pc) (local.get $a${i}))`)
      .join("\n          ")
  }`;
  return `
  (func (export "rows") (param $a i32) (param $b i32) (param $c i32) (param $bias i32)
      (param $m0 i32) (param $m1 i32) (param $k i32) (param $n i32)
    (local $m i32) (local $kk i32) (local $n0 i32) (local $left i32) (local $rowb i32)
    (local $pa i32) (local $pb i32) (local $pc i32) (local $pd i32) (local $s v128)
    ${acc.map((i) => `(local $a${i} v128)`).join(" ")}
    (local.set $rowb (i32.shl (local.get $n) (i32.const 2)))
    (local.set $m (local.get $m0))
    (block $mdone
      (loop $ml
        (br_if $mdone (i32.ge_u (local.get $m) (local.get $m1)))
        (local.set $n0 (i32.const 0))
        (block $ndone
          (loop $nl
            (local.set $left (i32.shr_u (i32.sub (local.get $n) (local.get $n0)) (i32.const 2)))
            (br_if $ndone (i32.eqz (local.get $left)))
            ${
    acc.slice(1).reduce(
      (inner, i) =>
        `(if (i32.ge_u (local.get $left) (i32.const ${i + 1}))
              (then ${block(i + 1)}
                (local.set $n0 (i32.add (local.get $n0) (i32.const ${4 * (i + 1)}))))
              (else ${inner}))`,
      `${block(1)}
              (local.set $n0 (i32.add (local.get $n0) (i32.const 4)))`,
    )
  }
            (br $nl)))
        (local.set $m (i32.add (local.get $m) (i32.const 1)))
        (br $ml)))
  )`;
}

/**
 * The module: `rows (a, b, c, bias, m0, m1, K, N)` above; `columns (x, g, dw, k0, k1, M,
 * K, N)`: dw[kk, :] = sum over m of x[m, kk] g[m, :] for rows k0 <= kk < k1 of dw `[K, N]`
 * (x `[M, K]`, g `[M, N]`), each sum in order of m from 0 (the rows of dw in memory, so a
 * thread's part stays in its cache); `colsum (g, db, M, N)`: db = sum over m of g[m, :].
 */
export const DENSE_WAT = `
(module
  (import "env" "memory" (memory 1 65535 shared))
  ${rowsKernel()}

  (func (export "columns") (param $x i32) (param $g i32) (param $dw i32) (param $k0 i32)
      (param $k1 i32) (param $mm i32) (param $k i32) (param $n i32)
    (local $m i32) (local $kk i32) (local $j i32) (local $rowb i32) (local $px i32) (local $pg i32)
    (local $pw i32) (local $s v128)
    (local.set $rowb (i32.shl (local.get $n) (i32.const 2)))
    (memory.fill
      (i32.add (local.get $dw) (i32.mul (local.get $k0) (local.get $rowb))) (i32.const 0)
      (i32.mul (i32.sub (local.get $k1) (local.get $k0)) (local.get $rowb)))
    (local.set $m (i32.const 0))
    (block $mdone
      (loop $ml
        (br_if $mdone (i32.ge_u (local.get $m) (local.get $mm)))
        (local.set $pg (i32.add (local.get $g) (i32.mul (local.get $m) (local.get $rowb))))
        (local.set $px (i32.add (local.get $x)
          (i32.shl (i32.add (i32.mul (local.get $m) (local.get $k)) (local.get $k0)) (i32.const 2))))
        (local.set $pw (i32.add (local.get $dw) (i32.mul (local.get $k0) (local.get $rowb))))
        (local.set $kk (local.get $k0))
        (block $kdone
          (loop $kl
            (br_if $kdone (i32.ge_u (local.get $kk) (local.get $k1)))
            (local.set $s (v128.load32_splat (local.get $px)))
            (local.set $j (i32.const 0))
            (loop $jl
              (v128.store (i32.add (local.get $pw) (local.get $j))
                (f32x4.add (v128.load (i32.add (local.get $pw) (local.get $j)))
                  (f32x4.mul (local.get $s) (v128.load (i32.add (local.get $pg) (local.get $j))))))
              (br_if $jl (i32.lt_u (local.tee $j (i32.add (local.get $j) (i32.const 16))) (local.get $rowb))))
            (local.set $px (i32.add (local.get $px) (i32.const 4)))
            (local.set $pw (i32.add (local.get $pw) (local.get $rowb)))
            (local.set $kk (i32.add (local.get $kk) (i32.const 1)))
            (br $kl)))
        (local.set $m (i32.add (local.get $m) (i32.const 1)))
        (br $ml)))
  )

  (func (export "colsum") (param $g i32) (param $db i32) (param $mm i32) (param $n i32)
    (local $m i32) (local $j i32) (local $rowb i32) (local $pg i32)
    (local.set $rowb (i32.shl (local.get $n) (i32.const 2)))
    (memory.fill (local.get $db) (i32.const 0) (local.get $rowb))
    (local.set $pg (local.get $g))
    (local.set $m (i32.const 0))
    (block $mdone
      (loop $ml
        (br_if $mdone (i32.ge_u (local.get $m) (local.get $mm)))
        (local.set $j (i32.const 0))
        (loop $jl
          (v128.store (i32.add (local.get $db) (local.get $j))
            (f32x4.add (v128.load (i32.add (local.get $db) (local.get $j)))
              (v128.load (i32.add (local.get $pg) (local.get $j)))))
          (br_if $jl (i32.lt_u (local.tee $j (i32.add (local.get $j) (i32.const 16))) (local.get $rowb))))
        (local.set $pg (i32.add (local.get $pg) (local.get $rowb)))
        (local.set $m (i32.add (local.get $m) (i32.const 1)))
        (br $ml)))
  )
)
`;
