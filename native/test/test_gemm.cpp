// Tests for tersor's packed GEMM (native/linalg/gemm.cpp) against a naive double-precision
// reference.
//
// Error bound. Every product a_ip * b_pj reaches C through at most k + ceil(k/8) + 1 roundings: the
// FMA chain over p (restarted per KC block, one rounding per step), one fma per KC block folding
// the block into C (KC is at least 8), and beta * C. So, with u = 2^-24 and
// gamma_r = r*u / (1 - r*u) (Higham, "Accuracy and Stability of Numerical Algorithms", 3.1),
//   |C_computed - C_exact| <= gamma_{k + ceil(k/8) + 2} * (|alpha| * sum_p |a_ip| |b_pj| + |beta| |c_ij|)
// element by element. The reference is computed in double (error ~k * 2^-53, negligible), and the
// check uses that bound with no extra slack.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "tersor/gemm.hpp"
#include "tersor/half.hpp"
#include "tersor/parallel.hpp"
#include "tersor/rng.hpp"

using namespace tersor;

namespace {

constexpr double kU = 5.9604644775390625e-8;  // 2^-24, unit roundoff of f32

double gamma_bound(size_t k) {
  const double r = static_cast<double>(k + (k + 7) / 8 + 2);
  return r * kU / (1.0 - r * kU);
}

// A stored matrix with leading dimension ld >= cols; padding filled with a sentinel so that reads
// outside the matrix would show up as wrong results.
struct Mat {
  size_t rows, cols, ld;
  std::vector<float> v;
  Mat(size_t r, size_t c, size_t pad, Rng& rng, float sentinel = 1e30f)
      : rows(r), cols(c), ld(c + pad), v(r * (c + pad) + 1, sentinel) {
    for (size_t i = 0; i < r; ++i)
      for (size_t j = 0; j < c; ++j) v[i * ld + j] = static_cast<float>(rng.next_f64() * 2.0 - 1.0);
  }
  float& at(size_t i, size_t j) { return v[i * ld + j]; }
  float at(size_t i, size_t j) const { return v[i * ld + j]; }
};

// op(X)(i, p) of a stored matrix.
float op_at(const Mat& x, Trans t, size_t i, size_t p) { return t == Trans::No ? x.at(i, p) : x.at(p, i); }

struct Case {
  Trans ta, tb;
  size_t m, n, k;
  size_t pad_a = 0, pad_b = 0, pad_c = 0;
  float alpha = 1.f, beta = 0.f;
};

std::string describe(const Case& c) {
  return "m=" + std::to_string(c.m) + " n=" + std::to_string(c.n) + " k=" + std::to_string(c.k) +
         " ta=" + (c.ta == Trans::Yes ? "T" : "N") + " tb=" + (c.tb == Trans::Yes ? "T" : "N") +
         " pads=" + std::to_string(c.pad_a) + "," + std::to_string(c.pad_b) + "," + std::to_string(c.pad_c) +
         " alpha=" + std::to_string(c.alpha) + " beta=" + std::to_string(c.beta);
}

// Runs sgemm on random data and checks every element against the double reference and the bound;
// padding of C must be left alone. Returns the number of violations.
size_t check_sgemm(const Case& c, uint64_t seed) {
  Rng rng(seed);
  const Mat a = c.ta == Trans::No ? Mat(c.m, c.k, c.pad_a, rng) : Mat(c.k, c.m, c.pad_a, rng);
  const Mat b = c.tb == Trans::No ? Mat(c.k, c.n, c.pad_b, rng) : Mat(c.n, c.k, c.pad_b, rng);
  Mat out(c.m, c.n, c.pad_c, rng, -7.f);
  if (c.beta == 0.f)  // beta == 0 must not read C: poison it
    for (size_t i = 0; i < c.m; ++i)
      for (size_t j = 0; j < c.n; ++j) out.at(i, j) = std::numeric_limits<float>::quiet_NaN();
  const Mat c0 = out;
  sgemm(c.ta, c.tb, c.m, c.n, c.k, c.alpha, a.v.data(), a.ld, b.v.data(), b.ld, c.beta, out.v.data(), out.ld);
  const double g = gamma_bound(c.k);
  size_t bad = 0;
  for (size_t i = 0; i < c.m; ++i) {
    for (size_t j = 0; j < c.n; ++j) {
      double exact = 0, mag = 0;
      for (size_t p = 0; p < c.k; ++p) {
        const double prod = static_cast<double>(op_at(a, c.ta, i, p)) * op_at(b, c.tb, p, j);
        exact += prod;
        mag += std::fabs(prod);
      }
      exact *= c.alpha;
      mag *= std::fabs(c.alpha);
      if (c.beta != 0.f) {
        exact += static_cast<double>(c.beta) * c0.at(i, j);
        mag += std::fabs(static_cast<double>(c.beta) * c0.at(i, j));
      }
      const double got = out.at(i, j);
      if (!(std::fabs(got - exact) <= g * mag)) {
        if (bad < 3)
          MESSAGE(describe(c) << ": C(" << i << "," << j << ") = " << got << ", expected " << exact << " +- "
                              << g * mag);
        ++bad;
      }
    }
    for (size_t j = c.n; j < out.ld; ++j) bad += out.at(i, j) != -7.f;  // padding untouched
  }
  return bad;
}

const Trans kBoth[] = {Trans::No, Trans::Yes};

}  // namespace

