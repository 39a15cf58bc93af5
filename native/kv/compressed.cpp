// KV-cache compressors and attention over the compressed cache (see tersor/kv.hpp).
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>

#include "tersor/dispatch.hpp"
#include "tersor/error.hpp"
#include "tersor/half.hpp"
#include "tersor/kv.hpp"
#include "tersor/parallel.hpp"
#include "tersor/rng.hpp"

namespace tersor::kv {
namespace {

constexpr size_t kWindowTile = 32;  // window tokens per attention tile
constexpr size_t kPad = 8;          // slack bytes after packed codes (vector loads)
constexpr int kNoFused = -100;      // attend(): the tile has no fused view
constexpr int kZipFused = -50;      // attend(): the tile is a ZipCache block (zip_scores / zip_pv)
constexpr int kTileF32 = 32;        // attend(): the tile's f32 copy through the fused kernels (f32 rows)

uint16_t h16(float x) { return f32_to_f16_scalar(x); }
float f32h(uint16_t h) { return f16_to_f32_scalar(h); }
float round_h(float x) { return f32h(h16(x)); }

size_t row_bytes(size_t D, int bits) { return (D * static_cast<size_t>(bits) + 7) / 8; }

bool quantizing(KvMethod m) {
  return m == KvMethod::Kivi || m == KvMethod::KvQuant || m == KvMethod::Gear || m == KvMethod::ZipCache;
}
bool evicting(KvMethod m) { return m == KvMethod::H2O || m == KvMethod::Streaming || m == KvMethod::Ems; }

/// The shift (lane * b) and mask (2^b - 1) that take 8 codes of b <= 4 bits out of one 32-bit word.
inline void code_shift_mask(int b, __m256i& sh, __m256i& mk) {
  sh = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(b));
  mk = _mm256_set1_epi32((1 << b) - 1);
}

/// The 8 codes (b <= 4 bits, packed) of a row at channel c (c % 8 == 0) in 32-bit lanes; sh, mk
/// from code_shift_mask(b). Reads 4 bytes: rows end in kPad slack bytes.
inline __m256i code_lanes8(const uint8_t* row, size_t c, int b, __m256i sh, __m256i mk) {
  uint32_t w;
  std::memcpy(&w, row + (c / 8) * static_cast<size_t>(b), 4);
  return _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int>(w)), sh), mk);
}

/// code_lanes8 as f32.
inline __m256 load8_codes(const uint8_t* row, size_t c, int b, __m256i sh, __m256i mk) {
  return _mm256_cvtepi32_ps(code_lanes8(row, c, b, sh, mk));
}

/// A codebook of up to 16 entries in two registers, looked up by lane permutes instead of gathers.
struct Lut16 {
  __m256 lo, hi;
  int bits;
  Lut16(const float* lut, int b) : bits(b) {
    alignas(32) float t[16] = {};
    std::memcpy(t, lut, (size_t{1} << b) * sizeof(float));
    lo = _mm256_load_ps(t);
    hi = _mm256_load_ps(t + 8);
  }
  /// lut[code] for 8 codes (each < 2^bits): the low three bits pick a lane of lo or hi, bit 3 (moved to
  /// the sign) picks the register.
  __m256 operator()(__m256i code) const {
    const __m256 a = _mm256_permutevar8x32_ps(lo, code);
    if (bits < 4) return a;
    return _mm256_blendv_ps(a, _mm256_permutevar8x32_ps(hi, code), _mm256_castsi256_ps(_mm256_slli_epi32(code, 28)));
  }
};

/// 0, 1, .., 15 (the codebook of uniform codes).
inline const float* identity16() {
  static const float id[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  return id;
}

/// Unpacks D codes (D % 8 == 0) of `bits` bits into 32-bit lanes, then x = lut/identity, into f32.
/// out[c] = value(code_c) (before scale/zero).
inline void unpack_row_f32(const uint8_t* src, size_t D, int bits, const float* lut, float* out) {
  const uint32_t mask = (1u << bits) - 1u;
  if (bits <= 4) {
    __m256i sh, mk;
    code_shift_mask(bits, sh, mk);
    const Lut16 lut16(lut ? lut : identity16(), bits);
    for (size_t c = 0; c < D; c += 8) {
      const __m256i code = code_lanes8(src, c, bits, sh, mk);
      _mm256_storeu_ps(out + c, lut ? lut16(code) : _mm256_cvtepi32_ps(code));
    }
  } else if (bits == 8) {
    for (size_t c = 0; c < D; c += 8) {
      const __m256i code = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(src + c)));
      const __m256 v = lut ? _mm256_i32gather_ps(lut, code, 4) : _mm256_cvtepi32_ps(code);
      _mm256_storeu_ps(out + c, v);
    }
  } else {
    for (size_t c = 0; c < D; c += 8) {
      uint64_t w;
      std::memcpy(&w, src + (c / 8) * static_cast<size_t>(bits), 8);
      for (int j = 0; j < 8; ++j) {
        const uint32_t code = static_cast<uint32_t>(w >> (bits * j)) & mask;
        out[c + static_cast<size_t>(j)] = lut ? lut[code] : static_cast<float>(code);
      }
    }
  }
}

/// Dequantizes a part: out [n, D] f32 = (value(code) * scale + zero) * cscale + L + S.
void dequant_part(const QPart& p, size_t n, size_t D, const float* layer_lut, float* out) {
  const float* lut = p.nonuniform ? layer_lut : nullptr;
  float S[256], Z[256], CS[256];
  if (p.axis == QPart::PerChannel) {
    f16_to_f32(p.scale.data(), S, D);
    f16_to_f32(p.zero.data(), Z, D);
  }
  const bool cs = !p.cscale.empty();
  if (cs) f16_to_f32(p.cscale.data(), CS, D);
  const size_t ng = p.axis == QPart::PerToken ? D / p.cgroup : 0;
  if (p.bits >= 1 && p.bits <= 4 && !cs) {
    // fused unpack (+ codebook) + affine for codes of <= 4 bits (KIVI, GEAR, KVQuant): no
    // intermediate row; a non-uniform codebook is looked up by lane permutes (Lut16)
    const int b = p.bits;
    const size_t rb = row_bytes(D, b);
    __m256i sh, mk;
    code_shift_mask(b, sh, mk);
    const Lut16 lut16(lut ? lut : identity16(), b);
    thread_local std::vector<float> ST, ZT;
    if (p.axis == QPart::PerToken) {
      ST.resize(n * ng + 8);
      ZT.resize(n * ng + 8);
      f16_to_f32(p.scale.data(), ST.data(), n * ng);
      f16_to_f32(p.zero.data(), ZT.data(), n * ng);
    }
    for (size_t t = 0; t < n; ++t) {
      const uint8_t* src = p.codes.data() + t * rb;
      float* o = out + t * D;
      size_t gi = t * ng, gend = p.cgroup;  // PerToken: the scale group of channel c (no division per chunk)
      for (size_t c = 0; c < D; c += 8) {
        const __m256i code = code_lanes8(src, c, b, sh, mk);
        const __m256 x = lut ? lut16(code) : _mm256_cvtepi32_ps(code);
        __m256 y;
        if (p.axis == QPart::PerChannel) {
          y = _mm256_fmadd_ps(x, _mm256_loadu_ps(S + c), _mm256_loadu_ps(Z + c));
        } else {
          if (c == gend) ++gi, gend += p.cgroup;
          y = _mm256_fmadd_ps(x, _mm256_set1_ps(ST[gi]), _mm256_set1_ps(ZT[gi]));
        }
        _mm256_storeu_ps(o + c, y);
      }
    }
  } else
  for (size_t t = 0; t < n; ++t) {
    const int b = p.bits ? p.bits : p.tbits[t];
    const uint8_t* src = p.codes.data() + (p.bits ? t * row_bytes(D, b) : p.off[t]);
    float* o = out + t * D;
    unpack_row_f32(src, D, b, lut, o);
    if (p.axis == QPart::PerChannel) {
      for (size_t c = 0; c < D; c += 8)
        _mm256_storeu_ps(o + c, _mm256_fmadd_ps(_mm256_loadu_ps(o + c), _mm256_loadu_ps(S + c), _mm256_loadu_ps(Z + c)));
    } else {
      for (size_t g = 0; g < ng; ++g) {
        const __m256 s = _mm256_set1_ps(f32h(p.scale[t * ng + g])), z = _mm256_set1_ps(f32h(p.zero[t * ng + g]));
        for (size_t c = g * p.cgroup; c < (g + 1) * p.cgroup; c += 8)
          _mm256_storeu_ps(o + c, _mm256_fmadd_ps(_mm256_loadu_ps(o + c), s, z));
      }
    }
    if (cs)
      for (size_t c = 0; c < D; c += 8) _mm256_storeu_ps(o + c, _mm256_mul_ps(_mm256_loadu_ps(o + c), _mm256_loadu_ps(CS + c)));
  }
  if (p.rank > 0) {
    // out += A B^T: B transposed to [r][D] once, then one vector axpy per (token, rank)
    const size_t r = p.rank;
    thread_local std::vector<float> A, B, BT;
    A.resize(n * r);
    B.resize(D * r);
    BT.resize(r * D);
    f16_to_f32(p.lr_a.data(), A.data(), n * r);
    f16_to_f32(p.lr_b.data(), B.data(), D * r);
    for (size_t c = 0; c < D; ++c)
      for (size_t j = 0; j < r; ++j) BT[j * D + c] = B[c * r + j];
    for (size_t t = 0; t < n; ++t) {
      float* o = out + t * D;
      for (size_t c = 0; c < D; c += 8) {
        __m256 acc = _mm256_setzero_ps();
        for (size_t j = 0; j < r; ++j)
          acc = _mm256_fmadd_ps(_mm256_set1_ps(A[t * r + j]), _mm256_loadu_ps(BT.data() + j * D + c), acc);
        _mm256_storeu_ps(o + c, _mm256_add_ps(_mm256_loadu_ps(o + c), acc));
      }
    }
  }
  for (size_t i = 0; i < p.sp_idx.size(); ++i) out[p.sp_idx[i]] += f32h(p.sp_val[i]);
}

/// Indices of the k entries of x[0..m) with the largest |x| (sorted ascending by index).
std::vector<uint32_t> top_abs(const float* x, size_t m, size_t k) {
  std::vector<uint32_t> idx(m);
  std::iota(idx.begin(), idx.end(), 0u);
  if (k == 0) return {};
  k = std::min(k, m);
  std::nth_element(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(k - 1), idx.end(), [&](uint32_t a, uint32_t b) {
    const float fa = std::fabs(x[a]), fb = std::fabs(x[b]);
    return fa > fb || (fa == fb && a < b);
  });
  idx.resize(k);
  std::sort(idx.begin(), idx.end());
  return idx;
}

/// Nearest entry of a sorted codebook.
inline uint8_t nearest(const std::vector<float>& lut, float u) {
  size_t lo = 0, hi = lut.size() - 1;
  while (lo < hi) {  // first index whose upper midpoint >= u
    const size_t mid = (lo + hi) / 2;
    if (u <= 0.5f * (lut[mid] + lut[mid + 1])) hi = mid; else lo = mid + 1;
  }
  return static_cast<uint8_t>(lo);
}

/// Quantizes X [n, D] into p: uniform (lut null; x ~ s * code + z, s = range / (2^b - 1), z = min)
/// or non-uniform (x ~ s * lut[code] + z, s = range / 2, z = midpoint; u clamped to [-1, 1]).
/// Ranges per channel (PerChannel) or per (token, channel group) (PerToken), excluding entries
/// flagged in `skip`. tokbits: bits per token (mixed, PerToken only) or empty (all `bits`).
/// X may be modified? no: const. cscale (f32, D) divides X first when given.
void quantize_part(const float* X, size_t n, size_t D, QPart& p, QPart::Axis axis, size_t cgroup, int bits,
                   const std::vector<uint8_t>& tokbits, const std::vector<float>* lut, const std::vector<uint8_t>* skip) {
  p.axis = axis;
  p.cgroup = axis == QPart::PerToken ? cgroup : 0;
  p.nonuniform = lut != nullptr;
  const bool mixed = !tokbits.empty();
  p.bits = mixed ? 0 : bits;
  auto bits_of = [&](size_t t) { return mixed ? static_cast<int>(tokbits[t]) : bits; };
  auto skipped = [&](size_t i) { return skip && (*skip)[i]; };
  // ranges
  auto make_sz = [&](float mn, float mx, int b, uint16_t& s, uint16_t& z) {
    if (mn > mx) mn = mx = 0.f;  // nothing to cover
    if (lut) {
      s = h16((mx - mn) * 0.5f);
      z = h16((mx + mn) * 0.5f);
    } else {
      s = h16((mx - mn) / static_cast<float>((1u << b) - 1u));
      z = h16(mn);
    }
  };
  if (axis == QPart::PerChannel) {
    p.scale.assign(D, 0);
    p.zero.assign(D, 0);
    for (size_t c = 0; c < D; ++c) {
      float mn = std::numeric_limits<float>::infinity(), mx = -mn;
      for (size_t t = 0; t < n; ++t)
        if (!skipped(t * D + c)) {
          mn = std::min(mn, X[t * D + c]);
          mx = std::max(mx, X[t * D + c]);
        }
      make_sz(mn, mx, bits, p.scale[c], p.zero[c]);
    }
  } else {
    const size_t ng = D / cgroup;
    p.scale.assign(n * ng, 0);
    p.zero.assign(n * ng, 0);
    for (size_t t = 0; t < n; ++t)
      for (size_t g = 0; g < ng; ++g) {
        float mn = std::numeric_limits<float>::infinity(), mx = -mn;
        for (size_t c = g * cgroup; c < (g + 1) * cgroup; ++c)
          if (!skipped(t * D + c)) {
            mn = std::min(mn, X[t * D + c]);
            mx = std::max(mx, X[t * D + c]);
          }
        make_sz(mn, mx, bits_of(t), p.scale[t * ng + g], p.zero[t * ng + g]);
      }
  }
  // codes
  size_t total = 0;
  if (mixed) {
    p.off.resize(n);
    p.tbits = tokbits;
    for (size_t t = 0; t < n; ++t) {
      p.off[t] = static_cast<uint32_t>(total);
      total += row_bytes(D, bits_of(t));
    }
  } else {
    total = n * row_bytes(D, bits);
  }
  p.codes.assign(total + kPad, 0);
  std::vector<uint8_t> code(D);
  for (size_t t = 0; t < n; ++t) {
    const int b = bits_of(t);
    const float qmax = static_cast<float>((1u << b) - 1u);
    for (size_t c = 0; c < D; ++c) {
      const size_t si = axis == QPart::PerChannel ? c : t * (D / cgroup) + c / cgroup;
      const float s = f32h(p.scale[si]), z = f32h(p.zero[si]);
      const float x = X[t * D + c];
      if (lut) {
        float u = s > 0 ? (x - z) / s : 0.f;
        u = std::min(1.f, std::max(-1.f, u));
        code[c] = nearest(*lut, u);
      } else {
        float q = s > 0 ? std::nearbyint((x - z) / s) : 0.f;
        q = std::min(qmax, std::max(0.f, q));
        code[c] = static_cast<uint8_t>(q);
      }
    }
    pack_codes(code.data(), D, b, p.codes.data() + (mixed ? p.off[t] : t * row_bytes(D, b)));
  }
}

/// Rank-r approximation of R [n, D] by subspace (power) iteration: R ~ A B^T, A [n, r] orthonormal.
void low_rank(const float* R, size_t n, size_t D, size_t r, int iters, uint64_t seed, std::vector<float>& A,
              std::vector<float>& B) {
  A.assign(n * r, 0.f);
  B.assign(D * r, 0.f);
  Rng rng(seed);
  for (auto& b : B) b = static_cast<float>(rng.next_normal());
  for (int it = 0; it < std::max(1, iters); ++it) {
    // A = R B
    for (size_t t = 0; t < n; ++t)
      for (size_t j = 0; j < r; ++j) {
        double s = 0;
        for (size_t c = 0; c < D; ++c) s += static_cast<double>(R[t * D + c]) * B[c * r + j];
        A[t * r + j] = static_cast<float>(s);
      }
    // modified Gram-Schmidt on A's columns
    for (size_t j = 0; j < r; ++j) {
      for (size_t i = 0; i < j; ++i) {
        double d = 0;
        for (size_t t = 0; t < n; ++t) d += static_cast<double>(A[t * r + i]) * A[t * r + j];
        for (size_t t = 0; t < n; ++t) A[t * r + j] -= static_cast<float>(d) * A[t * r + i];
      }
      double nn = 0;
      for (size_t t = 0; t < n; ++t) nn += static_cast<double>(A[t * r + j]) * A[t * r + j];
      const double inv = nn > 1e-30 ? 1.0 / std::sqrt(nn) : 0.0;
      for (size_t t = 0; t < n; ++t) A[t * r + j] = static_cast<float>(A[t * r + j] * inv);
    }
    // B = R^T A
    for (size_t c = 0; c < D; ++c)
      for (size_t j = 0; j < r; ++j) {
        double s = 0;
        for (size_t t = 0; t < n; ++t) s += static_cast<double>(R[t * D + c]) * A[t * r + j];
        B[c * r + j] = static_cast<float>(s);
      }
  }
}

inline float dot(const float* a, const float* b, size_t D) {
  __m256 s = _mm256_setzero_ps();
  for (size_t c = 0; c < D; c += 8) s = _mm256_fmadd_ps(_mm256_loadu_ps(a + c), _mm256_loadu_ps(b + c), s);
  return simd::hsum8(s);
}

inline bool visible(int32_t kp, int32_t qp, size_t window) {
  return kp <= qp && (window == 0 || static_cast<int64_t>(kp) > static_cast<int64_t>(qp) - static_cast<int64_t>(window));
}

/// One online-softmax step (Milakov & Gimelshein 2018) for the gj (<= 8) score rows s[jj * ss + x]
/// of a tile, x < n: each row's running max m[jj] and sum l[jj] are updated, the row becomes
/// p = exp(s - m'), zero from n to n8 and wherever s is -inf (a key the query cannot see), and
/// corr[jj] = exp(m - m') rescales what the row accumulated before. A row with no visible key keeps
/// m and l, is zeroed and gets corr 1.
inline void online_softmax(float* s, size_t ss, size_t n, size_t gj, float* m, float* l, float* corr) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  const size_t n8 = (n + 7) / 8 * 8;
  const __m256 ninf = _mm256_set1_ps(kNegInf);
  for (size_t jj = 0; jj < gj; ++jj) {
    float* sr = s + jj * ss;
    for (size_t x = n; x < n8; ++x) sr[x] = kNegInf;
    __m256 mx8 = ninf;
    for (size_t x = 0; x < n8; x += 8) mx8 = _mm256_max_ps(mx8, _mm256_loadu_ps(sr + x));
    const float mt = simd::hmax8(mx8);
    if (mt == kNegInf) {
      corr[jj] = 1.f;
      for (size_t x = 0; x < n8; ++x) sr[x] = 0.f;
      continue;
    }
    const float mn = std::max(m[jj], mt);
    corr[jj] = std::exp(m[jj] - mn);
    const __m256 mv = _mm256_set1_ps(mn);
    __m256 lsum = _mm256_setzero_ps();
    for (size_t x = 0; x < n8; x += 8) {
      const __m256 sv = _mm256_loadu_ps(sr + x);
      const __m256 pv = _mm256_andnot_ps(_mm256_cmp_ps(sv, ninf, _CMP_EQ_OQ), simd::exp8(_mm256_sub_ps(sv, mv)));
      _mm256_storeu_ps(sr + x, pv);
      lsum = _mm256_add_ps(lsum, pv);
    }
    m[jj] = mn;
    l[jj] = l[jj] * corr[jj] + simd::hsum8(lsum);
  }
}

// ---- fused decode tiles --------------------------------------------------------------------------
// The bandwidth path of attend(): a tile whose tokens are all visible to a query is read straight
// from its storage (f16 rows via F16C, or uniform b-bit codes unpacked in registers), never through
// an f32 copy. Keys quantized per channel: q.k = sum_c (q_c s_c) code_c + sum_c q_c z_c, so the
// per-channel scales are folded into q once per block and query head (q' = q * s) and the zero
// points give one dot q.z; the inner loop is code x float. Values quantized per token (groups of
// cgroup channels): sum_x p_x (s_xg code_xc + z_xg) = sum_x (p_x s_xg) code_xc + sum_x p_x z_xg, so
// the probabilities are scaled per token and the zero term is one sum per channel group. Every code
// row is unpacked once for the GJ query heads of the GQA group.

/// One of K or V of a tile: rows of `stride` bytes; S/Z null (f16 rows) or the scales and zero
/// points: K the block's f16 per-channel arrays ([D], converted while q' is formed), V f32
/// [D / cgroup][n8] (token-major f16 transposed by v_scales_by_group).
struct FusedPart {
  const uint8_t* rows = nullptr;
  size_t stride = 0;
  const void* S = nullptr;
  const void* Z = nullptr;
};

