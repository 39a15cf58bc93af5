// Distillation kernels (distill.hpp) against closed forms, their definitions and finite differences.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "tersor/distill.hpp"
#include "tersor/error.hpp"
#include "tersor/parallel.hpp"
#include "tersor/rng.hpp"

using namespace tersor;
using namespace tersor::distill;

namespace {

template <class F>
ErrorCode distill_code_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code();
  }
  FAIL("no tersor::Error thrown");
  return ErrorCode::Native;
}

template <class Real>
std::vector<Real> randn_d(size_t n, uint64_t seed, double sd) {
  Rng r(seed);
  std::vector<Real> v(n);
  for (auto& x : v) x = static_cast<Real>(sd * r.next_normal());
  return v;
}

LossOptions opts(Loss l, double T = 1, double beta = 0.5) {
  LossOptions o;
  o.loss = l;
  o.temperature = T;
  o.beta = beta;
  return o;
}

double loss2(Loss l, double beta = 0.5) {
  // student [0.1, 0.9], teacher [0.9, 0.1] given as logits log p
  const double s[2] = {std::log(0.1), std::log(0.9)};
  const double t[2] = {std::log(0.9), std::log(0.1)};
  Teacher<double> te;
  te.kind = TeacherKind::Dense;
  te.logits = t;
  return kd_loss<double>(s, 1, 2, te, nullptr, opts(l, 1, beta), nullptr).loss;
}

/// Central finite differences of the summed loss vs the analytic gradient, in double.
void check_gradient(const Teacher<double>& te, const std::vector<double>& z, size_t rows, size_t V, const int32_t* labels,
                    LossOptions o) {
  std::vector<double> g(z.size());
  o.scale = 1;
  kd_loss<double>(z.data(), rows, V, te, labels, o, g.data());
  std::vector<double> zz = z;
  const double h = 1e-5;
  double worst = 0;
  for (size_t i = 0; i < z.size(); ++i) {
    zz[i] = z[i] + h;
    const double up = kd_loss<double>(zz.data(), rows, V, te, labels, o, nullptr).loss;
    zz[i] = z[i] - h;
    const double dn = kd_loss<double>(zz.data(), rows, V, te, labels, o, nullptr).loss;
    zz[i] = z[i];
    worst = std::max(worst, std::fabs((up - dn) / (2 * h) - g[i]));
  }
  INFO("loss " << std::string(loss_name(o.loss)) << " T " << o.temperature << " beta " << o.beta);
  CHECK(worst < 1e-7);
}

}  // namespace

TEST_CASE("distill: closed forms on two-token distributions") {
  const double ln9 = std::log(9.0);
  CHECK(loss2(Loss::ForwardKL) == doctest::Approx(0.8 * ln9).epsilon(1e-12));
  CHECK(loss2(Loss::ForwardKL) == doctest::Approx(1.757780).epsilon(1e-6));
  CHECK(loss2(Loss::ReverseKL) == doctest::Approx(1.757780).epsilon(1e-6));
  CHECK(loss2(Loss::GJSD, 0.5) == doctest::Approx(0.368064).epsilon(1e-6));
  CHECK(loss2(Loss::GJSD, 0.0) == doctest::Approx(0.8 * ln9).epsilon(1e-12));
  CHECK(loss2(Loss::GJSD, 1.0) == doctest::Approx(0.8 * ln9).epsilon(1e-12));
  CHECK(loss2(Loss::TotalVariation) == doctest::Approx(0.8).epsilon(1e-12));
  CHECK(loss2(Loss::TTM) == doctest::Approx(0.8 * ln9).epsilon(1e-12));
  // WTTM at T = 1: U = Σ p = 1.
  CHECK(loss2(Loss::WTTM) == doctest::Approx(0.8 * ln9).epsilon(1e-12));
}

TEST_CASE("distill: identical student and teacher give zero loss and zero gradient") {
  const size_t V = 37, rows = 3;
  auto z = randn_d<double>(rows * V, 11, 2.0);
  Teacher<double> te;
  te.kind = TeacherKind::Dense;
  te.logits = z.data();
  for (Loss l : {Loss::ForwardKL, Loss::ReverseKL, Loss::GJSD, Loss::TotalVariation}) {
    std::vector<double> g(z.size());
    const auto r = kd_loss<double>(z.data(), rows, V, te, nullptr, opts(l, 1.7, 0.3), g.data());
    CHECK(std::fabs(r.loss) < 1e-12);
    double gmax = 0;
    for (double v : g) gmax = std::max(gmax, std::fabs(v));
    CHECK(gmax < 1e-12);
  }
}

