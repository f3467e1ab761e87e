// Compiles the WebAssembly text of our kernels with wabt (the WebAssembly binary toolkit,
// built to wasm on npm: about 70 ms to load and compile) and manages their linear memory.
import wabtInit from "wabt";

/** Compiles WebAssembly text (SIMD enabled) and instantiates it without imports. */
export async function compileWat(name: string, source: string): Promise<WebAssembly.Instance> {
  const wabt = await wabtInit();
  const parsed = wabt.parseWat(name, source, { simd: true, bulk_memory: true });
  try {
    const { buffer } = parsed.toBinary({});
    return new WebAssembly.Instance(new WebAssembly.Module(buffer as Uint8Array<ArrayBuffer>), {});
  } finally {
    parsed.destroy();
  }
}

/**
 * A bump allocator over a kernel's exported memory: `reset`, `alloc` every buffer of one
 * call (16-byte aligned, each followed by 16 zeroed bytes of slack for vector reads past
 * the end), `commit` (grows the memory once), then take views. Views are only valid until
 * the next `commit`.
 */
export class Arena {
  #memory: WebAssembly.Memory;
  #top = 0;

  /** Wraps the memory exported by `instance` as `memory`. */
  constructor(instance: WebAssembly.Instance) {
    this.#memory = instance.exports.memory as WebAssembly.Memory;
  }

  /** Forgets every allocation. */
  reset(): void {
    this.#top = 0;
  }

  /** Reserves `bytes` and returns their offset. */
  alloc(bytes: number): number {
    const at = this.#top;
    this.#top = (at + bytes + 16 + 15) & ~15;
    return at;
  }

  /** Grows the memory to hold every allocation and zeroes it. */
  commit(): void {
    const need = this.#top - this.#memory.buffer.byteLength;
    if (need > 0) this.#memory.grow(Math.ceil(need / 65536));
    new Uint8Array(this.#memory.buffer, 0, this.#top).fill(0);
  }

  /** A float view of `length` values at byte offset `at`. */
  f32(at: number, length: number): Float32Array {
    return new Float32Array(this.#memory.buffer, at, length);
  }

  /** A byte view of `length` values at byte offset `at`. */
  u8(at: number, length: number): Uint8Array {
    return new Uint8Array(this.#memory.buffer, at, length);
  }
}