/// Per-token value scales (f16 [n][ng]) as f32 [ng][n8] (tokens padded to n8 with 0): with ng 1, 2
/// or 4 eight tokens at a time by F16C and an in-register transpose, otherwise element by element.
void v_scales_by_group(const uint16_t* src, size_t n, size_t ng, size_t n8, float* dst) {
  size_t x = 0;
  if (ng == 1) {
    for (; x + 8 <= n; x += 8) _mm256_storeu_ps(dst + x, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + x))));
  } else if (ng == 2) {
    for (; x + 8 <= n; x += 8) {
      const __m256 r0 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * x)));
      const __m256 r1 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * x + 8)));
      // [t0g0 t0g1 t1g0 t1g1 ..]: even lanes are group 0, odd lanes group 1
      const __m256 g0 = _mm256_shuffle_ps(r0, r1, _MM_SHUFFLE(2, 0, 2, 0));
      const __m256 g1 = _mm256_shuffle_ps(r0, r1, _MM_SHUFFLE(3, 1, 3, 1));
      _mm256_storeu_ps(dst + x, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(g0), 0xD8)));
      _mm256_storeu_ps(dst + n8 + x, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(g1), 0xD8)));
    }
  } else if (ng == 4) {
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (; x + 8 <= n; x += 8) {
      const uint16_t* p = src + 4 * x;
      const __m256 r0 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));       // t0, t1
      const __m256 r1 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 8)));   // t2, t3
      const __m256 r2 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16)));  // t4, t5
      const __m256 r3 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 24)));  // t6, t7
      // 4x4 transposes in each 128-bit half: lanes [t0 t2 t4 t6 | t1 t3 t5 t7] of each group
      const __m256 a0 = _mm256_unpacklo_ps(r0, r1), a1 = _mm256_unpacklo_ps(r2, r3);
      const __m256 a2 = _mm256_unpackhi_ps(r0, r1), a3 = _mm256_unpackhi_ps(r2, r3);
      const __m256 g[4] = {_mm256_shuffle_ps(a0, a1, _MM_SHUFFLE(1, 0, 1, 0)), _mm256_shuffle_ps(a0, a1, _MM_SHUFFLE(3, 2, 3, 2)),
                           _mm256_shuffle_ps(a2, a3, _MM_SHUFFLE(1, 0, 1, 0)), _mm256_shuffle_ps(a2, a3, _MM_SHUFFLE(3, 2, 3, 2))};
      for (size_t gg = 0; gg < 4; ++gg) _mm256_storeu_ps(dst + gg * n8 + x, _mm256_permutevar8x32_ps(g[gg], order));
    }
  }
  for (size_t gg = 0; gg < ng; ++gg) {
    for (size_t t = x; t < n; ++t) dst[gg * n8 + t] = f32h(src[t * ng + gg]);
    for (size_t t = n; t < n8; ++t) dst[gg * n8 + t] = 0.f;
  }
}

/// 8 raw values (f16 when BITS == 0, f32 when BITS == kTileF32, else the unsigned codes) of a row at channel c (c % 8 == 0).
template <int BITS>
inline __m256 load8(const uint8_t* row, size_t c) {
  if constexpr (BITS == 0) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * c)));
  } else if constexpr (BITS == kTileF32) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + c);
  } else if constexpr (BITS == 8) {
    return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(row + c))));
  } else {
    const __m256i sh = _mm256_setr_epi32(0, BITS, 2 * BITS, 3 * BITS, 4 * BITS, 5 * BITS, 6 * BITS, 7 * BITS);
    return load8_codes(row, c, BITS, sh, _mm256_set1_epi32((1 << BITS) - 1));
  }
}

/// Prefetches the n rows of a fused part into L1 (the V rows of a tile are read channel chunk by
/// channel chunk, a strided pattern whose first pass would otherwise wait on every line).
inline void prefetch_rows(const FusedPart& P, size_t n) {
  const char* b = reinterpret_cast<const char*>(P.rows);
  const size_t bytes = n * P.stride;
  for (size_t o = 0; o < bytes; o += 64) _mm_prefetch(b + o, _MM_HINT_T0);
}

/// Asks for every array of a block (codes, scales, zero points, side stores) to be brought into L1.
inline void prefetch_block(const QBlock& b) {
  auto lines = [](const void* p, size_t bytes) {
    const char* c = static_cast<const char*>(p);
    for (size_t o = 0; o < bytes; o += 64) _mm_prefetch(c + o, _MM_HINT_T0);
  };
  for (const QPart* p : {&b.k, &b.v}) {
    lines(p->codes.data(), p->codes.size());
    lines(p->scale.data(), p->scale.size() * sizeof(uint16_t));
    lines(p->zero.data(), p->zero.size() * sizeof(uint16_t));
    lines(p->off.data(), p->off.size() * sizeof(uint32_t));
    lines(p->tbits.data(), p->tbits.size());
    lines(p->cscale.data(), p->cscale.size() * sizeof(uint16_t));
    lines(p->sp_idx.data(), p->sp_idx.size() * sizeof(uint32_t));
    lines(p->sp_val.data(), p->sp_val.size() * sizeof(uint16_t));
    lines(p->lr_a.data(), p->lr_a.size() * sizeof(uint16_t));
    lines(p->lr_b.data(), p->lr_b.size() * sizeof(uint16_t));
  }
}

/// Lane i = sum of the 8 lanes of a[i].
inline __m256 hsum8x8(const __m256* a) {
  const __m256 t0 = _mm256_hadd_ps(a[0], a[1]), t1 = _mm256_hadd_ps(a[2], a[3]);
  const __m256 t2 = _mm256_hadd_ps(a[4], a[5]), t3 = _mm256_hadd_ps(a[6], a[7]);
  const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

/// A zeroed float buffer whose data is 64-byte aligned: the kernels' 32-byte loads and stores of
/// scratch rows would otherwise straddle cache lines (a split access each, and a split store does
/// not forward to the loads that follow it, which costs the q' rows written per block ~30%).
class AlignedFloats {
 public:
  void resize(size_t n) {
    raw_.assign(n + 16, 0.f);
    p_ = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(raw_.data()) + 63) & ~uintptr_t{63});
    n_ = n;
  }
  explicit AlignedFloats(size_t n = 0) { resize(n); }
  float* data() { return p_; }
  float* begin() { return p_; }
  float* end() { return p_ + n_; }
  float& operator[](size_t i) { return p_[i]; }
  size_t size() const { return n_; }

 private:
  std::vector<float> raw_;
  float* p_ = nullptr;
  size_t n_ = 0;
};

/// Scratch of one attention task.
struct FusedScratch {
  AlignedFloats qs, qsplit, qnat, red, pv, zt;
  AlignedFloats qbf, pbf;  // bf16 q' rows and P' pairs (bf16_dot), as raw 32-bit words
  const float* qsplit_of = nullptr;  // the q rows qsplit holds (one attend call: q is constant)
  size_t qsplit_rows = 0;
  int qsplit_order = 0;  // and their nibble-split order (even_at)
  const float* qnat_of = nullptr;  // the same for qnat (natural channel order, f16 rows)
  size_t qnat_rows = 0;
  void size(size_t T, size_t D) {
    qs.resize(8 * D);
    qnat.resize(8 * D);
    qsplit.resize(8 * D);
    red.resize(8 * (T + 8) * 8);
    pv.resize(8 * (T + 8) * D / 8);  // at most D / 8 channel groups per token
    zt.resize(8 * D / 8);
    qbf.resize(8 * D / 2);
    pbf.resize(8 * (T + 8) * D / 16);
  }
};

// 4-bit codes, nibble-split: 8 bytes hold channels c .. c + 16; zero-extended to 32-bit lanes,
// (x & 15) are the even channels and (x >> 4) the odd ones, so two ops make 16 codes and the q'
// rows and value accumulators are used in that order (even/odd per 16 channels).
/// Even (lo) and odd (hi) channels of 16 natural-order floats a (0..7), b (8..15).
inline void split16r(__m256 a, __m256 b, __m256& ev, __m256& od) {
  ev = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0))), 0xD8));
  od = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1))), 0xD8));
}
/// Even (lo) and odd (hi) channels of 16 natural-order floats at p.
inline void split16(const float* p, __m256& ev, __m256& od) {
  const __m256 a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 8);
  ev = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0))), 0xD8));
  od = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1))), 0xD8));
}
/// Inverse of split16: 16 natural-order floats to p.
inline void merge16(__m256 ev, __m256 od, float* p) {
  const __m256 lo = _mm256_unpacklo_ps(ev, od), hi = _mm256_unpackhi_ps(ev, od);
  _mm256_storeu_ps(p, _mm256_permute2f128_ps(lo, hi, 0x20));
  _mm256_storeu_ps(p + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
}
inline void load16_nib(const uint8_t* row, size_t c, __m256& ev, __m256& od) {
  const __m256i x = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(row + c / 2)));
  ev = _mm256_cvtepi32_ps(_mm256_and_si256(x, _mm256_set1_epi32(15)));
  od = _mm256_cvtepi32_ps(_mm256_srli_epi32(x, 4));
}

/// Partial dot products (8 lanes) of GJ query rows with the keys of tokens x .. x + TX into red.
template <int BITS, int GJ, size_t TX>
inline void score_rows(const FusedPart& K, size_t x, size_t n8, size_t D, const float* qk, float* red) {
  __m256 a[TX][GJ];
  #pragma GCC unroll 16
  for (size_t tx = 0; tx < TX; ++tx)
    #pragma GCC unroll 16
    for (int jj = 0; jj < GJ; ++jj) a[tx][jj] = _mm256_setzero_ps();
  if constexpr (BITS == -4) {
    for (size_t c = 0; c < D; c += 16)
      #pragma GCC unroll 16
      for (size_t tx = 0; tx < TX; ++tx) {
        __m256 ev, od;
        load16_nib(K.rows + (x + tx) * K.stride, c, ev, od);
        #pragma GCC unroll 16
        for (int jj = 0; jj < GJ; ++jj) {
          const float* qj = qk + static_cast<size_t>(jj) * D + c;
          a[tx][jj] = _mm256_fmadd_ps(_mm256_loadu_ps(qj), ev, a[tx][jj]);
          a[tx][jj] = _mm256_fmadd_ps(_mm256_loadu_ps(qj + 8), od, a[tx][jj]);
        }
      }
  } else {
    for (size_t c = 0; c < D; c += 8)
      #pragma GCC unroll 16
      for (size_t tx = 0; tx < TX; ++tx) {
        const __m256 kv = load8<BITS>(K.rows + (x + tx) * K.stride, c);
        #pragma GCC unroll 16
        for (int jj = 0; jj < GJ; ++jj)
          a[tx][jj] = _mm256_fmadd_ps(_mm256_loadu_ps(qk + static_cast<size_t>(jj) * D + c), kv, a[tx][jj]);
      }
  }
  #pragma GCC unroll 16
  for (size_t tx = 0; tx < TX; ++tx)
    #pragma GCC unroll 16
    for (int jj = 0; jj < GJ; ++jj) _mm256_storeu_ps(red + (static_cast<size_t>(jj) * n8 + x + tx) * 8, a[tx][jj]);
}

/// Offset of the even channels of the 16-channel chunk at c in a nibble-split row (its odd channels
/// follow SPLIT / 2 later): SPLIT 16 is [even 8 | odd 8] per 16 channels (the 256-bit kernels), 32 is
/// [even 16 | odd 16] per 32 channels (the 512-bit kernels, one 16-byte load per 32 codes).
template <int SPLIT>
inline size_t even_at(size_t c) {
  return SPLIT == 16 ? c : (c & ~size_t{31}) + ((c & 16) >> 1);
}

/// The query rows the score kernels multiply the keys by: q' = q * s (the block's per-channel key
/// scales folded in, in the nibble-split order SPLIT for 4-bit codes) with bias[jj] = q.z, or f16 /
/// f32 rows' q copied to aligned scratch (bias 0).
template <int BITS, int GJ, int SPLIT>
const float* fold_key_scales(const FusedPart& K, size_t D, const float* q0, float* bias, FusedScratch& w) {
  #pragma GCC unroll 16
  for (int jj = 0; jj < GJ; ++jj) bias[jj] = 0.f;
  if (K.S && BITS == -4) {
    // nibble order: q split into even/odd channels once per attend call and query rows, the
    // scales split once per block, so q' = q_split * s_split needs no per-head shuffles
    if (w.qsplit_of != q0 || w.qsplit_rows != static_cast<size_t>(GJ) || w.qsplit_order != SPLIT) {
      for (size_t r = 0; r < static_cast<size_t>(GJ); ++r)
        for (size_t c = 0; c < D; c += 16) {
          __m256 ev, od;
          split16(q0 + r * D + c, ev, od);
          _mm256_storeu_ps(w.qsplit.data() + r * D + even_at<SPLIT>(c), ev);
          _mm256_storeu_ps(w.qsplit.data() + r * D + even_at<SPLIT>(c) + SPLIT / 2, od);
        }
      w.qsplit_of = q0;
      w.qsplit_rows = static_cast<size_t>(GJ);
      w.qsplit_order = SPLIT;
    }
    const float* qsp = w.qsplit.data();
    float* qs = w.qs.data();
    const uint16_t* S16 = static_cast<const uint16_t*>(K.S);
    const uint16_t* Z16 = static_cast<const uint16_t*>(K.Z);
    __m256 bv[GJ];
    #pragma GCC unroll 16
    for (int jj = 0; jj < GJ; ++jj) bv[jj] = _mm256_setzero_ps();
    for (size_t c = 0; c < D; c += 16) {
      const __m256 s0 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(S16 + c)));
      const __m256 s1 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(S16 + c + 8)));
      const __m256 z0 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(Z16 + c)));
      const __m256 z1 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(Z16 + c + 8)));
      __m256 se, so;
      split16r(s0, s1, se, so);
      #pragma GCC unroll 16
      for (int jj = 0; jj < GJ; ++jj) {
        const size_t o = static_cast<size_t>(jj) * D + even_at<SPLIT>(c), oo = o + SPLIT / 2;
        _mm256_storeu_ps(qs + o, _mm256_mul_ps(_mm256_loadu_ps(qsp + o), se));
        _mm256_storeu_ps(qs + oo, _mm256_mul_ps(_mm256_loadu_ps(qsp + oo), so));
        const float* qn = q0 + static_cast<size_t>(jj) * D + c;
        bv[jj] = _mm256_fmadd_ps(_mm256_loadu_ps(qn), z0, bv[jj]);
        bv[jj] = _mm256_fmadd_ps(_mm256_loadu_ps(qn + 8), z1, bv[jj]);
      }
    }
    #pragma GCC unroll 16
    for (int jj = 0; jj < GJ; ++jj) bias[jj] = simd::hsum8(bv[jj]);
    return qs;
  }
  if (!K.S) {
    // f16 rows: the q rows copied once per attend call into 64-byte aligned scratch (the caller's
    // rows may straddle cache lines on every 32-byte load of the inner loop)
    if (w.qnat_of != q0 || w.qnat_rows != static_cast<size_t>(GJ)) {
      std::memcpy(w.qnat.data(), q0, static_cast<size_t>(GJ) * D * sizeof(float));
      w.qnat_of = q0;
      w.qnat_rows = static_cast<size_t>(GJ);
    }
    return w.qnat.data();
  }
  float* qs = w.qs.data();
  const uint16_t* S16 = static_cast<const uint16_t*>(K.S);
  const uint16_t* Z16 = static_cast<const uint16_t*>(K.Z);
  __m256 bv[GJ];
  #pragma GCC unroll 16
  for (int jj = 0; jj < GJ; ++jj) bv[jj] = _mm256_setzero_ps();
  for (size_t c = 0; c < D; c += 8) {  // each f16 scale / zero converted once for the GJ heads
    const __m256 sv = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(S16 + c)));
    const __m256 zv = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(Z16 + c)));
    #pragma GCC unroll 16
    for (int jj = 0; jj < GJ; ++jj) {
      const __m256 qv = _mm256_loadu_ps(q0 + static_cast<size_t>(jj) * D + c);
      _mm256_storeu_ps(qs + static_cast<size_t>(jj) * D + c, _mm256_mul_ps(qv, sv));
      bv[jj] = _mm256_fmadd_ps(qv, zv, bv[jj]);
    }
  }
  #pragma GCC unroll 16
  for (int jj = 0; jj < GJ; ++jj) bias[jj] = simd::hsum8(bv[jj]);
  return qs;
}

/// s[jj * ss + x] = scale * (sum of the 8 partial sums red[jj][x] + bias[jj]) for x < n8 (red zeroed past n).
template <int GJ>
void finish_scores(size_t n, size_t n8, float* red, float scale, const float* bias, float* s, size_t ss) {
  #pragma GCC unroll 16
  for (int jj = 0; jj < GJ; ++jj) {
    for (size_t x = n; x < n8; ++x) _mm256_storeu_ps(red + (static_cast<size_t>(jj) * n8 + x) * 8, _mm256_setzero_ps());
    const __m256 sc = _mm256_set1_ps(scale), bs = _mm256_set1_ps(scale * bias[jj]);
    for (size_t x0 = 0; x0 < n8; x0 += 8) {
      __m256 v8[8];
      #pragma GCC unroll 16
      for (int i = 0; i < 8; ++i) v8[i] = _mm256_loadu_ps(red + (static_cast<size_t>(jj) * n8 + x0 + static_cast<size_t>(i)) * 8);
      _mm256_storeu_ps(s + static_cast<size_t>(jj) * ss + x0, _mm256_fmadd_ps(hsum8x8(v8), sc, bs));
    }
  }
}

/// Scores of GJ query heads (q0: GJ rows of D) against the n keys of a tile into s[jj * ss + x]
/// (scaled by `scale`); every key visible.
template <int BITS, int GJ>
void fused_scores(const FusedPart& K, size_t n, size_t D, const float* q0, float scale, float* s, size_t ss,
                  FusedScratch& w) {
  float bias[GJ];
  const float* qk = fold_key_scales<BITS, GJ, 16>(K, D, q0, bias, w);
  const size_t n8 = (n + 7) / 8 * 8;
  float* red = w.red.data();
  // TX tokens at a time so that few query heads still give independent FMA chains
  constexpr size_t TX = GJ <= 2 ? 4 : GJ == 3 ? 3 : GJ == 4 ? 2 : 1;
  size_t x = 0;
  for (; x + TX <= n; x += TX) score_rows<BITS, GJ, TX>(K, x, n8, D, qk, red);
  for (; x < n; ++x) score_rows<BITS, GJ, 1>(K, x, n8, D, qk, red);
  finish_scores<GJ>(n, n8, red, scale, bias, s, ss);
}

/// Channels c0 .. c0 + 8 CB of fused_pv.
template <int BITS, int GJ, size_t CB>
inline void pv_chunks(const FusedPart& V, size_t n, size_t n8, size_t D, size_t c0, size_t cgroup, size_t ng,
                      const float* pv, const float* zt, const float* corr, float* acc) {
  __m256 a[GJ][CB];
  size_t gi[CB];
  #pragma GCC unroll 16
  for (size_t ci = 0; ci < CB; ++ci) {
    gi[ci] = V.S ? (c0 + 8 * ci) / cgroup : 0;
    #pragma GCC unroll 16
    for (int jj = 0; jj < GJ; ++jj)
      a[jj][ci] = _mm256_mul_ps(_mm256_loadu_ps(acc + static_cast<size_t>(jj) * D + c0 + 8 * ci), _mm256_set1_ps(corr[jj]));
  }
  for (size_t x = 0; x < n; ++x) {
    const uint8_t* row = V.rows + x * V.stride;
    #pragma GCC unroll 16
    for (size_t ci = 0; ci < CB; ++ci) {
      const __m256 vv = load8<BITS>(row, c0 + 8 * ci);
      #pragma GCC unroll 16
      for (int jj = 0; jj < GJ; ++jj)
        a[jj][ci] = _mm256_fmadd_ps(_mm256_broadcast_ss(pv + (static_cast<size_t>(jj) * ng + gi[ci]) * n8 + x), vv, a[jj][ci]);
    }
  }
  #pragma GCC unroll 16
  for (size_t ci = 0; ci < CB; ++ci)
    #pragma GCC unroll 16
    for (int jj = 0; jj < GJ; ++jj) {
      __m256 r = a[jj][ci];
      if (V.S) r = _mm256_add_ps(r, _mm256_broadcast_ss(zt + static_cast<size_t>(jj) * ng + gi[ci]));
      _mm256_storeu_ps(acc + static_cast<size_t>(jj) * D + c0 + 8 * ci, r);
    }
}

