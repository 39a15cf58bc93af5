// Transformer ops (ops.hpp) against scalar double references.
#include <doctest/doctest.h>

#include <cmath>
#include <complex>
#include <cstring>
#include <limits>
#include <vector>

#include "tersor/error.hpp"
#include "tersor/half.hpp"
#include "tersor/ops.hpp"
#include "tersor/parallel.hpp"
#include "tersor/rng.hpp"

using namespace tersor;

namespace {

std::vector<float> randn(size_t n, uint64_t seed, double sd = 1.0, double mean = 0.0) {
  Rng r(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(mean + sd * r.next_normal());
  return v;
}

template <class F>
ErrorCode code_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code();
  }
  FAIL("expected a tersor::Error");
  return ErrorCode::Native;
}

constexpr double kPi = 3.14159265358979323846;

}  // namespace

TEST_CASE("ops: vectorised exp stays within its documented relative error") {
  // Dense sweep of the normal-result range against exp in double.
  const size_t n = 20000000;
  const double lo = -87.3, hi = 88.72;
  std::vector<float> x(n), y(n);
  for (size_t i = 0; i < n; ++i) x[i] = static_cast<float>(lo + (hi - lo) * (static_cast<double>(i) / (n - 1)));
  exp_f32(x.data(), y.data(), n);
  double worst = 0;
  for (size_t i = 0; i < n; ++i) {
    const double ref = std::exp(static_cast<double>(x[i]));
    if (ref > std::numeric_limits<float>::max()) continue;
    worst = std::max(worst, std::fabs(y[i] - ref) / ref);
  }
  MESSAGE("exp max relative error over [-87.3, 88.72]: " << worst);
  CHECK(worst <= 1e-7);
  // Around zero, where softmax lives.
  std::vector<float> x2 = randn(1 << 20, 5, 4.0), y2(x2.size());
  exp_f32(x2.data(), y2.data(), x2.size());
  for (size_t i = 0; i < x2.size(); ++i) {
    const double ref = std::exp(static_cast<double>(x2[i]));
    REQUIRE(std::fabs(y2[i] - ref) <= 1e-7 * ref);
  }
  // Specials, subnormals, overflow.
  const float inf = std::numeric_limits<float>::infinity();
  const float sp[] = {0.f, -0.f, -inf, inf, std::numeric_limits<float>::quiet_NaN(), -88.f, -100.f, -103.9f, -200.f, 88.8f, 1000.f, 1.f};
  float out[12];
  exp_f32(sp, out, 12);
  CHECK(out[0] == 1.f);
  CHECK(out[1] == 1.f);
  CHECK(out[2] == 0.f);
  CHECK(out[3] == inf);
  CHECK(std::isnan(out[4]));
  CHECK(std::fabs(out[5] - std::exp(-88.0)) <= 1e-44 + 1e-6 * std::exp(-88.0));  // subnormal region
  CHECK(std::fabs(out[6] - std::exp(-100.0)) <= 2e-45);
  CHECK(std::fabs(out[7] - std::exp(-103.9)) <= 2e-45);
  CHECK(out[8] == 0.f);
  CHECK(out[9] == inf);
  CHECK(out[10] == inf);
  CHECK(std::fabs(out[11] - std::exp(1.0)) <= 1e-7 * std::exp(1.0));
}

