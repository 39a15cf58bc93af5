// The trainer's op kernels with their backwards (see tersor/train.hpp), instantiated for float and
// double.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "tersor/error.hpp"
#include "tersor/ops.hpp"
#include "tersor/parallel.hpp"
#include "tersor/train.hpp"

namespace tersor::train {
namespace {

/// Column blocks of `dim` (for column reductions over rows): f(c0, c1).
template <class F>
void parallel_columns(size_t dim, size_t rows, F&& f) {
  constexpr size_t kBlock = 64;
  const size_t blocks = (dim + kBlock - 1) / kBlock;
  parallel_for(blocks, rows * dim, [&](size_t b) { f(b * kBlock, std::min(dim, (b + 1) * kBlock)); });
}

constexpr double kSqrt2OverPi = 0.7978845608028654;
constexpr double kGeluC = 0.044715;
constexpr double kInvSqrt2 = 0.7071067811865476;
constexpr double kInvSqrt2Pi = 0.3989422804014327;

template <class T>
inline T act1(Activation a, T x) {
  switch (a) {
    case Activation::Silu: return x / (T(1) + std::exp(-x));
    case Activation::GeluTanh: {
      const T u = T(kSqrt2OverPi) * (x + T(kGeluC) * x * x * x);
      return T(0.5) * x * (T(1) + std::tanh(u));
    }
    case Activation::GeluErf: return T(0.5) * x * (T(1) + std::erf(x * T(kInvSqrt2)));
  }
  return x;
}

template <class T>
inline T dact1(Activation a, T x) {
  switch (a) {
    case Activation::Silu: {
      const T s = T(1) / (T(1) + std::exp(-x));
      return s * (T(1) + x * (T(1) - s));
    }
    case Activation::GeluTanh: {
      const T u = T(kSqrt2OverPi) * (x + T(kGeluC) * x * x * x);
      const T t = std::tanh(u);
      const T du = T(kSqrt2OverPi) * (T(1) + T(3 * kGeluC) * x * x);
      return T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * du;
    }
    case Activation::GeluErf:
      return T(0.5) * (T(1) + std::erf(x * T(kInvSqrt2))) + x * T(kInvSqrt2Pi) * std::exp(T(-0.5) * x * x);
  }
  return T(1);
}

/// x[i] = exp(x[i]): the runtime's vectorised exp (ops.hpp, under 1 ulp) for float, std::exp for double.
inline void exp_inplace(double* x, size_t n) {
  for (size_t i = 0; i < n; ++i) x[i] = std::exp(x[i]);
}
inline void exp_inplace(float* x, size_t n) {
#if defined(__AVX2__) && defined(__FMA__)
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, simd::exp8(_mm256_loadu_ps(x + i)));
  if (i < n) {
    const __m256i m = simd::tail_mask(n - i);
    _mm256_maskstore_ps(x + i, m, simd::exp8(_mm256_maskload_ps(x + i, m)));
  }
#else
  for (size_t i = 0; i < n; ++i) x[i] = std::exp(x[i]);
#endif
}

}  // namespace

Activation activation_of(MlpActivation a) {
  switch (a) {
    case MlpActivation::Silu: return Activation::Silu;
    case MlpActivation::GeluTanh: return Activation::GeluTanh;
    case MlpActivation::Gelu: return Activation::GeluErf;
  }
  return Activation::Silu;
}

// ---- gemm --------------------------------------------------------------------------------------