/// Channels c0 .. c0 + 16 CB of fused_pv for nibble-split 4-bit codes (cgroup % 16 == 0).
template <int GJ, size_t CB>
inline void pv_chunks_nib(const FusedPart& V, size_t n, size_t n8, size_t D, size_t c0, size_t cgroup, size_t ng,
                          const float* pv, const float* zt, const float* corr, float* acc) {
  __m256 ae[GJ][CB], ao[GJ][CB];
  size_t gi[CB];
  #pragma GCC unroll 16
  for (size_t ci = 0; ci < CB; ++ci) {
    gi[ci] = (c0 + 16 * ci) / cgroup;
    #pragma GCC unroll 16
    for (int jj = 0; jj < GJ; ++jj) {
      split16(acc + static_cast<size_t>(jj) * D + c0 + 16 * ci, ae[jj][ci], ao[jj][ci]);
      ae[jj][ci] = _mm256_mul_ps(ae[jj][ci], _mm256_set1_ps(corr[jj]));
      ao[jj][ci] = _mm256_mul_ps(ao[jj][ci], _mm256_set1_ps(corr[jj]));
    }
  }
  for (size_t x = 0; x < n; ++x) {
    const uint8_t* row = V.rows + x * V.stride;
    #pragma GCC unroll 16
    for (size_t ci = 0; ci < CB; ++ci) {
      __m256 ev, od;
      load16_nib(row, c0 + 16 * ci, ev, od);
      #pragma GCC unroll 16
      for (int jj = 0; jj < GJ; ++jj) {
        const __m256 pb = _mm256_broadcast_ss(pv + (static_cast<size_t>(jj) * ng + gi[ci]) * n8 + x);
        ae[jj][ci] = _mm256_fmadd_ps(pb, ev, ae[jj][ci]);
        ao[jj][ci] = _mm256_fmadd_ps(pb, od, ao[jj][ci]);
      }
    }
  }
  #pragma GCC unroll 16
  for (size_t ci = 0; ci < CB; ++ci)
    #pragma GCC unroll 16
    for (int jj = 0; jj < GJ; ++jj) {
      const __m256 z = _mm256_broadcast_ss(zt + static_cast<size_t>(jj) * ng + gi[ci]);
      merge16(_mm256_add_ps(ae[jj][ci], z), _mm256_add_ps(ao[jj][ci], z), acc + static_cast<size_t>(jj) * D + c0 + 16 * ci);
    }
}

/// The probabilities the P V kernels multiply the value rows by: w.pv [jj][g][x] (x padded to n8)
/// = p scaled by the token's group scale, w.zt [jj][g] = sum_x p z (f16 rows: pv = p); returns the
/// number of value groups.
template <int GJ>
size_t scale_probs(const FusedPart& V, size_t n, size_t D, size_t cgroup, const float* p, size_t ss, FusedScratch& w) {
  const size_t ng = V.S ? D / cgroup : 1;
  const size_t n8 = (n + 7) / 8 * 8;
  float* pv = w.pv.data();
  float* zt = w.zt.data();
  if (V.S) {
    // V.S / V.Z are [g][n8] here (zero-padded), so both loops run over 8 tokens at a time
    const float* VS = static_cast<const float*>(V.S);
    const float* VZ = static_cast<const float*>(V.Z);
    for (int jj = 0; jj < GJ; ++jj)
      for (size_t g = 0; g < ng; ++g) {
        const float* pj = p + static_cast<size_t>(jj) * ss;
        float* o = pv + (static_cast<size_t>(jj) * ng + g) * n8;
        __m256 z = _mm256_setzero_ps();
        for (size_t x = 0; x < n8; x += 8) {
          const __m256 pp = _mm256_loadu_ps(pj + x);
          _mm256_storeu_ps(o + x, _mm256_mul_ps(pp, _mm256_loadu_ps(VS + g * n8 + x)));
          z = _mm256_fmadd_ps(pp, _mm256_loadu_ps(VZ + g * n8 + x), z);
        }
        zt[static_cast<size_t>(jj) * ng + g] = simd::hsum8(z);
      }
  } else {
    for (int jj = 0; jj < GJ; ++jj) std::memcpy(pv + static_cast<size_t>(jj) * n8, p + static_cast<size_t>(jj) * ss, n8 * sizeof(float));
  }
  return ng;
}

/// acc[jj * D + c] = acc * corr[jj] + sum_x p[jj * ss + x] v_x[c] for the GJ heads.
template <int BITS, int GJ>
void fused_pv(const FusedPart& V, size_t n, size_t D, size_t cgroup, const float* p, size_t ss, const float* corr,
              float* acc, FusedScratch& w) {
  const size_t ng = scale_probs<GJ>(V, n, D, cgroup, p, ss, w);
  const size_t n8 = (n + 7) / 8 * 8;
  const float* pv = w.pv.data();
  const float* zt = w.zt.data();
  // CB channel chunks at a time so that few query heads still give independent FMA chains
  if constexpr (BITS == -4) {
    constexpr size_t CB = GJ == 1 ? 4 : GJ == 2 ? 2 : 1;
    size_t c = 0;
    for (; c + 16 * CB <= D; c += 16 * CB) pv_chunks_nib<GJ, CB>(V, n, n8, D, c, cgroup, ng, pv, zt, corr, acc);
    for (; c < D; c += 16) pv_chunks_nib<GJ, 1>(V, n, n8, D, c, cgroup, ng, pv, zt, corr, acc);
  } else {
    constexpr size_t CB = GJ == 1 ? 8 : GJ == 2 ? 4 : GJ <= 4 ? 2 : 1;
    size_t c = 0;
    for (; c + 8 * CB <= D; c += 8 * CB) pv_chunks<BITS, GJ, CB>(V, n, n8, D, c, cgroup, ng, pv, zt, corr, acc);
    for (; c < D; c += 8) pv_chunks<BITS, GJ, 1>(V, n, n8, D, c, cgroup, ng, pv, zt, corr, acc);
  }
}

// ---- 512-bit fused kernels ---------------------------------------------------------------------
// The same tiles on AVX-512 CPUs (checked at run time; the build targets x86-64-v3, so these
// functions carry their own target and are reached only after the check). With several query heads
// per KV head the fused kernels are bound by FMA throughput, not by bytes: each code is unpacked once
// and multiplied GJ times. Cores with a full-width 512-bit FMA (AMD Zen 5, Intel server cores) issue
// twice the multiply-adds per cycle of 256-bit code, which is what lets a GQA group cost little more
// than one head. 16 channels per vector (32 for 4-bit nibble-split codes, in the SPLIT 32 order).
#define TERSOR_KV_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq")))
// GCC 12's AVX-512 intrinsics pass a self-initialised "undefined" operand that its own
// uninitialized-use analysis flags once inlined (GCC bug 105593, fixed in 13): silenced here only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

/// 16 raw values of a row at channel c (c % 16 == 0), as load8.
template <int BITS>
TERSOR_KV_AVX512 inline __m512 load16(const uint8_t* row, size_t c) {
  if constexpr (BITS == 0) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * c)));
  } else if constexpr (BITS == kTileF32) {
    return _mm512_loadu_ps(reinterpret_cast<const float*>(row) + c);
  } else if constexpr (BITS == 8) {
    return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + c))));
  } else if constexpr (BITS == 1 || BITS == 2) {
    // 16 codes in one 32-bit word (rows end in kPad slack bytes)
    uint32_t wd;
    std::memcpy(&wd, row + (c / 8) * static_cast<size_t>(BITS), 4);
    const __m512i sh = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                          _mm512_set1_epi32(BITS));
    return _mm512_cvtepi32_ps(
        _mm512_and_si512(_mm512_srlv_epi32(_mm512_set1_epi32(static_cast<int>(wd)), sh), _mm512_set1_epi32((1 << BITS) - 1)));
  } else {
    return _mm512_insertf32x8(_mm512_zextps256_ps512(load8<BITS>(row, c)), load8<BITS>(row, c + 8), 1);
  }
}

/// 32 nibble-split 4-bit codes of a row at channel c (c % 32 == 0): even channels in ev, odd in od.
TERSOR_KV_AVX512 inline void load32_nib(const uint8_t* row, size_t c, __m512& ev, __m512& od) {
  const __m512i x = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + c / 2)));
  ev = _mm512_cvtepi32_ps(_mm512_and_si512(x, _mm512_set1_epi32(15)));
  od = _mm512_cvtepi32_ps(_mm512_srli_epi32(x, 4));
}

/// a[jj] += q_jj . k for the GJ query rows at q (row stride D) and one vector k of a key row.
template <int GJ>
TERSOR_KV_AVX512 inline void fma_heads_z(const float* q, size_t D, __m512 k, __m512* a) {
  #pragma GCC unroll 16
  for (int jj = 0; jj < GJ; ++jj) a[jj] = _mm512_fmadd_ps(_mm512_loadu_ps(q + static_cast<size_t>(jj) * D), k, a[jj]);
}

/// exp of 16 lanes: simd::exp8's clamping, range reduction and polynomial on 512-bit vectors.
TERSOR_KV_AVX512 inline __m512 exp16(__m512 x) {
  using namespace simd::cephes_exp;
  x = _mm512_min_ps(_mm512_set1_ps(89.0f), _mm512_max_ps(_mm512_set1_ps(-110.0f), x));
  const __m512 fn = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(fn, _mm512_set1_ps(kLn2Hi), x);
  r = _mm512_fnmadd_ps(fn, _mm512_set1_ps(kLn2Lo), r);
  __m512 p = _mm512_set1_ps(kP0);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP1));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP2));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP5));
  const __m512 y = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
  // y 2^n by one scalef (exp8 builds 2^n from two exponent fields so that both factors stay normal;
  // scalef rounds once, like exp8's exact first product and rounded second)
  return _mm512_scalef_ps(y, fn);
}

/// The mask of lanes x0 + i < n.
TERSOR_KV_AVX512 inline __mmask16 lanes_below(size_t x0, size_t n) {
  return n >= x0 + 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << (n - x0)) - 1u);
}

// The scratch rows these kernels read were stored moments before by the previous step; a load
// forwards from the store buffer only when it matches a plain store, so whole vectors go unmasked
// and only a row's tail is masked.
/// p[0 .. 16) with lanes from x0 + i >= n set to `fill`.
TERSOR_KV_AVX512 inline __m512 load_below(const float* p, size_t x0, size_t n, __m512 fill) {
  return n >= x0 + 16 ? _mm512_loadu_ps(p) : _mm512_mask_loadu_ps(fill, lanes_below(x0, n), p);
}
/// Stores the lanes of v with x0 + i < n to p.
TERSOR_KV_AVX512 inline void store_below(float* p, size_t x0, size_t n, __m512 v) {
  if (n >= x0 + 16)
    _mm512_storeu_ps(p, v);
  else
    _mm512_mask_storeu_ps(p, lanes_below(x0, n), v);
}

/// online_softmax on 512-bit vectors; the heads' corrections are one vector exp.
TERSOR_KV_AVX512 void online_softmax_z(float* s, size_t ss, size_t n, size_t gj, float* m, float* l, float* corr) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  const __m512 ninf = _mm512_set1_ps(kNegInf);
  const size_t n8 = (n + 7) / 8 * 8;
  // lane jj: the tile's max of row jj (kept in a register: scalar stores read back as one vector
  // would stall store forwarding)
  __m512 mtile = ninf;
  for (size_t jj = 0; jj < gj; ++jj) {
    const float* sr = s + jj * ss;
    __m512 mx = ninf;
    for (size_t x = 0; x < n; x += 16) mx = _mm512_max_ps(mx, load_below(sr + x, x, n, ninf));
    mtile = _mm512_mask_mov_ps(mtile, static_cast<__mmask16>(1u << jj), _mm512_set1_ps(_mm512_reduce_max_ps(mx)));
  }
  // m, l and corr are read and written lane by lane (the callers use them as scalars), and from
  // whole-vector stores, so every access forwards
  const __mmask16 heads = static_cast<__mmask16>((1u << gj) - 1u);
  __m512 mold = ninf;
  for (size_t jj = 0; jj < gj; ++jj) mold = _mm512_mask_mov_ps(mold, static_cast<__mmask16>(1u << jj), _mm512_set1_ps(m[jj]));
  const __m512 mnew = _mm512_max_ps(mold, mtile);
  // corr 1 for rows without a visible key, 0 for rows that had none before (m = -inf)
  const __mmask16 live = _mm512_cmp_ps_mask(mtile, ninf, _CMP_NEQ_OQ) & heads;
  const __mmask16 had = _mm512_cmp_ps_mask(mold, ninf, _CMP_NEQ_OQ) & live;
  const __m512 cr = _mm512_mask_blend_ps(live, _mm512_set1_ps(1.f),
                                         _mm512_maskz_mov_ps(had, exp16(_mm512_maskz_sub_ps(had, mold, mnew))));
  alignas(64) float mn[16], crs[16];
  _mm512_store_ps(mn, mnew);
  _mm512_store_ps(crs, cr);
  for (size_t jj = 0; jj < gj; ++jj) {
    float* sr = s + jj * ss;
    corr[jj] = crs[jj];
    if (!((live >> jj) & 1u)) {
      std::fill(sr, sr + n8, 0.f);
      continue;
    }
    m[jj] = mn[jj];
    const __m512 mv = _mm512_permutexvar_ps(_mm512_set1_epi32(static_cast<int>(jj)), mnew);
    __m512 sum = _mm512_setzero_ps();
    for (size_t x = 0; x < n8; x += 16) {
      const __m512 sv = load_below(sr + x, x, n, ninf);
      const __m512 p = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(sv, ninf, _CMP_NEQ_OQ), exp16(_mm512_sub_ps(sv, mv)));
      store_below(sr + x, x, n8, p);
      sum = _mm512_add_ps(sum, p);
    }
    l[jj] = l[jj] * crs[jj] + _mm512_reduce_add_ps(sum);
  }
}

/// 16 floats at p read as two 8-float halves (each token's partial sums in red were one 256-bit store).
TERSOR_KV_AVX512 inline __m512 load2x8(const float* p) {
  return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(p)), _mm256_loadu_ps(p + 8), 1);
}

/// finish_scores on 512-bit vectors: 16 tokens' 8 partial sums at a time, summed by two in-lane
/// transposes (lane 4 k + i ends up holding token 4 i + k, put back in order by one permute).
template <int GJ>
TERSOR_KV_AVX512 void finish_scores_z(size_t n, size_t n8, float* red, float scale, const float* bias, float* s, size_t ss) {
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  const __m512 sc = _mm512_set1_ps(scale);
  #pragma GCC unroll 16
  for (int jj = 0; jj < GJ; ++jj) {
    float* rj = red + static_cast<size_t>(jj) * n8 * 8;
    for (size_t x = n; x < n8; ++x) _mm256_storeu_ps(rj + x * 8, _mm256_setzero_ps());
    const __m512 bs = _mm512_set1_ps(scale * bias[jj]);
    size_t x0 = 0;
    for (; x0 + 16 <= n8; x0 += 16) {
      // e[i]: tokens 4 i .. 4 i + 3, 4 partial sums each (the two halves of each token's 8 added)
      __m512 e[4];
      #pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) {
        const __m512 a = load2x8(rj + (x0 + 4 * static_cast<size_t>(i)) * 8);
        const __m512 b = load2x8(rj + (x0 + 4 * static_cast<size_t>(i) + 2) * 8);
        e[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
      }
      // per 128-bit lane k: [e0, e1, e2, e3] of its token, each the sum of its 4 partials
      const __m512 t0 = _mm512_add_ps(_mm512_unpacklo_ps(e[0], e[1]), _mm512_unpackhi_ps(e[0], e[1]));
      const __m512 t1 = _mm512_add_ps(_mm512_unpacklo_ps(e[2], e[3]), _mm512_unpackhi_ps(e[2], e[3]));
      const __m512 u = _mm512_add_ps(_mm512_shuffle_ps(t0, t1, _MM_SHUFFLE(1, 0, 1, 0)), _mm512_shuffle_ps(t0, t1, _MM_SHUFFLE(3, 2, 3, 2)));
      _mm512_storeu_ps(s + static_cast<size_t>(jj) * ss + x0, _mm512_fmadd_ps(_mm512_permutexvar_ps(order, u), sc, bs));
    }
    if (x0 < n8) {
      __m256 v8[8];
      #pragma GCC unroll 8
      for (int i = 0; i < 8; ++i) v8[i] = _mm256_loadu_ps(rj + (x0 + static_cast<size_t>(i)) * 8);
      _mm256_storeu_ps(s + static_cast<size_t>(jj) * ss + x0,
                       _mm256_fmadd_ps(hsum8x8(v8), _mm512_castps512_ps256(sc), _mm512_castps512_ps256(bs)));
    }
  }
}

/// scale_probs on 512-bit vectors.
template <int GJ>
TERSOR_KV_AVX512 size_t scale_probs_z(const FusedPart& V, size_t n, size_t D, size_t cgroup, const float* p, size_t ss,
                                      FusedScratch& w) {
  if (!V.S) return scale_probs<GJ>(V, n, D, cgroup, p, ss, w);
  const size_t ng = D / cgroup;
  const size_t n8 = (n + 7) / 8 * 8;
  const float* VS = static_cast<const float*>(V.S);
  const float* VZ = static_cast<const float*>(V.Z);
  float* pv = w.pv.data();
  const __m512 zero = _mm512_setzero_ps();
  for (int jj = 0; jj < GJ; ++jj) {
    const float* pj = p + static_cast<size_t>(jj) * ss;
    for (size_t g = 0; g < ng; ++g) {
      float* o = pv + (static_cast<size_t>(jj) * ng + g) * n8;
      __m512 z = zero;
      for (size_t x = 0; x < n8; x += 16) {
        const __m512 pp = load_below(pj + x, x, n8, zero);
        store_below(o + x, x, n8, _mm512_mul_ps(pp, load_below(VS + g * n8 + x, x, n8, zero)));
        z = _mm512_fmadd_ps(pp, load_below(VZ + g * n8 + x, x, n8, zero), z);
      }
      w.zt[static_cast<size_t>(jj) * ng + g] = _mm512_reduce_add_ps(z);
    }
  }
  return ng;
}

/// The 16-lane partial sums a[tx][jj] of tokens x .. x + TX folded to the 8 lanes red keeps per
/// (head, token); ACC: added to what red holds.
template <int GJ, size_t TX, bool ACC = false>
TERSOR_KV_AVX512 inline void store_red_z(const __m512 (&a)[TX][GJ], size_t n8, size_t x, float* red) {
  #pragma GCC unroll 16
  for (size_t tx = 0; tx < TX; ++tx)
    #pragma GCC unroll 16
    for (int jj = 0; jj < GJ; ++jj) {
      float* r = red + (static_cast<size_t>(jj) * n8 + x + tx) * 8;
      __m256 v = _mm256_add_ps(_mm512_castps512_ps256(a[tx][jj]), _mm512_extractf32x8_ps(a[tx][jj], 1));
      if constexpr (ACC) v = _mm256_add_ps(_mm256_loadu_ps(r), v);
      _mm256_storeu_ps(r, v);
    }
}

/// Tokens a pass of the 512-bit score kernels with GJ heads: 8+ independent accumulators (FMA
/// latency 4, two per cycle) in at most 16 registers.
template <int GJ>
constexpr size_t score_tokens_z = GJ == 1 ? 8 : GJ == 2 ? 4 : GJ == 3 ? 3 : 2;

/// score_rows with 16-lane accumulators (folded to 8 lanes into red).
template <int BITS, int GJ, size_t TX>
TERSOR_KV_AVX512 inline void score_rows_z(const FusedPart& K, size_t x, size_t n8, size_t D, const float* qk, float* red) {
  __m512 a[TX][GJ];
  #pragma GCC unroll 16
  for (size_t tx = 0; tx < TX; ++tx)
    #pragma GCC unroll 16
    for (int jj = 0; jj < GJ; ++jj) a[tx][jj] = _mm512_setzero_ps();
  if constexpr (BITS == -4) {
    for (size_t c = 0; c < D; c += 32)
      #pragma GCC unroll 16
      for (size_t tx = 0; tx < TX; ++tx) {
        __m512 ev, od;
        load32_nib(K.rows + (x + tx) * K.stride, c, ev, od);
        #pragma GCC unroll 16
        for (int jj = 0; jj < GJ; ++jj) {
          const float* qj = qk + static_cast<size_t>(jj) * D + c;
          a[tx][jj] = _mm512_fmadd_ps(_mm512_loadu_ps(qj), ev, a[tx][jj]);
          a[tx][jj] = _mm512_fmadd_ps(_mm512_loadu_ps(qj + 16), od, a[tx][jj]);
        }
      }
  } else {
    for (size_t c = 0; c < D; c += 16)
      #pragma GCC unroll 16
      for (size_t tx = 0; tx < TX; ++tx) {
        const __m512 kv = load16<BITS>(K.rows + (x + tx) * K.stride, c);
        fma_heads_z<GJ>(qk + c, D, kv, a[tx]);
      }
  }
  store_red_z<GJ, TX>(a, n8, x, red);
}