TEST_CASE("ops: rms_norm matches the double formula, with and without weight, in place") {
  for (size_t dim : {1u, 7u, 8u, 33u, 4096u}) {
    const size_t rows = 37;
    auto x = randn(rows * dim, dim, 2.0);
    auto w = randn(dim, dim + 1);
    std::vector<float> y(x.size()), y2(x.size());
    const float eps = 1e-5f;
    rms_norm(x.data(), w.data(), y.data(), rows, dim, eps);
    rms_norm(x.data(), nullptr, y2.data(), rows, dim, eps);
    double worst = 0;
    for (size_t r = 0; r < rows; ++r) {
      double ss = 0;
      for (size_t c = 0; c < dim; ++c) ss += static_cast<double>(x[r * dim + c]) * x[r * dim + c];
      const double inv = 1.0 / std::sqrt(ss / dim + eps);
      for (size_t c = 0; c < dim; ++c) {
        const double ref = x[r * dim + c] * inv;
        worst = std::max(worst, std::fabs(y[r * dim + c] - ref * w[c]) / (std::fabs(ref * w[c]) + 1e-6));
        worst = std::max(worst, std::fabs(y2[r * dim + c] - ref) / (std::fabs(ref) + 1e-6));
      }
    }
    CHECK(worst < 2e-6);
    std::vector<float> inplace = x;
    rms_norm(inplace.data(), w.data(), inplace.data(), rows, dim, eps);
    CHECK(std::memcmp(inplace.data(), y.data(), y.size() * 4) == 0);
  }
  float z[4] = {0, 0, 0, 0};
  rms_norm(z, nullptr, z, 1, 4, 1e-6f);  // a zero row stays zero (eps keeps it finite)
  CHECK(z[0] == 0.f);
  CHECK(code_of([&] { rms_norm(z, nullptr, z, 1, 4, -1.f); }) == ErrorCode::Range);
}

TEST_CASE("ops: layer_norm matches the double formula, two-pass stable with a large mean") {
  for (size_t dim : {1u, 5u, 16u, 768u, 1000u}) {
    const size_t rows = 19;
    auto x = randn(rows * dim, 100 + dim, 1.0, 300.0);  // mean 300, unit spread
    auto w = randn(dim, 1), b = randn(dim, 2);
    std::vector<float> y(x.size());
    const float eps = 1e-5f;
    layer_norm(x.data(), w.data(), b.data(), y.data(), rows, dim, eps);
    double worst = 0;
    for (size_t r = 0; r < rows; ++r) {
      double mean = 0, var = 0;
      for (size_t c = 0; c < dim; ++c) mean += x[r * dim + c];
      mean /= dim;
      for (size_t c = 0; c < dim; ++c) var += (x[r * dim + c] - mean) * (x[r * dim + c] - mean);
      var /= dim;
      for (size_t c = 0; c < dim; ++c) {
        const double ref = (x[r * dim + c] - mean) / std::sqrt(var + eps) * w[c] + b[c];
        worst = std::max(worst, std::fabs(y[r * dim + c] - ref));
      }
    }
        CHECK(worst < 2e-6);
  }
  std::vector<float> x = randn(64, 9), y(64);
  layer_norm(x.data(), nullptr, nullptr, y.data(), 2, 32, 0.f);
  double mean = 0, sq = 0;
  for (int c = 0; c < 32; ++c) mean += y[c], sq += y[c] * y[c];
  CHECK(std::fabs(mean / 32) < 1e-6);
  CHECK(std::fabs(sq / 32 - 1) < 1e-5);
}

