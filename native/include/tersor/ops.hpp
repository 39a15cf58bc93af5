// Element-wise and row-wise kernels of tersor's transformer runtime (Llama family, GPT-2), CPU, f32.
//
// Conventions shared by every function here:
//  * tensors are row-major f32; "rows x dim" means `rows` contiguous rows of `dim` values unless a
//    row stride is given (elements between consecutive rows, 0 = dense);
//  * output may alias input exactly (in-place) wherever the comment says so; partial overlap is
//    undefined;
//  * loops over rows run on tersor::num_threads() OpenMP threads when the work is large enough to
//    pay for the fork; small calls (one decode token) stay on the calling thread;
//  * shape errors throw tersor::Error(E_SHAPE), bad values (ids, eps, positions) E_RANGE, before
//    any output is written.
//
// Vectorised math: exp, silu, gelu and softmax use tersor's AVX2 exp (`simd::exp8` below):
// Cody-Waite range reduction x = n ln2 + r, |r| <= ln2/2, a degree-6 polynomial (Cephes expf
// coefficients) and 2^n applied as two exact power-of-two factors, so results underflow gradually
// to subnormals and zero and overflow to +inf exactly where expf does.
//   max relative error vs. exp in double: 1e-7 (under 1 ulp; 8.4e-8 measured over 2e7 points of
//   [-87.3, 88.72] by test_ops.cpp "ops: vectorised exp ..."), for normal results; subnormal results
//   (x < -87.34) carry the absolute error of their 2^-149 spacing; exp(-inf) = +0 exactly,
//   exp(+inf) = +inf, NaN propagates.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

namespace tersor {

// ---- vectorised math ------------------------------------------------------------------------

/// y[i] = exp(x[i]) with the vectorised exp (accuracy above). y may alias x.
void exp_f32(const float* x, float* y, size_t n);

namespace simd {

/// The constants of the Cephes expf scheme that every vectorised exp in tersor evaluates (exp8 here,
/// the 512-bit exp16 of the KV kernels, HQQ's exp256; HQQ's log256 shares the ln2 split):
/// x = n ln2 + r with ln2 split as kLn2Hi + kLn2Lo (kLn2Hi exact in 9 bits, so n * kLn2Hi is
/// exact), then exp(r) = 1 + r + r^2 P(r) with P(r) = ((((kP0 r + kP1) r + kP2) r + kP3) r + kP4) r + kP5.
namespace cephes_exp {
inline constexpr float kLog2e = 1.44269504088896341f;
inline constexpr float kLn2Hi = 0.693359375f;
inline constexpr float kLn2Lo = -2.12194440e-4f;
inline constexpr float kP0 = 1.9875691500e-4f;
inline constexpr float kP1 = 1.3981999507e-3f;
inline constexpr float kP2 = 8.3334519073e-3f;
inline constexpr float kP3 = 4.1665795894e-2f;
inline constexpr float kP4 = 1.6666665459e-1f;
inline constexpr float kP5 = 5.0000001201e-1f;
}  // namespace cephes_exp

}  // namespace simd

#if defined(__AVX2__) && defined(__FMA__)
namespace simd {

/// exp of 8 lanes; see the accuracy note at the top of this header.
inline __m256 exp8(__m256 x) {
  // Clamp so that n fits the exponent arithmetic below; max/min are ordered so NaN passes through.
  x = _mm256_min_ps(_mm256_set1_ps(89.0f), _mm256_max_ps(_mm256_set1_ps(-110.0f), x));
  using namespace cephes_exp;
  const __m256 fn = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  // r = x - n ln2 in two steps (n * kLn2Hi exact)
  __m256 r = _mm256_fnmadd_ps(fn, _mm256_set1_ps(kLn2Hi), x);
  r = _mm256_fnmadd_ps(fn, _mm256_set1_ps(kLn2Lo), r);
  __m256 p = _mm256_set1_ps(kP0);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP1));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP2));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP3));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP4));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP5));
  const __m256 r2 = _mm256_mul_ps(r, r);
  __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), _mm256_set1_ps(1.0f));
  // 2^n = 2^a * 2^b with a = n >> 1, b = n - a: both factors stay normal for n in [-159, 128].
  const __m256i n = _mm256_cvtps_epi32(fn);
  const __m256i a = _mm256_srai_epi32(n, 1);
  const __m256i b = _mm256_sub_epi32(n, a);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 pa = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(a, bias), 23));
  const __m256 pb = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(b, bias), 23));
  return _mm256_mul_ps(_mm256_mul_ps(y, pa), pb);
}