template <>
void gemm<float>(Trans ta, Trans tb, size_t m, size_t n, size_t k, float alpha, const float* a, size_t lda,
                 const float* b, size_t ldb, float beta, float* c, size_t ldc) {
  if (m == 0 || n == 0) return;
  sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

template <>
void gemm<double>(Trans ta, Trans tb, size_t m, size_t n, size_t k, double alpha, const double* a, size_t lda,
                  const double* b, size_t ldb, double beta, double* c, size_t ldc) {
  if (m == 0 || n == 0) return;
  parallel_for(m, m * n * std::max<size_t>(k, 1), [&](size_t i) {
    double* ci = c + i * ldc;
    for (size_t j = 0; j < n; ++j) ci[j] = beta == 0.0 ? 0.0 : beta * ci[j];
    for (size_t p = 0; p < k; ++p) {
      const double aip = alpha * (ta == Trans::No ? a[i * lda + p] : a[p * lda + i]);
      if (tb == Trans::No) {
        const double* bp = b + p * ldb;
        for (size_t j = 0; j < n; ++j) ci[j] += aip * bp[j];
      } else {
        for (size_t j = 0; j < n; ++j) ci[j] += aip * b[j * ldb + p];
      }
    }
  });
}

// ---- embedding ---------------------------------------------------------------------------------

template <class T>
void embedding_forward(const T* table, size_t vocab, size_t dim, const int32_t* ids, size_t n, T* out) {
  for (size_t t = 0; t < n; ++t)
    require(ids[t] >= 0 && static_cast<size_t>(ids[t]) < vocab, ErrorCode::Range,
            "token id " + std::to_string(ids[t]) + " at index " + std::to_string(t) + " is outside the vocabulary [0, " +
                std::to_string(vocab) + ")");
  parallel_for(n, n * dim, [&](size_t t) {
    std::memcpy(out + t * dim, table + static_cast<size_t>(ids[t]) * dim, dim * sizeof(T));
  });
}

template <class T>
void embedding_backward(const T* dout, const int32_t* ids, size_t n, size_t dim, T* dtable) {
  // Split by columns: every thread adds its columns of all tokens in token order.
  parallel_columns(dim, n, [&](size_t c0, size_t c1) {
    for (size_t t = 0; t < n; ++t) {
      T* dst = dtable + static_cast<size_t>(ids[t]) * dim;
      const T* src = dout + t * dim;
      for (size_t c = c0; c < c1; ++c) dst[c] += src[c];
    }
  });
}

// ---- norms -------------------------------------------------------------------------------------

template <class T>
void rmsnorm_forward(const T* x, const T* w, T* y, T* rstd, size_t rows, size_t dim, double eps) {
  parallel_for(rows, rows * dim, [&](size_t r) {
    const T* xr = x + r * dim;
    double ss = 0;
    for (size_t i = 0; i < dim; ++i) ss += static_cast<double>(xr[i]) * static_cast<double>(xr[i]);
    const T inv = static_cast<T>(1.0 / std::sqrt(ss / static_cast<double>(dim) + eps));
    rstd[r] = inv;
    T* yr = y + r * dim;
    for (size_t i = 0; i < dim; ++i) yr[i] = xr[i] * inv * (w ? w[i] : T(1));
  });
}

template <class T>
void rmsnorm_backward(const T* dy, const T* x, const T* w, const T* rstd, T* dx, T* dw, size_t rows, size_t dim) {
  parallel_for(rows, rows * dim, [&](size_t r) {
    const T* xr = x + r * dim;
    const T* dyr = dy + r * dim;
    const T inv = rstd[r];
    // dxhat = dy * w;  dx = inv * (dxhat - xhat * mean(dxhat * xhat))
    double dot = 0;
    for (size_t i = 0; i < dim; ++i) dot += static_cast<double>(dyr[i] * (w ? w[i] : T(1))) * static_cast<double>(xr[i] * inv);
    const T mdot = static_cast<T>(dot / static_cast<double>(dim));
    T* dxr = dx + r * dim;
    for (size_t i = 0; i < dim; ++i) dxr[i] += inv * (dyr[i] * (w ? w[i] : T(1)) - xr[i] * inv * mdot);
  });
  if (dw)
    parallel_columns(dim, rows, [&](size_t c0, size_t c1) {
      for (size_t r = 0; r < rows; ++r) {
        const T* xr = x + r * dim;
        const T* dyr = dy + r * dim;
        const T inv = rstd[r];
        for (size_t c = c0; c < c1; ++c) dw[c] += dyr[c] * xr[c] * inv;
      }
    });
}

template <class T>
void layernorm_forward(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd, size_t rows, size_t dim,
                       double eps) {
  parallel_for(rows, rows * dim, [&](size_t r) {
    const T* xr = x + r * dim;
    double s = 0;
    for (size_t i = 0; i < dim; ++i) s += static_cast<double>(xr[i]);
    const double mu = s / static_cast<double>(dim);
    double v = 0;
    for (size_t i = 0; i < dim; ++i) {
      const double d = static_cast<double>(xr[i]) - mu;
      v += d * d;
    }
    const double inv = 1.0 / std::sqrt(v / static_cast<double>(dim) + eps);
    mean[r] = static_cast<T>(mu);
    rstd[r] = static_cast<T>(inv);
    T* yr = y + r * dim;
    const T m = static_cast<T>(mu), iv = static_cast<T>(inv);
    for (size_t i = 0; i < dim; ++i) yr[i] = (xr[i] - m) * iv * (w ? w[i] : T(1)) + (b ? b[i] : T(0));
  });
}

template <class T>
void layernorm_backward(const T* dy, const T* x, const T* w, const T* mean, const T* rstd, T* dx, T* dw, T* db,
                        size_t rows, size_t dim) {
  parallel_for(rows, rows * dim, [&](size_t r) {
    const T* xr = x + r * dim;
    const T* dyr = dy + r * dim;
    const T m = mean[r], inv = rstd[r];
    // dx = inv * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
    double s1 = 0, s2 = 0;
    for (size_t i = 0; i < dim; ++i) {
      const double g = static_cast<double>(dyr[i] * (w ? w[i] : T(1)));
      s1 += g;
      s2 += g * static_cast<double>((xr[i] - m) * inv);
    }
    const T m1 = static_cast<T>(s1 / static_cast<double>(dim)), m2 = static_cast<T>(s2 / static_cast<double>(dim));
    T* dxr = dx + r * dim;
    for (size_t i = 0; i < dim; ++i) dxr[i] += inv * (dyr[i] * (w ? w[i] : T(1)) - m1 - (xr[i] - m) * inv * m2);
  });
  if (dw || db)
    parallel_columns(dim, rows, [&](size_t c0, size_t c1) {
      for (size_t r = 0; r < rows; ++r) {
        const T* xr = x + r * dim;
        const T* dyr = dy + r * dim;
        const T m = mean[r], inv = rstd[r];
        for (size_t c = c0; c < c1; ++c) {
          if (dw) dw[c] += dyr[c] * (xr[c] - m) * inv;
          if (db) db[c] += dyr[c];
        }
      }
    });
}

// ---- RoPE --------------------------------------------------------------------------------------

template <class T>
RopeTable<T>::RopeTable(const RopeConfig& c, size_t n) : cfg(c), positions(n), half(c.rot() / 2) {
  const std::vector<double> inv = rope_inv_freq(c);
  cos.resize(n * half);
  sin.resize(n * half);
  for (size_t p = 0; p < n; ++p)
    for (size_t i = 0; i < half; ++i) {
      const double a = static_cast<double>(p) * inv[i];
      cos[p * half + i] = static_cast<T>(std::cos(a));
      sin[p * half + i] = static_cast<T>(std::sin(a));
    }
}

template <class T>
void rope_rotate(T* x, size_t tokens, size_t heads, const int32_t* pos, const RopeTable<T>& tab, bool inverse,
                 size_t token_stride) {
  const size_t d = tab.cfg.head_dim, half = tab.half;
  if (token_stride == 0) token_stride = heads * d;
  const bool neox = tab.cfg.style == RopeStyle::NeoX;
  for (size_t t = 0; t < tokens; ++t)
    require(pos[t] >= 0 && static_cast<size_t>(pos[t]) < tab.positions, ErrorCode::Range,
            "rope: position " + std::to_string(pos[t]) + " outside the table of " + std::to_string(tab.positions));
  parallel_for(tokens, tokens * heads * d * 4, [&](size_t t) {
    const T* c = tab.cos.data() + static_cast<size_t>(pos[t]) * half;
    const T* s = tab.sin.data() + static_cast<size_t>(pos[t]) * half;
    for (size_t h = 0; h < heads; ++h) {
      T* xh = x + t * token_stride + h * d;
      for (size_t i = 0; i < half; ++i) {
        T& a = neox ? xh[i] : xh[2 * i];
        T& b = neox ? xh[i + half] : xh[2 * i + 1];
        const T sn = inverse ? -s[i] : s[i];
        const T a0 = a, b0 = b;
        a = a0 * c[i] - b0 * sn;
        b = b0 * c[i] + a0 * sn;
      }
    }
  });
}

// ---- attention ---------------------------------------------------------------------------------

namespace {
constexpr size_t kAttnBlock = 64;

/// First key visible to query position p.
inline size_t first_key(size_t p, size_t window) { return window && p + 1 > window ? p + 1 - window : 0; }
}  // namespace

// Both passes work per (sequence, kv head): the `group` query heads that share the kv head are
// stacked into one [group * rows, head_dim] block per query block, so each key / value tile is
// multiplied once per block for the whole group (larger, fewer products).

template <class T>
void attention_forward(const T* q, const T* k, const T* v, T* out, T* lse, const AttentionShape& s) {
  const size_t S = s.seq, H = s.heads, KV = s.kv_heads, D = s.head_dim, HD = H * D, group = H / KV;
  const size_t QS = s.q_stride ? s.q_stride : HD, KVD = s.kv_stride ? s.kv_stride : KV * D;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(D)));
  const size_t tasks = s.batch * KV;
  const int nt = threads_for(tasks, tasks * group * S * S * D / 64);
  const std::ptrdiff_t nts = static_cast<std::ptrdiff_t>(tasks);
