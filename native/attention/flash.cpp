// Flash attention on CPU (see attention.hpp for the contract).
//
// Work decomposition (FlashAttention-2 order: the query block is the outer loop, key/value tiles
// stream past it). A task is (kv head g, query block): the block holds `bq` query tokens of every
// one of the R = heads / kv_heads query heads that read g, M = R * bq rows in all, so each key/value
// tile is loaded once for the whole group (no repeat_kv copy). Per task, per thread:
//   Qt   [d][Mp]   the block's queries, scaled, transposed (column m = row m of the block)
//   St   [Bk][Mp]  scores of one key tile, transposed (row j = key), then P = exp(S - m) in place
//   O    [M][d8]   running output accumulators (f32), m/l running max and sum per row
// and for each key tile:
//   St = K_tile Qt         (6 keys x 16 queries FMA micro-kernel, K read in place with its strides)
//   mask (diagonal / window / sink tiles only), online softmax down each column (vectorised over
//   queries: running max and sum need no horizontal reductions in this layout), rescale O rows
//   O += P^T V_tile        (6 queries x 16 dims FMA micro-kernel, V read in place)
// and finally out = O / l. Blocks with fewer than 8 rows (decode) compute scores as dot products
// along d instead, so one query row does not waste 7/8 of every vector.
#include "tersor/attention.hpp"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <string>

#include "tersor/error.hpp"
#include "tersor/ops.hpp"
#include "tersor/parallel.hpp"

namespace tersor {

// ---- scratch accounting ---------------------------------------------------------------------

namespace {
std::atomic<size_t> g_scratch_current{0};
std::atomic<size_t> g_scratch_peak{0};
}  // namespace

AttentionScratchStats attention_scratch_stats() {
  return {g_scratch_current.load(std::memory_order_relaxed), g_scratch_peak.load(std::memory_order_relaxed)};
}

void attention_scratch_reset_peak() {
  g_scratch_peak.store(g_scratch_current.load(std::memory_order_relaxed), std::memory_order_relaxed);
}

namespace detail {
void* attention_scratch_alloc(size_t bytes) {
  const size_t rounded = (std::max<size_t>(bytes, 1) + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded);
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, rounded);
  const size_t now = g_scratch_current.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  size_t peak = g_scratch_peak.load(std::memory_order_relaxed);
  while (now > peak && !g_scratch_peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
  return p;
}
void attention_scratch_free(void* p, size_t bytes) {
  std::free(p);
  g_scratch_current.fetch_sub(bytes, std::memory_order_relaxed);
}
}  // namespace detail

// ---- parameters -----------------------------------------------------------------------------

namespace {
std::string s(size_t v) { return std::to_string(v); }

/// Whether a [rows, heads, d] view with these strides has no two (row, head) vectors overlapping.
bool disjoint(size_t rows, size_t heads, size_t d, size_t rs, size_t hs) {
  if (rows <= 1 && heads <= 1) return true;
  if (heads <= 1) return rs >= d;
  if (rows <= 1) return hs >= d;
  const bool token_major = hs >= d && rs >= (heads - 1) * hs + d;
  const bool head_major = rs >= d && hs >= (rows - 1) * rs + d;
  return token_major || head_major;
}
}  // namespace

AttentionParams attention_resolve(const AttentionParams& in) {
  AttentionParams p = in;
  require(p.head_dim >= 1 && p.head_dim <= kMaxAttentionHeadDim, ErrorCode::Shape,
          "attention: head_dim must be in 1.." + s(kMaxAttentionHeadDim) + ", got " + s(p.head_dim));
  require(p.heads >= 1, ErrorCode::Shape, "attention: heads must be positive");
  if (p.kv_heads == 0) p.kv_heads = p.heads;
  require(p.heads % p.kv_heads == 0, ErrorCode::Shape,
          "attention: heads (" + s(p.heads) + ") must be a multiple of kv_heads (" + s(p.kv_heads) + ")");
  const size_t lim = size_t{1} << 31;
  require(p.n_kv < lim && p.n_q < lim && p.q_start < lim && p.q_start + p.n_q < lim, ErrorCode::Shape,
          "attention: positions must stay below 2^31");
  // A window wider than every query position hides nothing: drop it (keeps the kernels' int32
  // position arithmetic in range).
  if (p.window >= p.q_start + p.n_q) p.window = 0;
  if (p.window == 0) p.sinks = 0;
  p.sinks = std::min(p.sinks, p.n_kv);
  if (p.scale == 0.f) p.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(p.head_dim)));
  require(std::isfinite(p.scale) && p.scale > 0.f, ErrorCode::Shape, "attention: scale must be finite and positive");
  const size_t d = p.head_dim;
  auto fill = [&](size_t& rs, size_t& hs, size_t heads) {
    if (hs == 0) hs = d;
    if (rs == 0) rs = heads * hs;
  };
  fill(p.q_row_stride, p.q_head_stride, p.heads);
  fill(p.k_row_stride, p.k_head_stride, p.kv_heads);
  fill(p.v_row_stride, p.v_head_stride, p.kv_heads);
  fill(p.o_row_stride, p.o_head_stride, p.heads);
  require(disjoint(p.n_q, p.heads, d, p.o_row_stride, p.o_head_stride), ErrorCode::Shape,
          "attention: output strides (row " + s(p.o_row_stride) + ", head " + s(p.o_head_stride) +
              ") make output vectors overlap");
  return p;
}

