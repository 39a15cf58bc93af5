// Fused knowledge-distillation losses and teacher sparsifiers (see tersor/distill.hpp).
//
// Each row runs a fixed set of passes over per-thread buffers sized to the vocabulary (stable
// log-softmax of the student and of the teacher, then one pass that accumulates the loss in double
// and writes the gradient), so a [rows, V] problem never materialises more than a few rows of
// temporaries. Row losses are summed in row order after the parallel loop: the result does not
// depend on the number of threads.
#include "tersor/distill.hpp"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>
#include <type_traits>
#include <vector>

#include "tersor/error.hpp"
#include "tersor/ops.hpp"
#include "tersor/parallel.hpp"
#include "tersor/rng.hpp"

namespace tersor::distill {

const char* loss_name(Loss l) {
  switch (l) {
    case Loss::ForwardKL: return "fkl";
    case Loss::ReverseKL: return "rkl";
    case Loss::GJSD: return "gkd";
    case Loss::TotalVariation: return "tv";
    case Loss::TTM: return "ttm";
    case Loss::WTTM: return "wttm";
    case Loss::MixCE: return "mixce";
    case Loss::CE: return "ce";
  }
  return "?";
}

namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

/// y = exp(x) over n values (AVX2 exp for float, libm for double).
inline void vexp(const float* x, float* y, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, simd::exp8(_mm256_loadu_ps(x + i)));
  if (i < n) {
    alignas(32) float tmp[8];
    for (size_t j = 0; j < 8; ++j) tmp[j] = i + j < n ? x[i + j] : 0.f;
    _mm256_store_ps(tmp, simd::exp8(_mm256_load_ps(tmp)));
    for (size_t j = 0; i + j < n; ++j) y[i + j] = tmp[j];
  }
}
inline void vexp(const double* x, double* y, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] = std::exp(x[i]);
}

/// log-softmax and softmax of x·inv_t: lq = x·inv_t − lse, q = exp(lq). Returns lse (double).
/// Entries of −inf stay −inf in lq and 0 in q. A row of all −inf gives NaN (callers rule it out).
template <class Real>
double log_softmax_row(const Real* x, double inv_t, size_t n, Real* lq, Real* q) {
  const Real it = static_cast<Real>(inv_t);
  Real m = -std::numeric_limits<Real>::infinity();
  for (size_t j = 0; j < n; ++j) {
    const Real v = x[j] * it;
    lq[j] = v;
    m = v > m ? v : m;
  }
  for (size_t j = 0; j < n; ++j) lq[j] -= m;
  vexp(lq, q, n);
  double z = 0;
  for (size_t j = 0; j < n; ++j) z += static_cast<double>(q[j]);
  const double lz = std::log(z);
  const Real lzr = static_cast<Real>(lz);
  const Real iz = static_cast<Real>(1.0 / z);
  for (size_t j = 0; j < n; ++j) {
    lq[j] -= lzr;
    q[j] *= iz;
  }
  return static_cast<double>(m) + lz;
}

/// logsumexp of x (double accumulation).
template <class Real>
double logsumexp(const Real* x, size_t n) {
  double m = kNegInf;
  for (size_t j = 0; j < n; ++j) m = std::max(m, static_cast<double>(x[j]));
  if (m == kNegInf) return m;
  double z = 0;
  for (size_t j = 0; j < n; ++j) z += std::exp(static_cast<double>(x[j]) - m);
  return m + std::log(z);
}

/// logsumexp of x·c.
template <class Real>
double logsumexp_scaled(const Real* x, size_t n, double c) {
  double m = kNegInf;
  for (size_t j = 0; j < n; ++j) m = std::max(m, static_cast<double>(x[j]) * c);
  if (m == kNegInf) return m;
  double z = 0;
  for (size_t j = 0; j < n; ++j) z += std::exp(static_cast<double>(x[j]) * c - m);
  return m + std::log(z);
}

