// Quantization formats (see quant_formats.hpp for the byte layouts).
//
// Two implementations of every quantizer share one algorithm: the scalar reference (namespace
// quant_ref, plain C++) and the fast path (AVX2 where it pays: the element loops of Q8_0 / Q4_0,
// the scale searches of the K-quants with their extreme / first-maximum reductions, the Q6_K code
// packing, and the INT clip search's error sums). Both perform the same IEEE operations in the same order
// (explicit fma where the AVX2 code uses one, round-half-even everywhere), so they produce the
// same bytes; the tests check it.
//
// K-quant scale search (ours; ggml's reference quantizers make_qkx2_quants / make_qx_quants try
// ~20 candidate inverse scales one after another, each a full pass over the sub-block): we try 24
// candidate inverse scales AT ONCE, one per SIMD lane (3 AVX2 vectors), broadcasting each element:
// per element and 8 candidates one multiply, a round, a clamp and three fused multiply-adds give
// the weighted sums S_l, S_ll, S_lx of every candidate; the least-squares scale (and min) of each
// candidate and its weighted squared error follow in closed form from those sums
// (err = s^2 S_ll + 2 s m S_l + m^2 S_w - 2 s S_lx - 2 m S_x + S_xx), so no second pass is needed.
// The candidate grid spans ggml's (nmax + [-1, +1.3]) in steps of 0.1 (Q2_K: 12 candidates in steps
// of 0.2, see kQ2Cand). Error weights: 1 (plain squared error, the metric the issue measures; ggml
// uses av_x + |x| for Q4_K/Q5_K, which costs ~0.7% relative RMSE, x^2 for Q6_K and Q3_K, ~2.6% and
// ~3.8%, and |x| for Q2_K, ~6%),
// and with an imatrix ggml's importance * sqrt(sigma^2 + x^2) (Q6_K: the importance itself).
// Super-block scales are then quantized to 6 (4) bits and the codes recomputed with the quantized
// scales, as in ggml.
// The AVX2 searches of the K-quants (q6_search8 for Q6_K, asym_search8 for Q2_K / Q4_K / Q5_K,
// sym_search8 for Q3_K) run the other way round: one SIMD lane per sub-block (8 sub-blocks of 16 or
// 32 transposed into 16 or 32 vectors), looping over the candidates two at a time, with no
// broadcasts or horizontal reductions; their scalar references (q6_search_ref, asym_search_ref,
// search_asym<VS>, search_sym<VS>) perform the same operations per sub-block in the same order.
// Q6_K uses its own 8 candidates spread over a wide grid (see kQ6Cand).
#include "tersor/quant_formats.hpp"

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <type_traits>

#include "tersor/error.hpp"
#include "tersor/half.hpp"
#include "tersor/parallel.hpp"

#pragma GCC optimize("fp-contract=off")