static size_t extent(size_t rows, size_t heads, size_t d, size_t rs, size_t hs) {
  return rows == 0 ? 0 : (rows - 1) * rs + (heads - 1) * hs + d;
}
size_t attention_q_extent(const AttentionParams& p) {
  return extent(p.n_q, p.heads, p.head_dim, p.q_row_stride, p.q_head_stride);
}
size_t attention_kv_extent(const AttentionParams& p, bool v) {
  return v ? extent(p.n_kv, p.kv_heads, p.head_dim, p.v_row_stride, p.v_head_stride)
           : extent(p.n_kv, p.kv_heads, p.head_dim, p.k_row_stride, p.k_head_stride);
}
size_t attention_o_extent(const AttentionParams& p) {
  return extent(p.n_q, p.heads, p.head_dim, p.o_row_stride, p.o_head_stride);
}

// ---- micro-kernels --------------------------------------------------------------------------

namespace {

constexpr size_t kBk = 48;      // keys per tile (a multiple of the 6-key micro-kernel)
constexpr size_t kTargetM = 64;  // query rows per task (all heads of the group together)

// The micro-kernels name their accumulators one by one: GCC keeps `__m256 acc[6][2]` arrays on the
// stack (a store per FMA), named variables stay in the 16 ymm registers.
#define TERSOR_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)

/// St[r][0 .. 8 NV) = sum_c K_r[c] * Qt[c][0 .. 8 NV) for JR (1..6) key rows, NV (1..2) vectors.
template <int JR, int NV>
void kernel_qk(const float* const* kp, const float* qt, size_t ldq, size_t d, float* st, size_t lds) {
#define DECL(r)                                       \
  __m256 a##r##0 = _mm256_setzero_ps(), a##r##1 = a##r##0; \
  const float* k##r = kp[JR > r ? r : 0];
  TERSOR_ROWS(DECL)
#undef DECL
  for (size_t c = 0; c < d; ++c) {
    const float* qc = qt + c * ldq;
    const __m256 q0 = _mm256_loadu_ps(qc);
    const __m256 q1 = NV > 1 ? _mm256_loadu_ps(qc + 8) : q0;
#define ROW(r)                                          \
  if constexpr (JR > r) {                               \
    const __m256 b = _mm256_broadcast_ss(k##r + c);     \
    a##r##0 = _mm256_fmadd_ps(b, q0, a##r##0);          \
    if constexpr (NV > 1) a##r##1 = _mm256_fmadd_ps(b, q1, a##r##1); \
  }
    TERSOR_ROWS(ROW)
#undef ROW
  }
#define STORE(r)                                                       \
  if constexpr (JR > r) {                                              \
    _mm256_storeu_ps(st + r * lds, a##r##0);                           \
    if constexpr (NV > 1) _mm256_storeu_ps(st + r * lds + 8, a##r##1); \
  }
  TERSOR_ROWS(STORE)
#undef STORE
}

using QkFn = void (*)(const float* const*, const float*, size_t, size_t, float*, size_t);
template <int NV>
constexpr QkFn kQk[7] = {nullptr, kernel_qk<1, NV>, kernel_qk<2, NV>, kernel_qk<3, NV>,
                         kernel_qk<4, NV>, kernel_qk<5, NV>, kernel_qk<6, NV>};

/// O[r][0 .. 8 NV) += sum_j Pt[j][r] * V_j[0 .. 8 NV) for MR (1..6) query rows; with MASK the last
/// vector of V is loaded under `tail` (head_dim not a multiple of 8).
template <int MR, int NV, bool MASK>
void kernel_pv(const float* pt, size_t ldp, const float* v, size_t ldv, size_t bk, float* o, size_t ldo,
               __m256i tail) {
#define DECL(r)                                                                      \
  __m256 a##r##0 = _mm256_setzero_ps(), a##r##1 = a##r##0;                           \
  if constexpr (MR > r) {                                                            \
    a##r##0 = _mm256_loadu_ps(o + r * ldo);                                          \
    if constexpr (NV > 1) a##r##1 = _mm256_loadu_ps(o + r * ldo + 8);                \
  }
  TERSOR_ROWS(DECL)
#undef DECL
  for (size_t j = 0; j < bk; ++j) {
    const float* vj = v + j * ldv;
    __m256 v0, v1;
    if constexpr (NV > 1) {
      v0 = _mm256_loadu_ps(vj);
      v1 = MASK ? _mm256_maskload_ps(vj + 8, tail) : _mm256_loadu_ps(vj + 8);
    } else {
      v0 = MASK ? _mm256_maskload_ps(vj, tail) : _mm256_loadu_ps(vj);
      v1 = v0;
    }
    const float* pj = pt + j * ldp;
#define ROW(r)                                                          \
  if constexpr (MR > r) {                                               \
    const __m256 b = _mm256_broadcast_ss(pj + r);                       \
    a##r##0 = _mm256_fmadd_ps(b, v0, a##r##0);                          \
    if constexpr (NV > 1) a##r##1 = _mm256_fmadd_ps(b, v1, a##r##1);    \
  }
    TERSOR_ROWS(ROW)
#undef ROW
  }
#define STORE(r)                                                          \
  if constexpr (MR > r) {                                                 \
    _mm256_storeu_ps(o + r * ldo, a##r##0);                               \
    if constexpr (NV > 1) _mm256_storeu_ps(o + r * ldo + 8, a##r##1);     \
  }
  TERSOR_ROWS(STORE)
#undef STORE
}
#undef TERSOR_ROWS

using PvFn = void (*)(const float*, size_t, const float*, size_t, size_t, float*, size_t, __m256i);
template <int NV, bool MASK>
constexpr PvFn kPv[7] = {nullptr,
                         kernel_pv<1, NV, MASK>,
                         kernel_pv<2, NV, MASK>,
                         kernel_pv<3, NV, MASK>,
                         kernel_pv<4, NV, MASK>,
                         kernel_pv<5, NV, MASK>,
                         kernel_pv<6, NV, MASK>};

PvFn pv_fn(size_t mr, int nv, bool mask) {
  if (nv == 2) return mask ? kPv<2, true>[mr] : kPv<2, false>[mr];
  return mask ? kPv<1, true>[mr] : kPv<1, false>[mr];
}

/// Dot product of two d-vectors (masked tail).
inline float dot(const float* a, const float* b, size_t d) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0;
  size_t c = 0;
  for (; c + 16 <= d; c += 16) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + c), _mm256_loadu_ps(b + c), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + c + 8), _mm256_loadu_ps(b + c + 8), s1);
  }
  for (; c + 8 <= d; c += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + c), _mm256_loadu_ps(b + c), s0);
  if (c < d) {
    const __m256i m = simd::tail_mask(d - c);
    s1 = _mm256_fmadd_ps(_mm256_maskload_ps(a + c, m), _mm256_maskload_ps(b + c, m), s1);
  }
  return simd::hsum8(_mm256_add_ps(s0, s1));
}

