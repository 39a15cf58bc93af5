// Quantized matrix-vector / small-batch matrix products (quant_formats.hpp: quant_matmul).
//
// Y[b, r] = sum_k W[r, k] X[b, k], W stored row-major in a quantized scheme. Rows are split over
// tersor::num_threads() threads; each weight row is read once for the whole batch (up to 8
// activation rows are processed per pass over a weight row).
//
// Kernels:
//  * Q8_0, Q4_0, Q4_K, Q5_K, Q6_K, MXFP4, and NF4 (blocks a multiple of 32, no double quantization)
//    and INT4 / INT8 (groups a multiple of 32): X is quantized to Q8_0 blocks (exactly quantize_row(q8_0): f16 scale,
//    round half to even, as llama.cpp does for its formats) and the block dot products are integer
//    (AVX2 maddubs), scaled by d_w * d_x in f32.
//    - Q4_0, Q4_K, Q6_K at batch 1, Q5_K, MXFP4, NF4, INT4 and INT8 at every batch: eight weight rows at a time. The code
//      bytes of the eight rows are transposed in registers as 4-byte units (lane i = row i), so maddubs
//      against broadcast activation bytes leaves each row's partial sum in its own lane: no
//      horizontal reduction per block, the eight rows' scales converted in one instruction, each
//      activation load shared by the eight rows. Codes stay unsigned, their offsets become one term
//      with the activation block sums (Q4_0: sum (c - 8) x = sum c x - 8 sum x; Q6_K: -32; Q4_K:
//      - dmin m sum x; INT4: - z sum x). A tail of fewer than eight rows runs the same kernel on a
//      zero-padded copy.
//      NF4, INT8 and Q5_K use AVX-512 VNNI (vpdpbusd on 256-bit registers) where the CPU has it: the same exact
//      integer sums, in fewer instructions.
//    - Q8_0 at every batch, Q4_0 / Q4_K / Q6_K at batch > 1: one weight row at a time for up to 8
//      activation rows (the sign trick, as in ggml).
//  * Q8_0 and Q4_0 with f32 activations: codes widened to f32 in registers, FMA with X, times d per block;
//  * Q4_K and Q6_K with f32 activations: fused dequantize-and-FMA in f32 per 32 (16) weights, using
//    sum_i (d*l_i - m) x_i = d * sum_i l_i x_i - m * sum_i x_i with the block sums of X precomputed.
//  * NF4 and INT4 with f32 activations (or groups that are not whole 32-blocks): fused nibble decode
//    (NF4 table by AVX2 permutes) and FMA on X split into even / odd elements (rows_nibble);
//  * FP8 (E4M3 / E5M2): widened exactly to f16 then f32 in registers, four rows per pass (rows4_fp8);
//  * every other format: each block is dequantized (scalar) into a small f32 buffer that is then
//    dotted with X (AVX2 FMA).
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "tersor/dispatch.hpp"
#include "tersor/error.hpp"
#include "tersor/half.hpp"
#include "tersor/parallel.hpp"
#include "tersor/quant_formats.hpp"

namespace tersor {
namespace {

constexpr size_t kMaxB = 8;

// F16C conversion (exact, same value as f16_to_f32_scalar)
inline float h2f(const uint8_t* p) { uint16_t h; std::memcpy(&h, p, 2); return _cvtsh_ss(h); }

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float dot_f32(const float* a, const float* b, size_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  float s = hsum(_mm256_add_ps(acc0, acc1));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// ---- activations as Q8_0 blocks (f32 scale)
struct Q8Act {
  std::vector<float> d;     // [batch, nb]
  std::vector<int8_t> q;    // [batch, nb * 32]
  std::vector<float> dsum;  // [batch, nb]: d * sum of the block's codes (Q4_K's min term)
  std::vector<float> dsum16;  // [batch, cols / 16]: the same per half block (Q6_K's -32 offset)
  std::vector<int32_t> qsum;  // [batch, nb]: sum of the block's codes (Q8_0's +128 offset, kept exact)
};
/// One activation row of a Q8Act (and its even/odd permuted codes, for the nibble kernels).
struct Q8Row {
  const int8_t* q;
  const float* d;
  const float* dsum;
  const float* dsum16;
  const int8_t* xp;
  const int32_t* qsum;
};
inline Q8Row q8_row(const Q8Act& a, const std::vector<int8_t>& xperm, size_t b, size_t cols) {
  const size_t nb = cols / 32;
  return {a.q.data() + b * cols, a.d.data() + b * nb, a.dsum.data() + b * nb, a.dsum16.data() + b * 2 * nb,
          xperm.empty() ? nullptr : xperm.data() + b * cols, a.qsum.data() + b * nb};
}

// Exactly quantize_row(q8_0) of each activation row (f16 scale, round half to even), unpacked.
Q8Act quantize_act(const float* x, size_t batch, size_t cols) {
  const size_t nb = cols / 32;
  QuantScheme q8;
  q8.format = QuantFormat::Q8_0;
  Q8Act a;
  a.d.resize(batch * nb);
  a.q.resize(batch * cols);
  a.dsum.resize(batch * nb);
  a.dsum16.resize(batch * nb * 2);
  a.qsum.resize(batch * nb);
  std::vector<uint8_t> tmp(nb * 34);
  for (size_t b = 0; b < batch; ++b) {
    quantize_row(q8, x + b * cols, tmp.data(), cols);
    for (size_t k = 0; k < nb; ++k) {
      a.d[b * nb + k] = h2f(&tmp[k * 34]);
      std::memcpy(&a.q[b * cols + 32 * k], &tmp[k * 34 + 2], 32);
      int t0 = 0, t1 = 0;
      for (int j = 0; j < 16; ++j) t0 += a.q[b * cols + 32 * k + j], t1 += a.q[b * cols + 32 * k + 16 + j];
      a.qsum[b * nb + k] = t0 + t1;
      a.dsum[b * nb + k] = a.d[b * nb + k] * static_cast<float>(t0 + t1);
      a.dsum16[b * 2 * nb + 2 * k] = a.d[b * nb + k] * static_cast<float>(t0);
      a.dsum16[b * 2 * nb + 2 * k + 1] = a.d[b * nb + k] * static_cast<float>(t1);
    }
  }
  return a;
}

// sum of int8 a[i] * b[i] over 32 lanes as 8 int32 partial sums, in f32
inline __m256 dot_i8(__m256i a, __m256i b) {
  const __m256i ax = _mm256_sign_epi8(a, a);
  const __m256i sy = _mm256_sign_epi8(b, a);
  const __m256i p16 = _mm256_maddubs_epi16(ax, sy);
  return _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
}

template <size_t NB>
void rows_q8_0_q4_0(bool four, const uint8_t* w, size_t rb, size_t r0, size_t r1, size_t cols, const Q8Act& a,
                    size_t b0, size_t rows, float* y) {
  const size_t nb = cols / 32, bs = four ? 18 : 34;
  const __m256i m4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
  for (size_t r = r0; r < r1; ++r) {
    const uint8_t* row = w + r * rb;
    if (r + 1 < r1) _mm_prefetch(reinterpret_cast<const char*>(row + rb), _MM_HINT_T0);
    // two accumulators per activation row (even / odd blocks) so the FMAs do not wait on each other
    __m256 acc[NB][2];
    float off[NB][2];  // Q4_0: sum_k d_w * (d_x * sum x_q) of the -8 offset, two chains
    for (size_t b = 0; b < NB; ++b) acc[b][0] = acc[b][1] = _mm256_setzero_ps(), off[b][0] = off[b][1] = 0.f;
    auto step = [&](size_t k, int slot) {
      const uint8_t* blk = row + k * bs;
      const float dw = h2f(blk);
      if (four) {
        // codes unsigned (0..15) straight into maddubs: sum (c - 8) x = sum c x - 8 sum x
        const __m256i raw = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2)));
        const __m256i wq = _mm256_and_si256(_mm256_blend_epi32(raw, _mm256_srli_epi16(raw, 4), 0xF0), m4);
        for (size_t b = 0; b < NB; ++b) {
          const size_t bi = b0 + b;
          const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(&a.q[bi * cols + 32 * k]));
          const __m256 p = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(wq, xq), ones));
          acc[b][slot] = _mm256_fmadd_ps(_mm256_set1_ps(dw * a.d[bi * nb + k]), p, acc[b][slot]);
          off[b][slot] += dw * a.dsum[bi * nb + k];
        }
      } else {
        const __m256i wq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
        for (size_t b = 0; b < NB; ++b) {
          const size_t bi = b0 + b;
          const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(&a.q[bi * cols + 32 * k]));
          acc[b][slot] = _mm256_fmadd_ps(_mm256_set1_ps(dw * a.d[bi * nb + k]), dot_i8(wq, xq), acc[b][slot]);
        }
      }
    };
    size_t k = 0;
    for (; k + 2 <= nb; k += 2) { step(k, 0); step(k + 1, 1); }
    if (k < nb) step(k, 0);
    for (size_t b = 0; b < NB; ++b)
      y[(b0 + b) * rows + r] = hsum(_mm256_add_ps(acc[b][0], acc[b][1])) - 8.f * (off[b][0] + off[b][1]);
  }
}

// AVX-512 VNNI (vpdpbusd: u8 x s8 dot products of four, added to int32 lanes, no int16 saturation) on
// 256-bit registers, for the CPUs that have it (checked at run time; the build targets x86-64-v3, so
// the instruction is emitted by inline assembly and only reached after the check).
bool vnni_supported() {
  static const bool ok = __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vl") &&
                         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512f");
  return ok;
}
std::atomic<bool> g_vnni_enabled{true};
inline bool use_vnni() { return g_vnni_enabled.load(std::memory_order_relaxed) && vnni_supported(); }

/// acc + (per int32 lane) the sum of the four products u8(a) * s8(b) of its bytes.
inline __m256i dpbusd(__m256i acc, __m256i a, __m256i b) {
  asm("%{evex%} vpdpbusd %2, %1, %0" : "+x"(acc) : "x"(a), "x"(b));
  return acc;
}

/// v + b16 in the bytes where qh & bit is non-zero (vptestmb into k1, then a masked vpaddb): Q5_K's
/// fifth bit OR-ed into codes whose bit 4 is clear, two instructions instead of shift, and, or. AVX-512BW
/// (VL): reached only from the VNNI kernels, after the run-time check; inline assembly for the same
/// reason as dpbusd.
inline __m256i add16_where(__m256i v, __m256i qh, __m256i bit, __m256i b16) {
  asm("vptestmb %2, %1, %%k1\n\tvpaddb %3, %0, %0%{%%k1%}" : "+v"(v) : "v"(qh), "v"(bit), "v"(b16) : "k1");
  return v;
}

