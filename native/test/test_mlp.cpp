#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "tersor/error.hpp"
#include "tersor/mlp.hpp"
#include "tersor/neural_mi.hpp"
#include "tersor/rng.hpp"

using namespace tersor;

namespace {

double act_f64(Activation a, double z) {
  switch (a) {
    case Activation::Identity: return z;
    case Activation::ReLU: return z > 0 ? z : 0;
    case Activation::ELU: return z > 0 ? z : std::expm1(z);
    case Activation::Tanh: return std::tanh(z);
  }
  return z;
}

/// An independent f64 forward pass of the documented layout.
std::vector<double> forward_f64(const MlpShape& s, const std::vector<double>& p, const std::vector<double>& x, size_t rows) {
  std::vector<double> a = x;
  for (size_t l = 0; l < s.layers(); ++l) {
    const size_t in = s.sizes[l], out = s.sizes[l + 1];
    const double* W = p.data() + s.weight_offset(l);
    const double* b = p.data() + s.bias_offset(l);
    std::vector<double> z(rows * out);
    for (size_t r = 0; r < rows; ++r)
      for (size_t j = 0; j < out; ++j) {
        double acc = b[j];
        for (size_t i = 0; i < in; ++i) acc += a[r * in + i] * W[i * out + j];
        z[r * out + j] = act_f64(s.activation_of(l), acc);
      }
    a = std::move(z);
  }
  return a;
}

/// Σ w ⊙ MLP(x) in f64: its gradient with respect to the output is w.
double loss_f64(const MlpShape& s, const std::vector<double>& p, const std::vector<double>& x, size_t rows, const std::vector<double>& w) {
  const std::vector<double> y = forward_f64(s, p, x, rows);
  double l = 0;
  for (size_t i = 0; i < y.size(); ++i) l += w[i] * y[i];
  return l;
}

std::vector<float> normals(size_t n, uint64_t seed, double scale = 1.0) {
  Rng r(seed);
  std::vector<float> v(n);
  for (auto& e : v) e = static_cast<float>(scale * r.next_normal());
  return v;
}

void check_gradients(Activation hidden, Activation output) {
  MlpShape s;
  s.sizes = {3, 7, 5, 2};
  s.hidden = hidden;
  s.output = output;
  const size_t rows = 6;
  std::vector<float> p(s.param_count());
  mlp_init_xavier(s, p.data(), 11);
  // Non-zero biases, so every term of the gradient is exercised.
  for (size_t l = 0; l < s.layers(); ++l)
    for (size_t j = 0; j < s.sizes[l + 1]; ++j) p[s.bias_offset(l) + j] = 0.1f * static_cast<float>(j % 3) - 0.1f;
  const std::vector<float> x = normals(rows * 3, 12);
  const std::vector<float> w = normals(rows * 2, 13);

  MlpTape tape;
  std::vector<float> out(rows * 2);
  mlp_forward(s, p.data(), x.data(), rows, out.data(), &tape);
  std::vector<float> gp(p.size()), gx(x.size());
  mlp_backward(s, p.data(), x.data(), tape, w.data(), gp.data(), gx.data());

  const std::vector<double> pd(p.begin(), p.end()), xd(x.begin(), x.end()), wd(w.begin(), w.end());
  // The f32 forward agrees with the f64 reference.
  const std::vector<double> ref = forward_f64(s, pd, xd, rows);
  for (size_t i = 0; i < out.size(); ++i) CHECK(out[i] == doctest::Approx(ref[i]).epsilon(1e-5));

  const double h = 1e-6;
  double worst = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    std::vector<double> a = pd, b = pd;
    a[i] += h;
    b[i] -= h;
    const double fd = (loss_f64(s, a, xd, rows, wd) - loss_f64(s, b, xd, rows, wd)) / (2 * h);
    const double err = std::abs(fd - gp[i]) / (1.0 + std::abs(fd));
    worst = std::max(worst, err);
  }
  for (size_t i = 0; i < x.size(); ++i) {
    std::vector<double> a = xd, b = xd;
    a[i] += h;
    b[i] -= h;
    const double fd = (loss_f64(s, pd, a, rows, wd) - loss_f64(s, pd, b, rows, wd)) / (2 * h);
    worst = std::max(worst, std::abs(fd - gx[i]) / (1.0 + std::abs(fd)));
  }
  INFO("activation " << activation_name(hidden) << " / " << activation_name(output));
  CHECK(worst < 1e-4);
}