/// Copies d floats (d small: one K or V row); the tail through a masked load/store.
inline void copy_row(float* dst, const float* src, size_t d) {
  size_t c = 0;
  for (; c + 8 <= d; c += 8) _mm256_storeu_ps(dst + c, _mm256_loadu_ps(src + c));
  if (c < d) {
    const __m256i m = simd::tail_mask(d - c);
    _mm256_maskstore_ps(dst + c, m, _mm256_maskload_ps(src + c, m));
  }
}

struct Layout {
  size_t R;        // query heads per kv head
  size_t Bq;       // query tokens per task
  size_t Mmax;     // R * Bq
  size_t Mp;       // Mmax rounded up to 16
  size_t d8;       // head_dim rounded up to 8
  size_t floats;   // scratch floats per thread
};

Layout layout_for(const AttentionParams& p) {
  Layout L{};
  L.R = p.heads / p.kv_heads;
  L.Bq = std::max<size_t>(1, kTargetM / L.R);
  L.Bq = std::min(L.Bq, std::max<size_t>(p.n_q, 1));
  L.Mmax = L.R * L.Bq;
  L.Mp = (L.Mmax + 15) / 16 * 16;
  L.d8 = (p.head_dim + 7) / 8 * 8;
  // Qt (d x Mp, or M x d row-major for narrow blocks) + St (Bk x Mp) + O (M x d8) + m, l, alpha, pos
  // + packed K (Bk x d) and V (Bk x d8) tiles
  L.floats = p.head_dim * L.Mp + kBk * L.Mp + L.Mmax * L.d8 + 4 * L.Mp + kBk * (p.head_dim + L.d8);
  L.floats = (L.floats + 15) / 16 * 16;
  return L;
}

