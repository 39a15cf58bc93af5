// Suite "distill": the fused KD losses (distill.hpp) over a 32k vocabulary.
//   kd/fkl        forward KL at T = 2, loss + gradient, dense teacher logits
//   kd/gkd0.5     TRL's generalised JSD at beta = 0.5
//   kd/sample12   forward KL from random-sampling targets (12 ids + importance weights per row)
//   sparsify/topk12, sparsify/sample12   the cache's teacher sparsifiers (per row of logits)
// Baseline (same run): an unfused reference written the way eager frameworks evaluate these
// losses — each step a separate pass that materialises a full [rows, V] tensor (student
// log-softmax, teacher log-softmax, the two softmaxes, the pointwise loss terms, the reduction, then
// the gradient), each pass parallel over rows, libm exp. For the sparsifiers the baseline is a
// full sort of each row (top-k) / a linear-scan inverse-CDF sampler per draw.
// Extra fields: rows_per_s (ours), max_abs_grad_diff (fused vs reference), vocab, rows.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "bench.hpp"
#include "tersor/distill.hpp"
#include "tersor/parallel.hpp"
#include "tersor/rng.hpp"

namespace {

using namespace tersor;
using namespace tersor::distill;

std::vector<float> randn(size_t n, uint64_t seed, double sd) {
  Rng r(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(sd * r.next_normal());
  return v;
}

void log_softmax_pass(const float* x, float* out, size_t rows, size_t V, float inv_t) {
  const std::ptrdiff_t n = static_cast<std::ptrdiff_t>(rows);
#pragma omp parallel for num_threads(num_threads()) schedule(static)
  for (std::ptrdiff_t r = 0; r < n; ++r) {
    const float* xr = x + r * V;
    float* o = out + r * V;
    float m = -INFINITY;
    for (size_t j = 0; j < V; ++j) m = std::max(m, xr[j] * inv_t);
    double z = 0;
    for (size_t j = 0; j < V; ++j) z += std::exp(xr[j] * inv_t - m);
    const float lz = m + static_cast<float>(std::log(z));
    for (size_t j = 0; j < V; ++j) o[j] = xr[j] * inv_t - lz;
  }
}

template <class F>
void map_pass(size_t n, F f) {
  const std::ptrdiff_t m = static_cast<std::ptrdiff_t>(n);
#pragma omp parallel for num_threads(num_threads()) schedule(static)
  for (std::ptrdiff_t i = 0; i < m; ++i) f(static_cast<size_t>(i));
}

/// Unfused forward KL (T²·KL(p‖q)) and gradient T(q − p): eight full-size passes.
double ref_fkl(const float* z, const float* t, size_t rows, size_t V, float T, float* grad, std::vector<float>* buf) {
  const size_t n = rows * V;
  float *lq = buf[0].data(), *lp = buf[1].data(), *q = buf[2].data(), *p = buf[3].data(), *term = buf[4].data();
  log_softmax_pass(z, lq, rows, V, 1.f / T);
  log_softmax_pass(t, lp, rows, V, 1.f / T);
  map_pass(n, [&](size_t i) { q[i] = std::exp(lq[i]); });
  map_pass(n, [&](size_t i) { p[i] = std::exp(lp[i]); });
  map_pass(n, [&](size_t i) { term[i] = p[i] * (lp[i] - lq[i]); });
  double loss = 0;
  for (size_t i = 0; i < n; ++i) loss += term[i];
  map_pass(n, [&](size_t i) { grad[i] = T * (q[i] - p[i]); });
  return T * T * loss;
}

/// Unfused generalised JSD(β) (TRL's formula): mixture, two KLs, gradient (1−β) q (log q/m − KL(q‖m)) / T.
double ref_gjsd(const float* z, const float* t, size_t rows, size_t V, float T, float beta, float* grad, std::vector<float>* buf) {
  const size_t n = rows * V;
  float *lq = buf[0].data(), *lp = buf[1].data(), *q = buf[2].data(), *p = buf[3].data(), *lm = buf[4].data(), *term = buf[5].data();
  log_softmax_pass(z, lq, rows, V, 1.f / T);
  log_softmax_pass(t, lp, rows, V, 1.f / T);
  map_pass(n, [&](size_t i) { q[i] = std::exp(lq[i]); });
  map_pass(n, [&](size_t i) { p[i] = std::exp(lp[i]); });
  map_pass(n, [&](size_t i) { lm[i] = std::log(beta * p[i] + (1 - beta) * q[i]); });
  map_pass(n, [&](size_t i) { term[i] = beta * p[i] * (lp[i] - lm[i]) + (1 - beta) * q[i] * (lq[i] - lm[i]); });
  double loss = 0;
  for (size_t i = 0; i < n; ++i) loss += term[i];
  std::vector<double> kqm(rows, 0.0);
  for (size_t r = 0; r < rows; ++r)
    for (size_t j = 0; j < V; ++j) kqm[r] += q[r * V + j] * (lq[r * V + j] - lm[r * V + j]);
  map_pass(n, [&](size_t i) { grad[i] = (1 - beta) * q[i] * (lq[i] - lm[i] - static_cast<float>(kqm[i / V])) / T; });
  return loss;
}

/// Unfused sampled forward KL: dense scatter of the weights into a [rows, V] target, then CE passes.
double ref_sampled(const float* z, const int32_t* ids, const float* w, size_t k, size_t rows, size_t V, float* grad, std::vector<float>* buf) {
  const size_t n = rows * V;
  float *lq = buf[0].data(), *q = buf[2].data(), *p = buf[3].data(), *term = buf[4].data();
  std::fill(p, p + n, 0.f);
  for (size_t r = 0; r < rows; ++r)
    for (size_t i = 0; i < k; ++i)
      if (ids[r * k + i] >= 0) p[r * V + ids[r * k + i]] += w[r * k + i];
  log_softmax_pass(z, lq, rows, V, 1.f);
  map_pass(n, [&](size_t i) { q[i] = std::exp(lq[i]); });
  map_pass(n, [&](size_t i) { term[i] = -p[i] * lq[i]; });
  double loss = 0;
  for (size_t i = 0; i < n; ++i) loss += term[i];
  std::vector<double> W(rows, 0.0);
  for (size_t r = 0; r < rows; ++r)
    for (size_t j = 0; j < V; ++j) W[r] += p[r * V + j];
  map_pass(n, [&](size_t i) { grad[i] = q[i] * static_cast<float>(W[i / V]) - p[i]; });
  return loss;
}

double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, static_cast<double>(std::fabs(a[i] - b[i])));
  return m;
}