/// Lane i of T[u] = bytes 4u .. 4u + 3 of src[i] + off (16 bytes each, rows i = 0..7): the 4-byte
/// transpose behind the eight-row kernels.
inline void transpose8x16(const uint8_t* const* src, size_t off, __m256i T[4]) {
  auto ld = [&](int i, int j) {
    return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src[i] + off))),
                                   _mm_loadu_si128(reinterpret_cast<const __m128i*>(src[j] + off)), 1);
  };
  const __m256i y0 = ld(0, 4), y1 = ld(1, 5), y2 = ld(2, 6), y3 = ld(3, 7);
  const __m256i t0 = _mm256_unpacklo_epi32(y0, y1), t1 = _mm256_unpackhi_epi32(y0, y1);
  const __m256i t2 = _mm256_unpacklo_epi32(y2, y3), t3 = _mm256_unpackhi_epi32(y2, y3);
  T[0] = _mm256_unpacklo_epi64(t0, t2);
  T[1] = _mm256_unpackhi_epi64(t0, t2);
  T[2] = _mm256_unpacklo_epi64(t1, t3);
  T[3] = _mm256_unpackhi_epi64(t1, t3);
}

inline __m256i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// Q4_0 (and MXFP4), batch 1, eight rows at a time: the 16 code bytes of block k of eight rows are
// transposed in registers as 4-byte units (lane i = row i), so that maddubs against the broadcast
// activation bytes leaves each row's block sum in its own lane: no horizontal reduction per block,
// the eight rows' scales in one conversion, and each activation load shared by the eight rows. Codes
// stay unsigned: sum (c - 8) x = sum c x - 8 sum x (the block sums of the activation codes
// precomputed). MXFP4 has the same nibble layout (elements j and j + 16 in byte j); its E2M1 codes
// become twice their value plus 12 by one pshufb (0 .. 24, exact: 2 e2m1 is an integer), so
// sum v x = (sum (2v + 12) x - 12 sum x) / 2, scaled by the block's E8M0 2^(e - 127).
template <bool MX>
void rows8_q4_0(const uint8_t* w, size_t rb, size_t r0, size_t cols, const Q8Row& a, float* y) {
  const size_t nb = cols / 32, bs = MX ? 17 : 18, hdr = MX ? 1 : 2;
  const __m256i m4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
  __m256i tab = _mm256_setzero_si256();
  if constexpr (MX) {
    alignas(16) int8_t t[16];
    for (int c = 0; c < 16; ++c) t[c] = static_cast<int8_t>(std::lrint(2.0f * e2m1_decode(static_cast<uint8_t>(c)) + 12.0f));
    tab = _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(t)));
  }
  const uint8_t* rp[8];
  __m256 acc = _mm256_setzero_ps(), off = _mm256_setzero_ps();
  for (size_t k = 0; k < nb; ++k) {
    for (int i = 0; i < 8; ++i) rp[i] = w + (r0 + static_cast<size_t>(i)) * rb + k * bs;
    __m256i T[4];
    transpose8x16(rp, hdr, T);
    const int8_t* xq = a.q + 32 * k;
    __m256i s16 = _mm256_setzero_si256();
    for (int u = 0; u < 4; ++u) {
      __m256i lo = _mm256_and_si256(T[u], m4), hi = _mm256_and_si256(_mm256_srli_epi16(T[u], 4), m4);
      if constexpr (MX) lo = _mm256_shuffle_epi8(tab, lo), hi = _mm256_shuffle_epi8(tab, hi);
      s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(lo, bcast4(xq + 4 * u)));
      s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(hi, bcast4(xq + 16 + 4 * u)));
    }
    __m256 dw;
    if constexpr (MX) {
      // E8M0 to f32 as ggml does: 2^(e - 127), e = 0 being the subnormal 2^-127; halved (2v above)
      alignas(8) uint8_t e[8];
      for (int i = 0; i < 8; ++i) e[i] = rp[i][0];
      const __m256i ev = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(e)));
      const __m256i bits = _mm256_blendv_epi8(_mm256_slli_epi32(ev, 23), _mm256_set1_epi32(0x00400000),
                                              _mm256_cmpeq_epi32(ev, _mm256_setzero_si256()));
      dw = _mm256_mul_ps(_mm256_castsi256_ps(bits), _mm256_set1_ps(0.5f));
    } else {
      uint16_t h[8];
      for (int i = 0; i < 8; ++i) std::memcpy(&h[i], rp[i], 2);
      dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h)));
    }
    const __m256 p = _mm256_cvtepi32_ps(_mm256_madd_epi16(s16, ones));
    acc = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(a.d[k])), p, acc);
    off = _mm256_fmadd_ps(dw, _mm256_set1_ps(a.dsum[k]), off);
  }
  alignas(32) float out[8];
  _mm256_store_ps(out, _mm256_fnmadd_ps(_mm256_set1_ps(MX ? 12.f : 8.f), off, acc));
  for (int i = 0; i < 8; ++i) y[r0 + static_cast<size_t>(i)] = out[i];
}

// Q8_0, batch 1, eight rows at a time (see rows8_q4_0): the 32 code bytes of block k of eight rows in
// two 4-byte transposes; the signed codes become unsigned by flipping the sign bit (u = c + 128), which
// vpdpbusd (VNNI) takes whole and AVX2 takes as 16 hi + lo nibbles (maddubs stays within int16). The
// offset leaves in the integer domain, sum c x = sum u x - 128 sum x, so each block's dot product is the
// exact integer of the per-row kernel before its two scales.
template <bool VNNI>
void rows8_q8_0(const uint8_t* w, size_t rb, size_t r0, size_t cols, const Q8Row& a, float* y) {
  const size_t nb = cols / 32;
  constexpr size_t bs = 34;
  const __m256i sign = _mm256_set1_epi8(static_cast<char>(0x80)), m4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
  const uint8_t* rp[8];
  __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
  for (size_t k = 0; k < nb; ++k) {
    for (int i = 0; i < 8; ++i) {
      rp[i] = w + (r0 + static_cast<size_t>(i)) * rb + k * bs;
      if (k + 8 < nb) _mm_prefetch(reinterpret_cast<const char*>(rp[i] + 8 * bs), _MM_HINT_T0);
    }
    __m256i T[4], U[4];
    transpose8x16(rp, 2, T);
    transpose8x16(rp, 18, U);
    const int8_t* xb = a.q + 32 * k;
    __m256i isum;
    if constexpr (VNNI) {
      __m256i i0 = _mm256_setzero_si256(), i1 = i0;
      for (int u = 0; u < 4; ++u) {
        i0 = dpbusd(i0, _mm256_xor_si256(T[u], sign), bcast4(xb + 4 * u));
        i1 = dpbusd(i1, _mm256_xor_si256(U[u], sign), bcast4(xb + 16 + 4 * u));
      }
      isum = _mm256_add_epi32(i0, i1);
    } else {
      __m256i sl = _mm256_setzero_si256(), sh = sl;
      for (int u = 0; u < 8; ++u) {
        const __m256i t = _mm256_xor_si256(u < 4 ? T[u] : U[u - 4], sign), xv = bcast4(xb + 4 * u);
        sl = _mm256_add_epi16(sl, _mm256_maddubs_epi16(_mm256_and_si256(t, m4), xv));
        sh = _mm256_add_epi16(sh, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(t, 4), m4), xv));
      }
      isum = _mm256_add_epi32(_mm256_madd_epi16(sh, _mm256_set1_epi16(16)), _mm256_madd_epi16(sl, ones));
    }
    isum = _mm256_sub_epi32(isum, _mm256_set1_epi32(128 * a.qsum[k]));
    uint16_t h[8];
    for (int i = 0; i < 8; ++i) std::memcpy(&h[i], rp[i], 2);
    const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h)));
    // two accumulators (even / odd blocks): the FMA chains overlap
    if (k & 1) acc1 = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(a.d[k])), _mm256_cvtepi32_ps(isum), acc1);
    else acc0 = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(a.d[k])), _mm256_cvtepi32_ps(isum), acc0);
  }
  alignas(32) float out[8];
  _mm256_store_ps(out, _mm256_add_ps(acc0, acc1));
  for (int i = 0; i < 8; ++i) y[r0 + static_cast<size_t>(i)] = out[i];
}

