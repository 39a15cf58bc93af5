// Tests of tersor/quant_methods.hpp against the definitions: GPTQ with a diagonal Hessian is RTN
// (closed form: no error is ever propagated), GPTQ lowers the calibration output error below RTN's,
// the blocked GPTQ agrees with the unblocked formulation, HQQ's fast path agrees with its scalar
// formulation and lowers the mean absolute error below min-max RTN's, EoRA's activation-weighted
// error is at most LoRC's at every rank (optimal by construction) and equals LoRC when X = I, and
// bad input fails with the right error code.
#include <doctest/doctest.h>

#include <Eigen/Dense>
#include <cmath>
#include <vector>

#include "tersor/error.hpp"
#include "tersor/linalg.hpp"
#include "tersor/quant_methods.hpp"
#include "tersor/rng.hpp"

using namespace tersor;

namespace {

using MatD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

std::vector<float> normal(uint64_t seed, size_t n, float scale = 1.f) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = scale * static_cast<float>(rng.next_normal());
  return v;
}

/// X^T X of N correlated activations (a random mixing plus a few heavy channels, as in LLMs).
std::vector<double> correlated_gram(uint64_t seed, size_t n, size_t cols) {
  Rng rng(seed);
  MatD mix(cols, cols);
  for (size_t i = 0; i < cols; ++i)
    for (size_t j = 0; j < cols; ++j) mix(i, j) = rng.next_normal() / std::sqrt(static_cast<double>(cols));
  MatD x(n, cols);
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < cols; ++j) x(i, j) = rng.next_normal() * (j % 7 == 0 ? 4.0 : 1.0);
  MatD xm = x * mix + 0.5 * x;
  MatD g = xm.transpose() * xm;
  return std::vector<double>(g.data(), g.data() + cols * cols);
}

double weighted_error(const std::vector<float>& e, const LowRank& lr, const std::vector<double>& g) {
  std::vector<float> ba(lr.rows * lr.cols, 0.f);
  for (size_t i = 0; i < lr.rows; ++i)
    for (size_t k = 0; k < lr.rank; ++k)
      for (size_t j = 0; j < lr.cols; ++j) ba[i * lr.cols + j] += lr.b[i * lr.rank + k] * lr.a[k * lr.cols + j];
  return output_error(e.data(), ba.data(), lr.rows, lr.cols, g.data());
}

std::vector<float> product(const LowRank& lr) {
  std::vector<float> ba(lr.rows * lr.cols, 0.f);
  for (size_t i = 0; i < lr.rows; ++i)
    for (size_t k = 0; k < lr.rank; ++k)
      for (size_t j = 0; j < lr.cols; ++j) ba[i * lr.cols + j] += lr.b[i * lr.rank + k] * lr.a[k * lr.cols + j];
  return ba;
}

}  // namespace

TEST_CASE("gptq with a diagonal Hessian equals rtn") {
  const size_t rows = 24, cols = 128;
  auto w = normal(1, rows * cols);
  std::vector<double> g(cols * cols, 0.0);
  Rng rng(2);
  for (size_t j = 0; j < cols; ++j) g[j * cols + j] = 0.5 + std::fabs(rng.next_normal()) * 3;
  for (const char* scheme : {"int4-g32", "int3-g64-asym", "int4"}) {
    BlockCodec c = scheme_codec(scheme, cols);
    auto rq = rtn_quantize(c, w.data(), rows, cols);
    GptqOptions o;
    o.block_size = 32;
    GptqResult r = gptq(c, w.data(), rows, cols, g.data(), 100, o);
    CHECK(r.q == rq);
    o.act_order = true;
    GptqResult ra = gptq(c, w.data(), rows, cols, g.data(), 100, o);
    CHECK(ra.q == rq);
  }
}

