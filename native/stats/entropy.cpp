// k-NN information estimators: Kozachenko-Leonenko entropy, KSG mutual information (algorithms 1
// and 2), Frenzel-Pompe conditional MI, the Gao et al. mixed estimator and the Wang-Kulkarni-Verdu
// divergence (formulas in tersor/stats.hpp). Every one builds one NeighborIndex per space it needs:
// the k-th neighbour distance in the joint space under the max-norm, then strict or non-strict
// counts within it in the marginal spaces.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "tersor/error.hpp"
#include "tersor/parallel.hpp"
#include "tersor/stats.hpp"

namespace tersor::stats {
namespace {

constexpr const char* kContinuousAdvice =
    "the KSG estimators assume continuous data with no zero-variance coordinate; drop the column (it "
    "carries no information) or use the mixed discrete/continuous estimator";

/// The columns of several row-major blocks side by side: [a | b | c].
std::vector<double> concat_columns(std::initializer_list<std::pair<const double*, size_t>> parts, size_t n) {
  size_t dt = 0;
  for (const auto& p : parts) dt += p.second;
  std::vector<double> out(n * dt);
  for (size_t i = 0; i < n; ++i) {
    size_t off = 0;
    for (const auto& [ptr, dp] : parts) {
      std::copy(ptr + i * dp, ptr + i * dp + dp, &out[i * dt + off]);
      off += dp;
    }
  }
  return out;
}

void check_sample(const double* x, size_t n, size_t d, const char* what) {
  require(x != nullptr || n * d == 0, ErrorCode::Shape, std::string(what) + " is missing");
  require(d >= 1, ErrorCode::Shape, std::string(what) + " needs at least one column");
  check_finite(x, n, d, what);
}

void check_k(size_t k, size_t n, const char* what) {
  require(k >= 1, ErrorCode::Range, std::string("k must be at least 1, got ") + std::to_string(k));
  require(n >= k + 1, ErrorCode::Range,
          std::string(what) + " with k = " + std::to_string(k) + " needs at least k + 1 = " + std::to_string(k + 1) +
              " samples, got " + std::to_string(n));
}

/// k-th neighbour distance of every point of `joint` (max-norm), rejecting zeros for the KSG family.
std::vector<double> kth_distances(const double* joint, size_t n, size_t d, size_t k, Metric metric,
                                  std::vector<uint32_t>* idx, const char* zero_message) {
  NeighborIndex index(joint, n, d, metric);
  std::vector<double> dist(n * k);
  if (idx) idx->resize(n * k);
  index.knn_self(k, dist.data(), idx ? idx->data() : nullptr);
  std::vector<double> eps(n);
  for (size_t i = 0; i < n; ++i) {
    eps[i] = dist[i * k + k - 1];
    if (zero_message && !(eps[i] > 0))
      fail(ErrorCode::Range, "point " + std::to_string(i) + " has at least k = " + std::to_string(k) +
                                 " other points at distance 0: " + zero_message);
  }
  return eps;
}

std::vector<uint32_t> counts_within(const double* x, size_t n, size_t d, const std::vector<double>& r, bool strict) {
  NeighborIndex index(x, n, d, Metric::Chebyshev, auto_backend(n, d, true));
  std::vector<uint32_t> c(n);
  index.count_self(r.data(), strict, c.data());
  return c;
}

/// psi(m) for integers m = 1..max through the harmonic recurrence psi(m + 1) = psi(m) + 1/m.
std::vector<double> digamma_table(size_t max) {
  std::vector<double> t(max + 2);
  t[0] = -std::numeric_limits<double>::infinity();
  t[1] = -0.57721566490153286061;
  for (size_t m = 1; m + 1 < t.size(); ++m) t[m + 1] = t[m] + 1.0 / static_cast<double>(m);
  return t;
}

}  // namespace

double digamma(double x) {
  require(x > 0 && std::isfinite(x), ErrorCode::Range, "digamma: x must be positive and finite, got " + std::to_string(x));
  double r = 0;
  while (x < 10) {
    r -= 1 / x;
    x += 1;
  }
  const double f = 1 / (x * x);
  const double series = f * (-1.0 / 12 + f * (1.0 / 120 + f * (-1.0 / 252 + f * (1.0 / 240 + f * (-1.0 / 132 + f * (691.0 / 32760))))));
  return r + std::log(x) - 0.5 / x + series;
}

double kl_entropy(const double* x, size_t n, size_t d, size_t k, Metric metric) {
  check_sample(x, n, d, "x");
  check_k(k, n, "Kozachenko-Leonenko entropy");
  check_no_constant_column(x, n, d, "x",
                           "a zero-variance coordinate has differential entropy -infinity; drop it or add noise");
  const std::vector<double> eps =
      kth_distances(x, n, d, k, metric, nullptr,
                    "the differential entropy of data with repeated points is -infinity; add noise or raise k");
  double sum_log = 0;
  for (double e : eps) sum_log += std::log(e);
  const double dd = static_cast<double>(d);
  const double log_vd = metric == Metric::Chebyshev ? dd * std::log(2.0)
                                                    : 0.5 * dd * std::log(3.14159265358979323846) - std::lgamma(0.5 * dd + 1);
  return digamma(static_cast<double>(n)) - digamma(static_cast<double>(k)) + log_vd + dd * sum_log / static_cast<double>(n);
}

double ksg_mi(const double* x, size_t dx, const double* y, size_t dy, size_t n, size_t k, int algorithm) {
  check_sample(x, n, dx, "x");
  check_sample(y, n, dy, "y");
  require(algorithm == 1 || algorithm == 2, ErrorCode::Range, "KSG algorithm must be 1 or 2, got " + std::to_string(algorithm));
  check_k(k, n, "KSG mutual information");
  check_no_constant_column(x, n, dx, "x", kContinuousAdvice);
  check_no_constant_column(y, n, dy, "y", kContinuousAdvice);
  const std::vector<double> joint = concat_columns({{x, dx}, {y, dy}}, n);
  const auto psi = digamma_table(n + 1);
  const double nd = static_cast<double>(n);
  if (algorithm == 1) {
    const std::vector<double> eps = kth_distances(joint.data(), n, dx + dy, k, Metric::Chebyshev, nullptr, kContinuousAdvice);
    const auto nx = counts_within(x, n, dx, eps, true);
    const auto ny = counts_within(y, n, dy, eps, true);
    double s = 0;
    for (size_t i = 0; i < n; ++i) s += psi[nx[i] + 1] + psi[ny[i] + 1];
    return psi[k] + psi[n] - s / nd;
  }
  std::vector<uint32_t> idx;
  (void)kth_distances(joint.data(), n, dx + dy, k, Metric::Chebyshev, &idx, kContinuousAdvice);
  std::vector<double> ex(n), ey(n);
  const int nt = num_threads();
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1024)
  for (ptrdiff_t ii = 0; ii < static_cast<ptrdiff_t>(n); ++ii) {
    const size_t i = static_cast<size_t>(ii);
    double mx = 0, my = 0;
    for (size_t m = 0; m < k; ++m) {
      const size_t j = idx[i * k + m];
      for (size_t c = 0; c < dx; ++c) mx = std::max(mx, std::fabs(x[i * dx + c] - x[j * dx + c]));
      for (size_t c = 0; c < dy; ++c) my = std::max(my, std::fabs(y[i * dy + c] - y[j * dy + c]));
    }
    ex[i] = mx;
    ey[i] = my;
  }
  const auto nx = counts_within(x, n, dx, ex, false);
  const auto ny = counts_within(y, n, dy, ey, false);
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += psi[std::max<uint32_t>(nx[i], 1)] + psi[std::max<uint32_t>(ny[i], 1)];
  return psi[k] - 1.0 / static_cast<double>(k) + psi[n] - s / nd;
}

