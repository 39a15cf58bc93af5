// tersor's f32 GEMM: C = alpha * op(A) * op(B) + beta * C, row-major, AVX2 + FMA.
//
// The structure is the one of GotoBLAS and BLIS (Goto & van de Geijn, "Anatomy of high-performance
// matrix multiplication", ACM TOMS 34(3), 2008; Van Zee & van de Geijn, "BLIS: A framework for
// rapidly instantiating BLAS functionality", ACM TOMS 41(3), 2015). Five loops around a register-
// blocked micro-kernel:
//
//   for jc in n, step NC            B block (KC x NC) lives in L3, shared by all threads
//     for pc in k, step KC          pack op(B)[pc:pc+KC, jc:jc+NC] into NR-column micro-panels
//       for ic in m, step MC        A block (MC x KC) lives in L2, private to each thread
//         pack op(A)[ic:ic+MC, pc:pc+KC] into MR-row micro-panels
//         for jr in nc, step NR     one B micro-panel (KC x NR) stays in L1 ...
//           for ir in mc, step MR   ... while the A micro-panels stream through it from L2
//             micro-kernel: MR x NR tile of C += A micro-panel * B micro-panel
//
// Packing copies the operands into exactly the order the micro-kernel reads them (unit stride,
// aligned, zero-padded to whole MR/NR tiles), so transposes, leading dimensions, f16/bf16 inputs
// (widened while packing) and ragged edges are all handled there and the micro-kernel has a
// single shape.
//
// Numerics: every C element is a chain of FMAs over p = 0..k-1 in order, restarted per KC block and
// folded into C as  c = alpha*acc (first block, beta == 0)  or  c = fma(alpha, acc, beta*c)  (later
// blocks use beta = 1). The blocking depends only on (m, n, k), never on the thread count, and full
// and edge tiles use the same arithmetic, so results are bitwise identical for any thread count.
#include "tersor/gemm.hpp"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <type_traits>

#include "tersor/half.hpp"
#include "tersor/parallel.hpp"