void run_distill(bool quick) {
  const size_t V = 32000;
  const size_t rows = quick ? 8 : 128;
  const int reps = quick ? 3 : 7;
  auto z = randn(rows * V, 1, 3.0);
  auto t = randn(rows * V, 2, 3.0);
  std::vector<float> g(rows * V), gref(rows * V);
  std::vector<float> buf[6];
  for (auto& b : buf) b.resize(rows * V);
  Teacher<float> dense;
  dense.kind = TeacherKind::Dense;
  dense.logits = t.data();
  const auto extra = [&](double ours) {
    return bench::Extra{{"rows_per_s", rows / ours}, {"max_abs_grad_diff", max_diff(g, gref)}, {"vocab", double(V)}, {"rows", double(rows)}};
  };
  {
    LossOptions o;
    o.loss = Loss::ForwardKL;
    o.temperature = 2;
    const double ours = bench::median_seconds([&] { kd_loss<float>(z.data(), rows, V, dense, nullptr, o, g.data()); }, reps);
    const double base = bench::median_seconds([&] { ref_fkl(z.data(), t.data(), rows, V, 2.f, gref.data(), buf); }, reps);
    bench::report("distill", "kd/fkl", ours, "unfused", base, extra(ours));
  }
  {
    LossOptions o;
    o.loss = Loss::GJSD;
    o.beta = 0.5;
    o.temperature = 2;
    const double ours = bench::median_seconds([&] { kd_loss<float>(z.data(), rows, V, dense, nullptr, o, g.data()); }, reps);
    const double base = bench::median_seconds([&] { ref_gjsd(z.data(), t.data(), rows, V, 2.f, 0.5f, gref.data(), buf); }, reps);
    bench::report("distill", "kd/gkd0.5", ours, "unfused", base, extra(ours));
  }
  const size_t K = 12;
  std::vector<int32_t> ids(rows * K);
  std::vector<float> w(rows * K);
  {
    // Sparsifiers: ours vs a full sort (top-k) and a linear-scan inverse CDF per draw (sampling).
    std::vector<float> lp(rows * K), tail(rows);
    const double ours = bench::median_seconds([&] { topk_logprobs(t.data(), rows, V, K, 1.0, ids.data(), lp.data(), tail.data()); }, reps);
    std::vector<int32_t> order(V);
    const double base = bench::median_seconds(
        [&] {
          for (size_t r = 0; r < rows; ++r) {
            const float* x = t.data() + r * V;
            std::iota(order.begin(), order.end(), 0);
            std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return x[a] > x[b] || (x[a] == x[b] && a < b); });
            for (size_t i = 0; i < K; ++i) ids[r * K + i] = order[i];
          }
        },
        reps);
    bench::report("distill", "sparsify/topk12", ours, "full_sort", base, {{"rows_per_s", rows / ours}, {"bytes_per_token_raw", K * 6.0 + 4}, {"dense_f32_bytes_per_token", V * 4.0}});
    const double ours_s = bench::median_seconds([&] { sample_weights(t.data(), rows, V, K, 1.0, 1.0, 7, 0, ids.data(), w.data()); }, reps);
    std::vector<double> p(V);
    const double base_s = bench::median_seconds(
        [&] {
          for (size_t r = 0; r < rows; ++r) {
            const float* x = t.data() + r * V;
            double m = -INFINITY, zz = 0;
            for (size_t j = 0; j < V; ++j) m = std::max(m, double(x[j]));
            for (size_t j = 0; j < V; ++j) zz += p[j] = std::exp(x[j] - m);
            Rng rng(r);
            for (size_t s = 0; s < K; ++s) {
              double u = rng.next_f64() * zz, acc = 0;
              size_t j = 0;
              for (; j + 1 < V; ++j) {
                acc += p[j];
                if (acc > u) break;
              }
              ids[r * K + s] = static_cast<int32_t>(j);
            }
          }
        },
        reps);
    bench::report("distill", "sparsify/sample12", ours_s, "linear_scan", base_s, {{"rows_per_s", rows / ours_s}, {"bytes_per_token_raw", K * 6.0}, {"dense_f32_bytes_per_token", V * 4.0}});
  }
  {
    sample_weights(t.data(), rows, V, K, 1.0, 1.0, 7, 0, ids.data(), w.data());
    Teacher<float> rs;
    rs.kind = TeacherKind::SparseWeight;
    rs.ids = ids.data();
    rs.values = w.data();
    rs.k = K;
    LossOptions o;
    o.loss = Loss::ForwardKL;
    const double ours = bench::median_seconds([&] { kd_loss<float>(z.data(), rows, V, rs, nullptr, o, g.data()); }, reps);
    const double base = bench::median_seconds([&] { ref_sampled(z.data(), ids.data(), w.data(), K, rows, V, gref.data(), buf); }, reps);
    bench::report("distill", "kd/sample12", ours, "unfused", base, extra(ours));
  }
}

}  // namespace

TERSOR_BENCH_SUITE("distill", run_distill);
