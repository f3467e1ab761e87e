// The copy of byte-shuffled 16-bit chunks into a float32 crop, in WebAssembly SIMD: the
// crop is assembled in the module's memory (where zstd decodes each chunk), then copied
// out once. Four times the speed of the same loop in JavaScript; the arithmetic is the
// same (each value times the scale plus the offset in float64, rounded once to float32),
// so the numbers are the same bit for bit.
import wabtInit from "wabt";

/** The kernel: `copy16(low, high, out, nx, ny, nz, sx, sy, dx, dy, scale, offset)`. */
const WAT = `(module
  (import "env" "memory" (memory 1))
  ;; The nx x ny x nz box of 16-bit values whose low bytes start at byte low and high
  ;; bytes at byte high (strides sx, sy in values, z contiguous), dequantised into the
  ;; float32 array at byte out (strides dx, dy in values).
  (func (export "copy16") (param $lo i32) (param $hi i32) (param $out i32)
    (param $nx i32) (param $ny i32) (param $nz i32)
    (param $sx i32) (param $sy i32) (param $dx i32) (param $dy i32)
    (param $s f64) (param $o f64)
    (local $x i32) (local $y i32) (local $k i32) (local $n8 i32)
    (local $src i32) (local $dst i32) (local $v i32)
    (local $vs v128) (local $vo v128) (local $w v128) (local $a v128)
    (local.set $vs (f64x2.splat (local.get $s)))
    (local.set $vo (f64x2.splat (local.get $o)))
    (local.set $n8 (i32.and (local.get $nz) (i32.const -8)))
    (if (i32.or (i32.eqz (local.get $nx)) (i32.or (i32.eqz (local.get $ny)) (i32.eqz (local.get $nz))))
      (then (return)))
    (local.set $x (i32.const 0))
    (loop $xs
      (local.set $y (i32.const 0))
      (loop $ys
        (local.set $src (i32.add (i32.mul (local.get $x) (local.get $sx))
                                 (i32.mul (local.get $y) (local.get $sy))))
        (local.set $dst (i32.add (local.get $out) (i32.shl
          (i32.add (i32.mul (local.get $x) (local.get $dx)) (i32.mul (local.get $y) (local.get $dy)))
          (i32.const 2))))
        (local.set $k (i32.const 0))
        (block $done8
          (loop $z8
            (br_if $done8 (i32.ge_u (local.get $k) (local.get $n8)))
            ;; eight values: low and high bytes interleaved into 16-bit lanes
            (local.set $w (i8x16.shuffle 0 16 1 17 2 18 3 19 4 20 5 21 6 22 7 23
              (v128.load64_zero (i32.add (local.get $lo) (i32.add (local.get $src) (local.get $k))))
              (v128.load64_zero (i32.add (local.get $hi) (i32.add (local.get $src) (local.get $k))))))
            (local.set $a (i32x4.extend_low_i16x8_u (local.get $w)))
            (v128.store (local.get $dst) ${pack("$a")})
            (local.set $a (i32x4.extend_high_i16x8_u (local.get $w)))
            (v128.store offset=16 (local.get $dst) ${pack("$a")})
            (local.set $dst (i32.add (local.get $dst) (i32.const 32)))
            (local.set $k (i32.add (local.get $k) (i32.const 8)))
            (br $z8)))
        (block $done
          (loop $z
            (br_if $done (i32.ge_u (local.get $k) (local.get $nz)))
            (local.set $v (i32.or
              (i32.load8_u (i32.add (local.get $lo) (i32.add (local.get $src) (local.get $k))))
              (i32.shl (i32.load8_u (i32.add (local.get $hi) (i32.add (local.get $src) (local.get $k))))
                       (i32.const 8))))
            (f32.store (local.get $dst) (f32.demote_f64 (f64.add
              (f64.mul (f64.convert_i32_u (local.get $v)) (local.get $s)) (local.get $o))))
            (local.set $dst (i32.add (local.get $dst) (i32.const 4)))
            (local.set $k (i32.add (local.get $k) (i32.const 1)))
            (br $z)))
        (local.set $y (i32.add (local.get $y) (i32.const 1)))
        (br_if $ys (i32.lt_u (local.get $y) (local.get $ny))))
      (local.set $x (i32.add (local.get $x) (i32.const 1)))
      (br_if $xs (i32.lt_u (local.get $x) (local.get $nx))))))`;

/** Four uint32 lanes of `v` as float32: each times $vs plus $vo in float64, rounded once. */
function pack(v: string): string {
  const half = (lanes: string) =>
    `(f32x4.demote_f64x2_zero (f64x2.add (f64x2.mul (f64x2.convert_low_i32x4_u ${lanes}) ` +
    `(local.get $vs)) (local.get $vo)))`;
  const high = `(i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15 (local.get ${v}) ` +
    `(local.get ${v}))`;
  return `(i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 ${half(`(local.get ${v})`)} ` +
    `${half(high)})`;
}

