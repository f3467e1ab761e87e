// Compiles the WebAssembly text of our kernels with wabt (the WebAssembly binary toolkit,
// built to wasm on npm: about 70 ms to load and compile) and manages their linear memory,
// which is shared (threads feature) so that the worker threads of `_pool.ts` can run the
// same kernels on it.
import wabtInit from "wabt";

/**
 * Pages of a kernel memory at most: 4 GiB - 64 KiB, all that wasm32 addresses. A shared
 * memory needs a maximum; only the pages in use are committed.
 */
export const MAX_PAGES = 65535;

/** A compiled kernel module, its shared memory and the calling thread's instance. */
export interface KernelModule {
  /** The compiled module (workers instantiate it on the same memory). */
  module: WebAssembly.Module;
  /** The shared memory it imports as `env.memory`. */
  memory: WebAssembly.Memory;
  /** The calling thread's instance. */
  instance: WebAssembly.Instance;
}

/**
 * Compiles WebAssembly text (SIMD, bulk memory and threads enabled) that imports its
 * memory as `(import "env" "memory" (memory 1 65535 shared))`, and instantiates it on a
 * new shared memory.
 */
export async function compileWat(name: string, source: string): Promise<KernelModule> {
  const wabt = await wabtInit();
  const parsed = wabt.parseWat(name, source, { simd: true, bulk_memory: true, threads: true });
  try {
    const { buffer } = parsed.toBinary({});
    const module = new WebAssembly.Module(buffer as Uint8Array<ArrayBuffer>);
    const memory = new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES, shared: true });
    const instance = new WebAssembly.Instance(module, { env: { memory } });
    return { module, memory, instance };
  } finally {
    parsed.destroy();
  }
}

/**
 * A bump allocator over a kernel's memory: `reset`, `alloc` every buffer of one call
 * (16-byte aligned, each followed by 16 zeroed bytes of slack for vector reads past the
 * end; zeroed whole when asked), `commit` (grows the memory once), then take views. Views
 * are only valid until the next `commit` (growth replaces the memory's buffer, for every
 * thread). Below the buffers of a call lie pinned constants (`pin`), kept across calls. No
 * buffer starts at offset 0: kernels may take 0 to mean "none".
 */
export class Arena {
  #memory: WebAssembly.Memory;
  // Nothing is allocated at offset 0, so that kernels can take 0 for "no buffer".
  #top = 16;
  #base = 16;
  #zero: [number, number][] = [];
  #pins = new Map<ArrayBufferView, number>();

  /** Allocates in `memory`. */
  constructor(memory: WebAssembly.Memory) {
    this.#memory = memory;
  }

  /** Forgets every allocation of the last call (pinned constants stay). */
  reset(): void {
    this.#top = this.#base;
    this.#zero = [];
  }

  /** Reserves `bytes` (zeroed at `commit` when `zero`) and returns their offset. */
  alloc(bytes: number, zero = false): number {
    const at = this.#top;
    this.#top = (at + bytes + 16 + 15) & ~15;
    this.#zero.push(zero ? [at, this.#top] : [at + bytes, this.#top]);
    return at;
  }

  /** Grows the memory to hold every allocation and zeroes what must be zero. */
  commit(): void {
    if (this.#top > MAX_PAGES * 65536) {
      throw new RangeError(`a kernel needs ${this.#top} bytes, more than wasm32's 4 GiB`);
    }
    const need = this.#top - this.#memory.buffer.byteLength;
    if (need > 0) this.#memory.grow(Math.ceil(need / 65536));
    const bytes = new Uint8Array(this.#memory.buffer);
    for (const [from, to] of this.#zero) bytes.fill(0, from, to);
  }

  /**
   * The offsets of copies of `data` kept in the memory across calls, made on first use
   * (each array must not change afterwards: it is known by identity). Call before `reset`,
   * with everything one call needs pinned: when the pins would outgrow `maxBytes`, all
   * are dropped and these copied again.
   */
  pin(data: (Float32Array | Uint8Array)[], maxBytes = 512 << 20): number[] {
    const missing = data.filter((d) => !this.#pins.has(d));
    const size = (d: ArrayBufferView) => (d.byteLength + 16 + 15) & ~15;
    if (this.#base + missing.reduce((a, d) => a + size(d), 0) > maxBytes) {
      this.#pins.clear();
      this.#base = 16;
    }
    for (const d of data) {
      if (this.#pins.has(d)) continue;
      const at = this.#base, top = at + size(d);
      const need = top - this.#memory.buffer.byteLength;
      if (need > 0) this.#memory.grow(Math.ceil(need / 65536));
      const bytes = new Uint8Array(this.#memory.buffer);
      bytes.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), at);
      bytes.fill(0, at + d.byteLength, top);
      this.#base = this.#top = top;
      this.#pins.set(d, at);
    }
    return data.map((d) => this.#pins.get(d)!);
  }

  /** A float view of `length` values at byte offset `at`. */
  f32(at: number, length: number): Float32Array {
    return new Float32Array(this.#memory.buffer, at, length);
  }

  /** A float64 view of `length` values at byte offset `at`. */
  f64(at: number, length: number): Float64Array {
    return new Float64Array(this.#memory.buffer, at, length);
  }

  /** A byte view of `length` values at byte offset `at`. */
  u8(at: number, length: number): Uint8Array {
    return new Uint8Array(this.#memory.buffer, at, length);
  }
}
