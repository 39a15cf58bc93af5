// tersor's native trainer: forward with saved activations, backward for every op of the inference
// runtime's architecture family (transformer.hpp), fused log-softmax cross-entropy with hard, dense
// soft and sparse soft targets, and AdamW (Loshchilov & Hutter, "Decoupled Weight Decay
// Regularization", ICLR 2019). Written in the manner of llm.c: one forward that keeps what the
// backward needs, one hand-written backward per op, flat parameter / gradient / moment buffers.
//
// Every kernel is templated on the scalar type T (float for training, double for finite-difference
// gradient checks) and explicitly instantiated for both in native/model/train*.cpp. Matrix products
// go through train::gemm: tersor::sgemm for float, a plain blocked loop for double.
//
// Semantics (the same as Transformer's forward, so logits agree to f32 rounding):
//   x = embed[tokens] (+ posEmbed[t]);  per layer: h = norm(x); q, k, v = linears(h) (+ bias);
//   RoPE on q, k; x += attention(q, k, v; causal, GQA, sliding window) Wo^T (+ bo);
//   h = norm(x); x += down(act(gate(h)) * up(h)) (gated) or down(act(up(h) + bup)) + bdown;
//   logits = norm(x; final) lm_head^T (lm_head = embed when tied).
// Each of the `batch` sequences of `seq` tokens sits at positions 0 .. seq-1.
//
// Attention backward: per (sequence, kv head) task, the query heads of the group one after the
// other, query rows in blocks of 64; each block recomputes its scores from the saved log-sum-exp
// (FlashAttention's recomputation, Dao et al. 2022), so scratch is O(64 * seq) per thread, never
// O(seq^2) per head.
//
// Determinism: every reduction has a fixed order that does not depend on the thread count or on
// scheduling (row-wise ops own their rows; column reductions (bias, norm weights, embedding rows)
// are split by column; the GQA sum over heads of a group runs inside one task; the gradient norm is
// summed in double over fixed chunks in order). sgemm's result for a given thread count is fixed,
// so single-thread runs are bitwise reproducible.
//
// Errors (tersor::Error): E_SHAPE for wrong array lengths, E_RANGE for token ids or target ids
// outside the vocabulary, non-finite or negative target values, positions beyond a learned
// position table, non-finite options; checked before any state changes.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "tersor/gemm.hpp"
#include "tersor/ops.hpp"
#include "tersor/transformer.hpp"