namespace tersor {
namespace {

// ---- blocking --------------------------------------------------------------------------------
// Micro-tile 6 x 16: 12 ymm accumulators + 2 for the B row + 1 broadcast of A = 15 of the 16 ymm
// registers. Per k step: 2 loads of B, 6 broadcasts of A, 12 FMAs, which keeps both FMA pipes busy
// while staying well inside the load bandwidth (BLIS's Haswell/Zen sgemm kernel has the same shape).
// Measured in isolation on this Zen 5 (A block from L2, B panel from L1), 6 x 16 and 4 x 24 both
// run at the FMA issue limit (~105 GFLOP/s per core, the same as a loop of independent FMAs);
// 6 x 16 wastes less on narrow products (n = 74 pads to 80 columns rather than 96).
constexpr size_t MR = 6;
constexpr size_t NR = 16;
// Cache blocking for a core with 48 KiB L1d and 1 MiB L2 (AMD Zen 5; see `lscpu -C`):
//  * KC: one B micro-panel, KC x NR floats = 16 KiB at KC = 256, plus the A micro-panel it meets
//    (6 KiB), sit in L1 with room for the C tile and prefetched lines;
//  * MC: the packed A block, MC x KC floats (240 KiB at MC = 240), a quarter of L2, so that it
//    survives the B micro-panels streaming through L2 on their way to L1;
//  * NC: the packed B block, KC x NC floats, is shared by the threads from L3 (4 MiB at NC=4096).
// MC from 96 to 336 and KC of 256 or 384 all measured within a few per cent of each other at
// 1024^3 and 2048^3 (inside this shared machine's noise); these sit in the middle of that plateau.
// The blocks actually used are evened out (e.g. k = 300 becomes two KC blocks of 152 and 148) so
// that no block is a sliver.
constexpr size_t MC = 240;
constexpr size_t KC = 256;
constexpr size_t NC = 4096;

// Below this many multiply-adds a single thread is faster than waking the team.
constexpr double kParallelMinFlops = 64.0 * 64.0 * 64.0;

size_t ceil_div(size_t a, size_t b) { return (a + b - 1) / b; }
size_t round_up(size_t a, size_t b) { return ceil_div(a, b) * b; }

// Split `blocks` items into `parts` contiguous ranges as evenly as possible; range `i`.
void split_range(size_t blocks, size_t parts, size_t i, size_t& begin, size_t& end) {
  const size_t base = blocks / parts, extra = blocks % parts;
  begin = i * base + std::min(i, extra);
  end = begin + base + (i < extra ? 1 : 0);
}

// ---- scratch memory -------------------------------------------------------------------------------
// Packing buffers are cached per thread (OpenMP keeps its workers alive between parallel regions),
// so repeated calls do not pay for allocation and page faults. The size is bounded by the blocking.
struct Scratch {
  float* ptr = nullptr;
  size_t cap = 0;
  ~Scratch() { std::free(ptr); }
  float* get(size_t n) {
    // 16 floats of slack: the A packer's overlapping 8-wide stores may run 2 floats past the end.
    n += 16;
    if (n > cap) {
      std::free(ptr);
      ptr = static_cast<float*>(std::aligned_alloc(64, round_up(n * sizeof(float), 64)));
      if (!ptr) {
        cap = 0;
        throw std::bad_alloc();
      }
      cap = n;
    }
    return ptr;
  }
};

Scratch& a_scratch() {
  thread_local Scratch s;
  return s;
}
Scratch& shared_scratch() {
  thread_local Scratch s;
  return s;
}

// ---- element loads: f32, f16 and bf16 all widen to f32 ----------------------------------------------
struct Bf16 {
  uint16_t bits;
};

inline float load1(const float* p) { return *p; }
inline float load1(const uint16_t* p) { return f16_to_f32_scalar(*p); }
inline float load1(const Bf16* p) { return bf16_to_f32_scalar(p->bits); }

inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 load8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline __m256 load8(const Bf16* p) {
  const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}

// In-register transpose of an 8 x 8 block (r[i] = row i on entry, column i on exit).
inline void transpose8(__m256 r[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// ---- packing -------------------------------------------------------------------------------------
// A matrix operand as stored: op(X)(i, p) = x[i*rs + p*cs] (rs = ld, cs = 1 without transpose;
// rs = 1, cs = ld with it).
template <class T>
struct Operand {
  const T* x;
  size_t rs, cs;
  const T* at(size_t i, size_t p) const { return x + i * rs + p * cs; }
};

// Packs rows [i0, i0+mc) x columns [p0, p0+kc) of op(A) into ceil(mc/MR) micro-panels, each kc x MR
// (element (i, p) of a panel at p*MR + i), rows past mc zero-filled.
template <class T>
void pack_a(const Operand<T>& A, size_t i0, size_t mc, size_t p0, size_t kc, float* out) {
  size_t ir = 0;
  if constexpr (std::is_same_v<T, float>) {
    if (A.rs == 1) {
      // op(A) = stored^T: the values of op(A)(i, p) for one p are contiguous, consecutive p are
      // ld apart. Take 8 panels (48 floats = 3 cache lines of each stored row) at a time, so that
      // each line is fetched once, and prefetch 16 rows ahead: the hardware prefetchers do not
      // follow a stride of ld across pages. Each 6-float group is copied exactly (4 + 2).
      constexpr size_t G = 8;
      constexpr size_t kAhead = 16;
      for (; ir + MR <= mc; ir += G * MR) {
        const size_t panels = std::min(G, (mc - ir) / MR);
        for (size_t p = 0; p < kc; ++p) {
          if (p + kAhead < kc)
            for (size_t l = 0; l < panels * MR; l += 16)
              _mm_prefetch(reinterpret_cast<const char*>(A.at(i0 + ir + l, p0 + p + kAhead)), _MM_HINT_T0);
          const float* src = A.at(i0 + ir, p0 + p);
          for (size_t g = 0; g < panels; ++g) {
            float* o = out + (ir + g * MR) * kc + p * MR;
            _mm_storeu_ps(o, _mm_loadu_ps(src + g * MR));
            _mm_storel_pi(reinterpret_cast<__m64*>(o + 4),
                          _mm_loadl_pi(_mm_setzero_ps(), reinterpret_cast<const __m64*>(src + g * MR + 4)));
          }
        }
        if (panels < G) {
          ir += panels * MR;
          break;
        }
      }
    }
  }
  for (; ir < mc; ir += MR) {
    float* const panel = out + ir * kc;
    const size_t mr = std::min(MR, mc - ir);
    size_t p = 0;
    if (mr == MR && A.cs == 1) {
      // Rows are contiguous in p: load 8 columns of each of the 6 rows, transpose (two zero rows
      // fill the 8 x 8 block) and store column q at panel + (p+q)*MR. Each 8-wide store writes 2
      // floats past its 6; the next store (or the scalar tail, or the next panel) overwrites them,
      // and Scratch leaves slack for the very last one.
      const T* row[MR];
      const T* next[MR];  // the next panel's rows (clamped to this block)
      for (size_t i = 0; i < MR; ++i) {
        row[i] = A.at(i0 + ir + i, p0);
        next[i] = A.at(i0 + std::min(ir + MR + i, mc - 1), p0);
      }
      for (; p + 8 <= kc; p += 8) {
        // A row segment here is only KC elements long, too short for the hardware prefetchers
        // to ramp up, and when n is small A streams from memory with little compute to hide the
        // misses (tall-skinny products): fetch the next panel's lines one panel ahead.
        if ((p & 15) == 0)
          for (size_t i = 0; i < MR; ++i) _mm_prefetch(reinterpret_cast<const char*>(next[i] + p), _MM_HINT_T0);
        __m256 r[8];
        for (size_t i = 0; i < MR; ++i) r[i] = load8(row[i] + p);
        r[6] = r[7] = _mm256_setzero_ps();
        transpose8(r);
        for (size_t q = 0; q < 8; ++q) _mm256_storeu_ps(panel + (p + q) * MR, r[q]);
      }
    }
    for (; p < kc; ++p) {
      float* o = panel + p * MR;
      for (size_t i = 0; i < mr; ++i) o[i] = load1(A.at(i0 + ir + i, p0 + p));
      for (size_t i = mr; i < MR; ++i) o[i] = 0.f;
    }
  }
}

// Packs rows [p0, p0+kc) x columns [j0, j0+nc) of op(B) into micro-panels kc x NR (element (p, j)
// of a panel at p*NR + j), columns past nc zero-filled. `panel_begin/end` select a range of
// panels so that threads can share the work.
template <class T>
void pack_b(const Operand<T>& B, size_t p0, size_t kc, size_t j0, size_t nc, size_t panel_begin, size_t panel_end,
            float* out) {
  for (size_t jp = panel_begin; jp < panel_end; ++jp) {
    const size_t jr = jp * NR;
    const size_t nr = std::min(NR, nc - jr);
    float* o = out + jp * NR * kc;
    if (nr == NR && B.cs == 1) {  // rows of op(B) contiguous: copy 16 at a time
      for (size_t p = 0; p < kc; ++p) {
        const T* src = B.at(p0 + p, j0 + jr);
        _mm256_store_ps(o + p * NR, load8(src));
        _mm256_store_ps(o + p * NR + 8, load8(src + 8));
      }
      continue;
    }
    size_t p = 0;
    if (nr == NR && B.rs == 1) {  // op(B) = stored^T: columns contiguous, transpose 8 x 8 blocks
      for (; p + 8 <= kc; p += 8) {
        for (size_t h = 0; h < 2; ++h) {
          __m256 r[8];
          for (size_t j = 0; j < 8; ++j) r[j] = load8(B.at(p0 + p, j0 + jr + h * 8 + j));
          transpose8(r);
          for (size_t q = 0; q < 8; ++q) _mm256_store_ps(o + (p + q) * NR + h * 8, r[q]);
        }
      }
    }
    for (; p < kc; ++p) {
      for (size_t j = 0; j < nr; ++j) o[p * NR + j] = load1(B.at(p0 + p, j0 + jr + j));
      for (size_t j = nr; j < NR; ++j) o[p * NR + j] = 0.f;
    }
  }
}

// ---- micro-kernel -----------------------------------------------------------------------------------
// How a finished accumulator tile is folded into C (see the numerics note at the top).
struct Update {
  float alpha, beta;  // beta == 0: C is written without being read (it may hold NaN)
};

inline float update1(float acc, float c, const Update& u) {
  return u.beta == 0.f ? u.alpha * acc : std::fma(u.alpha, acc, u.beta * c);
}

// acc(6 x 16) = A micro-panel (kc x 6) * B micro-panel (kc x 16), then C = update(acc, C) for a
// full tile. For an edge tile (mr < 6 or nr < 16) the same update is applied element by element to
// the valid part only, with the same arithmetic.
__attribute__((hot)) void micro_kernel(size_t kc, const float* __restrict a, const float* __restrict b, float* c,
                                       size_t ldc, size_t mr, size_t nr, const Update& u) {
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  // Pull the C tile towards L1 while the k loop runs (it is only touched at the end).
  for (size_t i = 0; i < mr; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + NR - 1), _MM_HINT_T0);
  }
#pragma GCC unroll 4
  for (size_t p = 0; p < kc; ++p) {
    const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
    __m256 ai;
    ai = _mm256_broadcast_ss(a + 0);
    c00 = _mm256_fmadd_ps(ai, b0, c00);
    c01 = _mm256_fmadd_ps(ai, b1, c01);
    ai = _mm256_broadcast_ss(a + 1);
    c10 = _mm256_fmadd_ps(ai, b0, c10);
    c11 = _mm256_fmadd_ps(ai, b1, c11);
    ai = _mm256_broadcast_ss(a + 2);
    c20 = _mm256_fmadd_ps(ai, b0, c20);
    c21 = _mm256_fmadd_ps(ai, b1, c21);
    ai = _mm256_broadcast_ss(a + 3);
    c30 = _mm256_fmadd_ps(ai, b0, c30);
    c31 = _mm256_fmadd_ps(ai, b1, c31);
    ai = _mm256_broadcast_ss(a + 4);
    c40 = _mm256_fmadd_ps(ai, b0, c40);
    c41 = _mm256_fmadd_ps(ai, b1, c41);
    ai = _mm256_broadcast_ss(a + 5);
    c50 = _mm256_fmadd_ps(ai, b0, c50);
    c51 = _mm256_fmadd_ps(ai, b1, c51);
    a += MR;
    b += NR;
  }
  const __m256 acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  if (mr == MR && nr == NR) {
    const __m256 va = _mm256_set1_ps(u.alpha);
    if (u.beta == 0.f) {
      for (size_t i = 0; i < MR; ++i) {
        _mm256_storeu_ps(c + i * ldc, _mm256_mul_ps(va, acc[i][0]));
        _mm256_storeu_ps(c + i * ldc + 8, _mm256_mul_ps(va, acc[i][1]));
      }
    } else {
      const __m256 vb = _mm256_set1_ps(u.beta);
      for (size_t i = 0; i < MR; ++i) {
        float* ci = c + i * ldc;
        _mm256_storeu_ps(ci, _mm256_fmadd_ps(va, acc[i][0], _mm256_mul_ps(vb, _mm256_loadu_ps(ci))));
        _mm256_storeu_ps(ci + 8, _mm256_fmadd_ps(va, acc[i][1], _mm256_mul_ps(vb, _mm256_loadu_ps(ci + 8))));
      }
    }
    return;
  }
  alignas(32) float tile[MR][NR];
  for (size_t i = 0; i < MR; ++i) {
    _mm256_store_ps(tile[i], acc[i][0]);
    _mm256_store_ps(tile[i] + 8, acc[i][1]);
  }
  for (size_t i = 0; i < mr; ++i)
    for (size_t j = 0; j < nr; ++j) c[i * ldc + j] = update1(tile[i][j], c[i * ldc + j], u);
}

// C[0:mc, panels jp0..jp1 of the B block] = update(packed A block * packed B panels).
void macro_kernel(size_t mc, size_t nc, size_t kc, size_t jp0, size_t jp1, const float* apack, const float* bpack,
                  float* c, size_t ldc, const Update& u) {
  for (size_t jp = jp0; jp < jp1; ++jp) {
    const size_t jr = jp * NR, nr = std::min(NR, nc - jr);
    const float* bp = bpack + jp * NR * kc;
    for (size_t ir = 0; ir < mc; ir += MR) {
      const size_t mr = std::min(MR, mc - ir);
      micro_kernel(kc, apack + ir * kc, bp, c + ir * ldc + jr, ldc, mr, nr, u);
    }
  }
}

// ---- the driver --------------------------------------------------------------------------------------
template <class TA, class TB>
struct Problem {
  Operand<TA> A;
  Operand<TB> B;
  size_t m, n, k;
  float alpha, beta;
  float* c;
  size_t ldc;
  // Blocking, fixed by (m, n, k) alone so that results do not depend on the thread count.
  size_t kc, nc, n_pc, n_jc;
};

void scale_c(size_t m, size_t n, float beta, float* c, size_t ldc) {
  for (size_t i = 0; i < m; ++i) {
    float* ci = c + i * ldc;
    if (beta == 0.f)
      std::fill(ci, ci + n, 0.f);  // not beta * C: C may hold NaN or Inf
    else if (beta != 1.f)
      for (size_t j = 0; j < n; ++j) ci[j] *= beta;
  }
}

// How the threads share the work. Grid: a tm x tn grid over (rows, columns) of C, every thread
// running the full k loop for its part. Split-k: when C has too few tiles to go round, the threads
// take turns over KC blocks of k instead and the partial products are summed in k order.
struct Plan {
  int threads = 1;
  int tm = 1, tn = 1;
  bool split_k = false;
};

Plan make_plan(size_t m, size_t n, size_t k, size_t n_pc, int max_threads) {
  Plan plan;
  const double flops = 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  if (max_threads <= 1 || flops < 2.0 * kParallelMinFlops) return plan;
  const size_t tiles_m = ceil_div(m, MR), tiles_n = ceil_div(n, NR);
  // Pick the grid whose busiest thread has the fewest tiles; ties go to more row-splitting, which
  // lets each thread keep a private A block and share B (the BLIS choice for the ic loop).
  const size_t t = static_cast<size_t>(max_threads);
  size_t best_load = SIZE_MAX;
  for (size_t tm = t; tm >= 1; --tm) {
    if (t % tm) continue;
    const size_t tn = t / tm;
    const size_t load = ceil_div(tiles_m, tm) * ceil_div(tiles_n, tn);
    if (load < best_load) {
      best_load = load;
      plan.tm = static_cast<int>(tm);
      plan.tn = static_cast<int>(tn);
    }
  }
  plan.threads = max_threads;
  // The grid keeps at least 3/4 of the threads busy: good enough.
  const double grid_eff = static_cast<double>(tiles_m * tiles_n) / static_cast<double>(best_load * t);
  if (grid_eff >= 0.75) return plan;
  // C is a handful of tiles but k is long: share k instead.
  const double k_eff = static_cast<double>(n_pc) / static_cast<double>(ceil_div(n_pc, t) * t);
  if (n_pc >= 2 && k_eff > grid_eff) {
    plan.split_k = true;
    plan.threads = static_cast<int>(std::min<size_t>(t, n_pc));
    return plan;
  }
  // Neither fills the machine: use as many threads as there are tiles.
  if (best_load * t > tiles_m * tiles_n && tiles_m * tiles_n < t) {
    plan.threads = static_cast<int>(tiles_m * tiles_n);
    plan.tm = static_cast<int>(std::min(tiles_m, static_cast<size_t>(plan.threads)));
    plan.tn = plan.threads / plan.tm;
    plan.threads = plan.tm * plan.tn;
  }
  return plan;
}

// The barrier between KC blocks. Waiters spin briefly (~70 us), then sleep on the phase word
// (C++20 atomic wait: a futex, no syscall on the fast path). libgomp's own barrier, by default,
// spins for milliseconds before sleeping; when the machine is oversubscribed (other processes
// running), a spinning waiter uses up its time slice and is then queued behind them, while a
// sleeper is woken promptly. Measured at 1024^3 with 2 threads beside 5 busy processes: 0.55-0.75
// of OpenBLAS's speed with `#pragma omp barrier`, 0.7-1.3 with this one; the same when idle.
// Release/acquire on the phase orders the packing stores before any reads of the packed block.
class Barrier {
 public:
  explicit Barrier(int threads) : threads_(threads) {}
  void wait() {
    if (threads_ <= 1) return;
    const unsigned phase = phase_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) == threads_ - 1) {
      arrived_.store(0, std::memory_order_relaxed);
      phase_.store(phase + 1, std::memory_order_release);
      phase_.notify_all();
      return;
    }
    for (unsigned spins = 0; phase_.load(std::memory_order_acquire) == phase; ++spins) {
      if (spins < 4096)
        _mm_pause();
      else
        phase_.wait(phase, std::memory_order_acquire);
    }
  }