namespace tersor {
namespace {

constexpr size_t QK_K = 256;

inline float h2f(const uint8_t* p) { uint16_t h; std::memcpy(&h, p, 2); return f16_to_f32_scalar(h); }
inline void f2h(uint8_t* p, float f) { uint16_t h = f32_to_f16_scalar(f); std::memcpy(p, &h, 2); }
inline float rd_f32(const uint8_t* p) { float f; std::memcpy(&f, p, 4); return f; }
inline void wr_f32(uint8_t* p, float f) { std::memcpy(p, &f, 4); }
inline int nearest(float f) { return static_cast<int>(std::nearbyint(f)); }
inline int clampi(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

const char* kValidNames =
    "q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k, q4_k, q5_k, q6_k, mxfp4, nvfp4, nf4[-g<32|64|128|256>][-dq], "
    "fp8 | fp8_e4m3 | fp8_e5m2 [-g<32|64|128>], int<2..8>[-g<32|64|128> | -pt][-asym], kmeans<2..8>";

// ---------------------------------------------------------------- element codecs
const float kNF4[16] = {-1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
                        -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
                        0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
                        0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};
// ggml's kvalues_mxfp4: twice the E2M1 values (so they are integers), codes 8..15 negative.
const int8_t kMX[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

// Generic small float: EB exponent bits, MB mantissa bits, bias; max finite given; no infinities
// produced (saturating). Round to nearest even.
template <int MB, int BIAS>
uint8_t small_float_encode(float x, float maxv, uint8_t max_code, uint8_t nan_code) {
  if (std::isnan(x)) return nan_code;
  const uint8_t sign = std::signbit(x) ? 0x80 : 0;
  float a = std::fabs(x);
  if (a >= maxv) return sign | max_code;
  int e;
  std::frexp(a, &e);  // a = f * 2^e, f in [0.5, 1)
  e -= 1;             // a = m * 2^e, m in [1, 2)
  const int emin = 1 - BIAS;
  if (a == 0.0f) return sign;
  if (e < emin) {  // subnormal: quantum 2^(emin - MB)
    const float q = std::nearbyint(std::ldexp(a, MB - emin));
    return sign | static_cast<uint8_t>(q);  // q == 2^MB becomes the smallest normal, same bits
  }
  float q = std::nearbyint(std::ldexp(a, MB - e));  // in [2^MB, 2^(MB+1)]
  if (q >= static_cast<float>(1 << (MB + 1))) { q = static_cast<float>(1 << MB); ++e; }
  const uint32_t code = (static_cast<uint32_t>(e + BIAS) << MB) | (static_cast<uint32_t>(q) - (1u << MB));
  if (code > max_code) return sign | max_code;
  return sign | static_cast<uint8_t>(code);
}

template <int EB, int MB, int BIAS>
float small_float_decode(uint8_t c) {
  const bool neg = c & 0x80;
  const int e = (c >> MB) & ((1 << EB) - 1);
  const int m = c & ((1 << MB) - 1);
  float v = e == 0 ? std::ldexp(static_cast<float>(m), 1 - BIAS - MB)
                   : std::ldexp(static_cast<float>(m + (1 << MB)), e - BIAS - MB);
  return neg ? -v : v;
}

// ggml's UE4M3 (NVFP4 scale): unsigned, bias 7; decode as ggml (0 and 0x7F -> 0).
inline float ue4m3_decode(uint8_t x) {
  if (x == 0 || x == 0x7F) return 0.0f;
  const int e = (x >> 3) & 0xF, m = x & 7;
  return e == 0 ? std::ldexp(static_cast<float>(m), -9) : std::ldexp(1.0f + m / 8.0f, e - 7);
}
// ggml's encoder (round half up on the 4th mantissa bit, saturating at 0x7E).
inline uint8_t ue4m3_encode(float x) {
  if (!(x > 0.0f)) return 0;
  if (x > 448.0f) x = 448.0f;
  uint32_t bits = f32_bits(x);
  int e = static_cast<int>((bits >> 23) & 0xFF) - 127 + 7;
  int m = (bits >> 20) & 7;
  if (e <= 0) {
    int mm = static_cast<int>(x * 512.0f + 0.5f);
    if (mm > 7) mm = 7;
    return mm < 1 ? 0 : static_cast<uint8_t>(mm);
  }
  if (e >= 15) return 0x7E;
  m += (bits >> 19) & 1;
  if (m > 7) { m = 0; if (++e >= 15) return 0x7E; }
  return static_cast<uint8_t>((e << 3) | m);
}
// E8M0 scale halved (ggml's GGML_E8M0_TO_FP32_HALF): 2^(e - 128).
inline float e8m0_half(uint8_t e) { return std::ldexp(1.0f, static_cast<int>(e) - 128); }

// ggml's best_index_mxfp4: first code of least |kv*d - x|.
inline uint8_t best_index_mx(float x, float d) {
  int best = 0;
  float be = std::fabs(kMX[0] * d - x);
  for (int i = 1; i < 16; ++i) {
    const float err = std::fabs(kMX[i] * d - x);
    if (err < be) { be = err; best = i; }
  }
  return static_cast<uint8_t>(best);
}

inline uint8_t nf4_index(float v) {  // nearest table entry (first on ties)
  int best = 0;
  float be = std::fabs(kNF4[0] - v);
  for (int i = 1; i < 16; ++i) {
    const float e = std::fabs(kNF4[i] - v);
    if (e < be) { be = e; best = i; }
  }
  return static_cast<uint8_t>(best);
}

// ---------------------------------------------------------------- vector abstraction (8 lanes)
struct VS {  // scalar emulation, lane by lane
  float v[8];
  static VS set1(float a) { VS r; for (float& x : r.v) x = a; return r; }
  static VS load(const float* p) { VS r; std::memcpy(r.v, p, 32); return r; }
  void store(float* p) const { std::memcpy(p, v, 32); }
  friend VS operator+(VS a, VS b) { for (int i = 0; i < 8; ++i) a.v[i] = a.v[i] + b.v[i]; return a; }
  friend VS operator*(VS a, VS b) { for (int i = 0; i < 8; ++i) a.v[i] = a.v[i] * b.v[i]; return a; }
  static VS fma(VS a, VS b, VS c) { for (int i = 0; i < 8; ++i) a.v[i] = std::fma(a.v[i], b.v[i], c.v[i]); return a; }
  static VS round(VS a) { for (float& x : a.v) x = std::nearbyint(x); return a; }
  static VS clamp(VS a, float lo, float hi) {
    for (float& x : a.v) x = std::min(std::max(x, lo), hi);
    return a;
  }
  friend VS operator-(VS a, VS b) { for (int i = 0; i < 8; ++i) a.v[i] = a.v[i] - b.v[i]; return a; }
  friend VS operator/(VS a, VS b) { for (int i = 0; i < 8; ++i) a.v[i] = a.v[i] / b.v[i]; return a; }
  // where(a > b, x, y) lane by lane
  static VS sel_gt(VS a, VS b, VS x, VS y) { for (int i = 0; i < 8; ++i) x.v[i] = a.v[i] > b.v[i] ? x.v[i] : y.v[i]; return x; }
};
struct VA {  // AVX2
  __m256 v;
  static VA set1(float a) { return {_mm256_set1_ps(a)}; }
  static VA load(const float* p) { return {_mm256_loadu_ps(p)}; }
  void store(float* p) const { _mm256_storeu_ps(p, v); }
  friend VA operator+(VA a, VA b) { return {_mm256_add_ps(a.v, b.v)}; }
  friend VA operator*(VA a, VA b) { return {_mm256_mul_ps(a.v, b.v)}; }
  static VA fma(VA a, VA b, VA c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
  static VA round(VA a) { return {_mm256_round_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
  static VA clamp(VA a, float lo, float hi) {
    return {_mm256_min_ps(_mm256_max_ps(a.v, _mm256_set1_ps(lo)), _mm256_set1_ps(hi))};
  }
  friend VA operator-(VA a, VA b) { return {_mm256_sub_ps(a.v, b.v)}; }
  friend VA operator/(VA a, VA b) { return {_mm256_div_ps(a.v, b.v)}; }
  static VA sel_gt(VA a, VA b, VA x, VA y) { return {_mm256_blendv_ps(y.v, x.v, _mm256_cmp_ps(a.v, b.v, _CMP_GT_OQ))}; }
};

constexpr int kCand = 24;  // candidate inverse scales per search (3 vectors of 8)

// Asymmetric search: codes l in [0, nmax], value = s*l + m with m <= 0. Returns s, writes m.
template <class V>
float search_asym(const float* x, const float* w, int n, int nmax, float rmin, float rdelta, float* m_out) {
  float mn = x[0], mx = x[0];
  float sw = 0, sx = 0;
  for (int i = 0; i < n; ++i) {
    mn = std::min(mn, x[i]);
    mx = std::max(mx, x[i]);
    sw += w[i]; sx = std::fma(w[i], x[i], sx);
  }
  if (mn > 0) mn = 0;
  if (mx <= mn) { *m_out = mn; return 0.0f; }
  alignas(32) float is[kCand];
  const float inv = 1.0f / (mx - mn);
  for (int k = 0; k < kCand; ++k) is[k] = (static_cast<float>(nmax) + rmin + rdelta * static_cast<float>(k)) * inv;
  V sl[3], sll[3], slx[3];
  for (int c = 0; c < 3; ++c) sl[c] = sll[c] = slx[c] = V::set1(0.0f);
  const V i0 = V::load(is), i1 = V::load(is + 8), i2 = V::load(is + 16);
  const float fn = static_cast<float>(nmax);
  for (int i = 0; i < n; ++i) {
    const V xm = V::set1(x[i] - mn), wv = V::set1(w[i]), xv = V::set1(x[i]);
    V l0 = V::clamp(V::round(xm * i0), 0.0f, fn);
    V l1 = V::clamp(V::round(xm * i1), 0.0f, fn);
    V l2 = V::clamp(V::round(xm * i2), 0.0f, fn);
    V w0 = wv * l0, w1 = wv * l1, w2 = wv * l2;
    sl[0] = sl[0] + w0; sl[1] = sl[1] + w1; sl[2] = sl[2] + w2;
    sll[0] = V::fma(w0, l0, sll[0]); sll[1] = V::fma(w1, l1, sll[1]); sll[2] = V::fma(w2, l2, sll[2]);
    slx[0] = V::fma(w0, xv, slx[0]); slx[1] = V::fma(w1, xv, slx[1]); slx[2] = V::fma(w2, xv, slx[2]);
  }
  // Closed-form least squares per candidate (all lanes at once): D = Sw Sll - Sl^2,
  // s = (Sw Slx - Sx Sl) / D, m = (Sll Sx - Sl Slx) / D; m > 0 is clamped to 0 (s = Slx / Sll);
  // weighted squared error minus the constant Sxx: s (s Sll + 2 m Sl - 2 Slx) + m (m Sw - 2 Sx).
  const V vw = V::set1(static_cast<float>(sw)), vx = V::set1(static_cast<float>(sx)), zero = V::set1(0.0f);
  const V two = V::set1(2.0f), inf = V::set1(std::numeric_limits<float>::infinity());
  alignas(32) float a_e[kCand], a_s[kCand], a_m[kCand];
  for (int c = 0; c < 3; ++c) {
    const V D = vw * sll[c] - sl[c] * sl[c];
    const V Dsafe = V::sel_gt(D, zero, D, V::set1(1.0f));
    V s = (vw * slx[c] - vx * sl[c]) / Dsafe;
    V m = (sll[c] * vx - sl[c] * slx[c]) / Dsafe;
    const V s0 = slx[c] / V::sel_gt(sll[c], zero, sll[c], V::set1(1.0f));
    s = V::sel_gt(m, zero, s0, s);
    m = V::sel_gt(m, zero, zero, m);
    V e = s * (s * sll[c] + two * m * sl[c] - two * slx[c]) + m * (m * vw - two * vx);
    e = V::sel_gt(D, zero, e, inf);
    e.store(a_e + 8 * c); s.store(a_s + 8 * c); m.store(a_m + 8 * c);
  }
  int best = -1;
  float best_e = std::numeric_limits<float>::infinity();
  for (int k = 0; k < kCand; ++k) {  // branch-free first minimum
    const bool better = a_e[k] < best_e;
    best_e = better ? a_e[k] : best_e;
    best = better ? k : best;
  }
  float best_s = (mx - mn) / fn, best_m = mn;
  if (best >= 0) { best_s = a_s[best]; best_m = a_m[best]; }
  *m_out = best_m;
  return best_s;
}

// Symmetric search: codes l in [-nmax, nmax-1], value = s*l (s may be negative, as in ggml).
// NV vectors of 8 candidates.
template <class V, int NV = 3>
float search_sym(const float* x, const float* w, int n, int nmax, float rmin, float rdelta) {
  constexpr int NC = 8 * NV;
  float hi = 0, lo = 0;  // branch-free; the signed extreme of largest magnitude (+ on a tie)
  if constexpr (std::is_same_v<V, VA>) {
    if (n % 8 == 0) {  // max / min are exact: the same hi, lo as the scalar loop
      __m256 vh = _mm256_setzero_ps(), vl = _mm256_setzero_ps();
      for (int i = 0; i < n; i += 8) {
        const __m256 xv = _mm256_loadu_ps(x + i);
        vh = _mm256_max_ps(vh, xv);
        vl = _mm256_min_ps(vl, xv);
      }
      alignas(32) float th[8], tl[8];
      _mm256_store_ps(th, vh);
      _mm256_store_ps(tl, vl);
      for (int l = 0; l < 8; ++l) { hi = std::max(hi, th[l]); lo = std::min(lo, tl[l]); }
    } else {
      for (int i = 0; i < n; ++i) { hi = std::max(hi, x[i]); lo = std::min(lo, x[i]); }
    }
  } else {
    for (int i = 0; i < n; ++i) { hi = std::max(hi, x[i]); lo = std::min(lo, x[i]); }
  }
  const float mx = hi >= -lo ? hi : lo, amax = std::fabs(mx);
  if (amax < 1e-30f) return 0.0f;
  alignas(32) float is[NC];
  const float inv = -1.0f / mx;
  for (int k = 0; k < NC; ++k) is[k] = (static_cast<float>(nmax) + rmin + rdelta * static_cast<float>(k)) * inv;
  V sll[NV], slx[NV], iv[NV];
  for (int c = 0; c < NV; ++c) { sll[c] = slx[c] = V::set1(0.0f); iv[c] = V::load(is + 8 * c); }
  const float clo = -static_cast<float>(nmax), chi = static_cast<float>(nmax - 1);
  for (int i = 0; i < n; ++i) {
    const V xv = V::set1(x[i]), wv = V::set1(w[i]);
    for (int c = 0; c < NV; ++c) {
      const V l = V::clamp(V::round(xv * iv[c]), clo, chi);
      const V wl = wv * l;
      sll[c] = V::fma(wl, l, sll[c]);
      slx[c] = V::fma(wl, xv, slx[c]);
    }
  }
  // error = Sxx - Slx^2 / Sll at the least-squares scale s = Slx / Sll
  alignas(32) float a_g[NC], a_s[NC];
  const V zero = V::set1(0.0f), one = V::set1(1.0f);
  for (int c = 0; c < NV; ++c) {
    const V den = V::sel_gt(sll[c], zero, sll[c], one);
    const V sc = slx[c] / den;
    const V g = V::sel_gt(sll[c], zero, sc * slx[c], V::set1(-1.0f));
    g.store(a_g + 8 * c); sc.store(a_s + 8 * c);
  }
  float best = -0.5f, s = -mx / static_cast<float>(nmax);
  if constexpr (std::is_same_v<V, VA>) {
    // the first maximum, as the scalar scan: the largest value, then the lowest lane holding it
    __m256 m = _mm256_loadu_ps(a_g);
    for (int c = 1; c < NV; ++c) m = _mm256_max_ps(m, _mm256_loadu_ps(a_g + 8 * c));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    const float g = _mm_cvtss_f32(h);
    if (g > best) {
      const __m256 gv = _mm256_set1_ps(g);
      for (int c = 0; c < NV; ++c) {
        const int mask = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(a_g + 8 * c), gv, _CMP_EQ_OQ));
        if (mask) return a_s[8 * c + __builtin_ctz(static_cast<unsigned>(mask))];
      }
    }
    return s;
  }
  for (int k = 0; k < NC; ++k) {  // branch-free first maximum
    const bool better = a_g[k] > best;
    best = better ? a_g[k] : best;
    s = better ? a_s[k] : s;
  }
  return s;
}

// 8x8 transpose of the rows r[0..7] (r[i] lane j becomes r[j] lane i).
inline void transpose8(__m256* r) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(u0, u4, 0x20); r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
  r[2] = _mm256_permute2f128_ps(u2, u6, 0x20); r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
  r[4] = _mm256_permute2f128_ps(u0, u4, 0x31); r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
  r[6] = _mm256_permute2f128_ps(u2, u6, 0x31); r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}
// The N x 8 transpose of 8 sub-blocks of N (a multiple of 8): out[i] lane j = x[N j + i].
template <int N>
inline void transpose_sub8(const float* x, __m256* out) {
  for (int q = 0; q < N / 8; ++q) {
    for (int j = 0; j < 8; ++j) out[8 * q + j] = _mm256_loadu_ps(x + N * j + 8 * q);
    transpose8(out + 8 * q);
  }
}
inline void transpose16x8(const float* x, __m256* out) { transpose_sub8<16>(x, out); }

// The AVX2 form of search_asym (the K-quants with a min: Q2_K over sub-blocks of 16, Q4_K / Q5_K over
// sub-blocks of 32): the same IEEE operations per sub-block in the same order, run the other way
// round: one lane per sub-block, 8 sub-blocks of N transposed into N vectors, looping over the NC
// candidates two at a time (no broadcasts, no horizontal reductions). x, w: 8 N values and weights
// (Unit: every weight is 1 and w is not read; 1 * l = l exactly, so the products are skipped);
// writes the scales sc[8] and the (non-positive) mins m[8].
template <int N, bool Unit, int NC = kCand>
void asym_search8(const float* x, const float* w, int nmax, float rmin, float rdelta, float* sc, float* m_out) {
  __m256 xt[N], wt[Unit ? 1 : N], xm[N];
  transpose_sub8<N>(x, xt);
  if constexpr (!Unit) transpose_sub8<N>(w, wt);
  const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f), fn = _mm256_set1_ps(static_cast<float>(nmax));
  __m256 mn = xt[0], mx = xt[0], sw = zero, sx = zero;
  for (int i = 0; i < N; ++i) {
    mn = _mm256_min_ps(xt[i], mn);  // std::min(mn, x): x < mn ? x : mn
    mx = _mm256_max_ps(xt[i], mx);  // std::max(mx, x): mx < x ? x : mx
    const __m256 wi = Unit ? one : wt[i];
    sw = _mm256_add_ps(sw, wi);
    sx = _mm256_fmadd_ps(wi, xt[i], sx);
  }
  mn = _mm256_min_ps(zero, mn);  // if (mn > 0) mn = 0 (keeps -0)
  const __m256 flat = _mm256_cmp_ps(mx, mn, _CMP_LE_OQ);  // mx <= mn: s = 0, m = mn
  const __m256 range = _mm256_blendv_ps(_mm256_sub_ps(mx, mn), one, flat);
  const __m256 inv = _mm256_div_ps(one, range);
  for (int i = 0; i < N; ++i) xm[i] = _mm256_sub_ps(xt[i], mn);
  __m256 best_e = _mm256_set1_ps(std::numeric_limits<float>::infinity());
  __m256 best_s = _mm256_div_ps(range, fn), best_m = mn;
  const __m256 two = _mm256_set1_ps(2.0f);
  const __m256 inf = _mm256_set1_ps(std::numeric_limits<float>::infinity());
  static_assert(NC % 2 == 0, "candidates are searched two at a time");
  for (int k = 0; k < NC; k += 2) {
    // (nmax + rmin + rdelta k) * inv as search_asym computes it; every candidate is > 0 (callers'
    // rmin > -nmax), so round((x - mn) is) >= 0 and only the upper clamp acts.
    const __m256 is0 = _mm256_mul_ps(_mm256_set1_ps(static_cast<float>(nmax) + rmin + rdelta * static_cast<float>(k)), inv);
    const __m256 is1 = _mm256_mul_ps(_mm256_set1_ps(static_cast<float>(nmax) + rmin + rdelta * static_cast<float>(k + 1)), inv);
    __m256 sl0 = zero, sll0 = zero, slx0 = zero, sl1 = zero, sll1 = zero, slx1 = zero;
    for (int i = 0; i < N; ++i) {
      constexpr int R = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
      const __m256 l0 = _mm256_min_ps(_mm256_round_ps(_mm256_mul_ps(xm[i], is0), R), fn);
      const __m256 l1 = _mm256_min_ps(_mm256_round_ps(_mm256_mul_ps(xm[i], is1), R), fn);
      const __m256 w0 = Unit ? l0 : _mm256_mul_ps(wt[i], l0), w1 = Unit ? l1 : _mm256_mul_ps(wt[i], l1);
      sl0 = _mm256_add_ps(sl0, w0); sll0 = _mm256_fmadd_ps(w0, l0, sll0); slx0 = _mm256_fmadd_ps(w0, xt[i], slx0);
      sl1 = _mm256_add_ps(sl1, w1); sll1 = _mm256_fmadd_ps(w1, l1, sll1); slx1 = _mm256_fmadd_ps(w1, xt[i], slx1);
    }
    const __m256 acc[2][3] = {{sl0, sll0, slx0}, {sl1, sll1, slx1}};
    for (const auto& a : acc) {
      const __m256 sl = a[0], sll = a[1], slx = a[2];
      const __m256 D = _mm256_sub_ps(_mm256_mul_ps(sw, sll), _mm256_mul_ps(sl, sl));
      const __m256 dpos = _mm256_cmp_ps(D, zero, _CMP_GT_OQ);
      const __m256 Dsafe = _mm256_blendv_ps(one, D, dpos);
      __m256 s = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sw, slx), _mm256_mul_ps(sx, sl)), Dsafe);
      __m256 m = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sll, sx), _mm256_mul_ps(sl, slx)), Dsafe);
      const __m256 s0 = _mm256_div_ps(slx, _mm256_blendv_ps(one, sll, _mm256_cmp_ps(sll, zero, _CMP_GT_OQ)));
      const __m256 mpos = _mm256_cmp_ps(m, zero, _CMP_GT_OQ);
      s = _mm256_blendv_ps(s, s0, mpos);
      m = _mm256_blendv_ps(m, zero, mpos);
      const __m256 t1 = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(s, sll), _mm256_mul_ps(_mm256_mul_ps(two, m), sl)),
                                      _mm256_mul_ps(two, slx));
      const __m256 t2 = _mm256_sub_ps(_mm256_mul_ps(m, sw), _mm256_mul_ps(two, sx));
      __m256 e = _mm256_add_ps(_mm256_mul_ps(s, t1), _mm256_mul_ps(m, t2));
      e = _mm256_blendv_ps(inf, e, dpos);
      const __m256 better = _mm256_cmp_ps(e, best_e, _CMP_LT_OQ);
      best_e = _mm256_blendv_ps(best_e, e, better);
      best_s = _mm256_blendv_ps(best_s, s, better);
      best_m = _mm256_blendv_ps(best_m, m, better);
    }
  }
  _mm256_storeu_ps(sc, _mm256_blendv_ps(best_s, zero, flat));
  _mm256_storeu_ps(m_out, _mm256_blendv_ps(best_m, mn, flat));
}

// ---------------------------------------------------------------- ggml simple blocks
template <bool Fast>
void q8_0_row(const float* x, uint8_t* y, size_t n) {
  for (size_t b = 0; b < n / 32; ++b, x += 32, y += 34) {
    float amax = 0;
    if constexpr (Fast) {
      const __m256 sm = _mm256_set1_ps(-0.0f);
      __m256 m = _mm256_setzero_ps();
      for (int j = 0; j < 32; j += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sm, _mm256_loadu_ps(x + j)));
      __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
      h = _mm_max_ps(h, _mm_movehl_ps(h, h));
      h = _mm_max_ss(h, _mm_movehdup_ps(h));
      amax = _mm_cvtss_f32(h);
    } else {
      for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    }
    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    f2h(y, d);
    int8_t* q = reinterpret_cast<int8_t*>(y + 2);
    if constexpr (Fast) {
      const __m256 iv = _mm256_set1_ps(id);
      __m256i a = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x), iv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      __m256i b = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 8), iv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      __m256i c = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 16), iv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      __m256i e = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 24), iv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      __m256i ab = _mm256_packs_epi32(a, b), ce = _mm256_packs_epi32(c, e);
      __m256i r = _mm256_packs_epi16(ab, ce);
      r = _mm256_permutevar8x32_epi32(r, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), r);
    } else {
      for (int j = 0; j < 32; ++j) q[j] = static_cast<int8_t>(nearest(x[j] * id));
    }
  }
}