#pragma omp parallel num_threads(nt)
  {
    const size_t rows_max = group * std::min(kAttnBlock, S);
    std::vector<T> sc(rows_max * S), qs(rows_max * D), os(rows_max * D);
#pragma omp for schedule(dynamic, 1)
    for (std::ptrdiff_t task = 0; task < nts; ++task) {
      const size_t b = static_cast<size_t>(task) / KV, g = static_cast<size_t>(task) % KV;
      const size_t base = b * S;
      const T* kg = k + base * KVD + g * D;
      const T* vg = v + base * KVD + g * D;
      for (size_t r0 = 0; r0 < S; r0 += kAttnBlock) {
        const size_t r1 = std::min(S, r0 + kAttnBlock), br = r1 - r0, rows = group * br;
        const size_t k0 = first_key(r0, s.window), nk = r1 - k0;
        // stacked row hh * br + i = query head g * group + hh at position r0 + i
        for (size_t hh = 0; hh < group; ++hh)
          for (size_t i = 0; i < br; ++i)
            std::memcpy(qs.data() + (hh * br + i) * D, q + (base + r0 + i) * QS + (g * group + hh) * D, D * sizeof(T));
        gemm<T>(Trans::No, Trans::Yes, rows, nk, D, scale, qs.data(), D, kg + k0 * KVD, KVD, T(0), sc.data(), nk);
        for (size_t row = 0; row < rows; ++row) {
          const size_t hh = row / br, i = row % br, p = r0 + i;
          const size_t j0 = first_key(p, s.window) - k0, j1 = p + 1 - k0;
          T* sr = sc.data() + row * nk;
          T mx = -std::numeric_limits<T>::infinity();
          for (size_t j = j0; j < j1; ++j) mx = std::max(mx, sr[j]);
          std::fill(sr, sr + j0, T(0));
          std::fill(sr + j1, sr + nk, T(0));
          for (size_t j = j0; j < j1; ++j) sr[j] -= mx;
          exp_inplace(sr + j0, j1 - j0);
          double sum = 0;
          for (size_t j = j0; j < j1; ++j) sum += static_cast<double>(sr[j]);
          const T inv = static_cast<T>(1.0 / sum);
          for (size_t j = j0; j < j1; ++j) sr[j] *= inv;
          lse[(base + p) * H + g * group + hh] = static_cast<T>(static_cast<double>(mx) + std::log(sum));
        }
        gemm<T>(Trans::No, Trans::No, rows, D, nk, T(1), sc.data(), nk, vg + k0 * KVD, KVD, T(0), os.data(), D);
        for (size_t hh = 0; hh < group; ++hh)
          for (size_t i = 0; i < br; ++i)
            std::memcpy(out + (base + r0 + i) * HD + (g * group + hh) * D, os.data() + (hh * br + i) * D, D * sizeof(T));
      }
    }
  }
}