TEST_CASE("gemm: all transpose combinations on odd sizes match the double reference") {
  const size_t sizes[][3] = {{1, 1, 1},   {7, 7, 7},    {17, 17, 17}, {63, 63, 63}, {65, 65, 65},
                             {129, 129, 129}, {1, 17, 65}, {65, 1, 17}, {17, 65, 1}, {6, 16, 8},
                             {12, 32, 300}, {5, 15, 7},  {7, 17, 9}};
  uint64_t seed = 1;
  for (const auto& s : sizes)
    for (Trans ta : kBoth)
      for (Trans tb : kBoth) {
        const Case c{ta, tb, s[0], s[1], s[2]};
        CHECK_MESSAGE(check_sgemm(c, seed++) == 0, describe(c));
      }
}

TEST_CASE("gemm: 300x257x131 and shapes spanning several cache blocks in every transpose") {
  // 300 x 257 x 131 crosses MR/NR edges; k = 700 and 1000 cross KC blocks; n = 4200 crosses NC.
  const size_t sizes[][3] = {{300, 257, 131}, {250, 90, 700}, {31, 4200, 40}, {500, 20, 1000}};
  uint64_t seed = 100;
  for (const auto& s : sizes)
    for (Trans ta : kBoth)
      for (Trans tb : kBoth) {
        const Case c{ta, tb, s[0], s[1], s[2]};
        CHECK_MESSAGE(check_sgemm(c, seed++) == 0, describe(c));
      }
}

TEST_CASE("gemm: leading dimensions larger than the rows, padding never read or written") {
  uint64_t seed = 200;
  for (Trans ta : kBoth)
    for (Trans tb : kBoth) {
      Case c{ta, tb, 37, 45, 29, 3, 11, 5};
      CHECK_MESSAGE(check_sgemm(c, seed++) == 0, describe(c));
      c = Case{ta, tb, 130, 70, 300, 17, 1, 9};
      CHECK_MESSAGE(check_sgemm(c, seed++) == 0, describe(c));
    }
}

TEST_CASE("gemm: alpha and beta, with beta = 0 ignoring a NaN-filled C") {
  const float ab[][2] = {{1.f, 0.f}, {2.5f, 0.f}, {-0.75f, 1.f}, {1.f, 1.f}, {0.5f, -2.f}, {3.f, 0.25f}};
  uint64_t seed = 300;
  for (const auto& x : ab)
    for (Trans ta : kBoth)
      for (Trans tb : kBoth) {
        Case c{ta, tb, 67, 35, 270};
        c.alpha = x[0];
        c.beta = x[1];
        CHECK_MESSAGE(check_sgemm(c, seed++) == 0, describe(c));
        c.m = 3;
        c.n = 5;
        c.k = 2000;  // few tiles, long k: the split-k schedule
        CHECK_MESSAGE(check_sgemm(c, seed++) == 0, describe(c));
      }
}