TEST_CASE("distill: WTTM weight is the power sum of teacher probabilities and TTM keeps the student at temperature 1") {
  const size_t V = 5;
  const double t[V] = {2.0, 0.5, -1.0, 0.0, 1.0};
  const double z[V] = {0.3, -0.2, 0.1, 0.9, -1.0};
  Teacher<double> te;
  te.kind = TeacherKind::Dense;
  te.logits = t;
  const double T = 2.0;
  // reference by definition
  double zt = 0, z1 = 0, zs = 0;
  for (size_t j = 0; j < V; ++j) {
    zt += std::exp(t[j] / T);
    z1 += std::exp(t[j]);
    zs += std::exp(z[j]);
  }
  double kl = 0, u = 0;
  for (size_t j = 0; j < V; ++j) {
    const double pg = std::exp(t[j] / T) / zt, q = std::exp(z[j]) / zs;
    kl += pg * std::log(pg / q);
    u += std::pow(std::exp(t[j]) / z1, 1.0 / T);
  }
  CHECK(kd_loss<double>(z, 1, V, te, nullptr, opts(Loss::TTM, T), nullptr).loss == doctest::Approx(kl).epsilon(1e-12));
  CHECK(kd_loss<double>(z, 1, V, te, nullptr, opts(Loss::WTTM, T), nullptr).loss == doctest::Approx(u * kl).epsilon(1e-12));
}

TEST_CASE("distill: MixCE at eta 1 is cross-entropy and its weight follows the detached probability") {
  const size_t V = 6, rows = 4;
  auto z = randn_d<double>(rows * V, 3, 1.5);
  const int32_t y[rows] = {0, 5, 2, -1};
  Teacher<double> none;
  LossOptions m = opts(Loss::MixCE);
  m.eta = 1;
  const auto ce = kd_loss<double>(z.data(), rows, V, none, y, opts(Loss::CE), nullptr);
  const auto mx = kd_loss<double>(z.data(), rows, V, none, y, m, nullptr);
  CHECK(ce.count == 3);
  CHECK(mx.loss == doctest::Approx(ce.loss).epsilon(1e-14));
  m.eta = 0.25;
  double ref = 0;
  for (size_t r = 0; r < 3; ++r) {
    double zs = 0;
    for (size_t j = 0; j < V; ++j) zs += std::exp(z[r * V + j]);
    const double q = std::exp(z[r * V + y[r]]) / zs;
    ref += -(0.25 + 0.75 * q) * std::log(q);
  }
  CHECK(kd_loss<double>(z.data(), rows, V, none, y, m, nullptr).loss == doctest::Approx(ref).epsilon(1e-12));
}

