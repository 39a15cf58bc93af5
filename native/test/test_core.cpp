#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "tersor/half.hpp"
#include "tersor/parallel.hpp"
#include "tersor/quant_int8.hpp"
#include "tersor/rng.hpp"

using namespace tersor;

TEST_CASE("f16: known encodings round to nearest even") {
  CHECK(f32_to_f16_scalar(1.0f) == 0x3c00);
  CHECK(f32_to_f16_scalar(-2.0f) == 0xc000);
  CHECK(f32_to_f16_scalar(65504.0f) == 0x7bff);
  CHECK(f32_to_f16_scalar(65519.99f) == 0x7bff);
  CHECK(f32_to_f16_scalar(65520.0f) == 0x7c00);  // exactly halfway to 2^16: ties to even = Inf
  CHECK(f32_to_f16_scalar(std::ldexp(1.0f, -24)) == 0x0001);  // smallest subnormal
  CHECK(f32_to_f16_scalar(std::ldexp(1.0f, -25)) == 0x0000);  // half of it: tie to even = 0
  CHECK(f32_to_f16_scalar(std::ldexp(1.5f, -25)) == 0x0001);
  CHECK(f32_to_f16_scalar(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);  // tie, even mantissa stays
  CHECK(f32_to_f16_scalar(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02);  // tie, odd mantissa rounds up
  CHECK(f32_to_f16_scalar(std::numeric_limits<float>::infinity()) == 0x7c00);
  CHECK(f32_to_f16_scalar(-std::numeric_limits<float>::infinity()) == 0xfc00);
  const uint16_t nan = f32_to_f16_scalar(std::numeric_limits<float>::quiet_NaN());
  CHECK((nan & 0x7c00) == 0x7c00);
  CHECK((nan & 0x3ff) != 0);
}

TEST_CASE("f16: every half value survives f16 -> f32 -> f16, scalar and vector agree") {
  std::vector<uint16_t> all(65536);
  for (uint32_t i = 0; i < 65536; ++i) all[i] = static_cast<uint16_t>(i);
  std::vector<float> f(65536), g(65536);
  f16_to_f32(all.data(), f.data(), all.size());
  std::vector<uint16_t> back(65536);
  f32_to_f16(f.data(), back.data(), f.size());
  for (uint32_t i = 0; i < 65536; ++i) {
    g[i] = f16_to_f32_scalar(all[i]);
    const bool is_nan = (i & 0x7c00) == 0x7c00 && (i & 0x3ff) != 0;
    if (is_nan) {
      CHECK(std::isnan(f[i]));
      CHECK(std::isnan(f16_to_f32_scalar(back[i])));
    } else {
      REQUIRE(back[i] == all[i]);
      REQUIRE(f32_bits(f[i]) == f32_bits(g[i]));
    }
  }
}

TEST_CASE("f16 and bf16: vector conversion is bit-identical to the scalar reference") {
  Rng rng(7);
  const size_t n = 1 << 20;
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i) x[i] = bits_f32(rng.next_u32());  // every class: subnormals, NaN, Inf
  std::vector<uint16_t> h(n), b(n);
  f32_to_f16(x.data(), h.data(), n);
  f32_to_bf16(x.data(), b.data(), n);
  size_t bad_h = 0, bad_b = 0;
  for (size_t i = 0; i < n; ++i) {
    bad_h += h[i] != f32_to_f16_scalar(x[i]);
    bad_b += b[i] != f32_to_bf16_scalar(x[i]);
  }
  CHECK(bad_h == 0);
  CHECK(bad_b == 0);
}

TEST_CASE("bf16: rounding and specials") {
  CHECK(f32_to_bf16_scalar(1.0f) == 0x3f80);
  CHECK(f32_to_bf16_scalar(bits_f32(0x3f808000u)) == 0x3f80);  // tie, even stays
  CHECK(f32_to_bf16_scalar(bits_f32(0x3f818000u)) == 0x3f82);  // tie, odd rounds up
  CHECK(f32_to_bf16_scalar(bits_f32(0x3f808001u)) == 0x3f81);
  CHECK(f32_to_bf16_scalar(std::numeric_limits<float>::infinity()) == 0x7f80);
  CHECK(std::isnan(bf16_to_f32_scalar(f32_to_bf16_scalar(bits_f32(0x7f800001u)))));  // signalling NaN stays NaN
  CHECK(f32_to_bf16_scalar(bits_f32(0x7f7fffffu)) == 0x7f80);  // FLT_MAX rounds to Inf
}

TEST_CASE("rng: xoshiro128** seeded by splitmix64 is deterministic and uniform") {
  Rng a(42), b(42), c(43);
  bool differs = false;
  for (int i = 0; i < 100; ++i) {
    const uint32_t x = a.next_u32();
    CHECK(x == b.next_u32());
    differs |= x != c.next_u32();
  }
  CHECK(differs);
  // SplitMix64's published first output for seed 0 (Vigna's reference implementation).
  uint64_t s = 0;
  CHECK(splitmix64(s) == 0xe220a8397b1dcdafULL);
  Rng r(1);
  double sum = 0, sum2 = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    const double z = r.next_normal();
    sum += z;
    sum2 += z * z;
  }
  CHECK(std::fabs(sum / n) < 0.01);
  CHECK(std::fabs(sum2 / n - 1.0) < 0.02);
  uint32_t counts[10] = {};
  for (int i = 0; i < 100000; ++i) counts[r.next_below(10)]++;
  for (uint32_t cnt : counts) CHECK(std::abs(static_cast<int>(cnt) - 10000) < 500);
}