TEST_CASE("gptq lowers the calibration output error below rtn at 3 and 4 bits") {
  const size_t rows = 64, cols = 256;
  auto w = normal(3, rows * cols, 0.05f);
  auto g = correlated_gram(4, 512, cols);
  for (const char* scheme : {"int4-g128", "int3-g128", "int4-g32-asym", "int3"}) {
    BlockCodec c = scheme_codec(scheme, cols);
    auto rtn = dequantize_rows(c, rtn_quantize(c, w.data(), rows, cols).data(), rows, cols);
    const double e_rtn = output_error(w.data(), rtn.data(), rows, cols, g.data());
    for (bool act : {false, true}) {
      GptqOptions o;
      o.act_order = act;
      GptqResult r = gptq(c, w.data(), rows, cols, g.data(), 512, o);
      const double e = output_error(w.data(), r.deq.data(), rows, cols, g.data());
      INFO(scheme << " act_order " << act << " gptq " << e << " rtn " << e_rtn);
      CHECK(e < e_rtn);
    }
  }
}

TEST_CASE("blocked gptq agrees with the unblocked formulation") {
  const size_t rows = 48, cols = 384;
  auto w = normal(5, rows * cols);
  auto g = correlated_gram(6, 600, cols);
  for (bool act : {false, true}) {
    BlockCodec c = scheme_codec("int4-g64", cols);
    GptqOptions o;
    o.act_order = act;
    GptqResult a = gptq(c, w.data(), rows, cols, g.data(), 600, o);
    GptqResult b = gptq_reference(c, w.data(), rows, cols, g.data(), 600, o);
    // Float round-off in the update order may flip roundings, which then propagate along the row:
    // the two formulations must agree on the objective, not bit for bit.
    const double ea = output_error(w.data(), a.deq.data(), rows, cols, g.data());
    const double eb = output_error(w.data(), b.deq.data(), rows, cols, g.data());
    CHECK(std::fabs(ea - eb) <= 0.02 * eb);
    CHECK(a.loss == doctest::Approx(b.loss).epsilon(0.02));
  }
}

TEST_CASE("gptq zeroes dead columns") {
  const size_t rows = 8, cols = 64;
  auto w = normal(7, rows * cols);
  auto g = correlated_gram(8, 200, cols);
  for (size_t j : {3u, 40u})
    for (size_t i = 0; i < cols; ++i) g[j * cols + i] = g[i * cols + j] = 0;
  GptqResult r = gptq(scheme_codec("int4-g32", cols), w.data(), rows, cols, g.data(), 200);
  CHECK(r.dead == 2);
  for (size_t row = 0; row < rows; ++row) {
    CHECK(std::fabs(r.deq[row * cols + 3]) <= 0.2f * std::fabs(w[row * cols + 3]) + 0.5f);
  }
}

TEST_CASE("gptq rejects bad input") {
  const size_t rows = 4, cols = 64;
  auto w = normal(9, rows * cols);
  auto g = correlated_gram(10, 100, cols);
  w[5] = std::nanf("");
  BlockCodec c = scheme_codec("int4-g32", cols);
  CHECK_THROWS_AS(gptq(c, w.data(), rows, cols, g.data(), 100), Error);
  try {
    gptq(c, w.data(), rows, cols, g.data(), 100);
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::Range);
  }
  try {
    scheme_codec("int4-g128", 96);
    CHECK(false);
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::Shape);
  }
  try {
    scheme_codec("int9", 64);
    CHECK(false);
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::Range);
  }
  try {
    scheme_codec("nf4-dq", 64);
    CHECK(false);
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::Range);
  }
}

TEST_CASE("hqq fast path agrees with the scalar formulation") {
  const size_t rows = 32, cols = 256;
  auto w = normal(11, rows * cols);
  for (size_t group : {64u, 0u}) {
    HqqResult a = hqq(w.data(), rows, cols, 4, group);
    HqqResult b = hqq_reference(w.data(), rows, cols, 4, group);
    CHECK(a.iterations == b.iterations);
    CHECK(a.error == doctest::Approx(b.error).epsilon(1e-4));
    size_t same = 0;
    for (size_t i = 0; i < a.codes.size(); ++i) same += a.codes[i] == b.codes[i];
    CHECK(static_cast<double>(same) / static_cast<double>(a.codes.size()) > 0.995);
  }
}