TEST_CASE("distill: gradients of every loss match central finite differences") {
  const size_t V = 9, rows = 3;
  auto z = randn_d<double>(rows * V, 21, 1.3);
  auto t = randn_d<double>(rows * V, 22, 1.8);
  const int32_t y[rows] = {4, 0, 8};
  Teacher<double> dense;
  dense.kind = TeacherKind::Dense;
  dense.logits = t.data();
  for (double T : {1.0, 2.5}) {
    for (Loss l : {Loss::ForwardKL, Loss::ReverseKL, Loss::TotalVariation, Loss::TTM, Loss::WTTM})
      check_gradient(dense, z, rows, V, nullptr, opts(l, T));
    for (double beta : {0.0, 0.3, 0.5, 1.0}) check_gradient(dense, z, rows, V, nullptr, opts(Loss::GJSD, T, beta));
    LossOptions mix = opts(Loss::GJSD, T, 0.5);
    mix.kd_weight = 0.6;
    mix.ce_weight = 0.4;
    check_gradient(dense, z, rows, V, y, mix);
  }
  Teacher<double> none;
  check_gradient(none, z, rows, V, y, opts(Loss::CE));
  // MixCE's gradient is that of its surrogate with q_y detached: (η + (1 − η) q_y)·∂CE/∂z.
  LossOptions m = opts(Loss::MixCE);
  m.eta = 0.3;
  std::vector<double> gm(z.size()), gc(z.size());
  kd_loss<double>(z.data(), rows, V, none, y, m, gm.data());
  kd_loss<double>(z.data(), rows, V, none, y, opts(Loss::CE), gc.data());
  for (size_t r = 0; r < rows; ++r) {
    double zs = 0;
    for (size_t j = 0; j < V; ++j) zs += std::exp(z[r * V + j]);
    const double w = 0.3 + 0.7 * std::exp(z[r * V + y[r]]) / zs;
    for (size_t j = 0; j < V; ++j) CHECK(gm[r * V + j] == doctest::Approx(w * gc[r * V + j]).epsilon(1e-12));
  }
  // Sparse teachers: top-3 log-probs with each tail, and importance weights.
  const size_t k = 3;
  std::vector<int32_t> ids = {1, 4, 7, 0, 2, -1, 8, 3, 5};
  std::vector<double> lps = {-0.7, -1.5, -2.5, -0.2, -2.0, 0.0, -1.1, -1.2, -3.0};
  std::vector<double> w = {0.5, 0.25, 0.25, 0.75, 0.25, 0.0, 1.0, 0.0, 0.0};
  Teacher<double> topk;
  topk.kind = TeacherKind::SparseLogProb;
  topk.ids = ids.data();
  topk.values = lps.data();
  topk.k = k;
  for (Tail tail : {Tail::Zero, Tail::Uniform}) {
    topk.tail = tail;
    for (Loss l : {Loss::ForwardKL, Loss::TotalVariation, Loss::WTTM}) check_gradient(topk, z, rows, V, nullptr, opts(l, 1.5));
    check_gradient(topk, z, rows, V, nullptr, opts(Loss::GJSD, 1.5, 0.4));
  }
  check_gradient(topk, z, rows, V, nullptr, opts(Loss::ReverseKL, 1.5));
  Teacher<double> rs;
  rs.kind = TeacherKind::SparseWeight;
  rs.ids = ids.data();
  rs.values = w.data();
  rs.k = k;
  check_gradient(rs, z, rows, V, nullptr, opts(Loss::ForwardKL, 2.0));
  check_gradient(rs, z, rows, V, nullptr, opts(Loss::GJSD, 1.0, 0.0));
}

TEST_CASE("distill: sparse teachers rebuild the dense distribution they describe") {
  const size_t V = 8;
  auto t = randn_d<double>(V, 5, 2.0);
  auto z = randn_d<double>(V, 6, 1.0);
  // Full top-V equals the dense teacher.
  std::vector<float> tf(t.begin(), t.end());
  std::vector<int32_t> ids(V);
  std::vector<float> lpf(V), tail(1);
  topk_logprobs(tf.data(), 1, V, V, 1.0, ids.data(), lpf.data(), tail.data());
  std::vector<double> lp(lpf.begin(), lpf.end());
  Teacher<double> dense;
  dense.kind = TeacherKind::Dense;
  dense.logits = t.data();
  Teacher<double> sp;
  sp.kind = TeacherKind::SparseLogProb;
  sp.ids = ids.data();
  sp.values = lp.data();
  sp.k = V;
  sp.tail = Tail::Uniform;  // nothing is left out: full support, so reverse KL is defined
  for (Loss l : {Loss::ForwardKL, Loss::ReverseKL, Loss::WTTM}) {
    const double a = kd_loss<double>(z.data(), 1, V, dense, nullptr, opts(l, 1.3), nullptr).loss;
    const double b = kd_loss<double>(z.data(), 1, V, sp, nullptr, opts(l, 1.3), nullptr).loss;
    CHECK(b == doctest::Approx(a).epsilon(1e-6));
  }
  // Top-3 with a uniform tail: forward KL by its definition.
  topk_logprobs(tf.data(), 1, V, 3, 1.0, ids.data(), lpf.data(), tail.data());
  double zt = 0;
  for (double v : t) zt += std::exp(v);
  double kept = 0;
  for (size_t i = 0; i < 3; ++i) {
    CHECK(lpf[i] == doctest::Approx(t[ids[i]] - std::log(zt)).epsilon(1e-6));
    if (i > 0) CHECK(lpf[i] <= lpf[i - 1]);
    kept += std::exp(static_cast<double>(lpf[i]));
  }
  CHECK(std::exp(static_cast<double>(tail[0])) == doctest::Approx(1 - kept).epsilon(1e-5));
  std::vector<double> lp3(lpf.begin(), lpf.begin() + 3), tl = {static_cast<double>(tail[0])};
  sp.values = lp3.data();
  sp.k = 3;
  sp.tail = Tail::Uniform;
  sp.tail_log_mass = tl.data();
  double zs = 0;
  for (double v : z) zs += std::exp(v);
  std::vector<double> p(V, (1 - kept) / (V - 3));
  for (size_t i = 0; i < 3; ++i) p[ids[i]] = std::exp(lp3[i]);
  double fkl = 0;
  for (size_t j = 0; j < V; ++j) fkl += p[j] * std::log(p[j] / (std::exp(z[j]) / zs));
  CHECK(kd_loss<double>(z.data(), 1, V, sp, nullptr, opts(Loss::ForwardKL), nullptr).loss == doctest::Approx(fkl).epsilon(1e-5));
}