inline double logaddexp(double a, double b) {
  if (a == kNegInf) return b;
  if (b == kNegInf) return a;
  const double m = std::max(a, b);
  return m + std::log1p(std::exp(-std::fabs(a - b)));
}

bool needs_teacher(Loss l) { return l != Loss::MixCE && l != Loss::CE; }
bool student_at_t(Loss l) {
  return l == Loss::ForwardKL || l == Loss::ReverseKL || l == Loss::GJSD || l == Loss::TotalVariation;
}

template <class Real>
void validate(const Real* student, size_t rows, size_t vocab, const Teacher<Real>& t, const int32_t* labels,
              const LossOptions& o, Real* dlogits) {
  require(vocab > 0, ErrorCode::Shape, "kd_loss: the vocabulary must be non-empty");
  require(student != nullptr || rows == 0, ErrorCode::Shape, "kd_loss: student logits are missing");
  require(std::isfinite(o.temperature) && o.temperature > 0, ErrorCode::Range,
          "temperature must be > 0 and finite, got " + num(o.temperature));
  require(o.beta >= 0 && o.beta <= 1, ErrorCode::Range, "GKD beta must be in [0, 1], got " + num(o.beta));
  require(o.eta >= 0 && o.eta <= 1, ErrorCode::Range, "MixCE eta must be in [0, 1], got " + num(o.eta));
  require(std::isfinite(o.kd_weight) && o.kd_weight >= 0 && std::isfinite(o.ce_weight) && o.ce_weight >= 0,
          ErrorCode::Range, "kd_weight and ce_weight must be finite and >= 0, got " + num(o.kd_weight) + " and " + num(o.ce_weight));
  require(std::isfinite(o.scale), ErrorCode::Range, "scale must be finite, got " + num(o.scale));
  const bool kd = o.kd_weight > 0;
  const bool need_labels = o.ce_weight > 0 || (kd && !needs_teacher(o.loss));
  require(!need_labels || labels != nullptr, ErrorCode::Shape,
          std::string("kd_loss: ") + (o.ce_weight > 0 ? "ce_weight > 0" : loss_name(o.loss)) + " needs hard labels");
  if (labels) {
    for (size_t r = 0; r < rows; ++r)
      require(labels[r] < static_cast<int64_t>(vocab), ErrorCode::Range,
              "label " + std::to_string(labels[r]) + " at row " + std::to_string(r) + " is outside the vocabulary [0, " +
                  std::to_string(vocab) + ")");
  }
  if (!kd || !needs_teacher(o.loss)) return;
  switch (t.kind) {
    case TeacherKind::None:
      fail(ErrorCode::Shape, std::string("kd_loss: ") + loss_name(o.loss) + " needs a teacher");
    case TeacherKind::Dense:
      require(t.logits != nullptr || rows == 0, ErrorCode::Shape, "kd_loss: dense teacher logits are missing");
      return;
    case TeacherKind::SparseLogProb:
    case TeacherKind::SparseWeight: break;
  }
  require(t.k > 0, ErrorCode::Shape, "kd_loss: a sparse teacher needs k > 0 entries per row");
  require((t.ids && t.values) || rows == 0, ErrorCode::Shape, "kd_loss: sparse teacher ids or values are missing");
  const bool weights = t.kind == TeacherKind::SparseWeight;
  if (weights)
    require(o.loss == Loss::ForwardKL || (o.loss == Loss::GJSD && o.beta == 0), ErrorCode::Range,
            std::string("random-sampling (importance-weight) targets estimate the teacher without bias only for forward "
                        "KL (fkl, gkd:0), not ") + loss_name(o.loss));
  if (!weights && t.tail == Tail::Zero)
    require(!(o.loss == Loss::ReverseKL || (o.loss == Loss::GJSD && o.beta == 1)), ErrorCode::Range,
            "reverse KL needs a teacher with full support: a top-k teacher needs the uniform tail");
  for (size_t r = 0; r < rows; ++r) {
    size_t valid = 0;
    for (size_t i = 0; i < t.k; ++i) {
      const int32_t id = t.ids[r * t.k + i];
      const double v = static_cast<double>(t.values[r * t.k + i]);
      if (id < 0) continue;
      ++valid;
      require(id < static_cast<int64_t>(vocab), ErrorCode::Range,
              "teacher id " + std::to_string(id) + " at row " + std::to_string(r) +
                  " is outside the student's vocabulary [0, " + std::to_string(vocab) + ")");
      if (weights)
        require(std::isfinite(v) && v >= 0, ErrorCode::Range,
                "importance weight " + num(v) + " at row " + std::to_string(r) + " must be finite and >= 0");
      else
        require(!std::isnan(v) && v <= 1e-4 && v != std::numeric_limits<double>::infinity(), ErrorCode::Range,
                "teacher log-probability " + num(v) + " at row " + std::to_string(r) + " must be <= 0");
    }
    const bool skip = labels && labels[r] < 0;
    require(valid > 0 || skip || weights, ErrorCode::Range,
            "sparse teacher row " + std::to_string(r) + " lists no token id");
  }
}