/// TX rows of 4-bit nibble-split codes from token x, channels c .. c + 32 NC, against GJ q' rows
/// held in registers (qe / qo: the even / odd channels of each 32-channel chunk), folded into red as
/// score_rows_z (ACC: added to what red holds).
template <int GJ, size_t TX, size_t NC, bool ACC>
TERSOR_KV_AVX512 inline __attribute__((always_inline)) void score_rows_regq_z(const FusedPart& K, size_t x, size_t c, size_t n8,
                                                                               const __m512 (&qe)[GJ][NC],
                                                                               const __m512 (&qo)[GJ][NC], float* red) {
  __m512 a[TX][GJ];
  #pragma GCC unroll 16
  for (size_t tx = 0; tx < TX; ++tx)
    #pragma GCC unroll 16
    for (int jj = 0; jj < GJ; ++jj) a[tx][jj] = _mm512_setzero_ps();
  #pragma GCC unroll 8
  for (size_t ci = 0; ci < NC; ++ci)
    #pragma GCC unroll 16
    for (size_t tx = 0; tx < TX; ++tx) {
      __m512 ev, od;
      load32_nib(K.rows + (x + tx) * K.stride, c + 32 * ci, ev, od);
      #pragma GCC unroll 16
      for (int jj = 0; jj < GJ; ++jj) {
        a[tx][jj] = _mm512_fmadd_ps(qe[jj][ci], ev, a[tx][jj]);
        a[tx][jj] = _mm512_fmadd_ps(qo[jj][ci], od, a[tx][jj]);
      }
    }
  store_red_z<GJ, TX, ACC>(a, n8, x, red);
}

/// The score rows of a tile of 4-bit nibble-split codes over channels c .. c + 32 NC of head_dim D,
/// with those channels of the GJ q' rows in registers for the whole tile (2 GJ NC <= 16 vectors;
/// ACC: added to red). score_rows_z reads q' from memory with every FMA, a load per FMA, which with
/// four query heads leaves the load ports, not the FMA units, the bound.
template <int GJ, size_t NC, bool ACC>
TERSOR_KV_AVX512 void score_tile_regq_z(const FusedPart& K, size_t n, size_t n8, size_t D, size_t c, const float* qk,
                                        float* red) {
  static_assert(2 * GJ * NC <= 16, "q' rows must fit in half the vector registers");
  __m512 qe[GJ][NC], qo[GJ][NC];
  #pragma GCC unroll 16
  for (int jj = 0; jj < GJ; ++jj)
    #pragma GCC unroll 8
    for (size_t ci = 0; ci < NC; ++ci) {
      qe[jj][ci] = _mm512_loadu_ps(qk + static_cast<size_t>(jj) * D + c + 32 * ci);
      qo[jj][ci] = _mm512_loadu_ps(qk + static_cast<size_t>(jj) * D + c + 32 * ci + 16);
    }
  constexpr size_t TX = score_tokens_z<GJ>;
  size_t x = 0;
  for (; x + TX <= n; x += TX) score_rows_regq_z<GJ, TX, NC, ACC>(K, x, c, n8, qe, qo, red);
  for (; x < n; ++x) score_rows_regq_z<GJ, 1, NC, ACC>(K, x, c, n8, qe, qo, red);
}

/// The score rows of a tile with the q' rows in registers where they fit (4-bit nibble-split codes,
/// up to four heads): all 128 channels at once with up to two heads, else 64 channels a pass with
/// the passes' partial sums added in red; false (nothing done) elsewhere. n4096, best of 1000: d64
/// GQA 4 0.239 -> 0.213 ms, d128 GQA 4 0.39 -> 0.369 ms, GQA 1 0.195 -> 0.191 ms.
template <int BITS, int GJ>
TERSOR_KV_AVX512 bool scores_regq_z(const FusedPart& K, size_t n, size_t n8, size_t D, const float* qk, float* red) {
  if constexpr (BITS != -4 || GJ > 4) {
    return false;
  } else {
    if constexpr (GJ <= 2) {
      if (D == 128) {
        score_tile_regq_z<GJ, 4, false>(K, n, n8, D, 0, qk, red);
        return true;
      }
    }
    if (D % 64 != 0) return false;
    score_tile_regq_z<GJ, 2, false>(K, n, n8, D, 0, qk, red);
    for (size_t c = 64; c < D; c += 64) score_tile_regq_z<GJ, 2, true>(K, n, n8, D, c, qk, red);
    return true;
  }
}

/// fused_scores on 512-bit vectors (D % 16 == 0; % 32 for BITS -4).
template <int BITS, int GJ>
TERSOR_KV_AVX512 void fused_scores_z(const FusedPart& K, size_t n, size_t D, const float* q0, float scale, float* s,
                                     size_t ss, FusedScratch& w) {
  float bias[GJ];
  const float* qk = fold_key_scales<BITS, GJ, 32>(K, D, q0, bias, w);
  const size_t n8 = (n + 7) / 8 * 8;
  float* red = w.red.data();
  if (!scores_regq_z<BITS, GJ>(K, n, n8, D, qk, red)) {
    constexpr size_t TX = score_tokens_z<GJ>;
    size_t x = 0;
    for (; x + TX <= n; x += TX) score_rows_z<BITS, GJ, TX>(K, x, n8, D, qk, red);
    for (; x < n; ++x) score_rows_z<BITS, GJ, 1>(K, x, n8, D, qk, red);
  }
  finish_scores_z<GJ>(n, n8, red, scale, bias, s, ss);
}

/// pv_chunks on 512-bit vectors: channels c0 .. c0 + 16 CB (cgroup % 16 == 0).
template <int BITS, int GJ, size_t CB>
TERSOR_KV_AVX512 inline void pv_chunks_z(const FusedPart& V, size_t n, size_t n8, size_t D, size_t c0, size_t cgroup,
                                         size_t ng, const float* pv, const float* zt, const float* corr, float* acc) {
  __m512 a[GJ][CB];
  size_t gi[CB];
  #pragma GCC unroll 16
  for (size_t ci = 0; ci < CB; ++ci) {
    gi[ci] = V.S ? (c0 + 16 * ci) / cgroup : 0;
    #pragma GCC unroll 16
    for (int jj = 0; jj < GJ; ++jj)
      a[jj][ci] = _mm512_mul_ps(_mm512_loadu_ps(acc + static_cast<size_t>(jj) * D + c0 + 16 * ci), _mm512_set1_ps(corr[jj]));
  }
  for (size_t x = 0; x < n; ++x) {
    const uint8_t* row = V.rows + x * V.stride;
    #pragma GCC unroll 16
    for (size_t ci = 0; ci < CB; ++ci) {
      const __m512 vv = load16<BITS>(row, c0 + 16 * ci);
      #pragma GCC unroll 16
      for (int jj = 0; jj < GJ; ++jj)
        a[jj][ci] = _mm512_fmadd_ps(_mm512_set1_ps(pv[(static_cast<size_t>(jj) * ng + gi[ci]) * n8 + x]), vv, a[jj][ci]);
    }
  }
  #pragma GCC unroll 16
  for (size_t ci = 0; ci < CB; ++ci)
    #pragma GCC unroll 16
    for (int jj = 0; jj < GJ; ++jj) {
      __m512 r = a[jj][ci];
      if (V.S) r = _mm512_add_ps(r, _mm512_set1_ps(zt[static_cast<size_t>(jj) * ng + gi[ci]]));
      _mm512_storeu_ps(acc + static_cast<size_t>(jj) * D + c0 + 16 * ci, r);
    }
}

/// The value accumulators of GJ heads for channels c0 .. c0 + 32 CB in nibble-split order (ae: even
/// channels, ao: odd), scaled by the softmax correction corr[jj].
template <int GJ, size_t CB>
TERSOR_KV_AVX512 inline void nib_acc_load_z(const float* acc, size_t D, size_t c0, const float* corr, __m512 (&ae)[GJ][CB],
                                            __m512 (&ao)[GJ][CB]) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  #pragma GCC unroll 16
  for (size_t ci = 0; ci < CB; ++ci)
    #pragma GCC unroll 16
    for (int jj = 0; jj < GJ; ++jj) {
      const float* a = acc + static_cast<size_t>(jj) * D + c0 + 32 * ci;
      const __m512 lo = _mm512_loadu_ps(a), hi = _mm512_loadu_ps(a + 16), cr = _mm512_set1_ps(corr[jj]);
      ae[jj][ci] = _mm512_mul_ps(_mm512_permutex2var_ps(lo, even, hi), cr);
      ao[jj][ci] = _mm512_mul_ps(_mm512_permutex2var_ps(lo, odd, hi), cr);
    }
}

/// Stores nibble-split accumulators back in channel order, each plus its value group's zero-point
/// term zt[jj * ng + gi[ci]].
template <int GJ, size_t CB>
TERSOR_KV_AVX512 inline void nib_acc_store_z(float* acc, size_t D, size_t c0, const float* zt, size_t ng, const size_t* gi,
                                             const __m512 (&ae)[GJ][CB], const __m512 (&ao)[GJ][CB]) {
  // lanes (even k, odd k) back to channels (2k, 2k + 1)
  const __m512i lo_idx = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi_idx = _mm512_add_epi32(lo_idx, _mm512_set1_epi32(8));
  #pragma GCC unroll 16
  for (size_t ci = 0; ci < CB; ++ci)
    #pragma GCC unroll 16
    for (int jj = 0; jj < GJ; ++jj) {
      const __m512 z = _mm512_set1_ps(zt[static_cast<size_t>(jj) * ng + gi[ci]]);
      const __m512 e = _mm512_add_ps(ae[jj][ci], z), o = _mm512_add_ps(ao[jj][ci], z);
      float* a = acc + static_cast<size_t>(jj) * D + c0 + 32 * ci;
      _mm512_storeu_ps(a, _mm512_permutex2var_ps(e, lo_idx, o));
      _mm512_storeu_ps(a + 16, _mm512_permutex2var_ps(e, hi_idx, o));
    }
}

/// pv_chunks_nib on 512-bit vectors: channels c0 .. c0 + 32 CB of nibble-split codes (cgroup % 32 == 0).
template <int GJ, size_t CB>
TERSOR_KV_AVX512 inline void pv_chunks_nib_z(const FusedPart& V, size_t n, size_t n8, size_t D, size_t c0, size_t cgroup,
                                             size_t ng, const float* pv, const float* zt, const float* corr, float* acc) {
  __m512 ae[GJ][CB], ao[GJ][CB];
  size_t gi[CB];
  #pragma GCC unroll 16
  for (size_t ci = 0; ci < CB; ++ci) gi[ci] = (c0 + 32 * ci) / cgroup;
  nib_acc_load_z<GJ, CB>(acc, D, c0, corr, ae, ao);
  for (size_t x = 0; x < n; ++x) {
    const uint8_t* row = V.rows + x * V.stride;
    #pragma GCC unroll 16
    for (size_t ci = 0; ci < CB; ++ci) {
      __m512 ev, od;
      load32_nib(row, c0 + 32 * ci, ev, od);
      #pragma GCC unroll 16
      for (int jj = 0; jj < GJ; ++jj) {
        const __m512 pb = _mm512_set1_ps(pv[(static_cast<size_t>(jj) * ng + gi[ci]) * n8 + x]);
        ae[jj][ci] = _mm512_fmadd_ps(pb, ev, ae[jj][ci]);
        ao[jj][ci] = _mm512_fmadd_ps(pb, od, ao[jj][ci]);
      }
    }
  }
  nib_acc_store_z<GJ, CB>(acc, D, c0, zt, ng, gi, ae, ao);
}

/// Channels c .. D of fused_pv_z, CB chunks a pass while they fit, then fewer.
template <int BITS, int GJ, size_t CB>
TERSOR_KV_AVX512 void pv_span_z(const FusedPart& V, size_t n, size_t n8, size_t D, size_t c, size_t cgroup, size_t ng,
                                const float* pv, const float* zt, const float* corr, float* acc) {
  constexpr size_t W = BITS == -4 ? 32 : 16;
  for (; c + W * CB <= D; c += W * CB) {
    if constexpr (BITS == -4)
      pv_chunks_nib_z<GJ, CB>(V, n, n8, D, c, cgroup, ng, pv, zt, corr, acc);
    else
      pv_chunks_z<BITS, GJ, CB>(V, n, n8, D, c, cgroup, ng, pv, zt, corr, acc);
  }
  if constexpr (CB > 1) pv_span_z<BITS, GJ, CB / 2>(V, n, n8, D, c, cgroup, ng, pv, zt, corr, acc);
}

/// fused_pv on 512-bit vectors (D % 16 == 0 and cgroup % 16 == 0; % 32 for BITS -4).
template <int BITS, int GJ>
TERSOR_KV_AVX512 void fused_pv_z(const FusedPart& V, size_t n, size_t D, size_t cgroup, const float* p, size_t ss,
                                 const float* corr, float* acc, FusedScratch& w) {
  const size_t ng = scale_probs_z<GJ>(V, n, D, cgroup, p, ss, w);
  const size_t n8 = (n + 7) / 8 * 8;
  // CB channel chunks at a time so that few query heads still give 8+ independent FMA chains
  constexpr size_t CB = BITS == -4 ? (GJ == 1 ? 4 : GJ == 2 ? 2 : 1) : (GJ == 1 ? 8 : GJ == 2 ? 4 : GJ <= 4 ? 2 : 1);
  pv_span_z<BITS, GJ, CB>(V, n, n8, D, 0, cgroup, ng, w.pv.data(), w.zt.data(), corr, acc);
}

#pragma GCC diagnostic pop

/// GEAR's low-rank and sparse terms of a fused tile (Kang et al. 2024: X ~ D(Q_b(X - S)) + A B^T + S,
/// see compress_block): q.x = q.D(Q)_x + A_x.(B^T q) + sum over the outliers of row x of q_c s, so
/// after the fused scores each head adds scale (A_x.u + sparse) with u = B^T q (rank dots); and
/// sum_x p_x x = fused P V + (sum_x p_x A_x) B^T + sum over outliers p_x s e_c, added after the fused
/// P V. A (token-major f16) is transposed to [rank][n8] and B ([D][rank]) to [rank][D] once per
/// block for the whole query group.
class FusedLowRankSparse {
 public:
  /// Converts the block's factors; false when it has neither term (plain KIVI-style block).
  bool prepare(const QBlock& b, size_t D) {
    k_ = &b.k;
    v_ = &b.v;
    n_ = b.n;
    n8_ = (n_ + 7) / 8 * 8;
    D_ = D;
    if (b.k.rank == 0 && b.v.rank == 0 && b.k.sp_idx.empty() && b.v.sp_idx.empty()) return false;
    factors(b.k, kAT_, kBT_);
    factors(b.v, vAT_, vBT_);
    sparse_f32(b.k, ksp_, kst_, ksc_);
    sparse_f32(b.v, vsp_, vst_, vsc_);
    return true;
  }
  /// s[jj * ss + x] += scale * (A_x.u_jj + sum_{(x, c, val)} q_jj,c val) for the gj heads at q0.
  void scores(const float* q0, size_t gj, float scale, float* s, size_t ss) {
    const size_t D = D_, r = k_->rank;
    u_.resize(r);
    for (size_t jj = 0; jj < gj; ++jj) {
      const float* qr = q0 + jj * D;
      float* sr = s + jj * ss;
      for (size_t j = 0; j < r; ++j) u_[j] = dot(qr, kBT_.data() + j * D, D);
      if (r > 0)
        for (size_t x = 0; x < n8_; x += 8) {
          __m256 a = _mm256_setzero_ps();
          for (size_t j = 0; j < r; ++j) a = _mm256_fmadd_ps(_mm256_loadu_ps(kAT_.data() + j * n8_ + x), _mm256_set1_ps(u_[j]), a);
          _mm256_storeu_ps(sr + x, _mm256_fmadd_ps(a, _mm256_set1_ps(scale), _mm256_loadu_ps(sr + x)));
        }
      for (size_t e = 0; e < ksp_.size(); ++e) sr[kst_[e]] += scale * qr[ksc_[e]] * ksp_[e];
    }
  }
  /// acc[jj * D + c] += sum_j (sum_x p_x A_xj) B_cj + sum_{(x, c, val)} p_x val for the gj heads
  /// (p: the tile's probabilities, 0 past n).
  void pv(const float* p, size_t ss, size_t gj, float* acc) {
    const size_t D = D_, r = v_->rank;
    u_.resize(r);
    for (size_t jj = 0; jj < gj; ++jj) {
      const float* pj = p + jj * ss;
      float* ar = acc + jj * D;
      for (size_t j = 0; j < r; ++j) u_[j] = dot(pj, vAT_.data() + j * n8_, n8_);
      if (r > 0)
        for (size_t c = 0; c < D; c += 8) {
          __m256 a = _mm256_loadu_ps(ar + c);
          for (size_t j = 0; j < r; ++j) a = _mm256_fmadd_ps(_mm256_set1_ps(u_[j]), _mm256_loadu_ps(vBT_.data() + j * D + c), a);
          _mm256_storeu_ps(ar + c, a);
        }
      for (size_t e = 0; e < vsp_.size(); ++e) ar[vsc_[e]] += pj[vst_[e]] * vsp_[e];
    }
  }

 private:
  void factors(const QPart& p, AlignedFloats& AT, AlignedFloats& BT) {
    const size_t r = p.rank;
    if (r == 0) return;
    if (AT.size() < r * n8_) AT.resize(r * n8_);
    if (BT.size() < r * D_) BT.resize(r * D_);
    v_scales_by_group(p.lr_a.data(), n_, r, n8_, AT.data());
    v_scales_by_group(p.lr_b.data(), D_, r, D_, BT.data());  // B [D][r] has the layout of [token][group]
  }
  /// The outliers as (token, channel, value), split once per block (not per head).
  void sparse_f32(const QPart& p, std::vector<float>& val, std::vector<uint32_t>& tok, std::vector<uint32_t>& ch) const {
    val.resize(p.sp_val.size());
    tok.resize(p.sp_val.size());
    ch.resize(p.sp_val.size());
    f16_to_f32(p.sp_val.data(), val.data(), val.size());
    const double inv = 1.0 / static_cast<double>(D_);  // (i + 0.5) / D is >= 0.5 / D from an integer: exact floor
    for (size_t e = 0; e < val.size(); ++e) {
      const uint32_t t = static_cast<uint32_t>((static_cast<double>(p.sp_idx[e]) + 0.5) * inv);
      tok[e] = t;
      ch[e] = p.sp_idx[e] - t * static_cast<uint32_t>(D_);
    }
  }
  const QPart* k_ = nullptr;
  const QPart* v_ = nullptr;
  size_t n_ = 0, n8_ = 0, D_ = 0;
  AlignedFloats kAT_, kBT_, vAT_, vBT_;
  std::vector<float> u_, ksp_, vsp_;
  std::vector<uint32_t> kst_, ksc_, vst_, vsc_;
};

// ---- fused ZipCache tiles -----------------------------------------------------------------------
// ZipCache (He et al. 2024) stores keys divided by per-channel scales cs and quantized per token,
// values per token, one scale s_x and zero point z_x per row, each row at its own width (salient
// tokens at `bits`, the rest at low_bits). So q.k_x = s_x (q * cs).code_x + z_x sum(q * cs), and
// sum_x p_x v_x = sum_x (p_x s_x) code_x + sum_x p_x z_x: the channel scales fold into q once per tile
// and head, the inner loops are code x float as in the KIVI kernels. A row's codes are unpacked by a
// variable shift and mask chosen by its width (no branch per token), once for the GJ heads.

/// The rows of one per-token part: width bits (uniform) or tbits[x] at off[x] (mixed); S, Z: the
/// per-token scale and zero point in f32, zero-padded to a multiple of 8 tokens.
struct ZipRows {
  const uint8_t* codes = nullptr;
  const uint32_t* off = nullptr;
  const uint8_t* tbits = nullptr;
  int bits = 0;
  const float* S = nullptr;
  const float* Z = nullptr;
  int width(size_t x) const { return bits ? bits : tbits[x]; }
  const uint8_t* row(size_t x, size_t D) const { return bits ? codes + x * row_bytes(D, bits) : codes + off[x]; }
};

/// code_shift_mask for widths 1..4, built once: the ZipCache kernels switch width per token, where a
/// vpmulld per token (and per channel chunk in P V) sat on the critical path.
struct ShiftMasks {
  __m256i sh[5], mk[5];
  ShiftMasks() {
    for (int b = 1; b <= 4; ++b) code_shift_mask(b, sh[b], mk[b]);
  }
};
const ShiftMasks& shift_masks() {
  static const ShiftMasks t;
  return t;
}

/// Whether a block's parts have the ZipCache layout the fused kernels take: per-token scales over the
/// whole row (cgroup D) for both, channel scales on the keys only, uniform codes of at most 4 bits
/// (8 codes in one 32-bit word), no sparse or low-rank terms.
bool zip_fusable(const QBlock& b, size_t D) {
  auto part_ok = [&](const QPart& p) {
    if (p.axis != QPart::PerToken || p.cgroup != D || p.nonuniform || p.rank != 0 || !p.sp_idx.empty()) return false;
    if (p.bits) return p.bits >= 1 && p.bits <= 4;
    return std::all_of(p.tbits.begin(), p.tbits.end(), [](uint8_t w) { return w >= 1 && w <= 4; });
  };
  return D % 8 == 0 && part_ok(b.k) && part_ok(b.v) && !b.k.cscale.empty() && b.v.cscale.empty();
}