TEST_CASE("ops: rope NeoX and interleaved match a direct complex rotation, partial rotary passes through") {
  for (RopeStyle style : {RopeStyle::NeoX, RopeStyle::Interleaved}) {
    for (size_t rotary : {0u, 32u}) {  // full, and partial (half of a 64-dim head)
      RopeConfig cfg;
      cfg.head_dim = 64;
      cfg.rotary_dim = rotary;
      cfg.theta = 500000.0;
      cfg.style = style;
      const size_t rot = cfg.rot(), half = rot / 2;
      const size_t tokens = 9, heads = 3, d = 64, stride = 5 * d;  // a view into a wider (fused) row
      auto x = randn(tokens * stride, 77);
      std::vector<int32_t> pos = {0, 1, 2, 17, 100, 4095, 4096, 70000, 3};
      std::vector<float> y = x;
      const RopeCache cache(cfg, 4096);  // positions >= 4096 are computed on the fly
      rope_apply(y.data(), tokens, heads, pos.data(), cache, stride);
      std::vector<float> y2 = x;
      rope_apply(y2.data(), tokens, heads, pos.data(), cfg, stride);
      CHECK(std::memcmp(y.data(), y2.data(), y.size() * 4) == 0);  // the cache changes nothing
      double worst = 0;
      bool untouched = true;
      for (size_t t = 0; t < tokens; ++t) {
        for (size_t h = 0; h < heads; ++h) {
          const float* a = x.data() + t * stride + h * d;
          const float* b = y.data() + t * stride + h * d;
          for (size_t i = 0; i < half; ++i) {
            const size_t ia = style == RopeStyle::NeoX ? i : 2 * i;
            const size_t ib = style == RopeStyle::NeoX ? i + half : 2 * i + 1;
            const double theta = static_cast<double>(pos[t]) * std::pow(500000.0, -2.0 * i / rot);
            const std::complex<double> z = std::complex<double>(a[ia], a[ib]) * std::polar(1.0, theta);
            worst = std::max(worst, std::fabs(b[ia] - z.real()));
            worst = std::max(worst, std::fabs(b[ib] - z.imag()));
          }
          for (size_t c = rot; c < d; ++c) untouched &= a[c] == b[c];
        }
        // the rest of the fused row is not touched
        for (size_t c = heads * d; c < stride; ++c) untouched &= x[t * stride + c] == y[t * stride + c];
      }
      CHECK(untouched);
      CHECK(worst < 1e-5);  // cos/sin rounded to f32: |x| * 2^-24 each
    }
  }
  RopeConfig bad;
  bad.head_dim = 64;
  bad.rotary_dim = 33;
  CHECK(code_of([&] { rope_validate(bad); }) == ErrorCode::Shape);
  RopeConfig ok;
  ok.head_dim = 8;
  float x[8] = {};
  const int32_t neg = -1;
  CHECK(code_of([&] { rope_apply(x, 1, 1, &neg, ok); }) == ErrorCode::Range);
}

TEST_CASE("ops: rope llama3 and linear scaling match hand-computed frequencies") {
  RopeConfig c;
  c.head_dim = 8;  // inv_freq = 1, 0.1, 0.01, 0.001 at theta 1e4
  c.theta = 10000.0;
  auto f = rope_inv_freq(c);
  REQUIRE(f.size() == 4);
  CHECK(f[1] == doctest::Approx(0.1).epsilon(1e-15));
  // llama3 with factor 4, low 1, high 4, original context 1000: wavelengths 2 pi / f are
  // 6.28, 62.8 (< 250 = 1000 / 4: kept), 628 (between 250 and 1000: smoothed), 6283 (> 1000: / 4).
  // Smoothed: s = (1000 f / 2 pi - 1) / 3, f' = (1 - s) f / 4 + s f = 1000 f^2 / (8 pi) = 0.1 / (8 pi).
  c.scaling = RopeScaling::Llama3;
  c.factor = 4.0;
  c.low_freq_factor = 1.0;
  c.high_freq_factor = 4.0;
  c.original_max_position = 1000.0;
  f = rope_inv_freq(c);
  CHECK(f[0] == 1.0);
  CHECK(f[1] == doctest::Approx(0.1).epsilon(1e-15));
  CHECK(f[2] == doctest::Approx(0.0039788735772973833).epsilon(1e-13));
  CHECK(f[3] == doctest::Approx(0.00025).epsilon(1e-13));
  // Llama 3.1 8B's config (head_dim 128, theta 5e5, factor 8, 1/4, 8192): the first frequencies are
  // untouched, the last ones divided by 8.
  RopeConfig l31;
  l31.head_dim = 128;
  l31.theta = 500000.0;
  l31.scaling = RopeScaling::Llama3;
  l31.factor = 8.0;
  auto g = rope_inv_freq(l31);
  RopeConfig plain = l31;
  plain.scaling = RopeScaling::None;
  auto g0 = rope_inv_freq(plain);
  CHECK(g[0] == g0[0]);
  CHECK(g[63] == doctest::Approx(g0[63] / 8).epsilon(1e-14));
  for (size_t i = 0; i < 64; ++i) CHECK((g[i] <= g0[i] && g[i] >= g0[i] / 8 * (1 - 1e-15)));
  // linear: positions / factor
  RopeConfig lin = plain;
  lin.scaling = RopeScaling::Linear;
  lin.factor = 2.0;
  RopeCache a(lin, 64), b(plain, 64);
  float ca[64], sa[64];
  a.lookup(40, ca, sa);
  CHECK(std::memcmp(ca, b.cos_row(20), 64 * 4) == 0);
  CHECK(std::memcmp(sa, b.sin_row(20), 64 * 4) == 0);
  lin.factor = 0;
  CHECK(code_of([&] { rope_validate(lin); }) == ErrorCode::Range);
}

