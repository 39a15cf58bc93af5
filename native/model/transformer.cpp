// The transformer runtime (see tersor/transformer.hpp): config validation, weights, KV cache,
// activation capture, forward pass and sequence scoring.
#include "tersor/transformer.hpp"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <new>
#include <string>

#include "tersor/attention.hpp"
#include "tersor/error.hpp"
#include "tersor/gemm.hpp"
#include "tersor/half.hpp"
#include "tersor/kv.hpp"
#include "tersor/parallel.hpp"
#include "tersor/quant_linear.hpp"

namespace tersor {
namespace {

constexpr size_t kMaxDim = size_t{1} << 31;
// The RoPE table covers min(max_positions, this); later positions are computed on the fly with the
// same formula (identical values), so the cap only bounds the table's memory (64 MiB at head_dim 128).
constexpr size_t kRopeTableMax = size_t{1} << 17;
// Rows per f32 block of the gram capture before folding into f64.
constexpr size_t kGramBlockRows = 256;
// Tokens per batch of score_sequences (more when one sequence is longer).
constexpr size_t kScoreBatchTokens = 512;
// Up to this many rows a linear layer uses the matrix-vector kernel instead of sgemm.
constexpr size_t kMatvecMaxRows = 4;

std::string shape_str(const std::vector<size_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

size_t round_up(size_t a, size_t b) { return (a + b - 1) / b * b; }

/// 64-byte aligned float storage (uninitialised).
struct AlignedFree {
  void operator()(float* p) const { std::free(p); }
};
using AlignedPtr = std::unique_ptr<float, AlignedFree>;

AlignedPtr aligned_floats(size_t n) {
  if (n > (std::numeric_limits<size_t>::max() - 64) / sizeof(float)) throw std::bad_alloc();
  const size_t bytes = round_up(std::max<size_t>(n, 1) * sizeof(float), 64);
  void* p = std::aligned_alloc(64, bytes);
  if (!p) throw std::bad_alloc();
  return AlignedPtr(static_cast<float*>(p));
}

// ---- small-row linear: y = x W^T streaming W once ----------------------------------------------

// out[r][o] = dot(x[r], w[o]) for R rows of x and O rows of w.
template <int R, int O>
inline void dot_tile(const float* x, size_t ldx, const float* w, size_t in, float out[R][O]) {
  __m256 acc[R][O];
  for (int r = 0; r < R; ++r)
    for (int o = 0; o < O; ++o) acc[r][o] = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 8 <= in; i += 8) {
    __m256 xv[R];
    for (int r = 0; r < R; ++r) xv[r] = _mm256_loadu_ps(x + r * ldx + i);
    for (int o = 0; o < O; ++o) {
      const __m256 wv = _mm256_loadu_ps(w + o * in + i);
      for (int r = 0; r < R; ++r) acc[r][o] = _mm256_fmadd_ps(xv[r], wv, acc[r][o]);
    }
  }
  if (i < in) {
    const __m256i m = simd::tail_mask(in - i);
    __m256 xv[R];
    for (int r = 0; r < R; ++r) xv[r] = _mm256_maskload_ps(x + r * ldx + i, m);
    for (int o = 0; o < O; ++o) {
      const __m256 wv = _mm256_maskload_ps(w + o * in + i, m);
      for (int r = 0; r < R; ++r) acc[r][o] = _mm256_fmadd_ps(xv[r], wv, acc[r][o]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int o = 0; o < O; ++o) out[r][o] = simd::hsum8(acc[r][o]);
}

/// One linear layer of a (possibly fused) projection: y[rows, out] (row stride ldy) = x W^T + bias.
struct Proj {
  const float* w;
  const float* bias;
  size_t out;
  float* y;
  size_t ldy;
  const QuantLinear* q = nullptr;  // quantized weight (w is then nullptr): quant_linear_apply
};

/// R rows of x against every job's weights, all jobs in ONE parallel region (q/k/v or gate/up of
/// a decode step share a fork/join). Output tiles of O weight rows are spread over the threads.
template <int R, int O>
void matvec_rows(const float* x, size_t ldx, size_t in, const Proj* jobs, size_t nj, size_t r0, bool accumulate) {
  size_t first[5] = {0, 0, 0, 0, 0};  // first tile of each job (nj <= 4)
  for (size_t j = 0; j < nj; ++j) first[j + 1] = first[j] + (jobs[j].out + O - 1) / O;
  const size_t tiles = first[nj];
  auto tile = [&](size_t t) {
    size_t j = 0;
    while (t >= first[j + 1]) ++j;
    const Proj& p = jobs[j];
    const size_t o0 = (t - first[j]) * O, out = p.out;
    float res[R][O];
    if (o0 + O <= out) {
      dot_tile<R, O>(x, ldx, p.w + o0 * in, in, res);
    } else {
      for (size_t o = o0; o < out; ++o) {
        float one[R][1];
        dot_tile<R, 1>(x, ldx, p.w + o * in, in, one);
        for (int r = 0; r < R; ++r) res[r][o - o0] = one[r][0];
      }
    }
    const size_t n = std::min<size_t>(O, out - o0);
    for (int r = 0; r < R; ++r)
      for (size_t o = 0; o < n; ++o) {
        const float v = res[r][o] + (p.bias ? p.bias[o0 + o] : 0.f);
        float& dst = p.y[(r0 + static_cast<size_t>(r)) * p.ldy + o0 + o];
        dst = accumulate ? dst + v : v;
      }
  };
  const double work = static_cast<double>(tiles * O) * static_cast<double>(in);
  const int nt = work < 65536.0 ? 1 : static_cast<int>(std::min<size_t>(static_cast<size_t>(num_threads()), tiles));
  if (nt <= 1) {
    for (size_t t = 0; t < tiles; ++t) tile(t);
    return;
  }
#pragma omp parallel for num_threads(nt) schedule(static)
  for (std::ptrdiff_t t = 0; t < static_cast<std::ptrdiff_t>(tiles); ++t) tile(static_cast<size_t>(t));
}

/// For each job: y = (accumulate ? y : 0) + x[rows, in] W^T + bias, W = [out, in], x dense. Up to
/// kMatvecMaxRows rows stream each weight once through the matrix-vector kernel (jobs fused in one
/// parallel region); more rows go through sgemm (tersor::linear), one job at a time.
void project_jobs(const float* x, size_t rows, size_t in, const Proj* jobs, size_t nj, bool accumulate) {
  if (rows == 0) return;
  bool any_quant = false;
  for (size_t j = 0; j < nj; ++j) any_quant = any_quant || jobs[j].q;
  if (any_quant) {  // quantized weights one job at a time (quant_formats.hpp kernels)
    for (size_t j = 0; j < nj; ++j) {
      if (jobs[j].q) quant_linear_apply(*jobs[j].q, x, rows, jobs[j].bias, jobs[j].y, jobs[j].ldy, accumulate);
      else project_jobs(x, rows, in, &jobs[j], 1, accumulate);
    }
    return;
  }
  if (rows <= kMatvecMaxRows) {
    // Rows in groups the register file holds; each group reads the weights once.
    size_t r = 0;
    for (; r + 2 <= rows; r += 2) matvec_rows<2, 4>(x + r * in, in, in, jobs, nj, r, accumulate);
    if (r < rows) matvec_rows<1, 8>(x + r * in, in, in, jobs, nj, r, accumulate);
    return;
  }
  for (size_t j = 0; j < nj; ++j) {
    const Proj& p = jobs[j];
    if (p.out == 0) continue;
    if (!accumulate) {
      linear(x, p.w, p.bias, p.y, rows, in, p.out, WeightLayout::OutIn, in, p.ldy);
      continue;
    }
    sgemm(Trans::No, Trans::Yes, rows, p.out, in, 1.f, x, in, p.w, in, 1.f, p.y, p.ldy);
    if (p.bias)
      for (size_t r = 0; r < rows; ++r) {
        float* yr = p.y + r * p.ldy;
        for (size_t o = 0; o < p.out; ++o) yr[o] += p.bias[o];
      }
  }
}

void project(const float* x, size_t rows, size_t in, const float* w, const float* bias, size_t out, float* y,
             size_t ldy, bool accumulate, const QuantLinear* q = nullptr) {
  const Proj p{w, bias, out, y, ldy, q};
  project_jobs(x, rows, in, &p, 1, accumulate);
}

/// y = x / (1 + exp(-x)) in place.
void silu_inplace(float* x, size_t n) {
  float tmp[512];
  for (size_t b = 0; b < n; b += 512) {
    const size_t m = std::min<size_t>(512, n - b);
    for (size_t i = 0; i < m; ++i) tmp[i] = -x[b + i];
    exp_f32(tmp, tmp, m);
    for (size_t i = 0; i < m; ++i) x[b + i] = x[b + i] / (1.f + tmp[i]);
  }
}

/// log softmax(z)[target] with the normaliser summed in f64.
double row_logprob(const float* z, size_t V, size_t target) {
  float m = -std::numeric_limits<float>::infinity();
  for (size_t i = 0; i < V; ++i) m = z[i] > m ? z[i] : m;
  if (std::isinf(m) && m < 0) return -std::numeric_limits<double>::infinity();
  const __m256 mv = _mm256_set1_ps(m);
  __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
  size_t i = 0;
  for (; i + 8 <= V; i += 8) {
    const __m256 e = simd::exp8(_mm256_sub_ps(_mm256_loadu_ps(z + i), mv));
    s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
    s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, _mm256_add_pd(s0, s1));
  double sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
  for (; i < V; ++i) sum += std::exp(static_cast<double>(z[i]) - static_cast<double>(m));
  return (static_cast<double>(z[target]) - static_cast<double>(m)) - std::log(sum);
}

void require_positive(size_t v, const char* field) {
  require(v > 0, ErrorCode::Range, std::string("config.") + field + " must be positive");
  require(v < kMaxDim, ErrorCode::Range, std::string("config.") + field + " must be below 2^31, got " + std::to_string(v));
}

bool finite_positive(double v) { return std::isfinite(v) && v > 0; }

}  // namespace

// ---- config ------------------------------------------------------------------------------------

void transformer_config_validate(TransformerConfig& c) {
  require_positive(c.vocab_size, "vocabSize");
  require_positive(c.hidden, "hidden");
  require_positive(c.intermediate, "intermediate");
  require_positive(c.layers, "layers");
  require_positive(c.heads, "heads");
  require_positive(c.kv_heads, "kvHeads");
  require_positive(c.head_dim, "headDim");
  require_positive(c.max_positions, "maxPositions");
  require(std::isfinite(c.norm_eps) && c.norm_eps >= 0, ErrorCode::Range,
          "config.normEps must be finite and >= 0, got " + std::to_string(c.norm_eps));
  require(c.heads % c.kv_heads == 0, ErrorCode::Shape,
          "config.heads (" + std::to_string(c.heads) + ") must be a multiple of config.kvHeads (" +
              std::to_string(c.kv_heads) + ")");
  require(c.head_dim <= kMaxAttentionHeadDim, ErrorCode::Shape,
          "config.headDim (" + std::to_string(c.head_dim) + ") exceeds the attention kernels' limit of " +
              std::to_string(kMaxAttentionHeadDim));
  require(c.sliding_window < kMaxDim, ErrorCode::Range, "config.slidingWindow must be below 2^31");
  if (c.rope) {
    require(!c.learned_positions, ErrorCode::Range,
            "config.rope and config.learnedPositions are exclusive (one position scheme per model)");
    RopeConfig& r = c.rope_config;
    r.head_dim = c.head_dim;
    require(r.rotary_dim <= c.head_dim, ErrorCode::Shape,
            "config.rope.rotaryDim (" + std::to_string(r.rotary_dim) + ") exceeds config.headDim (" +
                std::to_string(c.head_dim) + ")");
    if (r.rotary_dim == 0)
      require(c.head_dim % 2 == 0, ErrorCode::Shape,
              "config.headDim (" + std::to_string(c.head_dim) + ") must be even with RoPE");
    else
      require(r.rotary_dim % 2 == 0, ErrorCode::Shape,
              "config.rope.rotaryDim (" + std::to_string(r.rotary_dim) + ") must be even");
    require(finite_positive(r.theta), ErrorCode::Range, "config.rope.theta must be finite and positive");
    if (r.scaling != RopeScaling::None)
      require(finite_positive(r.factor), ErrorCode::Range, "config.rope.factor must be finite and positive");
    if (r.scaling == RopeScaling::Llama3) {
      require(finite_positive(r.low_freq_factor), ErrorCode::Range,
              "config.rope.lowFreqFactor must be finite and positive");
      require(std::isfinite(r.high_freq_factor) && r.high_freq_factor > r.low_freq_factor, ErrorCode::Range,
              "config.rope.highFreqFactor must exceed config.rope.lowFreqFactor");
      require(finite_positive(r.original_max_position), ErrorCode::Range,
              "config.rope.originalMaxPosition must be finite and positive");
    }
    rope_validate(r);
  }
}

size_t WeightSpec::elements() const {
  size_t n = 1;
  for (size_t d : shape) n *= d;
  return n;
}

// ---- KV cache ----------------------------------------------------------------------------------

KvCache::KvCache(const Transformer& model, size_t capacity)
    : owner_(&model), layers_(model.config().layers), capacity_(capacity),
      row_(model.config().kv_heads * model.config().head_dim) {
  require(capacity >= 1, ErrorCode::Range, "cache capacity must be at least 1 token");
  require(capacity < kMaxDim, ErrorCode::Range,
          "cache capacity must be below 2^31 tokens, got " + std::to_string(capacity));
  const size_t n = 2 * layers_ * capacity_ * row_;
  data_ = aligned_floats(n).release();
}

KvCache::KvCache(const Transformer& model, size_t capacity, const kv::KvConfig& config)
    : owner_(&model), layers_(model.config().layers), capacity_(capacity),
      row_(model.config().kv_heads * model.config().head_dim) {
  require(capacity >= 1, ErrorCode::Range, "cache capacity must be at least 1 token");
  require(capacity < kMaxDim, ErrorCode::Range,
          "cache capacity must be below 2^31 tokens, got " + std::to_string(capacity));
  const TransformerConfig& c = model.config();
  kv::KvShape shape;
  shape.layers = c.layers;
  shape.heads = c.heads;
  shape.kv_heads = c.kv_heads;
  shape.head_dim = c.head_dim;
  shape.window = c.sliding_window;
  compressed_ = std::make_unique<kv::CompressedKv>(config, shape, capacity, model.rope_cache());
}

KvCache::~KvCache() { std::free(data_); }

size_t KvCache::bytes() const {
  return compressed_ ? compressed_->bytes() : 2 * layers_ * capacity_ * row_ * sizeof(float);
}

void KvCache::clear() {
  if (compressed_) compressed_->reset();
  length_.store(0, std::memory_order_release);
}

void KvCache::truncate(size_t length) {
  const size_t now = this->length();
  require(length <= now, ErrorCode::Range,
          "truncate: length " + std::to_string(length) + " exceeds the " + std::to_string(now) + " tokens held");
  if (compressed_) compressed_->truncate(length);  // E_RANGE for eviction methods (kv.hpp)
  length_.store(length, std::memory_order_release);
}

// ---- capture -----------------------------------------------------------------------------------

Capture::Capture(const Transformer& model, CaptureMode mode, std::vector<size_t> layers) : owner_(&model), mode_(mode) {
  const TransformerConfig& c = model.config();
  if (layers.empty())
    for (size_t l = 0; l < c.layers; ++l) layers.push_back(l);
  for (size_t l : layers)
    require(l < c.layers, ErrorCode::Range,
            "capture: layer " + std::to_string(l) + " is outside [0, " + std::to_string(c.layers) + ")");
  std::sort(layers.begin(), layers.end());
  layers.erase(std::unique(layers.begin(), layers.end()), layers.end());
  slot_of_layer_.assign(c.layers, -1);
  const size_t cols[kSites] = {c.hidden, c.heads * c.head_dim, c.hidden, c.intermediate};
  for (size_t l : layers) {
    const size_t base = entries_.size();
    slot_of_layer_[l] = static_cast<long>(base);
    for (size_t s = 0; s < kSites; ++s) {
      Entry e;
      e.cols = cols[s];
      entries_.push_back(std::move(e));
    }
    const std::string p = "layers." + std::to_string(l) + ".";
    auto name = [&](const char* lin, size_t site) {
      names_.push_back(p + lin);
      by_name_[p + lin] = base + site;
    };
    name("q", kAttnIn);
    name("k", kAttnIn);
    name("v", kAttnIn);
    name("o", kOIn);
    if (c.gated_mlp) name("gate", kMlpIn);
    name("up", kMlpIn);
    name("down", kDownIn);
  }
}

const Capture::Entry& Capture::entry(const std::string& name) const {
  auto it = by_name_.find(name);
  require(it != by_name_.end(), ErrorCode::Range, "capture: no linear named '" + name + "' is captured");
  return entries_[it->second];
}

size_t Capture::rows(const std::string& name) const { return entry(name).rows; }
size_t Capture::cols(const std::string& name) const { return entry(name).cols; }

std::vector<double> Capture::gram(const std::string& name) const {
  require(mode_ == CaptureMode::Gram, ErrorCode::Range, "capture: gram() on a raw capture");
  const Entry& e = entry(name);
  if (e.gram.empty()) return std::vector<double>(e.cols * e.cols, 0.0);
  return e.gram;
}

std::vector<float> Capture::raw(const std::string& name) const {
  require(mode_ == CaptureMode::Raw, ErrorCode::Range, "capture: raw() on a gram capture");
  return entry(name).raw;
}

void Capture::clear() {
  for (Entry& e : entries_) {
    e.rows = 0;
    std::vector<double>().swap(e.gram);
    std::vector<float>().swap(e.raw);
  }
}

void Capture::add(size_t layer, Site site, const float* x, size_t rows) {
  if (!wants(layer) || rows == 0) return;
  Entry& e = entries_[static_cast<size_t>(slot_of_layer_[layer]) + site];
  const size_t n = e.cols;
  if (mode_ == CaptureMode::Raw) {
    e.raw.insert(e.raw.end(), x, x + rows * n);
  } else {
    if (e.gram.empty()) e.gram.assign(n * n, 0.0);
    // Column strips keep the f32 scratch at most ~4 MiB.
    const size_t strip = std::min(n, std::max<size_t>(16, (size_t{1} << 20) / n));
    AlignedPtr tmp = aligned_floats(n * strip);
    for (size_t r0 = 0; r0 < rows; r0 += kGramBlockRows) {
      const size_t rb = std::min(kGramBlockRows, rows - r0);
      const float* xb = x + r0 * n;
      for (size_t j0 = 0; j0 < n; j0 += strip) {
        const size_t jw = std::min(strip, n - j0);
        sgemm(Trans::Yes, Trans::No, n, jw, rb, 1.f, xb, n, xb + j0, n, 0.f, tmp.get(), jw);
        for (size_t i = 0; i < n; ++i) {
          double* g = e.gram.data() + i * n + j0;
          const float* t = tmp.get() + i * jw;
          for (size_t j = 0; j < jw; ++j) g[j] += static_cast<double>(t[j]);
        }
      }
    }
  }
  e.rows += rows;
}

// ---- transformer -------------------------------------------------------------------------------

struct Transformer::Slot {
  AlignedPtr data;
  std::shared_ptr<const QuantLinear> quant;  // set_quantized_weight (then data is empty)
};

struct Transformer::Layer {
  long attn_norm_w = -1, attn_norm_b = -1, q_w = -1, q_b = -1, k_w = -1, k_b = -1, v_w = -1, v_b = -1, o_w = -1,
       o_b = -1, mlp_norm_w = -1, mlp_norm_b = -1, gate_w = -1, up_w = -1, up_b = -1, down_w = -1, down_b = -1;
};

/// Rows [begin, begin + len) of a batch form one sequence starting at position `pos0`.
struct Transformer::Segment {
  size_t begin, len, pos0;
};

/// Work buffers of one call, allocated once for all layers.
struct Transformer::Work {
  AlignedPtr mem;
  float *x = nullptr, *h = nullptr, *q = nullptr, *k = nullptr, *v = nullptr, *att = nullptr, *g = nullptr,
        *u = nullptr;
  std::vector<int32_t> pos;

  Work(const TransformerConfig& c, size_t n, bool with_cache) : pos(n) {
    const size_t E = c.hidden, HD = c.heads * c.head_dim, KVD = c.kv_heads * c.head_dim, I = c.intermediate;
    // Each buffer starts on a 64-byte boundary.
    const size_t sizes[8] = {n * E, n * E, n * HD, with_cache ? 0 : n * KVD, with_cache ? 0 : n * KVD, n * HD,
                             c.gated_mlp ? n * I : 0, n * I};
    size_t total = 0;
    for (size_t s : sizes) total += round_up(s, 16);
    mem = aligned_floats(total);
    float* p = mem.get();
    float** dst[8] = {&x, &h, &q, &k, &v, &att, &g, &u};
    for (int i = 0; i < 8; ++i) {
      *dst[i] = sizes[i] ? p : nullptr;
      p += round_up(sizes[i], 16);
    }
  }
};

Transformer::Transformer(TransformerConfig cfg) : cfg_(std::move(cfg)) {
  transformer_config_validate(cfg_);
  const TransformerConfig& c = cfg_;
  const size_t E = c.hidden, HD = c.heads * c.head_dim, KVD = c.kv_heads * c.head_dim, I = c.intermediate;
  const bool ln = c.norm == NormKind::LayerNorm;
  auto add = [&](const std::string& name, std::vector<size_t> shape) -> long {
    index_[name] = specs_.size();
    specs_.push_back({name, std::move(shape)});
    slots_.push_back(std::make_unique<Slot>());
    return static_cast<long>(specs_.size() - 1);
  };
  embed_ = add("embed", {c.vocab_size, E});
  if (c.learned_positions) pos_embed_ = add("posEmbed", {c.max_positions, E});
  layer_idx_.resize(c.layers);
  for (size_t l = 0; l < c.layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    Layer& L = layer_idx_[l];
    L.attn_norm_w = add(p + "attnNorm.weight", {E});
    if (ln) L.attn_norm_b = add(p + "attnNorm.bias", {E});
    L.q_w = add(p + "q.weight", {HD, E});
    if (c.qkv_bias) L.q_b = add(p + "q.bias", {HD});
    L.k_w = add(p + "k.weight", {KVD, E});
    if (c.qkv_bias) L.k_b = add(p + "k.bias", {KVD});
    L.v_w = add(p + "v.weight", {KVD, E});
    if (c.qkv_bias) L.v_b = add(p + "v.bias", {KVD});
    L.o_w = add(p + "o.weight", {E, HD});
    if (c.out_bias) L.o_b = add(p + "o.bias", {E});
    L.mlp_norm_w = add(p + "mlpNorm.weight", {E});
    if (ln) L.mlp_norm_b = add(p + "mlpNorm.bias", {E});
    if (c.gated_mlp) L.gate_w = add(p + "gate.weight", {I, E});
    L.up_w = add(p + "up.weight", {I, E});
    if (c.out_bias) L.up_b = add(p + "up.bias", {I});
    L.down_w = add(p + "down.weight", {E, I});
    if (c.out_bias) L.down_b = add(p + "down.bias", {E});
  }
  final_w_ = add("finalNorm.weight", {E});
  if (ln) final_b_ = add("finalNorm.bias", {E});
  if (!c.tie_embeddings) lm_head_ = add("lmHead", {c.vocab_size, E});
  if (c.rope) rope_ = std::make_unique<RopeCache>(c.rope_config, std::min(c.max_positions, kRopeTableMax));
}

Transformer::~Transformer() = default;

void Transformer::set_weight(const std::string& name, const void* data, WeightDType dtype, size_t count,
                             const std::vector<size_t>& shape) {
  auto it = index_.find(name);
  require(it != index_.end(), ErrorCode::Format, "setWeight: this config has no weight named '" + name + "'");
  const WeightSpec& spec = specs_[it->second];
  require(shape == spec.shape, ErrorCode::Shape,
          "setWeight: " + name + " has shape " + shape_str(shape) + ", expected " + shape_str(spec.shape));
  const size_t n = spec.elements();
  require(count == n, ErrorCode::Shape,
          "setWeight: " + name + " data has " + std::to_string(count) + " elements, shape " + shape_str(shape) +
              " needs " + std::to_string(n));
  std::unique_lock<std::shared_mutex> lock(weights_mutex_, std::try_to_lock);
  require(lock.owns_lock(), ErrorCode::Range, "setWeight: " + name + " cannot change while a forward pass is running");
  Slot& slot = *slots_[it->second];
  slot.quant.reset();
  if (!slot.data) slot.data = aligned_floats(n);
  float* dst = slot.data.get();
  switch (dtype) {
    case WeightDType::F32: std::memcpy(dst, data, n * sizeof(float)); break;
    case WeightDType::F16: f16_to_f32(static_cast<const uint16_t*>(data), dst, n); break;
    case WeightDType::BF16: bf16_to_f32(static_cast<const uint16_t*>(data), dst, n); break;
  }
}

const float* Transformer::weight(const std::string& name) const {
  auto it = index_.find(name);
  require(it != index_.end(), ErrorCode::Format, "this config has no weight named '" + name + "'");
  return slots_[it->second]->data.get();
}

void Transformer::set_quantized_weight(const std::string& name, const std::string& scheme, const uint8_t* bytes,
                                       size_t nbytes, const float* lora_a, const float* lora_b, size_t rank) {
  auto it = index_.find(name);
  require(it != index_.end(), ErrorCode::Format, "setQuantizedWeight: this config has no weight named '" + name + "'");
  const WeightSpec& spec = specs_[it->second];
  const bool linear_w = name == "lmHead" || (name.rfind("layers.", 0) == 0 && name.size() > 7 &&
                                             name.compare(name.size() - 7, 7, ".weight") == 0 && spec.shape.size() == 2);
  require(linear_w, ErrorCode::Format, "setQuantizedWeight: " + name + " is not a linear layer's weight");
  auto q = make_quant_linear(parse_quant_scheme(scheme), spec.shape[0], spec.shape[1], bytes, nbytes, lora_a, lora_b, rank);
  std::unique_lock<std::shared_mutex> lock(weights_mutex_, std::try_to_lock);
  require(lock.owns_lock(), ErrorCode::Range, "setQuantizedWeight: " + name + " cannot change while a forward pass is running");
  Slot& slot = *slots_[it->second];
  slot.data.reset();
  slot.quant = std::move(q);
}

bool Transformer::is_quantized(const std::string& name) const {
  auto it = index_.find(name);
  require(it != index_.end(), ErrorCode::Format, "this config has no weight named '" + name + "'");
  return slots_[it->second]->quant != nullptr;
}

std::vector<std::string> Transformer::missing_weights() const {
  std::vector<std::string> out;
  for (size_t i = 0; i < specs_.size(); ++i)
    if (!slots_[i]->data && !slots_[i]->quant) out.push_back(specs_[i].name);
  return out;
}

size_t Transformer::parameter_count() const {
  size_t n = 0;
  for (const WeightSpec& s : specs_) n += s.elements();
  return n;
}

void Transformer::check_ready() const {
  const std::vector<std::string> missing = missing_weights();
  if (missing.empty()) return;
  std::string msg = "weights not set: ";
  for (size_t i = 0; i < missing.size() && i < 8; ++i) msg += (i ? ", " : "") + missing[i];
  if (missing.size() > 8) msg += " and " + std::to_string(missing.size() - 8) + " more";
  fail(ErrorCode::Format, msg);
}

void Transformer::check_tokens(const int32_t* tokens, size_t n) const {
  for (size_t i = 0; i < n; ++i)
    require(tokens[i] >= 0 && static_cast<size_t>(tokens[i]) < cfg_.vocab_size, ErrorCode::Range,
            "token id " + std::to_string(tokens[i]) + " at index " + std::to_string(i) +
                " is outside the vocabulary [0, " + std::to_string(cfg_.vocab_size) + ")");
}

const float* Transformer::lm_head() const { return slots_[cfg_.tie_embeddings ? embed_ : lm_head_]->data.get(); }

void Transformer::final_norm(const float* x, float* y, size_t rows) const {
  const float eps = static_cast<float>(cfg_.norm_eps);
  const float* w = slots_[final_w_]->data.get();
  if (cfg_.norm == NormKind::RMSNorm)
    rms_norm(x, w, y, rows, cfg_.hidden, eps);
  else
    layer_norm(x, w, slots_[final_b_]->data.get(), y, rows, cfg_.hidden, eps);
}

void Transformer::run(const int32_t* tokens, size_t n, const std::vector<Segment>& segs, KvCache* cache,
                      Capture* capture, const std::vector<size_t>& hidden_layers,
                      std::vector<std::vector<float>>* hidden, Work& w) const {
  const TransformerConfig& c = cfg_;
  const size_t E = c.hidden, H = c.heads, KV = c.kv_heads, D = c.head_dim, HD = H * D, KVD = KV * D,
               I = c.intermediate;
  const float eps = static_cast<float>(c.norm_eps);
  auto W = [&](long i) -> const float* { return i < 0 ? nullptr : slots_[static_cast<size_t>(i)]->data.get(); };
  auto Q = [&](long i) -> const QuantLinear* { return i < 0 ? nullptr : slots_[static_cast<size_t>(i)]->quant.get(); };
  auto norm = [&](const float* x, long wi, long bi, float* y) {
    if (c.norm == NormKind::RMSNorm)
      rms_norm(x, W(wi), y, n, E, eps);
    else
      layer_norm(x, W(wi), W(bi), y, n, E, eps);
  };
  auto snapshot = [&](size_t index) {
    for (size_t j = 0; j < hidden_layers.size(); ++j)
      if (hidden_layers[j] == index) std::memcpy((*hidden)[j].data(), w.x, n * E * sizeof(float));
  };
  const bool cap_any = capture != nullptr;
  const size_t L0 = cache ? cache->length() : 0;

  for (const Segment& s : segs)
    for (size_t t = 0; t < s.len; ++t) w.pos[s.begin + t] = static_cast<int32_t>(s.pos0 + t);
  embedding(W(embed_), c.vocab_size, E, tokens, n, w.x);
  if (c.learned_positions) {
    const float* pe = W(pos_embed_);
    for (size_t t = 0; t < n; ++t) {
      float* xr = w.x + t * E;
      const float* pr = pe + static_cast<size_t>(w.pos[t]) * E;
      for (size_t i = 0; i < E; ++i) xr[i] += pr[i];
    }
  }

  AttentionParams ap;
  ap.heads = H;
  ap.kv_heads = KV;
  ap.head_dim = D;
  ap.causal = true;
  ap.window = c.sliding_window;

  for (size_t l = 0; l < c.layers; ++l) {
    snapshot(l);
    const Layer& ly = layer_idx_[l];
    const bool cap = cap_any && capture->wants(l);

    // attention block
    norm(w.x, ly.attn_norm_w, ly.attn_norm_b, w.h);
    if (cap) capture->add(l, Capture::kAttnIn, w.h, n);
    kv::CompressedKv* ckv = cache ? cache->compressed() : nullptr;
    float* kdst = cache && !ckv ? cache->k(l) + L0 * KVD : w.k;
    float* vdst = cache && !ckv ? cache->v(l) + L0 * KVD : w.v;
    const Proj qkv[3] = {{W(ly.q_w), W(ly.q_b), HD, w.q, HD, Q(ly.q_w)},
                         {W(ly.k_w), W(ly.k_b), KVD, kdst, KVD, Q(ly.k_w)},
                         {W(ly.v_w), W(ly.v_b), KVD, vdst, KVD, Q(ly.v_w)}};
    project_jobs(w.h, n, E, qkv, 3, false);
    std::vector<float> k_pre;
    if (ckv && rope_) k_pre.assign(kdst, kdst + n * KVD);
    if (rope_) {
      rope_apply(w.q, n, H, w.pos.data(), *rope_);
      rope_apply(kdst, n, KV, w.pos.data(), *rope_);
    }
    if (ckv) {  // compressed cache (tersor/kv.hpp): append, then attention over the compressed store
      ckv->append(l, rope_ ? k_pre.data() : kdst, kdst, vdst, w.pos.data(), n);
      ckv->attend(l, w.q, w.pos.data(), n, w.att);
    }
    for (const Segment& s : segs) {
      if (ckv) break;
      ap.n_q = s.len;
      const float *kb, *vb;
      if (cache) {
        ap.n_kv = L0 + n;
        ap.q_start = L0;
        kb = cache->k(l);
        vb = cache->v(l);
      } else {
        ap.n_kv = s.len;
        ap.q_start = 0;
        kb = w.k + s.begin * KVD;
        vb = w.v + s.begin * KVD;
      }
      if (reference_attention_)
        naive_attention(w.q + s.begin * HD, kb, vb, w.att + s.begin * HD, ap);
      else
        flash_attention(w.q + s.begin * HD, kb, vb, w.att + s.begin * HD, ap);
    }
    if (cap) capture->add(l, Capture::kOIn, w.att, n);
    project(w.att, n, HD, W(ly.o_w), W(ly.o_b), E, w.x, E, true, Q(ly.o_w));

    // MLP block
    norm(w.x, ly.mlp_norm_w, ly.mlp_norm_b, w.h);
    if (cap) capture->add(l, Capture::kMlpIn, w.h, n);
    const Proj up_gate[2] = {{W(ly.up_w), W(ly.up_b), I, w.u, I, Q(ly.up_w)}, {W(ly.gate_w), nullptr, I, w.g, I, Q(ly.gate_w)}};
    project_jobs(w.h, n, E, up_gate, c.gated_mlp ? 2 : 1, false);
    if (c.gated_mlp) {
      if (c.activation == MlpActivation::Silu) {
        swiglu(w.g, w.u, w.u, n * I);
      } else {
        gelu(w.g, w.g, n * I, c.activation == MlpActivation::GeluTanh ? GeluKind::Tanh : GeluKind::Erf);
        for (size_t i = 0; i < n * I; ++i) w.u[i] *= w.g[i];
      }
    } else if (c.activation == MlpActivation::Silu) {
      silu_inplace(w.u, n * I);
    } else {
      gelu(w.u, w.u, n * I, c.activation == MlpActivation::GeluTanh ? GeluKind::Tanh : GeluKind::Erf);
    }
    if (cap) capture->add(l, Capture::kDownIn, w.u, n);
    project(w.u, n, I, W(ly.down_w), W(ly.down_b), E, w.x, E, true, Q(ly.down_w));
  }
  snapshot(c.layers);
}

ForwardOutput Transformer::forward(const int32_t* tokens, size_t n, KvCache* cache, LogitsMode logits,
                                   const std::vector<size_t>& hidden_layers, Capture* capture) const {
  std::shared_lock<std::shared_mutex> lock(weights_mutex_);
  const TransformerConfig& c = cfg_;
  check_ready();
  require(n >= 1, ErrorCode::Range, "forward: no tokens");
  check_tokens(tokens, n);
  size_t L0 = 0;
  if (cache) {
    require(cache->owner() == this, ErrorCode::Range, "forward: the cache belongs to another transformer");
    L0 = cache->length();
    require(L0 + n <= cache->capacity(), ErrorCode::Range,
            "cache full: it holds " + std::to_string(L0) + " of " + std::to_string(cache->capacity()) + " tokens, " +
                std::to_string(n) + " more do not fit");
  }
  require(L0 + n < kMaxDim, ErrorCode::Range, "forward: positions must stay below 2^31");
  if (c.learned_positions)
    require(L0 + n <= c.max_positions, ErrorCode::Range,
            "forward: positions up to " + std::to_string(L0 + n - 1) + " exceed the learned position table (" +
                std::to_string(c.max_positions) + " positions)");
  for (size_t h : hidden_layers)
    require(h <= c.layers, ErrorCode::Range,
            "forward: hidden layer " + std::to_string(h) + " is outside [0, " + std::to_string(c.layers) + "]");
  if (capture) require(capture->owner() == this, ErrorCode::Range, "forward: the capture belongs to another transformer");

  Work w(c, n, cache != nullptr && cache->compressed() == nullptr);
  ForwardOutput out;
  out.hidden.assign(hidden_layers.size(), std::vector<float>(n * c.hidden));
  run(tokens, n, {Segment{0, n, L0}}, cache, capture, hidden_layers, &out.hidden, w);

  const size_t E = c.hidden, V = c.vocab_size;
  if (logits == LogitsMode::All) {
    final_norm(w.x, w.h, n);
    out.logits.resize(n * V);
    project(w.h, n, E, lm_head(), nullptr, V, out.logits.data(), V, false, slots_[cfg_.tie_embeddings ? embed_ : lm_head_]->quant.get());
    out.logit_rows = n;
  } else if (logits == LogitsMode::Last) {
    final_norm(w.x + (n - 1) * E, w.h, 1);
    out.logits.resize(V);
    project(w.h, 1, E, lm_head(), nullptr, V, out.logits.data(), V, false, slots_[cfg_.tie_embeddings ? embed_ : lm_head_]->quant.get());
    out.logit_rows = 1;
  }
  if (cache) cache->length_.store(L0 + n, std::memory_order_release);
  return out;
}

void Transformer::score_sequences(const int32_t* tokens, size_t n_tokens, const int32_t* offsets, size_t n_seqs,
                                  const int32_t* score_from, double* logprob, int32_t* count) const {
  std::shared_lock<std::shared_mutex> lock(weights_mutex_);
  const TransformerConfig& c = cfg_;
  check_ready();
  require(offsets[0] == 0, ErrorCode::Range, "scoreSequences: offsets[0] must be 0, got " + std::to_string(offsets[0]));
  require(static_cast<size_t>(offsets[n_seqs]) == n_tokens && offsets[n_seqs] >= 0, ErrorCode::Range,
          "scoreSequences: offsets[" + std::to_string(n_seqs) + "] must equal the token count " +
              std::to_string(n_tokens) + ", got " + std::to_string(offsets[n_seqs]));
  for (size_t s = 0; s < n_seqs; ++s) {
    require(offsets[s + 1] >= offsets[s], ErrorCode::Range,
            "scoreSequences: offsets must be non-decreasing (offsets[" + std::to_string(s) + "] = " +
                std::to_string(offsets[s]) + " > offsets[" + std::to_string(s + 1) + "] = " +
                std::to_string(offsets[s + 1]) + ")");
    require(score_from[s] >= 1, ErrorCode::Range,
            "scoreSequences: scoreFrom[" + std::to_string(s) + "] must be >= 1, got " + std::to_string(score_from[s]));
    const size_t len = static_cast<size_t>(offsets[s + 1] - offsets[s]);
    if (c.learned_positions && len > 0)
      require(len - 1 <= c.max_positions, ErrorCode::Range,
              "scoreSequences: sequence " + std::to_string(s) + " has " + std::to_string(len) +
                  " tokens, beyond the learned position table (" + std::to_string(c.max_positions) + " positions)");
  }
  check_tokens(tokens, n_tokens);
  for (size_t s = 0; s < n_seqs; ++s) {
    logprob[s] = 0.0;
    count[s] = 0;
  }

  const size_t E = c.hidden, V = c.vocab_size;
  // Logit rows per block: at most 64, and at most ~16 MiB of logits.
  const size_t block = std::max<size_t>(1, std::min<size_t>(64, (size_t{4} << 20) / V));
  AlignedPtr hblock = aligned_floats(block * E);
  AlignedPtr lblock = aligned_floats(block * V);

  size_t s = 0;
  std::vector<int32_t> batch;
  std::vector<Segment> segs;
  std::vector<size_t> seg_seq;
  while (s < n_seqs) {
    // Gather sequences until the batch holds kScoreBatchTokens tokens. Each sequence runs its first
    // len - 1 tokens (the last token's logits predict nothing scored).
    batch.clear();
    segs.clear();
    seg_seq.clear();
    for (; s < n_seqs; ++s) {
      const size_t b = static_cast<size_t>(offsets[s]), len = static_cast<size_t>(offsets[s + 1]) - b;
      const size_t from = static_cast<size_t>(score_from[s]);
      if (from >= len) continue;  // nothing to score
      const size_t run_len = len - 1;
      if (!batch.empty() && batch.size() + run_len > kScoreBatchTokens) break;
      segs.push_back(Segment{batch.size(), run_len, 0});
      seg_seq.push_back(s);
      batch.insert(batch.end(), tokens + b, tokens + b + run_len);
    }
    if (batch.empty()) break;
    const size_t n = batch.size();
    Work w(c, n, false);
    run(batch.data(), n, segs, nullptr, nullptr, {}, nullptr, w);
    final_norm(w.x, w.x, n);

    // Rows to score, in sequence order: (batch row, target token, sequence).
    struct Item {
      size_t row;
      int32_t target;
      size_t seq;
    };
    std::vector<Item> items;
    for (size_t i = 0; i < segs.size(); ++i) {
      const size_t q = seg_seq[i], b = static_cast<size_t>(offsets[q]);
      const size_t len = static_cast<size_t>(offsets[q + 1]) - b;
      for (size_t t = static_cast<size_t>(score_from[q]); t < len; ++t)
        items.push_back(Item{segs[i].begin + t - 1, tokens[b + t], q});
    }
    for (size_t i0 = 0; i0 < items.size(); i0 += block) {
      const size_t nb = std::min(block, items.size() - i0);
      for (size_t j = 0; j < nb; ++j)
        std::memcpy(hblock.get() + j * E, w.x + items[i0 + j].row * E, E * sizeof(float));
      project(hblock.get(), nb, E, lm_head(), nullptr, V, lblock.get(), V, false, slots_[cfg_.tie_embeddings ? embed_ : lm_head_]->quant.get());
      for (size_t j = 0; j < nb; ++j) {
        const Item& it = items[i0 + j];
        logprob[it.seq] += row_logprob(lblock.get() + j * V, V, static_cast<size_t>(it.target));
        count[it.seq] += 1;
      }
    }
  }
}

}  // namespace tersor