template <class T>
void attention_backward(const T* q, const T* k, const T* v, const T* out, const T* lse, const T* dout, T* dq, T* dk,
                        T* dv, const AttentionShape& s) {
  const size_t S = s.seq, H = s.heads, KV = s.kv_heads, D = s.head_dim, HD = H * D, group = H / KV;
  const size_t QS = s.q_stride ? s.q_stride : HD, KVD = s.kv_stride ? s.kv_stride : KV * D;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(D)));
  const size_t tasks = s.batch * KV;
  const int nt = threads_for(tasks, tasks * group * S * S * D / 64);
  const std::ptrdiff_t nts = static_cast<std::ptrdiff_t>(tasks);
#pragma omp parallel num_threads(nt)
  {
    const size_t rows_max = group * std::min(kAttnBlock, S);
    std::vector<T> pm(rows_max * S), dp(rows_max * S), qs(rows_max * D), dos(rows_max * D), dqs(rows_max * D);
    std::vector<T> lrow(rows_max), drow_sum(rows_max);
#pragma omp for schedule(dynamic, 1)
    for (std::ptrdiff_t task = 0; task < nts; ++task) {
      const size_t b = static_cast<size_t>(task) / KV, g = static_cast<size_t>(task) % KV;
      const size_t base = b * S;
      for (size_t t = 0; t < S; ++t) {
        std::fill(dk + (base + t) * KVD + g * D, dk + (base + t) * KVD + (g + 1) * D, T(0));
        std::fill(dv + (base + t) * KVD + g * D, dv + (base + t) * KVD + (g + 1) * D, T(0));
      }
      const T* kg = k + base * KVD + g * D;
      const T* vg = v + base * KVD + g * D;
      T* dkg = dk + base * KVD + g * D;
      T* dvg = dv + base * KVD + g * D;
      for (size_t r0 = 0; r0 < S; r0 += kAttnBlock) {
        const size_t r1 = std::min(S, r0 + kAttnBlock), br = r1 - r0, rows = group * br;
        const size_t k0 = first_key(r0, s.window), nk = r1 - k0;
        for (size_t hh = 0; hh < group; ++hh) {
          const size_t h = g * group + hh;
          for (size_t i = 0; i < br; ++i) {
            const size_t row = hh * br + i, t = base + r0 + i;
            std::memcpy(qs.data() + row * D, q + t * QS + h * D, D * sizeof(T));
            std::memcpy(dos.data() + row * D, dout + t * HD + h * D, D * sizeof(T));
            double di = 0;
            for (size_t d = 0; d < D; ++d)
              di += static_cast<double>(dout[t * HD + h * D + d]) * static_cast<double>(out[t * HD + h * D + d]);
            drow_sum[row] = static_cast<T>(di);
            lrow[row] = lse[t * H + h];
          }
        }
        // P = exp(scale q k^T - lse) on visible keys; dP = dO V^T
        gemm<T>(Trans::No, Trans::Yes, rows, nk, D, scale, qs.data(), D, kg + k0 * KVD, KVD, T(0), pm.data(), nk);
        gemm<T>(Trans::No, Trans::Yes, rows, nk, D, T(1), dos.data(), D, vg + k0 * KVD, KVD, T(0), dp.data(), nk);
        for (size_t row = 0; row < rows; ++row) {
          const size_t p = r0 + row % br, j0 = first_key(p, s.window) - k0, j1 = p + 1 - k0;
          const T l = lrow[row], Di = drow_sum[row];
          T* prow = pm.data() + row * nk;
          T* drow = dp.data() + row * nk;
          std::fill(prow, prow + j0, T(0));
          std::fill(prow + j1, prow + nk, T(0));
          std::fill(drow, drow + j0, T(0));
          std::fill(drow + j1, drow + nk, T(0));
          for (size_t j = j0; j < j1; ++j) prow[j] -= l;
          exp_inplace(prow + j0, j1 - j0);
          for (size_t j = j0; j < j1; ++j) drow[j] = prow[j] * (drow[j] - Di) * scale;  // dS (scale folded in)
        }
        // dQ = dS K;  dK += dS^T Q;  dV += P^T dO
        gemm<T>(Trans::No, Trans::No, rows, D, nk, T(1), dp.data(), nk, kg + k0 * KVD, KVD, T(0), dqs.data(), D);
        gemm<T>(Trans::Yes, Trans::No, nk, D, rows, T(1), dp.data(), nk, qs.data(), D, T(1), dkg + k0 * KVD, KVD);
        gemm<T>(Trans::Yes, Trans::No, nk, D, rows, T(1), pm.data(), nk, dos.data(), D, T(1), dvg + k0 * KVD, KVD);
        for (size_t hh = 0; hh < group; ++hh)
          for (size_t i = 0; i < br; ++i)
            std::memcpy(dq + (base + r0 + i) * QS + (g * group + hh) * D, dqs.data() + (hh * br + i) * D, D * sizeof(T));
      }
    }
  }
}