/// Partial dot products (8 lanes) of GJ heads' q * cs rows with the ZipCache keys of tokens x .. x + TX
/// into red; each token unpacked by the shift and mask of its own width, two chains (even / odd
/// chunks of 8 channels) per token and head.
template <int GJ, size_t TX>
inline void zip_score_rows(const ZipRows& K, size_t x, size_t n8, size_t D, const float* qk, float* red) {
  const ShiftMasks& sm = shift_masks();
  __m256i sh[TX], mk[TX];
  const uint8_t* row[TX];
  int bw[TX];
  __m256 a[TX][GJ][2];
  #pragma GCC unroll 16
  for (size_t tx = 0; tx < TX; ++tx) {
    const int b = bw[tx] = K.width(x + tx);
    sh[tx] = sm.sh[b];
    mk[tx] = sm.mk[b];
    row[tx] = K.row(x + tx, D);
    #pragma GCC unroll 16
    for (int jj = 0; jj < GJ; ++jj) a[tx][jj][0] = a[tx][jj][1] = _mm256_setzero_ps();
  }
  for (size_t c = 0; c < D; c += 16) {
    const bool two = c + 8 < D;
    #pragma GCC unroll 16
    for (size_t tx = 0; tx < TX; ++tx) {
      const __m256 k0 = load8_codes(row[tx], c, bw[tx], sh[tx], mk[tx]);
      const __m256 k1 = two ? load8_codes(row[tx], c + 8, bw[tx], sh[tx], mk[tx]) : _mm256_setzero_ps();
      #pragma GCC unroll 16
      for (int jj = 0; jj < GJ; ++jj) {
        const float* qj = qk + static_cast<size_t>(jj) * D + c;
        a[tx][jj][0] = _mm256_fmadd_ps(_mm256_loadu_ps(qj), k0, a[tx][jj][0]);
        if (two) a[tx][jj][1] = _mm256_fmadd_ps(_mm256_loadu_ps(qj + 8), k1, a[tx][jj][1]);
      }
    }
  }
  #pragma GCC unroll 16
  for (size_t tx = 0; tx < TX; ++tx)
    #pragma GCC unroll 16
    for (int jj = 0; jj < GJ; ++jj)
      _mm256_storeu_ps(red + (static_cast<size_t>(jj) * n8 + x + tx) * 8, _mm256_add_ps(a[tx][jj][0], a[tx][jj][1]));
}

/// The ZipCache scores' query rows: qk = q * cs (the block's channel scales folded in) and
/// qsum[jj] = sum(q * cs), the zero points' factor.
template <int GJ>
void zip_fold_q(const float* cs, size_t D, const float* q0, float* qk, float* qsum) {
  for (int jj = 0; jj < GJ; ++jj) {
    __m256 t = _mm256_setzero_ps();
    for (size_t c = 0; c < D; c += 8) {
      const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(q0 + static_cast<size_t>(jj) * D + c), _mm256_loadu_ps(cs + c));
      _mm256_storeu_ps(qk + static_cast<size_t>(jj) * D + c, v);
      t = _mm256_add_ps(t, v);
    }
    qsum[jj] = simd::hsum8(t);
  }
}

/// s[jj * ss + x] = scale (s_x raw_x + z_x qsum[jj]), raw_x the sum of the 8 partial sums red[jj][x]
/// (red zeroed past n).
template <int GJ>
void zip_finish_scores(const ZipRows& K, size_t n, size_t n8, float* red, float scale, const float* qsum, float* s, size_t ss) {
  for (int jj = 0; jj < GJ; ++jj) {
    for (size_t x = n; x < n8; ++x) _mm256_storeu_ps(red + (static_cast<size_t>(jj) * n8 + x) * 8, _mm256_setzero_ps());
    const __m256 sc = _mm256_set1_ps(scale), qz = _mm256_set1_ps(qsum[jj]);
    for (size_t x0 = 0; x0 < n8; x0 += 8) {
      __m256 v8[8];
      for (int i = 0; i < 8; ++i) v8[i] = _mm256_loadu_ps(red + (static_cast<size_t>(jj) * n8 + x0 + static_cast<size_t>(i)) * 8);
      const __m256 sv = _mm256_fmadd_ps(_mm256_loadu_ps(K.S + x0), hsum8x8(v8), _mm256_mul_ps(_mm256_loadu_ps(K.Z + x0), qz));
      _mm256_storeu_ps(s + static_cast<size_t>(jj) * ss + x0, _mm256_mul_ps(sv, sc));
    }
  }
}

/// Scores of GJ heads (q0: GJ rows of D) against the n keys of a ZipCache tile into s[jj * ss + x],
/// times `scale`; cs: the block's channel scales in f32.
template <int GJ>
void zip_scores(const ZipRows& K, const float* cs, size_t n, size_t D, const float* q0, float scale, float* s, size_t ss,
                FusedScratch& w) {
  float* qk = w.qs.data();
  float qsum[GJ];
  zip_fold_q<GJ>(cs, D, q0, qk, qsum);
  const size_t n8 = (n + 7) / 8 * 8;
  float* red = w.red.data();
  // TX tokens at a time so that one or two heads still keep 8 FMA chains
  constexpr size_t TX = GJ == 1 ? 4 : GJ == 2 ? 2 : 1;
  size_t x = 0;
  for (; x + TX <= n; x += TX) zip_score_rows<GJ, TX>(K, x, n8, D, qk, red);
  for (; x < n; ++x) zip_score_rows<GJ, 1>(K, x, n8, D, qk, red);
  zip_finish_scores<GJ>(K, n, n8, red, scale, qsum, s, ss);
}

/// pw[jj][x] = p_x s_x (the value scales folded into the probabilities, 0 past n) and
/// zsum[jj] = sum_x p_x z_x, the zero points' contribution to every channel.
template <int GJ>
void zip_scale_probs(const ZipRows& V, size_t n8, const float* p, size_t ss, float* pw, float* zsum) {
  for (int jj = 0; jj < GJ; ++jj) {
    const float* pj = p + static_cast<size_t>(jj) * ss;
    __m256 z = _mm256_setzero_ps();
    for (size_t x = 0; x < n8; x += 8) {
      const __m256 pp = _mm256_loadu_ps(pj + x);
      _mm256_storeu_ps(pw + static_cast<size_t>(jj) * n8 + x, _mm256_mul_ps(pp, _mm256_loadu_ps(V.S + x)));
      z = _mm256_fmadd_ps(pp, _mm256_loadu_ps(V.Z + x), z);
    }
    zsum[jj] = simd::hsum8(z);
  }
}

/// acc[jj * D + c] = acc * corr[jj] + sum_x p[jj * ss + x] v_x[c] for the GJ heads of a ZipCache tile
/// (p zero past n).
template <int GJ>
void zip_pv(const ZipRows& V, size_t n, size_t D, const float* p, size_t ss, const float* corr, float* acc, FusedScratch& w) {
  const size_t n8 = (n + 7) / 8 * 8;
  float* pw = w.pv.data();  // [jj][x]: p_x s_x
  float zsum[GJ];
  zip_scale_probs<GJ>(V, n8, p, ss, pw, zsum);
  // CB chunks of 8 channels at a time so that few heads still give independent FMA chains, and each
  // token's width, row and shift are looked up once per CB chunks (GJ x CB <= 8 accumulators)
  constexpr size_t CB = GJ == 1 ? 8 : GJ == 2 ? 4 : GJ <= 4 ? 2 : 1;
  const ShiftMasks& sm = shift_masks();
  for (size_t c0 = 0; c0 < D; c0 += 8 * CB) {
    const size_t cb = std::min(CB, (D - c0) / 8);
    __m256 a[GJ][CB];
    for (int jj = 0; jj < GJ; ++jj)
      for (size_t ci = 0; ci < CB; ++ci)
        a[jj][ci] = ci < cb ? _mm256_mul_ps(_mm256_loadu_ps(acc + static_cast<size_t>(jj) * D + c0 + 8 * ci), _mm256_set1_ps(corr[jj]))
                            : _mm256_setzero_ps();
    for (size_t x = 0; x < n; ++x) {
      const int b = V.width(x);
      const __m256i sh = sm.sh[b], mk = sm.mk[b];
      const uint8_t* row = V.row(x, D);
      for (size_t ci = 0; ci < CB; ++ci) {
        if (ci >= cb) break;
        const __m256 vv = load8_codes(row, c0 + 8 * ci, b, sh, mk);
        for (int jj = 0; jj < GJ; ++jj)
          a[jj][ci] = _mm256_fmadd_ps(_mm256_broadcast_ss(pw + static_cast<size_t>(jj) * n8 + x), vv, a[jj][ci]);
      }
    }
    for (int jj = 0; jj < GJ; ++jj)
      for (size_t ci = 0; ci < cb; ++ci)
        _mm256_storeu_ps(acc + static_cast<size_t>(jj) * D + c0 + 8 * ci, _mm256_add_ps(a[jj][ci], _mm256_set1_ps(zsum[jj])));
  }
}

// ZipCache on 512-bit vectors (D % 16 == 0): 16 codes of a row of width b (<= 4) are two 32-bit
// words (8 codes each, at bytes b c / 8 and b (c + 8) / 8) broadcast to the two halves of a vector,
// shifted lane by lane and masked.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

/// Per-lane shifts ((i % 8) b) and masks of 16-code vectors for widths 1..4, as int32 lanes (loaded
/// inside the AVX-512 kernels; a static of vector type would need AVX-512 to construct).
struct ShiftMasks16 {
  alignas(64) int32_t sh[5][16];
  alignas(64) int32_t mk[5][16];
  ShiftMasks16() {
    for (int b = 0; b <= 4; ++b)
      for (int i = 0; i < 16; ++i) sh[b][i] = (i % 8) * b, mk[b][i] = (1 << b) - 1;
  }
};
const ShiftMasks16& shift_masks16() {
  static const ShiftMasks16 t;
  return t;
}

/// 16 codes of width b of a row at channel c (c % 16 == 0; rows end in kPad slack bytes).
TERSOR_KV_AVX512 inline __m512 load16_codes(const uint8_t* row, size_t c, int b, __m512i sh, __m512i mk) {
  uint32_t w0, w1;
  std::memcpy(&w0, row + (c / 8) * static_cast<size_t>(b), 4);
  std::memcpy(&w1, row + (c / 8 + 1) * static_cast<size_t>(b), 4);
  const __m512i wv = _mm512_mask_set1_epi32(_mm512_set1_epi32(static_cast<int>(w0)), 0xFF00, static_cast<int>(w1));
  return _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srlv_epi32(wv, sh), mk));
}

/// zip_score_rows with 16-lane accumulators (folded to 8 lanes into red).
template <int GJ, size_t TX>
TERSOR_KV_AVX512 inline void zip_score_rows_z(const ZipRows& K, size_t x, size_t n8, size_t D, const float* qk, float* red) {
  const ShiftMasks16& sm = shift_masks16();
  __m512i sh[TX], mk[TX];
  const uint8_t* row[TX];
  int bw[TX];
  __m512 a[TX][GJ];
  #pragma GCC unroll 16
  for (size_t tx = 0; tx < TX; ++tx) {
    const int b = bw[tx] = K.width(x + tx);
    sh[tx] = _mm512_load_si512(sm.sh[b]);
    mk[tx] = _mm512_load_si512(sm.mk[b]);
    row[tx] = K.row(x + tx, D);
    #pragma GCC unroll 16
    for (int jj = 0; jj < GJ; ++jj) a[tx][jj] = _mm512_setzero_ps();
  }
  for (size_t c = 0; c < D; c += 16)
    #pragma GCC unroll 16
    for (size_t tx = 0; tx < TX; ++tx) {
      const __m512 kv = load16_codes(row[tx], c, bw[tx], sh[tx], mk[tx]);
      fma_heads_z<GJ>(qk + c, D, kv, a[tx]);
    }
  store_red_z<GJ, TX>(a, n8, x, red);
}

/// zip_scores on 512-bit vectors.
template <int GJ>
TERSOR_KV_AVX512 void zip_scores_z(const ZipRows& K, const float* cs, size_t n, size_t D, const float* q0, float scale, float* s,
                                   size_t ss, FusedScratch& w) {
  float* qk = w.qs.data();
  float qsum[GJ];
  zip_fold_q<GJ>(cs, D, q0, qk, qsum);
  const size_t n8 = (n + 7) / 8 * 8;
  float* red = w.red.data();
  constexpr size_t TX = score_tokens_z<GJ>;
  size_t x = 0;
  for (; x + TX <= n; x += TX) zip_score_rows_z<GJ, TX>(K, x, n8, D, qk, red);
  for (; x < n; ++x) zip_score_rows_z<GJ, 1>(K, x, n8, D, qk, red);
  zip_finish_scores<GJ>(K, n, n8, red, scale, qsum, s, ss);
}

/// zip_pv on 512-bit vectors: CB chunks of 16 channels a pass.
template <int GJ>
TERSOR_KV_AVX512 void zip_pv_z(const ZipRows& V, size_t n, size_t D, const float* p, size_t ss, const float* corr, float* acc,
                               FusedScratch& w) {
  const size_t n8 = (n + 7) / 8 * 8;
  float* pw = w.pv.data();
  float zsum[GJ];
  zip_scale_probs<GJ>(V, n8, p, ss, pw, zsum);
  constexpr size_t CB = GJ == 1 ? 8 : GJ == 2 ? 4 : GJ <= 4 ? 2 : 1;
  const ShiftMasks16& sm = shift_masks16();
  for (size_t c0 = 0; c0 < D; c0 += 16 * CB) {
    const size_t cb = std::min(CB, (D - c0) / 16);
    __m512 a[GJ][CB];
    #pragma GCC unroll 16
    for (int jj = 0; jj < GJ; ++jj)
      #pragma GCC unroll 16
      for (size_t ci = 0; ci < CB; ++ci)
        a[jj][ci] = ci < cb ? _mm512_mul_ps(_mm512_loadu_ps(acc + static_cast<size_t>(jj) * D + c0 + 16 * ci), _mm512_set1_ps(corr[jj]))
                            : _mm512_setzero_ps();
    for (size_t x = 0; x < n; ++x) {
      const int b = V.width(x);
      const __m512i sh = _mm512_load_si512(sm.sh[b]), mk = _mm512_load_si512(sm.mk[b]);
      const uint8_t* row = V.row(x, D);
      #pragma GCC unroll 16
      for (size_t ci = 0; ci < CB; ++ci) {
        if (ci >= cb) break;
        const __m512 vv = load16_codes(row, c0 + 16 * ci, b, sh, mk);
        #pragma GCC unroll 16
        for (int jj = 0; jj < GJ; ++jj)
          a[jj][ci] = _mm512_fmadd_ps(_mm512_set1_ps(pw[static_cast<size_t>(jj) * n8 + x]), vv, a[jj][ci]);
      }
    }
    #pragma GCC unroll 16
    for (int jj = 0; jj < GJ; ++jj)
      #pragma GCC unroll 16
      for (size_t ci = 0; ci < CB; ++ci)
        if (ci < cb)
          _mm512_storeu_ps(acc + static_cast<size_t>(jj) * D + c0 + 16 * ci, _mm512_add_ps(a[jj][ci], _mm512_set1_ps(zsum[jj])));
  }
}

#pragma GCC diagnostic pop

using ZipScoresFn = void (*)(const ZipRows&, const float*, size_t, size_t, const float*, float, float*, size_t, FusedScratch&);
using ZipPvFn = void (*)(const ZipRows&, size_t, size_t, const float*, size_t, const float*, float*, FusedScratch&);

/// The ZipCache kernel pair for gj heads a pass, on 512-bit vectors when `wide`.
void pick_zip(size_t gj, bool wide, ZipScoresFn& sf, ZipPvFn& pf) {
  with_count_1_to_8(gj, [&](auto heads) {
    constexpr int GJ = static_cast<int>(decltype(heads)::value);
    if (wide)
      sf = &zip_scores_z<GJ>, pf = &zip_pv_z<GJ>;
    else
      sf = &zip_scores<GJ>, pf = &zip_pv<GJ>;
  });
}

// ---- bf16 dot products (KvConfig::bf16_dot) -----------------------------------------------------
// On CPUs with AVX-512 BF16 (vdpbf16ps: 32 bf16 products summed pairwise into 16 f32 lanes, about
// twice the multiply-adds per cycle of an f32 FMA) the 4-bit decode kernels can multiply the codes
// (0..15, exact in bf16, centred to -8..7) by q' and P' rounded to bf16 (8 significant bits, a relative error below
// 2^-9 on each product, accumulated in f32): the opt-in speed/precision trade llama.cpp makes by
// rounding q to 8 bits for quantized caches. A code becomes its bf16 value by one word permute
// (a 32-entry table indexed by the low 5 bits of the zero-extended byte: entry i = bf16((i & 15) - 8)).
#define TERSOR_KV_BF16 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx512bf16")))
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

/// Word i = the bf16 bits of (i & 15) - 8: codes centred on their range, so that the products
/// q' (code - 8) that bf16 rounding perturbs are about half the size of q' code (the 8 sum(q')
/// taken out is added back in f32).
TERSOR_KV_BF16 inline __m512i nibble_bf16_table() {
  alignas(64) static const uint16_t t[32] = {0xc100, 0xc0e0, 0xc0c0, 0xc0a0, 0xc080, 0xc040, 0xc000, 0xbf80,
                                             0x0000, 0x3f80, 0x4000, 0x4040, 0x4080, 0x40a0, 0x40c0, 0x40e0,
                                             0xc100, 0xc0e0, 0xc0c0, 0xc0a0, 0xc080, 0xc040, 0xc000, 0xbf80,
                                             0x0000, 0x3f80, 0x4000, 0x4040, 0x4080, 0x40a0, 0x40c0, 0x40e0};
  return _mm512_load_si512(t);
}

/// Partial scores (8 lanes) of GJ heads (bf16 q' rows qb) against tokens x .. x + TX into red.
template <int GJ, size_t TX>
TERSOR_KV_BF16 inline void score_rows_bf(const FusedPart& K, size_t x, size_t n8, size_t D, const uint16_t* qb, __m512i tbl,
                                         float* red) {
  __m512 a[TX][GJ], b[TX][GJ];
  #pragma GCC unroll 16
  for (size_t tx = 0; tx < TX; ++tx)
    #pragma GCC unroll 16
    for (int jj = 0; jj < GJ; ++jj) a[tx][jj] = b[tx][jj] = _mm512_setzero_ps();
  for (size_t c = 0; c < D; c += 64)
    #pragma GCC unroll 16
    for (size_t tx = 0; tx < TX; ++tx) {
      const __m512i xb = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(K.rows + (x + tx) * K.stride + c / 2)));
      const __m512i lo = _mm512_permutexvar_epi16(xb, tbl), hi = _mm512_permutexvar_epi16(_mm512_srli_epi16(xb, 4), tbl);
      #pragma GCC unroll 16
      for (int jj = 0; jj < GJ; ++jj) {
        const uint16_t* q = qb + static_cast<size_t>(jj) * D + c;
        a[tx][jj] = _mm512_dpbf16_ps(a[tx][jj], reinterpret_cast<__m512bh>(_mm512_loadu_si512(q)), reinterpret_cast<__m512bh>(lo));
        b[tx][jj] = _mm512_dpbf16_ps(b[tx][jj], reinterpret_cast<__m512bh>(_mm512_loadu_si512(q + 32)), reinterpret_cast<__m512bh>(hi));
      }
    }
  #pragma GCC unroll 16
  for (size_t tx = 0; tx < TX; ++tx)
    #pragma GCC unroll 16
    for (int jj = 0; jj < GJ; ++jj) a[tx][jj] = _mm512_add_ps(a[tx][jj], b[tx][jj]);
  store_red_z<GJ, TX>(a, n8, x, red);
}