TEST_CASE("ops: swiglu matches silu(gate) * up, plain and row-strided") {
  const size_t n = 10007;
  auto g = randn(n, 3, 4.0), u = randn(n, 4);
  g[0] = -100.f;
  g[1] = 100.f;
  std::vector<float> y(n);
  swiglu(g.data(), u.data(), y.data(), n);
  double worst = 0;
  for (size_t i = 0; i < n; ++i) {
    const double ref = g[i] / (1.0 + std::exp(-static_cast<double>(g[i]))) * u[i];
    worst = std::max(worst, std::fabs(y[i] - ref) / (std::fabs(ref) + 1e-30));
  }
  CHECK(worst < 5e-7);
  // fused [rows, 2 * cols] layout
  const size_t rows = 7, cols = 13;
  auto gu = randn(rows * 2 * cols, 8);
  std::vector<float> out(rows * cols);
  swiglu(gu.data(), gu.data() + cols, out.data(), rows, cols, 2 * cols, 2 * cols, cols);
  for (size_t r = 0; r < rows; ++r)
    for (size_t c = 0; c < cols; ++c) {
      const double gv = gu[r * 2 * cols + c], uv = gu[r * 2 * cols + cols + c];
      CHECK(out[r * cols + c] == doctest::Approx(gv / (1 + std::exp(-gv)) * uv).epsilon(1e-6));
    }
}

TEST_CASE("ops: gelu tanh and erf match their double formulas") {
  std::vector<float> x;
  for (int i = -40000; i <= 40000; ++i) x.push_back(static_cast<float>(i) * 5e-4f);  // [-20, 20]
  auto r = randn(100000, 11, 3.0);
  x.insert(x.end(), r.begin(), r.end());
  x.push_back(-1e4f);
  x.push_back(1e4f);
  std::vector<float> yt(x.size()), ye(x.size());
  gelu(x.data(), yt.data(), x.size(), GeluKind::Tanh);
  gelu(x.data(), ye.data(), x.size(), GeluKind::Erf);
  double wt = 0, we = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double v = x[i];
    const double rt = 0.5 * v * (1 + std::tanh(std::sqrt(2 / kPi) * (v + 0.044715 * v * v * v)));
    const double re = 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)));
    wt = std::max(wt, std::fabs(yt[i] - rt) / (std::fabs(v) + 1e-30));
    we = std::max(we, std::fabs(ye[i] - re) / (std::fabs(v) + 1e-30));
  }
  MESSAGE("gelu max error / |x|: tanh " << wt << ", erf " << we);
  CHECK(wt < 2e-7);
  CHECK(we < 3e-7);
}

TEST_CASE("ops: softmax is stable for large logits and zeroes rows that are all -inf") {
  const float inf = std::numeric_limits<float>::infinity();
  for (size_t cols : {1u, 7u, 8u, 9u, 1000u, 32000u}) {
    const size_t rows = 5;
    auto x = randn(rows * cols, cols, 30.0);
    x[0] += 1000.f;  // far above the rest
    if (cols > 3) x[cols + 2] = -inf;
    std::vector<float> y(x.size());
    softmax(x.data(), y.data(), rows, cols);
    for (size_t r = 0; r < rows; ++r) {
      double mx = -1e300, sum = 0;
      for (size_t c = 0; c < cols; ++c) mx = std::max(mx, static_cast<double>(x[r * cols + c]));
      for (size_t c = 0; c < cols; ++c) sum += std::exp(x[r * cols + c] - mx);
      double total = 0;
      for (size_t c = 0; c < cols; ++c) {
        const double ref = std::exp(x[r * cols + c] - mx) / sum;
        // f32 rounds x - max: a relative error of |x - max| * 2^-24 on top of exp's own
        const double tol = ref == 0 ? 0.0 : (3e-7 + 1.2e-7 * std::fabs(x[r * cols + c] - mx)) * ref;
        REQUIRE(std::fabs(y[r * cols + c] - ref) <= tol + 1e-37);
        total += y[r * cols + c];
      }
      CHECK(total == doctest::Approx(1.0).epsilon(1e-5));
    }
  }
  float row[3] = {-inf, -inf, -inf};
  softmax(row, row, 1, 3);
  CHECK((row[0] == 0.f && row[1] == 0.f && row[2] == 0.f));
}