 private:
  const int threads_;
  alignas(64) std::atomic<int> arrived_{0};
  alignas(64) std::atomic<unsigned> phase_{0};
};

// This thread's rows of C in the grid schedule, and the (even) MC step over them.
struct RowShare {
  size_t m0, m1, mc_step;
};

template <class TA, class TB>
RowShare row_share(const Problem<TA, TB>& P, const Plan& plan, int tid) {
  const size_t im = static_cast<size_t>(tid) / static_cast<size_t>(plan.tn);
  size_t t0, t1;
  split_range(ceil_div(P.m, MR), static_cast<size_t>(plan.tm), im, t0, t1);
  RowShare r{std::min(P.m, t0 * MR), std::min(P.m, t1 * MR), MR};
  const size_t rows = r.m1 - r.m0;
  if (rows) r.mc_step = round_up(ceil_div(rows, ceil_div(rows, MC)), MR);
  return r;
}

// Floats of private packing space a thread needs (A block; in split-k also its own B panels).
template <class TA, class TB>
size_t private_floats(const Problem<TA, TB>& P, const Plan& plan, int tid) {
  if (plan.split_k) return (round_up(P.m, MR) + round_up(P.n, NR)) * P.kc;
  return row_share(P, plan, tid).mc_step * P.kc;
}