/// Scores of GJ heads against n keys of 4-bit codes (D % 64 == 0) with q' in bf16: per 64 channels
/// of a row, the even channels' codes (low nibbles) meet q' of the even channels and the odd ones
/// the odd, each a 32-word vector (word i: channel c + 2 i, resp. c + 2 i + 1).
template <int GJ>
TERSOR_KV_BF16 void fused_scores_bf(const FusedPart& K, size_t n, size_t D, const float* q0, float scale, float* s, size_t ss,
                                    FusedScratch& w) {
  float bias[GJ];
  const float* qk = fold_key_scales<4, GJ, 16>(K, D, q0, bias, w);  // natural channel order
  uint16_t* qb = reinterpret_cast<uint16_t*>(w.qbf.data());
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  for (int jj = 0; jj < GJ; ++jj) {
    __m512 qsum = _mm512_setzero_ps();
    for (size_t c = 0; c < D; c += 64) {
      const float* q = qk + static_cast<size_t>(jj) * D + c;
      const __m512 v0 = _mm512_loadu_ps(q), v1 = _mm512_loadu_ps(q + 16), v2 = _mm512_loadu_ps(q + 32), v3 = _mm512_loadu_ps(q + 48);
      qsum = _mm512_add_ps(qsum, _mm512_add_ps(_mm512_add_ps(v0, v1), _mm512_add_ps(v2, v3)));
      // _mm512_cvtne2ps_pbh(a, b): words 0..15 from b, 16..31 from a
      const __m512bh ev = _mm512_cvtne2ps_pbh(_mm512_permutex2var_ps(v2, even, v3), _mm512_permutex2var_ps(v0, even, v1));
      const __m512bh od = _mm512_cvtne2ps_pbh(_mm512_permutex2var_ps(v2, odd, v3), _mm512_permutex2var_ps(v0, odd, v1));
      uint16_t* o = qb + static_cast<size_t>(jj) * D + c;
      _mm512_storeu_si512(o, reinterpret_cast<const __m512i&>(ev));
      _mm512_storeu_si512(o + 32, reinterpret_cast<const __m512i&>(od));
    }
    bias[jj] += 8.f * _mm512_reduce_add_ps(qsum);  // q'.code = q'.(code - 8) + 8 sum(q')
  }
  const __m512i tbl = nibble_bf16_table();
  const size_t n8 = (n + 7) / 8 * 8;
  float* red = w.red.data();
  // two chains (even / odd channels) per token and head: 16+ independent dot-product chains
  constexpr size_t TX = GJ == 1 ? 8 : GJ == 2 ? 4 : GJ == 3 ? 3 : GJ == 4 ? 2 : 1;
  size_t x = 0;
  for (; x + TX <= n; x += TX) score_rows_bf<GJ, TX>(K, x, n8, D, qb, tbl, red);
  for (; x < n; ++x) score_rows_bf<GJ, 1>(K, x, n8, D, qb, tbl, red);
  finish_scores_z<GJ>(n, n8, red, scale, bias, s, ss);
}

/// Channels c0 .. c0 + 32 CB of fused_pv_bf: tokens in pairs (t, t + 1), each 32-bit lane of the
/// code vectors holding one channel's two codes (bytes of the two rows interleaved, then
/// zero-extended and looked up), multiplied by the pair (p'_t, p'_t+1) in bf16.
template <int GJ, size_t CB>
TERSOR_KV_BF16 inline void pv_chunks_bf(const FusedPart& V, size_t n, size_t n2, size_t D, size_t c0, size_t cgroup, size_t ng,
                                        const uint32_t* pp, const float* zt, const float* corr, float* acc) {
  const __m512i tbl = nibble_bf16_table();
  __m512 ae[GJ][CB], ao[GJ][CB];
  size_t gi[CB];
  #pragma GCC unroll 16
  for (size_t ci = 0; ci < CB; ++ci) gi[ci] = (c0 + 32 * ci) / cgroup;
  nib_acc_load_z<GJ, CB>(acc, D, c0, corr, ae, ao);
  for (size_t x = 0; x < n; x += 2) {
    const uint8_t* r0 = V.rows + x * V.stride;
    const uint8_t* r1 = x + 1 < n ? r0 + V.stride : nullptr;
    #pragma GCC unroll 16
    for (size_t ci = 0; ci < CB; ++ci) {
      const size_t o = (c0 + 32 * ci) / 2;
      const __m128i b0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r0 + o));
      const __m128i b1 = r1 ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(r1 + o)) : _mm_setzero_si128();
      const __m512i xb = _mm512_cvtepu8_epi16(_mm256_set_m128i(_mm_unpackhi_epi8(b0, b1), _mm_unpacklo_epi8(b0, b1)));
      const __m512bh ev = reinterpret_cast<__m512bh>(_mm512_permutexvar_epi16(xb, tbl));
      const __m512bh od = reinterpret_cast<__m512bh>(_mm512_permutexvar_epi16(_mm512_srli_epi16(xb, 4), tbl));
      #pragma GCC unroll 16
      for (int jj = 0; jj < GJ; ++jj) {
        const __m512bh pb = reinterpret_cast<__m512bh>(_mm512_set1_epi32(static_cast<int>(pp[(static_cast<size_t>(jj) * ng + gi[ci]) * n2 + x / 2])));
        ae[jj][ci] = _mm512_dpbf16_ps(ae[jj][ci], ev, pb);
        ao[jj][ci] = _mm512_dpbf16_ps(ao[jj][ci], od, pb);
      }
    }
  }
  nib_acc_store_z<GJ, CB>(acc, D, c0, zt, ng, gi, ae, ao);
}

/// P V of GJ heads over n tokens of 4-bit codes (D % 32 == 0, cgroup % 32 == 0) with P' = p s (the
/// value scales folded in, as scale_probs) rounded to bf16.
template <int GJ>
TERSOR_KV_BF16 void fused_pv_bf(const FusedPart& V, size_t n, size_t D, size_t cgroup, const float* p, size_t ss,
                                const float* corr, float* acc, FusedScratch& w) {
  const size_t ng = scale_probs_z<GJ>(V, n, D, cgroup, p, ss, w);
  const size_t n8 = (n + 7) / 8 * 8, n2 = n8 / 2;
  // P' rows [jj][g][x] (zero past n) to bf16: word x of a row is token x, so the 32-bit word x / 2
  // is the pair (x, x + 1)
  uint32_t* pp = reinterpret_cast<uint32_t*>(w.pbf.data());
  const float* pv = w.pv.data();
  float* zt = w.zt.data();
  for (size_t r = 0; r < static_cast<size_t>(GJ) * ng; ++r) {
    __m256 psum = _mm256_setzero_ps();
    for (size_t x = 0; x < n8; x += 8) {
      const __m256 v = _mm256_loadu_ps(pv + r * n8 + x);
      psum = _mm256_add_ps(psum, v);
      const __m128bh h = _mm256_cvtneps_pbh(v);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(pp + r * n2 + x / 2), reinterpret_cast<const __m128i&>(h));
    }
    zt[r] += 8.f * simd::hsum8(psum);  // P'.code = P'.(code - 8) + 8 sum(P')
  }
  constexpr size_t CB = GJ == 1 ? 4 : GJ == 2 ? 2 : 1;
  size_t c = 0;
  for (; c + 32 * CB <= D; c += 32 * CB) pv_chunks_bf<GJ, CB>(V, n, n2, D, c, cgroup, ng, pp, zt, corr, acc);
  for (; c < D; c += 32) pv_chunks_bf<GJ, 1>(V, n, n2, D, c, cgroup, ng, pp, zt, corr, acc);
}

#pragma GCC diagnostic pop

using ScoresFn = void (*)(const FusedPart&, size_t, size_t, const float*, float, float*, size_t, FusedScratch&);
using PvFn = void (*)(const FusedPart&, size_t, size_t, size_t, const float*, size_t, const float*, float*, FusedScratch&);

template <int BITS>
void pick_bits(size_t gj, bool wide, ScoresFn& sf, PvFn& pf) {
  with_count_1_to_8(gj, [&](auto heads) {
    constexpr int GJ = static_cast<int>(decltype(heads)::value);
    if (wide)
      sf = &fused_scores_z<BITS, GJ>, pf = &fused_pv_z<BITS, GJ>;
    else
      sf = &fused_scores<BITS, GJ>, pf = &fused_pv<BITS, GJ>;
  });
}

/// The fused kernels for `bits` (0 = f16 rows, kTileF32 = f32 rows, -4 = 4-bit nibble-split) and gj (1..8) query heads,
/// on 512-bit vectors when `wide`; false when bits has none.
bool pick_fused(int bits, size_t gj, bool wide, ScoresFn& sf, PvFn& pf) {
  switch (bits) {
    case 0: pick_bits<0>(gj, wide, sf, pf); return true;
    case 1: pick_bits<1>(gj, wide, sf, pf); return true;
    case 2: pick_bits<2>(gj, wide, sf, pf); return true;
    case 3: pick_bits<3>(gj, wide, sf, pf); return true;
    case 4: pick_bits<4>(gj, wide, sf, pf); return true;
    case -4: pick_bits<-4>(gj, wide, sf, pf); return true;
    case 8: pick_bits<8>(gj, wide, sf, pf); return true;
    case kTileF32: pick_bits<kTileF32>(gj, wide, sf, pf); return true;
    default: return false;
  }
}

/// The bf16 kernel pair of 4-bit codes for gj heads a pass.
void pick_bf16(size_t gj, ScoresFn& sf, PvFn& pf) {
  with_count_1_to_8(gj, [&](auto heads) {
    constexpr int GJ = static_cast<int>(decltype(heads)::value);
    sf = &fused_scores_bf<GJ>, pf = &fused_pv_bf<GJ>;
  });
}

}  // namespace

// ---- public helpers ----------------------------------------------------------------------------

bool kv_bf16_dot_supported() {
  static const bool ok = kv_avx512_supported() && __builtin_cpu_supports("avx512bf16");
  return ok;
}

bool kv_avx512_supported() {
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
  return ok;
}

KvMethod kv_method_from_string(const std::string& s) {
  if (s == "fp16" || s == "f16") return KvMethod::F16;
  if (s == "kivi") return KvMethod::Kivi;
  if (s == "kvquant") return KvMethod::KvQuant;
  if (s == "gear") return KvMethod::Gear;
  if (s == "zipcache") return KvMethod::ZipCache;
  if (s == "h2o") return KvMethod::H2O;
  if (s == "streaming") return KvMethod::Streaming;
  if (s == "ems") return KvMethod::Ems;
  fail(ErrorCode::Range, "kv.method must be one of fp16, kivi, kvquant, gear, zipcache, h2o, streaming, ems; got '" + s + "'");
}

const char* kv_method_name(KvMethod m) {
  switch (m) {
    case KvMethod::F16: return "fp16";
    case KvMethod::Kivi: return "kivi";
    case KvMethod::KvQuant: return "kvquant";
    case KvMethod::Gear: return "gear";
    case KvMethod::ZipCache: return "zipcache";
    case KvMethod::H2O: return "h2o";
    case KvMethod::Streaming: return "streaming";
    case KvMethod::Ems: return "ems";
  }
  return "?";
}

void kv_config_validate(const KvConfig& c, const KvShape& s, size_t capacity) {
  require(s.layers > 0 && s.heads > 0 && s.kv_heads > 0 && s.head_dim > 0 && s.heads % s.kv_heads == 0, ErrorCode::Shape,
          "kv: the model shape must have layers, heads, kvHeads, headDim > 0 and heads % kvHeads == 0");
  require(s.head_dim % 8 == 0 && s.head_dim <= 256, ErrorCode::Shape,
          "kv: compressed caches need headDim a multiple of 8 and at most 256, got " + std::to_string(s.head_dim));
  require(capacity >= 1, ErrorCode::Range, "kv: cache capacity must be at least 1 token");
  const auto r = [](bool ok, const std::string& msg) { require(ok, ErrorCode::Range, "kv." + msg); };
  if (quantizing(c.method)) {
    r(c.bits >= 1 && c.bits <= 8, "bits must be in 1..8, got " + std::to_string(c.bits));
    r(c.group >= 8 && c.group <= 256 && c.group % 8 == 0, "group must be a multiple of 8 in 8..256, got " + std::to_string(c.group));
    // values are quantized per group of min(group, headDim) channels: whole groups only
    r(c.group >= s.head_dim || s.head_dim % c.group == 0,
      "group (" + std::to_string(c.group) + ") must divide headDim (" + std::to_string(s.head_dim) + ") when smaller");
    r(c.residual <= capacity, "residual (" + std::to_string(c.residual) + " tokens) exceeds the context of " +
                                  std::to_string(capacity) + " tokens");
  }
  if (c.method == KvMethod::ZipCache) {
    r(c.low_bits >= 1 && c.low_bits <= c.bits, "lowBits must be in 1..bits, got " + std::to_string(c.low_bits));
    r(c.salient >= 0 && c.salient <= 1, "salient must be in [0, 1]");
    r(c.probes >= 1, "probes must be at least 1");
  }
  if (c.method == KvMethod::KvQuant || c.method == KvMethod::Gear)
    r(c.outliers >= 0 && c.outliers < 0.5, "outliers must be in [0, 0.5), got " + std::to_string(c.outliers));
  if (c.method == KvMethod::Gear) {
    r(c.rank < c.group, "rank must be below group");
    r(c.power_iterations >= 1 && c.power_iterations <= 64, "powerIterations must be in 1..64");
  }
  if (evicting(c.method)) {
    r(std::isfinite(c.budget) && c.budget > 0, "budget must be positive, got " + std::to_string(c.budget));
    if (c.budget >= 1) {
      r(c.budget == std::floor(c.budget), "budget >= 1 must be a whole number of tokens");
      if (c.method != KvMethod::H2O)
        r(c.budget > static_cast<double>(c.sinks), "budget (" + std::to_string(static_cast<size_t>(c.budget)) +
                                                   " tokens) must exceed sinks (" + std::to_string(c.sinks) + ")");
    }
    r(c.global_weight >= 0 && c.global_weight <= 1, "globalWeight must be in [0, 1]");
    r(c.local_window >= 1, "localWindow must be at least 1");
  }
}

void pack_codes(const uint8_t* codes, size_t n, int bits, uint8_t* dst) {
  const size_t nb = (n * static_cast<size_t>(bits) + 7) / 8;
  std::memset(dst, 0, nb);
  size_t bit = 0;
  for (size_t i = 0; i < n; ++i, bit += static_cast<size_t>(bits)) {
    const uint32_t v = codes[i] & ((1u << bits) - 1u);
    const size_t byte = bit / 8, sh = bit % 8;
    dst[byte] = static_cast<uint8_t>(dst[byte] | (v << sh));
    if (sh + static_cast<size_t>(bits) > 8) dst[byte + 1] = static_cast<uint8_t>(dst[byte + 1] | (v >> (8 - sh)));
  }
}

void unpack_codes(const uint8_t* src, size_t n, int bits, uint8_t* codes) {
  size_t bit = 0;
  for (size_t i = 0; i < n; ++i, bit += static_cast<size_t>(bits)) {
    const size_t byte = bit / 8, sh = bit % 8;
    uint32_t v = src[byte] >> sh;
    if (sh + static_cast<size_t>(bits) > 8) v |= static_cast<uint32_t>(src[byte + 1]) << (8 - sh);
    codes[i] = static_cast<uint8_t>(v & ((1u << bits) - 1u));
  }
}

std::vector<float> fit_nuq_codebook(const float* x, const float* w, size_t n, int bits, bool q_norm, int iters) {
  require(bits >= 1 && bits <= 8, ErrorCode::Range, "kv: codebook bits must be in 1..8");
  const size_t K = size_t{1} << bits;
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return x[a] < x[b]; });
  double W = 0;
  for (size_t i = 0; i < n; ++i) W += w ? w[i] : 1.0;
  std::vector<double> c(K);
  if (n == 0 || W <= 0) {
    for (size_t k = 0; k < K; ++k) c[k] = -1.0 + 2.0 * (static_cast<double>(k) + 0.5) / static_cast<double>(K);
  } else {
    // weighted quantile initialisation
    double acc = 0;
    size_t k = 0;
    for (size_t i = 0; i < n && k < K; ++i) {
      acc += w ? w[order[i]] : 1.0;
      while (k < K && acc >= (static_cast<double>(k) + 0.5) / static_cast<double>(K) * W) c[k++] = x[order[i]];
    }
    for (; k < K; ++k) c[k] = x[order[n - 1]];
    std::vector<double> sw(K), swx(K);
    for (int it = 0; it < iters; ++it) {
      std::fill(sw.begin(), sw.end(), 0.0);
      std::fill(swx.begin(), swx.end(), 0.0);
      size_t j = 0;  // sorted sweep: x ascending, centroids ascending
      std::vector<double> cs = c;
      std::sort(cs.begin(), cs.end());
      for (size_t i = 0; i < n; ++i) {
        const double xi = x[order[i]];
        while (j + 1 < K && xi > 0.5 * (cs[j] + cs[j + 1])) ++j;
        const double wi = w ? w[order[i]] : 1.0;
        sw[j] += wi;
        swx[j] += wi * xi;
      }
      for (size_t q = 0; q < K; ++q) c[q] = sw[q] > 0 ? swx[q] / sw[q] : cs[q];
    }
    std::sort(c.begin(), c.end());
    if (q_norm) {
      // Q-Norm: match the weighted mean / std of the quantized data to the data's.
      double mx = 0, mq = 0;
      std::vector<size_t> a(n);
      size_t j = 0;
      for (size_t i = 0; i < n; ++i) {
        const double xi = x[order[i]];
        while (j + 1 < K && xi > 0.5 * (c[j] + c[j + 1])) ++j;
        a[i] = j;
        const double wi = w ? w[order[i]] : 1.0;
        mx += wi * xi;
        mq += wi * c[j];
      }
      mx /= W;
      mq /= W;
      double vx = 0, vq = 0;
      for (size_t i = 0; i < n; ++i) {
        const double wi = w ? w[order[i]] : 1.0;
        vx += wi * (x[order[i]] - mx) * (x[order[i]] - mx);
        vq += wi * (c[a[i]] - mq) * (c[a[i]] - mq);
      }
      if (vq > 0)
        for (auto& ck : c) ck = (ck - mq) * std::sqrt(vx / vq) + mx;
    }
  }
  return std::vector<float>(c.begin(), c.end());
}

size_t QPart::bytes(size_t n) const {
  size_t b = codes.size() >= kPad ? codes.size() - kPad : 0;
  b += 2 * (scale.size() + zero.size() + cscale.size());
  if (!tbits.empty()) b += (n + 7) / 8;
  b += 6 * sp_idx.size();
  b += 2 * (lr_a.size() + lr_b.size());
  return b;
}

// ---- the cache ---------------------------------------------------------------------------------

struct CompressedKv::Head {
  std::vector<QBlock> blocks;
  std::vector<uint16_t> wk, wv;  // window, f16 [w, D]; KVQuant keys before RoPE
  std::vector<int32_t> wpos;
  std::vector<double> score, count, local;  // per window token (ZipCache / eviction)
  uint64_t flushed = 0;
  size_t wn() const { return wpos.size(); }
};

namespace {
/// Whether the window holds a whole group of tokens beyond the `keep` most recent (flush has work).
bool flush_due(const CompressedKv::Head& h, size_t keep, size_t group) { return h.wn() >= keep + group; }
}  // namespace

CompressedKv::CompressedKv(const KvConfig& cfg, const KvShape& shape, size_t capacity, const RopeCache* rope)
    : cfg_(cfg), shape_(shape), capacity_(capacity), rope_(rope) {
  kv_config_validate(cfg_, shape_, capacity_);
  if (cfg_.method == KvMethod::KvQuant && rope_)
    require(rope_->config().head_dim == shape_.head_dim, ErrorCode::Shape, "kv: RoPE head_dim differs from the cache's");
  heads_.resize(shape_.layers * shape_.kv_heads);
  for (auto& h : heads_) h = std::make_unique<Head>();
  kcode_.resize(shape_.layers);
  vcode_.resize(shape_.layers);
  qsens_.assign(shape_.layers, std::vector<double>(shape_.kv_heads * shape_.head_dim, 0.0));
  qcount_.assign(shape_.layers, 0.0);
  identity_lut_.resize(256);
  for (int i = 0; i < 256; ++i) identity_lut_[static_cast<size_t>(i)] = static_cast<float>(i);
}

CompressedKv::~CompressedKv() = default;

const std::vector<float>& CompressedKv::codebook(size_t layer, bool values) const {
  require(layer < shape_.layers, ErrorCode::Range, "kv: layer out of range");
  return values ? vcode_[layer] : kcode_[layer];
}

void CompressedKv::append(size_t layer, const float* k_pre, const float* k, const float* v, const int32_t* pos, size_t n) {
  require(layer < shape_.layers, ErrorCode::Range, "kv: layer " + std::to_string(layer) + " out of range");
  require(length_ + n <= capacity_, ErrorCode::Range,
          "kv: cache full: it holds " + std::to_string(length_) + " of " + std::to_string(capacity_) + " tokens, " +
              std::to_string(n) + " more do not fit");
  const size_t D = shape_.head_dim, KV = shape_.kv_heads;
  const float* kin = cfg_.method == KvMethod::KvQuant ? k_pre : k;
  for (size_t h = 0; h < KV; ++h) {
    Head& hd = *heads_[layer * KV + h];
    const size_t w0 = hd.wn();
    hd.wk.resize((w0 + n) * D);
    hd.wv.resize((w0 + n) * D);
    for (size_t t = 0; t < n; ++t) {
      f32_to_f16(kin + (t * KV + h) * D, hd.wk.data() + (w0 + t) * D, D);
      f32_to_f16(v + (t * KV + h) * D, hd.wv.data() + (w0 + t) * D, D);
      hd.wpos.push_back(pos[t]);
    }
    hd.score.resize(w0 + n, 0.0);
    hd.count.resize(w0 + n, 0.0);
    hd.local.resize(w0 + n, 0.0);
  }
  if (layer + 1 == shape_.layers) length_ += n;
}