TEST_CASE("ops: embedding looks up rows and rejects out-of-range ids before writing") {
  const size_t vocab = 50, dim = 12;
  auto table = randn(vocab * dim, 21);
  std::vector<int32_t> ids = {0, 49, 7, 7};
  std::vector<float> out(ids.size() * dim, -1.f);
  embedding(table.data(), vocab, dim, ids.data(), ids.size(), out.data());
  for (size_t t = 0; t < ids.size(); ++t)
    CHECK(std::memcmp(out.data() + t * dim, table.data() + ids[t] * dim, dim * 4) == 0);
  std::vector<int32_t> bad = {1, 50};
  std::vector<float> untouched(2 * dim, 3.f);
  CHECK(code_of([&] { embedding(table.data(), vocab, dim, bad.data(), 2, untouched.data()); }) == ErrorCode::Range);
  CHECK(untouched[0] == 3.f);
  bad[1] = -1;
  CHECK(code_of([&] { embedding(table.data(), vocab, dim, bad.data(), 2, untouched.data()); }) == ErrorCode::Range);
  std::vector<uint16_t> th(vocab * dim), tb(vocab * dim);
  f32_to_f16(table.data(), th.data(), th.size());
  f32_to_bf16(table.data(), tb.data(), tb.size());
  embedding_half(th.data(), false, vocab, dim, ids.data(), ids.size(), out.data());
  CHECK(out[dim + 3] == f16_to_f32_scalar(th[49 * dim + 3]));
  embedding_half(tb.data(), true, vocab, dim, ids.data(), ids.size(), out.data());
  CHECK(out[dim + 3] == bf16_to_f32_scalar(tb[49 * dim + 3]));
}

TEST_CASE("ops: linear for HF [out, in] and GPT-2 Conv1D [in, out] weights, bias and row strides") {
  const size_t rows = 17, in = 70, out = 33, ldx = 80, ldy = 40;
  auto x = randn(rows * ldx, 31), w = randn(out * in, 32), b = randn(out, 33);
  std::vector<float> wt(in * out);  // the same weights in Conv1D layout
  for (size_t o = 0; o < out; ++o)
    for (size_t i = 0; i < in; ++i) wt[i * out + o] = w[o * in + i];
  std::vector<float> y1(rows * ldy, 9.f), y2(rows * ldy, 9.f), y3(rows * out);
  linear(x.data(), w.data(), b.data(), y1.data(), rows, in, out, WeightLayout::OutIn, ldx, ldy);
  linear(x.data(), wt.data(), b.data(), y2.data(), rows, in, out, WeightLayout::InOut, ldx, ldy);
  linear(x.data(), w.data(), nullptr, y3.data(), rows, in, out, WeightLayout::OutIn, ldx, 0);
  double worst = 0;
  for (size_t r = 0; r < rows; ++r) {
    for (size_t o = 0; o < out; ++o) {
      double acc = 0;
      for (size_t i = 0; i < in; ++i) acc += static_cast<double>(x[r * ldx + i]) * w[o * in + i];
      worst = std::max(worst, std::fabs(y1[r * ldy + o] - (acc + b[o])));
      worst = std::max(worst, std::fabs(y2[r * ldy + o] - (acc + b[o])));
      worst = std::max(worst, std::fabs(y3[r * out + o] - acc));
    }
    for (size_t o = out; o < ldy; ++o) CHECK(y1[r * ldy + o] == 9.f);  // padding untouched
  }
  CHECK(worst < 1e-4);
  CHECK(code_of([&] { linear(x.data(), w.data(), nullptr, y1.data(), rows, in, out, WeightLayout::OutIn, 10, 0); }) ==
        ErrorCode::Shape);
}
