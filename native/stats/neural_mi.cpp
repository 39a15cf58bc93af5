// Neural MI lower bounds (MINE, SMILE, InfoNCE, NWJ): bound values and score gradients, critics over
// tersor::Mlp, and the seeded training / evaluation loop. See tersor/neural_mi.hpp.
#include "tersor/neural_mi.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>

#include "tersor/error.hpp"
#include "tersor/gemm.hpp"
#include "tersor/rng.hpp"

namespace tersor {
namespace {

double softplus(double x) { return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); }
double sigmoid(double x) {
  if (x >= 0) return 1.0 / (1.0 + std::exp(-x));
  const double e = std::exp(x);
  return e / (1.0 + e);
}

/// log Σ exp over a running stream (stable).
struct LogSumExp {
  double mx = -std::numeric_limits<double>::infinity();
  double sum = 0;  // Σ exp(v - mx)
  void add(double v) {
    if (v <= mx) {
      sum += std::exp(v - mx);
    } else {
      sum = sum * std::exp(mx - v) + 1.0;
      mx = v;
    }
  }
  double value() const { return mx + std::log(sum); }
};

double lse_of(const float* v, size_t k) {
  LogSumExp a;
  for (size_t i = 0; i < k; ++i) a.add(v[i]);
  return a.value();
}

void shuffle(std::vector<uint32_t>& a, Rng& rng) {
  for (size_t i = a.size(); i > 1; --i) std::swap(a[i - 1], a[rng.next_below(static_cast<uint32_t>(i))]);
}

// The largest tape (elements) a concatenated critic may hold for one N x N batch.
constexpr double kMaxTapeElems = static_cast<double>(size_t{1} << 26);

/// A critic T(x, y) over tersor::Mlp: concatenated MLP([x, y]) -> 1, or separable g(x)ᵀ h(y).
class Critic {
 public:
  Critic(CriticKind kind, size_t dx, size_t dy, const NeuralMiOptions& o)
      : kind_(kind), dx_(dx), dy_(dy), e_(o.embed_dim),
        f_(shape(kind == CriticKind::Concat ? dx + dy : dx, o.hidden, kind == CriticKind::Concat ? 1 : o.embed_dim,
                 o.activation),
           o.seed * 2 + 1),
        // g is the second tower of a separable critic; a concatenated critic leaves it a 1 -> 1 stub.
        g_(kind == CriticKind::Concat ? shape(1, {}, 1, o.activation) : shape(dy, o.hidden, o.embed_dim, o.activation),
           o.seed * 2 + 2),
        opt_f_(f_.params().size(), AdamOptions{o.lr}), opt_g_(g_.params().size(), AdamOptions{o.lr}) {}

  size_t param_count() const { return f_.params().size() + (kind_ == CriticKind::Separable ? g_.params().size() : 0); }
  size_t tape_width() const {
    size_t w = 0;
    for (size_t i = 1; i < f_.shape().sizes.size(); ++i) w += f_.shape().sizes[i];
    return w + f_.shape().sizes[0];
  }

  /// Scores of the pairs (bx[xi[p]], by[yj[p]]), p < P, for a batch of N rows; keeps what backward needs.
  void pairs(const float* bx, const float* by, size_t N, const uint32_t* xi, const uint32_t* yj, size_t P, float* s) {
    P_ = P;
    xi_.assign(xi, xi + P);
    yj_.assign(yj, yj + P);
    if (kind_ == CriticKind::Concat) {
      const size_t d = dx_ + dy_;
      z_.resize(P * d);
      for (size_t p = 0; p < P; ++p) {
        std::memcpy(&z_[p * d], bx + static_cast<size_t>(xi[p]) * dx_, dx_ * sizeof(float));
        std::memcpy(&z_[p * d + dx_], by + static_cast<size_t>(yj[p]) * dy_, dy_ * sizeof(float));
      }
      const float* out = f_.forward(z_.data(), P);
      std::memcpy(s, out, P * sizeof(float));
    } else {
      bx_ = bx;
      by_ = by;
      const float* G = G_ = f_.forward(bx, N);
      const float* H = H_ = g_.forward(by, N);
      N_ = N;
      for (size_t p = 0; p < P; ++p) {
        const float* gi = G + static_cast<size_t>(xi[p]) * e_;
        const float* hj = H + static_cast<size_t>(yj[p]) * e_;
        float acc = 0;
        for (size_t c = 0; c < e_; ++c) acc += gi[c] * hj[c];
        s[p] = acc;
      }
    }
    matrix_mode_ = false;
  }