namespace tersor::train {

// ---- building blocks (each with its backward) --------------------------------------------------

/// C = alpha op(A) op(B) + beta C, row-major with leading dimensions (tersor::sgemm for float).
template <class T>
void gemm(Trans ta, Trans tb, size_t m, size_t n, size_t k, T alpha, const T* a, size_t lda, const T* b, size_t ldb,
          T beta, T* c, size_t ldc);

/// out[t] = table[ids[t]]; E_RANGE for an id outside [0, vocab).
template <class T>
void embedding_forward(const T* table, size_t vocab, size_t dim, const int32_t* ids, size_t n, T* out);
/// dtable[ids[t]] += dout[t] (ids already checked).
template <class T>
void embedding_backward(const T* dout, const int32_t* ids, size_t n, size_t dim, T* dtable);

/// RMSNorm y = x * rstd * w, rstd = 1 / sqrt(mean(x^2) + eps) saved per row.
template <class T>
void rmsnorm_forward(const T* x, const T* w, T* y, T* rstd, size_t rows, size_t dim, double eps);
/// dx += ∂L/∂x, dw += ∂L/∂w from dy (dw may be nullptr).
template <class T>
void rmsnorm_backward(const T* dy, const T* x, const T* w, const T* rstd, T* dx, T* dw, size_t rows, size_t dim);

/// LayerNorm y = (x - mean) * rstd * w + b (biased variance), mean and rstd saved per row.
template <class T>
void layernorm_forward(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd, size_t rows, size_t dim,
                       double eps);
/// dx += ∂L/∂x, dw += ∂L/∂w, db += ∂L/∂b (dw, db may be nullptr).
template <class T>
void layernorm_backward(const T* dy, const T* x, const T* w, const T* mean, const T* rstd, T* dx, T* dw, T* db,
                        size_t rows, size_t dim);

/// cos / sin of position * inv_freq (angles in double, as RopeCache) for positions [0, positions).
template <class T>
struct RopeTable {
  RopeConfig cfg;
  size_t positions = 0, half = 0;
  std::vector<T> cos, sin;
  RopeTable() = default;
  RopeTable(const RopeConfig& c, size_t positions);
};
/// In place on x = [tokens, heads, head_dim] (token t at position pos[t] < table.positions; rows
/// `token_stride` apart, 0 = heads * head_dim).
/// inverse = false: the rotation (forward); true: its transpose (the backward of the forward).
template <class T>
void rope_rotate(T* x, size_t tokens, size_t heads, const int32_t* pos, const RopeTable<T>& table, bool inverse,
                 size_t token_stride = 0);

/// Causal attention over `batch` sequences of `seq` tokens, q/out [batch*seq, heads*head_dim],
/// k/v [batch*seq, kv_heads*head_dim], GQA (head h reads kv head h / (heads/kv_heads)), optional
/// sliding window (0 = none), scale 1/sqrt(head_dim). q, k, v (and dq, dk, dv) rows may be views
/// into a fused [tokens, q | k | v] projection: row strides q_stride / kv_stride (0 = dense).
struct AttentionShape {
  size_t batch = 0, seq = 0, heads = 0, kv_heads = 0, head_dim = 0, window = 0;
  size_t q_stride = 0, kv_stride = 0;
};
/// Also saves lse[(b*seq + t)*heads + h] = log sum_j exp(score) for the backward.
template <class T>
void attention_forward(const T* q, const T* k, const T* v, T* out, T* lse, const AttentionShape& s);
/// dq, dk, dv are overwritten.
template <class T>
void attention_backward(const T* q, const T* k, const T* v, const T* out, const T* lse, const T* dout, T* dq, T* dk,
                        T* dv, const AttentionShape& s);

enum class Activation : uint8_t { Silu, GeluTanh, GeluErf };
Activation activation_of(MlpActivation a);
/// y = act(x).
template <class T>
void activation_forward(Activation act, const T* x, T* y, size_t n);
/// dx = dy * act'(x) (overwritten).
template <class T>
void activation_backward(Activation act, const T* x, const T* dy, T* dx, size_t n);
/// Gated MLP: out = act(g) * u.
template <class T>
void gated_forward(Activation act, const T* g, const T* u, T* out, size_t n);
/// dg, du overwritten.
template <class T>
void gated_backward(Activation act, const T* g, const T* u, const T* dout, T* dg, T* du, size_t n);
/// Row-wise over a fused [rows, gate | up] buffer gu (row 2 * cols): out[rows, cols] = act(gate) * up.
template <class T>
void gated_forward_fused(Activation act, const T* gu, T* out, size_t rows, size_t cols);
/// dgu[rows, dgate | dup] from dout[rows, cols].
template <class T>
void gated_backward_fused(Activation act, const T* gu, const T* dout, T* dgu, size_t rows, size_t cols);

/// y[rows, out] = x W^T (+ b), W = [out, in].
template <class T>
void linear_forward(const T* x, const T* w, const T* b, T* y, size_t rows, size_t in, size_t out);
/// dx (= or += when accumulate_dx; nullptr skips) dy W;  dw += dy^T x;  db += colsum(dy) (nullptr skips).
template <class T>
void linear_backward(const T* x, const T* w, const T* dy, T* dx, bool accumulate_dx, T* dw, T* db, size_t rows,
                     size_t in, size_t out);

// ---- loss --------------------------------------------------------------------------------------

enum class TargetKind : uint8_t { Hard, Dense, Sparse };

/// Targets for `rows` positions (see packages/native/src/binding/train.ts):
///  Hard: ids[rows], -1 ignores the position: loss -log q[id].
///  Dense: probs[rows * vocab], loss -Σ_j p_j log q_j; an all-zero row is ignored.
///  Sparse: ids / weights [rows * k], loss -Σ_i w_i log q[id_i]; id -1 pads; a row with no id is ignored.
struct Targets {
  TargetKind kind = TargetKind::Hard;
  const int32_t* ids = nullptr;
  const float* probs = nullptr;
  const float* weights = nullptr;
  size_t k = 0;
  /// Elements at ids / probs / weights (checked against rows, vocab, k).
  size_t ids_size = 0, probs_size = 0, weights_size = 0;
};

/// Checks lengths (E_SHAPE), ids in [-1, vocab) and values finite and >= 0 (E_RANGE).
void validate_targets(const Targets& t, size_t rows, size_t vocab);

struct LossSum {
  double loss = 0;
  size_t count = 0;
};

/// Fused log-softmax + cross-entropy over [rows, vocab] logits (normaliser in double). When dlogits
/// is given it receives scale * ∂(loss sum)/∂logits = scale * ((Σ target) softmax - target), zero
/// on ignored rows. Targets must be validated.
template <class T>
LossSum cross_entropy(const T* logits, size_t rows, size_t vocab, const Targets& t, T* dlogits, double scale);

// ---- the model ---------------------------------------------------------------------------------

struct ParamInfo {
  std::string name;
  std::vector<size_t> shape;
  size_t offset = 0, size = 0;
  bool decay = false;
};

struct AdamWOptions {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  /// 1-based update count (bias corrections).
  uint64_t step = 1;
  /// Global-norm clipping threshold; 0 = off.
  double max_grad_norm = 0.0;
};

struct AdamWResult {
  double grad_norm = 0;
  bool clipped = false;
};

/// Global L2 norm of g[0..n) summed in double over fixed chunks, in order.
template <class T>
double global_norm(const T* g, size_t n);

/// A trainable transformer holding master weights, gradients and AdamW moments as flat T buffers in
/// the canonical order of Transformer::weight_specs().
template <class T>
class TrainableTransformer {
 public:
  /// Validates the config; init from `seed`: normal(0, init_std) linears and embeddings, the output
  /// projections (o, down) scaled by 1/sqrt(2 layers), norms 1, biases 0 (draws in parameter order).
  explicit TrainableTransformer(TransformerConfig cfg, uint64_t seed = 0, double init_std = 0.02);
  ~TrainableTransformer();
  TrainableTransformer(const TrainableTransformer&) = delete;
  TrainableTransformer& operator=(const TrainableTransformer&) = delete;

