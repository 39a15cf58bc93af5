// The trainable transformer (tersor/train.hpp): parameters, forward with saved activations,
// backward, AdamW.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "tersor/error.hpp"
#include "tersor/parallel.hpp"
#include "tersor/rng.hpp"
#include "tersor/train.hpp"

namespace tersor::train {

template <class T>
struct TrainableTransformer<T>::LayerParams {
  long attn_w = -1, attn_b = -1, q_w = -1, q_b = -1, k_w = -1, k_b = -1, v_w = -1, v_b = -1, o_w = -1, o_b = -1,
       mlp_w = -1, mlp_b = -1, gate_w = -1, up_w = -1, up_b = -1, down_w = -1, down_b = -1;
  /// q, k, v weights adjacent (no qkv biases): one [q | k | v] product.
  bool qkv_fused = false;
};

/// Saved activations of one forward (sizes for n = batch * seq rows).
template <class T>
struct TrainableTransformer<T>::Acts {
  struct Layer {
    // qkv: [n, q | k | v] (RoPE applied); gu: [n, gate | up] (gated) or [n, up] (pre-activation)
    std::vector<T> x_in, h1, mean1, rstd1, qkv, att, lse, x_mid, h2, mean2, rstd2, gu, act;
  };
  std::vector<Layer> layers;
  std::vector<T> x_out, hf, meanf, rstdf;
  // backward work buffers
  std::vector<T> dx, dh, datt, dqkv, dact, dgu, dlogits;
  size_t n = 0;
};

namespace {
/// y[r, 0..cols) += b for rows rows `ldy` apart.
template <class T>
void add_bias(T* y, size_t ldy, const T* b, size_t rows, size_t cols) {
  for (size_t r = 0; r < rows; ++r) {
    T* yr = y + r * ldy;
    for (size_t i = 0; i < cols; ++i) yr[i] += b[i];
  }
}
/// db += column sums of dy[rows, cols] (rows `ldy` apart), in row order.
template <class T>
void column_sums(const T* dy, size_t ldy, size_t rows, size_t cols, T* db) {
  for (size_t r = 0; r < rows; ++r) {
    const T* d = dy + r * ldy;
    for (size_t i = 0; i < cols; ++i) db[i] += d[i];
  }
}
bool ends_with(const std::string& s, const char* suffix) {
  const size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}
}  // namespace

template <class T>
TrainableTransformer<T>::TrainableTransformer(TransformerConfig cfg, uint64_t seed, double init_std) : cfg_(std::move(cfg)) {
  transformer_config_validate(cfg_);
  require(std::isfinite(init_std) && init_std > 0, ErrorCode::Range,
          "initStd must be finite and positive, got " + std::to_string(init_std));
  const TransformerConfig& c = cfg_;
  // The canonical names, shapes and order are the inference runtime's.
  const Transformer layout(c);
  size_t off = 0;
  for (const WeightSpec& s : layout.weight_specs()) {
    ParamInfo p;
    p.name = s.name;
    p.shape = s.shape;
    p.offset = off;
    p.size = s.elements();
    p.decay = s.shape.size() == 2 && s.name != "embed" && s.name != "posEmbed";
    off += p.size;
    params_info_.push_back(std::move(p));
  }
  n_params_ = off;
  w_.assign(n_params_, T(0));
  g_.assign(n_params_, T(0));
  m_.assign(n_params_, T(0));
  v_.assign(n_params_, T(0));

  auto find = [&](const std::string& name) -> long {
    for (const ParamInfo& p : params_info_)
      if (p.name == name) return static_cast<long>(p.offset);
    return -1;
  };
  embed_ = find("embed");
  pos_ = find("posEmbed");
  final_w_ = find("finalNorm.weight");
  final_b_ = find("finalNorm.bias");
  head_ = c.tie_embeddings ? embed_ : find("lmHead");
  layers_.resize(c.layers);
  for (size_t l = 0; l < c.layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    LayerParams& L = layers_[l];
    L.attn_w = find(p + "attnNorm.weight");
    L.attn_b = find(p + "attnNorm.bias");
    L.q_w = find(p + "q.weight");
    L.q_b = find(p + "q.bias");
    L.k_w = find(p + "k.weight");
    L.k_b = find(p + "k.bias");
    L.v_w = find(p + "v.weight");
    L.v_b = find(p + "v.bias");
    L.o_w = find(p + "o.weight");
    L.o_b = find(p + "o.bias");
    L.mlp_w = find(p + "mlpNorm.weight");
    L.mlp_b = find(p + "mlpNorm.bias");
    L.gate_w = find(p + "gate.weight");
    L.up_w = find(p + "up.weight");
    L.up_b = find(p + "up.bias");
    L.down_w = find(p + "down.weight");
    L.down_b = find(p + "down.bias");
    L.qkv_fused = L.k_w == L.q_w + static_cast<long>(c.heads * c.head_dim * c.hidden) &&
                  L.v_w == L.k_w + static_cast<long>(c.kv_heads * c.head_dim * c.hidden);
    if (c.gated_mlp)
      require(L.up_w == L.gate_w + static_cast<long>(c.intermediate * c.hidden), ErrorCode::Native,
              "train: gate and up weights are expected to be adjacent");
  }

  // Init, in parameter order.
  Rng rng(seed);
  const double out_scale = 1.0 / std::sqrt(2.0 * static_cast<double>(c.layers));
  for (const ParamInfo& p : params_info_) {
    T* dst = w_.data() + p.offset;
    if (p.shape.size() == 1) {
      const bool is_norm_weight = ends_with(p.name, "Norm.weight");
      std::fill(dst, dst + p.size, is_norm_weight ? T(1) : T(0));
      continue;
    }
    const bool out_proj = ends_with(p.name, ".o.weight") || ends_with(p.name, ".down.weight");
    const double sd = init_std * (out_proj ? out_scale : 1.0);
    for (size_t i = 0; i < p.size; ++i) dst[i] = static_cast<T>(sd * rng.next_normal());
  }
  if (c.rope) rope_ = RopeTable<T>(c.rope_config, c.max_positions);
  acts_.resize(1);
}

template <class T>
TrainableTransformer<T>::~TrainableTransformer() = default;

template <class T>
const ParamInfo& TrainableTransformer<T>::parameter(const std::string& name) const {
  for (const ParamInfo& p : params_info_)
    if (p.name == name) return p;
  fail(ErrorCode::Format, "this model has no parameter named '" + name + "'");
}

template <class T>
void TrainableTransformer<T>::zero_grad() {
  std::fill(g_.begin(), g_.end(), T(0));
}

template <class T>
void TrainableTransformer<T>::check_batch(size_t tokens_size, const int32_t* tokens, size_t batch, size_t seq) const {
  require(batch >= 1, ErrorCode::Range, "batch must be at least 1");
  require(seq >= 1, ErrorCode::Range, "seqLen must be at least 1");
  require(batch < (size_t{1} << 31) && seq < (size_t{1} << 31) && batch * seq < (size_t{1} << 31), ErrorCode::Range,
          "batch * seqLen must be below 2^31");
  require(tokens_size == batch * seq, ErrorCode::Shape,
          "tokens has " + std::to_string(tokens_size) + " entries, expected batch * seqLen = " +
              std::to_string(batch) + " * " + std::to_string(seq) + " = " + std::to_string(batch * seq));
  require(seq <= cfg_.max_positions, ErrorCode::Range,
          "seqLen " + std::to_string(seq) + " exceeds config.maxPositions (" + std::to_string(cfg_.max_positions) + ")");
  for (size_t i = 0; i < tokens_size; ++i)
    require(tokens[i] >= 0 && static_cast<size_t>(tokens[i]) < cfg_.vocab_size, ErrorCode::Range,
            "token id " + std::to_string(tokens[i]) + " at index " + std::to_string(i) +
                " is outside the vocabulary [0, " + std::to_string(cfg_.vocab_size) + ")");
}

template <class T>
void TrainableTransformer<T>::forward(const int32_t* tokens, size_t batch, size_t seq) {
  const TransformerConfig& c = cfg_;
  const size_t n = batch * seq, E = c.hidden, H = c.heads, KV = c.kv_heads, D = c.head_dim, HD = H * D, KVD = KV * D,
               I = c.intermediate, V = c.vocab_size;
  const bool ln = c.norm == NormKind::LayerNorm;
  const Activation act = activation_of(c.activation);
  logits_ready_ = false;
  batch_ = batch;
  seq_ = seq;
  n_ = n;
  tokens_.assign(tokens, tokens + n);
  positions_.resize(n);
  for (size_t b = 0; b < batch; ++b)
    for (size_t t = 0; t < seq; ++t) positions_[b * seq + t] = static_cast<int32_t>(t);

  Acts& A = acts_[0];
  if (A.n != n || A.layers.size() != c.layers) {
    A.layers.assign(c.layers, typename Acts::Layer{});
    for (auto& L : A.layers) {
      L.x_in.resize(n * E);
      L.h1.resize(n * E);
      L.mean1.resize(ln ? n : 0);
      L.rstd1.resize(n);
      L.qkv.resize(n * (HD + 2 * KVD));
      L.att.resize(n * HD);
      L.lse.resize(n * H);
      L.x_mid.resize(n * E);
      L.h2.resize(n * E);
      L.mean2.resize(ln ? n : 0);
      L.rstd2.resize(n);
      L.gu.resize(c.gated_mlp ? 2 * n * I : n * I);
      L.act.resize(n * I);
    }
    A.x_out.resize(n * E);
    A.hf.resize(n * E);
    A.meanf.resize(ln ? n : 0);
    A.rstdf.resize(n);
    A.dx.resize(n * E);
    A.dh.resize(n * E);
    A.datt.resize(n * HD);
    A.dqkv.resize(n * (HD + 2 * KVD));
    A.dact.resize(n * I);
    A.dgu.resize(c.gated_mlp ? 2 * n * I : n * I);
    A.n = n;
  }
  logits_.resize(n * V);

  auto norm = [&](const T* x, long wi, long bi, T* y, T* mean, T* rstd) {
    if (ln) layernorm_forward<T>(x, P(wi), P(bi), y, mean, rstd, n, E, c.norm_eps);
    else rmsnorm_forward<T>(x, P(wi), y, rstd, n, E, c.norm_eps);
  };

  // embeddings
  T* x0 = A.layers[0].x_in.data();
  embedding_forward<T>(P(embed_), V, E, tokens, n, x0);
  if (c.learned_positions) {
    const T* pe = P(pos_);
    for (size_t r = 0; r < n; ++r)
      for (size_t i = 0; i < E; ++i) x0[r * E + i] += pe[static_cast<size_t>(positions_[r]) * E + i];
  }
  const size_t QKV = HD + 2 * KVD;
  AttentionShape as{batch, seq, H, KV, D, c.sliding_window, QKV, QKV};
  for (size_t l = 0; l < c.layers; ++l) {
    auto& L = A.layers[l];
    const LayerParams& W = layers_[l];
    norm(L.x_in.data(), W.attn_w, W.attn_b, L.h1.data(), L.mean1.data(), L.rstd1.data());
    T* qkv = L.qkv.data();
    if (W.qkv_fused) {
      gemm<T>(Trans::No, Trans::Yes, n, QKV, E, T(1), L.h1.data(), E, P(W.q_w), E, T(0), qkv, QKV);
    } else {
      const long wi[3] = {W.q_w, W.k_w, W.v_w}, bi[3] = {W.q_b, W.k_b, W.v_b};
      const size_t col[3] = {0, HD, HD + KVD}, width[3] = {HD, KVD, KVD};
      for (int j = 0; j < 3; ++j) {
        gemm<T>(Trans::No, Trans::Yes, n, width[j], E, T(1), L.h1.data(), E, P(wi[j]), E, T(0), qkv + col[j], QKV);
        if (bi[j] >= 0) add_bias(qkv + col[j], QKV, P(bi[j]), n, width[j]);
      }
    }
    if (c.rope) {
      rope_rotate<T>(qkv, n, H, positions_.data(), rope_, false, QKV);
      rope_rotate<T>(qkv + HD, n, KV, positions_.data(), rope_, false, QKV);
    }
    attention_forward<T>(qkv, qkv + HD, qkv + HD + KVD, L.att.data(), L.lse.data(), as);
    std::memcpy(L.x_mid.data(), L.x_in.data(), n * E * sizeof(T));
    // x_mid = x_in + att Wo^T + bo
    gemm<T>(Trans::No, Trans::Yes, n, E, HD, T(1), L.att.data(), HD, P(W.o_w), HD, T(1), L.x_mid.data(), E);
    if (W.o_b >= 0) add_bias(L.x_mid.data(), E, P(W.o_b), n, E);
    norm(L.x_mid.data(), W.mlp_w, W.mlp_b, L.h2.data(), L.mean2.data(), L.rstd2.data());
    if (c.gated_mlp) {
      // gate.weight and up.weight are adjacent: one [2I, E] product
      gemm<T>(Trans::No, Trans::Yes, n, 2 * I, E, T(1), L.h2.data(), E, P(W.gate_w), E, T(0), L.gu.data(), 2 * I);
      if (W.up_b >= 0) add_bias(L.gu.data() + I, 2 * I, P(W.up_b), n, I);
      gated_forward_fused<T>(act, L.gu.data(), L.act.data(), n, I);
    } else {
      linear_forward<T>(L.h2.data(), P(W.up_w), P(W.up_b), L.gu.data(), n, E, I);
      activation_forward<T>(act, L.gu.data(), L.act.data(), n * I);
    }
    T* x_next = l + 1 < c.layers ? A.layers[l + 1].x_in.data() : A.x_out.data();
    std::memcpy(x_next, L.x_mid.data(), n * E * sizeof(T));
    gemm<T>(Trans::No, Trans::Yes, n, E, I, T(1), L.act.data(), I, P(W.down_w), I, T(1), x_next, E);
    if (W.down_b >= 0) add_bias(x_next, E, P(W.down_b), n, E);
  }
  norm(A.x_out.data(), final_w_, final_b_, A.hf.data(), A.meanf.data(), A.rstdf.data());
  linear_forward<T>(A.hf.data(), P(head_), nullptr, logits_.data(), n, E, V);
}

template <class T>
void TrainableTransformer<T>::backward(const T* dlogits) {
  const TransformerConfig& c = cfg_;
  const size_t n = n_, E = c.hidden, H = c.heads, KV = c.kv_heads, D = c.head_dim, HD = H * D, KVD = KV * D,
               I = c.intermediate, V = c.vocab_size;
  const bool ln = c.norm == NormKind::LayerNorm;
  const Activation act = activation_of(c.activation);
  Acts& A = acts_[0];

  std::vector<T>&dx = A.dx, &dh = A.dh, &datt = A.datt, &dqkv = A.dqkv, &dact = A.dact, &dgu = A.dgu;
  std::fill(dx.begin(), dx.end(), T(0));
  const size_t QKV = HD + 2 * KVD;
  auto norm_back = [&](const T* dy, const T* x, long wi, long bi, const T* mean, const T* rstd) {
    if (ln) layernorm_backward<T>(dy, x, P(wi), mean, rstd, dx.data(), G(wi), G(bi), n, E);
    else rmsnorm_backward<T>(dy, x, P(wi), rstd, dx.data(), G(wi), n, E);
  };

  // LM head (tied: the embedding's gradient receives this and the lookup's below)
  linear_backward<T>(A.hf.data(), P(head_), dlogits, dh.data(), false, G(head_), nullptr, n, E, V);
  norm_back(dh.data(), A.x_out.data(), final_w_, final_b_, A.meanf.data(), A.rstdf.data());

  AttentionShape as{batch_, seq_, H, KV, D, c.sliding_window, QKV, QKV};
  for (size_t li = c.layers; li-- > 0;) {
    auto& L = A.layers[li];
    const LayerParams& W = layers_[li];
    // MLP: x_out = x_mid + down(act) (+ bdown)
    linear_backward<T>(L.act.data(), P(W.down_w), dx.data(), dact.data(), false, G(W.down_w), G(W.down_b), n, I, E);
    if (c.gated_mlp) {
      gated_backward_fused<T>(act, L.gu.data(), dact.data(), dgu.data(), n, I);
      // [gate; up] as one [2I, E] matrix
      linear_backward<T>(L.h2.data(), P(W.gate_w), dgu.data(), dh.data(), false, G(W.gate_w), nullptr, n, E, 2 * I);
      if (W.up_b >= 0) column_sums(dgu.data() + I, 2 * I, n, I, G(W.up_b));
    } else {
      activation_backward<T>(act, L.gu.data(), dact.data(), dgu.data(), n * I);
      linear_backward<T>(L.h2.data(), P(W.up_w), dgu.data(), dh.data(), false, G(W.up_w), G(W.up_b), n, E, I);
    }
    norm_back(dh.data(), L.x_mid.data(), W.mlp_w, W.mlp_b, L.mean2.data(), L.rstd2.data());
    // attention: x_mid = x_in + o(att) (+ bo)
    linear_backward<T>(L.att.data(), P(W.o_w), dx.data(), datt.data(), false, G(W.o_w), G(W.o_b), n, HD, E);
    const T* qkv = L.qkv.data();
    T* dq = dqkv.data();
    attention_backward<T>(qkv, qkv + HD, qkv + HD + KVD, L.att.data(), L.lse.data(), datt.data(), dq, dq + HD,
                          dq + HD + KVD, as);
    if (c.rope) {
      rope_rotate<T>(dq, n, H, positions_.data(), rope_, true, QKV);
      rope_rotate<T>(dq + HD, n, KV, positions_.data(), rope_, true, QKV);
    }
    if (W.qkv_fused) {
      linear_backward<T>(L.h1.data(), P(W.q_w), dq, dh.data(), false, G(W.q_w), nullptr, n, E, QKV);
    } else {
      const long wi[3] = {W.q_w, W.k_w, W.v_w}, bi[3] = {W.q_b, W.k_b, W.v_b};
      const size_t col[3] = {0, HD, HD + KVD}, width[3] = {HD, KVD, KVD};
      for (int j = 0; j < 3; ++j) {
        gemm<T>(Trans::No, Trans::No, n, E, width[j], T(1), dq + col[j], QKV, P(wi[j]), E, j ? T(1) : T(0), dh.data(), E);
        gemm<T>(Trans::Yes, Trans::No, width[j], E, n, T(1), dq + col[j], QKV, L.h1.data(), E, T(1), G(wi[j]), E);
        if (bi[j] >= 0) column_sums(dq + col[j], QKV, n, width[j], G(bi[j]));
      }
    }
    norm_back(dh.data(), L.x_in.data(), W.attn_w, W.attn_b, L.mean1.data(), L.rstd1.data());
  }
  embedding_backward<T>(dx.data(), tokens_.data(), n, E, G(embed_));
  if (c.learned_positions) {
    // position t receives the sum over the batch, in batch order
    T* gp = G(pos_);
    for (size_t b = 0; b < batch_; ++b)
      for (size_t t = 0; t < seq_; ++t) {
        T* dst = gp + t * E;
        const T* src = dx.data() + (b * seq_ + t) * E;
        for (size_t i = 0; i < E; ++i) dst[i] += src[i];
      }
  }
}

template <class T>
LossSum TrainableTransformer<T>::step(const int32_t* tokens, size_t batch, size_t seq, const Targets& targets,
                                      double loss_scale) {
  check_batch(batch * seq, tokens, batch, seq);
  validate_targets(targets, batch * seq, cfg_.vocab_size);
  require(std::isfinite(loss_scale), ErrorCode::Range, "lossScale must be finite");
  forward(tokens, batch, seq);
  std::vector<T>& dlogits = acts_[0].dlogits;
  dlogits.resize(n_ * cfg_.vocab_size);
  const LossSum out = cross_entropy<T>(logits_.data(), n_, cfg_.vocab_size, targets, dlogits.data(), loss_scale);
  backward(dlogits.data());
  return out;
}

template <class T>
LossSum TrainableTransformer<T>::evaluate(const int32_t* tokens, size_t batch, size_t seq, const Targets& targets) {
  check_batch(batch * seq, tokens, batch, seq);
  validate_targets(targets, batch * seq, cfg_.vocab_size);
  forward(tokens, batch, seq);
  return cross_entropy<T>(logits_.data(), n_, cfg_.vocab_size, targets, nullptr, 1.0);
}

template <class T>
const std::vector<T>& TrainableTransformer<T>::forward_logits(const int32_t* tokens, size_t batch, size_t seq) {
  check_batch(batch * seq, tokens, batch, seq);
  forward(tokens, batch, seq);
  logits_ready_ = true;
  return logits_;
}

template <class T>
void TrainableTransformer<T>::backward_logits(const T* dlogits, size_t size) {
  require(logits_ready_, ErrorCode::Range, "backwardLogits: no forwardLogits to go back from (call forwardLogits first)");
  require(size == n_ * cfg_.vocab_size, ErrorCode::Shape,
          "dlogits has " + std::to_string(size) + " entries, expected rows * vocab = " + std::to_string(n_) + " * " +
              std::to_string(cfg_.vocab_size));
  for (size_t i = 0; i < size; ++i)
    require(std::isfinite(static_cast<double>(dlogits[i])), ErrorCode::Range,
            "dlogits[" + std::to_string(i) + "] is not finite");
  backward(dlogits);
}

template <class T>
AdamWResult TrainableTransformer<T>::adamw(const AdamWOptions& o) {
  auto fin = [](double v) { return std::isfinite(v); };
  require(fin(o.lr) && o.lr >= 0, ErrorCode::Range, "adamw: lr must be finite and >= 0");
  require(fin(o.beta1) && o.beta1 >= 0 && o.beta1 < 1, ErrorCode::Range, "adamw: beta1 must be in [0, 1)");
  require(fin(o.beta2) && o.beta2 >= 0 && o.beta2 < 1, ErrorCode::Range, "adamw: beta2 must be in [0, 1)");
  require(fin(o.eps) && o.eps > 0, ErrorCode::Range, "adamw: eps must be finite and positive");
  require(fin(o.weight_decay) && o.weight_decay >= 0, ErrorCode::Range, "adamw: weightDecay must be finite and >= 0");
  require(o.step >= 1, ErrorCode::Range, "adamw: step must be a positive integer (1-based)");
  require(fin(o.max_grad_norm) && o.max_grad_norm >= 0, ErrorCode::Range, "adamw: maxGradNorm must be finite and >= 0");
  AdamWResult r;
  r.grad_norm = global_norm<T>(g_.data(), n_params_);
  require(std::isfinite(r.grad_norm), ErrorCode::Range, "adamw: the gradient norm is not finite; nothing was updated");
  double coef = 1.0;
  if (o.max_grad_norm > 0 && r.grad_norm > o.max_grad_norm) {
    coef = o.max_grad_norm / (r.grad_norm + 1e-6);
    r.clipped = true;
  }
  const double bc1 = 1.0 - std::pow(o.beta1, static_cast<double>(o.step));
  const double bc2 = 1.0 - std::pow(o.beta2, static_cast<double>(o.step));
  const T b1 = static_cast<T>(o.beta1), b2 = static_cast<T>(o.beta2), c = static_cast<T>(coef);
  const T step_size = static_cast<T>(o.lr / bc1), inv_sqrt_bc2 = static_cast<T>(1.0 / std::sqrt(bc2));
  const T eps = static_cast<T>(o.eps);
  const int nt = n_params_ < (size_t{1} << 16) ? 1 : num_threads();
#pragma omp parallel num_threads(nt)
  for (const ParamInfo& p : params_info_) {
    const T decay = static_cast<T>(p.decay ? 1.0 - o.lr * o.weight_decay : 1.0);
    T* w = w_.data() + p.offset;
    const T* g = g_.data() + p.offset;
    T* m = m_.data() + p.offset;
    T* v = v_.data() + p.offset;
    const std::ptrdiff_t sz = static_cast<std::ptrdiff_t>(p.size);
#pragma omp for schedule(static) nowait
    for (std::ptrdiff_t i = 0; i < sz; ++i) {
      const T gi = g[i] * c;
      m[i] = b1 * m[i] + (T(1) - b1) * gi;
      v[i] = b2 * v[i] + (T(1) - b2) * gi * gi;
      const T denom = std::sqrt(v[i]) * inv_sqrt_bc2 + eps;
      w[i] = w[i] * decay - step_size * m[i] / denom;
    }
  }
  return r;
}

template class TrainableTransformer<float>;
template class TrainableTransformer<double>;

}  // namespace tersor::train