  /// S (N x N) with S[i][j] = T(x_i, y_j).
  void matrix(const float* bx, const float* by, size_t N, float* s) {
    if (kind_ == CriticKind::Concat) {
      all_i_.resize(N * N);
      all_j_.resize(N * N);
      for (size_t i = 0; i < N; ++i)
        for (size_t j = 0; j < N; ++j) {
          all_i_[i * N + j] = static_cast<uint32_t>(i);
          all_j_[i * N + j] = static_cast<uint32_t>(j);
        }
      pairs(bx, by, N, all_i_.data(), all_j_.data(), N * N, s);
      return;
    }
    bx_ = bx;
    by_ = by;
    N_ = N;
    const float* G = G_ = f_.forward(bx, N);
    const float* H = H_ = g_.forward(by, N);
    sgemm(Trans::No, Trans::Yes, N, N, e_, 1.0f, G, e_, H, e_, 0.0f, s, N);
    matrix_mode_ = true;
  }

  /// Gradients of the parameters for d(loss)/d(scores) of the last pairs()/matrix() call.
  void backward(const float* ds) {
    if (kind_ == CriticKind::Concat) {
      f_.backward(z_.data(), ds);
      return;
    }
    const size_t N = N_, e = e_;
    const float* G = G_;
    const float* H = H_;
    dG_.assign(N * e, 0.0f);
    dH_.assign(N * e, 0.0f);
    if (matrix_mode_) {
      sgemm(Trans::No, Trans::No, N, e, N, 1.0f, ds, N, H, e, 0.0f, dG_.data(), e);
      sgemm(Trans::Yes, Trans::No, N, e, N, 1.0f, ds, N, G, e, 0.0f, dH_.data(), e);
    } else {
      for (size_t p = 0; p < P_; ++p) {
        const size_t i = xi_[p], j = yj_[p];
        for (size_t c = 0; c < e; ++c) {
          dG_[i * e + c] += ds[p] * H[j * e + c];
          dH_[j * e + c] += ds[p] * G[i * e + c];
        }
      }
    }
    f_.backward(bx_, dG_.data());
    g_.backward(by_, dH_.data());
  }

  void step() {
    opt_f_.step(f_.params().data(), f_.grad().data());
    if (kind_ == CriticKind::Separable) opt_g_.step(g_.params().data(), g_.grad().data());
  }

 private:
  static MlpShape shape(size_t in, const std::vector<size_t>& hidden, size_t out, Activation act) {
    MlpShape s;
    s.sizes.push_back(in);
    for (size_t h : hidden) s.sizes.push_back(h);
    s.sizes.push_back(out);
    s.hidden = act;
    s.output = Activation::Identity;
    s.validate();
    return s;
  }

 private:
  CriticKind kind_;
  size_t dx_, dy_, e_;
  Mlp f_, g_;
  Adam opt_f_, opt_g_;
  std::vector<float> z_, dG_, dH_;
  std::vector<uint32_t> xi_, yj_, all_i_, all_j_;
  const float* bx_ = nullptr;
  const float* by_ = nullptr;
  const float* G_ = nullptr;
  const float* H_ = nullptr;
  size_t N_ = 0, P_ = 0;
  bool matrix_mode_ = false;
};

}  // namespace

MiBound parse_mi_bound(const char* name) {
  const std::string s = name;
  if (s == "mine") return MiBound::MINE;
  if (s == "smile") return MiBound::SMILE;
  if (s == "infonce") return MiBound::InfoNCE;
  if (s == "nwj") return MiBound::NWJ;
  fail(ErrorCode::Range, "the neural MI bound must be \"mine\", \"smile\", \"infonce\" or \"nwj\", got \"" + s + "\"");
}

CriticKind parse_critic_kind(const char* name) {
  const std::string s = name;
  if (s == "concat") return CriticKind::Concat;
  if (s == "separable") return CriticKind::Separable;
  fail(ErrorCode::Range, "the critic must be \"concat\" or \"separable\", got \"" + s + "\"");
}

const char* mi_bound_name(MiBound b) {
  switch (b) {
    case MiBound::MINE: return "mine";
    case MiBound::SMILE: return "smile";
    case MiBound::InfoNCE: return "infonce";
    case MiBound::NWJ: return "nwj";
  }
  return "smile";
}