template <bool Fast>
void q4_0_row(const float* x, uint8_t* y, size_t n) {
  for (size_t b = 0; b < n / 32; ++b, x += 32, y += 18) {
    // the signed value of largest magnitude (ggml's rule; on a tie between +a and -a, +a)
    float hi = 0, lo = 0;
    if constexpr (Fast) {
      __m256 vh = _mm256_setzero_ps(), vl = _mm256_setzero_ps();
      for (int j = 0; j < 32; j += 8) {
        const __m256 v = _mm256_loadu_ps(x + j);
        vh = _mm256_max_ps(vh, v);
        vl = _mm256_min_ps(vl, v);
      }
      __m128 h = _mm_max_ps(_mm256_castps256_ps128(vh), _mm256_extractf128_ps(vh, 1));
      h = _mm_max_ps(h, _mm_movehl_ps(h, h));
      h = _mm_max_ss(h, _mm_movehdup_ps(h));
      __m128 l = _mm_min_ps(_mm256_castps256_ps128(vl), _mm256_extractf128_ps(vl, 1));
      l = _mm_min_ps(l, _mm_movehl_ps(l, l));
      l = _mm_min_ss(l, _mm_movehdup_ps(l));
      hi = _mm_cvtss_f32(h);
      lo = _mm_cvtss_f32(l);
    } else {
      for (int j = 0; j < 32; ++j) { hi = std::max(hi, x[j]); lo = std::min(lo, x[j]); }
    }
    const float mx = hi >= -lo ? hi : lo;
    const float d = mx / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    f2h(y, d);
    uint8_t* q = y + 2;
    if constexpr (Fast) {
      const __m256 iv = _mm256_set1_ps(id), h = _mm256_set1_ps(8.5f);
      const __m256i fifteen = _mm256_set1_epi32(15);
      __m256i v[4];
      for (int k = 0; k < 4; ++k)
        v[k] = _mm256_min_epi32(_mm256_cvttps_epi32(_mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * k), iv), h)), fifteen);
      // lo = elements 0..15, hi = 16..31
      __m256i lo = _mm256_permute4x64_epi64(_mm256_packs_epi32(v[0], v[1]), 0xD8);
      __m256i hi = _mm256_permute4x64_epi64(_mm256_packs_epi32(v[2], v[3]), 0xD8);
      __m256i c = _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4));
      __m128i p = _mm_packus_epi16(_mm256_castsi256_si128(c), _mm256_extracti128_si256(c, 1));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q), p);
    } else {
      for (int j = 0; j < 16; ++j) {
        const int a = std::min(15, static_cast<int>(static_cast<int8_t>(x[j] * id + 8.5f)));
        const int c = std::min(15, static_cast<int>(static_cast<int8_t>(x[j + 16] * id + 8.5f)));
        q[j] = static_cast<uint8_t>(a | (c << 4));
      }
    }
  }
}

void q4_1_row(const float* x, uint8_t* y, size_t n) {
  for (size_t b = 0; b < n / 32; ++b, x += 32, y += 20) {
    float mn = x[0], mx = x[0];
    for (int j = 1; j < 32; ++j) { mn = std::min(mn, x[j]); mx = std::max(mx, x[j]); }
    const float d = (mx - mn) / 15.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    f2h(y, d); f2h(y + 2, mn);
    for (int j = 0; j < 16; ++j) {
      const int a = std::min(15, static_cast<int>(static_cast<int8_t>((x[j] - mn) * id + 0.5f)));
      const int c = std::min(15, static_cast<int>(static_cast<int8_t>((x[j + 16] - mn) * id + 0.5f)));
      y[4 + j] = static_cast<uint8_t>(a | (c << 4));
    }
  }
}

void q5_0_row(const float* x, uint8_t* y, size_t n) {
  for (size_t b = 0; b < n / 32; ++b, x += 32, y += 22) {
    float amax = 0, mx = 0;
    for (int j = 0; j < 32; ++j) {
      const float a = std::fabs(x[j]);
      if (a > amax) { amax = a; mx = x[j]; }
    }
    const float d = mx / -16.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    f2h(y, d);
    uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
      const int a = std::min(31, static_cast<int>(static_cast<int8_t>(x[j] * id + 16.5f)));
      const int c = std::min(31, static_cast<int>(static_cast<int8_t>(x[j + 16] * id + 16.5f)));
      y[6 + j] = static_cast<uint8_t>((a & 15) | ((c & 15) << 4));
      qh |= static_cast<uint32_t>((a >> 4) & 1) << j;
      qh |= static_cast<uint32_t>((c >> 4) & 1) << (j + 16);
    }
    std::memcpy(y + 2, &qh, 4);
  }
}

void q5_1_row(const float* x, uint8_t* y, size_t n) {
  for (size_t b = 0; b < n / 32; ++b, x += 32, y += 24) {
    float mn = x[0], mx = x[0];
    for (int j = 1; j < 32; ++j) { mn = std::min(mn, x[j]); mx = std::max(mx, x[j]); }
    const float d = (mx - mn) / 31.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    f2h(y, d); f2h(y + 2, mn);
    uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
      const int a = static_cast<uint8_t>((x[j] - mn) * id + 0.5f);
      const int c = static_cast<uint8_t>((x[j + 16] - mn) * id + 0.5f);
      y[8 + j] = static_cast<uint8_t>((a & 15) | ((c & 15) << 4));
      qh |= static_cast<uint32_t>((a >> 4) & 1) << j;
      qh |= static_cast<uint32_t>((c >> 4) & 1) << (j + 16);
    }
    std::memcpy(y + 4, &qh, 4);
  }
}