/// Sum of the 8 lanes.
inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

/// Maximum of the 8 lanes.
inline float hmax8(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

/// Lane mask selecting the first `n` (0..8) lanes, for _mm256_maskload_ps / _mm256_maskstore_ps.
inline __m256i tail_mask(size_t n) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), idx);
}

}  // namespace simd
#endif

// ---- normalisation --------------------------------------------------------------------------

/// RMSNorm (Llama): y = x / sqrt(mean(x^2) + eps) * weight, per row of `dim` values.
/// weight has `dim` values (nullptr = no weight). eps >= 0. y may alias x.
void rms_norm(const float* x, const float* weight, float* y, size_t rows, size_t dim, float eps);

/// LayerNorm (GPT-2): y = (x - mean) / sqrt(var + eps) * weight + bias, biased variance (as
/// torch.nn.LayerNorm), corrected two-pass mean/variance (accurate for rows with a large mean). weight and bias have `dim` values; either may be
/// nullptr (= 1 / = 0). eps >= 0. y may alias x.
void layer_norm(const float* x, const float* weight, const float* bias, float* y, size_t rows, size_t dim,
                float eps);

// ---- rotary position embedding --------------------------------------------------------------

enum class RopeScaling : uint8_t {
  None,    ///< HF rope_type "default"
  Linear,  ///< HF "linear": positions / factor (equivalently inv_freq / factor)
  Llama3,  ///< HF "llama3": Llama 3.1 frequency-dependent scaling (_compute_llama3_parameters)
};

enum class RopeStyle : uint8_t {
  /// GPT-NeoX / HF "rotate_half": dimension i pairs with i + rotary_dim/2 (HF Llama, Qwen2,
  /// Mistral, Phi, GPT-NeoX checkpoints).
  NeoX,
  /// GPT-J / original Meta Llama: dimension 2i pairs with 2i + 1 (interleaved).
  Interleaved,
};

/// Rotary embedding configuration, named after the HF config fields.
struct RopeConfig {
  size_t head_dim = 0;
  /// Rotated dimensions (the first `rotary_dim` of each head; the rest pass through). 0 = head_dim.
  /// Must be even and <= head_dim. HF: int(head_dim * partial_rotary_factor).
  size_t rotary_dim = 0;
  double theta = 10000.0;  ///< rope_theta
  RopeStyle style = RopeStyle::NeoX;
  RopeScaling scaling = RopeScaling::None;
  double factor = 1.0;                       ///< rope_scaling.factor (Linear, Llama3); > 0
  double low_freq_factor = 1.0;              ///< rope_scaling.low_freq_factor (Llama3)
  double high_freq_factor = 4.0;             ///< rope_scaling.high_freq_factor (Llama3); > low_freq_factor
  double original_max_position = 8192.0;     ///< rope_scaling.original_max_position_embeddings (Llama3)

  size_t rot() const { return rotary_dim ? rotary_dim : head_dim; }
};

/// Checks a RopeConfig; throws E_SHAPE (dims) or E_RANGE (theta, factors).
void rope_validate(const RopeConfig& cfg);

/// The rot()/2 inverse frequencies in double, scaling included:
///   inv_freq[i] = theta^(-2i / rot)                      (None)
///   inv_freq[i] / factor                                 (Linear)
///   HF _compute_llama3_parameters, evaluated in double:  (Llama3)
///     wavelen = 2 pi / inv_freq; lo = orig / low_freq_factor; hi = orig / high_freq_factor
///     wavelen < hi -> inv_freq;  wavelen > lo -> inv_freq / factor;  otherwise, with
///     s = (orig / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor):
///     (1 - s) inv_freq / factor + s inv_freq
/// (HF evaluates these in f32; tersor's angles are exact to double rounding, so they can differ from
/// HF's in the last f32 bits, more so at large positions where HF's f32 angle loses precision.)
std::vector<double> rope_inv_freq(const RopeConfig& cfg);

/// cos/sin table per (position, frequency): angle = position * inv_freq[i] in double, cos and sin in
/// double, then rounded to f32. Positions beyond the table are computed on the fly the same way
/// (identical values), so the table is only a cache. Immutable after construction: safe to share
/// between threads.
class RopeCache {
 public:
  /// Tabulates positions [0, max_positions).
  RopeCache(const RopeConfig& cfg, size_t max_positions);