TEST_CASE("hqq lowers the mean absolute error below min-max rtn") {
  const size_t rows = 64, cols = 256;
  auto w = normal(12, rows * cols);
  for (int bits : {3, 4}) {
    HqqResult r = hqq(w.data(), rows, cols, bits, 64);
    auto y = hqq_dequantize(r, rows, cols, 64);
    // Min-max asymmetric RTN with the same float zero point (HQQ's starting point).
    double e_h = 0, e_r = 0;
    const float maxq = static_cast<float>((1 << bits) - 1);
    for (size_t k = 0; k < rows * cols / 64; ++k) {
      float lo = w[k * 64], hi = w[k * 64];
      for (size_t i = 0; i < 64; ++i) {
        lo = std::fmin(lo, w[k * 64 + i]);
        hi = std::fmax(hi, w[k * 64 + i]);
      }
      const float s = maxq / (hi - lo), z = -lo * s;
      for (size_t i = 0; i < 64; ++i) {
        const float x = w[k * 64 + i];
        const float q = std::fmin(maxq, std::fmax(0.f, std::nearbyint(x * s + z)));
        e_r += std::fabs(x - (q - z) / s);
        e_h += std::fabs(x - y[k * 64 + i]);
      }
    }
    INFO("bits " << bits << " hqq " << e_h << " rtn " << e_r);
    CHECK(e_h < e_r);
  }
}

TEST_CASE("eora error is at most lorc error at every rank and lorc is the truncated svd") {
  const size_t rows = 40, cols = 64;
  auto e = normal(13, rows * cols, 0.01f);
  auto g = correlated_gram(14, 300, cols);
  std::vector<double> eye(cols * cols, 0.0);
  for (size_t j = 0; j < cols; ++j) eye[j * cols + j] = 1.0;
  for (size_t k = 1; k <= 32; k *= 2) {
    LowRank lc = lorc(e.data(), rows, cols, k);
    LowRank eo = eora(e.data(), rows, cols, g.data(), k);
    const double e_l = weighted_error(e, lc, g), e_e = weighted_error(e, eo, g);
    INFO("rank " << k << " eora " << e_e << " lorc " << e_l);
    CHECK(e_e <= e_l * (1 + 1e-6));
    // Unweighted: the LoRC residual is the tail energy of the spectrum (Eckart-Young).
    double tail = 0;
    for (size_t i = k; i < lc.singular_values.size(); ++i) tail += static_cast<double>(lc.singular_values[i]) * lc.singular_values[i];
    CHECK(weighted_error(e, lc, eye) == doctest::Approx(tail).epsilon(1e-4));
    // X = I: EoRA is LoRC.
    LowRank ei = eora(e.data(), rows, cols, eye.data(), k);
    auto p1 = product(ei), p2 = product(lc);
    double diff = 0, norm = 0;
    for (size_t i = 0; i < p1.size(); ++i) {
      diff += (p1[i] - p2[i]) * (p1[i] - p2[i]);
      norm += p2[i] * p2[i];
    }
    CHECK(std::sqrt(diff / norm) < 1e-4);
  }
}

TEST_CASE("lord picks the rank by energy") {
  const size_t rows = 30, cols = 20;
  // Rank-3 matrix plus tiny noise: 3 components hold almost all the energy.
  auto u = normal(15, rows * 3), v = normal(16, 3 * cols), n = normal(17, rows * cols, 1e-4f);
  std::vector<float> w(rows * cols);
  for (size_t i = 0; i < rows; ++i)
    for (size_t j = 0; j < cols; ++j) {
      float s = n[i * cols + j];
      for (size_t k = 0; k < 3; ++k) s += u[i * 3 + k] * v[k * cols + j];
      w[i * cols + j] = s;
    }
  LowRank lr = lord(w.data(), rows, cols, 0, 0.9999);
  CHECK(lr.rank == 3);
  auto p = product(lr);
  double diff = 0, norm = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    diff += (p[i] - w[i]) * (p[i] - w[i]);
    norm += w[i] * w[i];
  }
  CHECK(std::sqrt(diff / norm) < 1e-3);
  CHECK(rank_for_energy({4.f, 3.f}, 0.64) == 1);
  CHECK(rank_for_energy({4.f, 3.f}, 0.5) == 1);
  CHECK(rank_for_energy({4.f, 3.f}, 0.65) == 2);
}