double ksg_cmi(const double* x, size_t dx, const double* y, size_t dy, const double* z, size_t dz, size_t n, size_t k) {
  check_sample(x, n, dx, "x");
  check_sample(y, n, dy, "y");
  check_sample(z, n, dz, "z");
  check_k(k, n, "KSG conditional mutual information");
  check_no_constant_column(x, n, dx, "x", kContinuousAdvice);
  check_no_constant_column(y, n, dy, "y", kContinuousAdvice);
  check_no_constant_column(z, n, dz, "z", kContinuousAdvice);
  const std::vector<double> xyz = concat_columns({{x, dx}, {y, dy}, {z, dz}}, n);
  const std::vector<double> eps = kth_distances(xyz.data(), n, dx + dy + dz, k, Metric::Chebyshev, nullptr, kContinuousAdvice);
  const std::vector<double> xz = concat_columns({{x, dx}, {z, dz}}, n);
  const std::vector<double> yz = concat_columns({{y, dy}, {z, dz}}, n);
  const auto nxz = counts_within(xz.data(), n, dx + dz, eps, true);
  const auto nyz = counts_within(yz.data(), n, dy + dz, eps, true);
  const auto nz = counts_within(z, n, dz, eps, true);
  const auto psi = digamma_table(n + 1);
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += psi[nxz[i] + 1] + psi[nyz[i] + 1] - psi[nz[i] + 1];
  return psi[k] - s / static_cast<double>(n);
}