double infonce_bound(const float* s, size_t n, float* grad) {
  require(n >= 1, ErrorCode::Range, "InfoNCE needs at least one sample");
  double total = 0;
  for (size_t i = 0; i < n; ++i) {
    const float* row = s + i * n;
    const double lse = lse_of(row, n);
    total += static_cast<double>(row[i]) - lse;
    if (grad)
      for (size_t j = 0; j < n; ++j)
        grad[i * n + j] = static_cast<float>(((i == j ? 1.0 : 0.0) - std::exp(static_cast<double>(row[j]) - lse)) / n);
  }
  return total / static_cast<double>(n) + std::log(static_cast<double>(n));
}

double js_objective(const float* s, size_t n) {
  require(n >= 2, ErrorCode::Range, "the JS objective needs at least two samples");
  double pos = 0, neg = 0;
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < n; ++j) {
      if (i == j)
        pos += softplus(-static_cast<double>(s[i * n + i]));
      else
        neg += softplus(static_cast<double>(s[i * n + j]));
    }
  return -pos / static_cast<double>(n) - neg / (static_cast<double>(n) * static_cast<double>(n - 1));
}

double smile_bound(const float* s, size_t n, double clip, float* grad) {
  require(n >= 2, ErrorCode::Range, "SMILE needs at least two samples (off-diagonal pairs)");
  require(clip > 0, ErrorCode::Range, "SMILE's clip must be > 0");
  double diag = 0;
  LogSumExp off;
  const double nn = static_cast<double>(n);
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < n; ++j) {
      const double v = s[i * n + j];
      if (i == j) {
        diag += v;
        if (grad) grad[i * n + j] = static_cast<float>(sigmoid(-v) / nn);
      } else {
        off.add(std::clamp(v, -clip, clip));
        if (grad) grad[i * n + j] = static_cast<float>(-sigmoid(v) / (nn * (nn - 1)));
      }
    }
  return diag / nn - (off.value() - std::log(nn * (nn - 1)));
}

double dv_bound(const float* t, size_t n, const float* m, size_t k) {
  require(n >= 1 && k >= 1, ErrorCode::Range, "the DV bound needs joint and marginal scores");
  double mt = 0;
  for (size_t i = 0; i < n; ++i) mt += t[i];
  return mt / static_cast<double>(n) - (lse_of(m, k) - std::log(static_cast<double>(k)));
}

double nwj_bound(const float* t, size_t n, const float* m, size_t k, float* gt, float* gm) {
  require(n >= 1 && k >= 1, ErrorCode::Range, "the NWJ bound needs joint and marginal scores");
  double mt = 0, em = 0;
  for (size_t i = 0; i < n; ++i) {
    mt += t[i];
    if (gt) gt[i] = static_cast<float>(1.0 / n);
  }
  for (size_t j = 0; j < k; ++j) {
    const double e = std::exp(static_cast<double>(m[j]) - 1.0);
    em += e;
    if (gm) gm[j] = static_cast<float>(-e / k);
  }
  return mt / static_cast<double>(n) - em / static_cast<double>(k);
}

double mine_bound(const float* t, size_t n, const float* m, size_t k, double ema_rate, double& ma, float* gt, float* gm) {
  const double value = dv_bound(t, n, m, k);
  // log of the batch mean of e^m, kept in logs so that large scores do not overflow.
  const double log_bm = lse_of(m, k) - std::log(static_cast<double>(k));
  double log_ma;
  if (!(ma > 0)) {
    log_ma = log_bm;
  } else {
    const double a = std::log1p(-ema_rate) + std::log(ma), b = std::log(ema_rate) + log_bm;
    const double hi = std::max(a, b);
    log_ma = hi + std::log(std::exp(a - hi) + std::exp(b - hi));
  }
  ma = std::exp(log_ma);
  if (!(ma > 0) || !std::isfinite(ma)) ma = std::numeric_limits<double>::min();
  if (gt)
    for (size_t i = 0; i < n; ++i) gt[i] = static_cast<float>(1.0 / n);
  if (gm)
    for (size_t j = 0; j < k; ++j)
      gm[j] = static_cast<float>(-std::exp(static_cast<double>(m[j]) - log_ma - std::log(static_cast<double>(k))));
  return value;
}

void NeuralMiOptions::validate() const {
  require(!hidden.empty() && hidden.size() <= 16, ErrorCode::Range, "the critic needs 1 to 16 hidden layers");
  for (size_t h : hidden) require(h >= 1 && h <= 65536, ErrorCode::Range, "hidden widths must be in [1, 65536]");
  require(embed_dim >= 1 && embed_dim <= 65536, ErrorCode::Range, "embed_dim must be in [1, 65536]");
  require(batch_size >= 2 && batch_size <= 65536, ErrorCode::Range, "the batch size must be in [2, 65536]");
  require(steps <= 100000000, ErrorCode::Range, "steps must be at most 1e8");
  require(std::isfinite(lr) && lr > 0, ErrorCode::Range, "the learning rate must be finite and > 0");
  require(std::isfinite(clip) && clip > 0, ErrorCode::Range, "SMILE's clip (tau) must be finite and > 0");
  require(std::isfinite(ema_rate) && ema_rate > 0 && ema_rate <= 1, ErrorCode::Range, "MINE's moving-average rate must be in (0, 1]");
  require(std::isfinite(holdout) && holdout >= 0 && holdout < 1, ErrorCode::Range, "holdout must be in [0, 1)");
}