/// Central differences of a scalar function of a float vector (evaluated in f64 by the bound code).
template <class F>
std::vector<double> numeric_grad(std::vector<float> v, F f, double h = 1e-3) {
  std::vector<double> g(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    const float keep = v[i];
    v[i] = static_cast<float>(keep + h);
    const double hi = f(v);
    const double step_hi = static_cast<double>(v[i]) - keep;
    v[i] = static_cast<float>(keep - h);
    const double lo = f(v);
    const double step_lo = keep - static_cast<double>(v[i]);
    v[i] = keep;
    g[i] = (hi - lo) / (step_hi + step_lo);
  }
  return g;
}

}  // namespace

TEST_CASE("mlp: backward matches f64 finite differences (relu, elu, tanh; identity and tanh outputs)") {
  check_gradients(Activation::ReLU, Activation::Identity);
  check_gradients(Activation::ELU, Activation::Identity);
  check_gradients(Activation::Tanh, Activation::Tanh);
  check_gradients(Activation::ELU, Activation::ReLU);
}

TEST_CASE("mlp: gradients accumulate across backward calls and batch rows") {
  MlpShape s;
  s.sizes = {2, 4, 1};
  Mlp m(s, 3);
  const std::vector<float> x = normals(8, 4), g1(4, 1.0f);
  m.forward(x.data(), 4);
  m.backward(x.data(), g1.data());
  const std::vector<float> once = m.grad();
  m.backward(x.data(), g1.data(), true);
  for (size_t i = 0; i < once.size(); ++i) CHECK(m.grad()[i] == doctest::Approx(2 * once[i]));
  // The gradient of a batch is the sum of the per-row gradients.
  std::vector<float> sum(once.size(), 0.0f);
  for (size_t r = 0; r < 4; ++r) {
    m.forward(x.data() + 2 * r, 1);
    m.backward(x.data() + 2 * r, g1.data());
    for (size_t i = 0; i < sum.size(); ++i) sum[i] += m.grad()[i];
  }
  for (size_t i = 0; i < once.size(); ++i) CHECK(sum[i] == doctest::Approx(once[i]).epsilon(1e-5));
}

TEST_CASE("mlp: Xavier init is seeded, bounded by sqrt(6 / (in + out)), with zero biases") {
  MlpShape s;
  s.sizes = {10, 30, 1};
  std::vector<float> a(s.param_count()), b(s.param_count()), c(s.param_count());
  mlp_init_xavier(s, a.data(), 5);
  mlp_init_xavier(s, b.data(), 5);
  mlp_init_xavier(s, c.data(), 6);
  CHECK(a == b);
  CHECK(a != c);
  CHECK(s.param_count() == 10 * 30 + 30 + 30 + 1);
  const double lim0 = std::sqrt(6.0 / 40), lim1 = std::sqrt(6.0 / 31);
  double mx0 = 0, ss = 0;
  for (size_t i = 0; i < 300; ++i) {
    mx0 = std::max(mx0, std::abs(static_cast<double>(a[i])));
    ss += a[i] * a[i];
  }
  CHECK(mx0 <= lim0);
  CHECK(mx0 > 0.9 * lim0);
  CHECK(std::sqrt(ss / 300) == doctest::Approx(lim0 / std::sqrt(3.0)).epsilon(0.1));  // uniform's sd = a / sqrt 3
  for (size_t j = 0; j < 30; ++j) CHECK(a[s.bias_offset(0) + j] == 0.0f);
  for (size_t i = 0; i < 30; ++i) CHECK(std::abs(a[s.weight_offset(1) + i]) <= lim1);
  CHECK(a[s.bias_offset(1)] == 0.0f);
  // First weight: (2 u - 1) a with u the first next_f64 of Rng(5).
  Rng r(5);
  CHECK(a[0] == static_cast<float>((2 * r.next_f64() - 1) * lim0));
}