double mixed_mi(const double* x, size_t dx, const double* y, size_t dy, size_t n, size_t k) {
  check_sample(x, n, dx, "x");
  check_sample(y, n, dy, "y");
  check_k(k, n, "mixed mutual information");
  const std::vector<double> joint = concat_columns({{x, dx}, {y, dy}}, n);
  const std::vector<double> rho = kth_distances(joint.data(), n, dx + dy, k, Metric::Chebyshev, nullptr, nullptr);
  // Strict counts within rho_i; where rho_i = 0 this counts nothing, and the exact ties are counted
  // instead (non-strict counts at radius 0).
  auto nx = counts_within(x, n, dx, rho, true);
  auto ny = counts_within(y, n, dy, rho, true);
  std::vector<uint32_t> ties(n, 0);
  bool any_zero = false;
  for (double r : rho) any_zero = any_zero || r == 0;
  if (any_zero) {
    const std::vector<double> zero(n, 0.0);
    NeighborIndex index(joint.data(), n, dx + dy, Metric::Chebyshev);
    index.count_self(zero.data(), false, ties.data());
    const auto tx = counts_within(x, n, dx, zero, false);
    const auto ty = counts_within(y, n, dy, zero, false);
    for (size_t i = 0; i < n; ++i)
      if (rho[i] == 0) {
        nx[i] = tx[i];
        ny[i] = ty[i];
      }
  }
  const auto psi = digamma_table(n + 1);
  double s = 0;
  for (size_t i = 0; i < n; ++i) {
    const size_t kt = rho[i] == 0 ? ties[i] + 1 : k;
    s += psi[kt] - psi[nx[i] + 1] - psi[ny[i] + 1];
  }
  return s / static_cast<double>(n) + std::log(static_cast<double>(n));
}

double knn_kl_divergence(const double* x, size_t n, const double* y, size_t m, size_t d, size_t k, Metric metric) {
  check_sample(x, n, d, "x (the sample of P)");
  check_sample(y, m, d, "y (the sample of Q)");
  check_k(k, n, "the k-NN divergence");
  require(m >= k, ErrorCode::Range,
          "the k-NN divergence with k = " + std::to_string(k) + " needs at least k samples of Q, got " + std::to_string(m));
  NeighborIndex ix(x, n, d, metric), iy(y, m, d, metric);
  std::vector<double> rho(n * k), nu(n * k);
  ix.knn_self(k, rho.data(), nullptr);
  iy.knn(x, n, k, nu.data(), nullptr);
  double s = 0;
  for (size_t i = 0; i < n; ++i) {
    const double r = rho[i * k + k - 1], v = nu[i * k + k - 1];
    if (!(r > 0))
      fail(ErrorCode::Range, "x row " + std::to_string(i) + " has at least k = " + std::to_string(k) +
                                 " duplicates in x: the k-NN divergence needs distinct points (add noise or raise k)");
    if (!(v > 0))
      fail(ErrorCode::Range, "x row " + std::to_string(i) + " coincides with at least k = " + std::to_string(k) +
                                 " points of y: the k-NN divergence needs distinct points (add noise or raise k)");
    s += std::log(v / r);
  }
  return static_cast<double>(d) * s / static_cast<double>(n) +
         std::log(static_cast<double>(m) / static_cast<double>(n - 1));
}

}  // namespace tersor::stats
