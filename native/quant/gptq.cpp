// GPTQ (Frantar et al. 2022), RTN and the calibration output error; see tersor/quant_methods.hpp.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <string>

#include <Eigen/Dense>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "tersor/error.hpp"
#include "tersor/gemm.hpp"
#include "tersor/linalg.hpp"
#include "tersor/parallel.hpp"
#include "tersor/quant_methods.hpp"

namespace tersor {

size_t codec_row_bytes(const BlockCodec& c, size_t row_len) {
  require(c.block > 0 && row_len % c.block == 0, ErrorCode::Shape,
          "codec " + c.name + ": row length " + std::to_string(row_len) + " is not a multiple of the block " + std::to_string(c.block));
  return row_len / c.block * c.block_bytes;
}

namespace {

void check_finite(const float* w, size_t n, const char* what) {
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(w[i])) fail(ErrorCode::Range, std::string(what) + " holds a non-finite value (NaN or Inf) at element " + std::to_string(i));
}

void check_gram(const double* g, size_t cols) {
  for (size_t i = 0; i < cols * cols; ++i)
    if (!std::isfinite(g[i])) fail(ErrorCode::Range, "the Gram matrix holds a non-finite value at element " + std::to_string(i));
  for (size_t j = 0; j < cols; ++j)
    if (g[j * cols + j] < 0) fail(ErrorCode::Range, "the Gram matrix has a negative diagonal entry at " + std::to_string(j));
}

constexpr size_t kSubBatch = 16;

struct Prepared {
  std::vector<int32_t> order;  // processing order of the original columns
  std::vector<float> u;        // upper Cholesky factor of H^-1 in processing order, cols x cols
  std::vector<float> w;        // W (rows x cols, original order) with dead columns zeroed
  size_t dead = 0;
};

Prepared prepare(const float* w, size_t rows, size_t cols, const double* gram, size_t n_samples, const GptqOptions& opt) {
  require(rows > 0 && cols > 0, ErrorCode::Shape, "gptq: empty weight");
  require(n_samples > 0, ErrorCode::Range, "gptq: n_samples must be positive");
  require(opt.damp >= 0 && std::isfinite(opt.damp), ErrorCode::Range, "gptq: damp must be a finite non-negative number");
  require(opt.block_size > 0, ErrorCode::Range, "gptq: block_size must be positive");
  check_finite(w, rows * cols, "gptq: the weight");
  check_gram(gram, cols);
  Prepared p;
  p.w.assign(w, w + rows * cols);
  std::vector<double> diag(cols);
  const double sc = 2.0 / static_cast<double>(n_samples);
  std::vector<char> dead(cols, 0);
  for (size_t j = 0; j < cols; ++j) {
    diag[j] = sc * gram[j * cols + j];
    if (diag[j] == 0) {
      dead[j] = 1;
      ++p.dead;
      diag[j] = 1;
      for (size_t r = 0; r < rows; ++r) p.w[r * cols + j] = 0.f;
    }
  }
  p.order.resize(cols);
  std::iota(p.order.begin(), p.order.end(), 0);
  if (opt.act_order) std::stable_sort(p.order.begin(), p.order.end(), [&](int32_t a, int32_t b) { return diag[a] > diag[b]; });
  std::vector<float> hp(cols * cols);
#pragma omp parallel for schedule(static) num_threads(num_threads())
  for (size_t a = 0; a < cols; ++a) {
    const size_t oa = static_cast<size_t>(p.order[a]);
    for (size_t b = 0; b < cols; ++b) {
      const size_t ob = static_cast<size_t>(p.order[b]);
      double v = (dead[oa] || dead[ob]) ? 0.0 : sc * gram[oa * cols + ob];
      if (oa == ob) v = diag[oa];
      hp[a * cols + b] = static_cast<float>(v);
    }
  }
  p.u = cholesky_inverse<float>(hp.data(), cols, cols, opt.damp);
  return p;
}

/// Whether block parameters are chosen up front, and the lazy-batch width.
void plan(const BlockCodec& c, size_t cols, const GptqOptions& opt, bool& fixed, size_t& bs) {
  fixed = opt.static_groups || opt.act_order || c.block >= cols;
  bs = opt.block_size;
  if (!fixed && bs % c.block != 0) bs = (bs + c.block - 1) / c.block * c.block;
  bs = std::min(bs, cols);
}

/// What both GPTQ formulations start from: the prepared inputs, the block plan, and the result holding the
/// codes of the up-front (RTN) block parameters when they are fixed before the column sweep.
struct Setup {
  size_t rb = 0;  // bytes per quantized row
  Prepared p;
  bool fixed = false;
  size_t bs = 0;
  GptqResult res;
};

Setup setup(const BlockCodec& c, const float* w, size_t rows, size_t cols, const double* gram, size_t n_samples,
            const GptqOptions& opt) {
  Setup st;
  st.rb = codec_row_bytes(c, cols);
  st.p = prepare(w, rows, cols, gram, n_samples, opt);
  plan(c, cols, opt, st.fixed, st.bs);
  st.res.dead = st.p.dead;
  st.res.order = st.p.order;
  st.res.q.assign(rows * st.rb, 0);
  if (st.fixed) st.res.q = rtn_quantize(c, st.p.w.data(), rows, cols);
  return st;
}

}  // namespace