TEST_CASE("gemm: integer-valued inputs give exact results") {
  // Products and sums of small integers are exact in f32, so every route must agree exactly.
  for (Trans ta : kBoth)
    for (Trans tb : kBoth) {
      const size_t m = 41, n = 37, k = 530;
      std::vector<float> a(m * k), b(k * n), c(m * n, std::numeric_limits<float>::quiet_NaN());
      for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(static_cast<int>(i * 7 % 9) - 4);
      for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<float>(static_cast<int>(i * 5 % 7) - 3);
      const size_t lda = ta == Trans::No ? k : m, ldb = tb == Trans::No ? n : k;
      sgemm(ta, tb, m, n, k, 1.f, a.data(), lda, b.data(), ldb, 0.f, c.data(), n);
      size_t bad = 0;
      for (size_t i = 0; i < m; ++i)
        for (size_t j = 0; j < n; ++j) {
          double s = 0;
          for (size_t p = 0; p < k; ++p)
            s += static_cast<double>(ta == Trans::No ? a[i * k + p] : a[p * m + i]) *
                 (tb == Trans::No ? b[p * n + j] : b[j * k + p]);
          bad += c[i * n + j] != static_cast<float>(s);
        }
      CHECK(bad == 0);
    }
}

TEST_CASE("gemm: zero-sized dimensions and alpha = 0") {
  std::vector<float> a(64, std::numeric_limits<float>::quiet_NaN()), b(64, std::numeric_limits<float>::quiet_NaN());
  std::vector<float> c(64, 3.f);
  // m = 0 or n = 0: nothing is touched.
  sgemm(Trans::No, Trans::No, 0, 4, 4, 1.f, a.data(), 4, b.data(), 4, 0.f, c.data(), 4);
  sgemm(Trans::No, Trans::No, 4, 0, 4, 1.f, a.data(), 4, b.data(), 4, 0.f, c.data(), 4);
  for (float v : c) CHECK(v == 3.f);
  // k = 0: C = beta * C, and beta = 0 clears C even when it holds NaN.
  sgemm(Trans::No, Trans::Yes, 4, 4, 0, 1.f, a.data(), 1, b.data(), 1, 0.5f, c.data(), 4);
  for (size_t i = 0; i < 16; ++i) CHECK(c[i] == 1.5f);
  std::fill(c.begin(), c.end(), std::numeric_limits<float>::quiet_NaN());
  sgemm(Trans::Yes, Trans::No, 4, 4, 0, 1.f, a.data(), 4, b.data(), 4, 0.f, c.data(), 4);
  for (size_t i = 0; i < 16; ++i) CHECK(c[i] == 0.f);
  // alpha = 0: A and B are not read (they are NaN here), C = beta * C.
  std::fill(c.begin(), c.end(), 2.f);
  sgemm(Trans::No, Trans::No, 4, 4, 4, 0.f, a.data(), 4, b.data(), 4, -1.f, c.data(), 4);
  for (size_t i = 0; i < 16; ++i) CHECK(c[i] == -2.f);
  // A NaN in A reaches exactly its row of C (IEEE propagation, no masking by the packing).
  std::vector<float> x(6 * 20, 1.f), y(20 * 18, 1.f), z(6 * 18, 0.f);
  x[3 * 20 + 7] = std::numeric_limits<float>::quiet_NaN();
  sgemm(Trans::No, Trans::No, 6, 18, 20, 1.f, x.data(), 20, y.data(), 18, 0.f, z.data(), 18);
  for (size_t i = 0; i < 6; ++i)
    for (size_t j = 0; j < 18; ++j) CHECK(std::isnan(z[i * 18 + j]) == (i == 3));
}

