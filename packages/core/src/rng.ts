/**
 * tersor's seeded random stream, bit-identical to the C++ `tersor::Rng` (native/include/tersor/rng.hpp):
 * xoshiro128** 1.0 (Blackman & Vigna 2018) over four 32-bit words, seeded by SplitMix64 (the first
 * two 64-bit outputs, low half first). Every tersor function that takes a `seed` draws from it, so a
 * seed means the same numbers in TypeScript and in native kernels.
 */
export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** @param seed a non-negative integer below 2^64 (number or bigint). */
  constructor(seed: number | bigint) {
    let sm = BigInt.asUintN(64, BigInt(seed));
    const next = (): bigint => {
      sm = BigInt.asUintN(64, sm + 0x9e3779b97f4a7c15n);
      let z = sm;
      z = BigInt.asUintN(64, (z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n);
      z = BigInt.asUintN(64, (z ^ (z >> 27n)) * 0x94d049bb133111ebn);
      return z ^ (z >> 31n);
    };
    const a = next();
    const b = next();
    this.s0 = Number(a & 0xffffffffn);
    this.s1 = Number(a >> 32n);
    this.s2 = Number(b & 0xffffffffn);
    this.s3 = Number(b >> 32n);
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** The next 32-bit unsigned output. */
  nextU32(): number {
    const s1 = this.s1;
    const m = Math.imul(s1, 5);
    const result = Math.imul((m << 7) | (m >>> 25), 9) >>> 0;
    const t = s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = (this.s3 << 11) | (this.s3 >>> 21);
    return result;
  }

  /** Uniform in [0, 1) with 24 bits: `(u32 >> 8) · 2^-24`. */
  nextF32(): number {
    return (this.nextU32() >>> 8) * 5.9604644775390625e-8;
  }

  /** Uniform in [0, 1) with 53 bits from two draws. */
  nextF64(): number {
    const a = this.nextU32() >>> 5;
    const b = this.nextU32() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
  }

  /** Standard normal by Box–Muller on two `nextF64` draws. */
  nextNormal(): number {
    const u1 = this.nextF64();
    const u2 = this.nextF64();
    return Math.sqrt(-2 * Math.log(1 - u1)) * Math.cos(6.283185307179586 * u2);
  }

  /** Uniform integer in [0, n), unbiased (Lemire's method), for 1 ≤ n ≤ 2^32. */
  nextBelow(n: number): number {
    let x = this.nextU32();
    let m = BigInt(x) * BigInt(n);
    let l = Number(m & 0xffffffffn);
    if (l < n) {
      const t = (2 ** 32 - n) % n;
      while (l < t) {
        x = this.nextU32();
        m = BigInt(x) * BigInt(n);
        l = Number(m & 0xffffffffn);
      }
    }
    return Number(m >> 32n);
  }

  /** Fills a Float32Array with standard normal draws (as f32). */
  fillNormal(out: Float32Array, mean = 0, std = 1): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = mean + std * this.nextNormal();
    return out;
  }

  /** Fisher–Yates shuffle in place. */
  shuffle<T>(a: T[]): T[] {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.nextBelow(i + 1);
      const tmp = a[i]!;
      a[i] = a[j]!;
      a[j] = tmp;
    }
    return a;
  }
}