// ---------------------------------------------------------------- K-quants
inline void get_scale_min_k4(int j, const uint8_t* q, int* d, int* m) {
  if (j < 4) { *d = q[j] & 63; *m = q[j + 4] & 63; }
  else { *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4); *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4); }
}
inline void set_scale_min_k4(uint8_t* s, const int* ls, const int* lm) {
  std::memset(s, 0, 12);
  for (int j = 0; j < 8; ++j) {
    if (j < 4) { s[j] = static_cast<uint8_t>(ls[j]); s[j + 4] = static_cast<uint8_t>(lm[j]); }
    else {
      s[j + 4] = static_cast<uint8_t>((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
      s[j - 4] |= static_cast<uint8_t>((ls[j] >> 4) << 6);
      s[j] |= static_cast<uint8_t>((lm[j] >> 4) << 6);
    }
  }
}
inline int q3k_scale(const uint8_t* s, int j) {
  int sc = j < 8 ? (s[j] & 0xF) : (s[j - 8] >> 4);
  return (sc | (((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
}

// Weights of a 256-block's error for the searches (ggml's choices).
enum class WKind { AvAbs, Sq, Abs, One };
void kweights(const float* x, const float* imp, int sub, WKind kind, float sigma_mul, float* w) {
  if (imp) {
    float s2 = 0;
    for (size_t l = 0; l < QK_K; ++l) s2 += x[l] * x[l];
    const float sigma2 = sigma_mul * s2 / QK_K;
    for (size_t l = 0; l < QK_K; ++l) w[l] = imp[l] * std::sqrt(sigma2 + x[l] * x[l]);
    return;
  }
  for (size_t j = 0; j < QK_K; j += sub) {
    if (kind == WKind::AvAbs) {
      float s2 = 0;
      for (int l = 0; l < sub; ++l) s2 += x[j + l] * x[j + l];
      const float av = std::sqrt(s2 / sub);
      for (int l = 0; l < sub; ++l) w[j + l] = av + std::fabs(x[j + l]);
    } else if (kind == WKind::Sq) {
      for (int l = 0; l < sub; ++l) w[j + l] = x[j + l] * x[j + l];
    } else if (kind == WKind::Abs) {
      for (int l = 0; l < sub; ++l) w[j + l] = std::fabs(x[j + l]);
    } else {
      for (int l = 0; l < sub; ++l) w[j + l] = 1.0f;
    }
  }
}

// Codes l = clamp(round((x - m) / d), lo, hi) for n elements (n multiple of 8).
template <bool Fast>
void requant(const float* x, int n, float d, float m, int lo, int hi, int* L) {
  if (d == 0.0f) { for (int i = 0; i < n; ++i) L[i] = clampi(0, lo, hi); return; }
  if constexpr (Fast) {
    const __m256 dv = _mm256_set1_ps(d), mv = _mm256_set1_ps(m);
    const __m256 lv = _mm256_set1_ps(static_cast<float>(lo)), hv = _mm256_set1_ps(static_cast<float>(hi));
    for (int i = 0; i < n; i += 8) {
      __m256 t = _mm256_div_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv), dv);
      t = _mm256_round_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      t = _mm256_min_ps(_mm256_max_ps(t, lv), hv);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(L + i), _mm256_cvtps_epi32(t));
    }
  } else {
    for (int i = 0; i < n; ++i) {
      const float t = std::nearbyint((x[i] - m) / d);
      L[i] = static_cast<int>(std::min(std::max(t, static_cast<float>(lo)), static_cast<float>(hi)));
    }
  }
}

template <bool Fast>
void qk_asym_row(const float* x, uint8_t* y, size_t n, const float* imp, int nmax, bool five) {
  using V = std::conditional_t<Fast, VA, VS>;
  const size_t bs = five ? 176 : 144;
  alignas(32) float w[QK_K];
  int L[QK_K];
  for (size_t b = 0; b < n / QK_K; ++b, x += QK_K, y += bs, imp = imp ? imp + QK_K : nullptr) {
    float sc[8], mn[8], max_s = 0, max_m = 0;
    if constexpr (Fast) {
      if (imp) {
        kweights(x, imp, 32, WKind::One, 2.0f, w);
        asym_search8<32, false>(x, w, nmax, -1.0f, 0.1f, sc, mn);
      } else {
        asym_search8<32, true>(x, nullptr, nmax, -1.0f, 0.1f, sc, mn);  // WKind::One: unit weights
      }
    } else {
      kweights(x, imp, 32, WKind::One, 2.0f, w);
      for (int j = 0; j < 8; ++j) sc[j] = search_asym<V>(x + 32 * j, w + 32 * j, 32, nmax, -1.0f, 0.1f, &mn[j]);
    }
    for (int j = 0; j < 8; ++j) {
      mn[j] = -mn[j];
      max_s = std::max(max_s, sc[j]);
      max_m = std::max(max_m, mn[j]);
    }
    const float inv_s = max_s > 0 ? 63.0f / max_s : 0.0f, inv_m = max_m > 0 ? 63.0f / max_m : 0.0f;
    int ls[8], lm[8];
    for (int j = 0; j < 8; ++j) { ls[j] = std::min(63, nearest(inv_s * sc[j])); lm[j] = std::min(63, nearest(inv_m * mn[j])); }
    f2h(y, max_s / 63.0f);
    f2h(y + 2, max_m / 63.0f);
    set_scale_min_k4(y + 4, ls, lm);
    const float d = h2f(y), dmin = h2f(y + 2);
    for (int j = 0; j < 8; ++j) requant<Fast>(x + 32 * j, 32, d * ls[j], -dmin * lm[j], 0, nmax, L + 32 * j);
    if (!five) {
      uint8_t* q = y + 16;
      for (size_t j = 0; j < QK_K; j += 64, q += 32)
        for (int l = 0; l < 32; ++l) q[l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 4));
    } else {
      uint8_t* qh = y + 16;
      uint8_t* ql = y + 48;
      std::memset(qh, 0, 32);
      uint8_t m1 = 1, m2 = 2;
      for (size_t j = 0; j < QK_K; j += 64, ql += 32, m1 <<= 2, m2 <<= 2)
        for (int l = 0; l < 32; ++l) {  // branch-free (the high bits are random: branches mispredict)
          const int a = L[j + l], c = L[j + l + 32];
          qh[l] = static_cast<uint8_t>(qh[l] | (a > 15 ? m1 : 0) | (c > 15 ? m2 : 0));
          ql[l] = static_cast<uint8_t>((a & 15) | ((c & 15) << 4));
        }
    }
  }
}

// Q6_K scale search (ours). Per sub-block of 16: the signed extreme mx, then kQ6Cand candidate inverse
// scales is_k = -c_k / mx with c_k = kQ6C0 + kQ6Step * k spread over [28, 32.4] (a wide grid finds
// lower-error scales than ggml's nmax +- 0.9 in steps of 0.1: the error is a rough function of the
// scale, so spread beats density); codes l = clamp(round(x is_k), -32, 31); the least-squares scale
// Slx / Sll of each and the first of the largest Slx^2 / Sll (= the least weighted squared error).
// Unweighted (w = 1: the plain squared error the issue measures; ggml weights by x^2, which costs
// ~2.6% relative RMSE) unless an importance vector is given. c_k <= 32.4 < 32.5 keeps every
// |x is_k| below 32.5, so the lower clamp never acts (the fast path skips it).
constexpr int kQ6Cand = 8;
constexpr float kQ6C0 = 28.0f, kQ6Step = 0.62f;
static_assert(kQ6C0 + kQ6Step * (kQ6Cand - 1) <= 32.41f, "Q6_K candidates must stay below 32.5");
inline float q6_cand(int k) { return kQ6C0 + kQ6Step * static_cast<float>(k); }

// The scalar reference of one sub-block (w null: unweighted).
float q6_search_ref(const float* x, const float* w) {
  float hi = 0, lo = 0;
  for (int i = 0; i < 16; ++i) { hi = std::max(hi, x[i]); lo = std::min(lo, x[i]); }
  const float mx = hi >= -lo ? hi : lo, amax = std::fabs(mx);
  if (amax < 1e-30f) return 0.0f;
  const float inv = -1.0f / mx;
  float best = -0.5f, s = -mx / 32.0f;
  for (int k = 0; k < kQ6Cand; ++k) {
    const float is = q6_cand(k) * inv;
    float sll = 0, slx = 0;
    for (int i = 0; i < 16; ++i) {
      const float l = std::min(std::max(std::nearbyint(x[i] * is), -32.0f), 31.0f);
      const float wl = w ? w[i] * l : l;
      sll = std::fma(wl, l, sll);
      slx = std::fma(wl, x[i], slx);
    }
    const float sc = slx / (sll > 0 ? sll : 1.0f);
    const float g = sll > 0 ? sc * slx : -1.0f;
    if (g > best) { best = g; s = sc; }
  }
  return s;
}


// The AVX2 search of 8 sub-blocks at once, lane j = sub-block j (x: 128 values; w: null or 128
// weights); the same IEEE operations per sub-block, in the same order, as q6_search_ref.
/// One candidate of the K-quant scale searches, eight lanes at a time: for the sums sll = sum w l^2 and
/// slx = sum w l x of a trial rounding, the least-squares scale is slx / sll and its gain slx^2 / sll
/// (ggml's make_qx_quants criterion); lanes where the gain beats `best` take the new scale.
inline void keep_best_scale(__m256 sll, __m256 slx, __m256& best, __m256& s) {
  const __m256 pos = _mm256_cmp_ps(sll, _mm256_setzero_ps(), _CMP_GT_OQ);
  const __m256 scc = _mm256_div_ps(slx, _mm256_blendv_ps(_mm256_set1_ps(1.0f), sll, pos));
  const __m256 g = _mm256_blendv_ps(_mm256_set1_ps(-1.0f), _mm256_mul_ps(scc, slx), pos);
  const __m256 better = _mm256_cmp_ps(g, best, _CMP_GT_OQ);
  best = _mm256_blendv_ps(best, g, better);
  s = _mm256_blendv_ps(s, scc, better);
}

template <bool Weighted>
void q6_search8(const float* x, const float* w, float* sc) {
  __m256 xt[16], wt[16];
  transpose16x8(x, xt);
  if constexpr (Weighted) transpose16x8(w, wt);
  __m256 hi = _mm256_setzero_ps(), lo = _mm256_setzero_ps();
  for (int i = 0; i < 16; ++i) { hi = _mm256_max_ps(hi, xt[i]); lo = _mm256_min_ps(lo, xt[i]); }
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 mx = _mm256_blendv_ps(lo, hi, _mm256_cmp_ps(hi, _mm256_xor_ps(lo, sign), _CMP_GE_OQ));
  const __m256 valid = _mm256_cmp_ps(_mm256_andnot_ps(sign, mx), _mm256_set1_ps(1e-30f), _CMP_GE_OQ);
  const __m256 mxs = _mm256_blendv_ps(_mm256_set1_ps(1.0f), mx, valid);
  const __m256 inv = _mm256_div_ps(_mm256_set1_ps(-1.0f), mxs);
  __m256 best = _mm256_set1_ps(-0.5f), s = _mm256_div_ps(_mm256_xor_ps(mxs, sign), _mm256_set1_ps(32.0f));
  const __m256 zero = _mm256_setzero_ps(), c31 = _mm256_set1_ps(31.0f);
  static_assert(kQ6Cand % 2 == 0, "candidates are searched two at a time");
  for (int k = 0; k < kQ6Cand; k += 2) {
    const __m256 is0 = _mm256_mul_ps(_mm256_set1_ps(q6_cand(k)), inv);
    const __m256 is1 = _mm256_mul_ps(_mm256_set1_ps(q6_cand(k + 1)), inv);
    __m256 sll0 = zero, slx0 = zero, sll1 = zero, slx1 = zero;
    for (int i = 0; i < 16; ++i) {
      constexpr int R = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
      const __m256 l0 = _mm256_min_ps(_mm256_round_ps(_mm256_mul_ps(xt[i], is0), R), c31);
      const __m256 l1 = _mm256_min_ps(_mm256_round_ps(_mm256_mul_ps(xt[i], is1), R), c31);
      if constexpr (Weighted) {
        const __m256 wl0 = _mm256_mul_ps(wt[i], l0), wl1 = _mm256_mul_ps(wt[i], l1);
        sll0 = _mm256_fmadd_ps(wl0, l0, sll0); slx0 = _mm256_fmadd_ps(wl0, xt[i], slx0);
        sll1 = _mm256_fmadd_ps(wl1, l1, sll1); slx1 = _mm256_fmadd_ps(wl1, xt[i], slx1);
      } else {
        sll0 = _mm256_fmadd_ps(l0, l0, sll0); slx0 = _mm256_fmadd_ps(l0, xt[i], slx0);
        sll1 = _mm256_fmadd_ps(l1, l1, sll1); slx1 = _mm256_fmadd_ps(l1, xt[i], slx1);
      }
    }
    keep_best_scale(sll0, slx0, best, s);
    keep_best_scale(sll1, slx1, best, s);
  }
  _mm256_storeu_ps(sc, _mm256_and_ps(s, valid));
}

template <bool Fast>
void q6_k_row(const float* x, uint8_t* y, size_t n, const float* imp) {
  int L[QK_K];
  for (size_t b = 0; b < n / QK_K; ++b, x += QK_K, y += 210, imp = imp ? imp + QK_K : nullptr) {
    float sc[16], max_s = 0, amax = 0;
    if constexpr (Fast) {
      if (imp) { q6_search8<true>(x, imp, sc); q6_search8<true>(x + 128, imp + 128, sc + 8); }
      else { q6_search8<false>(x, nullptr, sc); q6_search8<false>(x + 128, nullptr, sc + 8); }
    } else {
      for (int j = 0; j < 16; ++j) sc[j] = q6_search_ref(x + 16 * j, imp ? imp + 16 * j : nullptr);
    }
    for (int j = 0; j < 16; ++j)
      if (std::fabs(sc[j]) > amax) { amax = std::fabs(sc[j]); max_s = sc[j]; }
    std::memset(y, 0, 210);
    if (amax == 0) continue;
    const float iscale = -128.0f / max_s;
    f2h(y + 208, 1 / iscale);
    int8_t* scales = reinterpret_cast<int8_t*>(y + 192);
    for (int j = 0; j < 16; ++j) scales[j] = static_cast<int8_t>(std::min(127, nearest(iscale * sc[j])));
    const float d = h2f(y + 208);
    for (int j = 0; j < 16; ++j) requant<Fast>(x + 16 * j, 16, d * scales[j], 0.0f, -32, 31, L + 16 * j);
    // (ours) least-squares refit of the super-block scale for the chosen codes: d = sum(s q x) / sum((s q)^2)
    float sxq = 0, sqq = 0;
    if constexpr (Fast) {
      __m256 axq = _mm256_setzero_ps(), aqq = _mm256_setzero_ps();
      for (int i = 0; i < 256; i += 8) {
        const __m256 sq = _mm256_mul_ps(_mm256_set1_ps(static_cast<float>(scales[i / 16])),
                                        _mm256_cvtepi32_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(L + i))));
        axq = _mm256_add_ps(axq, _mm256_mul_ps(sq, _mm256_loadu_ps(x + i)));
        aqq = _mm256_add_ps(aqq, _mm256_mul_ps(sq, sq));
      }
      alignas(32) float a1[8], a2[8];
      _mm256_store_ps(a1, axq);
      _mm256_store_ps(a2, aqq);
      for (int l = 0; l < 8; ++l) { sxq += a1[l]; sqq += a2[l]; }
    } else {
      float axq[8] = {0}, aqq[8] = {0};  // 8 lanes, the AVX2 path's order
      for (int i = 0; i < 256; i += 8) {
        const float scf = static_cast<float>(scales[i / 16]);  // exact: small integers
        for (int l = 0; l < 8; ++l) {
          const float sq = scf * static_cast<float>(L[i + l]);
          axq[l] = axq[l] + sq * x[i + l];
          aqq[l] = aqq[l] + sq * sq;
        }
      }
      for (int l = 0; l < 8; ++l) { sxq += axq[l]; sqq += aqq[l]; }
    }
    if (sqq > 0) f2h(y + 208, sxq / sqq);
    uint8_t* ql = y;
    uint8_t* qh = y + 128;
    if constexpr (Fast) {  // the same bytes as the scalar packing below, 8 codes per step
      const __m256i m15 = _mm256_set1_epi32(15), c32 = _mm256_set1_epi32(32);
      const __m256i pick = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                            0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
      auto store8 = [&](uint8_t* o, __m256i v) {  // low byte of each 32-bit lane
        const __m256i t = _mm256_shuffle_epi8(v, pick);
        const __m128i u = _mm_unpacklo_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
        _mm_storel_epi64(reinterpret_cast<__m128i*>(o), u);
      };
      auto ld = [&](size_t i) { return _mm256_add_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(L + i)), c32); };
      for (size_t j = 0; j < QK_K; j += 128, ql += 64, qh += 32)
        for (int l = 0; l < 32; l += 8) {
          const __m256i a = ld(j + l), bb = ld(j + l + 32), c = ld(j + l + 64), d = ld(j + l + 96);
          store8(ql + l, _mm256_or_si256(_mm256_and_si256(a, m15), _mm256_slli_epi32(_mm256_and_si256(c, m15), 4)));
          store8(ql + l + 32, _mm256_or_si256(_mm256_and_si256(bb, m15), _mm256_slli_epi32(_mm256_and_si256(d, m15), 4)));
          const __m256i h = _mm256_or_si256(
              _mm256_or_si256(_mm256_srli_epi32(a, 4), _mm256_slli_epi32(_mm256_srli_epi32(bb, 4), 2)),
              _mm256_or_si256(_mm256_slli_epi32(_mm256_srli_epi32(c, 4), 4), _mm256_slli_epi32(_mm256_srli_epi32(d, 4), 6)));
          store8(qh + l, h);
        }
      continue;
    }
    for (int i = 0; i < 256; ++i) L[i] += 32;
    for (size_t j = 0; j < QK_K; j += 128, ql += 64, qh += 32)
      for (int l = 0; l < 32; ++l) {
        ql[l] = static_cast<uint8_t>((L[j + l] & 0xF) | ((L[j + l + 64] & 0xF) << 4));
        ql[l + 32] = static_cast<uint8_t>((L[j + l + 32] & 0xF) | ((L[j + l + 96] & 0xF) << 4));
        qh[l] = static_cast<uint8_t>((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) |
                                     ((L[j + l + 96] >> 4) << 6));
      }
  }
}