// One thread's share of the grid schedule. The B block is packed by all threads together into one
// of two shared buffers (double-buffered, so one barrier per KC block is enough: a buffer is only
// repacked after every thread has passed the barrier that follows its next use).
template <class TA, class TB>
void run_grid(const Problem<TA, TB>& P, const Plan& plan, int tid, float* abuf, float* bbuf, Barrier& barrier) {
  const size_t nt = static_cast<size_t>(plan.threads);
  const size_t in = static_cast<size_t>(tid) % static_cast<size_t>(plan.tn);
  const RowShare rows = row_share(P, plan, tid);
  const size_t my_m0 = rows.m0, my_m1 = rows.m1, mc_step = rows.mc_step;
  const size_t bstride = P.kc * round_up(P.nc, NR);
  size_t iter = 0;
  for (size_t jc = 0; jc < P.n; jc += P.nc) {
    const size_t nc = std::min(P.nc, P.n - jc);
    const size_t panels = ceil_div(nc, NR);
    for (size_t pcb = 0; pcb < P.n_pc; ++pcb, ++iter) {
      const size_t pc = pcb * P.kc, kc = std::min(P.kc, P.k - pc);
      float* bpack = bbuf + (iter & 1) * bstride;
      size_t b0, b1;
      split_range(panels, nt, static_cast<size_t>(tid), b0, b1);
      pack_b(P.B, pc, kc, jc, nc, b0, b1, bpack);
      barrier.wait();
      const Update u{P.alpha, pcb == 0 ? P.beta : 1.f};
      size_t jp0, jp1;
      split_range(panels, static_cast<size_t>(plan.tn), in, jp0, jp1);
      if (jp0 == jp1) continue;
      for (size_t ic = my_m0; ic < my_m1; ic += mc_step) {
        const size_t mc = std::min(mc_step, my_m1 - ic);
        pack_a(P.A, ic, mc, pc, kc, abuf);
        macro_kernel(mc, nc, kc, jp0, jp1, abuf, bpack, P.c + ic * P.ldc + jc, P.ldc, u);
      }
    }
  }
}