  const TransformerConfig& config() const { return cfg_; }
  const std::vector<ParamInfo>& parameters() const { return params_info_; }
  size_t parameter_count() const { return n_params_; }
  /// The parameter named `name` (E_FORMAT when unknown).
  const ParamInfo& parameter(const std::string& name) const;
  T* params() { return w_.data(); }
  T* grads() { return g_.data(); }
  T* adam_m() { return m_.data(); }
  T* adam_v() { return v_.data(); }
  const T* params() const { return w_.data(); }
  const T* grads() const { return g_.data(); }
  void zero_grad();

  /// Checks tokens (length batch*seq, ids in range, positions) — E_SHAPE / E_RANGE.
  void check_batch(size_t tokens_size, const int32_t* tokens, size_t batch, size_t seq) const;

  /// Forward + loss + backward; adds loss_scale * ∂(loss sum)/∂θ into the gradients.
  LossSum step(const int32_t* tokens, size_t batch, size_t seq, const Targets& targets, double loss_scale = 1.0);
  /// Forward + loss, no gradients.
  LossSum evaluate(const int32_t* tokens, size_t batch, size_t seq, const Targets& targets);
  /// Forward; returns the [batch*seq, vocab] logits and keeps the activations for backward_logits.
  const std::vector<T>& forward_logits(const int32_t* tokens, size_t batch, size_t seq);
  /// Backward from dlogits ([rows, vocab] of the last forward_logits); adds into the gradients.
  /// E_RANGE when no forward_logits preceded it, E_SHAPE for a wrong length, E_RANGE for non-finite values.
  void backward_logits(const T* dlogits, size_t size);
  /// Rows of the last forward_logits (0 when none is pending).
  size_t pending_rows() const { return logits_ready_ ? n_ : 0; }

  /// One AdamW update from the accumulated gradients (PyTorch's AdamW: p -= lr*wd*p on decayed
  /// tensors, then p -= lr * m̂ / (sqrt(v̂) + eps)); clipping scales the gradients used by the
  /// update by max_norm / (norm + 1e-6) when norm > max_norm (the stored gradients stay as they
  /// are). E_RANGE for bad options or a non-finite gradient norm (nothing updated then).
  AdamWResult adamw(const AdamWOptions& o);

  /// Exclusive use for bindings.
  bool try_acquire() { return !busy_.exchange(true, std::memory_order_acq_rel); }
  void release() { busy_.store(false, std::memory_order_release); }

 private:
  struct LayerParams;
  struct Acts;
  void forward(const int32_t* tokens, size_t batch, size_t seq);
  void backward(const T* dlogits);
  T* P(long off) { return off < 0 ? nullptr : w_.data() + off; }
  T* G(long off) { return off < 0 ? nullptr : g_.data() + off; }

  TransformerConfig cfg_;
  std::vector<ParamInfo> params_info_;
  size_t n_params_ = 0;
  std::vector<T> w_, g_, m_, v_;
  std::vector<LayerParams> layers_;
  long embed_ = -1, pos_ = -1, final_w_ = -1, final_b_ = -1, head_ = -1;
  RopeTable<T> rope_;
  std::vector<Acts> acts_;  // one (allocated on first use)
  std::vector<T> logits_;
  std::vector<int32_t> tokens_, positions_;
  size_t batch_ = 0, seq_ = 0, n_ = 0;
  bool logits_ready_ = false;
  std::atomic<bool> busy_{false};
};

extern template class TrainableTransformer<float>;
extern template class TrainableTransformer<double>;

}  // namespace tersor::train