// ---- activations -------------------------------------------------------------------------------

template <class T>
void activation_forward(Activation act, const T* x, T* y, size_t n) {
  const size_t chunks = (n + 4095) / 4096;
  parallel_for(chunks, n * 8, [&](size_t c) {
    for (size_t i = c * 4096, e = std::min(n, i + 4096); i < e; ++i) y[i] = act1(act, x[i]);
  });
}

template <class T>
void activation_backward(Activation act, const T* x, const T* dy, T* dx, size_t n) {
  const size_t chunks = (n + 4095) / 4096;
  parallel_for(chunks, n * 8, [&](size_t c) {
    for (size_t i = c * 4096, e = std::min(n, i + 4096); i < e; ++i) dx[i] = dy[i] * dact1(act, x[i]);
  });
}

template <class T>
void gated_forward(Activation act, const T* g, const T* u, T* out, size_t n) {
  const size_t chunks = (n + 4095) / 4096;
  parallel_for(chunks, n * 8, [&](size_t c) {
    for (size_t i = c * 4096, e = std::min(n, i + 4096); i < e; ++i) out[i] = act1(act, g[i]) * u[i];
  });
}

template <class T>
void gated_backward(Activation act, const T* g, const T* u, const T* dout, T* dg, T* du, size_t n) {
  const size_t chunks = (n + 4095) / 4096;
  parallel_for(chunks, n * 8, [&](size_t c) {
    for (size_t i = c * 4096, e = std::min(n, i + 4096); i < e; ++i) {
      const T a = act1(act, g[i]);
      const T d = dout[i];
      dg[i] = d * u[i] * dact1(act, g[i]);
      du[i] = d * a;
    }
  });
}

