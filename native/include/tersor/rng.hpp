// tersor's seeded random stream, identical in C++ and TypeScript (packages/core/src/rng.ts).
//
// Algorithm: xoshiro128** 1.0 (Blackman & Vigna, "Scrambled linear pseudorandom number
// generators", 2018) over four 32-bit words, seeded from a 64-bit seed by SplitMix64: the first two
// SplitMix64 outputs give the words (low half first). 32-bit words keep the TypeScript port exact
// with Math.imul and unsigned shifts.
//   next_u32   : the xoshiro128** output
//   next_f32   : (next_u32 >> 8) * 2^-24                  in [0, 1)
//   next_f64   : ((a >> 5) * 2^26 + (b >> 6)) * 2^-53     in [0, 1), a then b consecutive draws
//   next_normal: Box-Muller on two next_f64 draws u1, u2:  sqrt(-2 ln(1 - u1)) * cos(2 pi u2)
#pragma once
#include <cmath>
#include <cstdint>

namespace tersor {

inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

class Rng {
 public:
  explicit Rng(uint64_t seed) {
    uint64_t sm = seed;
    const uint64_t a = splitmix64(sm);
    const uint64_t b = splitmix64(sm);
    s_[0] = static_cast<uint32_t>(a);
    s_[1] = static_cast<uint32_t>(a >> 32);
    s_[2] = static_cast<uint32_t>(b);
    s_[3] = static_cast<uint32_t>(b >> 32);
    if ((s_[0] | s_[1] | s_[2] | s_[3]) == 0) s_[0] = 1;  // the all-zero state is a fixed point
  }

  uint32_t next_u32() {
    const uint32_t result = rotl(s_[1] * 5u, 7) * 9u;
    const uint32_t t = s_[1] << 9;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 11);
    return result;
  }

  float next_f32() { return static_cast<float>(next_u32() >> 8) * 5.9604644775390625e-8f; }

  double next_f64() {
    const uint32_t a = next_u32() >> 5;
    const uint32_t b = next_u32() >> 6;
    return (static_cast<double>(a) * 67108864.0 + static_cast<double>(b)) * (1.0 / 9007199254740992.0);
  }

  double next_normal() {
    const double u1 = next_f64();
    const double u2 = next_f64();
    return std::sqrt(-2.0 * std::log(1.0 - u1)) * std::cos(6.283185307179586 * u2);
  }

  /// Uniform integer in [0, n) by Lemire's multiply-shift with rejection (unbiased).
  uint32_t next_below(uint32_t n) {
    uint64_t m = static_cast<uint64_t>(next_u32()) * n;
    uint32_t l = static_cast<uint32_t>(m);
    if (l < n) {
      const uint32_t t = (0u - n) % n;
      while (l < t) {
        m = static_cast<uint64_t>(next_u32()) * n;
        l = static_cast<uint32_t>(m);
      }
    }
    return static_cast<uint32_t>(m >> 32);
  }

 private:
  static uint32_t rotl(uint32_t x, int k) { return (x << k) | (x >> (32 - k)); }
  uint32_t s_[4];
};

}  // namespace tersor