std::vector<uint8_t> rtn_quantize(const BlockCodec& c, const float* w, size_t rows, size_t cols, const float* importance) {
  const size_t rb = codec_row_bytes(c, cols);
  check_finite(w, rows * cols, "rtn: the weight");
  std::vector<uint8_t> q(rows * rb);
  const size_t nb = cols / c.block;
#pragma omp parallel for schedule(static) num_threads(num_threads())
  for (long long r = 0; r < static_cast<long long>(rows); ++r)
    for (size_t b = 0; b < nb; ++b)
      c.quantize(w + static_cast<size_t>(r) * cols + b * c.block, q.data() + static_cast<size_t>(r) * rb + b * c.block_bytes,
                 importance ? importance + b * c.block : nullptr);
  return q;
}

std::vector<float> dequantize_rows(const BlockCodec& c, const uint8_t* q, size_t rows, size_t cols) {
  const size_t rb = codec_row_bytes(c, cols);
  std::vector<float> y(rows * cols);
  const size_t nb = cols / c.block;
#pragma omp parallel for schedule(static) num_threads(num_threads())
  for (long long r = 0; r < static_cast<long long>(rows); ++r)
    for (size_t b = 0; b < nb; ++b) c.dequantize(q + static_cast<size_t>(r) * rb + b * c.block_bytes, y.data() + static_cast<size_t>(r) * cols + b * c.block);
  return y;
}

double output_error(const float* w, const float* v, size_t rows, size_t cols, const double* gram) {
  using Mat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Mat d(rows, cols);
  for (size_t i = 0; i < rows * cols; ++i) d.data()[i] = static_cast<double>(w[i]) - static_cast<double>(v[i]);
  Eigen::Map<const Mat> g(gram, cols, cols);
  Mat dg = d * g;
  return (d.array() * dg.array()).sum();
}

