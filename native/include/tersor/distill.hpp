// Knowledge-distillation kernels: fused KD losses (forward value and gradient w.r.t. the student's
// logits, log-softmax fused in, one pass set per row, rows in parallel) and the teacher-output
// sparsifiers behind @tersor/distill's teacher-logit cache (top-k and random-sampling KD).
//
// Notation, per row (one token position) over a vocabulary of V entries:
//   z  student logits, s = z / T, q = softmax(s), log q = s - logsumexp(s);
//   p  teacher distribution at temperature T:
//        dense logits t:      p = softmax(t / T);
//        sparse log-probs:    the row p1 rebuilt from (id, log p1) pairs and a tail (below), then
//                             p ∝ p1^(1/T) (the same as softmax(t / T) when p1 = softmax(t));
//        sparse weights:      the unbiased random-sampling estimate p̂ (ids, importance weights),
//                             used as is (only forward KL / GKD β = 0 accept it).
//   Sparse log-prob tail: `Tail::Zero` keeps only the listed ids (renormalised over them);
//   `Tail::Uniform` spreads the remaining mass r (given per row as log r, or 1 - Σ p1_i) evenly over
//   the V - k ids not listed.
//
// Losses (per row; nats):
//   ForwardKL  T²·KL(p‖q) = T²·Σ p (log p − log q)                  (Hinton et al. 2015, ×T² keeps
//              the gradient's scale across temperatures); ∂/∂z = T (q − p)
//   ReverseKL  T²·KL(q‖p);  ∂/∂z = T·q ⊙ (log q − log p − KL(q‖p))
//   GJSD(β)    generalised Jensen-Shannon divergence exactly as TRL's GKD trainer computes it
//              (Agarwal et al. 2024, "On-policy distillation of language models"; trl
//              GKDTrainer.generalized_jsd_loss): m = β p + (1 − β) q,
//              β KL(p‖m) + (1 − β) KL(q‖m) for 0 < β < 1, KL(p‖q) at β = 0, KL(q‖p) at β = 1;
//              no T² factor (TRL has none). ∂/∂s = (1 − β) q ⊙ (log(q/m) − KL(q‖m)).
//   TotalVariation  T²·½ Σ |p − q| (subgradient sign(0) = 0).
//   TTM        KL(p_γ‖softmax(z)) with the student at temperature 1 and only the teacher
//              power-transformed: p_γ ∝ p1^γ, γ = 1/T (Zheng & Yang 2024, "Knowledge distillation
//              based on transformed teacher matching", ICLR).
//   WTTM       U_γ(p1)·KL(p_γ‖softmax(z)) with the per-sample weight U_γ(p1) = Σ_j p1_j^γ (same paper).
//   MixCE      −(η + (1 − η) q_y) log q_y with q_y = softmax(z)_y detached (Zhang et al. 2023, "MixCE:
//              training autoregressive language models by mixing forward and reverse
//              cross-entropies", ACL; their practical approximation): η = 1 is cross-entropy.
//   CE         −log softmax(z)_y on the hard label y.
// Each row's loss is kd_weight·(the loss above) + ce_weight·CE(y). A row whose label is < 0 is
// ignored (no loss, zero gradient); labels are required when ce_weight > 0 or for MixCE/CE.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace tersor::distill {

enum class Loss { ForwardKL, ReverseKL, GJSD, TotalVariation, TTM, WTTM, MixCE, CE };
enum class TeacherKind { None, Dense, SparseLogProb, SparseWeight };
enum class Tail { Zero, Uniform };

const char* loss_name(Loss l);

template <class Real>
struct Teacher {
  TeacherKind kind = TeacherKind::None;
  /// Dense: [rows, vocab] logits.
  const Real* logits = nullptr;
  /// Sparse: [rows, k] ids (-1 pads) and values (log-probs, or importance weights).
  const int32_t* ids = nullptr;
  const Real* values = nullptr;
  size_t k = 0;
  /// SparseLogProb: optional [rows] log of the mass outside the listed ids (else 1 − Σ exp(value)).
  const Real* tail_log_mass = nullptr;
  Tail tail = Tail::Zero;
};

struct LossOptions {
  Loss loss = Loss::ForwardKL;
  double temperature = 1.0;
  double beta = 0.5;  ///< GJSD
  double eta = 0.5;   ///< MixCE
  double kd_weight = 1.0;
  double ce_weight = 0.0;
  /// dlogits = scale · ∂(sum of row losses)/∂z (e.g. 1 / count for a mean).
  double scale = 1.0;
};

struct LossResult {
  double loss = 0;  ///< Σ over counted rows of kd_weight·kd + ce_weight·ce
  double kd = 0;    ///< Σ of the distillation term alone
  double ce = 0;    ///< Σ of the hard-label cross-entropy (0 when no labels)
  size_t count = 0; ///< rows counted
};

/// Fused loss and (when dlogits is not null) its gradient w.r.t. the student logits `student`
/// ([rows, vocab], row-major); `labels` ([rows]) may be null when neither CE nor MixCE needs it.
/// Validates everything (E_RANGE / E_SHAPE); parallel over rows; results do not depend on the
/// thread count.
template <class Real>
LossResult kd_loss(const Real* student, size_t rows, size_t vocab, const Teacher<Real>& teacher, const int32_t* labels,
                   const LossOptions& options, Real* dlogits);

/// Per row of `logits` ([rows, vocab]) at temperature T: the k most probable ids (descending, ties
/// by lower id), their log-probabilities log softmax(t/T), and the log of the mass outside them.
void topk_logprobs(const float* logits, size_t rows, size_t vocab, size_t k, double temperature, int32_t* ids,
                   float* logprobs, float* tail_log_mass);

/// Random-sampling KD (Anshumann et al. 2025, "Sparse logit sampling: accelerating knowledge
/// distillation in LLMs"): per row, K ids drawn with replacement from the proposal
/// r ∝ p^(1/proposal_temperature) (p = softmax(t/T); proposal_temperature = 1 samples the teacher
/// itself), merged into unique ids with importance weights w_j = (count_j / K) · p_j / r_j: an
/// unbiased estimate of p (E[w_j] = p_j). Unique ids first in order of first draw, then id -1 /
/// weight 0 pads to K. Row r draws from tersor::Rng(seed + row_offset + r), so rows are
/// reproducible independently (a resumed cache gets the same draws).
void sample_weights(const float* logits, size_t rows, size_t vocab, size_t samples, double temperature,
                    double proposal_temperature, uint64_t seed, uint64_t row_offset, int32_t* ids, float* weights);

}  // namespace tersor::distill