type Copy16 = (
  lo: number,
  hi: number,
  out: number,
  nx: number,
  ny: number,
  nz: number,
  sx: number,
  sy: number,
  dx: number,
  dy: number,
  s: number,
  o: number,
) => void;

const PAGE = 65536;

/** Size past which an idle crop memory is replaced by a fresh one. */
const IDLE_RESET_BYTES = 32 * 1024 * 1024;

/**
 * The kernel's memory, shared by the crops being read: a region per crop in flight and
 * one for decoding a chunk into, handed out first fit (freed regions are reused; the
 * memory only grows). Views of it are valid until the next `alloc` (growth replaces
 * its buffer).
 */
export class CropMemory {
  readonly #module: WebAssembly.Module;
  #memory!: WebAssembly.Memory;
  #copy16!: Copy16;
  #top = 64; // nothing at 0
  #free: { at: number; size: number }[] = [];
  #sizes = new Map<number, number>();
  #scratch: { at: number; size: number } | undefined;

  private constructor(module: WebAssembly.Module) {
    this.#module = module;
    this.#fresh();
  }

  /** A new memory of one page and the kernel's instance on it, nothing allocated. */
  #fresh(): void {
    this.#memory = new WebAssembly.Memory({ initial: 1 });
    const instance = new WebAssembly.Instance(this.#module, { env: { memory: this.#memory } });
    this.#copy16 = instance.exports.copy16 as Copy16;
    this.#top = 64;
    this.#free = [];
    this.#sizes.clear();
    this.#scratch = undefined;
  }

  /** The kernel (see the module's text), on this memory. */
  get copy16(): Copy16 {
    return this.#copy16;
  }

  /** Compiles the kernel (wabt, about 40 ms once) on a fresh memory. */
  static async create(): Promise<CropMemory> {
    const wabt = await wabtInit();
    const parsed = wabt.parseWat("crop.wat", WAT, { simd: true });
    try {
      const { buffer } = parsed.toBinary({});
      return new CropMemory(new WebAssembly.Module(buffer as Uint8Array<ArrayBuffer>));
    } finally {
      parsed.destroy();
    }
  }

  /** The memory's bytes now (a new view after growth). */
  get buffer(): ArrayBuffer {
    return this.#memory.buffer as ArrayBuffer;
  }

  /** A region of `size` bytes (16-byte aligned, with 16 bytes to spare for vector reads). */
  alloc(size: number): number {
    const need = (size + 31) & ~15;
    const i = this.#free.findIndex((f) => f.size >= need);
    if (i >= 0) {
      const f = this.#free[i];
      if (f.size - need >= 64) this.#free[i] = { at: f.at + need, size: f.size - need };
      else this.#free.splice(i, 1);
      this.#sizes.set(f.at, f.size - need >= 64 ? need : f.size);
      return f.at;
    }
    const at = this.#top;
    this.#top += need;
    const pages = Math.ceil(this.#top / PAGE) - this.#memory.buffer.byteLength / PAGE;
    if (pages > 0) this.#memory.grow(pages);
    this.#sizes.set(at, need);
    return at;
  }

  /**
   * A view of `size` + 1 bytes to decode a chunk into, one region reused (grown when a
   * chunk needs more): valid until the next `alloc` or `scratch`.
   */
  scratch(size: number): Uint8Array {
    if (this.#scratch === undefined || this.#scratch.size < size + 1) {
      if (this.#scratch) this.release(this.#scratch.at);
      this.#scratch = { at: this.alloc(size + 1), size: size + 1 };
    }
    return new Uint8Array(this.#memory.buffer, this.#scratch.at, size + 1);
  }

  /**
   * Gives back the region at `at`. Once only the decoding region is left, a memory grown
   * past {@linkcode IDLE_RESET_BYTES} (large boxes, or many at once) is dropped for a
   * fresh one: a WebAssembly memory never shrinks.
   */
  release(at: number): void {
    const size = this.#sizes.get(at);
    if (size === undefined) return;
    this.#sizes.delete(at);
    const idle = this.#sizes.size === 0 ||
      (this.#sizes.size === 1 && this.#sizes.has(this.#scratch?.at ?? -1));
    if (idle && this.#memory.buffer.byteLength > IDLE_RESET_BYTES) return this.#fresh();
    this.#free.push({ at, size });
    // Merge neighbours so that a crop's region fits again after smaller ones.
    this.#free.sort((a, b) => a.at - b.at);
    const merged: { at: number; size: number }[] = [];
    for (const f of this.#free) {
      const last = merged[merged.length - 1];
      if (last && last.at + last.size === f.at) last.size += f.size;
      else merged.push({ ...f });
    }
    this.#free = merged;
  }
}

let shared: Promise<CropMemory | undefined> | undefined;

/**
 * The thread's crop memory, compiled on first use; `undefined` where WebAssembly SIMD or
 * wabt is not to be had (the JavaScript copy is used then).
 */
export function cropMemory(): Promise<CropMemory | undefined> {
  return shared ??= CropMemory.create().catch(() => undefined);
}
