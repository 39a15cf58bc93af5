// Transformer runtime kernels: norms, RoPE, activations, softmax, embedding, linear (see ops.hpp).
#include "tersor/ops.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "tersor/error.hpp"
#include "tersor/gemm.hpp"
#include "tersor/half.hpp"
#include "tersor/parallel.hpp"

namespace tersor {
namespace {

/// Element-wise work over n values in chunks (so threads get contiguous ranges).
template <class F>
void parallel_chunks(size_t n, F&& f) {
  constexpr size_t kChunk = 8192;
  const size_t chunks = (n + kChunk - 1) / kChunk;
  parallel_for(chunks, n, [&](size_t c) {
    const size_t b = c * kChunk;
    f(b, std::min(n, b + kChunk));
  });
}

std::string num(double v) {
  std::string s = std::to_string(v);
  return s;
}

void check_eps(float eps) {
  require(std::isfinite(eps) && eps >= 0.f, ErrorCode::Range, "eps must be finite and >= 0, got " + num(eps));
}

// ---- row primitives -------------------------------------------------------------------------

float sum_squares(const float* x, size_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
    const __m256 v2 = _mm256_loadu_ps(x + i + 16), v3 = _mm256_loadu_ps(x + i + 24);
    a0 = _mm256_fmadd_ps(v0, v0, a0);
    a1 = _mm256_fmadd_ps(v1, v1, a1);
    a2 = _mm256_fmadd_ps(v2, v2, a2);
    a3 = _mm256_fmadd_ps(v3, v3, a3);
  }
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    a0 = _mm256_fmadd_ps(v, v, a0);
  }
  if (i < n) {
    const __m256 v = _mm256_maskload_ps(x + i, simd::tail_mask(n - i));
    a1 = _mm256_fmadd_ps(v, v, a1);
  }
  return simd::hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

float sum_of(const float* x, size_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x + i));
    a1 = _mm256_add_ps(a1, _mm256_loadu_ps(x + i + 8));
    a2 = _mm256_add_ps(a2, _mm256_loadu_ps(x + i + 16));
    a3 = _mm256_add_ps(a3, _mm256_loadu_ps(x + i + 24));
  }
  for (; i + 8 <= n; i += 8) a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x + i));
  if (i < n) a1 = _mm256_add_ps(a1, _mm256_maskload_ps(x + i, simd::tail_mask(n - i)));
  return simd::hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

/// Sums of (x - m) and (x - m)^2 (the corrected two-pass algorithm's second pass).
void sums_dev(const float* x, size_t n, float m, float& s1, float& s2) {
  const __m256 mv = _mm256_set1_ps(m);
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, b0 = a0, b1 = a0;
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(x + i), mv);
    const __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 8), mv);
    a0 = _mm256_add_ps(a0, d0);
    a1 = _mm256_add_ps(a1, d1);
    b0 = _mm256_fmadd_ps(d0, d0, b0);
    b1 = _mm256_fmadd_ps(d1, d1, b1);
  }
  s1 = simd::hsum8(_mm256_add_ps(a0, a1));
  s2 = simd::hsum8(_mm256_add_ps(b0, b1));
  for (; i < n; ++i) {
    const float d = x[i] - m;
    s1 += d;
    s2 += d * d;
  }
}

/// y = ((x - sub) - sub2) * s * w (w may be null) + b (b may be null). Two subtractions so that a
/// mean split as m0 + correction keeps its precision: x - m0 is exact for x near m0.
void scale_row(const float* x, float* y, size_t n, float sub, float s, const float* w, const float* b,
               float sub2 = 0.f) {
  const __m256 sv = _mm256_set1_ps(s), subv = _mm256_set1_ps(sub), sub2v = _mm256_set1_ps(sub2);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_mul_ps(_mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), subv), sub2v), sv);
    if (w) v = _mm256_mul_ps(v, _mm256_loadu_ps(w + i));
    if (b) v = _mm256_add_ps(v, _mm256_loadu_ps(b + i));
    _mm256_storeu_ps(y + i, v);
  }
  for (; i < n; ++i) {
    float v = ((x[i] - sub) - sub2) * s;
    if (w) v *= w[i];
    if (b) v += b[i];
    y[i] = v;
  }
}