int threads_for(const AttentionParams& p, size_t tasks, int requested) {
  const double work = static_cast<double>(p.n_q) * static_cast<double>(p.n_kv) * static_cast<double>(p.heads) *
                      static_cast<double>(p.head_dim);
  int nt = requested > 0 ? requested : num_threads();
  if (work < 2e5) nt = 1;  // a fork/join costs more than the work
  return static_cast<int>(std::max<size_t>(1, std::min<size_t>(static_cast<size_t>(nt), tasks)));
}

/// One task: kv head g, query tokens [t0, t0 + bq).
void flash_task(const float* q, const float* k, const float* v, float* out, const AttentionParams& p, const Layout& L,
                size_t g, size_t t0, size_t bq, float* scratch) {
  const size_t d = p.head_dim, R = L.R, M = R * bq;
  const bool wide = M >= 8;
  const size_t Mp = wide ? (M + 7) / 8 * 8 : 8;  // columns of Qt / St in use
  float* qt = scratch;
  float* st = qt + d * L.Mp;
  float* o = st + kBk * L.Mp;
  float* mrow = o + L.Mmax * L.d8;
  float* lrow = mrow + L.Mp;
  float* alpha = lrow + L.Mp;
  int32_t* pos = reinterpret_cast<int32_t*>(alpha + L.Mp);
  float* kpack = alpha + 2 * L.Mp;
  float* vpack = kpack + kBk * d;
  const float scale = p.scale;
  const float ninf = -std::numeric_limits<float>::infinity();

  // Pack the block's queries (scaled): transposed for wide blocks, row-major for narrow ones.
  for (size_t m = 0; m < M; ++m) {
    const size_t r = m / bq, t = m % bq;
    const float* src = q + (t0 + t) * p.q_row_stride + (g * R + r) * p.q_head_stride;
    if (wide) {
      for (size_t c = 0; c < d; ++c) qt[c * Mp + m] = src[c] * scale;
    } else {
      for (size_t c = 0; c < d; ++c) qt[m * d + c] = src[c] * scale;
    }
  }
  if (wide)
    for (size_t c = 0; c < d; ++c) std::fill(qt + c * Mp + M, qt + c * Mp + Mp, 0.f);
  const size_t p_lo = p.q_start + t0, p_hi = p.q_start + t0 + bq - 1;
  for (size_t m = 0; m < Mp; ++m) {
    pos[m] = static_cast<int32_t>(m < M ? p_lo + m % bq : p_hi);
    mrow[m] = ninf;
    lrow[m] = 0.f;
  }
  std::fill(o, o + M * L.d8, 0.f);

  const size_t W = p.window, S = p.sinks;
  const size_t kv_end = p.causal ? std::min(p.n_kv, p_hi + 1) : p.n_kv;
  size_t win_begin = W && p_lo + 1 > W ? p_lo + 1 - W : 0;
  win_begin = std::min(win_begin, kv_end);
  const size_t sink_end = std::min(S, win_begin);
  const __m256i tail = simd::tail_mask(d % 8 ? d % 8 : 8);

  // Prefetches the K and V rows of keys [j0, j1) (the next tile) while the current one computes:
  // under MHA every task streams a different head's K/V prefix from L3, 2 KB-strided rows that the
  // hardware prefetchers do not run ahead of.
  auto prefetch = [&](size_t j0, size_t j1) {
    for (size_t j = j0; j < j1; ++j) {
      const char* kr = reinterpret_cast<const char*>(k + j * p.k_row_stride + g * p.k_head_stride);
      const char* vr = reinterpret_cast<const char*>(v + j * p.v_row_stride + g * p.v_head_stride);
      for (size_t b = 0; b < d * sizeof(float); b += 64) {
        _mm_prefetch(kr + b, _MM_HINT_T0);
        _mm_prefetch(vr + b, _MM_HINT_T0);
      }
    }
  };

  auto process = [&](size_t j0, size_t j1, size_t next_end) {
    const size_t bk = j1 - j0;
    if (wide && j1 < next_end) prefetch(j1, std::min(next_end, j1 + kBk));
    const bool full = (!p.causal || j1 - 1 <= p_lo) && (W == 0 || j0 + W > p_hi || j1 <= S);
    // 1. scores St[j][m]. Wide blocks copy the K and V tiles into contiguous scratch first: a
    // cache's row stride (2 KB for 8 heads of 64) would map a tile onto a few L1 sets, and the copy
    // costs 1/(2M) of the tile's FMAs. Narrow (decode) blocks read each K/V row about once anyway.
    const float* vt = v + j0 * p.v_row_stride + g * p.v_head_stride;
    size_t ldv = p.v_row_stride;
    if (wide) {
      for (size_t j = 0; j < bk; ++j) {
        copy_row(kpack + j * d, k + (j0 + j) * p.k_row_stride + g * p.k_head_stride, d);
        copy_row(vpack + j * L.d8, vt + j * p.v_row_stride, d);
      }
      vt = vpack;
      ldv = L.d8;
      for (size_t jj = 0; jj < bk; jj += 6) {
        const size_t jr = std::min<size_t>(6, bk - jj);
        const float* kp[6];
        for (size_t r = 0; r < jr; ++r) kp[r] = kpack + (jj + r) * d;
        size_t m0 = 0;
        for (; m0 + 16 <= Mp; m0 += 16) kQk<2>[jr](kp, qt + m0, Mp, d, st + jj * Mp + m0, Mp);
        if (m0 < Mp) kQk<1>[jr](kp, qt + m0, Mp, d, st + jj * Mp + m0, Mp);
      }
    } else {
      for (size_t j = 0; j < bk; ++j) {
        const float* kj = k + (j0 + j) * p.k_row_stride + g * p.k_head_stride;
        for (size_t m = 0; m < M; ++m) st[j * Mp + m] = dot(kj, qt + m * d, d);
      }
    }
    // 2. mask and online softmax, 8 query columns at a time
    const __m256 ninf8 = _mm256_set1_ps(ninf);
    for (size_t c0 = 0; c0 < Mp; c0 += 8) {
      __m256 mx = ninf8;
      if (!full) {
        const __m256i pv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(pos + c0));
        const __m256i lowv = _mm256_sub_epi32(pv, _mm256_set1_epi32(static_cast<int>(W)));  // j > p - W
        for (size_t j = 0; j < bk; ++j) {
          const int jpos = static_cast<int>(j0 + j);
          const __m256i jv = _mm256_set1_epi32(jpos);
          __m256i ok = p.causal ? _mm256_xor_si256(_mm256_cmpgt_epi32(jv, pv), _mm256_set1_epi32(-1))
                                : _mm256_set1_epi32(-1);
          if (W && !(j0 + j < S)) ok = _mm256_and_si256(ok, _mm256_cmpgt_epi32(jv, lowv));
          float* sj = st + j * Mp + c0;
          const __m256 sv = _mm256_blendv_ps(ninf8, _mm256_loadu_ps(sj), _mm256_castsi256_ps(ok));
          _mm256_storeu_ps(sj, sv);
          mx = _mm256_max_ps(mx, sv);
        }
      } else {
        for (size_t j = 0; j < bk; ++j) mx = _mm256_max_ps(mx, _mm256_loadu_ps(st + j * Mp + c0));
      }
      const __m256 m_old = _mm256_loadu_ps(mrow + c0);
      const __m256 m_new = _mm256_max_ps(m_old, mx);
      // rows that have seen no visible key yet keep m = -inf; subtract 0 so that exp gives 0, not NaN
      const __m256 m_use = _mm256_blendv_ps(m_new, _mm256_setzero_ps(), _mm256_cmp_ps(m_new, ninf8, _CMP_EQ_OQ));
      const __m256 a = simd::exp8(_mm256_sub_ps(m_old, m_use));
      __m256 sum0 = _mm256_setzero_ps(), sum1 = sum0;
      size_t j = 0;
      for (; j + 2 <= bk; j += 2) {
        float* s0 = st + j * Mp + c0;
        float* s1 = s0 + Mp;
        const __m256 e0 = simd::exp8(_mm256_sub_ps(_mm256_loadu_ps(s0), m_use));
        const __m256 e1 = simd::exp8(_mm256_sub_ps(_mm256_loadu_ps(s1), m_use));
        _mm256_storeu_ps(s0, e0);
        _mm256_storeu_ps(s1, e1);
        sum0 = _mm256_add_ps(sum0, e0);
        sum1 = _mm256_add_ps(sum1, e1);
      }
      if (j < bk) {
        float* s0 = st + j * Mp + c0;
        const __m256 e0 = simd::exp8(_mm256_sub_ps(_mm256_loadu_ps(s0), m_use));
        _mm256_storeu_ps(s0, e0);
        sum0 = _mm256_add_ps(sum0, e0);
      }
      _mm256_storeu_ps(lrow + c0, _mm256_fmadd_ps(_mm256_loadu_ps(lrow + c0), a, _mm256_add_ps(sum0, sum1)));
      _mm256_storeu_ps(mrow + c0, m_new);
      _mm256_storeu_ps(alpha + c0, a);
    }
    // 3. rescale the output rows whose max moved
    for (size_t m = 0; m < M; ++m) {
      const float am = alpha[m];
      if (am == 1.f) continue;
      float* om = o + m * L.d8;
      const __m256 av = _mm256_set1_ps(am);
      for (size_t c = 0; c < L.d8; c += 8) _mm256_storeu_ps(om + c, _mm256_mul_ps(_mm256_loadu_ps(om + c), av));
    }
    // 4. O += P^T V (the packed V rows are zero-padded to d8: no masked loads needed)
    const size_t dv = wide ? L.d8 : d;
    for (size_t m0 = 0; m0 < M; m0 += 6) {
      const size_t mr = std::min<size_t>(6, M - m0);
      for (size_t c0 = 0; c0 < dv; c0 += 16) {
        const size_t nc = std::min<size_t>(16, dv - c0);
        const int nv = nc > 8 ? 2 : 1;
        const bool mask = nc % 8 != 0;
        pv_fn(mr, nv, mask)(st + m0, Mp, vt + c0, ldv, bk, o + m0 * L.d8 + c0, L.d8, tail);
      }
    }
  };

  for (size_t j0 = 0; j0 < sink_end; j0 += kBk) process(j0, std::min(sink_end, j0 + kBk), sink_end);
  for (size_t j0 = win_begin; j0 < kv_end; j0 += kBk) process(j0, std::min(kv_end, j0 + kBk), kv_end);

  // out = O / l
  for (size_t m = 0; m < M; ++m) {
    const size_t r = m / bq, t = m % bq;
    float* dst = out + (t0 + t) * p.o_row_stride + (g * R + r) * p.o_head_stride;
    const float l = lrow[m];
    const float inv = l > 0.f ? 1.f / l : 0.f;
    const float* om = o + m * L.d8;
    for (size_t c = 0; c < d; ++c) dst[c] = om[c] * inv;
  }
}

}  // namespace