template <class Real>
struct Buffers {
  std::vector<Real> lq, q, lp, p, lq1, q1;
  std::vector<double> lm;
  std::vector<uint8_t> seen;
  explicit Buffers(size_t v) : lq(v), q(v), lp(v), p(v), lq1(v), q1(v), seen(v) {}
};

struct RowOut {
  double kd = 0, ce = 0;
  bool counted = false;
  bool bad = false;  // duplicate id in a log-prob row
};

template <class Real>
RowOut one_row(size_t r, const Real* zr, size_t V, const Teacher<Real>& t, const int32_t* labels, const LossOptions& o,
               Real* gr, Buffers<Real>& b) {
  RowOut out;
  const int32_t y = labels ? labels[r] : -1;
  if (labels && y < 0) {
    if (gr) std::fill(gr, gr + V, Real(0));
    return out;
  }
  out.counted = true;
  const double T = o.temperature, inv_t = 1.0 / T;
  const bool kd = o.kd_weight > 0;
  const Loss L = o.loss;
  // Student at the loss's temperature (or 1), and at 1 for CE when they differ.
  const bool at_t = student_at_t(L) && T != 1.0;
  log_softmax_row(zr, at_t ? inv_t : 1.0, V, b.lq.data(), b.q.data());
  const bool need_ce = o.ce_weight > 0;
  Real* lq1 = b.lq.data();
  Real* q1 = b.q.data();
  if (need_ce && at_t) {
    log_softmax_row(zr, 1.0, V, b.lq1.data(), b.q1.data());
    lq1 = b.lq1.data();
    q1 = b.q1.data();
  }
  double g_kd_scale = 0;
  const double s = o.scale;
  if (gr) std::fill(gr, gr + V, Real(0));
  const Real* lq = b.lq.data();
  const Real* q = b.q.data();

  if (kd && !needs_teacher(L)) {
    const double lqy = static_cast<double>(lq[y]);
    if (L == Loss::CE) {
      out.kd = -lqy;
      g_kd_scale = 1;
    } else {  // MixCE
      const double w = o.eta + (1 - o.eta) * std::exp(lqy);
      out.kd = -w * lqy;
      g_kd_scale = w;
    }
    if (gr) {
      const Real c = static_cast<Real>(s * o.kd_weight * g_kd_scale);
      for (size_t j = 0; j < V; ++j) gr[j] += c * q[j];
      gr[y] -= c;
    }
  } else if (kd && t.kind == TeacherKind::SparseWeight) {
    // Forward KL from the importance-weighted estimate: −Σ w log q (teacher entropy dropped).
    const double f = (L == Loss::ForwardKL) ? T * T : 1.0;
    const int32_t* ids = t.ids + r * t.k;
    const Real* w = t.values + r * t.k;
    double W = 0, ce = 0;
    for (size_t i = 0; i < t.k; ++i) {
      if (ids[i] < 0) continue;
      W += static_cast<double>(w[i]);
      ce -= static_cast<double>(w[i]) * static_cast<double>(lq[ids[i]]);
    }
    out.kd = f * ce;
    if (gr) {
      const double c = s * o.kd_weight * f * inv_t;  // ∂/∂z = f/T·(qW − w)
      const Real cw = static_cast<Real>(c * W);
      for (size_t j = 0; j < V; ++j) gr[j] += cw * q[j];
      for (size_t i = 0; i < t.k; ++i)
        if (ids[i] >= 0) gr[ids[i]] -= static_cast<Real>(c * static_cast<double>(w[i]));
    }
  } else if (kd) {
    // Teacher distribution: dense logits or a rebuilt sparse row, then the temperature.
    Real* lp = b.lp.data();
    Real* p = b.p.data();
    const Real* src = nullptr;
    if (t.kind == TeacherKind::Dense) {
      src = t.logits + r * V;
    } else {
      const int32_t* ids = t.ids + r * t.k;
      const Real* v = t.values + r * t.k;
      size_t valid = 0;
      double mass = 0;
      for (size_t i = 0; i < t.k; ++i)
        if (ids[i] >= 0) {
          ++valid;
          mass += std::exp(static_cast<double>(v[i]));
        }
      double fill = kNegInf;
      if (t.tail == Tail::Uniform && valid < V) {
        const double lr = t.tail_log_mass ? static_cast<double>(t.tail_log_mass[r]) : std::log(std::max(0.0, 1.0 - mass));
        fill = lr - std::log(static_cast<double>(V - valid));
      }
      std::fill(lp, lp + V, static_cast<Real>(fill));
      for (size_t i = 0; i < t.k; ++i)
        if (ids[i] >= 0) {
          if (b.seen[ids[i]]) out.bad = true;
          b.seen[ids[i]] = 1;
          lp[ids[i]] = v[i];
        }
      for (size_t i = 0; i < t.k; ++i)
        if (ids[i] >= 0) b.seen[ids[i]] = 0;
      src = lp;  // log_softmax_row may run in place: it reads x[j] before writing lq[j]
    }
    // WTTM's weight U = Σ p1^γ with p1 = softmax(src): log U = lse(src/T) − lse(src)/T.
    double log_u = 0;
    if (L == Loss::WTTM) log_u = logsumexp_scaled(src, V, inv_t) - logsumexp(src, V) * inv_t;
    log_softmax_row(src, inv_t, V, lp, p);
    double loss = 0;
    switch (L) {
      case Loss::ForwardKL:
      case Loss::TTM:
      case Loss::WTTM: {
        for (size_t j = 0; j < V; ++j)
          if (p[j] > 0) loss += static_cast<double>(p[j]) * (static_cast<double>(lp[j]) - static_cast<double>(lq[j]));
        double f = 1, gf = 1;  // loss factor, gradient factor (∂/∂z = gf (q − p))
        if (L == Loss::ForwardKL) {
          f = T * T;
          gf = T;
        } else if (L == Loss::WTTM) {
          f = gf = std::exp(log_u);
        }
        out.kd = f * loss;
        if (gr) {
          const Real c = static_cast<Real>(s * o.kd_weight * gf);
          for (size_t j = 0; j < V; ++j) gr[j] += c * (q[j] - p[j]);
        }
        break;
      }
      case Loss::ReverseKL:
      case Loss::GJSD: {
        const bool rkl = L == Loss::ReverseKL || o.beta == 1;
        const bool fkl = L == Loss::GJSD && o.beta == 0;
        const double f = L == Loss::ReverseKL ? T * T : 1.0;
        const double gf = f * inv_t;
        if (fkl) {
          for (size_t j = 0; j < V; ++j)
            if (p[j] > 0) loss += static_cast<double>(p[j]) * (static_cast<double>(lp[j]) - static_cast<double>(lq[j]));
          out.kd = loss;
          if (gr) {
            const Real c = static_cast<Real>(s * o.kd_weight * gf);
            for (size_t j = 0; j < V; ++j) gr[j] += c * (q[j] - p[j]);
          }
        } else if (rkl) {
          for (size_t j = 0; j < V; ++j)
            if (q[j] > 0) loss += static_cast<double>(q[j]) * (static_cast<double>(lq[j]) - static_cast<double>(lp[j]));
          out.kd = f * loss;
          if (gr) {
            const double c = s * o.kd_weight * gf;
            for (size_t j = 0; j < V; ++j)
              if (q[j] > 0)
                gr[j] += static_cast<Real>(c * static_cast<double>(q[j]) *
                                           (static_cast<double>(lq[j]) - static_cast<double>(lp[j]) - loss));
          }
        } else {
          const double beta = o.beta, lb = std::log(beta), l1b = std::log1p(-beta);
          std::vector<double>& lm = b.lm;
          lm.resize(V);
          double kqm = 0, kpm = 0;
          for (size_t j = 0; j < V; ++j) {
            const double lpj = static_cast<double>(lp[j]), lqj = static_cast<double>(lq[j]);
            // One log of the mixture when it is representable; logaddexp of the logs when it underflows.
            const double mix = beta * static_cast<double>(p[j]) + (1 - beta) * static_cast<double>(q[j]);
            lm[j] = mix > 1e-300 ? std::log(mix) : logaddexp(lb + lpj, l1b + lqj);
            if (p[j] > 0) kpm += static_cast<double>(p[j]) * (lpj - lm[j]);
            if (q[j] > 0) kqm += static_cast<double>(q[j]) * (lqj - lm[j]);
          }
          out.kd = beta * kpm + (1 - beta) * kqm;
          if (gr) {
            const double c = s * o.kd_weight * (1 - beta) * inv_t;
            for (size_t j = 0; j < V; ++j)
              if (q[j] > 0)
                gr[j] += static_cast<Real>(c * static_cast<double>(q[j]) * (static_cast<double>(lq[j]) - lm[j] - kqm));
          }
        }
        break;
      }
      case Loss::TotalVariation: {
        double A = 0;
        for (size_t j = 0; j < V; ++j) {
          const double d = static_cast<double>(q[j]) - static_cast<double>(p[j]);
          loss += std::fabs(d);
          A += static_cast<double>(q[j]) * 0.5 * ((d > 0) - (d < 0));
        }
        out.kd = T * T * 0.5 * loss;
        if (gr) {
          const double c = s * o.kd_weight * T;
          for (size_t j = 0; j < V; ++j) {
            const double d = static_cast<double>(q[j]) - static_cast<double>(p[j]);
            gr[j] += static_cast<Real>(c * static_cast<double>(q[j]) * (0.5 * ((d > 0) - (d < 0)) - A));
          }
        }
        break;
      }
      default: break;
    }
  }
  if (need_ce) {
    out.ce = -static_cast<double>(lq1[y]);
    if (gr) {
      const Real c = static_cast<Real>(s * o.ce_weight);
      for (size_t j = 0; j < V; ++j) gr[j] += c * q1[j];
      gr[y] -= c;
    }
  }
  return out;
}

}  // namespace