  const RopeConfig& config() const { return cfg_; }
  size_t positions() const { return positions_; }
  size_t half() const { return half_; }  ///< rot()/2 frequencies
  const std::vector<double>& inv_freq() const { return inv_freq_; }
  /// cos/sin of `pos` for all frequencies, into cos_out/sin_out (half() values each); from the
  /// table when pos < positions().
  void lookup(int64_t pos, float* cos_out, float* sin_out) const;
  /// Pointers into the table (pos < positions()).
  const float* cos_row(size_t pos) const { return cos_.data() + pos * half_; }
  const float* sin_row(size_t pos) const { return sin_.data() + pos * half_; }

 private:
  RopeConfig cfg_;
  size_t positions_, half_;
  std::vector<double> inv_freq_;
  std::vector<float> cos_, sin_;
};

/// Applies RoPE in place to x = [tokens, heads, head_dim] (Q or K), token t rotated by angle
/// positions[t] * inv_freq. token_stride = elements between consecutive tokens (0 = heads * head_dim;
/// larger for a view into a fused QKV row). Positions must be >= 0 (E_RANGE). For pair (a, b) =
/// (i, i + rot/2) (NeoX) or (2i, 2i + 1) (Interleaved):
///   x[a]' = x[a] cos - x[b] sin,   x[b]' = x[b] cos + x[a] sin.
void rope_apply(float* x, size_t tokens, size_t heads, const int32_t* positions, const RopeCache& cache,
                size_t token_stride = 0);
/// Same without a prepared cache (cos/sin computed per token).
void rope_apply(float* x, size_t tokens, size_t heads, const int32_t* positions, const RopeConfig& cfg,
                size_t token_stride = 0);

// ---- activations ----------------------------------------------------------------------------

/// SwiGLU (Llama MLP): out = silu(gate) * up, silu(g) = g / (1 + exp(-g)). out may alias gate or up.
void swiglu(const float* gate, const float* up, float* out, size_t n);
/// Row-strided SwiGLU for fused layouts, e.g. a [rows, 2 * cols] gate_up projection:
/// swiglu(p, p + cols, out, rows, cols, 2 * cols, 2 * cols, cols).
void swiglu(const float* gate, const float* up, float* out, size_t rows, size_t cols, size_t gate_stride,
            size_t up_stride, size_t out_stride);

enum class GeluKind : uint8_t {
  Tanh,  ///< 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))): GPT-2's gelu_new, HF "gelu_pytorch_tanh"
  Erf,   ///< 0.5 x (1 + erf(x / sqrt 2)): exact GELU, HF "gelu"
};
/// GELU, element-wise. y may alias x. Error vs. the double formulas: below 2e-7 |x| (Tanh, 1.2e-7
/// measured) and 3e-7 |x| (Erf, 2.0e-7 measured; erfc by Numerical Recipes' Chebyshev fit).
void gelu(const float* x, float* y, size_t n, GeluKind kind = GeluKind::Tanh);

/// Numerically stable softmax over each row of `cols` values: y = exp(x - max) / sum. A row whose
/// values are all -inf becomes all zeros. y may alias x. Relative error per value about
/// (3 + |x - max|) * 1.2e-7: f32 rounds x - max before the exp.
void softmax(const float* x, float* y, size_t rows, size_t cols);

// ---- embedding and linear -------------------------------------------------------------------

/// out[t] = table[ids[t]] for n ids; table is [vocab, dim]. Every id is checked before anything is
/// written: an id outside [0, vocab) throws E_RANGE naming it.
void embedding(const float* table, size_t vocab, size_t dim, const int32_t* ids, size_t n, float* out);
/// The same over f16 (bf16 = false) or bfloat16 (bf16 = true) tables, widened to f32.
void embedding_half(const uint16_t* table, bool bf16, size_t vocab, size_t dim, const int32_t* ids, size_t n,
                    float* out);

enum class WeightLayout : uint8_t {
  OutIn,  ///< [out, in]: HF nn.Linear (y = x W^T + b)
  InOut,  ///< [in, out]: GPT-2's Conv1D (y = x W + b)
};

/// y[rows, out] = x[rows, in] * op(W) + bias, through tersor::sgemm (f32 accumulation). bias has
/// `out` values or is nullptr. ldx / ldy = row strides of x and y (0 = in / out). y must not alias
/// x or W.
void linear(const float* x, const float* w, const float* bias, float* y, size_t rows, size_t in, size_t out,
            WeightLayout layout = WeightLayout::OutIn, size_t ldx = 0, size_t ldy = 0);

}  // namespace tersor