// Q4_K, batch 1, eight rows at a time (see rows8_q4_0): per super-block the 6-bit scales and mins of
// the eight rows are decoded into [sub-block][row] vectors; the code bytes are transposed per 16, so
// each 32-weight sub-block's integer dot lands in lane i for row i.
// Q5_K: the same with qh (32 bytes after the scales, bit 2c / 2c + 1 of byte l = the fifth bit of
// weight l of sub-block 2c / 2c + 1), transposed alongside and OR-ed into bit 4 of the codes; codes
// up to 31 keep two int16 partial sums per sub-block.
template <bool Q5, bool VNNI = false>
__attribute__((always_inline)) inline void rows8_q4_k(const uint8_t* w, size_t rb, size_t r0, size_t cols, const Q8Row& a, float* y) {
  const size_t nsb = cols / 256, bs = Q5 ? 176 : 144, qs0 = Q5 ? 48 : 16;
  const __m256i m4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1), b4 = _mm256_set1_epi8(0x10);
  const uint8_t* rp[8];
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(), off = _mm256_setzero_ps();
  for (size_t s = 0; s < nsb; ++s) {
    for (int i = 0; i < 8; ++i) {
      rp[i] = w + (r0 + static_cast<size_t>(i)) * rb + s * bs;
      if (s + 2 < nsb)
        for (size_t l = 0; l < bs; l += 64) _mm_prefetch(reinterpret_cast<const char*>(rp[i] + 2 * bs + l), _MM_HINT_T0);
    }
    // Q5: qh and the code bytes of the super-block transposed into a scratch first (registers are
    // short for codes, qh and the accumulators together)
    __m256i QH[2][4], TQ[8][4];
    if constexpr (Q5) {
      transpose8x16(rp, 16, QH[0]);
      transpose8x16(rp, 32, QH[1]);
      if constexpr (!VNNI)
        for (size_t c = 0; c < 8; ++c) transpose8x16(rp, qs0 + 16 * c, TQ[c]);
    }
    // bit b of every byte of v moved to bit 4
    auto bit4 = [&](__m256i v, int b) {
      return _mm256_and_si256(b <= 4 ? _mm256_slli_epi16(v, 4 - b) : _mm256_srli_epi16(v, b - 4), b4);
    };
    // the 12 scale bytes of each row unpacked to 8 scales then 8 mins (ggml's get_scale_min_k4, on
    // 32-bit words), transposed so that lane i is row i
    alignas(16) uint8_t sm[8][16];
    uint16_t dh[8], mh[8];
    const uint8_t* smp[8];
    for (int i = 0; i < 8; ++i) {
      const uint8_t* blk = rp[i];
      std::memcpy(&dh[i], blk, 2);
      std::memcpy(&mh[i], blk + 2, 2);
      uint32_t u[4];
      std::memcpy(u, blk + 4, 12);
      const uint32_t k1 = 0x3f3f3f3fu, k2 = 0x0f0f0f0fu, k3 = 0x03030303u;
      u[3] = ((u[2] >> 4) & k2) | (((u[1] >> 6) & k3) << 4);
      const uint32_t m03 = u[1] & k1;
      u[1] = (u[2] & k2) | (((u[0] >> 6) & k3) << 4);
      u[2] = m03;
      u[0] &= k1;
      std::memcpy(sm[i], u, 16);
      smp[i] = sm[i];
    }
    __m256i ST[4];
    transpose8x16(smp, 0, ST);
    const __m256 dv = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(dh)));
    const __m256 mv = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(mh)));
    const __m256i bmask = _mm256_set1_epi32(0xFF);
    auto lane_byte = [&](__m256i t, int b) {
      return _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(t, 8 * b), bmask));
    };
    __m256 dj[8];
    for (int j = 0; j < 8; ++j) {
      dj[j] = _mm256_mul_ps(dv, lane_byte(ST[j / 4], j % 4));
      off = _mm256_fmadd_ps(_mm256_mul_ps(mv, lane_byte(ST[2 + j / 4], j % 4)), _mm256_set1_ps(a.dsum[s * 8 + static_cast<size_t>(j)]), off);
    }
    for (int c = 0; c < 4; ++c) {
      const size_t k0 = s * 8 + 2 * static_cast<size_t>(c);
      const int8_t* xl = &a.q[32 * k0];
      const int8_t* xh = xl + 32;
      __m256i sl[2], sh[2];  // per 16-byte half (Q5 codes up to 31: 4 maddubs per int16 sum)
      for (int g = 0; g < 2; ++g) {
        __m256i Tl[4];
        const __m256i* T = Tl;
        if constexpr (Q5 && !VNNI) T = TQ[2 * c + g];
        else transpose8x16(rp, qs0 + 32 * static_cast<size_t>(c) + 16 * static_cast<size_t>(g), Tl);
        sl[g] = sh[g] = _mm256_setzero_si256();
        for (int u = 0; u < 4; ++u) {
          const int U = 4 * g + u;
          __m256i lo = _mm256_and_si256(T[u], m4), hi = _mm256_and_si256(_mm256_srli_epi16(T[u], 4), m4);
          if constexpr (Q5 && VNNI) {
            lo = add16_where(lo, QH[g][u], _mm256_set1_epi8(static_cast<char>(1 << (2 * c))), b4);
            hi = add16_where(hi, QH[g][u], _mm256_set1_epi8(static_cast<char>(2 << (2 * c))), b4);
          } else if constexpr (Q5) {
            lo = _mm256_or_si256(lo, bit4(QH[g][u], 2 * c));
            hi = _mm256_or_si256(hi, bit4(QH[g][u], 2 * c + 1));
          }
          if constexpr (VNNI) {  // int32 sums straight away (sl / sh hold int32 lanes here)
            sl[g] = dpbusd(sl[g], lo, bcast4(xl + 4 * U));
            sh[g] = dpbusd(sh[g], hi, bcast4(xh + 4 * U));
          } else {
            sl[g] = _mm256_add_epi16(sl[g], _mm256_maddubs_epi16(lo, bcast4(xl + 4 * U)));
            sh[g] = _mm256_add_epi16(sh[g], _mm256_maddubs_epi16(hi, bcast4(xh + 4 * U)));
          }
        }
      }
      __m256i il, ih;
      if constexpr (VNNI) {
        il = _mm256_add_epi32(sl[0], sl[1]);
        ih = _mm256_add_epi32(sh[0], sh[1]);
      } else {
        il = _mm256_add_epi32(_mm256_madd_epi16(sl[0], ones), _mm256_madd_epi16(sl[1], ones));
        ih = _mm256_add_epi32(_mm256_madd_epi16(sh[0], ones), _mm256_madd_epi16(sh[1], ones));
      }
      acc0 = _mm256_fmadd_ps(_mm256_mul_ps(dj[2 * c], _mm256_set1_ps(a.d[k0])), _mm256_cvtepi32_ps(il), acc0);
      acc1 = _mm256_fmadd_ps(_mm256_mul_ps(dj[2 * c + 1], _mm256_set1_ps(a.d[k0 + 1])), _mm256_cvtepi32_ps(ih), acc1);
    }
  }
  alignas(32) float out[8];
  _mm256_store_ps(out, _mm256_sub_ps(_mm256_add_ps(acc0, acc1), off));
  for (int i = 0; i < 8; ++i) y[r0 + static_cast<size_t>(i)] = out[i];
}

// The VNNI Q5_K kernel compiled for AVX-512VL: 32 vector registers hold the transposed codes, qh and
// the accumulators together (16 do not: the x86-64-v3 build spills them). Reached only after the
// run-time VNNI check.
__attribute__((target("avx512f,avx512vl,avx512bw,avx512vnni"))) void rows8_q5_k_vnni(
    const uint8_t* w, size_t rb, size_t r0, size_t cols, const Q8Row& a, float* y) {
  rows8_q4_k<true, true>(w, rb, r0, cols, a, y);
}

// Q6_K, batch 1, eight rows at a time (see rows8_q4_0): each super-block of the eight rows is first
// transposed as 4-byte units into a 1.6 KB scratch (ql, qh and the int8 scales; lane i = row i), then
// the six-bit codes are assembled in registers, kept unsigned: sum (l - 32) x = sum l x - 32 sum x
// (activation sums per 16 precomputed).
template <bool VNNI = false>
__attribute__((always_inline)) inline void rows8_q6_k(const uint8_t* w, size_t rb, size_t r0, size_t cols, const Q8Row& a, float* y) {
  const size_t nsb = cols / 256;
  const __m256i m4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
  const __m256i h0 = _mm256_set1_epi8(0x03), h1 = _mm256_set1_epi8(0x0C), h2 = _mm256_set1_epi8(0x30),
                h3 = _mm256_set1_epi8(static_cast<char>(0xC0));
  __m256i T[13][4];  // 16-byte column groups 0..12 of the super-block (ql 0..7, qh 8..11, scales 12)
  const uint8_t* rp[8];
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(), off = _mm256_setzero_ps();
  for (size_t s = 0; s < nsb; ++s) {
    uint16_t dh[8];
    for (int i = 0; i < 8; ++i) {
      rp[i] = w + (r0 + static_cast<size_t>(i)) * rb + s * 210;
      std::memcpy(&dh[i], rp[i] + 208, 2);
      if (s + 2 < nsb)
        for (int l = 0; l < 4; ++l) _mm_prefetch(reinterpret_cast<const char*>(rp[i] + 2 * 210 + 64 * l), _MM_HINT_T0);
    }
    for (size_t c = 0; c < 13; ++c) transpose8x16(rp, 16 * c, T[c]);
    const __m256 dv = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(dh)));
    for (int h = 0; h < 2; ++h)
      for (int t = 0; t < 4; ++t)
        for (int g = 0; g < 2; ++g) {
          // weights 128 h + 32 t + 16 g .. + 15: sub-block j = 8 h + 2 t + g; ql group 4 h + 2 (t & 1) + g,
          // low nibbles for t < 2; qh group 8 + 2 h + g, bits 2 t .. 2 t + 1
          const __m256i* L = T[4 * h + 2 * (t & 1) + g];
          const __m256i* QH = T[8 + 2 * h + g];
          const int8_t* xb = &a.q[s * 256 + 128 * static_cast<size_t>(h) + 32 * static_cast<size_t>(t) + 16 * static_cast<size_t>(g)];
          __m256i p0 = _mm256_setzero_si256(), p1 = _mm256_setzero_si256();
          for (int u = 0; u < 4; ++u) {
            const __m256i lo = t < 2 ? _mm256_and_si256(L[u], m4) : _mm256_and_si256(_mm256_srli_epi16(L[u], 4), m4);
            __m256i hi;
            switch (t) {
              case 0: hi = _mm256_slli_epi16(_mm256_and_si256(QH[u], h0), 4); break;
              case 1: hi = _mm256_slli_epi16(_mm256_and_si256(QH[u], h1), 2); break;
              case 2: hi = _mm256_and_si256(QH[u], h2); break;
              default: hi = _mm256_srli_epi16(_mm256_and_si256(QH[u], h3), 2); break;
            }
            if constexpr (VNNI) {  // int32 sums straight away (p0 / p1 hold int32 lanes here)
              if (u < 2) p0 = dpbusd(p0, _mm256_or_si256(lo, hi), bcast4(xb + 4 * u));
              else p1 = dpbusd(p1, _mm256_or_si256(lo, hi), bcast4(xb + 4 * u));
            } else {
              const __m256i pr = _mm256_maddubs_epi16(_mm256_or_si256(lo, hi), bcast4(xb + 4 * u));
              if (u < 2) p0 = _mm256_add_epi16(p0, pr);
              else p1 = _mm256_add_epi16(p1, pr);
            }
          }
          const int j = 8 * h + 2 * t + g;
          const size_t k = s * 8 + 4 * static_cast<size_t>(h) + static_cast<size_t>(t);  // activation block of 32
          const __m256 dj = _mm256_mul_ps(dv, _mm256_cvtepi32_ps(_mm256_srai_epi32(_mm256_slli_epi32(T[12][j / 4], 24 - 8 * (j % 4)), 24)));
          const __m256 sum = VNNI ? _mm256_cvtepi32_ps(_mm256_add_epi32(p0, p1))
                                  : _mm256_cvtepi32_ps(_mm256_add_epi32(_mm256_madd_epi16(p0, ones), _mm256_madd_epi16(p1, ones)));
          if (g) acc1 = _mm256_fmadd_ps(_mm256_mul_ps(dj, _mm256_set1_ps(a.d[k])), sum, acc1);
          else acc0 = _mm256_fmadd_ps(_mm256_mul_ps(dj, _mm256_set1_ps(a.d[k])), sum, acc0);
          off = _mm256_fmadd_ps(dj, _mm256_set1_ps(a.dsum16[2 * k + static_cast<size_t>(g)]), off);
        }
  }
  alignas(32) float out[8];
  _mm256_store_ps(out, _mm256_fnmadd_ps(_mm256_set1_ps(32.f), off, _mm256_add_ps(acc0, acc1)));
  for (int i = 0; i < 8; ++i) y[r0 + static_cast<size_t>(i)] = out[i];
}