inline void pack2(const int* L, uint8_t* qs) {
  for (size_t j = 0; j < QK_K; j += 128)
    for (int l = 0; l < 32; ++l)
      qs[j / 4 + l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

// The AVX2 form of search_sym for Q3_K (sub-blocks of 16): the same IEEE operations per sub-block in
// the same order as search_sym<VS, 3>, one lane per sub-block (8 sub-blocks transposed into 16
// vectors), looping over its 24 candidates two at a time. Unit: every weight is 1, w is not read.
template <bool Unit>
void sym_search8(const float* x, const float* w, int nmax, float rmin, float rdelta, float* sc) {
  __m256 xt[16], wt[Unit ? 1 : 16];
  transpose_sub8<16>(x, xt);
  if constexpr (!Unit) transpose_sub8<16>(w, wt);
  __m256 hi = _mm256_setzero_ps(), lo = _mm256_setzero_ps();
  for (int i = 0; i < 16; ++i) { hi = _mm256_max_ps(hi, xt[i]); lo = _mm256_min_ps(lo, xt[i]); }
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 mx = _mm256_blendv_ps(lo, hi, _mm256_cmp_ps(hi, _mm256_xor_ps(lo, sign), _CMP_GE_OQ));
  const __m256 valid = _mm256_cmp_ps(_mm256_andnot_ps(sign, mx), _mm256_set1_ps(1e-30f), _CMP_GE_OQ);
  const __m256 mxs = _mm256_blendv_ps(_mm256_set1_ps(1.0f), mx, valid);
  const __m256 inv = _mm256_div_ps(_mm256_set1_ps(-1.0f), mxs);
  __m256 best = _mm256_set1_ps(-0.5f);
  __m256 s = _mm256_div_ps(_mm256_xor_ps(mxs, sign), _mm256_set1_ps(static_cast<float>(nmax)));
  const __m256 zero = _mm256_setzero_ps();
  const __m256 clo = _mm256_set1_ps(-static_cast<float>(nmax)), chi = _mm256_set1_ps(static_cast<float>(nmax - 1));
  for (int k = 0; k < kCand; k += 2) {
    const __m256 is0 = _mm256_mul_ps(_mm256_set1_ps(static_cast<float>(nmax) + rmin + rdelta * static_cast<float>(k)), inv);
    const __m256 is1 = _mm256_mul_ps(_mm256_set1_ps(static_cast<float>(nmax) + rmin + rdelta * static_cast<float>(k + 1)), inv);
    __m256 sll0 = zero, slx0 = zero, sll1 = zero, slx1 = zero;
    for (int i = 0; i < 16; ++i) {
      constexpr int R = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
      const __m256 l0 = _mm256_min_ps(_mm256_max_ps(_mm256_round_ps(_mm256_mul_ps(xt[i], is0), R), clo), chi);
      const __m256 l1 = _mm256_min_ps(_mm256_max_ps(_mm256_round_ps(_mm256_mul_ps(xt[i], is1), R), clo), chi);
      const __m256 w0 = Unit ? l0 : _mm256_mul_ps(wt[i], l0), w1 = Unit ? l1 : _mm256_mul_ps(wt[i], l1);
      sll0 = _mm256_fmadd_ps(w0, l0, sll0); slx0 = _mm256_fmadd_ps(w0, xt[i], slx0);
      sll1 = _mm256_fmadd_ps(w1, l1, sll1); slx1 = _mm256_fmadd_ps(w1, xt[i], slx1);
    }
    keep_best_scale(sll0, slx0, best, s);
    keep_best_scale(sll1, slx1, best, s);
  }
  _mm256_storeu_ps(sc, _mm256_and_ps(s, valid));
}

template <bool Fast>
void q3_k_row(const float* x, uint8_t* y, size_t n, const float* imp) {
  using V = std::conditional_t<Fast, VA, VS>;
  alignas(32) float w[QK_K];
  int L[QK_K];
  for (size_t b = 0; b < n / QK_K; ++b, x += QK_K, y += 110, imp = imp ? imp + QK_K : nullptr) {
    float sc[16], max_s = 0, amax = 0;
    if constexpr (Fast) {
      if (imp) {
        kweights(x, imp, 16, WKind::One, 2.0f, w);
        sym_search8<false>(x, w, 4, -0.5f, 0.1f, sc);
        sym_search8<false>(x + 128, w + 128, 4, -0.5f, 0.1f, sc + 8);
      } else {  // unit weights
        sym_search8<true>(x, nullptr, 4, -0.5f, 0.1f, sc);
        sym_search8<true>(x + 128, nullptr, 4, -0.5f, 0.1f, sc + 8);
      }
    } else {
      kweights(x, imp, 16, WKind::One, 2.0f, w);
      for (int j = 0; j < 16; ++j) sc[j] = search_sym<V>(x + 16 * j, w + 16 * j, 16, 4, -0.5f, 0.1f);
    }
    for (int j = 0; j < 16; ++j)
      if (std::fabs(sc[j]) > amax) { amax = std::fabs(sc[j]); max_s = sc[j]; }
    std::memset(y, 0, 110);
    uint8_t* s = y + 96;
    if (amax > 0) {
      const float iscale = -32.0f / max_s;
      for (int j = 0; j < 16; ++j) {
        int l = clampi(nearest(iscale * sc[j]), -32, 31) + 32;
        if (j < 8) s[j] = static_cast<uint8_t>(l & 0xF); else s[j - 8] |= static_cast<uint8_t>((l & 0xF) << 4);
        s[8 + j % 4] |= static_cast<uint8_t>((l >> 4) << (2 * (j / 4)));
      }
      f2h(y + 108, 1 / iscale);
    }
    const float d = h2f(y + 108);
    for (int j = 0; j < 16; ++j) {
      requant<Fast>(x + 16 * j, 16, d * q3k_scale(s, j), 0.0f, -4, 3, L + 16 * j);
      for (int l = 0; l < 16; ++l) L[16 * j + l] += 4;
    }
    uint8_t* hm = y;
    for (int j = 0; j < 256; ++j)
      if (L[j] > 3) { hm[j % 32] |= static_cast<uint8_t>(1 << (j / 32)); L[j] -= 4; }
    pack2(L, y + 32);
  }
}

// Q2_K's search: search_asym's function with kQ2Cand candidates nmax + [-0.5, +1.7] in steps of 0.2
// (half of search_asym's 24 in steps of 0.1: with unit weights the error is ~0.2705 relative RMSE on
// N(0,1) against 0.2697 with 24, and 0.2867 for ggml's |x| weights with 24). The scalar reference, one
// candidate after another, with the IEEE operations of search_asym (and asym_search8) per candidate.
constexpr int kQ2Cand = 12;
float asym_search_ref(const float* x, const float* w, int n, int nmax, float rmin, float rdelta, int nc, float* m_out) {
  float mn = x[0], mx = x[0];
  float sw = 0, sx = 0;
  for (int i = 0; i < n; ++i) {
    mn = std::min(mn, x[i]);
    mx = std::max(mx, x[i]);
    sw += w[i]; sx = std::fma(w[i], x[i], sx);
  }
  if (mn > 0) mn = 0;
  if (mx <= mn) { *m_out = mn; return 0.0f; }
  const float inv = 1.0f / (mx - mn), fn = static_cast<float>(nmax);
  const float inf = std::numeric_limits<float>::infinity();
  float best_e = inf, best_s = (mx - mn) / fn, best_m = mn;
  for (int k = 0; k < nc; ++k) {
    const float is = (static_cast<float>(nmax) + rmin + rdelta * static_cast<float>(k)) * inv;
    float sl = 0, sll = 0, slx = 0;
    for (int i = 0; i < n; ++i) {
      const float l = std::min(std::max(std::nearbyint((x[i] - mn) * is), 0.0f), fn);
      const float wl = w[i] * l;
      sl = sl + wl;
      sll = std::fma(wl, l, sll);
      slx = std::fma(wl, x[i], slx);
    }
    const float D = sw * sll - sl * sl;
    const float Dsafe = D > 0 ? D : 1.0f;
    float s = (sw * slx - sx * sl) / Dsafe;
    float m = (sll * sx - sl * slx) / Dsafe;
    const float s0 = slx / (sll > 0 ? sll : 1.0f);
    if (m > 0) { s = s0; m = 0; }
    float e = s * (s * sll + 2.0f * m * sl - 2.0f * slx) + m * (m * sw - 2.0f * sx);
    if (!(D > 0)) e = inf;
    if (e < best_e) { best_e = e; best_s = s; best_m = m; }
  }
  *m_out = best_m;
  return best_s;
}

template <bool Fast>
void q2_k_row(const float* x, uint8_t* y, size_t n, const float* imp) {
  alignas(32) float w[QK_K];
  int L[QK_K];
  for (size_t b = 0; b < n / QK_K; ++b, x += QK_K, y += 84, imp = imp ? imp + QK_K : nullptr) {
    float sc[16], mn[16], max_s = 0, max_m = 0;
    if constexpr (Fast) {
      if (imp) {
        kweights(x, imp, 16, WKind::One, 1.0f, w);
        asym_search8<16, false, kQ2Cand>(x, w, 3, -0.5f, 0.2f, sc, mn);
        asym_search8<16, false, kQ2Cand>(x + 128, w + 128, 3, -0.5f, 0.2f, sc + 8, mn + 8);
      } else {  // unit weights
        asym_search8<16, true, kQ2Cand>(x, nullptr, 3, -0.5f, 0.2f, sc, mn);
        asym_search8<16, true, kQ2Cand>(x + 128, nullptr, 3, -0.5f, 0.2f, sc + 8, mn + 8);
      }
    } else {
      kweights(x, imp, 16, WKind::One, 1.0f, w);
      for (int j = 0; j < 16; ++j) sc[j] = asym_search_ref(x + 16 * j, w + 16 * j, 16, 3, -0.5f, 0.2f, kQ2Cand, &mn[j]);
    }
    for (int j = 0; j < 16; ++j) {
      mn[j] = -mn[j];
      max_s = std::max(max_s, sc[j]);
      max_m = std::max(max_m, mn[j]);
    }
    std::memset(y, 0, 84);
    uint8_t* s = y;
    if (max_s > 0) {
      const float is = 15.0f / max_s;
      for (int j = 0; j < 16; ++j) s[j] = static_cast<uint8_t>(std::min(15, nearest(is * sc[j])));
      f2h(y + 80, max_s / 15.0f);
    }
    if (max_m > 0) {
      const float is = 15.0f / max_m;
      for (int j = 0; j < 16; ++j) s[j] |= static_cast<uint8_t>(std::min(15, nearest(is * mn[j])) << 4);
      f2h(y + 82, max_m / 15.0f);
    }
    const float d = h2f(y + 80), dmin = h2f(y + 82);
    for (int j = 0; j < 16; ++j) requant<Fast>(x + 16 * j, 16, d * (s[j] & 0xF), -dmin * (s[j] >> 4), 0, 3, L + 16 * j);
    pack2(L, y + 16);
  }
}

// ---------------------------------------------------------------- FP4
// Squared error of n values coded with ggml's best_index_mx under the (halved) scale d.
inline float fp4_err(const float* x, int n, float d) {
  float e = 0;
  for (int j = 0; j < n; ++j) {
    const float r = kMX[best_index_mx(x[j], d)] * d - x[j];
    e += r * r;
  }
  return e;
}

// MXFP4: ggml's scale e = floor(log2 amax) - 2 + 127, then (ours) the neighbour e + 1 is tried too
// and kept when its squared error is strictly lower (ggml's choice wins ties).
void mxfp4_row(const float* x, uint8_t* y, size_t n) {
  for (size_t b = 0; b < n / 32; ++b, x += 32, y += 17) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    int e = amax > 0.0f ? static_cast<int>(std::floor(std::log2(amax))) - 2 + 127 : 0;
    e = clampi(e, 0, 254);
    if (amax > 0.0f && e < 254 && fp4_err(x, 32, e8m0_half(static_cast<uint8_t>(e + 1))) < fp4_err(x, 32, e8m0_half(static_cast<uint8_t>(e))))
      ++e;
    const float d = e8m0_half(static_cast<uint8_t>(e));
    y[0] = static_cast<uint8_t>(e);
    for (int j = 0; j < 16; ++j)
      y[1 + j] = static_cast<uint8_t>(best_index_mx(x[j], d) | (best_index_mx(x[j + 16], d) << 4));
  }
}

// NVFP4: ggml's scale ue4m3(amax / 6), then (ours) the two neighbouring E4M3 codes are tried and
// the one of least squared error is kept (ggml's choice wins ties).
void nvfp4_row(const float* x, uint8_t* y, size_t n) {
  for (size_t b = 0; b < n / 64; ++b, x += 64, y += 36) {
    for (int s = 0; s < 4; ++s) {
      const float* xb = x + 16 * s;
      float amax = 0;
      for (int j = 0; j < 16; ++j) amax = std::max(amax, std::fabs(xb[j]));
      uint8_t ue = ue4m3_encode(amax / 6.0f);
      if (ue != 0) {
        float be = fp4_err(xb, 16, ue4m3_decode(ue) * 0.5f);
        const uint8_t base = ue;
        for (int delta : {-1, 1}) {
          const int c = base + delta;
          if (c < 1 || c > 0x7E) continue;
          const float e = fp4_err(xb, 16, ue4m3_decode(static_cast<uint8_t>(c)) * 0.5f);
          if (e < be) { be = e; ue = static_cast<uint8_t>(c); }
        }
      }
      y[s] = ue;
      const float d = ue4m3_decode(ue) * 0.5f;  // kMX values are doubled
      for (int j = 0; j < 8; ++j)
        y[4 + 8 * s + j] = static_cast<uint8_t>(best_index_mx(xb[j], d) | (best_index_mx(xb[j + 8], d) << 4));
    }
  }
}

// ---------------------------------------------------------------- INT
struct IntParams { float d; int z; };  // value = d * (c - z)

// Branch-free (random code bits made the old bit-by-bit branches mispredict on every call).
inline void put_bits(uint8_t* p, size_t i, int bits, uint32_t c) {
  if (bits == 8) { p[i] = static_cast<uint8_t>(c); return; }
  if (bits == 4 || bits == 2) {
    const size_t per = 8 / static_cast<size_t>(bits);
    const int sh = static_cast<int>(i % per) * bits;
    const uint32_t m = ((1u << bits) - 1u) << sh;
    p[i / per] = static_cast<uint8_t>((p[i / per] & ~m) | ((c << sh) & m));
    return;
  }
  size_t bit = i * bits;
  for (int k = 0; k < bits; ++k, ++bit) {
    const uint32_t sh = bit & 7, b = (c >> k) & 1u;
    p[bit >> 3] = static_cast<uint8_t>((p[bit >> 3] & ~(1u << sh)) | (b << sh));
  }
}
inline uint32_t get_bits(const uint8_t* p, size_t i, int bits) {
  if (bits == 8) return p[i];
  if (bits == 4) return (p[i >> 1] >> ((i & 1) * 4)) & 15;
  if (bits == 2) return (p[i >> 2] >> ((i & 3) * 2)) & 3;
  size_t bit = i * bits;
  uint32_t v = 0;
  for (int k = 0; k < bits; ++k, ++bit) v |= static_cast<uint32_t>(p[bit >> 3] >> (bit & 7) & 1) << k;
  return v;
}

// Weighted squared error of one group under value = d (c - z), c = clamp(round(x / d) + z, 0, qmax).
// One summation order for both paths: r = d (c - z) - x in f32 (d (c - z) is exact: an f16 times an
// integer of <= 8 bits), w r^2 added to f32 lane i % 8, the lanes flushed into f64 every 256
// elements and summed lane 0..7 at the end. The AVX2 path computes exactly these operations, so
// both pick the same parameters (byte-identical output).
template <bool Fast>
double int_group_error(const float* x, size_t g, float d, int z, int qmax, const float* imp) {
  const float id = d != 0.0f ? 1.0f / d : 0.0f, zf = static_cast<float>(z), qf = static_cast<float>(qmax);
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  double dacc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  if constexpr (Fast) {
    __m256 va = _mm256_setzero_ps();
    __m256d dlo = _mm256_setzero_pd(), dhi = _mm256_setzero_pd();
    const __m256 vid = _mm256_set1_ps(id), vz = _mm256_set1_ps(zf), vq = _mm256_set1_ps(qf), vd = _mm256_set1_ps(d),
                 v0 = _mm256_setzero_ps();
    for (; i + 8 <= g; i += 8) {
      if (i && i % 256 == 0) {
        dlo = _mm256_add_pd(dlo, _mm256_cvtps_pd(_mm256_castps256_ps128(va)));
        dhi = _mm256_add_pd(dhi, _mm256_cvtps_pd(_mm256_extractf128_ps(va, 1)));
        va = _mm256_setzero_ps();
      }
      const __m256 xv = _mm256_loadu_ps(x + i);
      __m256 c = _mm256_round_ps(_mm256_mul_ps(xv, vid), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      c = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(c, vz), v0), vq);
      const __m256 r = _mm256_sub_ps(_mm256_mul_ps(vd, _mm256_sub_ps(c, vz)), xv);
      __m256 e = _mm256_mul_ps(r, r);
      if (imp) e = _mm256_mul_ps(_mm256_loadu_ps(imp + i), e);
      va = _mm256_add_ps(va, e);
    }
    _mm256_storeu_ps(acc, va);
    _mm256_storeu_pd(dacc, dlo);
    _mm256_storeu_pd(dacc + 4, dhi);
  }
  for (; i < g; ++i) {
    if (i && i % 256 == 0)
      for (int l = 0; l < 8; ++l) { dacc[l] += static_cast<double>(acc[l]); acc[l] = 0.0f; }
    const float c = std::min(std::max(std::nearbyint(x[i] * id) + zf, 0.0f), qf);
    const float r = d * (c - zf) - x[i];
    float e = r * r;
    if (imp) e = imp[i] * e;
    acc[i % 8] += e;
  }
  double sum = 0;
  for (int l = 0; l < 8; ++l) sum += dacc[l] + static_cast<double>(acc[l]);
  return sum;
}