template <class T>
void gated_forward_fused(Activation act, const T* gu, T* out, size_t rows, size_t cols) {
  parallel_for(rows, rows * cols * 8, [&](size_t r) {
    const T* g = gu + r * 2 * cols;
    const T* u = g + cols;
    T* o = out + r * cols;
    if (act != Activation::Silu) {
      for (size_t i = 0; i < cols; ++i) o[i] = act1(act, g[i]) * u[i];
      return;
    }
    T e[256];
    for (size_t c0 = 0; c0 < cols; c0 += 256) {
      const size_t m = std::min<size_t>(256, cols - c0);
      for (size_t i = 0; i < m; ++i) e[i] = -g[c0 + i];
      exp_inplace(e, m);
      for (size_t i = 0; i < m; ++i) o[c0 + i] = g[c0 + i] / (T(1) + e[i]) * u[c0 + i];
    }
  });
}

template <class T>
void gated_backward_fused(Activation act, const T* gu, const T* dout, T* dgu, size_t rows, size_t cols) {
  parallel_for(rows, rows * cols * 8, [&](size_t r) {
    const T* g = gu + r * 2 * cols;
    const T* u = g + cols;
    const T* d = dout + r * cols;
    T* dg = dgu + r * 2 * cols;
    T* du = dg + cols;
    if (act != Activation::Silu) {
      for (size_t i = 0; i < cols; ++i) {
        dg[i] = d[i] * u[i] * dact1(act, g[i]);
        du[i] = d[i] * act1(act, g[i]);
      }
      return;
    }
    T e[256];
    for (size_t c0 = 0; c0 < cols; c0 += 256) {
      const size_t m = std::min<size_t>(256, cols - c0);
      for (size_t i = 0; i < m; ++i) e[i] = -g[c0 + i];
      exp_inplace(e, m);
      for (size_t i = 0; i < m; ++i) {
        const size_t k = c0 + i;
        const T sg = T(1) / (T(1) + e[i]);  // sigmoid(g)
        dg[k] = d[k] * u[k] * sg * (T(1) + g[k] * (T(1) - sg));
        du[k] = d[k] * g[k] * sg;
      }
    }
  });
}

// ---- linear ------------------------------------------------------------------------------------

template <class T>
void linear_forward(const T* x, const T* w, const T* b, T* y, size_t rows, size_t in, size_t out) {
  gemm<T>(Trans::No, Trans::Yes, rows, out, in, T(1), x, in, w, in, T(0), y, out);
  if (b)
    parallel_for(rows, rows * out, [&](size_t r) {
      T* yr = y + r * out;
      for (size_t o = 0; o < out; ++o) yr[o] += b[o];
    });
}

template <class T>
void linear_backward(const T* x, const T* w, const T* dy, T* dx, bool accumulate_dx, T* dw, T* db, size_t rows,
                     size_t in, size_t out) {
  if (dx) gemm<T>(Trans::No, Trans::No, rows, in, out, T(1), dy, out, w, in, accumulate_dx ? T(1) : T(0), dx, in);
  if (dw) gemm<T>(Trans::Yes, Trans::No, out, in, rows, T(1), dy, out, x, in, T(1), dw, in);
  if (db)
    parallel_columns(out, rows, [&](size_t c0, size_t c1) {
      for (size_t r = 0; r < rows; ++r) {
        const T* dyr = dy + r * out;
        for (size_t c = c0; c < c1; ++c) db[c] += dyr[c];
      }
    });
}