inline __m256 silu8(__m256 g) {
  const __m256 e = simd::exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
  return _mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.f), e));
}

inline __m256 gelu_tanh8(__m256 x) {
  // 0.5 x (1 + tanh(u)) = x * sigmoid(2u) = x / (1 + exp(-2u)), u = sqrt(2/pi) (x + 0.044715 x^3)
  const __m256 x2 = _mm256_mul_ps(x, x);
  const __m256 inner = _mm256_fmadd_ps(_mm256_mul_ps(x2, _mm256_set1_ps(0.044715f)), x, x);
  const __m256 m2u = _mm256_mul_ps(inner, _mm256_set1_ps(-2.0f * 0.7978845608028654f));
  return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.f), simd::exp8(m2u)));
}

inline __m256 gelu_erf8(__m256 x) {
  // Phi(x) = 0.5 erfc(-x / sqrt 2). erfc(z), z >= 0, by Numerical Recipes' erfcc:
  //   t = 1 / (1 + z/2), erfc(z) = t exp(-z^2 + P(t)), relative error < 1.2e-7.
  // exp(-z^2) is taken from the exact split z^2 = hi + lo (FMA) as exp(-hi) * exp(P(t) - lo), so the
  // rounding of z^2 (up to 100) does not become a relative error of 1e-5 in the result.
  const __m256 sign_mask = _mm256_set1_ps(-0.0f);
  const __m256 z = _mm256_mul_ps(_mm256_andnot_ps(sign_mask, x), _mm256_set1_ps(0.70710678118654752f));
  const __m256 one = _mm256_set1_ps(1.f);
  const __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(z, _mm256_set1_ps(0.5f), one));
  __m256 p = _mm256_set1_ps(0.17087277f);
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.82215223f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.48851587f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.13520398f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.27886807f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.18628806f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.09678418f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.37409196f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.00002368f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.26551223f));
  const __m256 hi = _mm256_mul_ps(z, z);
  const __m256 lo = _mm256_fmsub_ps(z, z, hi);
  const __m256 e = _mm256_mul_ps(simd::exp8(_mm256_sub_ps(_mm256_setzero_ps(), hi)), simd::exp8(_mm256_sub_ps(p, lo)));
  const __m256 half_erfc = _mm256_mul_ps(_mm256_mul_ps(t, e), _mm256_set1_ps(0.5f));
  // x >= 0: Phi = 1 - erfc(z)/2; x < 0: Phi = erfc(z)/2
  const __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
  const __m256 phi = _mm256_blendv_ps(_mm256_sub_ps(one, half_erfc), half_erfc, neg);
  return _mm256_mul_ps(x, phi);
}

/// Applies an 8-lane function to n values (tail through a masked load/store).
template <class F>
void map8(const float* x, float* y, size_t n, F&& f) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, f(_mm256_loadu_ps(x + i)));
  if (i < n) {
    const __m256i m = simd::tail_mask(n - i);
    _mm256_maskstore_ps(y + i, m, f(_mm256_maskload_ps(x + i, m)));
  }
}

void softmax_row(const float* x, float* y, size_t n) {
  if (n == 0) return;
  // max
  __m256 mv = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  size_t i = 0;
  for (; i + 8 <= n; i += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(x + i));
  float mx = simd::hmax8(mv);
  for (; i < n; ++i) mx = std::max(mx, x[i]);
  if (mx == -std::numeric_limits<float>::infinity()) {
    std::fill(y, y + n, 0.f);
    return;
  }
  const __m256 m8 = _mm256_set1_ps(mx);
  __m256 s8 = _mm256_setzero_ps();
  i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = simd::exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), m8));
    _mm256_storeu_ps(y + i, e);
    s8 = _mm256_add_ps(s8, e);
  }
  if (i < n) {
    const __m256i m = simd::tail_mask(n - i);
    // masked-off lanes load 0 -> exp(0 - mx) would count: zero them before summing
    const __m256 e = _mm256_and_ps(simd::exp8(_mm256_sub_ps(_mm256_maskload_ps(x + i, m), m8)), _mm256_castsi256_ps(m));
    _mm256_maskstore_ps(y + i, m, e);
    s8 = _mm256_add_ps(s8, e);
  }
  const __m256 inv = _mm256_set1_ps(1.0f / simd::hsum8(s8));
  map8(y, y, n, [&](__m256 v) { return _mm256_mul_ps(v, inv); });
}

}  // namespace