/// The VNNI Q6_K kernel compiled for AVX-512VL (32 vector registers; see rows8_q5_k_vnni).
__attribute__((target("avx512f,avx512vl,avx512bw,avx512vnni"))) void rows8_q6_k_vnni(
    const uint8_t* w, size_t rb, size_t r0, size_t cols, const Q8Row& a, float* y) {
  rows8_q6_k<true>(w, rb, r0, cols, a, y);
}

// NF4 and INT4 with Q8_0 activations, batch 1, eight rows at a time (see rows8_q4_0). Element 2j of a
// group sits in the low nibble of code byte j, so the activation codes are used in a permuted copy
// (xp: each 8 elements reordered even-then-odd) and a 4-byte unit of codes meets two broadcast
// 4-byte activation units (its low nibbles the even, its high nibbles the odd elements).
//   INT4: sum_g d * (sum c x - z * sum x), codes unsigned into maddubs.
//   NF4: the table in 13-bit fixed point, T = round(4096 table[c]) = 128 hi + lo (lo in 0..127,
//   hi + 32 in 0..64, both looked up by pshufb), so sum T q = 128 sum (hi + 32) q - 4096 sum q +
//   sum lo q is exact integer arithmetic (the hi products of a code byte's two nibbles fit one int16
//   sum); the only rounding is T's (|error| <= 2^-13 absmax = 1.2e-4 absmax), well below the
//   activation quantization's (2^-8 of the activation block's absmax).
std::vector<int8_t> permute_even_odd(const int8_t* q, size_t n) {
  std::vector<int8_t> p(n);
  for (size_t i = 0; i < n; i += 8)
    for (size_t j = 0; j < 4; ++j) p[i + j] = q[i + 2 * j], p[i + 4 + j] = q[i + 2 * j + 1];
  return p;
}

struct Nf4Fixed {
  __m256i hi, lo;  // pshufb tables (both 128-bit lanes)
};
Nf4Fixed nf4_fixed() {
  alignas(16) int8_t hi[16], lo[16];
  for (int c = 0; c < 16; ++c) {
    const int t = static_cast<int>(std::lrint(4096.0 * nf4_table()[c]));
    const int h = t >> 7;  // floor division
    hi[c] = static_cast<int8_t>(h + 32);
    lo[c] = static_cast<int8_t>(t - 128 * h);
  }
  return {_mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(hi))),
          _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(lo)))};
}


enum class GroupKind { Int4, Nf4, Int8 };

template <GroupKind KIND, bool VNNI = false>
__attribute__((always_inline)) inline void rows8_group(const QuantScheme& qs, const uint8_t* w, size_t rb, size_t r0, size_t cols, const Q8Row& a, float* y) {
  constexpr bool NF4 = KIND == GroupKind::Nf4, INT8 = KIND == GroupKind::Int8;
  const int8_t* xp = INT8 ? a.q : a.xp;  // 8-bit codes are in element order
  const size_t g = qs.group ? qs.group : cols, ng = cols / g;
  const size_t hdr = NF4 ? 4 : (qs.symmetric ? 2 : 3), gb = hdr + (INT8 ? g : g / 2);
  const __m256i m4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1), w128 = _mm256_set1_epi16(128);
  const Nf4Fixed tab = NF4 ? nf4_fixed() : Nf4Fixed{_mm256_setzero_si256(), _mm256_setzero_si256()};
  const uint8_t* rp[8];
  const __m256i vrow = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(static_cast<int>(rb)));
  __m256 total = _mm256_setzero_ps();
  for (size_t k = 0; k < ng; ++k) {
    for (int i = 0; i < 8; ++i) {
      rp[i] = w + (r0 + static_cast<size_t>(i)) * rb + k * gb;
      if (k + 2 < ng) _mm_prefetch(reinterpret_cast<const char*>(rp[i] + 2 * gb), _MM_HINT_T0);
    }
    // the eight rows' group headers (scale, zero point) by one gather at the row stride
    const __m256i hd = _mm256_i32gather_epi32(reinterpret_cast<const int*>(rp[0]), vrow, 1);
    __m256 gacc = _mm256_setzero_ps();
    float gsum = 0.f;  // sum of the activation block sums d_x * sum q over the group
    for (size_t b = 0; b < g / 32; ++b) {
      const size_t kb = (k * g) / 32 + b;  // activation block
      const int8_t* xb = xp + 32 * kb;
      __m256i T[4];
      __m256i isum;
      if constexpr (INT8) {
        // 32 code bytes: two transposes, units of four elements in order; c = 16 hi + lo keeps maddubs
        // within int16 (AVX2), vpdpbusd takes the bytes whole (VNNI)
        __m256i U[4];
        transpose8x16(rp, hdr + 32 * b, T);
        transpose8x16(rp, hdr + 32 * b + 16, U);
        if constexpr (VNNI) {
          __m256i i0 = _mm256_setzero_si256(), i1 = i0;
          for (int u = 0; u < 4; ++u) {
            i0 = dpbusd(i0, T[u], bcast4(xb + 4 * u));
            i1 = dpbusd(i1, U[u], bcast4(xb + 16 + 4 * u));
          }
          isum = _mm256_add_epi32(i0, i1);
        } else {
          __m256i sl = _mm256_setzero_si256(), sh = sl;
          for (int u = 0; u < 8; ++u) {
            const __m256i t = u < 4 ? T[u] : U[u - 4], xv = bcast4(xb + 4 * u);
            sl = _mm256_add_epi16(sl, _mm256_maddubs_epi16(_mm256_and_si256(t, m4), xv));
            sh = _mm256_add_epi16(sh, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(t, 4), m4), xv));
          }
          isum = _mm256_add_epi32(_mm256_madd_epi16(sh, _mm256_set1_epi16(16)), _mm256_madd_epi16(sl, ones));
        }
      } else if constexpr (NF4 && VNNI) {
        transpose8x16(rp, hdr + 16 * b, T);
        // four accumulators: the dot products' latency spread over independent chains
        __m256i ie = _mm256_setzero_si256(), io = ie, le = ie, lo = ie;
        for (int u = 0; u < 4; ++u) {
          const __m256i cl = _mm256_and_si256(T[u], m4), ch = _mm256_and_si256(_mm256_srli_epi16(T[u], 4), m4);
          const __m256i xe = bcast4(xb + 8 * u), xo = bcast4(xb + 8 * u + 4);
          ie = dpbusd(ie, _mm256_shuffle_epi8(tab.hi, cl), xe);
          io = dpbusd(io, _mm256_shuffle_epi8(tab.hi, ch), xo);
          le = dpbusd(le, _mm256_shuffle_epi8(tab.lo, cl), xe);
          lo = dpbusd(lo, _mm256_shuffle_epi8(tab.lo, ch), xo);
        }
        isum = _mm256_add_epi32(_mm256_slli_epi32(_mm256_add_epi32(ie, io), 7), _mm256_add_epi32(le, lo));
      } else if constexpr (NF4) {
        transpose8x16(rp, hdr + 16 * b, T);
        isum = _mm256_setzero_si256();
        for (int u = 0; u < 4; ++u) {
          const __m256i cl = _mm256_and_si256(T[u], m4), ch = _mm256_and_si256(_mm256_srli_epi16(T[u], 4), m4);
          const __m256i xe = bcast4(xb + 8 * u), xo = bcast4(xb + 8 * u + 4);
          const __m256i ph = _mm256_add_epi16(_mm256_maddubs_epi16(_mm256_shuffle_epi8(tab.hi, cl), xe),
                                              _mm256_maddubs_epi16(_mm256_shuffle_epi8(tab.hi, ch), xo));
          isum = _mm256_add_epi32(isum, _mm256_madd_epi16(ph, w128));
          isum = _mm256_add_epi32(isum, _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_shuffle_epi8(tab.lo, cl), xe), ones));
          isum = _mm256_add_epi32(isum, _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_shuffle_epi8(tab.lo, ch), xo), ones));
        }
      } else {
        transpose8x16(rp, hdr + 16 * b, T);
        __m256i s16 = _mm256_setzero_si256();
        for (int u = 0; u < 4; ++u) {
          s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(_mm256_and_si256(T[u], m4), bcast4(xb + 8 * u)));
          s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(T[u], 4), m4), bcast4(xb + 8 * u + 4)));
        }
        isum = _mm256_madd_epi16(s16, ones);
      }
      gacc = _mm256_fmadd_ps(_mm256_set1_ps(a.d[kb]), _mm256_cvtepi32_ps(isum), gacc);
      gsum += a.dsum[kb];
    }
    if constexpr (NF4) {
      total = _mm256_fmadd_ps(_mm256_castsi256_ps(hd), _mm256_fmsub_ps(gacc, _mm256_set1_ps(1.f / 4096.f), _mm256_set1_ps(gsum)), total);
    } else {
      // f16 scale in the low half of each gathered word, the zero point (asymmetric) in byte 2
      const __m256i h16 = _mm256_and_si256(hd, _mm256_set1_epi32(0xFFFF));
      const __m256 d = _mm256_cvtph_ps(_mm256_castsi256_si128(_mm256_permute4x64_epi64(_mm256_packus_epi32(h16, h16), 0x08)));
      const __m256 z = qs.symmetric ? _mm256_set1_ps(INT8 ? 128.f : 8.f)
                                    : _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(hd, 16), _mm256_set1_epi32(0xFF)));
      total = _mm256_fmadd_ps(d, _mm256_fnmadd_ps(z, _mm256_set1_ps(gsum), gacc), total);
    }
  }
  alignas(32) float out[8];
  _mm256_store_ps(out, total);
  for (int i = 0; i < 8; ++i) y[r0 + static_cast<size_t>(i)] = out[i];
}

/// The VNNI NF4 kernel compiled for AVX-512VL (32 vector registers; see rows8_q5_k_vnni).
__attribute__((target("avx512f,avx512vl,avx512bw,avx512vnni"))) void rows8_nf4_vnni(
    const QuantScheme& qs, const uint8_t* w, size_t rb, size_t r0, size_t cols, const Q8Row& a, float* y) {
  rows8_group<GroupKind::Nf4, true>(qs, w, rb, r0, cols, a, y);
}