size_t flash_attention_workspace_bytes(const AttentionParams& in, int threads) {
  const AttentionParams p = attention_resolve(in);
  const Layout L = layout_for(p);
  const size_t nqb = (p.n_q + L.Bq - 1) / L.Bq;
  const size_t tasks = nqb * p.kv_heads;
  if (tasks == 0) return 0;
  return static_cast<size_t>(threads_for(p, tasks, threads)) * L.floats * sizeof(float);
}

void flash_attention(const float* q, const float* k, const float* v, float* out, const AttentionParams& in) {
  const AttentionParams p = attention_resolve(in);
  if (p.n_q == 0) return;
  const Layout L = layout_for(p);
  const size_t nqb = (p.n_q + L.Bq - 1) / L.Bq;
  const size_t tasks = nqb * p.kv_heads;
  const int nt = threads_for(p, tasks, 0);
  detail::AttentionScratch scratch(static_cast<size_t>(nt) * L.floats * sizeof(float));
  float* base = scratch.as<float>();
  // Under causal masking later query blocks see more keys: hand them out first.
  auto run = [&](size_t i, float* mine) {
    const size_t qb = nqb - 1 - i / p.kv_heads;
    const size_t g = i % p.kv_heads;
    const size_t t0 = qb * L.Bq;
    flash_task(q, k, v, out, p, L, g, t0, std::min(L.Bq, p.n_q - t0), mine);
  };
  if (nt <= 1) {
    for (size_t i = 0; i < tasks; ++i) run(i, base);
    return;
  }
  const std::ptrdiff_t n = static_cast<std::ptrdiff_t>(tasks);
#pragma omp parallel num_threads(nt)
  {
    float* mine = base + static_cast<size_t>(omp_get_thread_num()) * L.floats;
#pragma omp for schedule(dynamic, 1)
    for (std::ptrdiff_t i = 0; i < n; ++i) run(static_cast<size_t>(i), mine);
  }
}

}  // namespace tersor