TEST_CASE("mlp: Adam steps match a hand computation with bias correction") {
  AdamOptions o;
  o.lr = 0.1;
  o.beta1 = 0.9;
  o.beta2 = 0.999;
  o.eps = 1e-8;
  Adam adam(2, o);
  std::vector<float> p = {1.0f, -2.0f};
  const std::vector<float> g1 = {0.5f, -3.0f}, g2 = {-1.0f, 1.0f};
  adam.step(p.data(), g1.data());
  // Step 1: m^ = g, v^ = g^2, so the update is lr * g / (|g| + eps) = lr * sign(g).
  CHECK(p[0] == doctest::Approx(1.0 - 0.1 * 0.5 / (0.5 + 1e-8)).epsilon(1e-7));
  CHECK(p[1] == doctest::Approx(-2.0 + 0.1 * 3.0 / (3.0 + 1e-8)).epsilon(1e-7));
  const double p0 = p[0], p1 = p[1];
  adam.step(p.data(), g2.data());
  auto second = [](double p, double ga, double gb) {
    const double m = 0.9 * (0.1 * ga) + 0.1 * gb;
    const double v = 0.999 * (0.001 * ga * ga) + 0.001 * gb * gb;
    const double mh = m / (1 - 0.81), vh = v / (1 - 0.999 * 0.999);
    return p - 0.1 * mh / (std::sqrt(vh) + 1e-8);
  };
  CHECK(p[0] == doctest::Approx(second(p0, 0.5, -1.0)).epsilon(1e-6));
  CHECK(p[1] == doctest::Approx(second(p1, -3.0, 1.0)).epsilon(1e-6));
  CHECK(adam.steps() == 2);

  // Decoupled weight decay adds lr * wd * p.
  AdamOptions w = o;
  w.weight_decay = 0.5;
  std::vector<float> q = {2.0f}, m(1, 0.0f), v(1, 0.0f);
  const float gq = 1.0f;
  adam_step(1, q.data(), &gq, m.data(), v.data(), 1, w);
  CHECK(q[0] == doctest::Approx(2.0 - 0.1 * (1.0 / (1.0 + 1e-8) + 0.5 * 2.0)).epsilon(1e-7));

  AdamOptions bad = o;
  bad.lr = 0;
  CHECK_THROWS_AS(Adam(1, bad), tersor::Error);
  bad = o;
  bad.beta1 = 1.0;
  CHECK_THROWS_AS(bad.validate(), tersor::Error);
}

TEST_CASE("mlp: invalid shapes and activations are refused") {
  MlpShape s;
  s.sizes = {3};
  CHECK_THROWS_AS(s.validate(), tersor::Error);
  s.sizes = {3, 0, 1};
  CHECK_THROWS_AS(s.validate(), tersor::Error);
  CHECK(parse_activation("elu") == Activation::ELU);
  CHECK_THROWS_AS(parse_activation("gelu"), tersor::Error);
}

TEST_CASE("neural mi: score gradients of InfoNCE, NWJ, MINE and SMILE's JS objective match finite differences") {
  const size_t n = 5;
  const std::vector<float> S = normals(n * n, 21, 1.5);
  {
    std::vector<float> g(n * n);
    infonce_bound(S.data(), n, g.data());
    const auto fd = numeric_grad(S, [&](const std::vector<float>& v) { return infonce_bound(v.data(), n, nullptr); });
    for (size_t i = 0; i < S.size(); ++i) CHECK(g[i] == doctest::Approx(fd[i]).epsilon(1e-3).scale(1e-3));
  }
  {
    std::vector<float> g(n * n);
    smile_bound(S.data(), n, 5.0, g.data());
    const auto fd = numeric_grad(S, [&](const std::vector<float>& v) { return js_objective(v.data(), n); });
    for (size_t i = 0; i < S.size(); ++i) CHECK(g[i] == doctest::Approx(fd[i]).epsilon(1e-3).scale(1e-3));
  }
  const std::vector<float> t = normals(n, 22), m = normals(7, 23);
  {
    std::vector<float> gt(n), gm(7);
    nwj_bound(t.data(), n, m.data(), 7, gt.data(), gm.data());
    const auto ft = numeric_grad(t, [&](const std::vector<float>& v) { return nwj_bound(v.data(), n, m.data(), 7, nullptr, nullptr); });
    const auto fm = numeric_grad(m, [&](const std::vector<float>& v) { return nwj_bound(t.data(), n, v.data(), 7, nullptr, nullptr); });
    for (size_t i = 0; i < n; ++i) CHECK(gt[i] == doctest::Approx(ft[i]).epsilon(1e-3).scale(1e-3));
    for (size_t i = 0; i < 7; ++i) CHECK(gm[i] == doctest::Approx(fm[i]).epsilon(1e-3).scale(1e-3));
  }
  {
    // With the moving average equal to the batch mean (rate 1), MINE's gradient is DV's gradient.
    std::vector<float> gt(n), gm(7);
    double ma = -1;
    const double v = mine_bound(t.data(), n, m.data(), 7, 1.0, ma, gt.data(), gm.data());
    CHECK(v == doctest::Approx(dv_bound(t.data(), n, m.data(), 7)));
    const auto fm = numeric_grad(m, [&](const std::vector<float>& w) { return dv_bound(t.data(), n, w.data(), 7); });
    for (size_t i = 0; i < 7; ++i) CHECK(gm[i] == doctest::Approx(fm[i]).epsilon(1e-3).scale(1e-3));
    double mean_e = 0;
    for (float e : m) mean_e += std::exp(static_cast<double>(e));
    CHECK(ma == doctest::Approx(mean_e / 7));
    // A moving average twice as large halves the marginal gradient (the bias correction).
    double ma2 = 2 * mean_e / 7;
    std::vector<float> gm2(7);
    mine_bound(t.data(), n, m.data(), 7, 1e-9, ma2, nullptr, gm2.data());
    for (size_t i = 0; i < 7; ++i) CHECK(gm2[i] == doctest::Approx(gm[i] / 2).epsilon(1e-5));
  }
}