// Split-k schedule: in round r, thread t computes the KC block r*T + t of the product into its own
// m x n buffer (exact accumulators: alpha = 1, beta = 0), then all threads fold the round's
// partials into C in k order, each taking a share of the rows. Folding uses the same update as
// the grid schedule, so the result is bitwise the same. Chosen only when m x n is a few tiles.
template <class TA, class TB>
void run_split_k(const Problem<TA, TB>& P, const Plan& plan, int tid, float* abuf, float* partials,
                 Barrier& barrier) {
  const size_t nt = static_cast<size_t>(plan.threads);
  const size_t ldp = P.n;
  float* mine = partials + static_cast<size_t>(tid) * P.m * ldp;
  const size_t panels = ceil_div(P.n, NR);
  // B first: the A packer's last overlapping store may spill 2 floats past its block.
  float* bpack = abuf;
  abuf += panels * NR * P.kc;
  size_t r0, r1;
  split_range(P.m, nt, static_cast<size_t>(tid), r0, r1);
  const Update exact{1.f, 0.f};
  for (size_t round = 0; round * nt < P.n_pc; ++round) {
    const size_t pcb = round * nt + static_cast<size_t>(tid);
    if (pcb < P.n_pc) {
      const size_t pc = pcb * P.kc, kc = std::min(P.kc, P.k - pc);
      pack_b(P.B, pc, kc, 0, P.n, 0, panels, bpack);
      pack_a(P.A, 0, P.m, pc, kc, abuf);
      macro_kernel(P.m, P.n, kc, 0, panels, abuf, bpack, mine, ldp, exact);
    }
    barrier.wait();
    for (size_t t = 0; t < nt && round * nt + t < P.n_pc; ++t) {
      const Update u{P.alpha, round * nt + t == 0 ? P.beta : 1.f};
      const float* part = partials + t * P.m * ldp;
      for (size_t i = r0; i < r1; ++i)
        for (size_t j = 0; j < P.n; ++j) P.c[i * P.ldc + j] = update1(part[i * ldp + j], P.c[i * P.ldc + j], u);
    }
    barrier.wait();
  }
}

