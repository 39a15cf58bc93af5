// Histogram GBDT (tersor/gbdt.hpp): closed-form single splits, agreement with the exhaustive-split
// reference, determinism under a seed, early stopping, serialisation and bad input.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "tersor/error.hpp"
#include "tersor/gbdt.hpp"
#include "tersor/rng.hpp"

using namespace tersor;
using namespace tersor::gbdt;

namespace {

struct Data {
  std::vector<double> x, y;
  size_t n = 0, d = 0;
};

/// y = sin(3 x0) + x1^2 - x2 x3 + noise, features uniform in [0, 1).
Data smooth(size_t n, size_t d, double noise, uint64_t seed) {
  Data g;
  g.n = n;
  g.d = d;
  g.x.resize(n * d);
  g.y.resize(n);
  Rng r(seed);
  for (auto& v : g.x) v = r.next_f64();
  for (size_t i = 0; i < n; ++i) {
    const double* xi = &g.x[i * d];
    // terms over the features that exist (d may be 2 or 3: reading past the row was undefined)
    double f = std::sin(3 * xi[0]);
    if (d > 1) f += xi[1] * xi[1];
    if (d > 3) f -= xi[2] * xi[3];
    g.y[i] = f + noise * r.next_normal();
  }
  return g;
}

double mse(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += (a[i] - b[i]) * (a[i] - b[i]);
  return s / static_cast<double>(a.size());
}

}  // namespace

TEST_CASE("gbdt one split with lr 1 and no l2 gives the two group means") {
  // y = 2 for x <= 0.5 and 5 above; the mean is the base score and one split is exact.
  std::vector<double> x, y;
  for (int i = 0; i < 10; ++i) {
    x.push_back(i / 10.0);
    y.push_back(i < 6 ? 2.0 : 5.0);
  }
  Options o;
  o.num_rounds = 1;
  o.learning_rate = 1;
  o.lambda_l2 = 0;
  o.num_leaves = 2;
  o.min_child_samples = 1;
  const FitResult r = fit(x.data(), 10, 1, y.data(), o);
  REQUIRE(r.model.trees.size() == 1);
  CHECK(r.model.trees[0].nodes.size() == 3);
  CHECK(r.model.base_score == doctest::Approx(3.2));
  CHECK(r.model.trees[0].nodes[0].threshold == doctest::Approx(0.55));
  for (int i = 0; i < 10; ++i) CHECK(r.model.predict(&x[static_cast<size_t>(i)]) == doctest::Approx(y[static_cast<size_t>(i)]));
}

TEST_CASE("gbdt leaf value follows the l2-regularised Newton step") {
  // Residual sum G over N rows in a leaf gives -lr * G / (N + l2).
  std::vector<double> x{0, 1, 2, 3}, y{0, 0, 4, 4};
  Options o;
  o.num_rounds = 1;
  o.learning_rate = 0.5;
  o.lambda_l2 = 2;
  o.num_leaves = 2;
  o.min_child_samples = 1;
  const FitResult r = fit(x.data(), 4, 1, y.data(), o);
  // base 2; right leaf residuals pred - y = -2, -2: G = -4, N = 2 -> +0.5 * 4 / 4 = 0.5.
  const double right = 3;
  CHECK(r.model.predict(&right) == doctest::Approx(2.5));
  const double left = 0;
  CHECK(r.model.predict(&left) == doctest::Approx(1.5));
}

TEST_CASE("gbdt histogram and exhaustive split search agree when bins cover every value") {
  const Data g = smooth(300, 5, 0.05, 11);
  Options o;
  o.num_rounds = 20;
  o.learning_rate = 0.2;
  o.num_leaves = 8;
  o.max_depth = 4;
  o.max_bins = 1000;
  o.min_child_samples = 3;
  const FitResult a = fit(g.x.data(), g.n, g.d, g.y.data(), o);
  const FitResult b = fit_exhaustive(g.x.data(), g.n, g.d, g.y.data(), o);
  REQUIRE(a.train_mse.size() == b.train_mse.size());
  for (size_t i = 0; i < a.train_mse.size(); ++i) CHECK(a.train_mse[i] == doctest::Approx(b.train_mse[i]).epsilon(1e-9));
  CHECK(a.train_mse.back() < 0.2 * a.train_mse.front());
}