TEST_CASE("distill: float kernel on a 32k vocabulary agrees with double and with any thread count") {
  const size_t V = 32000, rows = 6;
  auto zd = randn_d<double>(rows * V, 31, 3.0);
  auto td = randn_d<double>(rows * V, 32, 3.0);
  std::vector<float> zf(zd.begin(), zd.end()), tf(td.begin(), td.end());
  std::vector<double> zd2(zf.begin(), zf.end()), td2(tf.begin(), tf.end());
  Teacher<float> tef;
  tef.kind = TeacherKind::Dense;
  tef.logits = tf.data();
  Teacher<double> ted;
  ted.kind = TeacherKind::Dense;
  ted.logits = td2.data();
  for (Loss l : {Loss::ForwardKL, Loss::ReverseKL, Loss::GJSD, Loss::WTTM}) {
    std::vector<float> gf(zf.size()), gf1(zf.size());
    std::vector<double> gd(zf.size());
    const double a = kd_loss<float>(zf.data(), rows, V, tef, nullptr, opts(l, 2.0), gf.data()).loss;
    const double b = kd_loss<double>(zd2.data(), rows, V, ted, nullptr, opts(l, 2.0), gd.data()).loss;
    CHECK(a == doctest::Approx(b).epsilon(1e-4));
    double gerr = 0;
    for (size_t i = 0; i < gf.size(); ++i) gerr = std::max(gerr, std::fabs(gf[i] - gd[i]));
    CHECK(gerr < 1e-5);
    const int saved = num_threads();
    set_num_threads(1);
    const double c = kd_loss<float>(zf.data(), rows, V, tef, nullptr, opts(l, 2.0), gf1.data()).loss;
    set_num_threads(saved);
    CHECK(c == a);
    CHECK(gf1 == gf);
  }
}

TEST_CASE("distill: random-sampling weights are unbiased and top-k is biased on a long-tailed teacher") {
  // A Zipf-like teacher over 200 ids: p_j ∝ 1/(j+1).
  const size_t V = 200, K = 12, draws = 20000;
  std::vector<float> logits(V);
  for (size_t j = 0; j < V; ++j) logits[j] = static_cast<float>(-std::log(static_cast<double>(j + 1)));
  double z = 0;
  for (size_t j = 0; j < V; ++j) z += std::exp(static_cast<double>(logits[j]));
  std::vector<int32_t> ids(draws * K);
  std::vector<float> w(draws * K);
  // draws rows of the same teacher = independent draws (each row has its own seed).
  std::vector<float> rep(draws * V);
  for (size_t r = 0; r < draws; ++r) std::copy(logits.begin(), logits.end(), rep.begin() + static_cast<std::ptrdiff_t>(r * V));
  for (double tau : {1.0, 2.0}) {
    sample_weights(rep.data(), draws, V, K, 1.0, tau, 7, 0, ids.data(), w.data());
    std::vector<double> mean(V, 0.0), sq(V, 0.0);
    for (size_t r = 0; r < draws; ++r) {
      std::vector<double> row(V, 0.0);
      for (size_t i = 0; i < K; ++i)
        if (ids[r * K + i] >= 0) row[ids[r * K + i]] += w[r * K + i];
      for (size_t j = 0; j < V; ++j) {
        mean[j] += row[j];
        sq[j] += row[j] * row[j];
      }
    }
    // z-scores of the per-id means against the true p: all within 5 standard errors.
    double worst = 0;
    for (size_t j = 0; j < V; ++j) {
      const double p = std::exp(static_cast<double>(logits[j])) / z;
      const double m = mean[j] / draws;
      const double var = sq[j] / draws - m * m;
      const double se = std::sqrt(std::max(var, 1e-300) / draws);
      worst = std::max(worst, std::fabs(m - p) / se);
    }
    INFO("proposal temperature " << tau);
    CHECK(worst < 5.0);
  }
  // Top-12 renormalised (zero tail) over-weights the head: the bias on the top id is far beyond noise.
  std::vector<int32_t> tid(K);
  std::vector<float> tlp(K), tail(1);
  topk_logprobs(logits.data(), 1, V, K, 1.0, tid.data(), tlp.data(), tail.data());
  double kept = 0;
  for (float v : tlp) kept += std::exp(static_cast<double>(v));
  const double p0 = 1.0 / z;
  CHECK(tid[0] == 0);
  CHECK((p0 / kept - p0) > 0.1);  // renormalised head probability vs the true one
  CHECK(std::exp(static_cast<double>(tail[0])) > 0.3);  // mass the top-k drops
}