NeuralMiResult neural_mi(const float* x, const float* y, size_t n, size_t dx, size_t dy, const NeuralMiOptions& o) {
  o.validate();
  require(dx >= 1 && dy >= 1, ErrorCode::Shape, "x and y need at least one column each");
  require(n >= 4, ErrorCode::Range, "neural MI estimation needs at least 4 samples, got " + std::to_string(n));
  require(n < (size_t{1} << 32), ErrorCode::Range, "too many samples (at most 2^32 - 1)");
  for (size_t i = 0; i < n * dx; ++i)
    require(std::isfinite(x[i]), ErrorCode::Range,
            "x contains a non-finite value at row " + std::to_string(i / dx) + ", column " + std::to_string(i % dx));
  for (size_t i = 0; i < n * dy; ++i)
    require(std::isfinite(y[i]), ErrorCode::Range,
            "y contains a non-finite value at row " + std::to_string(i / dy) + ", column " + std::to_string(i % dy));

  // Split: a seeded shuffle; the last `h` samples are evaluation-only.
  Rng rng(o.seed);
  std::vector<uint32_t> perm(n);
  std::iota(perm.begin(), perm.end(), 0u);
  shuffle(perm, rng);
  const size_t h = static_cast<size_t>(std::llround(o.holdout * static_cast<double>(n)));
  const size_t n_train = n - h;
  require(n_train >= 2, ErrorCode::Range, "holdout leaves fewer than 2 training samples");
  require(h == 0 || h >= 2, ErrorCode::Range, "holdout leaves fewer than 2 evaluation samples");
  std::vector<uint32_t> train(perm.begin(), perm.begin() + static_cast<std::ptrdiff_t>(n_train));
  std::vector<uint32_t> evals = h == 0 ? perm : std::vector<uint32_t>(perm.begin() + static_cast<std::ptrdiff_t>(n_train), perm.end());

  // Standardised copies (training statistics).
  std::vector<float> xs(x, x + n * dx), ys(y, y + n * dy);
  if (o.standardize) {
    auto zscore = [&](std::vector<float>& v, size_t d) {
      for (size_t c = 0; c < d; ++c) {
        double s = 0, ss = 0;
        for (uint32_t i : train) s += v[i * d + c];
        const double mean = s / static_cast<double>(n_train);
        for (uint32_t i : train) ss += (v[i * d + c] - mean) * (v[i * d + c] - mean);
        double sd = std::sqrt(ss / static_cast<double>(n_train));
        if (!(sd > 0)) sd = 1;
        for (size_t i = 0; i < n; ++i) v[i * d + c] = static_cast<float>((v[i * d + c] - mean) / sd);
      }
    };
    zscore(xs, dx);
    zscore(ys, dy);
  }

  const bool matrix = uses_score_matrix(o.bound);
  const size_t N = std::min(o.batch_size, n_train);
  const size_t Ne = std::min(o.batch_size, evals.size());
  Critic critic(o.critic, dx, dy, o);
  if (o.critic == CriticKind::Concat) {
    const double rows = static_cast<double>(std::max(matrix ? N : 0, Ne)) * static_cast<double>(std::max(matrix ? N : 0, Ne));
    require(rows * static_cast<double>(critic.tape_width()) <= kMaxTapeElems, ErrorCode::Range,
            "a concatenated critic on " + std::to_string(std::max(N, Ne)) + " x " + std::to_string(std::max(N, Ne)) +
                " pairs needs too much memory; use a smaller batch size or the separable critic");
  }

  NeuralMiResult r;
  r.train_samples = n_train;
  r.eval_samples = evals.size();
  r.param_count = critic.param_count();
  r.history.reserve(o.steps);

  std::vector<float> bx, by, s, g;
  auto gather = [&](const uint32_t* idx, size_t count) {
    bx.resize(count * dx);
    by.resize(count * dy);
    for (size_t r2 = 0; r2 < count; ++r2) {
      std::memcpy(&bx[r2 * dx], &xs[static_cast<size_t>(idx[r2]) * dx], dx * sizeof(float));
      std::memcpy(&by[r2 * dy], &ys[static_cast<size_t>(idx[r2]) * dy], dy * sizeof(float));
    }
  };
  auto check_scores = [&](size_t step) {
    for (float v : s)
      if (!std::isfinite(v))
        fail(ErrorCode::Range, std::string(mi_bound_name(o.bound)) + ": the critic's scores became non-finite at step " +
                                   std::to_string(step) + " (training diverged); lower the learning rate");
  };

  // ---- training ----
  Rng batch_rng(o.seed ^ 0x5bd1e9955bd1e995ULL);
  std::vector<uint32_t> order = train;
  shuffle(order, batch_rng);
  size_t pos = 0;
  double ma = -1;  // MINE's moving average, not started
  std::vector<uint32_t> xi(2 * N), yj(2 * N), pi(N);
  for (size_t step = 0; step < o.steps; ++step) {
    if (pos + N > order.size()) {
      shuffle(order, batch_rng);
      pos = 0;
    }
    gather(&order[pos], N);
    pos += N;
    double value;
    if (matrix) {
      s.resize(N * N);
      g.resize(N * N);
      critic.matrix(bx.data(), by.data(), N, s.data());
      check_scores(step);
      value = o.bound == MiBound::InfoNCE ? infonce_bound(s.data(), N, g.data()) : smile_bound(s.data(), N, o.clip, g.data());
    } else {
      std::iota(pi.begin(), pi.end(), 0u);
      shuffle(pi, batch_rng);
      for (size_t i = 0; i < N; ++i) {
        xi[i] = static_cast<uint32_t>(i);
        yj[i] = static_cast<uint32_t>(i);
        xi[N + i] = static_cast<uint32_t>(i);
        yj[N + i] = pi[i];
      }
      s.resize(2 * N);
      g.resize(2 * N);
      critic.pairs(bx.data(), by.data(), N, xi.data(), yj.data(), 2 * N, s.data());
      check_scores(step);
      value = o.bound == MiBound::MINE ? mine_bound(s.data(), N, s.data() + N, N, o.ema_rate, ma, g.data(), g.data() + N)
                                       : nwj_bound(s.data(), N, s.data() + N, N, g.data(), g.data() + N);
    }
    r.history.push_back(static_cast<float>(value));
    for (float& v : g) v = -v;  // ascend the objective: the loss is its negative
    critic.backward(g.data());
    critic.step();
  }

  // ---- evaluation on N x N matrices ----
  const size_t batches = evals.size() / Ne;
  r.eval_batch = Ne;
  r.log_batch = std::log(static_cast<double>(Ne));
  double diag_sum = 0;
  size_t diag_n = 0;
  LogSumExp off;
  size_t off_n = 0;
  s.resize(Ne * Ne);
  for (size_t b = 0; b < batches; ++b) {
    gather(&evals[b * Ne], Ne);
    critic.matrix(bx.data(), by.data(), Ne, s.data());
    check_scores(o.steps);
    double value = 0;
    if (o.bound == MiBound::InfoNCE) {
      value = infonce_bound(s.data(), Ne, nullptr);
    } else {
      double d = 0;
      LogSumExp batch_off;
      double nwj_off = 0;
      for (size_t i = 0; i < Ne; ++i)
        for (size_t j = 0; j < Ne; ++j) {
          const double v = s[i * Ne + j];
          if (i == j) {
            d += v;
          } else {
            const double vv = o.bound == MiBound::SMILE ? std::clamp(v, -o.clip, o.clip) : v;
            batch_off.add(vv);
            off.add(vv);
            if (o.bound == MiBound::NWJ) nwj_off += std::exp(v - 1.0);
          }
        }
      const double k = static_cast<double>(Ne) * static_cast<double>(Ne - 1);
      diag_sum += d;
      diag_n += Ne;
      off_n += Ne * (Ne - 1);
      value = o.bound == MiBound::NWJ ? d / static_cast<double>(Ne) - nwj_off / k
                                      : d / static_cast<double>(Ne) - (batch_off.value() - std::log(k));
    }
    r.batch_estimates.push_back(value);
  }
  if (o.bound == MiBound::MINE || o.bound == MiBound::SMILE) {
    r.estimate = diag_sum / static_cast<double>(diag_n) - (off.value() - std::log(static_cast<double>(off_n)));
  } else {
    double t = 0;
    for (double v : r.batch_estimates) t += v;
    r.estimate = t / static_cast<double>(r.batch_estimates.size());
  }
  return r;
}

}  // namespace tersor
