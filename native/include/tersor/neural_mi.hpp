// Neural variational lower bounds on mutual information, with small MLP critics (tersor/mlp.hpp)
// trained natively by Adam. Everything is in nats.
//
// A critic T(x, y) scores pairs. Two kinds:
//  * concatenated ("concat"): T(x, y) = MLP([x, y]) -> 1;
//  * separable: T(x, y) = g(x)ᵀ h(y), with two MLPs g, h -> embed_dim.
// Two ways of scoring a batch of N joint samples (x_i, y_i):
//  * the N x N matrix S[i][j] = T(x_i, y_j): the diagonal holds joint pairs, the N(N-1) off-diagonal
//    entries are samples of the product of marginals (InfoNCE, SMILE);
//  * joint vs shuffled: t_i = T(x_i, y_i) and m_i = T(x_i, y_pi(i)) for a seeded random permutation pi
//    of the batch (MINE and NWJ training). Evaluation scores every bound on the N x N matrix (all
//    N(N-1) off-diagonal pairs as marginal samples: the same expectation, lower variance).
//
// The bounds (value = what is reported; the critic ascends the gradient named):
//  * MINE (Belghazi et al. 2018): Donsker-Varadhan  I >= E_P[T] - log E_Q[e^T]. Gradient: the
//    bias-corrected one of the paper, E_P[grad T] - E_Q[e^T grad T] / ma, where ma is an exponential
//    moving average of the batch means of e^T over Q (ma <- (1 - a) ma + a mean e^T, a = ema_rate,
//    started at the first batch's mean).
//  * NWJ (Nguyen, Wainwright & Jordan 2010; f-GAN KL): I >= E_P[T] - E_Q[e^(T - 1)]. Unbiased
//    gradient; high variance when the MI is large (the e^T term).
//  * InfoNCE (van den Oord et al. 2018): I >= (1/N) sum_i [S_ii - log((1/N) sum_j e^S_ij)], which can
//    never exceed log N: it saturates at log(batch size) however large the MI is.
//  * SMILE (Song & Ermon 2020): the clipped DV  E_P[T] - log E_Q[clip(e^T, e^-tau, e^tau)], with the
//    critic trained by the Jensen-Shannon f-GAN objective
//    -E_P[softplus(-T)] - E_Q[softplus(T)] (whose optimum is T = log p(x,y)/(p(x)p(y))), as in the
//    authors' reference implementation. Smaller tau: lower variance, more bias (clipping e^T from
//    above and below moves the estimate away from DV when the log density ratio leaves
//    [-tau, tau]); tau -> inf recovers DV.
// MINE and NWJ have high variance at high MI (the variance of e^T grows like e^I); SMILE trades it
// for bias through tau; InfoNCE has low variance but is capped at log N.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "tersor/mlp.hpp"

namespace tersor {

enum class MiBound : uint8_t { MINE, SMILE, InfoNCE, NWJ };
enum class CriticKind : uint8_t { Concat, Separable };

/// "mine", "smile", "infonce", "nwj" / "concat", "separable"; anything else throws ErrorCode::Range.
MiBound parse_mi_bound(const char* name);
CriticKind parse_critic_kind(const char* name);
const char* mi_bound_name(MiBound b);
/// True for the bounds scored on the N x N matrix (InfoNCE, SMILE).
inline bool uses_score_matrix(MiBound b) { return b == MiBound::InfoNCE || b == MiBound::SMILE; }

// ---- the bounds and their gradients with respect to the scores ---------------------------------
// `grad` (when non-null) receives d(objective)/d(score), the direction the critic ascends.

/// InfoNCE on S (n x n, row i = x_i, column j = y_j). Value <= log n.
double infonce_bound(const float* s, size_t n, float* grad);
/// SMILE on S: returns the clipped DV (off-diagonal pairs as Q); grad = d(JS objective)/dS.
double smile_bound(const float* s, size_t n, double clip, float* grad);
/// The Jensen-Shannon f-GAN objective on S (the quantity SMILE's critic maximises).
double js_objective(const float* s, size_t n);
/// Donsker-Varadhan on joint scores t (n) and marginal scores m (k): mean t - log mean e^m.
double dv_bound(const float* t, size_t n, const float* m, size_t k);
/// NWJ on joint t (n) and marginal m (k); gradients into gt (n) and gm (k) when non-null.
double nwj_bound(const float* t, size_t n, const float* m, size_t k, float* gt, float* gm);
/// MINE: returns DV; updates the moving average `ma` (negative = not started) and writes the
/// bias-corrected gradient into gt, gm.
double mine_bound(const float* t, size_t n, const float* m, size_t k, double ema_rate, double& ma, float* gt, float* gm);

// ---- training and estimation ------------------------------------------------------------------

struct NeuralMiOptions {
  MiBound bound = MiBound::SMILE;
  CriticKind critic = CriticKind::Concat;
  std::vector<size_t> hidden = {64, 64};  // hidden widths of each MLP
  Activation activation = Activation::ReLU;
  size_t embed_dim = 32;                  // separable critic: output size of g and h
  size_t batch_size = 128;
  size_t steps = 500;
  double lr = 5e-4;                       // Adam learning rate
  double clip = 5.0;                      // SMILE's tau (> 0)
  double ema_rate = 0.01;                 // MINE's moving-average rate in (0, 1]
  double holdout = 0.0;                   // fraction of samples kept out of training for evaluation
  bool standardize = true;                // z-score every column of x and y (training statistics)
  uint64_t seed = 0;
  void validate() const;
};

struct NeuralMiResult {
  /// The bound on the evaluation samples: DV-type bounds (MINE, SMILE) pool the joint and
  /// marginal terms over all evaluation batches; NWJ and InfoNCE average the batch values.
  double estimate = 0;
  /// The bound on each evaluation batch.
  std::vector<double> batch_estimates;
  /// The bound's value on each training batch (step), as the critic was trained.
  std::vector<float> history;
  /// log(evaluation batch size): InfoNCE's ceiling.
  double log_batch = 0;
  size_t train_samples = 0, eval_samples = 0, eval_batch = 0;
  size_t param_count = 0;
};

/// Trains a critic on (x, y) (n rows each; dx and dy columns, row-major) and estimates the bound.
/// The data are split by a seeded shuffle: the last round(holdout * n) samples are evaluation-only
/// (holdout = 0: training and evaluation use all samples). Training draws batches from a seeded
/// reshuffle every epoch. Evaluation scores consecutive batches of N = min(batch_size, evaluation
/// samples) on all N x N pairs (a remainder of fewer than N samples is left out, so every batch has
/// the same ceiling log N). Deterministic for a seed (and thread count).
NeuralMiResult neural_mi(const float* x, const float* y, size_t n, size_t dx, size_t dy, const NeuralMiOptions& o);

}  // namespace tersor