size_t CompressedKv::tiles(const Head& h) const { return h.blocks.size() + (h.wn() + kWindowTile - 1) / kWindowTile; }

void CompressedKv::tile(size_t layer, const Head& h, size_t i, float* k, float* v, int32_t* pos, size_t& n) const {
  const size_t D = shape_.head_dim;
  const bool pre_rope = cfg_.method == KvMethod::KvQuant && rope_;
  if (i < h.blocks.size()) {
    const QBlock& b = h.blocks[i];
    n = b.n;
    const float* klut = kcode_[layer].empty() ? identity_lut_.data() : kcode_[layer].data();
    const float* vlut = vcode_[layer].empty() ? identity_lut_.data() : vcode_[layer].data();
    dequant_part(b.k, n, D, klut, k);
    dequant_part(b.v, n, D, vlut, v);
    for (size_t t = 0; t < n; ++t) pos[t] = b.pos0 + static_cast<int32_t>(t);
  } else {
    const size_t t0 = (i - h.blocks.size()) * kWindowTile;
    n = std::min(kWindowTile, h.wn() - t0);
    f16_to_f32(h.wk.data() + t0 * D, k, n * D);
    f16_to_f32(h.wv.data() + t0 * D, v, n * D);
    std::memcpy(pos, h.wpos.data() + t0, n * sizeof(int32_t));
  }
  if (pre_rope) rope_apply(k, n, 1, pos, *rope_, D);
}

size_t CompressedKv::stored(size_t layer, size_t head) const {
  const Head& h = *heads_.at(layer * shape_.kv_heads + head);
  size_t n = h.wn();
  for (const QBlock& b : h.blocks) n += b.n;
  return n;
}

void CompressedKv::dequantize(size_t layer, size_t head, std::vector<float>& k, std::vector<float>& v,
                              std::vector<int32_t>& pos) const {
  require(layer < shape_.layers && head < shape_.kv_heads, ErrorCode::Range, "kv: layer or head out of range");
  const Head& h = *heads_[layer * shape_.kv_heads + head];
  const size_t D = shape_.head_dim, N = stored(layer, head);
  k.resize(N * D);
  v.resize(N * D);
  pos.resize(N);
  size_t at = 0;
  const size_t T = std::max(cfg_.group, kWindowTile);
  std::vector<float> kt(T * D), vt(T * D);
  std::vector<int32_t> pt(T);
  for (size_t i = 0; i < tiles(h); ++i) {
    size_t n = 0;
    tile(layer, h, i, kt.data(), vt.data(), pt.data(), n);
    std::memcpy(k.data() + at * D, kt.data(), n * D * sizeof(float));
    std::memcpy(v.data() + at * D, vt.data(), n * D * sizeof(float));
    std::memcpy(pos.data() + at, pt.data(), n * sizeof(int32_t));
    at += n;
  }
}

KvBytes CompressedKv::bytes_breakdown() const {
  KvBytes r;
  const size_t D = shape_.head_dim;
  size_t accumulators = 0;
  if (cfg_.method == KvMethod::H2O) accumulators = 1;
  if (cfg_.method == KvMethod::Ems) accumulators = 3;
  if (cfg_.method == KvMethod::ZipCache) accumulators = 2;
  for (const auto& hp : heads_) {
    const Head& h = *hp;
    for (const QBlock& b : h.blocks)
      for (const QPart* p : {&b.k, &b.v}) {
        r.codes += p->codes.size() - kPad;
        r.scales += 2 * (p->scale.size() + p->zero.size() + p->cscale.size());
        if (!p->tbits.empty()) r.index += (b.n + 7) / 8;
        r.outliers += 6 * p->sp_idx.size();
        r.low_rank += 2 * (p->lr_a.size() + p->lr_b.size());
      }
    r.window += h.wn() * D * 2 * 2;
    if (evicting(cfg_.method)) r.index += h.wn() * 4;
    r.index += h.wn() * accumulators * 4;
  }
  for (size_t l = 0; l < shape_.layers; ++l) r.scales += 2 * (kcode_[l].size() + vcode_[l].size());
  r.total = r.codes + r.scales + r.outliers + r.low_rank + r.window + r.index;
  return r;
}

void CompressedKv::calibrate(size_t layer) {
  // Calibration data: the first `group` window tokens of every head of the layer (the block about
  // to be flushed), normalised as the quantizer will normalise them; key weights = sensitivity.
  const size_t D = shape_.head_dim, KV = shape_.kv_heads, G = cfg_.group;
  std::vector<float> kx, kw, vx;
  const double qc = std::max(1.0, qcount_[layer]);
  for (size_t h = 0; h < KV; ++h) {
    const Head& hd = *heads_[layer * KV + h];
    std::vector<float> K(G * D), V(G * D);
    f16_to_f32(hd.wk.data(), K.data(), G * D);
    f16_to_f32(hd.wv.data(), V.data(), G * D);
    for (int part = 0; part < 2; ++part) {
      const std::vector<float>& X = part == 0 ? K : V;
      const size_t nout = static_cast<size_t>(std::llround(cfg_.outliers * static_cast<double>(G * D)));
      std::vector<uint8_t> skip(G * D, 0);
      for (uint32_t i : top_abs(X.data(), G * D, nout)) skip[i] = 1;
      const size_t cg = std::min(G, D);
      auto emit = [&](size_t i, float mn, float mx) {
        if (skip[i] || !(mx > mn)) return;
        const float u = (X[i] - 0.5f * (mx + mn)) / (0.5f * (mx - mn));
        if (part == 0) {
          const size_t c = i % D;
          const size_t half = D / 2, pair = c < half ? c + half : c - half;
          kx.push_back(u);
          kw.push_back(static_cast<float>((qsens_[layer][h * D + c] + qsens_[layer][h * D + pair]) / (2.0 * qc) + 1e-12));
        } else {
          vx.push_back(u);
        }
      };
      if (part == 0) {
        for (size_t c = 0; c < D; ++c) {
          float mn = std::numeric_limits<float>::infinity(), mx = -mn;
          for (size_t t = 0; t < G; ++t)
            if (!skip[t * D + c]) mn = std::min(mn, X[t * D + c]), mx = std::max(mx, X[t * D + c]);
          for (size_t t = 0; t < G; ++t) emit(t * D + c, mn, mx);
        }
      } else {
        for (size_t t = 0; t < G; ++t)
          for (size_t g = 0; g < D / cg; ++g) {
            float mn = std::numeric_limits<float>::infinity(), mx = -mn;
            for (size_t c = g * cg; c < (g + 1) * cg; ++c)
              if (!skip[t * D + c]) mn = std::min(mn, X[t * D + c]), mx = std::max(mx, X[t * D + c]);
            for (size_t c = g * cg; c < (g + 1) * cg; ++c) emit(t * D + c, mn, mx);
          }
      }
    }
  }
  kcode_[layer] = fit_nuq_codebook(kx.data(), kw.data(), kx.size(), cfg_.bits, cfg_.q_norm);
  vcode_[layer] = fit_nuq_codebook(vx.data(), nullptr, vx.size(), cfg_.bits, cfg_.q_norm);
}

void CompressedKv::compress_block(size_t layer, size_t head, QBlock& b, const float* K, const float* V,
                                  const float* score) {
  const size_t n = b.n, D = shape_.head_dim, cg = std::min(cfg_.group, D);
  const int bits = cfg_.bits;
  const std::vector<uint8_t> none;
  switch (cfg_.method) {
    case KvMethod::Kivi:
      quantize_part(K, n, D, b.k, QPart::PerChannel, 0, bits, none, nullptr, nullptr);
      quantize_part(V, n, D, b.v, QPart::PerToken, cg, bits, none, nullptr, nullptr);
      break;
    case KvMethod::KvQuant: {
      for (int part = 0; part < 2; ++part) {
        const float* X = part == 0 ? K : V;
        QPart& p = part == 0 ? b.k : b.v;
        const size_t nout = static_cast<size_t>(std::llround(cfg_.outliers * static_cast<double>(n * D)));
        const std::vector<uint32_t> out = top_abs(X, n * D, nout);
        std::vector<uint8_t> skip(n * D, 0);
        for (uint32_t i : out) skip[i] = 1;
        const std::vector<float>& lut = part == 0 ? kcode_[layer] : vcode_[layer];
        quantize_part(X, n, D, p, part == 0 ? QPart::PerChannel : QPart::PerToken, cg, bits, none, &lut, &skip);
        std::vector<float> deq(n * D);
        dequant_part(p, n, D, lut.data(), deq.data());
        for (uint32_t i : out) {
          p.sp_idx.push_back(i);
          p.sp_val.push_back(h16(X[i] - deq[i]));
        }
      }
      break;
    }
    case KvMethod::Gear: {
      for (int part = 0; part < 2; ++part) {
        const float* X = part == 0 ? K : V;
        QPart& p = part == 0 ? b.k : b.v;
        const size_t nout = static_cast<size_t>(std::llround(cfg_.outliers * static_cast<double>(n * D)));
        const std::vector<uint32_t> out = top_abs(X, n * D, nout);
        std::vector<float> Xd(X, X + n * D);  // X - S
        for (uint32_t i : out) Xd[i] = 0.f;
        quantize_part(Xd.data(), n, D, p, part == 0 ? QPart::PerChannel : QPart::PerToken, cg, bits, none, nullptr, nullptr);
        if (cfg_.rank > 0) {
          std::vector<float> deq(n * D);
          dequant_part(p, n, D, nullptr, deq.data());
          for (size_t i = 0; i < n * D; ++i) deq[i] = Xd[i] - deq[i];  // quantization residual
          std::vector<float> A, B;
          low_rank(deq.data(), n, D, cfg_.rank, cfg_.power_iterations,
                   cfg_.seed ^ (0x9E3779B97F4A7C15ull * (layer * 131 + head * 7 + static_cast<uint64_t>(part) + 1)) ^
                       static_cast<uint64_t>(b.pos0),
                   A, B);
          p.rank = cfg_.rank;
          p.lr_a.resize(A.size());
          p.lr_b.resize(B.size());
          f32_to_f16(A.data(), p.lr_a.data(), A.size());
          f32_to_f16(B.data(), p.lr_b.data(), B.size());
        }
        for (uint32_t i : out) {
          p.sp_idx.push_back(i);
          p.sp_val.push_back(h16(X[i]));
        }
      }
      break;
    }
    case KvMethod::ZipCache: {
      // salient tokens: highest normalised attention score
      std::vector<uint8_t> tb(n, static_cast<uint8_t>(cfg_.low_bits));
      const size_t ns = static_cast<size_t>(std::llround(cfg_.salient * static_cast<double>(n)));
      std::vector<size_t> order(n);
      std::iota(order.begin(), order.end(), size_t{0});
      std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t c) { return score[a] > score[c]; });
      for (size_t i = 0; i < ns; ++i) tb[order[i]] = static_cast<uint8_t>(bits);
      // keys: channel-separable (divide channel c by sqrt(max |k_c|)), then token-wise
      std::vector<float> cs(D), Kn(n * D);
      b.k.cscale.resize(D);
      for (size_t c = 0; c < D; ++c) {
        float m = 0;
        for (size_t t = 0; t < n; ++t) m = std::max(m, std::fabs(K[t * D + c]));
        cs[c] = round_h(m > 0 ? std::sqrt(m) : 1.f);
        b.k.cscale[c] = h16(cs[c]);
      }
      for (size_t t = 0; t < n; ++t)
        for (size_t c = 0; c < D; ++c) Kn[t * D + c] = K[t * D + c] / cs[c];
      quantize_part(Kn.data(), n, D, b.k, QPart::PerToken, D, bits, tb, nullptr, nullptr);
      quantize_part(V, n, D, b.v, QPart::PerToken, D, bits, tb, nullptr, nullptr);
      break;
    }
    default: break;
  }
}

void CompressedKv::flush(size_t layer, size_t head, size_t keep) {
  Head& h = *heads_[layer * shape_.kv_heads + head];
  const size_t D = shape_.head_dim, G = cfg_.group;
  if (!flush_due(h, keep, G)) return;  // most decode steps: no whole group beyond the residual window yet
  size_t taken = 0;
  std::vector<float> K(G * D), V(G * D), S(G);
  while (h.wn() - taken >= keep + G) {
    QBlock b;
    b.n = G;
    b.pos0 = h.wpos[taken];
    f16_to_f32(h.wk.data() + taken * D, K.data(), G * D);
    f16_to_f32(h.wv.data() + taken * D, V.data(), G * D);
    for (size_t t = 0; t < G; ++t) S[t] = static_cast<float>(h.count[taken + t] > 0 ? h.score[taken + t] / h.count[taken + t] : 0.0);
    compress_block(layer, head, b, K.data(), V.data(), S.data());
    h.blocks.push_back(std::move(b));
    taken += G;
    ++h.flushed;
  }
  if (taken == 0) return;
  const auto dt = static_cast<std::ptrdiff_t>(taken), dd = static_cast<std::ptrdiff_t>(taken * D);
  h.wk.erase(h.wk.begin(), h.wk.begin() + dd);
  h.wv.erase(h.wv.begin(), h.wv.begin() + dd);
  h.wpos.erase(h.wpos.begin(), h.wpos.begin() + dt);
  h.score.erase(h.score.begin(), h.score.begin() + dt);
  h.count.erase(h.count.begin(), h.count.begin() + dt);
  h.local.erase(h.local.begin(), h.local.begin() + dt);
}

void CompressedKv::reset() {
  for (auto& h : heads_) h = std::make_unique<Head>();
  for (auto& c : kcode_) c.clear();
  for (auto& c : vcode_) c.clear();
  for (auto& q : qsens_) std::fill(q.begin(), q.end(), 0.0);
  std::fill(qcount_.begin(), qcount_.end(), 0.0);
  length_ = 0;
}

namespace {
/// Keeps the first m (< n) tokens of part p of an n-token block.
void truncate_part(QPart& p, size_t n, size_t m, size_t D) {
  (void)n;
  size_t code_bytes = 0;
  if (p.bits == 0) {  // mixed widths: token t starts at off[t]
    code_bytes = p.off[m];
    p.off.resize(m);
    p.tbits.resize(m);
  } else {
    code_bytes = m * row_bytes(D, p.bits);
  }
  p.codes.resize(code_bytes + kPad);
  std::fill(p.codes.begin() + static_cast<std::ptrdiff_t>(code_bytes), p.codes.end(), uint8_t{0});
  if (p.axis == QPart::PerToken) {
    const size_t ng = D / p.cgroup;
    p.scale.resize(m * ng);
    p.zero.resize(m * ng);
  }
  size_t w = 0;
  for (size_t i = 0; i < p.sp_idx.size(); ++i)
    if (p.sp_idx[i] < m * D) {
      p.sp_idx[w] = p.sp_idx[i];
      p.sp_val[w] = p.sp_val[i];
      ++w;
    }
  p.sp_idx.resize(w);
  p.sp_val.resize(w);
  if (p.rank > 0) p.lr_a.resize(m * p.rank);
}
}  // namespace

void CompressedKv::truncate(size_t n) {
  require(n <= length_, ErrorCode::Range,
          "kv: truncate to " + std::to_string(n) + " tokens, but the cache holds " + std::to_string(length_));
  if (n == length_) return;
  require(!evicting(cfg_.method), ErrorCode::Range,
          std::string("kv: a ") + kv_method_name(cfg_.method) +
              " cache cannot be truncated exactly (the evicted or merged tokens and the attention scores depend on the "
              "tokens after the cut); reset() it and prefill again");
  if (n == 0) {
    reset();
    return;
  }
  const size_t D = shape_.head_dim;
  for (auto& hp : heads_) {
    Head& h = *hp;
    size_t kept = 0, bi = 0;
    while (bi < h.blocks.size() && kept + h.blocks[bi].n <= n) kept += h.blocks[bi++].n;
    size_t wkeep = 0;
    if (bi < h.blocks.size()) {
      const size_t m = n - kept;
      if (m > 0) {
        QBlock& b = h.blocks[bi];
        truncate_part(b.k, b.n, m, D);
        truncate_part(b.v, b.n, m, D);
        b.n = m;
        ++bi;
      }
      h.blocks.resize(bi);
    } else {
      wkeep = std::min(h.wn(), n - kept);
    }
    h.wk.resize(wkeep * D);
    h.wv.resize(wkeep * D);
    h.wpos.resize(wkeep);
    h.score.resize(wkeep);
    h.count.resize(wkeep);
    h.local.resize(wkeep);
  }
  length_ = n;
}

void CompressedKv::flush_all() {
  if (!quantizing(cfg_.method)) return;
  for (size_t l = 0; l < shape_.layers; ++l) {
    if (cfg_.method == KvMethod::KvQuant && kcode_[l].empty() && heads_[l * shape_.kv_heads]->wn() >= cfg_.group) calibrate(l);
    for (size_t h = 0; h < shape_.kv_heads; ++h) flush(l, h, 0);
  }
}