TEST_CASE("distill: bad input is rejected with codes") {
  const size_t V = 4;
  double z[V] = {0, 1, 2, 3}, t[V] = {1, 1, 1, 1};
  Teacher<double> dense;
  dense.kind = TeacherKind::Dense;
  dense.logits = t;
  CHECK(distill_code_of([&] { kd_loss<double>(z, 1, V, dense, nullptr, opts(Loss::ForwardKL, 0.0), nullptr); }) == ErrorCode::Range);
  CHECK(distill_code_of([&] { kd_loss<double>(z, 1, V, dense, nullptr, opts(Loss::ForwardKL, -1.0), nullptr); }) == ErrorCode::Range);
  CHECK(distill_code_of([&] { kd_loss<double>(z, 1, V, dense, nullptr, opts(Loss::GJSD, 1.0, 1.5), nullptr); }) == ErrorCode::Range);
  CHECK(distill_code_of([&] { kd_loss<double>(z, 1, V, dense, nullptr, opts(Loss::CE), nullptr); }) == ErrorCode::Shape);
  Teacher<double> none;
  CHECK(distill_code_of([&] { kd_loss<double>(z, 1, V, none, nullptr, opts(Loss::ForwardKL), nullptr); }) == ErrorCode::Shape);
  int32_t ids[2] = {1, 9};
  double lp[2] = {-0.5, -1.0};
  Teacher<double> sp;
  sp.kind = TeacherKind::SparseLogProb;
  sp.ids = ids;
  sp.values = lp;
  sp.k = 2;
  CHECK(distill_code_of([&] { kd_loss<double>(z, 1, V, sp, nullptr, opts(Loss::ForwardKL), nullptr); }) == ErrorCode::Range);
  ids[1] = 1;  // duplicate
  CHECK(distill_code_of([&] { kd_loss<double>(z, 1, V, sp, nullptr, opts(Loss::ForwardKL), nullptr); }) == ErrorCode::Range);
  ids[1] = 2;
  CHECK(distill_code_of([&] { kd_loss<double>(z, 1, V, sp, nullptr, opts(Loss::ReverseKL), nullptr); }) == ErrorCode::Range);
  sp.kind = TeacherKind::SparseWeight;
  lp[0] = 0.5;
  lp[1] = 0.5;
  CHECK(distill_code_of([&] { kd_loss<double>(z, 1, V, sp, nullptr, opts(Loss::ReverseKL), nullptr); }) == ErrorCode::Range);
  int32_t bad_label[1] = {V};
  CHECK(distill_code_of([&] { kd_loss<double>(z, 1, V, none, bad_label, opts(Loss::CE), nullptr); }) == ErrorCode::Range);
  float lf[V] = {0, 1, 2, 3};
  int32_t oid[2];
  float olp[2];
  CHECK(distill_code_of([&] { topk_logprobs(lf, 1, V, 2, 0.0, oid, olp, nullptr); }) == ErrorCode::Range);
  CHECK(distill_code_of([&] { topk_logprobs(lf, 1, V, 5, 1.0, oid, olp, nullptr); }) == ErrorCode::Range);
  CHECK(distill_code_of([&] { sample_weights(lf, 1, V, 2, -2.0, 1.0, 1, 0, oid, olp); }) == ErrorCode::Range);
}