TEST_CASE("awq search never does worse than rtn on the calibration error") {
  const size_t rows = 32, cols = 128;
  auto w1 = normal(18, rows * cols, 0.05f), w2 = normal(19, 2 * rows * cols, 0.05f);
  auto g = correlated_gram(20, 400, cols);
  std::vector<float> mean_abs(cols);
  for (size_t j = 0; j < cols; ++j) mean_abs[j] = static_cast<float>(std::sqrt(g[j * cols + j] / 400.0));
  BlockCodec c = scheme_codec("int3-g32", cols);
  AwqResult r = awq_search(c, {w1.data(), w2.data()}, {rows, 2 * rows}, cols, g.data(), mean_abs.data(), 10);
  REQUIRE(r.errors.size() == 10);
  double rtn = 0;
  for (auto [w, n] : {std::pair{&w1, rows}, std::pair{&w2, 2 * rows}}) {
    auto d = dequantize_rows(c, rtn_quantize(c, w->data(), n, cols).data(), n, cols);
    rtn += output_error(w->data(), d.data(), n, cols, g.data());
  }
  CHECK(r.errors[0] == doctest::Approx(rtn).epsilon(1e-9));
  CHECK(r.error <= rtn);
  CHECK(r.alpha > 0);
}

TEST_CASE("gptq row chunks agree with the unblocked formulation on many rows") {
  // 150 rows: the lazy batches walk rows in chunks of 64, here two full chunks and a ragged one.
  const size_t rows = 150, cols = 256;
  auto w = normal(21, rows * cols);
  auto g = correlated_gram(22, 500, cols);
  for (int mode = 0; mode < 3; ++mode) {
    CAPTURE(mode);
    BlockCodec c = scheme_codec(mode == 2 ? "q4_k" : "int4-g64", cols);
    GptqOptions o;
    o.act_order = mode == 1;
    GptqResult a = gptq(c, w.data(), rows, cols, g.data(), 500, o);
    GptqResult b = gptq_reference(c, w.data(), rows, cols, g.data(), 500, o);
    const double ea = output_error(w.data(), a.deq.data(), rows, cols, g.data());
    const double eb = output_error(w.data(), b.deq.data(), rows, cols, g.data());
    CHECK(std::fabs(ea - eb) <= 0.02 * eb);
    CHECK(a.loss == doctest::Approx(b.loss).epsilon(0.02));
    // every row is quantized: no row of the ragged last chunk is left at zero
    for (size_t r = rows - 22; r < rows; ++r) {
      double s = 0;
      for (size_t k = 0; k < cols; ++k) s += std::fabs(a.deq[r * cols + k]);
      CHECK(s > 0);
    }
  }
}

TEST_CASE("hqq fast path agrees with the scalar formulation where the shrinkage vanishes") {
  // Weights of LLM scale (0.02): almost every residual is below the shrinkage threshold, so the fast
  // path skips the power for most lanes; a huge beta puts the threshold near the 1e-8 guard of the power.
  const size_t rows = 32, cols = 256;
  auto w = normal(31, rows * cols, 0.02f);
  for (double beta : {10.0, 1e12}) {
    CAPTURE(beta);
    HqqOptions o;
    o.beta = beta;
    HqqResult a = hqq(w.data(), rows, cols, 4, 64, o);
    HqqResult b = hqq_reference(w.data(), rows, cols, 4, 64, o);
    CHECK(a.iterations == b.iterations);
    CHECK(a.error == doctest::Approx(b.error).epsilon(1e-4));
    size_t same = 0;
    for (size_t i = 0; i < a.codes.size(); ++i) same += a.codes[i] == b.codes[i];
    CHECK(static_cast<double>(same) / static_cast<double>(a.codes.size()) > 0.995);
    for (size_t k = 0; k < a.zero.size(); ++k) CHECK(a.zero[k] == doctest::Approx(b.zero[k]).epsilon(1e-3));
  }
}

TEST_CASE("gptq column snapping through snap_many equals snapping element by element") {
  const size_t rows = 70, cols = 256;
  auto w = normal(41, rows * cols);
  auto g = correlated_gram(42, 400, cols);
  for (const char* scheme : {"int4-g64", "q4_k", "nf4"}) {
    CAPTURE(scheme);
    BlockCodec fast = scheme_codec(scheme, cols);
    BlockCodec slow = fast;
    slow.snap_many = nullptr;
    GptqResult a = gptq(fast, w.data(), rows, cols, g.data(), 400);
    GptqResult b = gptq(slow, w.data(), rows, cols, g.data(), 400);
    CHECK(a.q == b.q);
    CHECK(a.loss == b.loss);
  }
}
