// Suite "measures": KSG mutual information (algorithm 1, k = 3) on correlated Gaussians,
// X = (x_1..x_d), Y = rho X + sqrt(1 - rho^2) E coordinate-wise (rho = 0.5, so the truth is
// -d/2 ln(1 - rho^2) nats), against a brute-force O(N^2) implementation in the same run.
//   ksg/d=<d>/n=<n>                        brute force over every query point
//   ksg/d=<d>/n=<n>/brute-scaled-from-<q>  brute force timed on q evenly spaced query points and
//                                          scaled by n / q (its cost is linear in the query count)
// Baseline "brute": for each query point (OpenMP over queries, the same thread count as ours), the
// max-norm joint distance to every other point, std::nth_element for the k-th, then strict counts in
// X and Y by full scans; psi from the same recurrence. Extra fields:
//   truth, ours_estimate, brute_estimate (on its query points only when scaled), brute_queries,
//   scaled (1 when baseline_s was extrapolated), abs_diff (|ours - brute| when not scaled: the two
//   must agree up to summation order).
// Targets: n = 100,000, d = 1 at least 50x faster than brute force; n = 10,000, d = 1 under 0.05 s.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "bench.hpp"
#include "tersor/parallel.hpp"
#include "tersor/rng.hpp"
#include "tersor/stats.hpp"

namespace {

using namespace tersor;

struct Data {
  std::vector<double> x, y;
  size_t n = 0, d = 0;
  double truth = 0;
};

Data gaussians(size_t n, size_t d, double rho, uint64_t seed) {
  Data g;
  g.n = n;
  g.d = d;
  g.x.resize(n * d);
  g.y.resize(n * d);
  Rng r(seed);
  const double s = std::sqrt(1 - rho * rho);
  for (size_t i = 0; i < n * d; ++i) {
    const double a = r.next_normal(), b = r.next_normal();
    g.x[i] = a;
    g.y[i] = rho * a + s * b;
  }
  g.truth = -0.5 * static_cast<double>(d) * std::log(1 - rho * rho);
  return g;
}

double psi_int(size_t m) {  // digamma at a positive integer: -gamma + H_{m-1}
  double h = -0.57721566490153286061;
  for (size_t i = 1; i < m; ++i) h += 1.0 / static_cast<double>(i);
  return h;
}

/// KSG algorithm 1 by brute force over the given query points; returns psi(k) + psi(n) - mean over
/// the queries of (psi(n_x + 1) + psi(n_y + 1)).
double brute_ksg(const Data& g, size_t k, const std::vector<size_t>& queries) {
  const size_t n = g.n, d = g.d;
  std::vector<double> psi(n + 2);
  psi[1] = -0.57721566490153286061;
  for (size_t m = 1; m + 1 < psi.size(); ++m) psi[m + 1] = psi[m] + 1.0 / static_cast<double>(m);
  const int nt = num_threads();
  std::vector<double> term(queries.size());
#pragma omp parallel num_threads(nt)
  {
    std::vector<double> dist(n);
#pragma omp for schedule(dynamic, 4)
    for (ptrdiff_t qi = 0; qi < static_cast<ptrdiff_t>(queries.size()); ++qi) {
      const size_t i = queries[static_cast<size_t>(qi)];
      const double* xi = &g.x[i * d];
      const double* yi = &g.y[i * d];
      size_t m = 0;
      for (size_t j = 0; j < n; ++j) {
        if (j == i) continue;
        double dj = 0;
        for (size_t c = 0; c < d; ++c) dj = std::max(dj, std::fabs(g.x[j * d + c] - xi[c]));
        for (size_t c = 0; c < d; ++c) dj = std::max(dj, std::fabs(g.y[j * d + c] - yi[c]));
        dist[m++] = dj;
      }
      std::nth_element(dist.begin(), dist.begin() + static_cast<ptrdiff_t>(k - 1), dist.begin() + static_cast<ptrdiff_t>(m));
      const double eps = dist[k - 1];
      size_t nx = 0, ny = 0;
      for (size_t j = 0; j < n; ++j) {
        if (j == i) continue;
        double dx = 0, dy = 0;
        for (size_t c = 0; c < d; ++c) dx = std::max(dx, std::fabs(g.x[j * d + c] - xi[c]));
        for (size_t c = 0; c < d; ++c) dy = std::max(dy, std::fabs(g.y[j * d + c] - yi[c]));
        nx += dx < eps;
        ny += dy < eps;
      }
      term[static_cast<size_t>(qi)] = psi[nx + 1] + psi[ny + 1];
    }
  }
  double s = 0;
  for (double t : term) s += t;
  return psi_int(k) + psi[n] - s / static_cast<double>(queries.size());
}

void run_case(size_t n, size_t d, size_t brute_queries, int reps) {
  const size_t k = 3;
  const Data g = gaussians(n, d, 0.5, 1000 + d);
  double ours = 0;
  const double ours_s = bench::median_seconds(
      [&] { ours = stats::ksg_mi(g.x.data(), d, g.y.data(), d, n, k, 1); }, reps, reps > 1 ? 1 : 0);
  const size_t q = std::min(n, brute_queries);
  std::vector<size_t> queries(q);
  for (size_t t = 0; t < q; ++t) queries[t] = t * n / q;
  double brute = 0;
  const double brute_part_s = bench::median_seconds([&] { brute = brute_ksg(g, k, queries); }, 1, 0);
  const bool scaled = q < n;
  const double brute_s = brute_part_s * static_cast<double>(n) / static_cast<double>(q);
  std::string name = "ksg/d=" + std::to_string(d) + "/n=" + std::to_string(n);
  if (scaled) name += "/brute-scaled-from-" + std::to_string(q);
  bench::Extra extra = {{"truth", g.truth},
                        {"ours_estimate", ours},
                        {"brute_estimate", brute},
                        {"brute_queries", static_cast<double>(q)},
                        {"scaled", scaled ? 1.0 : 0.0}};
  if (!scaled) extra.push_back({"abs_diff", std::fabs(ours - brute)});
  bench::report("measures", name, ours_s, "brute", brute_s, extra);
}

void measures(bool quick) {
  if (quick) {
    run_case(10000, 1, 10000, 5);
    run_case(100000, 1, 500, 1);
    run_case(2000, 16, 2000, 1);
    return;
  }
  run_case(10000, 1, 10000, 9);
  run_case(100000, 1, 2000, 3);
  run_case(10000, 16, 10000, 1);
  run_case(100000, 16, 500, 1);
}

}  // namespace

TERSOR_BENCH_SUITE("measures", measures);