// ---- loss --------------------------------------------------------------------------------------

void validate_targets(const Targets& t, size_t rows, size_t vocab) {
  const long V = static_cast<long>(vocab);
  auto bad_value = [](const char* what, size_t i, double v) {
    fail(ErrorCode::Range, std::string("targets.") + what + "[" + std::to_string(i) + "] = " + std::to_string(v) +
                               " must be finite and >= 0");
  };
  switch (t.kind) {
    case TargetKind::Hard:
      require(t.ids_size == rows, ErrorCode::Shape,
              "targets.ids has " + std::to_string(t.ids_size) + " entries, expected batch * seqLen = " + std::to_string(rows));
      for (size_t i = 0; i < rows; ++i)
        require(t.ids[i] >= -1 && t.ids[i] < V, ErrorCode::Range,
                "targets.ids[" + std::to_string(i) + "] = " + std::to_string(t.ids[i]) + " is outside [-1, " +
                    std::to_string(vocab) + ")");
      break;
    case TargetKind::Dense:
      require(t.probs_size == rows * vocab, ErrorCode::Shape,
              "targets.probs has " + std::to_string(t.probs_size) + " entries, expected batch * seqLen * vocab = " +
                  std::to_string(rows * vocab));
      for (size_t i = 0; i < rows * vocab; ++i)
        if (!(std::isfinite(t.probs[i]) && t.probs[i] >= 0)) bad_value("probs", i, t.probs[i]);
      break;
    case TargetKind::Sparse:
      require(t.k >= 1, ErrorCode::Range, "targets.k must be at least 1");
      require(t.ids_size == rows * t.k, ErrorCode::Shape,
              "targets.ids has " + std::to_string(t.ids_size) + " entries, expected batch * seqLen * k = " +
                  std::to_string(rows * t.k));
      require(t.weights_size == rows * t.k, ErrorCode::Shape,
              "targets.weights has " + std::to_string(t.weights_size) + " entries, expected batch * seqLen * k = " +
                  std::to_string(rows * t.k));
      for (size_t i = 0; i < rows * t.k; ++i) {
        require(t.ids[i] >= -1 && t.ids[i] < V, ErrorCode::Range,
                "targets.ids[" + std::to_string(i) + "] = " + std::to_string(t.ids[i]) + " is outside [-1, " +
                    std::to_string(vocab) + ")");
        if (!(std::isfinite(t.weights[i]) && t.weights[i] >= 0)) bad_value("weights", i, t.weights[i]);
      }
      break;
  }
}

template <class T>
LossSum cross_entropy(const T* logits, size_t rows, size_t vocab, const Targets& t, T* dlogits, double scale) {
  std::vector<double> row_loss(rows, 0.0);
  std::vector<unsigned char> counted(rows, 0);
  parallel_for(rows, rows * vocab * 4, [&](size_t r) {
    const T* z = logits + r * vocab;
    T* dz = dlogits ? dlogits + r * vocab : nullptr;
    // target mass and whether the row counts
    double mass = 0;
    bool any = false;
    switch (t.kind) {
      case TargetKind::Hard:
        any = t.ids[r] >= 0;
        mass = any ? 1.0 : 0.0;
        break;
      case TargetKind::Dense:
        for (size_t j = 0; j < vocab; ++j) mass += static_cast<double>(t.probs[r * vocab + j]);
        any = mass > 0;
        break;
      case TargetKind::Sparse:
        for (size_t i = 0; i < t.k; ++i)
          if (t.ids[r * t.k + i] >= 0) {
            any = true;
            mass += static_cast<double>(t.weights[r * t.k + i]);
          }
        break;
    }
    if (!any) {
      if (dz) std::fill(dz, dz + vocab, T(0));
      return;
    }
    counted[r] = 1;
    double mx = -std::numeric_limits<double>::infinity();
    for (size_t j = 0; j < vocab; ++j) mx = std::max(mx, static_cast<double>(z[j]));
    double sum = 0;
    for (size_t j = 0; j < vocab; ++j) sum += std::exp(static_cast<double>(z[j]) - mx);
    const double lse = mx + std::log(sum);
    double loss = 0;
    switch (t.kind) {
      case TargetKind::Hard: loss = lse - static_cast<double>(z[t.ids[r]]); break;
      case TargetKind::Dense:
        for (size_t j = 0; j < vocab; ++j) {
          const double p = static_cast<double>(t.probs[r * vocab + j]);
          if (p != 0) loss += p * (lse - static_cast<double>(z[j]));
        }
        break;
      case TargetKind::Sparse:
        for (size_t i = 0; i < t.k; ++i) {
          const int32_t id = t.ids[r * t.k + i];
          if (id >= 0) loss += static_cast<double>(t.weights[r * t.k + i]) * (lse - static_cast<double>(z[id]));
        }
        break;
    }
    row_loss[r] = loss;
    if (!dz) return;
    for (size_t j = 0; j < vocab; ++j)
      dz[j] = static_cast<T>(scale * mass * std::exp(static_cast<double>(z[j]) - lse));
    switch (t.kind) {
      case TargetKind::Hard: dz[t.ids[r]] -= static_cast<T>(scale); break;
      case TargetKind::Dense:
        for (size_t j = 0; j < vocab; ++j) dz[j] -= static_cast<T>(scale * static_cast<double>(t.probs[r * vocab + j]));
        break;
      case TargetKind::Sparse:
        for (size_t i = 0; i < t.k; ++i) {
          const int32_t id = t.ids[r * t.k + i];
          if (id >= 0) dz[id] -= static_cast<T>(scale * static_cast<double>(t.weights[r * t.k + i]));
        }
        break;
    }
  });
  LossSum out;
  for (size_t r = 0; r < rows; ++r) {
    out.loss += row_loss[r];
    out.count += counted[r];
  }
  return out;
}