template <class Real>
LossResult kd_loss(const Real* student, size_t rows, size_t vocab, const Teacher<Real>& teacher, const int32_t* labels,
                   const LossOptions& options, Real* dlogits) {
  validate(student, rows, vocab, teacher, labels, options, dlogits);
  std::vector<RowOut> outs(rows);
  const int nt = threads_for(rows, rows * vocab);
  const std::ptrdiff_t n = static_cast<std::ptrdiff_t>(rows);
  std::atomic<bool> oom{false};
#pragma omp parallel num_threads(nt)
  {
    Buffers<Real>* b = nullptr;
    try {
      b = new Buffers<Real>(vocab);
    } catch (...) {
      oom = true;
    }
#pragma omp for schedule(static)
    for (std::ptrdiff_t r = 0; r < n; ++r) {
      if (!b) continue;
      const size_t ru = static_cast<size_t>(r);
      outs[ru] = one_row(ru, student + ru * vocab, vocab, teacher, labels, options,
                         dlogits ? dlogits + ru * vocab : nullptr, *b);
    }
    delete b;
  }
  if (oom) fail(ErrorCode::Native, "kd_loss: out of memory for the row buffers");
  LossResult res;
  for (size_t r = 0; r < rows; ++r) {
    require(!outs[r].bad, ErrorCode::Range, "sparse teacher row " + std::to_string(r) + " lists a token id twice");
    if (!outs[r].counted) continue;
    ++res.count;
    res.kd += outs[r].kd;
    res.ce += outs[r].ce;
  }
  res.loss = options.kd_weight * res.kd + options.ce_weight * res.ce;
  return res;
}