TEST_CASE("gbdt depth and leaf limits hold") {
  const Data g = smooth(400, 4, 0.0, 3);
  Options o;
  o.num_rounds = 5;
  o.num_leaves = 6;
  o.max_depth = 2;
  const FitResult r = fit(g.x.data(), g.n, g.d, g.y.data(), o);
  for (const Tree& t : r.model.trees) {
    size_t leaves = 0;
    for (const Node& nd : t.nodes) leaves += nd.feature < 0;
    CHECK(leaves <= 4);  // depth 2 allows at most 4 leaves
    CHECK(t.nodes.size() == 2 * leaves - 1);
  }
}

TEST_CASE("gbdt is deterministic under a seed with row and feature subsampling") {
  const Data g = smooth(500, 6, 0.1, 5);
  Options o;
  o.num_rounds = 30;
  o.subsample = 0.7;
  o.colsample = 0.6;
  o.valid_fraction = 0.2;
  o.seed = 42;
  const FitResult a = fit(g.x.data(), g.n, g.d, g.y.data(), o);
  const FitResult b = fit(g.x.data(), g.n, g.d, g.y.data(), o);
  CHECK(a.model.serialize() == b.model.serialize());
  o.seed = 43;
  const FitResult c = fit(g.x.data(), g.n, g.d, g.y.data(), o);
  CHECK(a.model.serialize() != c.model.serialize());
}

TEST_CASE("gbdt early stopping keeps the best validation round") {
  const Data g = smooth(400, 4, 0.5, 9);  // noisy: validation error turns up
  Options o;
  o.num_rounds = 2000;
  o.learning_rate = 0.3;
  o.num_leaves = 31;
  o.min_child_samples = 2;
  o.valid_fraction = 0.25;
  o.early_stopping_rounds = 20;
  const FitResult r = fit(g.x.data(), g.n, g.d, g.y.data(), o);
  CHECK(r.rounds_run < 2000);
  CHECK(r.rounds_run == r.best_round + 20);
  CHECK(r.model.trees.size() == r.best_round);
  double best = 1e300;
  size_t arg = 0;
  for (size_t i = 0; i < r.valid_mse.size(); ++i)
    if (r.valid_mse[i] < best) {
      best = r.valid_mse[i];
      arg = i + 1;
    }
  CHECK(arg == r.best_round);
}

TEST_CASE("gbdt generalises on a smooth function") {
  const Data tr = smooth(2000, 5, 0.05, 21), te = smooth(500, 5, 0.0, 22);
  Options o;
  o.num_rounds = 400;
  o.learning_rate = 0.1;
  const FitResult r = fit(tr.x.data(), tr.n, tr.d, tr.y.data(), o);
  const std::vector<double> p = r.model.predict(te.x.data(), te.n);
  double mean = 0;
  for (double v : te.y) mean += v;
  mean /= static_cast<double>(te.n);
  std::vector<double> base(te.n, mean);
  CHECK(mse(p, te.y) < 0.05 * mse(base, te.y));
}

TEST_CASE("gbdt model serialisation round-trips and rejects corrupt input") {
  const Data g = smooth(200, 3, 0.1, 1);
  Options o;
  o.num_rounds = 10;
  const FitResult r = fit(g.x.data(), g.n, g.d, g.y.data(), o);
  const std::vector<double> s = r.model.serialize();
  const Model m = Model::deserialize(s.data(), s.size());
  CHECK(m.predict(g.x.data(), g.n) == r.model.predict(g.x.data(), g.n));
  std::vector<double> bad = s;
  bad[0] = 7;
  CHECK_THROWS_AS(Model::deserialize(bad.data(), bad.size()), Error);
  bad = s;
  bad.pop_back();
  CHECK_THROWS_AS(Model::deserialize(bad.data(), bad.size()), Error);
  bad = s;
  bad[5] = 99;  // first node's feature index
  CHECK_THROWS_AS(Model::deserialize(bad.data(), bad.size()), Error);
}

TEST_CASE("gbdt rejects non-finite data and bad options") {
  Data g = smooth(50, 2, 0.1, 1);
  Options o;
  g.x[7] = std::nan("");
  CHECK_THROWS_AS(fit(g.x.data(), g.n, g.d, g.y.data(), o), Error);
  g = smooth(50, 2, 0.1, 1);
  g.y[3] = INFINITY;
  CHECK_THROWS_AS(fit(g.x.data(), g.n, g.d, g.y.data(), o), Error);
  g = smooth(50, 2, 0.1, 1);
  o.learning_rate = 0;
  CHECK_THROWS_AS(fit(g.x.data(), g.n, g.d, g.y.data(), o), Error);
  o = Options{};
  o.subsample = 1.5;
  CHECK_THROWS_AS(fit(g.x.data(), g.n, g.d, g.y.data(), o), Error);
}