// Best parameters for one group (range shrink grid when clip search is on). The parameters are
// rounded to their stored precision (f16 scale, u8 zero) before they are scored.
template <bool Fast>
IntParams int_params(const QuantScheme& s, const float* x, size_t g, const float* imp) {
  const int qmax = (1 << s.bits) - 1, half = 1 << (s.bits - 1);
  float mn = x[0], mx = x[0], amax = 0, smax = 0;
  for (size_t i = 0; i < g; ++i) {
    mn = std::min(mn, x[i]); mx = std::max(mx, x[i]);
    if (std::fabs(x[i]) > amax) { amax = std::fabs(x[i]); smax = x[i]; }
  }
  auto make = [&](float shrink) -> IntParams {
    if (s.symmetric) {
      float d = f16_to_f32_scalar(f32_to_f16_scalar(smax * shrink / -static_cast<float>(half)));
      return {d, half};
    }
    const float lo = std::min(mn * shrink, 0.0f), hi = std::max(mx * shrink, 0.0f);
    float d = f16_to_f32_scalar(f32_to_f16_scalar((hi - lo) / qmax));
    int z = d != 0.0f ? clampi(nearest(-lo / d), 0, qmax) : 0;
    return {d, z};
  };
  auto err = [&](IntParams p) { return int_group_error<Fast>(x, g, p.d, p.z, qmax, imp); };
  IntParams best = make(1.0f);
  if (!s.clip_search || amax == 0.0f) return best;
  double be = err(best);
  for (int k = 1; k <= 20; ++k) {  // shrink 1 - k/40: down to 0.5 (AWQ's auto-clip grid)
    IntParams p = make(1.0f - static_cast<float>(k) / 40.0f);
    const double e = err(p);
    if (e < be) { be = e; best = p; }
  }
  return best;
}

void int_encode_group(const QuantScheme& s, const float* x, size_t g, IntParams p, uint8_t* out) {
  const int qmax = (1 << s.bits) - 1;
  f2h(out, p.d);
  uint8_t* codes = out + 2;
  if (!s.symmetric) { out[2] = static_cast<uint8_t>(p.z); codes = out + 3; }
  std::memset(codes, 0, (g * s.bits + 7) / 8);
  const float id = p.d != 0.0f ? 1.0f / p.d : 0.0f;
  for (size_t i = 0; i < g; ++i) put_bits(codes, i, s.bits, static_cast<uint32_t>(clampi(nearest(x[i] * id) + p.z, 0, qmax)));
}

// ---------------------------------------------------------------- NF4
void nf4_row(const QuantScheme& s, const float* x, uint8_t* y, size_t n) {
  const size_t g = s.group, nb = n / g;
  std::vector<float> am(nb);
  for (size_t b = 0; b < nb; ++b) {
    float a = 0;
    for (size_t i = 0; i < g; ++i) a = std::max(a, std::fabs(x[b * g + i]));
    am[b] = a;
  }
  auto codes = [&](size_t b, float absmax, uint8_t* c) {
    const float ia = absmax > 0 ? 1.0f / absmax : 0.0f;
    for (size_t i = 0; i < g; i += 2)
      c[i / 2] = static_cast<uint8_t>(nf4_index(x[b * g + i] * ia) | (nf4_index(x[b * g + i + 1] * ia) << 4));
  };
  if (!s.double_quant) {
    for (size_t b = 0; b < nb; ++b, y += 4 + g / 2) { wr_f32(y, am[b]); codes(b, am[b], y + 4); }
    return;
  }
  const size_t chunks = (nb + 255) / 256;
  uint8_t* blocks = y + 8 * chunks;
  for (size_t c = 0; c < chunks; ++c) {
    const size_t b0 = c * 256, b1 = std::min(nb, b0 + 256);
    double mean = 0;
    for (size_t b = b0; b < b1; ++b) mean += am[b];
    mean /= static_cast<double>(b1 - b0);
    float dev = 0;
    for (size_t b = b0; b < b1; ++b) dev = std::max(dev, std::fabs(am[b] - static_cast<float>(mean)));
    const float step = dev / 127.0f;
    wr_f32(y + 8 * c, static_cast<float>(mean));
    wr_f32(y + 8 * c + 4, step);
    for (size_t b = b0; b < b1; ++b) {
      uint8_t* blk = blocks + b * (1 + g / 2);
      const int q = step > 0 ? clampi(nearest((am[b] - static_cast<float>(mean)) / step), -127, 127) : 0;
      blk[0] = static_cast<uint8_t>(q + 128);
      codes(b, static_cast<float>(mean) + step * q, blk + 1);
    }
  }
}

// ---------------------------------------------------------------- FP8
inline uint8_t fp8_enc(bool e5, float v) { return e5 ? fp8_e5m2_encode(v) : fp8_e4m3_encode(v); }
inline float fp8_dec(bool e5, uint8_t c) { return e5 ? fp8_e5m2_decode(c) : fp8_e4m3_decode(c); }

void fp8_row(const QuantScheme& s, const float* x, uint8_t* y, size_t n) {
  const bool e5 = s.format == QuantFormat::FP8_E5M2;
  const float fmax = e5 ? 57344.0f : 448.0f;
  const size_t g = s.group ? s.group : n;
  for (size_t b = 0; b < n / g; ++b, x += g, y += 4 + g) {
    float a = 0;
    for (size_t i = 0; i < g; ++i) a = std::max(a, std::fabs(x[i]));
    const float sc = a > 0 ? a / fmax : 1.0f;
    wr_f32(y, sc);
    const float is = 1.0f / sc;
    for (size_t i = 0; i < g; ++i) y[4 + i] = fp8_enc(e5, x[i] * is);
  }
}

// ---------------------------------------------------------------- KMEANS
void kmeans_row(const QuantScheme& s, const float* x, uint8_t* y, size_t n, const float* imp) {
  const size_t k = size_t{1} << s.bits;
  std::vector<float> c = kmeans_1d(x, imp, n, k, 30);
  for (size_t j = 0; j < k; ++j) c[j] = f16_to_f32_scalar(f32_to_f16_scalar(c[j]));
  std::sort(c.begin(), c.end());
  for (size_t j = 0; j < k; ++j) f2h(y + 2 * j, c[j]);
  uint8_t* codes = y + 2 * k;
  std::memset(codes, 0, (n * s.bits + 7) / 8);
  for (size_t i = 0; i < n; ++i) {
    const size_t up = static_cast<size_t>(std::lower_bound(c.begin(), c.end(), x[i]) - c.begin());
    size_t best = up < k ? up : k - 1;
    if (up > 0 && (up == k || std::fabs(x[i] - c[up - 1]) <= std::fabs(c[up] - x[i]))) best = up - 1;
    put_bits(codes, i, s.bits, static_cast<uint32_t>(best));
  }
}

void check_row(const QuantScheme& s, const float* x, size_t n) {
  scheme_row_bytes(s, n);
  // branch-free scan (vectorises): exponent bits all ones = Inf or NaN
  uint32_t bad = 0;
  for (size_t i = 0; i < n; ++i) {
    uint32_t u;
    std::memcpy(&u, x + i, 4);
    bad |= static_cast<uint32_t>((u & 0x7f800000u) == 0x7f800000u);
  }
  if (bad)
    for (size_t i = 0; i < n; ++i)
      if (!std::isfinite(x[i])) fail(ErrorCode::Range, "quantize: non-finite value at index " + std::to_string(i));
}

template <bool Fast>
void quantize_any(const QuantScheme& s, const float* x, void* out, size_t n, const float* imp) {
  check_row(s, x, n);
  uint8_t* y = static_cast<uint8_t*>(out);
  switch (s.format) {
    case QuantFormat::Q8_0: return q8_0_row<Fast>(x, y, n);
    case QuantFormat::Q4_0: return q4_0_row<Fast>(x, y, n);
    case QuantFormat::Q4_1: return q4_1_row(x, y, n);
    case QuantFormat::Q5_0: return q5_0_row(x, y, n);
    case QuantFormat::Q5_1: return q5_1_row(x, y, n);
    case QuantFormat::Q2_K: return q2_k_row<Fast>(x, y, n, imp);
    case QuantFormat::Q3_K: return q3_k_row<Fast>(x, y, n, imp);
    case QuantFormat::Q4_K: return qk_asym_row<Fast>(x, y, n, imp, 15, false);
    case QuantFormat::Q5_K: return qk_asym_row<Fast>(x, y, n, imp, 31, true);
    case QuantFormat::Q6_K: return q6_k_row<Fast>(x, y, n, imp);
    case QuantFormat::MXFP4: return mxfp4_row(x, y, n);
    case QuantFormat::NVFP4: return nvfp4_row(x, y, n);
    case QuantFormat::NF4: return nf4_row(s, x, y, n);
    case QuantFormat::FP8_E4M3:
    case QuantFormat::FP8_E5M2: return fp8_row(s, x, y, n);
    case QuantFormat::KMEANS: return kmeans_row(s, x, y, n, imp);
    case QuantFormat::INT: {
      const size_t g = s.group ? s.group : n, gb = scheme_block_bytes(s, n);
      for (size_t b = 0; b < n / g; ++b)
        int_encode_group(s, x + b * g, g, int_params<Fast>(s, x + b * g, g, imp ? imp + b * g : nullptr), y + b * gb);
      return;
    }
  }
}