// ---- vectorised math ------------------------------------------------------------------------

void exp_f32(const float* x, float* y, size_t n) {
  parallel_chunks(n, [&](size_t b, size_t e) { map8(x + b, y + b, e - b, [](__m256 v) { return simd::exp8(v); }); });
}

// ---- normalisation --------------------------------------------------------------------------

void rms_norm(const float* x, const float* weight, float* y, size_t rows, size_t dim, float eps) {
  check_eps(eps);
  require(dim > 0 || rows == 0, ErrorCode::Shape, "rms_norm: dim must be positive");
  parallel_for(rows, rows * dim, [&](size_t r) {
    const float* xr = x + r * dim;
    const double ms = static_cast<double>(sum_squares(xr, dim)) / static_cast<double>(dim);
    const float inv = static_cast<float>(1.0 / std::sqrt(ms + static_cast<double>(eps)));
    scale_row(xr, y + r * dim, dim, 0.f, inv, weight, nullptr);
  });
}

void layer_norm(const float* x, const float* weight, const float* bias, float* y, size_t rows, size_t dim,
                float eps) {
  check_eps(eps);
  require(dim > 0 || rows == 0, ErrorCode::Shape, "layer_norm: dim must be positive");
  parallel_for(rows, rows * dim, [&](size_t r) {
    const float* xr = x + r * dim;
    // Corrected two-pass: a first mean m0, then sums of (x - m0) and (x - m0)^2, which are small
    // numbers; mean = m0 + s1 / n, var = (s2 - s1^2 / n) / n.
    const double n = static_cast<double>(dim);
    const float m0 = static_cast<float>(static_cast<double>(sum_of(xr, dim)) / n);
    float s1, s2;
    sums_dev(xr, dim, m0, s1, s2);
    const double corr = s1 / n;
    const double var = std::max(0.0, (static_cast<double>(s2) - static_cast<double>(s1) * corr) / n);
    const float inv = static_cast<float>(1.0 / std::sqrt(var + static_cast<double>(eps)));
    scale_row(xr, y + r * dim, dim, m0, inv, weight, bias, static_cast<float>(corr));
  });
}

// ---- rotary position embedding --------------------------------------------------------------

void rope_validate(const RopeConfig& c) {
  require(c.head_dim > 0, ErrorCode::Shape, "rope: head_dim must be positive");
  const size_t rot = c.rot();
  require(rot <= c.head_dim && rot % 2 == 0 && rot > 0, ErrorCode::Shape,
          "rope: rotary_dim must be even, positive and <= head_dim (" + std::to_string(c.head_dim) + "), got " +
              std::to_string(rot));
  require(std::isfinite(c.theta) && c.theta > 1.0, ErrorCode::Range, "rope: theta must be > 1, got " + num(c.theta));
  if (c.scaling != RopeScaling::None)
    require(std::isfinite(c.factor) && c.factor > 0, ErrorCode::Range, "rope: scaling factor must be > 0, got " + num(c.factor));
  if (c.scaling == RopeScaling::Llama3) {
    require(std::isfinite(c.low_freq_factor) && c.low_freq_factor > 0 && std::isfinite(c.high_freq_factor) &&
                c.high_freq_factor > c.low_freq_factor,
            ErrorCode::Range, "rope: llama3 scaling needs 0 < low_freq_factor < high_freq_factor, got " +
                                  num(c.low_freq_factor) + " and " + num(c.high_freq_factor));
    require(std::isfinite(c.original_max_position) && c.original_max_position > 0, ErrorCode::Range,
            "rope: original_max_position_embeddings must be positive");
  }
}