// Q8_0 / Q4_0 with f32 activations (the transformer runtime's path): codes widened to f32 in registers,
// sum_k d_k * sum_i q_ki x_ki with two block accumulators per activation row.
template <size_t NB>
void rows_q8_0_q4_0_f32(bool four, const uint8_t* w, size_t rb, size_t r0, size_t r1, size_t cols, const float* x,
                        size_t b0, size_t rows, float* y) {
  const size_t nb = cols / 32, bs = four ? 18 : 34;
  const __m128i m4 = _mm_set1_epi8(0x0F);
  const __m256i eight = _mm256_set1_epi32(8);
  for (size_t r = r0; r < r1; ++r) {
    const uint8_t* row = w + r * rb;
    if (r + 1 < r1) _mm_prefetch(reinterpret_cast<const char*>(row + rb), _MM_HINT_T0);
    __m256 acc[NB][2];
    for (size_t b = 0; b < NB; ++b) acc[b][0] = acc[b][1] = _mm256_setzero_ps();
    auto step = [&](size_t k, int slot) {
      const uint8_t* blk = row + k * bs;
      const __m256 dw = _mm256_set1_ps(h2f(blk));
      __m256 v[4];
      if (four) {
        const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2));
        const __m128i lo = _mm_and_si128(raw, m4), hi = _mm_and_si128(_mm_srli_epi16(raw, 4), m4);
        v[0] = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_cvtepu8_epi32(lo), eight));
        v[1] = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8)), eight));
        v[2] = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_cvtepu8_epi32(hi), eight));
        v[3] = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8)), eight));
      } else {
        const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2));
        const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 18));
        v[0] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(a));
        v[1] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(a, 8)));
        v[2] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(c));
        v[3] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(c, 8)));
      }
      for (size_t b = 0; b < NB; ++b) {
        const float* xb = x + (b0 + b) * cols + 32 * k;
        __m256 t = _mm256_mul_ps(v[0], _mm256_loadu_ps(xb));
        t = _mm256_fmadd_ps(v[1], _mm256_loadu_ps(xb + 8), t);
        t = _mm256_fmadd_ps(v[2], _mm256_loadu_ps(xb + 16), t);
        t = _mm256_fmadd_ps(v[3], _mm256_loadu_ps(xb + 24), t);
        acc[b][slot] = _mm256_fmadd_ps(dw, t, acc[b][slot]);
      }
    };
    size_t k = 0;
    for (; k + 2 <= nb; k += 2) { step(k, 0); step(k + 1, 1); }
    if (k < nb) step(k, 0);
    for (size_t b = 0; b < NB; ++b) y[(b0 + b) * rows + r] = hsum(_mm256_add_ps(acc[b][0], acc[b][1]));
  }
}

// Q4_K with Q8_0 activations: per 32-block, d*sc*dx * sum(l q) (integer maddubs) - dmin*m * dx * sum(q).
template <size_t NB>
void rows_q4_k_int(const uint8_t* w, size_t rb, size_t r0, size_t r1, size_t cols, const Q8Act& a, size_t b0,
                   size_t rows, float* y) {
  const size_t nsb = cols / 256, nb = cols / 32;
  const __m256i m4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
  for (size_t r = r0; r < r1; ++r) {
    const uint8_t* row = w + r * rb;
    __m256 acc[NB][2];
    __m256 mins[NB];  // lanes 0..7: dmin * m_j * dx_j * sum(q) of the super-block's eight 32-blocks
    for (size_t b = 0; b < NB; ++b) acc[b][0] = acc[b][1] = mins[b] = _mm256_setzero_ps();
    for (size_t s = 0; s < nsb; ++s) {
      const uint8_t* blk = row + s * 144;
      _mm_prefetch(reinterpret_cast<const char*>(blk + 4 * 144), _MM_HINT_T0);
      const float d = h2f(blk), dmin = h2f(blk + 2);
      const uint8_t* sc = blk + 4;
      const uint8_t* q = blk + 16;
      alignas(32) float dj[8], mj[8];
      for (int j = 0; j < 8; ++j) {
        int sa, m;
        if (j < 4) { sa = sc[j] & 63; m = sc[j + 4] & 63; }
        else { sa = (sc[j + 4] & 0xF) | ((sc[j - 4] >> 6) << 4); m = (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4); }
        dj[j] = d * sa; mj[j] = dmin * m;
      }
      const __m256 mjv = _mm256_load_ps(mj);
      for (size_t b = 0; b < NB; ++b) {
        const size_t bi = b0 + b;
        mins[b] = _mm256_fmadd_ps(mjv, _mm256_loadu_ps(&a.dsum[bi * nb + s * 8]), mins[b]);
      }
      for (int c = 0; c < 4; ++c) {
        const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 32 * c));
        const __m256i lo = _mm256_and_si256(raw, m4), hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
        const size_t k0 = s * 8 + 2 * c;  // 32-block index of the low half
        for (size_t b = 0; b < NB; ++b) {
          const size_t bi = b0 + b;
          const int8_t* xq = &a.q[bi * cols + 32 * k0];
          const __m256i xl = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq));
          const __m256i xh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + 32));
          const __m256 pl = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(lo, xl), ones));
          const __m256 ph = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(hi, xh), ones));
          const float dl = a.d[bi * nb + k0], dh = a.d[bi * nb + k0 + 1];
          acc[b][0] = _mm256_fmadd_ps(_mm256_set1_ps(dj[2 * c] * dl), pl, acc[b][0]);
          acc[b][1] = _mm256_fmadd_ps(_mm256_set1_ps(dj[2 * c + 1] * dh), ph, acc[b][1]);
        }
      }
    }
    for (size_t b = 0; b < NB; ++b) y[(b0 + b) * rows + r] = hsum(_mm256_add_ps(acc[b][0], acc[b][1])) - hsum(mins[b]);
  }
}

// Q4_K: sum over 32-blocks of d*sc * (sum l x) - dmin*m * (sum x)
template <size_t NB>
void rows_q4_k(const uint8_t* w, size_t rb, size_t r0, size_t r1, size_t cols, const float* x, const float* xsum,
               size_t b0, size_t rows, float* y) {
  constexpr size_t nbatch = NB;
  const size_t nsb = cols / 256, n32 = cols / 32;
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  for (size_t r = r0; r < r1; ++r) {
    const uint8_t* row = w + r * rb;
    if (r + 1 < r1) _mm_prefetch(reinterpret_cast<const char*>(row + rb), _MM_HINT_T0);
    __m256 accv[NB];  // d*sc-weighted lane sums, reduced once per row
    float mins[NB] = {};
    for (size_t b = 0; b < NB; ++b) accv[b] = _mm256_setzero_ps();
    for (size_t s = 0; s < nsb; ++s) {
      const uint8_t* blk = row + s * 144;
      const float d = h2f(blk), dmin = h2f(blk + 2);
      const uint8_t* sc = blk + 4;
      const uint8_t* q = blk + 16;
      float dj[8], mj[8];
      for (int j = 0; j < 8; ++j) {
        int a, m;
        if (j < 4) { a = sc[j] & 63; m = sc[j + 4] & 63; }
        else { a = (sc[j + 4] & 0xF) | ((sc[j - 4] >> 6) << 4); m = (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4); }
        dj[j] = d * a; mj[j] = dmin * m;
      }
      for (int c = 0; c < 4; ++c) {  // 64 weights: 32 low nibbles (block 2c), 32 high (2c+1)
        const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 32 * c));
        const __m256i lo = _mm256_and_si256(raw, m4), hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
        __m256 wl[4], wh[4];
        const __m128i lo0 = _mm256_castsi256_si128(lo), lo1 = _mm256_extracti128_si256(lo, 1);
        const __m128i hi0 = _mm256_castsi256_si128(hi), hi1 = _mm256_extracti128_si256(hi, 1);
        wl[0] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lo0));
        wl[1] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(lo0, 8)));
        wl[2] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lo1));
        wl[3] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(lo1, 8)));
        wh[0] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi0));
        wh[1] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(hi0, 8)));
        wh[2] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi1));
        wh[3] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(hi1, 8)));
        const size_t k0 = s * 256 + 64 * c;
        for (size_t b = 0; b < nbatch; ++b) {
          const float* xb = x + (b0 + b) * cols + k0;
          __m256 al = _mm256_mul_ps(wl[0], _mm256_loadu_ps(xb));
          __m256 ah = _mm256_mul_ps(wh[0], _mm256_loadu_ps(xb + 32));
          for (int t = 1; t < 4; ++t) {
            al = _mm256_fmadd_ps(wl[t], _mm256_loadu_ps(xb + 8 * t), al);
            ah = _mm256_fmadd_ps(wh[t], _mm256_loadu_ps(xb + 32 + 8 * t), ah);
          }
          const float* xs = xsum + (b0 + b) * n32 + k0 / 32;
          accv[b] = _mm256_fmadd_ps(_mm256_set1_ps(dj[2 * c]), al, accv[b]);
          accv[b] = _mm256_fmadd_ps(_mm256_set1_ps(dj[2 * c + 1]), ah, accv[b]);
          mins[b] += mj[2 * c] * xs[0] + mj[2 * c + 1] * xs[1];
        }
      }
    }
    for (size_t b = 0; b < nbatch; ++b) y[(b0 + b) * rows + r] = hsum(accv[b]) - mins[b];
  }
}

// Q6_K: the 128 unsigned six-bit codes of half h of a 210-byte super-block (ggml's layout: low nibbles
// in ql[64], two high bits each in qh[32]), as four vectors of 32 bytes in 0..63, in weight order.
inline void q6_k_codes(const uint8_t* blk, int h, __m256i q[4]) {
  const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(3);
  const uint8_t* ql = blk + 64 * h;
  const uint8_t* qh = blk + 128 + 32 * h;
  const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql));
  const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 32));
  const __m256i hb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qh));
  q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(hb, m3), 4));
  q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), m3), 4));
  q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 4), m3), 4));
  q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 6), m3), 4));
}

// Q6_K with Q8_0 activations: per 32 weights (two 16-sub-blocks) integer dot of (l - 32) with the
// activation codes (sign trick), scaled per 16 by d * sc * dx.
template <size_t NB>
void rows_q6_k_int(const uint8_t* w, size_t rb, size_t r0, size_t r1, size_t cols, const Q8Act& a, size_t b0,
                   size_t rows, float* y) {
  const size_t nsb = cols / 256, nb = cols / 32;
  const __m256i c32 = _mm256_set1_epi8(32);
  for (size_t r = r0; r < r1; ++r) {
    const uint8_t* row = w + r * rb;
    __m256 acc[NB][2];
    for (size_t b = 0; b < NB; ++b) acc[b][0] = acc[b][1] = _mm256_setzero_ps();
    for (size_t s = 0; s < nsb; ++s) {
      const uint8_t* blk = row + s * 210;
      _mm_prefetch(reinterpret_cast<const char*>(blk + 3 * 210), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(blk + 3 * 210 + 64), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(blk + 3 * 210 + 128), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(blk + 3 * 210 + 192), _MM_HINT_T0);
      const float d = h2f(blk + 208);
      const int8_t* sc = reinterpret_cast<const int8_t*>(blk + 192);
      for (int h = 0; h < 2; ++h) {
        __m256i q[4];
        q6_k_codes(blk, h, q);
        for (int t = 0; t < 4; ++t) {
          const __m256i v = _mm256_sub_epi8(q[t], c32);
          const float s0 = d * sc[8 * h + 2 * t], s1 = d * sc[8 * h + 2 * t + 1];
          const size_t k = s * 8 + 4 * h + t;
          for (size_t b = 0; b < NB; ++b) {
            const size_t bi = b0 + b;
            const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(&a.q[bi * cols + 32 * k]));
            const float dx = a.d[bi * nb + k];
            const __m256 f = _mm256_setr_ps(s0 * dx, s0 * dx, s0 * dx, s0 * dx, s1 * dx, s1 * dx, s1 * dx, s1 * dx);
            acc[b][t & 1] = _mm256_fmadd_ps(f, dot_i8(v, xq), acc[b][t & 1]);
          }
        }
      }
    }
    for (size_t b = 0; b < NB; ++b) y[(b0 + b) * rows + r] = hsum(_mm256_add_ps(acc[b][0], acc[b][1]));
  }
}