template LossResult kd_loss<float>(const float*, size_t, size_t, const Teacher<float>&, const int32_t*, const LossOptions&, float*);
template LossResult kd_loss<double>(const double*, size_t, size_t, const Teacher<double>&, const int32_t*, const LossOptions&,
                                    double*);

// ---- teacher sparsifiers ----------------------------------------------------------------------

namespace {
void check_sparsify(size_t vocab, size_t k, double temperature, const char* what) {
  require(vocab > 0, ErrorCode::Shape, std::string(what) + ": the vocabulary must be non-empty");
  require(k > 0 && k <= vocab, ErrorCode::Range,
          std::string(what) + ": k must be in [1, vocab = " + std::to_string(vocab) + "], got " + std::to_string(k));
  require(std::isfinite(temperature) && temperature > 0, ErrorCode::Range,
          std::string("temperature must be > 0 and finite, got ") + num(temperature));
}
}  // namespace

void topk_logprobs(const float* logits, size_t rows, size_t vocab, size_t k, double temperature, int32_t* ids,
                   float* logprobs, float* tail_log_mass) {
  check_sparsify(vocab, k, temperature, "topk_logprobs");
  const int nt = threads_for(rows, rows * vocab);
  const std::ptrdiff_t n = static_cast<std::ptrdiff_t>(rows);
#pragma omp parallel num_threads(nt)
  {
    std::vector<double> lp(vocab);
    std::vector<int32_t> order(vocab);
#pragma omp for schedule(static)
    for (std::ptrdiff_t r = 0; r < n; ++r) {
      const float* x = logits + static_cast<size_t>(r) * vocab;
      double m = kNegInf;
      for (size_t j = 0; j < vocab; ++j) m = std::max(m, static_cast<double>(x[j]) / temperature);
      double z = 0;
      for (size_t j = 0; j < vocab; ++j) z += std::exp(static_cast<double>(x[j]) / temperature - m);
      const double lse = m + std::log(z);
      for (size_t j = 0; j < vocab; ++j) lp[j] = static_cast<double>(x[j]) / temperature - lse;
      std::iota(order.begin(), order.end(), 0);
      std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
                        [&](int32_t a, int32_t c) { return lp[a] > lp[c] || (lp[a] == lp[c] && a < c); });
      // Tail mass from the ids not kept, summed directly (stable where 1 − Σ top-k would cancel).
      double tail_m = kNegInf;
      for (size_t i = k; i < vocab; ++i) tail_m = std::max(tail_m, lp[order[i]]);
      double tz = 0;
      if (tail_m != kNegInf)
        for (size_t i = k; i < vocab; ++i) tz += std::exp(lp[order[i]] - tail_m);
      const size_t o = static_cast<size_t>(r) * k;
      for (size_t i = 0; i < k; ++i) {
        ids[o + i] = order[i];
        logprobs[o + i] = static_cast<float>(lp[order[i]]);
      }
      if (tail_log_mass) tail_log_mass[r] = tail_m == kNegInf ? -std::numeric_limits<float>::infinity()
                                                              : static_cast<float>(tail_m + std::log(tz));
    }
  }
}