std::vector<double> rope_inv_freq(const RopeConfig& c) {
  rope_validate(c);
  const size_t rot = c.rot(), half = rot / 2;
  std::vector<double> f(half);
  for (size_t i = 0; i < half; ++i)
    f[i] = 1.0 / std::pow(c.theta, static_cast<double>(2 * i) / static_cast<double>(rot));
  if (c.scaling == RopeScaling::Linear) {
    for (double& v : f) v /= c.factor;
  } else if (c.scaling == RopeScaling::Llama3) {
    const double pi = 3.14159265358979323846;
    const double old_ctx = c.original_max_position;
    const double low_wavelen = old_ctx / c.low_freq_factor;
    const double high_wavelen = old_ctx / c.high_freq_factor;
    for (double& v : f) {
      const double wavelen = 2 * pi / v;
      double llama = wavelen > low_wavelen ? v / c.factor : v;
      const double smooth = (old_ctx / wavelen - c.low_freq_factor) / (c.high_freq_factor - c.low_freq_factor);
      const bool medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
      if (medium) llama = (1 - smooth) * llama / c.factor + smooth * llama;
      v = llama;
    }
  }
  return f;
}

RopeCache::RopeCache(const RopeConfig& cfg, size_t max_positions)
    : cfg_(cfg), positions_(max_positions), half_(cfg.rot() / 2), inv_freq_(rope_inv_freq(cfg)) {
  cos_.resize(positions_ * half_);
  sin_.resize(positions_ * half_);
  parallel_for(positions_, positions_ * half_ * 16, [&](size_t p) {
    for (size_t i = 0; i < half_; ++i) {
      const double a = static_cast<double>(p) * inv_freq_[i];
      cos_[p * half_ + i] = static_cast<float>(std::cos(a));
      sin_[p * half_ + i] = static_cast<float>(std::sin(a));
    }
  });
}

void RopeCache::lookup(int64_t pos, float* cos_out, float* sin_out) const {
  if (pos >= 0 && static_cast<size_t>(pos) < positions_) {
    std::memcpy(cos_out, cos_row(static_cast<size_t>(pos)), half_ * sizeof(float));
    std::memcpy(sin_out, sin_row(static_cast<size_t>(pos)), half_ * sizeof(float));
    return;
  }
  for (size_t i = 0; i < half_; ++i) {
    const double a = static_cast<double>(pos) * inv_freq_[i];
    cos_out[i] = static_cast<float>(std::cos(a));
    sin_out[i] = static_cast<float>(std::sin(a));
  }
}

namespace {

void rope_head_neox(float* x, size_t half, const float* c, const float* s) {
  float* x1 = x;
  float* x2 = x + half;
  size_t i = 0;
  for (; i + 8 <= half; i += 8) {
    const __m256 a = _mm256_loadu_ps(x1 + i), b = _mm256_loadu_ps(x2 + i);
    const __m256 cv = _mm256_loadu_ps(c + i), sv = _mm256_loadu_ps(s + i);
    _mm256_storeu_ps(x1 + i, _mm256_fmsub_ps(a, cv, _mm256_mul_ps(b, sv)));
    _mm256_storeu_ps(x2 + i, _mm256_fmadd_ps(b, cv, _mm256_mul_ps(a, sv)));
  }
  for (; i < half; ++i) {
    const float a = x1[i], b = x2[i];
    x1[i] = std::fma(a, c[i], -(b * s[i]));
    x2[i] = std::fma(b, c[i], a * s[i]);
  }
}

void rope_head_interleaved(float* x, size_t half, const float* c, const float* s) {
  for (size_t i = 0; i < half; ++i) {
    const float a = x[2 * i], b = x[2 * i + 1];
    x[2 * i] = std::fma(a, c[i], -(b * s[i]));
    x[2 * i + 1] = std::fma(b, c[i], a * s[i]);
  }
}

}  // namespace