void CompressedKv::attend(size_t layer, const float* q, const int32_t* qpos, size_t n_q, float* out, float scale) {
  require(layer < shape_.layers, ErrorCode::Range, "kv: layer " + std::to_string(layer) + " out of range");
  const size_t D = shape_.head_dim, KV = shape_.kv_heads, H = shape_.heads, g = H / KV, rows = n_q * g;
  if (scale == 0.f) scale = 1.f / std::sqrt(static_cast<float>(D));
  const KvMethod m = cfg_.method;
  if (m == KvMethod::KvQuant) {
    // key sensitivity: mean q_c^2 per KV head channel over its query heads
    for (size_t t = 0; t < n_q; ++t)
      for (size_t hh = 0; hh < H; ++hh)
        for (size_t c = 0; c < D; ++c) {
          const double x = q[(t * H + hh) * D + c];
          qsens_[layer][(hh / g) * D + c] += x * x / static_cast<double>(g);
        }
    qcount_[layer] += static_cast<double>(n_q);
  }
  // Which rows accumulate attention scores into the window: every row (eviction) or the probe
  // queries (ZipCache).
  std::vector<uint8_t> probe(n_q, 0);
  if (evicting(m)) {
    std::fill(probe.begin(), probe.end(), 1);
  } else if (m == KvMethod::ZipCache) {
    if (n_q <= cfg_.probes) {
      std::fill(probe.begin(), probe.end(), 1);
    } else {
      const size_t recent = cfg_.probes / 2;
      for (size_t t = n_q - recent; t < n_q; ++t) probe[t] = 1;
      Rng rng(cfg_.seed * 1000003ull + layer * 7919ull + length_);
      size_t want = cfg_.probes - recent, got = 0;
      while (got < want) {
        const size_t t = rng.next_u32() % (n_q - recent);
        if (!probe[t]) probe[t] = 1, ++got;
      }
    }
  }
  const size_t window = shape_.window;
  const bool pre_rope = m == KvMethod::KvQuant && rope_;
  const size_t T = std::max(cfg_.group, kWindowTile);
  const double ema = 1.0 - 1.0 / static_cast<double>(cfg_.local_window);
  const int nt = static_cast<int>(std::min<size_t>(static_cast<size_t>(num_threads()), KV));
  const bool wide = avx512_ && D % 16 == 0 && kv_avx512_supported();
  // the softmax on 512-bit vectors for two or more heads a pass (n4096 d64 KIVI-4 GQA 4 0.26 ->
  // 0.235 ms); with one head its vector correction and reductions cost more than they save (GQA 1
  // 0.109 -> 0.117 ms), so single-head passes keep the 256-bit loop
  const bool soft_wide = avx512_ && kv_avx512_supported();
  // bf16 dot products for 4-bit code blocks (opt-in; exact kernels where the CPU lacks AVX-512 BF16)
  const bool bf16 = cfg_.bf16_dot && wide && D % 64 == 0 && kv_bf16_dot_supported();
#pragma omp parallel num_threads(nt)
  {
    std::vector<float> mrow(rows), lrow(rows);
    AlignedFloats kt(T * D), vt(T * D);  // 64-byte aligned: dequant_part's row stores would split lines
    AlignedFloats s(8 * (T + 8)), acc(rows * D), vS((T + 8) * D / 8), vZ((T + 8) * D / 8);
    AlignedFloats zkS(T + 8), zkZ(T + 8), zcs(D);  // a ZipCache tile's key scales / zeros, channel scales
    std::vector<int32_t> pt(T);
    FusedScratch fs;
    fs.size(T, D);
    FusedLowRankSparse lrs;
#pragma omp for schedule(static)
    for (std::ptrdiff_t hi = 0; hi < static_cast<std::ptrdiff_t>(KV); ++hi) {
      const size_t h = static_cast<size_t>(hi);
      Head& hd = *heads_[layer * KV + h];
      std::fill(acc.begin(), acc.end(), 0.f);
      std::fill(mrow.begin(), mrow.end(), -std::numeric_limits<float>::infinity());
      std::fill(lrow.begin(), lrow.end(), 0.f);
      const size_t ntiles = tiles(hd);
      for (size_t i = 0; i < ntiles; ++i) {
        // the next block's arrays are separate allocations, each a new stream the hardware
        // prefetcher finds only after a few misses; asked for a block ahead they arrive while this
        // tile computes (a decode step reads each layer's cache cold: warm n4096 d128 KIVI-4 GQA 1
        // after a 256 MB cache flush 0.53 -> 0.41 ms)
        if (i + 1 < hd.blocks.size()) prefetch_block(hd.blocks[i + 1]);
        // The fused view of the tile (f16 window rows, or a block of uniform codes with per-channel
        // keys and per-token values), used for the queries that see every token of it.
        FusedPart fk, fv;
        ZipRows zk, zv;
        bool extras = false;  // GEAR terms on top of the fused kernels
        int fbits = kNoFused;
        bool tile_wide = wide;  // this tile's fused kernels on 512-bit vectors
        size_t n = 0, fcg = 0;
        int32_t pmin = 0, pmax = 0;
        if (fused_) {
          if (i < hd.blocks.size()) {
            const QBlock& b = hd.blocks[i];
            const int bb = b.k.bits;
            // uniform codes, per-channel keys, per-token values (KIVI; GEAR adds low-rank and sparse
            // terms, handled by FusedLowRankSparse around the fused kernels)
            const bool ok = b.k.axis == QPart::PerChannel && b.v.axis == QPart::PerToken && D % b.v.cgroup == 0 && !b.k.nonuniform &&
                            !b.v.nonuniform && b.k.cscale.empty() && b.v.cscale.empty() && b.v.bits == bb &&
                            (bb == 1 || bb == 2 || bb == 3 || bb == 4 || bb == 8) && b.v.cgroup % 8 == 0;
            if (ok) {
              n = b.n;
              extras = lrs.prepare(b, D);
              // nibble-split 4-bit kernels need whole 16-channel blocks (32 on 512-bit vectors) inside
              // a value group, and on 256-bit vectors at most 4 query heads a pass (16 accumulators)
              const size_t nib = wide ? 32 : 16;
              fbits = bb == 4 && D % nib == 0 && b.v.cgroup % nib == 0 && (wide || g <= 4) ? -4 : bb;
              fcg = b.v.cgroup;
              tile_wide = wide && fcg % 16 == 0;
              const size_t ng = D / fcg;
              // value scales and zeros as [group][token] (tokens padded to a multiple of 8 with 0)
              const size_t n8 = (n + 7) / 8 * 8;
              v_scales_by_group(b.v.scale.data(), n, ng, n8, vS.data());
              v_scales_by_group(b.v.zero.data(), n, ng, n8, vZ.data());
              fk = {b.k.codes.data(), row_bytes(D, bb), b.k.scale.data(), b.k.zero.data()};
              fv = {b.v.codes.data(), row_bytes(D, bb), vS.data(), vZ.data()};
              pmin = b.pos0;
              pmax = b.pos0 + static_cast<int32_t>(n) - 1;
            } else if (zip_fusable(b, D)) {
              n = b.n;
              fbits = kZipFused;
              const size_t n8 = (n + 7) / 8 * 8;
              auto per_token = [&](const std::vector<uint16_t>& h, float* dst) {
                f16_to_f32(h.data(), dst, n);
                std::fill(dst + n, dst + n8, 0.f);
              };
              per_token(b.k.scale, zkS.data());
              per_token(b.k.zero, zkZ.data());
              per_token(b.v.scale, vS.data());
              per_token(b.v.zero, vZ.data());
              f16_to_f32(b.k.cscale.data(), zcs.data(), D);
              auto rows_of = [](const QPart& p, const float* S, const float* Z) {
                ZipRows r;
                r.codes = p.codes.data();
                r.bits = p.bits;
                r.off = p.off.empty() ? nullptr : p.off.data();
                r.tbits = p.tbits.empty() ? nullptr : p.tbits.data();
                r.S = S;
                r.Z = Z;
                return r;
              };
              zk = rows_of(b.k, zkS.data(), zkZ.data());
              zv = rows_of(b.v, vS.data(), vZ.data());
              pmin = b.pos0;
              pmax = b.pos0 + static_cast<int32_t>(n) - 1;
            } else {
              // non-uniform codes (KVQuant), pre-RoPE keys, an 8-bit ZipCache width: dequantized (and
              // rotated) into the f32 tile, which the fused kernels then read as f32 rows
              n = b.n;
              fbits = kTileF32;
              pmin = b.pos0;
              pmax = b.pos0 + static_cast<int32_t>(n) - 1;
            }
          } else {
            const size_t t0 = (i - hd.blocks.size()) * kWindowTile;
            n = std::min(kWindowTile, hd.wn() - t0);
            pmin = *std::min_element(hd.wpos.begin() + static_cast<std::ptrdiff_t>(t0),
                                     hd.wpos.begin() + static_cast<std::ptrdiff_t>(t0 + n));
            pmax = *std::max_element(hd.wpos.begin() + static_cast<std::ptrdiff_t>(t0),
                                     hd.wpos.begin() + static_cast<std::ptrdiff_t>(t0 + n));
            if (pre_rope) {
              fbits = kTileF32;  // window keys are pre-RoPE too: rotated in the f32 tile
            } else {
              fbits = 0;
              fk = {reinterpret_cast<const uint8_t*>(hd.wk.data() + t0 * D), 2 * D, nullptr, nullptr};
              fv = {reinterpret_cast<const uint8_t*>(hd.wv.data() + t0 * D), 2 * D, nullptr, nullptr};
            }
          }
        }
        bool have_f32 = false;
        // One query token's g heads at a time: each K and V row of the tile is loaded once for the
        // whole group (GQA), up to 8 heads in registers per pass.
        for (size_t t = 0; t < n_q; ++t) {
          const bool fast = fbits != kNoFused && visible(pmin, qpos[t], window) && visible(pmax, qpos[t], window);
          if ((!fast || fbits == kTileF32) && !have_f32) {
            tile(layer, hd, i, kt.data(), vt.data(), pt.data(), n);
            have_f32 = true;
            if (fbits == kTileF32) {
              fk = {reinterpret_cast<const uint8_t*>(kt.data()), 4 * D, nullptr, nullptr};
              fv = {reinterpret_cast<const uint8_t*>(vt.data()), 4 * D, nullptr, nullptr};
            }
          }
          for (size_t j0 = 0; j0 < g; j0 += 8) {
            const size_t gj = std::min<size_t>(8, g - j0);
            const float* q0 = q + (t * H + h * g + j0) * D;
            ScoresFn sfn = nullptr;
            PvFn pfn = nullptr;
            ZipScoresFn zsf = nullptr;
            ZipPvFn zpf = nullptr;
            if (fast && fbits == kZipFused) {
              pick_zip(gj, tile_wide, zsf, zpf);
              zsf(zk, zcs.data(), n, D, q0, scale, s.data(), T + 8, fs);
            } else if (fast) {
              if (bf16 && fbits == -4 && tile_wide)
                pick_bf16(gj, sfn, pfn);
              else
                pick_fused(fbits, gj, tile_wide, sfn, pfn);
              if (j0 == 0 && t == 0 && fbits != kTileF32) prefetch_rows(fv, n);  // V lines arrive while the scores run
              sfn(fk, n, D, q0, scale, s.data(), T + 8, fs);
              if (extras) lrs.scores(q0, gj, scale, s.data(), T + 8);
            } else
            // scores s[jj * (T + 8) + x]
            for (size_t x = 0; x < n; ++x) {
              const bool vis = visible(pt[x], qpos[t], window);
              if (!vis) {
                for (size_t jj = 0; jj < gj; ++jj) s[jj * (T + 8) + x] = -std::numeric_limits<float>::infinity();
                continue;
              }
              __m256 a8[8];
              for (size_t jj = 0; jj < gj; ++jj) a8[jj] = _mm256_setzero_ps();
              const float* kr = kt.data() + x * D;
              for (size_t c = 0; c < D; c += 8) {
                const __m256 kv = _mm256_loadu_ps(kr + c);
                for (size_t jj = 0; jj < gj; ++jj) a8[jj] = _mm256_fmadd_ps(_mm256_loadu_ps(q0 + jj * D + c), kv, a8[jj]);
              }
              for (size_t jj = 0; jj < gj; ++jj) s[jj * (T + 8) + x] = scale * simd::hsum8(a8[jj]);
            }
            // online softmax update per head
            float corr[8];
            float* mr = mrow.data() + t * g + j0;
            float* lr = lrow.data() + t * g + j0;
            if (soft_wide && gj > 1)
              online_softmax_z(s.data(), T + 8, n, gj, mr, lr, corr);
            else
              online_softmax(s.data(), T + 8, n, gj, mr, lr, corr);
            // P V, each V row loaded once for the group
            if (fast && fbits == kZipFused) {
              zpf(zv, n, D, s.data(), T + 8, corr, acc.data() + (t * g + j0) * D, fs);
            } else if (fast) {
              pfn(fv, n, D, fcg, s.data(), T + 8, corr, acc.data() + (t * g + j0) * D, fs);
              if (extras) lrs.pv(s.data(), T + 8, gj, acc.data() + (t * g + j0) * D);
            } else
            for (size_t c = 0; c < D; c += 8) {
              __m256 a8[8];
              for (size_t jj = 0; jj < gj; ++jj)
                a8[jj] = _mm256_mul_ps(_mm256_loadu_ps(acc.data() + (t * g + j0 + jj) * D + c), _mm256_set1_ps(corr[jj]));
              const float* vc = vt.data() + c;
              for (size_t x = 0; x < n; ++x) {
                const __m256 vv = _mm256_loadu_ps(vc + x * D);
                for (size_t jj = 0; jj < gj; ++jj) a8[jj] = _mm256_fmadd_ps(_mm256_set1_ps(s[jj * (T + 8) + x]), vv, a8[jj]);
              }
              for (size_t jj = 0; jj < gj; ++jj) _mm256_storeu_ps(acc.data() + (t * g + j0 + jj) * D + c, a8[jj]);
            }
          }
        }
      }
      for (size_t r = 0; r < rows; ++r) {
        const size_t t = r / g, j = r % g;
        float* o = out + (t * H + h * g + j) * D;
        const float inv = lrow[r] > 0 ? 1.f / lrow[r] : 0.f;
        for (size_t c = 0; c < D; ++c) o[c] = acc[r * D + c] * inv;
      }
      // scores of window tokens from the scoring rows (exact probabilities, second pass)
      const bool any_probe = std::find(probe.begin(), probe.end(), 1) != probe.end();
      if (any_probe) {
        if (m == KvMethod::Ems)
          for (auto& x : hd.local) x *= std::pow(ema, static_cast<double>(n_q));
        for (size_t i = hd.blocks.size(); i < ntiles; ++i) {
          size_t n = 0;
          tile(layer, hd, i, kt.data(), vt.data(), pt.data(), n);
          const size_t w0 = (i - hd.blocks.size()) * kWindowTile;
          for (size_t r = 0; r < rows; ++r) {
            const size_t t = r / g, j = r % g;
            if (!probe[t] || lrow[r] <= 0) continue;
            const float* qr = q + (t * H + h * g + j) * D;
            for (size_t x = 0; x < n; ++x) {
              if (!visible(pt[x], qpos[t], window)) continue;
              const double p = std::exp(static_cast<double>(scale * dot(qr, kt.data() + x * D, D) - mrow[r])) / lrow[r];
              hd.score[w0 + x] += p;
              hd.count[w0 + x] += 1.0;
              if (m == KvMethod::Ems) hd.local[w0 + x] += p * (1.0 - ema);
            }
          }
        }
      }
    }
  }
  // flush / evict
  if (quantizing(m)) {
    if (m == KvMethod::KvQuant && kcode_[layer].empty() && flush_due(*heads_[layer * KV], cfg_.residual, cfg_.group))
      calibrate(layer);
    // a fork/join only on the steps that complete a block (one decode step in `group`)
    bool due = false;
    for (size_t h = 0; h < KV; ++h) due = due || flush_due(*heads_[layer * KV + h], cfg_.residual, cfg_.group);
    if (due) {
#pragma omp parallel for num_threads(nt) schedule(static)
      for (std::ptrdiff_t h = 0; h < static_cast<std::ptrdiff_t>(KV); ++h) flush(layer, static_cast<size_t>(h), cfg_.residual);
    }
  } else if (evicting(m)) {
    evict(layer);
  }
}

void CompressedKv::evict(size_t layer) {
  const size_t KV = shape_.kv_heads, D = shape_.head_dim;
  const size_t seen = heads_[layer * KV]->wpos.empty() ? 0 : static_cast<size_t>(heads_[layer * KV]->wpos.back()) + 1;
  size_t budget = cfg_.budget < 1 ? static_cast<size_t>(std::ceil(cfg_.budget * static_cast<double>(seen)))
                                  : static_cast<size_t>(cfg_.budget);
  budget = std::max<size_t>(budget, cfg_.method == KvMethod::H2O ? 1 : cfg_.sinks + 1);
  auto keep_only = [&](Head& h, const std::vector<uint8_t>& keep) {
    size_t w = 0;
    for (size_t i = 0; i < h.wn(); ++i) {
      if (!keep[i]) continue;
      if (w != i) {
        std::memmove(h.wk.data() + w * D, h.wk.data() + i * D, D * 2);
        std::memmove(h.wv.data() + w * D, h.wv.data() + i * D, D * 2);
        h.wpos[w] = h.wpos[i];
        h.score[w] = h.score[i];
        h.count[w] = h.count[i];
        h.local[w] = h.local[i];
      }
      ++w;
    }
    h.wk.resize(w * D);
    h.wv.resize(w * D);
    h.wpos.resize(w);
    h.score.resize(w);
    h.count.resize(w);
    h.local.resize(w);
  };
  if (cfg_.method == KvMethod::Streaming || cfg_.method == KvMethod::H2O) {
    for (size_t h = 0; h < KV; ++h) {
      Head& hd = *heads_[layer * KV + h];
      const size_t N = hd.wn();
      if (N <= budget) continue;
      std::vector<uint8_t> keep(N, 0);
      if (cfg_.method == KvMethod::Streaming) {
        const size_t sinks = std::min(cfg_.sinks, budget - 1);
        for (size_t i = 0; i < N; ++i) keep[i] = hd.wpos[i] < static_cast<int32_t>(sinks) || i >= N - (budget - sinks);
      } else {
        const size_t recent = budget / 2, heavy = budget - recent;
        for (size_t i = N - recent; i < N; ++i) keep[i] = 1;
        std::vector<size_t> cand(N - recent);
        std::iota(cand.begin(), cand.end(), size_t{0});
        std::stable_sort(cand.begin(), cand.end(), [&](size_t a, size_t b) { return hd.score[a] > hd.score[b]; });
        for (size_t i = 0; i < heavy && i < cand.size(); ++i) keep[cand[i]] = 1;
      }
      keep_only(hd, keep);
    }
    return;
  }
  // EMS: global+local score, head-wise budgets, evict then merge.
  size_t total = 0;
  for (size_t h = 0; h < KV; ++h) total += heads_[layer * KV + h]->wn();
  const size_t layer_budget = budget * KV;
  if (total <= layer_budget) return;
  const double gw = cfg_.global_weight;
  std::vector<std::vector<double>> sc(KV);
  struct Cand {
    double s;
    size_t h, i;
  };
  std::vector<Cand> all;
  std::vector<size_t> hb(KV, 0);
  size_t fixed = 0;
  for (size_t h = 0; h < KV; ++h) {
    Head& hd = *heads_[layer * KV + h];
    double gs = 0, ls = 0;
    for (size_t i = 0; i < hd.wn(); ++i) {
      gs += hd.count[i] > 0 ? hd.score[i] / hd.count[i] : 0.0;
      ls += hd.local[i];
    }
    sc[h].resize(hd.wn());
    for (size_t i = 0; i < hd.wn(); ++i) {
      const double gi = (hd.count[i] > 0 ? hd.score[i] / hd.count[i] : 0.0) / (gs > 0 ? gs : 1.0);
      const double li = hd.local[i] / (ls > 0 ? ls : 1.0);
      sc[h][i] = gw * gi + (1 - gw) * li;
      // sinks and the newest token are always kept
      if (hd.wpos[i] < static_cast<int32_t>(cfg_.sinks) || i + 1 == hd.wn()) {
        ++hb[h];
        ++fixed;
      } else {
        all.push_back({sc[h][i], h, i});
      }
    }
  }
  const size_t free_slots = layer_budget > fixed ? layer_budget - fixed : 0;
  std::stable_sort(all.begin(), all.end(), [](const Cand& a, const Cand& b) { return a.s > b.s; });
  std::vector<std::vector<uint8_t>> keep(KV);
  for (size_t h = 0; h < KV; ++h) {
    const Head& hd = *heads_[layer * KV + h];
    keep[h].assign(hd.wn(), 0);
    for (size_t i = 0; i < hd.wn(); ++i)
      if (hd.wpos[i] < static_cast<int32_t>(cfg_.sinks) || i + 1 == hd.wn()) keep[h][i] = 1;
  }
  for (size_t i = 0; i < all.size() && i < free_slots; ++i) keep[all[i].h][all[i].i] = 1;
  for (size_t h = 0; h < KV; ++h) {
    Head& hd = *heads_[layer * KV + h];
    // merge each evicted token into its most similar kept non-sink key (cosine), score-weighted
    std::vector<float> ke(D), kk(D), ve(D), vk(D);
    for (size_t e = 0; e < hd.wn(); ++e) {
      if (keep[h][e]) continue;
      f16_to_f32(hd.wk.data() + e * D, ke.data(), D);
      const double ne = std::sqrt(std::max(1e-30, static_cast<double>(dot(ke.data(), ke.data(), D))));
      double best = -2;
      size_t bi = SIZE_MAX;
      for (size_t i = 0; i < hd.wn(); ++i) {
        if (!keep[h][i] || hd.wpos[i] < static_cast<int32_t>(cfg_.sinks)) continue;
        f16_to_f32(hd.wk.data() + i * D, kk.data(), D);
        const double nk = std::sqrt(std::max(1e-30, static_cast<double>(dot(kk.data(), kk.data(), D))));
        const double cs = dot(ke.data(), kk.data(), D) / (ne * nk);
        if (cs > best) best = cs, bi = i;
      }
      if (bi == SIZE_MAX) continue;
      const double we = sc[h][e] + 1e-9, wk = sc[h][bi] + 1e-9, a = we / (we + wk);
      f16_to_f32(hd.wk.data() + bi * D, kk.data(), D);
      f16_to_f32(hd.wv.data() + e * D, ve.data(), D);
      f16_to_f32(hd.wv.data() + bi * D, vk.data(), D);
      for (size_t c = 0; c < D; ++c) {
        kk[c] = static_cast<float>(a * ke[c] + (1 - a) * kk[c]);
        vk[c] = static_cast<float>(a * ve[c] + (1 - a) * vk[c]);
      }
      f32_to_f16(kk.data(), hd.wk.data() + bi * D, D);
      f32_to_f16(vk.data(), hd.wv.data() + bi * D, D);
      hd.score[bi] += hd.score[e];
      hd.local[bi] += hd.local[e];
      sc[h][bi] += sc[h][e];
    }
    keep_only(hd, keep[h]);
  }
}

void reference_attention(const float* q, const int32_t* qpos, size_t n_q, size_t group, const float* k,
                         const float* v, const int32_t* kpos, size_t n_kv, size_t D, float scale, size_t window,
                         float* out) {
  if (scale == 0.f) scale = 1.f / std::sqrt(static_cast<float>(D));
  std::vector<double> s(n_kv), acc(D);
  for (size_t t = 0; t < n_q; ++t)
    for (size_t j = 0; j < group; ++j) {
      const float* qr = q + (t * group + j) * D;
      double mx = -std::numeric_limits<double>::infinity();
      for (size_t x = 0; x < n_kv; ++x) {
        if (!visible(kpos[x], qpos[t], window)) {
          s[x] = -std::numeric_limits<double>::infinity();
          continue;
        }
        double d = 0;
        for (size_t c = 0; c < D; ++c) d += static_cast<double>(qr[c]) * k[x * D + c];
        s[x] = d * scale;
        mx = std::max(mx, s[x]);
      }
      std::fill(acc.begin(), acc.end(), 0.0);
      double l = 0;
      if (mx > -std::numeric_limits<double>::infinity())
        for (size_t x = 0; x < n_kv; ++x) {
          if (s[x] == -std::numeric_limits<double>::infinity()) continue;
          const double p = std::exp(s[x] - mx);
          l += p;
          for (size_t c = 0; c < D; ++c) acc[c] += p * v[x * D + c];
        }
      float* o = out + (t * group + j) * D;
      for (size_t c = 0; c < D; ++c) o[c] = l > 0 ? static_cast<float>(acc[c] / l) : 0.f;
    }
}

}  // namespace tersor::kv