// Q6_K: per 16 weights d*sc * sum (l - 32) x
template <size_t NB>
void rows_q6_k(const uint8_t* w, size_t rb, size_t r0, size_t r1, size_t cols, const float* x, size_t b0,
               size_t rows, float* y) {
  constexpr size_t nbatch = NB;
  const size_t nsb = cols / 256;
  alignas(32) float buf[256];
  for (size_t r = r0; r < r1; ++r) {
    const uint8_t* row = w + r * rb;
    __m256 acc[NB];
    for (size_t b = 0; b < nbatch; ++b) acc[b] = _mm256_setzero_ps();
    for (size_t s = 0; s < nsb; ++s) {
      const uint8_t* blk = row + s * 210;
      const float d = h2f(blk + 208);
      const int8_t* sc = reinterpret_cast<const int8_t*>(blk + 192);
      // unpack 256 six-bit codes to f32 times the sub-block scale
      const __m256i c32 = _mm256_set1_epi8(32);
      for (int h = 0; h < 2; ++h) {
        __m256i q[4];
        q6_k_codes(blk, h, q);
        for (int t = 0; t < 4; ++t) {
          const __m256i v = _mm256_sub_epi8(q[t], c32);
          const __m128i v0 = _mm256_castsi256_si128(v), v1 = _mm256_extracti128_si256(v, 1);
          float* o = buf + 128 * h + 32 * t;
          const float s0 = d * sc[8 * h + 2 * t], s1 = d * sc[8 * h + 2 * t + 1];
          _mm256_store_ps(o, _mm256_mul_ps(_mm256_set1_ps(s0), _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v0))));
          _mm256_store_ps(o + 8, _mm256_mul_ps(_mm256_set1_ps(s0), _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(v0, 8)))));
          _mm256_store_ps(o + 16, _mm256_mul_ps(_mm256_set1_ps(s1), _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v1))));
          _mm256_store_ps(o + 24, _mm256_mul_ps(_mm256_set1_ps(s1), _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(v1, 8)))));
        }
      }
      for (size_t b = 0; b < nbatch; ++b) {
        const float* xb = x + (b0 + b) * cols + s * 256;
        __m256 a0 = acc[b], a1 = _mm256_setzero_ps(), a2 = a1, a3 = a1;  // four FMA chains
        for (int i = 0; i < 256; i += 32) {
          a0 = _mm256_fmadd_ps(_mm256_load_ps(buf + i), _mm256_loadu_ps(xb + i), a0);
          a1 = _mm256_fmadd_ps(_mm256_load_ps(buf + i + 8), _mm256_loadu_ps(xb + i + 8), a1);
          a2 = _mm256_fmadd_ps(_mm256_load_ps(buf + i + 16), _mm256_loadu_ps(xb + i + 16), a2);
          a3 = _mm256_fmadd_ps(_mm256_load_ps(buf + i + 24), _mm256_loadu_ps(xb + i + 24), a3);
        }
        acc[b] = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
      }
    }
    for (size_t b = 0; b < nbatch; ++b) y[(b0 + b) * rows + r] = hsum(acc[b]);
  }
}

// NF4 (no double quantization) and INT4 (sym / asym, any group): two 4-bit codes per byte, element
// 2j in the low nibble of byte j. The dot products run on X split into even / odd elements (xe, xo,
// built once per call): sum_j w(lo_j) xe_j + w(hi_j) xo_j, 16 weights per 8 code bytes.
//   NF4: w(c) = table[c] * absmax (table lookup with two permutes), per block of g.
//   INT4: w(c) = d * (c - z): d * (sum c x - z * sum x), the group sums of X precomputed.
struct SplitX {
  std::vector<float> e, o, gsum;  // [batch, cols/2] x2, [batch, cols/g]
};
SplitX split_x(const float* x, size_t batch, size_t cols, size_t g) {
  SplitX sx;
  const size_t h = cols / 2, ng = cols / g;
  sx.e.resize(batch * h);
  sx.o.resize(batch * h);
  sx.gsum.resize(batch * ng);
  for (size_t b = 0; b < batch; ++b) {
    for (size_t i = 0; i < h; ++i) {
      sx.e[b * h + i] = x[b * cols + 2 * i];
      sx.o[b * h + i] = x[b * cols + 2 * i + 1];
    }
    for (size_t k = 0; k < ng; ++k) {
      float t = 0;
      for (size_t i = 0; i < g; ++i) t += x[b * cols + k * g + i];
      sx.gsum[b * ng + k] = t;
    }
  }
  return sx;
}

template <bool NF4, size_t NB>
void rows_nibble(const QuantScheme& s, const uint8_t* w, size_t rb, size_t r0, size_t r1, size_t cols, const SplitX& sx,
                 size_t b0, size_t rows, float* y) {
  const size_t g = s.group ? s.group : cols, ng = cols / g, h = cols / 2;
  const size_t hdr = NF4 ? 4 : (s.symmetric ? 2 : 3), gb = hdr + g / 2;
  const __m256 tlo = _mm256_loadu_ps(nf4_table()), thi = _mm256_loadu_ps(nf4_table() + 8);
  const __m256i m15 = _mm256_set1_epi32(15), seven = _mm256_set1_epi32(7);
  auto decode = [&](__m256i c) -> __m256 {  // 8 codes (one per int32 lane) to their f32 values before the scale
    if constexpr (NF4)
      return _mm256_blendv_ps(_mm256_permutevar8x32_ps(tlo, c), _mm256_permutevar8x32_ps(thi, c),
                              _mm256_castsi256_ps(_mm256_cmpgt_epi32(c, seven)));
    else
      return _mm256_cvtepi32_ps(c);
  };
  for (size_t r = r0; r < r1; ++r) {
    const uint8_t* row = w + r * rb;
    if (r + 1 < r1) _mm_prefetch(reinterpret_cast<const char*>(row + rb), _MM_HINT_T0);
    __m256 out[NB];  // scale-weighted block sums, lanes reduced once per row
    for (size_t b = 0; b < NB; ++b) out[b] = _mm256_setzero_ps();
    float zs[NB] = {};
    for (size_t k = 0; k < ng; ++k) {
      const uint8_t* blk = row + k * gb;
      _mm_prefetch(reinterpret_cast<const char*>(blk + 4 * gb), _MM_HINT_T0);
      const uint8_t* codes = blk + hdr;
      float scale;
      int z = 0;
      if (NF4) {
        std::memcpy(&scale, blk, 4);
      } else {
        scale = h2f(blk);
        z = s.symmetric ? 8 : blk[2];
      }
      // four independent accumulators per activation row: (low, high nibble) x (even, odd 8 code bytes)
      __m256 acc[NB][4];
      for (size_t b = 0; b < NB; ++b) acc[b][0] = acc[b][1] = acc[b][2] = acc[b][3] = _mm256_setzero_ps();
      size_t j = 0;
      for (; j + 16 <= g / 2; j += 16) {
        const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + j));
        const __m256i c0 = _mm256_cvtepu8_epi32(raw), c1 = _mm256_cvtepu8_epi32(_mm_srli_si128(raw, 8));
        const __m256 wl0 = decode(_mm256_and_si256(c0, m15)), wh0 = decode(_mm256_srli_epi32(c0, 4));
        const __m256 wl1 = decode(_mm256_and_si256(c1, m15)), wh1 = decode(_mm256_srli_epi32(c1, 4));
        const size_t xi = (k * g) / 2 + j;
        for (size_t bb = 0; bb < NB; ++bb) {
          const float* xe = &sx.e[(b0 + bb) * h + xi];
          const float* xo = &sx.o[(b0 + bb) * h + xi];
          acc[bb][0] = _mm256_fmadd_ps(wl0, _mm256_loadu_ps(xe), acc[bb][0]);
          acc[bb][1] = _mm256_fmadd_ps(wh0, _mm256_loadu_ps(xo), acc[bb][1]);
          acc[bb][2] = _mm256_fmadd_ps(wl1, _mm256_loadu_ps(xe + 8), acc[bb][2]);
          acc[bb][3] = _mm256_fmadd_ps(wh1, _mm256_loadu_ps(xo + 8), acc[bb][3]);
        }
      }
      for (; j < g / 2; j += 8) {
        uint64_t raw;
        std::memcpy(&raw, codes + j, 8);
        const __m256i c = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<long long>(raw)));
        const __m256 wl = decode(_mm256_and_si256(c, m15)), wh = decode(_mm256_srli_epi32(c, 4));
        const size_t xi = (k * g) / 2 + j;
        for (size_t bb = 0; bb < NB; ++bb) {
          acc[bb][0] = _mm256_fmadd_ps(wl, _mm256_loadu_ps(&sx.e[(b0 + bb) * h + xi]), acc[bb][0]);
          acc[bb][1] = _mm256_fmadd_ps(wh, _mm256_loadu_ps(&sx.o[(b0 + bb) * h + xi]), acc[bb][1]);
        }
      }
      const __m256 sv = _mm256_set1_ps(scale);
      for (size_t bb = 0; bb < NB; ++bb) {
        const __m256 t = _mm256_add_ps(_mm256_add_ps(acc[bb][0], acc[bb][1]), _mm256_add_ps(acc[bb][2], acc[bb][3]));
        out[bb] = _mm256_fmadd_ps(sv, t, out[bb]);
        if (!NF4) zs[bb] += scale * static_cast<float>(z) * sx.gsum[(b0 + bb) * ng + k];
      }
    }
    for (size_t b = 0; b < NB; ++b) y[(b0 + b) * rows + r] = hsum(out[b]) - zs[b];
  }
}