void rope_apply(float* x, size_t tokens, size_t heads, const int32_t* positions, const RopeCache& cache,
                size_t token_stride) {
  const RopeConfig& c = cache.config();
  const size_t d = c.head_dim, half = cache.half();
  if (token_stride == 0) token_stride = heads * d;
  // messages built only on failure: the KV cache rotates every 32-token tile through here, where
  // formatting one string per token cost more than the rotation
  if (token_stride < heads * d)
    require(false, ErrorCode::Shape,
            "rope: token_stride " + std::to_string(token_stride) + " is below heads * head_dim = " + std::to_string(heads * d));
  for (size_t t = 0; t < tokens; ++t)
    if (positions[t] < 0)
      require(false, ErrorCode::Range,
              "rope: position " + std::to_string(positions[t]) + " of token " + std::to_string(t) + " is negative");
  if (tokens == 0 || heads == 0) return;
  const int nt = threads_for(tokens, tokens * heads * d * 4);
  std::vector<float> buf(static_cast<size_t>(nt) * 2 * half);
  const auto body = [&](size_t t, float* cb, float* sb) {
    const size_t pos = static_cast<size_t>(positions[t]);
    const float* cs;
    const float* sn;
    if (pos < cache.positions()) {
      cs = cache.cos_row(pos);
      sn = cache.sin_row(pos);
    } else {
      cache.lookup(static_cast<int64_t>(pos), cb, sb);
      cs = cb;
      sn = sb;
    }
    float* row = x + t * token_stride;
    for (size_t h = 0; h < heads; ++h) {
      if (c.style == RopeStyle::NeoX) rope_head_neox(row + h * d, half, cs, sn);
      else rope_head_interleaved(row + h * d, half, cs, sn);
    }
  };
  if (nt <= 1) {
    for (size_t t = 0; t < tokens; ++t) body(t, buf.data(), buf.data() + half);
    return;
  }
  const std::ptrdiff_t n = static_cast<std::ptrdiff_t>(tokens);
#pragma omp parallel num_threads(nt)
  {
    float* cb = buf.data() + static_cast<size_t>(omp_get_thread_num()) * 2 * half;
#pragma omp for schedule(static)
    for (std::ptrdiff_t t = 0; t < n; ++t) body(static_cast<size_t>(t), cb, cb + half);
  }
}

void rope_apply(float* x, size_t tokens, size_t heads, const int32_t* positions, const RopeConfig& cfg,
                size_t token_stride) {
  const RopeCache cache(cfg, 0);
  rope_apply(x, tokens, heads, positions, cache, token_stride);
}

// ---- activations ----------------------------------------------------------------------------

void swiglu(const float* gate, const float* up, float* out, size_t n) {
  parallel_chunks(n, [&](size_t b, size_t e) {
    size_t i = b;
    for (; i + 8 <= e; i += 8)
      _mm256_storeu_ps(out + i, _mm256_mul_ps(silu8(_mm256_loadu_ps(gate + i)), _mm256_loadu_ps(up + i)));
    if (i < e) {
      const __m256i m = simd::tail_mask(e - i);
      _mm256_maskstore_ps(out + i, m, _mm256_mul_ps(silu8(_mm256_maskload_ps(gate + i, m)), _mm256_maskload_ps(up + i, m)));
    }
  });
}

void swiglu(const float* gate, const float* up, float* out, size_t rows, size_t cols, size_t gate_stride,
            size_t up_stride, size_t out_stride) {
  require(gate_stride >= cols && up_stride >= cols && out_stride >= cols, ErrorCode::Shape,
          "swiglu: row strides must be >= cols (" + std::to_string(cols) + ")");
  parallel_for(rows, rows * cols, [&](size_t r) {
    const float* g = gate + r * gate_stride;
    const float* u = up + r * up_stride;
    float* o = out + r * out_stride;
    size_t i = 0;
    for (; i + 8 <= cols; i += 8)
      _mm256_storeu_ps(o + i, _mm256_mul_ps(silu8(_mm256_loadu_ps(g + i)), _mm256_loadu_ps(u + i)));
    if (i < cols) {
      const __m256i m = simd::tail_mask(cols - i);
      _mm256_maskstore_ps(o + i, m, _mm256_mul_ps(silu8(_mm256_maskload_ps(g + i, m)), _mm256_maskload_ps(u + i, m)));
    }
  });
}