GptqResult gptq(const BlockCodec& c, const float* w, size_t rows, size_t cols, const double* gram, size_t n_samples,
                const GptqOptions& opt) {
  Setup st = setup(c, w, rows, cols, gram, n_samples, opt);
  const size_t rb = st.rb;
  const Prepared& p = st.p;
  const bool fixed = st.fixed;
  const size_t bs = st.bs;
  GptqResult& res = st.res;
  // Wt: columns in processing order, each contiguous over rows.
  std::vector<float> wt(cols * rows);
  {
    constexpr size_t T = 32;  // tiles of T x T keep both sides of the transpose in cache
    const size_t ta = (cols + T - 1) / T, tr = (rows + T - 1) / T;
#pragma omp parallel for schedule(static) num_threads(num_threads())
    for (long long tt = 0; tt < static_cast<long long>(ta * tr); ++tt) {
      const size_t a0 = static_cast<size_t>(tt) / tr * T, r0 = static_cast<size_t>(tt) % tr * T;
      for (size_t a = a0; a < std::min(cols, a0 + T); ++a) {
        const size_t oa = static_cast<size_t>(p.order[a]);
        for (size_t r = r0; r < std::min(rows, r0 + T); ++r) wt[a * rows + r] = p.w[r * cols + oa];
      }
    }
  }
  std::vector<float> err(bs * rows);
  const int nt = num_threads();
  std::vector<double> loss_t(static_cast<size_t>(nt), 0.0);
  const float* u = p.u.data();
  // Rows are independent inside a lazy batch, so the batch is walked in chunks of kRowChunk rows, each
  // chunk through all the batch's columns while its bs x kRowChunk slice of Wt (and of the error)
  // stays in L1/L2; the rank-1 updates inside the chunk are unit-stride loops over rows (vectorised).
  // Every element sees the same operations in the same order as the column-at-a-time formulation.
  constexpr size_t kRowChunk = 64;
  // Sub-batches of kSubBatch columns inside the lazy batch; a group that starts inside the batch must
  // see every earlier column's update before it is quantized, so groups not a multiple of kSubBatch
  // wide fall back to column-at-a-time updates.
  const size_t sb = (fixed || c.block % kSubBatch == 0) ? kSubBatch : 1;
  const size_t n_chunks = (rows + kRowChunk - 1) / kRowChunk;
  for (size_t i1 = 0; i1 < cols; i1 += bs) {
    const size_t i2 = std::min(cols, i1 + bs);
#pragma omp parallel num_threads(nt)
    {
#ifdef _OPENMP
      const int t = omp_get_thread_num();
#else
      const int t = 0;
#endif
      std::vector<float> tmp(c.block);
      float qbuf[kRowChunk];
      double loss = 0;
#pragma omp for schedule(static)
      for (long long ch = 0; ch < static_cast<long long>(n_chunks); ++ch) {
        const size_t r0 = static_cast<size_t>(ch) * kRowChunk, r1 = std::min(rows, r0 + kRowChunk);
        for (size_t j1 = i1; j1 < i2; j1 += sb) {
        const size_t j2 = std::min(i2, j1 + sb);
        for (size_t a = j1; a < j2; ++a) {
          const size_t oa = static_cast<size_t>(p.order[a]);
          if (!fixed && oa % c.block == 0) {
            for (size_t r = r0; r < r1; ++r) {
              for (size_t k = 0; k < c.block; ++k) tmp[k] = wt[(a + k) * rows + r];
              c.quantize(tmp.data(), res.q.data() + r * rb + oa / c.block * c.block_bytes, nullptr);
            }
          }
          const float d = u[a * cols + a];
          float* col = wt.data() + a * rows;
          float* e = err.data() + (a - i1) * rows;
          uint8_t* blk0 = res.q.data() + oa / c.block * c.block_bytes;
          const size_t idx = oa % c.block;
          if (c.snap_many) {
            c.snap_many(blk0 + r0 * rb, rb, r1 - r0, idx, col + r0, qbuf);
          } else {
            for (size_t r = r0; r < r1; ++r) qbuf[r - r0] = c.snap(blk0 + r * rb, idx, col[r]);
          }
          for (size_t r = r0; r < r1; ++r) {
            const float x = col[r];
            const float qv = qbuf[r - r0];
            const float ev = (x - qv) / d;
            e[r] = ev;
            loss += 0.5 * static_cast<double>(x - qv) * static_cast<double>(x - qv) / (static_cast<double>(d) * d);
          }
          const float* ec = e + r0;
          const size_t len = r1 - r0;
          for (size_t k = a + 1; k < j2; ++k) {
            const float h = u[a * cols + k];
            float* dst = wt.data() + k * rows + r0;
#pragma omp simd
            for (size_t r = 0; r < len; ++r) dst[r] -= h * ec[r];
          }
        }
        // The sub-batch's errors reach the rest of the lazy batch as one rank-(j2 - j1) update: each
        // element is loaded and stored once instead of once per column, and still receives the
        // column terms in increasing column order.
        const size_t na = j2 - j1, len = r1 - r0;
        for (size_t k = j2; k < i2; ++k) {
          float h[kSubBatch];
          for (size_t j = 0; j < na; ++j) h[j] = u[(j1 + j) * cols + k];
          float* dst = wt.data() + k * rows + r0;
          const float* e0 = err.data() + (j1 - i1) * rows + r0;
          size_t r = 0;
          for (; r + 8 <= len; r += 8) {
            float acc[8];
            for (size_t l = 0; l < 8; ++l) acc[l] = dst[r + l];
            for (size_t j = 0; j < na; ++j) {
              const float hj = h[j];
              const float* ej = e0 + j * rows + r;
              for (size_t l = 0; l < 8; ++l) acc[l] -= hj * ej[l];
            }
            for (size_t l = 0; l < 8; ++l) dst[r + l] = acc[l];
          }
          for (; r < len; ++r) {
            float acc = dst[r];
            for (size_t j = 0; j < na; ++j) acc -= h[j] * e0[j * rows + r];
            dst[r] = acc;
          }
        }
        }
      }
      loss_t[static_cast<size_t>(t)] += loss;
    }
    if (i2 < cols)
      sgemm(Trans::Yes, Trans::No, cols - i2, rows, i2 - i1, -1.f, u + i1 * cols + i2, cols, err.data(), rows, 1.f,
            wt.data() + i2 * rows, rows);
  }
  for (double l : loss_t) res.loss += l;
  res.deq = dequantize_rows(c, res.q.data(), rows, cols);
  return std::move(res);
}