// FP8 (E4M3 / E5M2) with f32 activations, four rows at a time (each activation load shared): FP8
// codes widen exactly to f16 in registers, then to f32 by F16C. E5M2 is the top byte of an f16; E4M3
// (bias 7) becomes the f16 with the same sign, exponent field and mantissa, which is its value times
// 2^-8 (subnormals included), so the group scale carries the 2^8. (E4M3's NaN codes, which the
// quantizer never writes, would read as 480.)
constexpr size_t kFp8Prefetch = 512;  // bytes ahead in each row's code stream

/// sum over t in [j, g) of fp8(codes[t]) x[t]: the codes past the last whole vector step, decoded exactly.
template <bool E4M3>
inline float fp8_tail_dot(const uint8_t* codes, const float* x, size_t j, size_t g) {
  float tail = 0.f;
  for (size_t t = j; t < g; ++t) tail += (E4M3 ? fp8_e4m3_decode(codes[t]) : fp8_e5m2_decode(codes[t])) * x[t];
  return tail;
}

template <bool E4M3>
void rows4_fp8(const QuantScheme& qs, const uint8_t* w, size_t rb, size_t r0, size_t r1, size_t cols, const float* x,
               float* y) {
  const size_t g = qs.group ? qs.group : cols, ng = cols / g, gb = 4 + g;
  const float unit = E4M3 ? 256.f : 1.f;
  auto widen = [](__m128i bytes, __m256& lo, __m256& hi) {
    __m256i h = _mm256_cvtepu8_epi16(bytes);
    if constexpr (E4M3) {
      // t = b << 7 puts the sign at bit 14; adding bit 14 to itself carries it to bit 15
      const __m256i t = _mm256_slli_epi16(h, 7);
      h = _mm256_add_epi16(t, _mm256_and_si256(t, _mm256_set1_epi16(0x4000)));
    } else
      h = _mm256_slli_epi16(h, 8);
    lo = _mm256_cvtph_ps(_mm256_castsi256_si128(h));
    hi = _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1));
  };
  // NR rows at a time, NR a compile-time constant so the accumulators stay in registers (a run-time
  // row count made the compiler keep them on the stack: a store-forwarding chain per FMA)
  auto rows_n = [&](auto nrc, size_t r) {
    constexpr size_t NR = decltype(nrc)::value;
    __m256 tot[NR];
    for (auto& t : tot) t = _mm256_setzero_ps();
    for (size_t k = 0; k < ng; ++k) {
      __m256 acc[NR][2];
      for (auto& a : acc) a[0] = a[1] = _mm256_setzero_ps();
      const float* xg = x + k * g;
      size_t j = 0;
      for (; j + 16 <= g; j += 16) {
        const __m256 x0 = _mm256_loadu_ps(xg + j), x1 = _mm256_loadu_ps(xg + j + 8);
        for (size_t i = 0; i < NR; ++i) {
          const uint8_t* c = w + (r + i) * rb + k * gb + 4 + j;
          if ((j & 63) == 0) _mm_prefetch(reinterpret_cast<const char*>(c + kFp8Prefetch), _MM_HINT_T0);
          __m256 lo, hi;
          widen(_mm_loadu_si128(reinterpret_cast<const __m128i*>(c)), lo, hi);
          acc[i][0] = _mm256_fmadd_ps(lo, x0, acc[i][0]);
          acc[i][1] = _mm256_fmadd_ps(hi, x1, acc[i][1]);
        }
      }
      for (size_t i = 0; i < NR; ++i) {
        const uint8_t* blk = w + (r + i) * rb + k * gb;
        float sc;
        std::memcpy(&sc, blk, 4);
        const float tail = fp8_tail_dot<E4M3>(blk + 4, xg, j, g);
        // the tail in true values, the vector part in units of 2^-8 (E4M3)
        tot[i] = _mm256_fmadd_ps(_mm256_set1_ps(sc * unit), _mm256_add_ps(acc[i][0], acc[i][1]), tot[i]);
        tot[i] = _mm256_add_ps(tot[i], _mm256_setr_ps(sc * tail, 0, 0, 0, 0, 0, 0, 0));
      }
    }
    for (size_t i = 0; i < NR; ++i) y[r + i] = hsum(tot[i]);
  };
  size_t r = r0;
  for (; r + 4 <= r1; r += 4) rows_n(std::integral_constant<size_t, 4>{}, r);
  for (; r < r1; ++r) rows_n(std::integral_constant<size_t, 1>{}, r);
}

/// FP8 on AVX-512 (the CPUs of the VNNI kernels; Zen 4 runs each 512-bit op as two halves, so the gain
/// is in the front end): 32 codes per step widened to f16 in one register and converted by two 16-lane
/// vcvtph2ps, the same arithmetic per element as rows4_fp8 (exact widening, f32 FMAs).
// GCC 12's avx512fintrin.h starts vcvtph2ps and the reductions from _mm512_undefined_*: a spurious
// -Wuninitialized at every use
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
template <bool E4M3, size_t NR>
__attribute__((target("avx512f,avx512vl,avx512bw,avx512vnni"))) void fp8_512_rows(
    size_t g, size_t ng, size_t gb, const uint8_t* w, size_t rb, size_t r, const float* x, float* y) {
  constexpr float unit = E4M3 ? 256.f : 1.f;
  __m512 tot[NR];
  for (auto& t : tot) t = _mm512_setzero_ps();
  for (size_t k = 0; k < ng; ++k) {
    __m512 acc[NR][2];
    for (auto& a : acc) a[0] = a[1] = _mm512_setzero_ps();
    const float* xg = x + k * g;
    size_t j = 0;
    for (; j + 32 <= g; j += 32) {
      const __m512 x0 = _mm512_loadu_ps(xg + j), x1 = _mm512_loadu_ps(xg + j + 16);
      for (size_t i = 0; i < NR; ++i) {
        const uint8_t* c = w + (r + i) * rb + k * gb + 4 + j;
        if ((j & 63) == 0) _mm_prefetch(reinterpret_cast<const char*>(c + kFp8Prefetch), _MM_HINT_T0);
        __m512i h = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(c)));
        if constexpr (E4M3) {
          const __m512i t = _mm512_slli_epi16(h, 7);
          h = _mm512_add_epi16(t, _mm512_and_si512(t, _mm512_set1_epi16(0x4000)));
        } else {
          h = _mm512_slli_epi16(h, 8);
        }
        acc[i][0] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm512_castsi512_si256(h)), x0, acc[i][0]);
        acc[i][1] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1)), x1, acc[i][1]);
      }
    }
    for (size_t i = 0; i < NR; ++i) {
      const uint8_t* blk = w + (r + i) * rb + k * gb;
      float sc;
      std::memcpy(&sc, blk, 4);
      const float tail = fp8_tail_dot<E4M3>(blk + 4, xg, j, g);
      // the tail in true values, the vector part in units of 2^-8 (E4M3)
      tot[i] = _mm512_fmadd_ps(_mm512_set1_ps(sc * unit), _mm512_add_ps(acc[i][0], acc[i][1]), tot[i]);
      tot[i] = _mm512_add_ps(tot[i], _mm512_castps256_ps512(_mm256_setr_ps(sc * tail, 0, 0, 0, 0, 0, 0, 0)));
    }
  }
  for (size_t i = 0; i < NR; ++i) y[r + i] = _mm512_reduce_add_ps(tot[i]);
}
#pragma GCC diagnostic pop

template <bool E4M3>
void rows4_fp8_512(const QuantScheme& qs, const uint8_t* w, size_t rb, size_t r0, size_t r1, size_t cols, const float* x,
                   float* y) {
  const size_t g = qs.group ? qs.group : cols, ng = cols / g, gb = 4 + g;
  size_t r = r0;
  for (; r + 4 <= r1; r += 4) fp8_512_rows<E4M3, 4>(g, ng, gb, w, rb, r, x, y);
  for (; r < r1; ++r) fp8_512_rows<E4M3, 1>(g, ng, gb, w, rb, r, x, y);
}

void rows_generic(const QuantScheme& s, const uint8_t* w, size_t rb, size_t r0, size_t r1, size_t cols, const float* x,
                  size_t b0, size_t nbatch, size_t rows, float* y) {
  const size_t blk = scheme_block(s);
  std::vector<float> buf(cols);
  for (size_t r = r0; r < r1; ++r) {
    // Dequantize the row in chunks of up to 1024 elements (whole blocks) and dot each chunk.
    float out[kMaxB] = {0};
    if (blk == 0 || (s.format == QuantFormat::NF4 && s.double_quant)) {
      dequantize_row(s, w + r * rb, buf.data(), cols);
      for (size_t b = 0; b < nbatch; ++b) out[b] = dot_f32(buf.data(), x + (b0 + b) * cols, cols);
    } else {
      const size_t per = std::max<size_t>(1, 1024 / blk) * blk, bb = scheme_block_bytes(s, cols);
      for (size_t k0 = 0; k0 < cols; k0 += per) {
        const size_t len = std::min(per, cols - k0);
        dequantize_row(s, w + r * rb + (k0 / blk) * bb, buf.data(), len);
        for (size_t b = 0; b < nbatch; ++b) out[b] += dot_f32(buf.data(), x + (b0 + b) * cols + k0, len);
      }
    }
    for (size_t b = 0; b < nbatch; ++b) y[(b0 + b) * rows + r] = out[b];
  }
}

// The row kernels keep their per-batch accumulators in registers when the batch count is a
// compile-time constant: with_count_1_to_8 picks the instance, so a batch pass holds at most 8 rows.
static_assert(kMaxB == 8, "with_count_1_to_8 covers batch passes of up to kMaxB rows");

/// Runs an eight-row kernel kern(weights, first row, out) over rows r0 .. r1 of one activation row.
/// A tail of fewer than eight rows goes through the same kernel on a zero-padded copy (zero scales give
/// zero outputs), so every row gets the same arithmetic wherever it falls.
template <class K>
void eight_rows(K&& kern, const uint8_t* w, size_t rb, size_t r0, size_t r1, float* yb) {
  size_t r = r0;
  for (; r + 8 <= r1; r += 8) kern(w, r, yb);
  if (r < r1) {
    std::vector<uint8_t> pad(8 * rb, 0);
    std::memcpy(pad.data(), w + r * rb, (r1 - r) * rb);
    float t[8];
    kern(pad.data(), 0, t);
    for (size_t i = 0; i < r1 - r; ++i) yb[r + i] = t[i];
  }
}

void check_args(const QuantScheme& s, const void* w, size_t rows, size_t cols, const float* x, size_t batch, float* y) {
  require(rows > 0 && cols > 0 && batch > 0, ErrorCode::Shape, "quant_matmul: rows, cols and batch must be > 0");
  require(w && x && y, ErrorCode::Range, "quant_matmul: null buffer");
  scheme_row_bytes(s, cols);
}

}  // namespace