TEST_CASE("int8 rows: absmax scale, round half to even, zero rows") {
  const float x[] = {1.0f, -0.5f, 0.25f, 0.0f, 0.f, 0.f, 0.f, 0.f, 254.f, 1.f, 3.f, -254.f};
  int8_t q[12];
  float s[3];
  quantize_rows_int8(x, 3, 4, q, s);
  CHECK(s[0] == doctest::Approx(1.0f / 127));
  CHECK(q[0] == 127);
  CHECK(q[1] == -64);  // -63.5 rounds to even
  CHECK(q[2] == 32);   // 31.75
  CHECK(s[1] == 0.f);
  for (int j = 4; j < 8; ++j) CHECK(q[j] == 0);
  CHECK(q[8] == 127);
  CHECK(q[9] == 0);   // 0.5 rounds to even 0
  CHECK(q[10] == 2);  // 1.5 rounds to even 2
  CHECK(q[11] == -127);
  float back[12];
  dequantize_rows_int8(q, s, 3, 4, back);
  for (int i = 0; i < 12; ++i) CHECK(std::fabs(back[i] - x[i]) <= s[i / 4] * 0.5f + 1e-6f);
}

TEST_CASE("int8 rows: CUDA kernel matches the CPU bits when a GPU is present") {
  std::string why;
  if (!cuda_available(&why)) {
    MESSAGE("skipped: " << why);
    return;
  }
  Rng rng(3);
  const size_t rows = 257, cols = 1031;
  std::vector<float> x(rows * cols);
  for (auto& v : x) v = static_cast<float>(rng.next_normal() * 3.0);
  std::vector<int8_t> q1(x.size()), q2(x.size());
  std::vector<float> s1(rows), s2(rows);
  quantize_rows_int8(x.data(), rows, cols, q1.data(), s1.data());
  cuda_quantize_rows_int8(x.data(), rows, cols, q2.data(), s2.data());
  CHECK(q1 == q2);
  CHECK(s1 == s2);
}

TEST_CASE("parallel: thread count defaults to physical cores and can be set") {
  CHECK(physical_cores() >= 1);
  set_num_threads(1);
  CHECK(num_threads() == 1);
  set_num_threads(0);
  CHECK(num_threads() == physical_cores());
}