GptqResult gptq_reference(const BlockCodec& c, const float* w, size_t rows, size_t cols, const double* gram, size_t n_samples,
                          const GptqOptions& opt) {
  Setup st = setup(c, w, rows, cols, gram, n_samples, opt);
  const size_t rb = st.rb;
  const Prepared& p = st.p;
  const bool fixed = st.fixed;
  GptqResult& res = st.res;
  // Row-major W in processing order; every column's error goes to all later columns at once.
  std::vector<float> wp(rows * cols);
  for (size_t r = 0; r < rows; ++r)
    for (size_t a = 0; a < cols; ++a) wp[r * cols + a] = p.w[r * cols + static_cast<size_t>(p.order[a])];
  const float* u = p.u.data();
  double loss = 0;
#pragma omp parallel for schedule(static) reduction(+ : loss) num_threads(num_threads())
  for (long long rr = 0; rr < static_cast<long long>(rows); ++rr) {
    const size_t r = static_cast<size_t>(rr);
    float* row = wp.data() + r * cols;
    std::vector<float> tmp(c.block);
    for (size_t a = 0; a < cols; ++a) {
      const size_t oa = static_cast<size_t>(p.order[a]);
      uint8_t* blk = res.q.data() + r * rb + oa / c.block * c.block_bytes;
      if (!fixed && oa % c.block == 0) {
        for (size_t k = 0; k < c.block; ++k) tmp[k] = row[a + k];
        c.quantize(tmp.data(), blk, nullptr);
      }
      const float d = u[a * cols + a];
      const float x = row[a];
      const float qv = c.snap(blk, oa % c.block, x);
      const float ev = (x - qv) / d;
      loss += 0.5 * static_cast<double>(x - qv) * static_cast<double>(x - qv) / (static_cast<double>(d) * d);
      for (size_t k = a + 1; k < cols; ++k) row[k] -= ev * u[a * cols + k];
    }
  }
  res.loss = loss;
  res.deq = dequantize_rows(c, res.q.data(), rows, cols);
  return std::move(res);
}

}  // namespace tersor