template <class TA, class TB>
void gemm(Trans ta, Trans tb, size_t m, size_t n, size_t k, float alpha, const TA* a, size_t lda, const TB* b,
          size_t ldb, float beta, float* c, size_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0 || alpha == 0.f) {  // BLAS semantics: A and B are not read
    scale_c(m, n, beta, c, ldc);
    return;
  }
  Problem<TA, TB> P{ta == Trans::No ? Operand<TA>{a, lda, 1} : Operand<TA>{a, 1, lda},
                    tb == Trans::No ? Operand<TB>{b, ldb, 1} : Operand<TB>{b, 1, ldb},
                    m, n, k, alpha, beta, c, ldc, 0, 0, 0, 0};
  P.n_pc = ceil_div(k, KC);
  P.kc = round_up(ceil_div(k, P.n_pc), 8);
  P.n_pc = ceil_div(k, P.kc);
  P.n_jc = ceil_div(n, NC);
  P.nc = round_up(ceil_div(n, P.n_jc), NR);
  const Plan plan = make_plan(m, n, k, P.n_pc, num_threads());
  const size_t grid_shared = 2 * P.kc * round_up(P.nc, NR);
  auto run_serial = [&] {
    const Plan serial;
    Barrier none(1);
    float* bbuf = shared_scratch().get(grid_shared);
    run_grid(P, serial, 0, a_scratch().get(private_floats(P, serial, 0)), bbuf, none);
  };
  if (plan.threads == 1) return run_serial();
  float* shared = shared_scratch().get(plan.split_k ? static_cast<size_t>(plan.threads) * m * n : grid_shared);
  // Exceptions may not leave an OpenMP region, and a thread that gave up would leave the others
  // waiting at a barrier: every thread allocates first, then all agree whether to go on. A team
  // smaller than planned (nested region, OMP_DYNAMIC, thread limits) also falls back to one thread;
  // the result is the same either way.
  bool failed = false, short_team = false;
  Barrier barrier(plan.threads);