TEST_CASE("gemm: f16 and bf16 inputs with f32 accumulation match the widened reference") {
  const size_t sizes[][3] = {{1, 1, 1}, {7, 17, 9}, {65, 63, 129}, {300, 257, 131}, {4, 6, 3000}};
  uint64_t seed = 400;
  for (const auto& s : sizes) {
    const size_t m = s[0], n = s[1], k = s[2];
    Rng rng(seed++);
    std::vector<float> af(m * k), bf(k * n);
    for (auto& v : af) v = static_cast<float>(rng.next_normal());
    for (auto& v : bf) v = static_cast<float>(rng.next_normal());
    for (int bf16 = 0; bf16 < 2; ++bf16) {
      std::vector<uint16_t> ah(m * k), bh(k * n);
      std::vector<float> aw(m * k), bw(k * n);
      if (bf16) {
        f32_to_bf16(af.data(), ah.data(), ah.size());
        f32_to_bf16(bf.data(), bh.data(), bh.size());
        bf16_to_f32(ah.data(), aw.data(), aw.size());
        bf16_to_f32(bh.data(), bw.data(), bw.size());
      } else {
        f32_to_f16(af.data(), ah.data(), ah.size());
        f32_to_f16(bf.data(), bh.data(), bh.size());
        f16_to_f32(ah.data(), aw.data(), aw.size());
        f16_to_f32(bh.data(), bw.data(), bw.size());
      }
      std::vector<float> c(m * n, std::numeric_limits<float>::quiet_NaN()), cf(m * n);
      if (bf16)
        bgemm_f32acc(m, n, k, ah.data(), bh.data(), c.data());
      else
        hgemm_f32acc(m, n, k, ah.data(), bh.data(), c.data());
      // The widened f32 product goes through the same kernel: identical bits.
      sgemm(Trans::No, Trans::No, m, n, k, 1.f, aw.data(), k, bw.data(), n, 0.f, cf.data(), n);
      const double g = gamma_bound(k);
      size_t bad = 0, differ = 0;
      for (size_t i = 0; i < m; ++i)
        for (size_t j = 0; j < n; ++j) {
          double exact = 0, mag = 0;
          for (size_t p = 0; p < k; ++p) {
            const double prod = static_cast<double>(aw[i * k + p]) * bw[p * n + j];
            exact += prod;
            mag += std::fabs(prod);
          }
          bad += !(std::fabs(c[i * n + j] - exact) <= g * mag);
          differ += f32_bits(c[i * n + j]) != f32_bits(cf[i * n + j]);
        }
      CHECK_MESSAGE(bad == 0, (bf16 ? "bf16" : "f16") << " m=" << m << " n=" << n << " k=" << k);
      CHECK_MESSAGE(differ == 0, (bf16 ? "bf16" : "f16") << " m=" << m << " n=" << n << " k=" << k);
    }
  }
}

TEST_CASE("gemm: results are bitwise identical for every thread count") {
  struct Shape {
    Trans ta, tb;
    size_t m, n, k;
  };
  // Square, tall-skinny both ways (row and column splits), a small C with a long k (split-k) and
  // one C tile (split-k with one tile).
  const Shape shapes[] = {{Trans::No, Trans::No, 200, 190, 700},  {Trans::No, Trans::No, 1500, 20, 900},
                          {Trans::Yes, Trans::No, 20, 1500, 900}, {Trans::No, Trans::Yes, 33, 50, 2000},
                          {Trans::Yes, Trans::Yes, 5, 7, 5000},   {Trans::No, Trans::No, 6, 16, 3000}};
  for (const Shape& s : shapes) {
    Rng rng(s.m * 31 + s.n);
    std::vector<float> a(s.m * s.k), b(s.k * s.n), c0(s.m * s.n);
    for (auto& v : a) v = static_cast<float>(rng.next_normal());
    for (auto& v : b) v = static_cast<float>(rng.next_normal());
    for (auto& v : c0) v = static_cast<float>(rng.next_normal());
    const size_t lda = s.ta == Trans::No ? s.k : s.m, ldb = s.tb == Trans::No ? s.n : s.k;
    std::vector<float> first;
    for (int threads : {1, 2, 3, 4, 7}) {
      set_num_threads(threads);
      std::vector<float> c = c0;
      sgemm(s.ta, s.tb, s.m, s.n, s.k, 0.7f, a.data(), lda, b.data(), ldb, 0.3f, c.data(), s.n);
      if (first.empty()) {
        first = c;
        continue;
      }
      CHECK_MESSAGE(std::memcmp(first.data(), c.data(), c.size() * sizeof(float)) == 0,
                    "threads=" << threads << " m=" << s.m << " n=" << s.n << " k=" << s.k);
    }
  }
  set_num_threads(0);
}