void dequant_any(const QuantScheme& s, const void* in, float* out, size_t n) {
  scheme_row_bytes(s, n);
  const uint8_t* p = static_cast<const uint8_t*>(in);
  switch (s.format) {
    case QuantFormat::Q8_0:
      for (size_t b = 0; b < n / 32; ++b, p += 34) {
        const float d = h2f(p);
        for (int j = 0; j < 32; ++j) *out++ = d * static_cast<int8_t>(p[2 + j]);
      }
      return;
    case QuantFormat::Q4_0:
      for (size_t b = 0; b < n / 32; ++b, p += 18, out += 32) {
        const float d = h2f(p);
        for (int j = 0; j < 16; ++j) { out[j] = d * ((p[2 + j] & 15) - 8); out[j + 16] = d * ((p[2 + j] >> 4) - 8); }
      }
      return;
    case QuantFormat::Q4_1:
      for (size_t b = 0; b < n / 32; ++b, p += 20, out += 32) {
        const float d = h2f(p), m = h2f(p + 2);
        for (int j = 0; j < 16; ++j) { out[j] = d * (p[4 + j] & 15) + m; out[j + 16] = d * (p[4 + j] >> 4) + m; }
      }
      return;
    case QuantFormat::Q5_0:
    case QuantFormat::Q5_1: {
      const bool one = s.format == QuantFormat::Q5_1;
      const size_t bs = one ? 24 : 22;
      for (size_t b = 0; b < n / 32; ++b, p += bs, out += 32) {
        const float d = h2f(p), m = one ? h2f(p + 2) : 0.0f;
        uint32_t qh; std::memcpy(&qh, p + (one ? 4 : 2), 4);
        const uint8_t* qs = p + (one ? 8 : 6);
        for (int j = 0; j < 16; ++j) {
          const int a = (qs[j] & 15) | ((qh >> j & 1) << 4), c = (qs[j] >> 4) | ((qh >> (j + 16) & 1) << 4);
          out[j] = one ? d * a + m : d * (a - 16);
          out[j + 16] = one ? d * c + m : d * (c - 16);
        }
      }
      return;
    }
    case QuantFormat::Q2_K:
      for (size_t b = 0; b < n / QK_K; ++b, p += 84) {
        const float d = h2f(p + 80), mn = h2f(p + 82);
        const uint8_t* q = p + 16;
        int is = 0;
        for (int k = 0; k < 2; ++k, q += 32)
          for (int shift = 0; shift < 8; shift += 2)
            for (int h = 0; h < 2; ++h) {
              const uint8_t sc = p[is++];
              const float dl = d * (sc & 0xF), ml = mn * (sc >> 4);
              for (int l = 0; l < 16; ++l) *out++ = dl * ((q[l + 16 * h] >> shift) & 3) - ml;
            }
      }
      return;
    case QuantFormat::Q3_K:
      for (size_t b = 0; b < n / QK_K; ++b, p += 110) {
        const float d = h2f(p + 108);
        const uint8_t* q = p + 32;
        const uint8_t* hm = p;
        int is = 0;
        uint8_t m = 1;
        for (int k = 0; k < 2; ++k, q += 32)
          for (int shift = 0; shift < 8; shift += 2, m <<= 1)
            for (int h = 0; h < 2; ++h) {
              const float dl = d * q3k_scale(p + 96, is++);
              for (int l = 0; l < 16; ++l)
                *out++ = dl * (((q[l + 16 * h] >> shift) & 3) - ((hm[l + 16 * h] & m) ? 0 : 4));
            }
      }
      return;
    case QuantFormat::Q4_K:
    case QuantFormat::Q5_K: {
      const bool five = s.format == QuantFormat::Q5_K;
      for (size_t b = 0; b < n / QK_K; ++b, p += five ? 176 : 144) {
        const float d = h2f(p), mn = h2f(p + 2);
        const uint8_t* ql = p + (five ? 48 : 16);
        const uint8_t* qh = p + 16;
        uint8_t u1 = 1, u2 = 2;
        for (int j = 0; j < 4; ++j, ql += 32, u1 <<= 2, u2 <<= 2) {
          int sc, m;
          get_scale_min_k4(2 * j, p + 4, &sc, &m);
          const float d1 = d * sc, m1 = mn * m;
          get_scale_min_k4(2 * j + 1, p + 4, &sc, &m);
          const float d2 = d * sc, m2 = mn * m;
          for (int l = 0; l < 32; ++l) *out++ = d1 * ((ql[l] & 0xF) + (five && (qh[l] & u1) ? 16 : 0)) - m1;
          for (int l = 0; l < 32; ++l) *out++ = d2 * ((ql[l] >> 4) + (five && (qh[l] & u2) ? 16 : 0)) - m2;
        }
      }
      return;
    }
    case QuantFormat::Q6_K:
      for (size_t b = 0; b < n / QK_K; ++b, p += 210) {
        const float d = h2f(p + 208);
        const uint8_t* ql = p;
        const uint8_t* qh = p + 128;
        const int8_t* sc = reinterpret_cast<const int8_t*>(p + 192);
        for (int k = 0; k < 2; ++k, out += 128, ql += 64, qh += 32, sc += 8)
          for (int l = 0; l < 32; ++l) {
            const int is = l / 16;
            out[l] = d * sc[is] * (((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
            out[l + 32] = d * sc[is + 2] * (((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
            out[l + 64] = d * sc[is + 4] * (((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
            out[l + 96] = d * sc[is + 6] * (((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
          }
      }
      return;
    case QuantFormat::MXFP4:
      for (size_t b = 0; b < n / 32; ++b, p += 17, out += 32) {
        const float d = e8m0_half(p[0]);
        for (int j = 0; j < 16; ++j) { out[j] = kMX[p[1 + j] & 15] * d; out[j + 16] = kMX[p[1 + j] >> 4] * d; }
      }
      return;
    case QuantFormat::NVFP4:
      for (size_t b = 0; b < n / 64; ++b, p += 36)
        for (int sb = 0; sb < 4; ++sb, out += 16) {
          const float d = ue4m3_decode(p[sb]) * 0.5f;
          for (int j = 0; j < 8; ++j) { out[j] = kMX[p[4 + 8 * sb + j] & 15] * d; out[j + 8] = kMX[p[4 + 8 * sb + j] >> 4] * d; }
        }
      return;
    case QuantFormat::NF4: {
      const size_t g = s.group, nb = n / g;
      if (!s.double_quant) {
        for (size_t b = 0; b < nb; ++b, p += 4 + g / 2) {
          const float a = rd_f32(p);
          for (size_t i = 0; i < g / 2; ++i) { *out++ = kNF4[p[4 + i] & 15] * a; *out++ = kNF4[p[4 + i] >> 4] * a; }
        }
        return;
      }
      const size_t chunks = (nb + 255) / 256;
      const uint8_t* blocks = p + 8 * chunks;
      for (size_t b = 0; b < nb; ++b) {
        const uint8_t* blk = blocks + b * (1 + g / 2);
        const float a = rd_f32(p + 8 * (b / 256)) + rd_f32(p + 8 * (b / 256) + 4) * (static_cast<int>(blk[0]) - 128);
        for (size_t i = 0; i < g / 2; ++i) { *out++ = kNF4[blk[1 + i] & 15] * a; *out++ = kNF4[blk[1 + i] >> 4] * a; }
      }
      return;
    }
    case QuantFormat::FP8_E4M3:
    case QuantFormat::FP8_E5M2: {
      const bool e5 = s.format == QuantFormat::FP8_E5M2;
      static const std::array<std::array<float, 256>, 2> lut = [] {
        std::array<std::array<float, 256>, 2> t{};
        for (int c = 0; c < 256; ++c) { t[0][c] = fp8_dec(false, static_cast<uint8_t>(c)); t[1][c] = fp8_dec(true, static_cast<uint8_t>(c)); }
        return t;
      }();
      const float* tb = lut[e5 ? 1 : 0].data();
      const size_t g = s.group ? s.group : n;
      for (size_t b = 0; b < n / g; ++b, p += 4 + g) {
        const float sc = rd_f32(p);
        for (size_t i = 0; i < g; ++i) *out++ = tb[p[4 + i]] * sc;
      }
      return;
    }
    case QuantFormat::KMEANS: {
      const size_t k = size_t{1} << s.bits;
      float c[256];
      for (size_t j = 0; j < k; ++j) c[j] = h2f(p + 2 * j);
      for (size_t i = 0; i < n; ++i) out[i] = c[get_bits(p + 2 * k, i, s.bits)];
      return;
    }
    case QuantFormat::INT: {
      const size_t g = s.group ? s.group : n, gb = scheme_block_bytes(s, n);
      const int half = 1 << (s.bits - 1);
      for (size_t b = 0; b < n / g; ++b, p += gb) {
        const float d = h2f(p);
        const int z = s.symmetric ? half : p[2];
        const uint8_t* codes = p + (s.symmetric ? 2 : 3);
        for (size_t i = 0; i < g; ++i) *out++ = d * (static_cast<int>(get_bits(codes, i, s.bits)) - z);
      }
      return;
    }
  }
}

}  // namespace

// ================================================================ public API
const float* nf4_table() { return kNF4; }
uint8_t fp8_e4m3_encode(float x) { return small_float_encode<3, 7>(x, 448.0f, 0x7E, 0x7F); }
float fp8_e4m3_decode(uint8_t c) {
  if ((c & 0x7F) == 0x7F) return std::numeric_limits<float>::quiet_NaN();
  return small_float_decode<4, 3, 7>(c);
}
uint8_t fp8_e5m2_encode(float x) { return small_float_encode<2, 15>(x, 57344.0f, 0x7B, 0x7E); }
float fp8_e5m2_decode(uint8_t c) {
  const int e = (c >> 2) & 31, m = c & 3;
  if (e == 31) return m ? std::numeric_limits<float>::quiet_NaN() : ((c & 0x80) ? -INFINITY : INFINITY);
  return small_float_decode<5, 2, 15>(c);
}
uint8_t e2m1_encode(float x) {
  static const float v[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
  const uint8_t sign = std::signbit(x) ? 8 : 0;
  const float a = std::fabs(x);
  int best = 0;
  for (int i = 1; i < 8; ++i) {
    const float e = std::fabs(v[i] - a), eb = std::fabs(v[best] - a);
    if (e < eb || (e == eb && (i & 1) == 0)) best = i;
  }
  return static_cast<uint8_t>(sign | best);
}
float e2m1_decode(uint8_t c) { return kMX[c & 15] * 0.5f; }

std::vector<float> kmeans_1d(const float* x, const float* w, size_t n, size_t k, int iters) {
  require(k >= 1 && n >= 1, ErrorCode::Range, "kmeans_1d: need n >= 1 and k >= 1");
  std::vector<float> xs(x, x + n);
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return x[a] < x[b]; });
  for (size_t i = 0; i < n; ++i) xs[i] = x[order[i]];
  std::vector<double> ws(n), cw(n + 1, 0.0), cwx(n + 1, 0.0);
  for (size_t i = 0; i < n; ++i) {
    ws[i] = w ? std::max(0.0f, w[order[i]]) : 1.0;
    cw[i + 1] = cw[i] + ws[i];
    cwx[i + 1] = cwx[i] + ws[i] * xs[i];
  }
  std::vector<float> c(k);
  // weighted quantile initialisation
  const double total = cw[n] > 0 ? cw[n] : 1.0;
  for (size_t j = 0; j < k; ++j) {
    const double t = (static_cast<double>(j) + 0.5) / static_cast<double>(k) * total;
    size_t i = static_cast<size_t>(std::lower_bound(cw.begin() + 1, cw.end(), t) - (cw.begin() + 1));
    c[j] = xs[std::min(i, n - 1)];
  }
  std::vector<size_t> bound(k + 1);
  for (int it = 0; it < iters; ++it) {
    std::sort(c.begin(), c.end());
    // cluster j holds sorted indices [bound[j], bound[j+1])
    bound[0] = 0; bound[k] = n;
    for (size_t j = 1; j < k; ++j) {
      const float mid = 0.5f * (c[j - 1] + c[j]);
      bound[j] = static_cast<size_t>(std::upper_bound(xs.begin(), xs.end(), mid) - xs.begin());
      bound[j] = std::max(bound[j], bound[j - 1]);
    }
    bool changed = false;
    for (size_t j = 0; j < k; ++j) {
      const double sw = cw[bound[j + 1]] - cw[bound[j]];
      if (sw <= 0) continue;  // empty cluster keeps its centroid
      const float nc = static_cast<float>((cwx[bound[j + 1]] - cwx[bound[j]]) / sw);
      if (nc != c[j]) { c[j] = nc; changed = true; }
    }
    if (!changed) break;
  }
  std::sort(c.begin(), c.end());
  return c;
}

QuantScheme parse_quant_scheme(const std::string& raw) {
  std::string name;
  for (char ch : raw) name += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  auto bad = [&]() -> QuantScheme {
    fail(ErrorCode::Range, "unknown quantization scheme \"" + raw + "\"; valid: " + kValidNames);
  };
  static const std::pair<const char*, QuantFormat> fixed[] = {
      {"q8_0", QuantFormat::Q8_0}, {"q4_0", QuantFormat::Q4_0}, {"q4_1", QuantFormat::Q4_1},
      {"q5_0", QuantFormat::Q5_0}, {"q5_1", QuantFormat::Q5_1}, {"q2_k", QuantFormat::Q2_K},
      {"q3_k", QuantFormat::Q3_K}, {"q4_k", QuantFormat::Q4_K}, {"q5_k", QuantFormat::Q5_K},
      {"q6_k", QuantFormat::Q6_K}, {"mxfp4", QuantFormat::MXFP4}, {"nvfp4", QuantFormat::NVFP4}};
  for (const auto& [n, f] : fixed)
    if (name == n) { QuantScheme s; s.format = f; return s; }
  // split on '-'
  std::vector<std::string> parts;
  size_t st = 0;
  for (size_t i = 0; i <= name.size(); ++i)
    if (i == name.size() || name[i] == '-') { parts.push_back(name.substr(st, i - st)); st = i + 1; }
  auto parse_uint = [&](const std::string& t, size_t from) -> long {
    if (t.size() <= from || t.size() > from + 4) return -1;
    long v = 0;
    for (size_t i = from; i < t.size(); ++i) {
      if (!std::isdigit(static_cast<unsigned char>(t[i]))) return -1;
      v = v * 10 + (t[i] - '0');
    }
    return v;
  };
  QuantScheme s;
  const std::string& head = parts[0];
  size_t i = 1;
  if (head == "nf4") {
    s.format = QuantFormat::NF4; s.bits = 4; s.group = 64;
    for (; i < parts.size(); ++i) {
      if (parts[i] == "dq") s.double_quant = true;
      else if (parts[i][0] == 'g') {
        const long g = parse_uint(parts[i], 1);
        if (g != 32 && g != 64 && g != 128 && g != 256) return bad();
        s.group = static_cast<size_t>(g);
      } else return bad();
    }
    return s;
  }
  if (head == "fp8" || head == "fp8_e4m3" || head == "fp8_e5m2") {
    s.format = head == "fp8_e5m2" ? QuantFormat::FP8_E5M2 : QuantFormat::FP8_E4M3; s.bits = 8;
    if (i < parts.size()) {
      const long g = parts[i][0] == 'g' ? parse_uint(parts[i], 1) : -1;
      if (g != 32 && g != 64 && g != 128) return bad();
      s.group = static_cast<size_t>(g); ++i;
    }
    if (i != parts.size()) return bad();
    return s;
  }
  if (head.rfind("kmeans", 0) == 0) {
    const long b = parse_uint(head, 6);
    if (b < 2 || b > 8 || parts.size() != 1) return bad();
    s.format = QuantFormat::KMEANS; s.bits = static_cast<int>(b);
    return s;
  }
  if (head.rfind("int", 0) == 0) {
    const long b = parse_uint(head, 3);
    if (b < 2 || b > 8) return bad();
    s.format = QuantFormat::INT; s.bits = static_cast<int>(b);
    for (; i < parts.size(); ++i) {
      if (parts[i] == "asym") s.symmetric = false;
      else if (parts[i] == "pt" && s.group == 0 && !s.per_tensor) s.per_tensor = true;
      else if (parts[i][0] == 'g' && s.group == 0 && !s.per_tensor) {
        const long g = parse_uint(parts[i], 1);
        if (g != 32 && g != 64 && g != 128) return bad();
        s.group = static_cast<size_t>(g);
      } else if (parts[i] == "noclip") s.clip_search = false;
      else return bad();
    }
    return s;
  }
  return bad();
}

std::string quant_scheme_name(const QuantScheme& s) {
  switch (s.format) {
    case QuantFormat::Q8_0: return "q8_0";
    case QuantFormat::Q4_0: return "q4_0";
    case QuantFormat::Q4_1: return "q4_1";
    case QuantFormat::Q5_0: return "q5_0";
    case QuantFormat::Q5_1: return "q5_1";
    case QuantFormat::Q2_K: return "q2_k";
    case QuantFormat::Q3_K: return "q3_k";
    case QuantFormat::Q4_K: return "q4_k";
    case QuantFormat::Q5_K: return "q5_k";
    case QuantFormat::Q6_K: return "q6_k";
    case QuantFormat::MXFP4: return "mxfp4";
    case QuantFormat::NVFP4: return "nvfp4";
    case QuantFormat::NF4: return "nf4" + (s.group != 64 ? "-g" + std::to_string(s.group) : "") + (s.double_quant ? "-dq" : "");
    case QuantFormat::FP8_E4M3: return "fp8_e4m3" + (s.group ? "-g" + std::to_string(s.group) : "");
    case QuantFormat::FP8_E5M2: return "fp8_e5m2" + (s.group ? "-g" + std::to_string(s.group) : "");
    case QuantFormat::KMEANS: return "kmeans" + std::to_string(s.bits);
    case QuantFormat::INT:
      return "int" + std::to_string(s.bits) + (s.group ? "-g" + std::to_string(s.group) : "") + (s.per_tensor ? "-pt" : "") +
             (s.symmetric ? "" : "-asym") + (s.clip_search ? "" : "-noclip");
  }
  return "?";
}

size_t scheme_block(const QuantScheme& s) {
  switch (s.format) {
    case QuantFormat::Q8_0: case QuantFormat::Q4_0: case QuantFormat::Q4_1: case QuantFormat::Q5_0:
    case QuantFormat::Q5_1: case QuantFormat::MXFP4: return 32;
    case QuantFormat::Q2_K: case QuantFormat::Q3_K: case QuantFormat::Q4_K: case QuantFormat::Q5_K:
    case QuantFormat::Q6_K: return QK_K;
    case QuantFormat::NVFP4: return 64;
    case QuantFormat::NF4: return s.group;
    case QuantFormat::FP8_E4M3: case QuantFormat::FP8_E5M2: case QuantFormat::INT: return s.group;
    case QuantFormat::KMEANS: return 0;
  }
  return 0;
}

static void check_scheme(const QuantScheme& s) {
  if (s.format == QuantFormat::INT || s.format == QuantFormat::KMEANS)
    require(s.bits >= 2 && s.bits <= 8, ErrorCode::Range, "quantization scheme: bits must be 2..8");
  if (s.format == QuantFormat::NF4)
    require(s.group >= 2 && s.group % 2 == 0, ErrorCode::Range, "quantization scheme: nf4 block size must be even");
}

size_t scheme_block_bytes(const QuantScheme& s, size_t n) {
  check_scheme(s);
  switch (s.format) {
    case QuantFormat::Q8_0: return 34;
    case QuantFormat::Q4_0: return 18;
    case QuantFormat::Q4_1: return 20;
    case QuantFormat::Q5_0: return 22;
    case QuantFormat::Q5_1: return 24;
    case QuantFormat::Q2_K: return 84;
    case QuantFormat::Q3_K: return 110;
    case QuantFormat::Q4_K: return 144;
    case QuantFormat::Q5_K: return 176;
    case QuantFormat::Q6_K: return 210;
    case QuantFormat::MXFP4: return 17;
    case QuantFormat::NVFP4: return 36;
    case QuantFormat::NF4: return (s.double_quant ? 1 : 4) + s.group / 2;
    case QuantFormat::FP8_E4M3: case QuantFormat::FP8_E5M2: return 4 + (s.group ? s.group : n);
    case QuantFormat::INT: {
      const size_t g = s.group ? s.group : n;
      return 2 + (s.symmetric ? 0 : 1) + (g * s.bits + 7) / 8;
    }
    case QuantFormat::KMEANS: return (size_t{2} << s.bits) + (n * s.bits + 7) / 8;
  }
  return 0;
}

size_t scheme_row_bytes(const QuantScheme& s, size_t n) {
  check_scheme(s);
  const size_t b = scheme_block(s);
  if (n == 0) fail(ErrorCode::Shape, "quantize: a row needs at least one element");
  if (b && n % b != 0)
    fail(ErrorCode::Shape, "quantize: row length " + std::to_string(n) + " is not a multiple of the " + quant_scheme_name(s) +
                               " block size " + std::to_string(b));
  if (!b) return scheme_block_bytes(s, n);
  size_t bytes = (n / b) * scheme_block_bytes(s, n);
  if (s.format == QuantFormat::NF4 && s.double_quant) bytes += 8 * ((n / b + 255) / 256);
  return bytes;
}

double scheme_bits_per_weight(const QuantScheme& s, size_t n) {
  const size_t b = scheme_block(s);
  if (b && n % b) n = ((n + b - 1) / b) * b;
  return 8.0 * static_cast<double>(scheme_row_bytes(s, n)) / static_cast<double>(n);
}

void quantize_row(const QuantScheme& s, const float* x, void* out, size_t n, const float* imp) {
  quantize_any<true>(s, x, out, n, imp);
}
void dequantize_row(const QuantScheme& s, const void* in, float* y, size_t n) { dequant_any(s, in, y, n); }

namespace quant_ref {
void quantize_row(const QuantScheme& s, const float* x, void* out, size_t n, const float* imp) {
  quantize_any<false>(s, x, out, n, imp);
}
void dequantize_row(const QuantScheme& s, const void* in, float* y, size_t n) { dequant_any(s, in, y, n); }
}  // namespace quant_ref

void quantize_matrix(const QuantScheme& s, const float* x, size_t rows, size_t cols, void* out, const float* imp) {
  const size_t rb = scheme_row_bytes(s, cols);
  uint8_t* y = static_cast<uint8_t*>(out);
  for (size_t i = 0; i < rows * cols; ++i)
    if (!std::isfinite(x[i]))
      fail(ErrorCode::Range, "quantize: non-finite value at row " + std::to_string(i / cols) + ", column " + std::to_string(i % cols));
  if (s.format == QuantFormat::INT && s.per_tensor) {
    // one parameter set for the whole tensor: search it on all values, then encode every row with it
    std::vector<float> flat(x, x + rows * cols);
    std::vector<float> wimp;
    if (imp) { wimp.resize(rows * cols); for (size_t r = 0; r < rows; ++r) std::memcpy(&wimp[r * cols], imp, cols * 4); }
    QuantScheme pc = s; pc.per_tensor = false; pc.group = 0;
    const IntParams p = int_params<true>(pc, flat.data(), rows * cols, imp ? wimp.data() : nullptr);
#pragma omp parallel for schedule(static) num_threads(num_threads())
    for (long r = 0; r < static_cast<long>(rows); ++r) int_encode_group(pc, x + r * cols, cols, p, y + r * rb);
    return;
  }
#pragma omp parallel for schedule(dynamic, 4) num_threads(num_threads())
  for (long r = 0; r < static_cast<long>(rows); ++r) quantize_row(s, x + r * cols, y + r * rb, cols, imp);
}

void dequantize_matrix(const QuantScheme& s, const void* in, size_t rows, size_t cols, float* y) {
  const size_t rb = scheme_row_bytes(s, cols);
  const uint8_t* p = static_cast<const uint8_t*>(in);
#pragma omp parallel for schedule(static) num_threads(num_threads())
  for (long r = 0; r < static_cast<long>(rows); ++r) dequant_any(s, p + r * rb, y + r * cols, cols);
}

// ---------------------------------------------------------------- snap_to_block
namespace {
// snap_to_block's body after its checks; inlined into the single and the strided-column entry points.
inline float snap_one(const QuantScheme& s, uint8_t* p, size_t index, float x);
}  // namespace

float snap_to_block(const QuantScheme& s, void* blockp, size_t index, float x) {
  const size_t b = scheme_block(s);
  // Plain branches, not require(): GPTQ calls this once per weight and the messages would be built every time.
  if (b && index >= b) fail(ErrorCode::Range, "snap_to_block: index " + std::to_string(index) + " outside the block");
  if (!std::isfinite(x)) fail(ErrorCode::Range, "snap_to_block: non-finite value");
  return snap_one(s, static_cast<uint8_t*>(blockp), index, x);
}

void snap_to_blocks(const QuantScheme& s, void* block0, size_t stride, size_t count, size_t index, const float* x, float* out) {
  const size_t b = scheme_block(s);
  if (b && index >= b) fail(ErrorCode::Range, "snap_to_blocks: index " + std::to_string(index) + " outside the block");
  if (s.format == QuantFormat::NF4 && s.double_quant)
    fail(ErrorCode::Range, "snap_to_block: nf4 with double quantization keeps its scale in the row header");
  for (size_t r = 0; r < count; ++r)
    if (!std::isfinite(x[r])) fail(ErrorCode::Range, "snap_to_blocks: non-finite value at " + std::to_string(r));
  uint8_t* p = static_cast<uint8_t*>(block0);
  for (size_t r = 0; r < count; ++r) out[r] = snap_one(s, p + r * stride, index, x[r]);
}

namespace {
inline float snap_one(const QuantScheme& s, uint8_t* p, size_t index, float x) {
  // linear formats: value = a * c + off, c in [0, cmax]
  // linear formats: value = a * (c - z) + add for a code c in [0, cmax] (the dequantizer's form)
  auto linear = [&](float a, int z, float add, int cmax, auto&& set) -> float {
    if (a == 0.0f) return add;
    const int c = clampi(nearest((x - add) / a) + z, 0, cmax);
    set(c);
    return a * static_cast<float>(c - z) + add;
  };
  auto nib = [](uint8_t* q, int hi, int c) { *q = static_cast<uint8_t>(hi ? ((*q & 0x0F) | (c << 4)) : ((*q & 0xF0) | c)); };
  const int j = static_cast<int>(index);
  switch (s.format) {
    case QuantFormat::Q8_0: {
      const float d = h2f(p);
      return linear(d, 128, 0.0f, 255, [&](int c) { p[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(c - 128)); });
    }
    case QuantFormat::Q4_0: {
      const float d = h2f(p);
      return linear(d, 8, 0.0f, 15, [&](int c) { nib(p + 2 + (j % 16), j >= 16, c); });
    }
    case QuantFormat::Q4_1:
      return linear(h2f(p), 0, h2f(p + 2), 15, [&](int c) { nib(p + 4 + (j % 16), j >= 16, c); });
    case QuantFormat::Q5_0:
    case QuantFormat::Q5_1: {
      const bool one = s.format == QuantFormat::Q5_1;
      const float d = h2f(p), add = one ? h2f(p + 2) : 0.0f;
      uint8_t* qh = p + (one ? 4 : 2);
      uint8_t* qs = p + (one ? 8 : 6);
      return linear(d, one ? 0 : 16, add, 31, [&](int c) {
        nib(qs + (j % 16), j >= 16, c & 15);
        uint32_t h; std::memcpy(&h, qh, 4);
        h = (h & ~(1u << j)) | (static_cast<uint32_t>(c >> 4) << j);
        std::memcpy(qh, &h, 4);
      });
    }
    case QuantFormat::Q4_K:
    case QuantFormat::Q5_K: {
      const bool five = s.format == QuantFormat::Q5_K;
      int sc, m;
      get_scale_min_k4(j / 32, p + 4, &sc, &m);
      const float a = h2f(p) * sc, add = -(h2f(p + 2) * m);
      const int chunk = j / 64, l = j % 32, hi = (j % 64) >= 32;
      uint8_t* ql = p + (five ? 48 : 16) + 32 * chunk + l;
      return linear(a, 0, add, five ? 31 : 15, [&](int c) {
        nib(ql, hi, c & 15);
        if (five) {
          const uint8_t bit = static_cast<uint8_t>(1 << (2 * chunk + hi));
          p[16 + l] = static_cast<uint8_t>((c >> 4) ? (p[16 + l] | bit) : (p[16 + l] & ~bit));
        }
      });
    }
    case QuantFormat::Q6_K: {
      const float a = h2f(p + 208) * static_cast<int8_t>(p[192 + j / 16]);
      const int half = j / 128, r = j % 128, quarter = r / 32, l = r % 32;
      uint8_t* ql = p + 64 * half + l + (quarter & 1) * 32;
      uint8_t* qh = p + 128 + 32 * half + l;
      return linear(a, 32, 0.0f, 63, [&](int c) {
        nib(ql, quarter >= 2, c & 15);
        *qh = static_cast<uint8_t>((*qh & ~(3 << (2 * quarter))) | ((c >> 4) << (2 * quarter)));
      });
    }
    case QuantFormat::Q2_K: {
      const uint8_t sc = p[j / 16];
      const float a = h2f(p + 80) * (sc & 0xF), add = -(h2f(p + 82) * (sc >> 4));
      const int half = j / 128, r = j % 128, shift = 2 * (r / 32), l = r % 32;
      uint8_t* q = p + 16 + 32 * half + l;
      return linear(a, 0, add, 3, [&](int c) { *q = static_cast<uint8_t>((*q & ~(3 << shift)) | (c << shift)); });
    }
    case QuantFormat::Q3_K: {
      const float a = h2f(p + 108) * q3k_scale(p + 96, j / 16);
      const int half = j / 128, r = j % 128, shift = 2 * (r / 32), l = r % 32;
      uint8_t* q = p + 32 + 32 * half + l;
      uint8_t* hm = p + (j % 32);
      const uint8_t bit = static_cast<uint8_t>(1 << (j / 32));
      return linear(a, 4, 0.0f, 7, [&](int c) {
        *q = static_cast<uint8_t>((*q & ~(3 << shift)) | ((c & 3) << shift));
        *hm = static_cast<uint8_t>((c >> 2) ? (*hm | bit) : (*hm & ~bit));
      });
    }
    case QuantFormat::INT: {
      const float d = h2f(p);
      const int z = s.symmetric ? (1 << (s.bits - 1)) : p[2];
      uint8_t* codes = p + (s.symmetric ? 2 : 3);
      return linear(d, z, 0.0f, (1 << s.bits) - 1, [&](int c) { put_bits(codes, index, s.bits, static_cast<uint32_t>(c)); });
    }
    case QuantFormat::MXFP4: {
      const float d = e8m0_half(p[0]);
      const uint8_t c = best_index_mx(x, d);
      nib(p + 1 + (j % 16), j >= 16, c);
      return kMX[c] * d;
    }
    case QuantFormat::NVFP4: {
      const int sb = j / 16, r = j % 16;
      const float d = ue4m3_decode(p[sb]) * 0.5f;
      const uint8_t c = best_index_mx(x, d);
      nib(p + 4 + 8 * sb + (r % 8), r >= 8, c);
      return kMX[c] * d;
    }
    case QuantFormat::NF4: {
      if (s.double_quant) fail(ErrorCode::Range, "snap_to_block: nf4 with double quantization keeps its scale in the row header");
      const float a = rd_f32(p);
      const uint8_t c = nf4_index(a > 0 ? x / a : 0.0f);
      nib(p + 4 + j / 2, j & 1, c);
      return kNF4[c] * a;
    }
    case QuantFormat::FP8_E4M3:
    case QuantFormat::FP8_E5M2: {
      const bool e5 = s.format == QuantFormat::FP8_E5M2;
      const float sc = rd_f32(p);
      p[4 + index] = fp8_enc(e5, x / sc);
      return fp8_dec(e5, p[4 + index]) * sc;
    }
    case QuantFormat::KMEANS: {  // the block is the row: codebook, then codes
      const size_t k = size_t{1} << s.bits;
      size_t best = 0;
      float bv = h2f(p), be = std::fabs(bv - x);
      for (size_t c = 1; c < k; ++c) {
        const float v = h2f(p + 2 * c), e = std::fabs(v - x);
        if (e < be) { be = e; bv = v; best = c; }
      }
      put_bits(p + 2 * k, index, s.bits, static_cast<uint32_t>(best));
      return bv;
    }
  }
  return 0.0f;
}
}  // namespace

}  // namespace tersor