void quant_matmul(const QuantScheme& s, const void* wv, size_t rows, size_t cols, const float* x, size_t batch, float* y,
                  bool f32_activations) {
  check_args(s, wv, rows, cols, x, batch, y);
  const uint8_t* w = static_cast<const uint8_t*>(wv);
  const size_t rb = scheme_row_bytes(s, cols);
  Q8Act act;
  std::vector<float> xsum;
  const size_t grp = s.group ? s.group : cols;
  // NF4 / INT4 / INT8 with Q8_0 activations (eight-row kernels, any batch): groups of whole activation blocks
  const bool nib8 = !f32_activations && cols % 32 == 0 && grp % 32 == 0 &&
                    ((s.format == QuantFormat::NF4 && !s.double_quant) ||
                     (s.format == QuantFormat::INT && (s.bits == 4 || s.bits == 8)));
  // MXFP4 and Q5_K: eight-row kernels at any batch as well (they have no per-row integer kernel)
  const bool any8 = nib8 || (!f32_activations && (s.format == QuantFormat::MXFP4 || s.format == QuantFormat::Q5_K));
  const bool q8path = !f32_activations && (s.format == QuantFormat::Q8_0 || s.format == QuantFormat::Q4_0 ||
                                           s.format == QuantFormat::Q4_K || s.format == QuantFormat::Q6_K || any8);
  // the eight-row kernels: the above always, Q8_0 / Q4_0 / Q4_K / Q6_K at batch 1 (larger batches amortise
  // each weight row over up to 8 activation rows in the per-row kernels instead)
  const bool rows8 = any8 || (q8path && batch == 1);
  const bool vnni = use_vnni();
  if (q8path) act = quantize_act(x, batch, cols);
  std::vector<int8_t> xperm;
  if (nib8 && !(s.format == QuantFormat::INT && s.bits == 8)) xperm = permute_even_odd(act.q.data(), batch * cols);
  if (s.format == QuantFormat::Q4_K && !q8path) {
    const size_t n32 = cols / 32;
    xsum.resize(batch * n32);
    for (size_t b = 0; b < batch; ++b)
      for (size_t k = 0; k < n32; ++k) {
        float t = 0;
        for (int j = 0; j < 32; ++j) t += x[b * cols + 32 * k + j];
        xsum[b * n32 + k] = t;
      }
  }
  const bool nf4_fast = s.format == QuantFormat::NF4 && !s.double_quant && s.group % 16 == 0;
  const bool int4_fast = s.format == QuantFormat::INT && s.bits == 4 && grp % 16 == 0;
  SplitX sx;
  if (!rows8 && (nf4_fast || int4_fast)) sx = split_x(x, batch, cols, grp);
  const long chunk = 16;
  const long nchunks = static_cast<long>((rows + chunk - 1) / chunk);
#pragma omp parallel for schedule(dynamic, 1) num_threads(num_threads())
  for (long c = 0; c < nchunks; ++c) {
    const size_t r0 = static_cast<size_t>(c) * chunk, r1 = std::min(rows, r0 + chunk);
    if (rows8) {
      for (size_t b = 0; b < batch; ++b) {
        const Q8Row ar = q8_row(act, xperm, b, cols);
        float* yb = y + b * rows;
        switch (s.format) {
          case QuantFormat::Q8_0:
            if (vnni)
              eight_rows([&](const uint8_t* wb, size_t r, float* o) { rows8_q8_0<true>(wb, rb, r, cols, ar, o); }, w, rb, r0, r1, yb);
            else
              eight_rows([&](const uint8_t* wb, size_t r, float* o) { rows8_q8_0<false>(wb, rb, r, cols, ar, o); }, w, rb, r0, r1, yb);
            break;
          case QuantFormat::Q4_0:
            eight_rows([&](const uint8_t* wb, size_t r, float* o) { rows8_q4_0<false>(wb, rb, r, cols, ar, o); }, w, rb, r0, r1, yb);
            break;
          case QuantFormat::Q4_K:
            eight_rows([&](const uint8_t* wb, size_t r, float* o) { rows8_q4_k<false>(wb, rb, r, cols, ar, o); }, w, rb, r0, r1, yb);
            break;
          case QuantFormat::Q6_K:
            if (vnni)
              eight_rows([&](const uint8_t* wb, size_t r, float* o) { rows8_q6_k_vnni(wb, rb, r, cols, ar, o); }, w, rb, r0, r1, yb);
            else
              eight_rows([&](const uint8_t* wb, size_t r, float* o) { rows8_q6_k<false>(wb, rb, r, cols, ar, o); }, w, rb, r0, r1, yb);
            break;
          case QuantFormat::Q5_K:
            if (vnni)
              eight_rows([&](const uint8_t* wb, size_t r, float* o) { rows8_q5_k_vnni(wb, rb, r, cols, ar, o); }, w, rb, r0, r1, yb);
            else
              eight_rows([&](const uint8_t* wb, size_t r, float* o) { rows8_q4_k<true>(wb, rb, r, cols, ar, o); }, w, rb, r0, r1, yb);
            break;
          case QuantFormat::MXFP4:
            eight_rows([&](const uint8_t* wb, size_t r, float* o) { rows8_q4_0<true>(wb, rb, r, cols, ar, o); }, w, rb, r0, r1, yb);
            break;
          case QuantFormat::NF4:
            if (vnni)
              eight_rows([&](const uint8_t* wb, size_t r, float* o) { rows8_nf4_vnni(s, wb, rb, r, cols, ar, o); }, w, rb, r0, r1, yb);
            else
              eight_rows([&](const uint8_t* wb, size_t r, float* o) { rows8_group<GroupKind::Nf4>(s, wb, rb, r, cols, ar, o); }, w, rb, r0, r1, yb);
            break;
          default:
            if (s.bits == 4)
              eight_rows([&](const uint8_t* wb, size_t r, float* o) { rows8_group<GroupKind::Int4>(s, wb, rb, r, cols, ar, o); }, w, rb, r0, r1, yb);
            else if (vnni)
              eight_rows([&](const uint8_t* wb, size_t r, float* o) { rows8_group<GroupKind::Int8, true>(s, wb, rb, r, cols, ar, o); }, w, rb, r0, r1, yb);
            else
              eight_rows([&](const uint8_t* wb, size_t r, float* o) { rows8_group<GroupKind::Int8>(s, wb, rb, r, cols, ar, o); }, w, rb, r0, r1, yb);
            break;
        }
      }
      continue;
    }
    for (size_t b0 = 0; b0 < batch; b0 += kMaxB) {
      const size_t nbt = std::min(kMaxB, batch - b0);
      switch (s.format) {
        case QuantFormat::Q8_0:
        case QuantFormat::Q4_0:
          if (q8path)
            with_count_1_to_8(nbt, [&](auto NB) { rows_q8_0_q4_0<NB()>(s.format == QuantFormat::Q4_0, w, rb, r0, r1, cols, act, b0, rows, y); });
          else
            with_count_1_to_8(nbt, [&](auto NB) { rows_q8_0_q4_0_f32<NB()>(s.format == QuantFormat::Q4_0, w, rb, r0, r1, cols, x, b0, rows, y); });
          break;
        case QuantFormat::Q4_K:
          if (q8path) with_count_1_to_8(nbt, [&](auto NB) { rows_q4_k_int<NB()>(w, rb, r0, r1, cols, act, b0, rows, y); });
          else with_count_1_to_8(nbt, [&](auto NB) { rows_q4_k<NB()>(w, rb, r0, r1, cols, x, xsum.data(), b0, rows, y); });
          break;
        case QuantFormat::Q6_K:
          if (q8path) with_count_1_to_8(nbt, [&](auto NB) { rows_q6_k_int<NB()>(w, rb, r0, r1, cols, act, b0, rows, y); });
          else with_count_1_to_8(nbt, [&](auto NB) { rows_q6_k<NB()>(w, rb, r0, r1, cols, x, b0, rows, y); });
          break;
        case QuantFormat::NF4:
          if (nf4_fast) with_count_1_to_8(nbt, [&](auto NB) { rows_nibble<true, NB()>(s, w, rb, r0, r1, cols, sx, b0, rows, y); });
          else rows_generic(s, w, rb, r0, r1, cols, x, b0, nbt, rows, y);
          break;
        case QuantFormat::INT:
          if (int4_fast) with_count_1_to_8(nbt, [&](auto NB) { rows_nibble<false, NB()>(s, w, rb, r0, r1, cols, sx, b0, rows, y); });
          else rows_generic(s, w, rb, r0, r1, cols, x, b0, nbt, rows, y);
          break;
        case QuantFormat::FP8_E4M3:
        case QuantFormat::FP8_E5M2:
          for (size_t b = b0; b < b0 + nbt; ++b) {
            // groups under 32 codes stay on the 16-wide kernel (the 32-wide one would leave them scalar)
            const bool wide = vnni && (s.group == 0 || s.group % 32 == 0);
            if (s.format == QuantFormat::FP8_E4M3) {
              if (wide) rows4_fp8_512<true>(s, w, rb, r0, r1, cols, x + b * cols, y + b * rows);
              else rows4_fp8<true>(s, w, rb, r0, r1, cols, x + b * cols, y + b * rows);
            } else {
              if (wide) rows4_fp8_512<false>(s, w, rb, r0, r1, cols, x + b * cols, y + b * rows);
              else rows4_fp8<false>(s, w, rb, r0, r1, cols, x + b * cols, y + b * rows);
            }
          }
          break;
        default: rows_generic(s, w, rb, r0, r1, cols, x, b0, nbt, rows, y); break;
      }
    }
  }
}

void quant_matmul_set_vnni(bool enabled) { g_vnni_enabled.store(enabled, std::memory_order_relaxed); }
bool quant_matmul_vnni_active() { return use_vnni(); }

namespace quant_ref {
// Reference: dequantize each row exactly, then an f64 dot product (no activation quantization).
void quant_matmul(const QuantScheme& s, const void* wv, size_t rows, size_t cols, const float* x, size_t batch, float* y) {
  check_args(s, wv, rows, cols, x, batch, y);
  const uint8_t* w = static_cast<const uint8_t*>(wv);
  const size_t rb = scheme_row_bytes(s, cols);
  std::vector<float> buf(cols);
  for (size_t r = 0; r < rows; ++r) {
    tersor::dequantize_row(s, w + r * rb, buf.data(), cols);
    for (size_t b = 0; b < batch; ++b) {
      double t = 0;
      for (size_t k = 0; k < cols; ++k) t += static_cast<double>(buf[k]) * x[b * cols + k];
      y[b * rows + r] = static_cast<float>(t);
    }
  }
}
}  // namespace quant_ref

}  // namespace tersor