TEST_CASE("neural mi: bound values by hand; InfoNCE never exceeds log n") {
  // InfoNCE with a dominant diagonal approaches log n from below.
  const size_t n = 4;
  std::vector<float> S(n * n, 0.0f);
  for (size_t i = 0; i < n; ++i) S[i * n + i] = 30.0f;
  CHECK(infonce_bound(S.data(), n, nullptr) == doctest::Approx(std::log(4.0)).epsilon(1e-9));
  CHECK(infonce_bound(S.data(), n, nullptr) <= std::log(4.0));
  // All-equal scores: InfoNCE = 0, DV = 0, clipped DV = 0.
  const std::vector<float> Z(n * n, 0.7f);
  CHECK(infonce_bound(Z.data(), n, nullptr) == doctest::Approx(0.0).scale(1));
  CHECK(smile_bound(Z.data(), n, 5.0, nullptr) == doctest::Approx(0.0).scale(1));
  for (uint64_t seed = 1; seed < 20; ++seed) {
    const std::vector<float> R = normals(6 * 6, seed, 4.0);
    CHECK(infonce_bound(R.data(), 6, nullptr) <= std::log(6.0) + 1e-12);
  }
  // SMILE clips the marginal scores: off-diagonal 10 clipped to 1 -> diag mean - 1.
  std::vector<float> C(n * n, 10.0f);
  for (size_t i = 0; i < n; ++i) C[i * n + i] = 2.0f;
  CHECK(smile_bound(C.data(), n, 1.0, nullptr) == doctest::Approx(2.0 - 1.0));
  // DV and NWJ by hand.
  const float t[2] = {1.0f, 3.0f}, m[2] = {0.0f, std::log(3.0f)};
  CHECK(dv_bound(t, 2, m, 2) == doctest::Approx(2.0 - std::log(2.0)));
  CHECK(nwj_bound(t, 2, m, 2, nullptr, nullptr) == doctest::Approx(2.0 - (std::exp(-1.0) + 3 * std::exp(-1.0)) / 2).epsilon(1e-6));
}

TEST_CASE("neural mi: a separable SMILE critic finds the MI of a correlated Gaussian; independence gives about 0") {
  const size_t n = 2000;
  Rng r(7);
  std::vector<float> x(n), y(n), yi(n);
  const double rho = 0.8;
  for (size_t i = 0; i < n; ++i) {
    const double a = r.next_normal(), b = r.next_normal();
    x[i] = static_cast<float>(a);
    y[i] = static_cast<float>(rho * a + std::sqrt(1 - rho * rho) * b);
    yi[i] = static_cast<float>(r.next_normal());
  }
  NeuralMiOptions o;
  o.bound = MiBound::SMILE;
  o.critic = CriticKind::Separable;
  o.hidden = {32};
  o.embed_dim = 16;
  o.steps = 300;
  o.batch_size = 64;
  o.lr = 2e-3;
  o.seed = 3;
  const NeuralMiResult dep = neural_mi(x.data(), y.data(), n, 1, 1, o);
  const double truth = -0.5 * std::log(1 - rho * rho);  // 0.5108
  CHECK(dep.estimate == doctest::Approx(truth).epsilon(0.2));
  CHECK(dep.history.size() == 300);
  CHECK(dep.batch_estimates.size() == n / 64);
  const NeuralMiResult ind = neural_mi(x.data(), yi.data(), n, 1, 1, o);
  CHECK(std::abs(ind.estimate) < 0.08);
  // Same seed, same result.
  const NeuralMiResult again = neural_mi(x.data(), y.data(), n, 1, 1, o);
  CHECK(again.estimate == dep.estimate);
  // Bad input.
  x[5] = std::nanf("");
  CHECK_THROWS_AS(neural_mi(x.data(), y.data(), n, 1, 1, o), tersor::Error);
}