#pragma omp parallel num_threads(plan.threads)
  {
    const int tid = omp_get_thread_num();
    if (omp_get_num_threads() != plan.threads) {
      if (tid == 0) short_team = true;
    } else {
      float* abuf = nullptr;
      try {
        abuf = a_scratch().get(private_floats(P, plan, tid));
      } catch (...) {
#pragma omp atomic write
        failed = true;
      }
      barrier.wait();
      bool give_up;
#pragma omp atomic read
      give_up = failed;
      if (!give_up) {
        if (plan.split_k)
          run_split_k(P, plan, tid, abuf, shared, barrier);
        else
          run_grid(P, plan, tid, abuf, shared, barrier);
      }
    }
  }
  if (failed) throw std::bad_alloc();
  if (short_team) run_serial();
}

}  // namespace

void sgemm(Trans ta, Trans tb, size_t m, size_t n, size_t k, float alpha, const float* a, size_t lda,
           const float* b, size_t ldb, float beta, float* c, size_t ldc) {
  gemm<float, float>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void hgemm_f32acc(size_t m, size_t n, size_t k, const uint16_t* a, const uint16_t* b, float* c) {
  gemm<uint16_t, uint16_t>(Trans::No, Trans::No, m, n, k, 1.f, a, k, b, n, 0.f, c, n);
}

void bgemm_f32acc(size_t m, size_t n, size_t k, const uint16_t* a, const uint16_t* b, float* c) {
  gemm<Bf16, Bf16>(Trans::No, Trans::No, m, n, k, 1.f, reinterpret_cast<const Bf16*>(a), k,
                   reinterpret_cast<const Bf16*>(b), n, 0.f, c, n);
}

}  // namespace tersor