void gelu(const float* x, float* y, size_t n, GeluKind kind) {
  parallel_chunks(n, [&](size_t b, size_t e) {
    if (kind == GeluKind::Tanh) map8(x + b, y + b, e - b, [](__m256 v) { return gelu_tanh8(v); });
    else map8(x + b, y + b, e - b, [](__m256 v) { return gelu_erf8(v); });
  });
}

void softmax(const float* x, float* y, size_t rows, size_t cols) {
  parallel_for(rows, rows * cols, [&](size_t r) { softmax_row(x + r * cols, y + r * cols, cols); });
}

// ---- embedding and linear -------------------------------------------------------------------

namespace {
void check_ids(const int32_t* ids, size_t n, size_t vocab) {
  for (size_t t = 0; t < n; ++t)
    require(ids[t] >= 0 && static_cast<size_t>(ids[t]) < vocab, ErrorCode::Range,
            "embedding: token id " + std::to_string(ids[t]) + " at index " + std::to_string(t) +
                " is outside the vocabulary [0, " + std::to_string(vocab) + ")");
}
}  // namespace

void embedding(const float* table, size_t vocab, size_t dim, const int32_t* ids, size_t n, float* out) {
  check_ids(ids, n, vocab);
  parallel_for(n, n * dim, [&](size_t t) {
    std::memcpy(out + t * dim, table + static_cast<size_t>(ids[t]) * dim, dim * sizeof(float));
  });
}

void embedding_half(const uint16_t* table, bool bf16, size_t vocab, size_t dim, const int32_t* ids, size_t n,
                    float* out) {
  check_ids(ids, n, vocab);
  parallel_for(n, n * dim, [&](size_t t) {
    const uint16_t* src = table + static_cast<size_t>(ids[t]) * dim;
    if (bf16) bf16_to_f32(src, out + t * dim, dim);
    else f16_to_f32(src, out + t * dim, dim);
  });
}

void linear(const float* x, const float* w, const float* bias, float* y, size_t rows, size_t in, size_t out,
            WeightLayout layout, size_t ldx, size_t ldy) {
  if (ldx == 0) ldx = in;
  if (ldy == 0) ldy = out;
  require(ldx >= in && ldy >= out, ErrorCode::Shape,
          "linear: row strides (" + std::to_string(ldx) + ", " + std::to_string(ldy) + ") below in/out (" +
              std::to_string(in) + ", " + std::to_string(out) + ")");
  if (rows == 0 || out == 0) return;
  if (in == 0) {
    for (size_t r = 0; r < rows; ++r)
      for (size_t o = 0; o < out; ++o) y[r * ldy + o] = bias ? bias[o] : 0.f;
    return;
  }
  if (layout == WeightLayout::OutIn)
    sgemm(Trans::No, Trans::Yes, rows, out, in, 1.f, x, ldx, w, in, 0.f, y, ldy);
  else
    sgemm(Trans::No, Trans::No, rows, out, in, 1.f, x, ldx, w, out, 0.f, y, ldy);
  if (bias) {
    parallel_for(rows, rows * out, [&](size_t r) {
      float* yr = y + r * ldy;
      size_t o = 0;
      for (; o + 8 <= out; o += 8) _mm256_storeu_ps(yr + o, _mm256_add_ps(_mm256_loadu_ps(yr + o), _mm256_loadu_ps(bias + o)));
      for (; o < out; ++o) yr[o] += bias[o];
    });
  }
}

}  // namespace tersor