void sample_weights(const float* logits, size_t rows, size_t vocab, size_t samples, double temperature,
                    double proposal_temperature, uint64_t seed, uint64_t row_offset, int32_t* ids, float* weights) {
  require(samples > 0, ErrorCode::Range, "sample_weights: the number of samples must be > 0");
  check_sparsify(vocab, 1, temperature, "sample_weights");
  require(std::isfinite(proposal_temperature) && proposal_temperature > 0, ErrorCode::Range,
          "proposal temperature must be > 0 and finite, got " + num(proposal_temperature));
  const int nt = threads_for(rows, rows * vocab);
  const std::ptrdiff_t n = static_cast<std::ptrdiff_t>(rows);
#pragma omp parallel num_threads(nt)
  {
    std::vector<double> lp(vocab), cdf(vocab);
    std::vector<int32_t> count(vocab, 0);
    std::vector<int32_t> uniq;
#pragma omp for schedule(static)
    for (std::ptrdiff_t r = 0; r < n; ++r) {
      const float* x = logits + static_cast<size_t>(r) * vocab;
      // Teacher log p at T, proposal log r ∝ log p / τ, both normalised.
      double m = kNegInf;
      for (size_t j = 0; j < vocab; ++j) m = std::max(m, static_cast<double>(x[j]) / temperature);
      const double it = 1.0 / proposal_temperature;
      double acc = 0, lzr = 0;
      double lse = 0;
      if (proposal_temperature == 1.0) {
        // The proposal is the teacher: one exp pass builds the (unnormalised) CDF of p itself;
        // log p is only needed for the ids drawn (weights are count / K · p / p).
        for (size_t j = 0; j < vocab; ++j) {
          const double v = static_cast<double>(x[j]) / temperature - m;
          lp[j] = v;
          acc += std::exp(v);
          cdf[j] = acc;
        }
        lse = m + std::log(acc);
        for (size_t j = 0; j < vocab; ++j) lp[j] -= lse - m;
        lzr = 0;  // lp is normalised: the proposal's log-normaliser is 0
      } else {
        double z = 0;
        for (size_t j = 0; j < vocab; ++j) z += std::exp(static_cast<double>(x[j]) / temperature - m);
        lse = m + std::log(z);
        for (size_t j = 0; j < vocab; ++j) lp[j] = static_cast<double>(x[j]) / temperature - lse;
        double mr = kNegInf;
        for (size_t j = 0; j < vocab; ++j) mr = std::max(mr, lp[j] * it);
        for (size_t j = 0; j < vocab; ++j) {
          acc += std::exp(lp[j] * it - mr);
          cdf[j] = acc;
        }
        lzr = mr + std::log(acc);
      }
      Rng rng(seed + row_offset + static_cast<uint64_t>(r));
      uniq.clear();
      for (size_t s = 0; s < samples; ++s) {
        const double u = rng.next_f64() * acc;
        size_t j = static_cast<size_t>(std::upper_bound(cdf.begin(), cdf.end(), u) - cdf.begin());
        if (j >= vocab) j = vocab - 1;
        while (j > 0 && cdf[j] == cdf[j - 1]) --j;  // never land on a zero-probability id
        if (count[j]++ == 0) uniq.push_back(static_cast<int32_t>(j));
      }
      const size_t o = static_cast<size_t>(r) * samples;
      for (size_t i = 0; i < samples; ++i) {
        if (i < uniq.size()) {
          const int32_t j = uniq[i];
          const double lr = lp[j] * it - lzr;  // log proposal probability
          ids[o + i] = j;
          weights[o + i] = static_cast<float>(static_cast<double>(count[j]) / static_cast<double>(samples) * std::exp(lp[j] - lr));
          count[j] = 0;
        } else {
          ids[o + i] = -1;
          weights[o + i] = 0.f;
        }
      }
    }
  }
}

}  // namespace tersor::distill