template <class T>
double global_norm(const T* g, size_t n) {
  constexpr size_t kChunk = size_t{1} << 16;
  const size_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> part(chunks, 0.0);
  parallel_for(chunks, n, [&](size_t c) {
    double s = 0;
    for (size_t i = c * kChunk, e = std::min(n, i + kChunk); i < e; ++i) s += static_cast<double>(g[i]) * static_cast<double>(g[i]);
    part[c] = s;
  });
  double s = 0;
  for (double p : part) s += p;
  return std::sqrt(s);
}

#define TERSOR_TRAIN_INSTANTIATE(T)                                                                                 \
  template void embedding_forward<T>(const T*, size_t, size_t, const int32_t*, size_t, T*);                          \
  template void embedding_backward<T>(const T*, const int32_t*, size_t, size_t, T*);                                 \
  template void rmsnorm_forward<T>(const T*, const T*, T*, T*, size_t, size_t, double);                              \
  template void rmsnorm_backward<T>(const T*, const T*, const T*, const T*, T*, T*, size_t, size_t);                 \
  template void layernorm_forward<T>(const T*, const T*, const T*, T*, T*, T*, size_t, size_t, double);              \
  template void layernorm_backward<T>(const T*, const T*, const T*, const T*, const T*, T*, T*, T*, size_t, size_t); \
  template struct RopeTable<T>;                                                                                      \
  template void rope_rotate<T>(T*, size_t, size_t, const int32_t*, const RopeTable<T>&, bool, size_t);                      \
  template void attention_forward<T>(const T*, const T*, const T*, T*, T*, const AttentionShape&);                   \
  template void attention_backward<T>(const T*, const T*, const T*, const T*, const T*, const T*, T*, T*, T*,         \
                                      const AttentionShape&);                                                        \
  template void activation_forward<T>(Activation, const T*, T*, size_t);                                             \
  template void activation_backward<T>(Activation, const T*, const T*, T*, size_t);                                  \
  template void gated_forward<T>(Activation, const T*, const T*, T*, size_t);                                        \
  template void gated_backward<T>(Activation, const T*, const T*, const T*, T*, T*, size_t);                         \
  template void gated_forward_fused<T>(Activation, const T*, T*, size_t, size_t);                                   \
  template void gated_backward_fused<T>(Activation, const T*, const T*, T*, size_t, size_t);                        \
  template void linear_forward<T>(const T*, const T*, const T*, T*, size_t, size_t, size_t);                         \
  template void linear_backward<T>(const T*, const T*, const T*, T*, bool, T*, T*, size_t, size_t, size_t);          \
  template LossSum cross_entropy<T>(const T*, size_t, size_t, const Targets&, T*, double);                           \
  template double global_norm<T>(const T*, size_t);

TERSOR_TRAIN_INSTANTIATE(float)
TERSOR_TRAIN_INSTANTIATE(double)

}  // namespace tersor::train
