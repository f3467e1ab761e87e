// A small seeded random number generator (xoshiro128**) whose whole state is four 32-bit
// words, so that a run can save it in a checkpoint and resume the same stream, and derive
// independent streams per sample (`streamRng(seed, ...keys)`) that do not depend on the
// order in which workers happen to draw them.

/** A seeded generator of uniform numbers with a saveable state. */
export class Rng {
  #s: Uint32Array;

  /** A generator from four state words (not all zero) or a 32-bit seed. */
  constructor(seed: number | readonly number[] = 0) {
    this.#s = typeof seed === "number" ? seedWords([seed]) : Uint32Array.from(seed);
    if (this.#s.length !== 4 || this.#s.every((w) => w === 0)) {
      throw new RangeError("An Rng state is four 32-bit words, not all zero");
    }
  }

  /** The next 32-bit unsigned integer. */
  nextUint32(): number {
    const s = this.#s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** A uniform number in [0, 1) with 32 random bits. */
  uniform(): number {
    return this.nextUint32() / 4294967296;
  }

  /** A uniform number in [lo, hi). */
  range(lo: number, hi: number): number {
    return lo + (hi - lo) * this.uniform();
  }

  /** A uniform integer in [lo, hi) (hi > lo). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.uniform() * (hi - lo));
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.uniform() < p;
  }

  /** The four state words, to save and restore with `new Rng(words)`. */
  state(): number[] {
    return [...this.#s];
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** splitmix32-style mixing of a word sequence into four well-spread state words. */
function seedWords(keys: readonly number[]): Uint32Array {
  let h = 0x9e3779b9;
  const mix = () => {
    h = (h + 0x9e3779b9) >>> 0;
    let z = h;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  for (const k of keys) h = (Math.imul(h ^ (k >>> 0), 0x01000193) + 0x7f4a7c15) >>> 0;
  const out = Uint32Array.from([mix(), mix(), mix(), mix()]);
  if (out.every((w) => w === 0)) out[0] = 1;
  return out;
}

/**
 * An independent stream for a tuple of integer keys (e.g. the run's seed, the epoch and
 * the sample's position): the same keys always give the same stream.
 */
export function streamRng(...keys: number[]): Rng {
  return new Rng([...seedWords(keys)]);
}

/** Fisher-Yates shuffle of `0 .. n-1` with `rng`. */
export function permutation(n: number, rng: Rng): number[] {
  const out = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(0, i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}
