// HQQ: half-quadratic quantization (Badri & Shaji 2023); see tersor/quant_methods.hpp.
// The fast path runs every group through all iterations while it sits in registers (the groups are
// independent but for the global stopping rule), keeping the per-iteration error sums and zero points,
// then applies the reference's global stopping rule afterwards; the power |x|^(p-1) goes through
// vectorised log/exp (Cephes polynomials, about 1e-7 relative error).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "tersor/error.hpp"
#include "tersor/ops.hpp"
#include "tersor/parallel.hpp"
#include "tersor/quant_methods.hpp"

namespace tersor {
namespace {

void check(const float* w, size_t rows, size_t cols, int bits, size_t group, const HqqOptions& opt) {
  require(rows > 0 && cols > 0, ErrorCode::Shape, "hqq: empty weight");
  require(bits >= 1 && bits <= 8, ErrorCode::Range, "hqq: bits must be in [1, 8], got " + std::to_string(bits));
  require(group == 0 || cols % group == 0, ErrorCode::Shape,
          "hqq: group " + std::to_string(group) + " does not divide the row length " + std::to_string(cols));
  require(opt.lp_norm > 0 && opt.lp_norm <= 1, ErrorCode::Range, "hqq: lp_norm must be in (0, 1]");
  require(opt.beta > 0 && opt.kappa >= 1 && opt.iters >= 1, ErrorCode::Range, "hqq: need beta > 0, kappa >= 1, iters >= 1");
  for (size_t i = 0; i < rows * cols; ++i)
    if (!std::isfinite(w[i])) fail(ErrorCode::Range, "hqq: the weight holds a non-finite value at element " + std::to_string(i));
}

void init_group(const float* x, size_t g, float maxq, float& s, float& z) {
  float lo = x[0], hi = x[0];
  for (size_t i = 1; i < g; ++i) {
    lo = std::fmin(lo, x[i]);
    hi = std::fmax(hi, x[i]);
  }
  s = std::fmin(maxq / (hi - lo), 2e4f);
  if (!(s == s)) s = 2e4f;
  z = -lo * s;
}

inline float shrink(float x, float beta, float p) {
  const float ax = std::fabs(x);
  const float v = ax - (1.f / beta) * std::pow(ax + 1e-8f, p - 1.f);
  return v > 0 ? std::copysign(v, x) : 0.f;
}

// ---- AVX2 log / exp (Cephes, as in avx_mathfun) ----
inline __m256 log256(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.f);
  __m256i xi = _mm256_castps_si256(x);
  __m256i e = _mm256_sub_epi32(_mm256_srli_epi32(xi, 23), _mm256_set1_epi32(126));
  xi = _mm256_and_si256(xi, _mm256_set1_epi32(~0x7f800000));
  x = _mm256_or_ps(_mm256_castsi256_ps(xi), _mm256_set1_ps(0.5f));
  __m256 ef = _mm256_cvtepi32_ps(e);
  const __m256 mask = _mm256_cmp_ps(x, _mm256_set1_ps(0.707106781186547524f), _CMP_LT_OS);
  const __m256 tmp = _mm256_and_ps(x, mask);
  x = _mm256_sub_ps(x, one);
  ef = _mm256_sub_ps(ef, _mm256_and_ps(one, mask));
  x = _mm256_add_ps(x, tmp);
  const __m256 z = _mm256_mul_ps(x, x);
  __m256 y = _mm256_set1_ps(7.0376836292E-2f);
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(-1.1514610310E-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.1676998740E-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(-1.2420140846E-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.4249322787E-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(-1.6668057665E-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(2.0000714765E-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(-2.4999993993E-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(3.3333331174E-1f));
  y = _mm256_mul_ps(_mm256_mul_ps(y, x), z);
  y = _mm256_fmadd_ps(ef, _mm256_set1_ps(simd::cephes_exp::kLn2Lo), y);
  y = _mm256_fnmadd_ps(z, _mm256_set1_ps(0.5f), y);
  x = _mm256_add_ps(x, y);
  return _mm256_fmadd_ps(ef, _mm256_set1_ps(simd::cephes_exp::kLn2Hi), x);
}

inline __m256 exp256(__m256 x) {
  x = _mm256_min_ps(x, _mm256_set1_ps(88.3762626647949f));
  x = _mm256_max_ps(x, _mm256_set1_ps(-88.3762626647949f));
  using namespace simd::cephes_exp;
  __m256 fx = _mm256_fmadd_ps(x, _mm256_set1_ps(kLog2e), _mm256_set1_ps(0.5f));
  fx = _mm256_floor_ps(fx);
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(kLn2Hi), x);
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(kLn2Lo), x);
  const __m256 z = _mm256_mul_ps(x, x);
  __m256 y = _mm256_set1_ps(kP0);
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(kP1));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(kP2));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(kP3));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(kP4));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(kP5));
  y = _mm256_fmadd_ps(y, z, x);
  y = _mm256_add_ps(y, _mm256_set1_ps(1.f));
  __m256i e = _mm256_cvttps_epi32(fx);
  e = _mm256_slli_epi32(_mm256_add_epi32(e, _mm256_set1_epi32(0x7f)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

inline float hsum(__m256 v) {
  __m128 a = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  a = _mm_add_ps(a, _mm_movehl_ps(a, a));
  a = _mm_add_ss(a, _mm_movehdup_ps(a));
  return _mm_cvtss_f32(a);
}

HqqResult finish(const float* w, size_t rows, size_t cols, size_t g, float maxq, const std::vector<float>& s,
                 std::vector<float> zfinal, size_t iterations, double error) {
  HqqResult r;
  const size_t ng = rows * cols / g;
  r.scale.resize(ng);
  r.zero = std::move(zfinal);
  r.codes.resize(rows * cols);
  r.iterations = iterations;
  r.error = error;
#pragma omp parallel for schedule(static) num_threads(num_threads())
  for (long long gi = 0; gi < static_cast<long long>(ng); ++gi) {
    const size_t k = static_cast<size_t>(gi);
    r.scale[k] = 1.f / s[k];
    for (size_t i = 0; i < g; ++i) {
      const float q = std::fmin(maxq, std::fmax(0.f, std::nearbyint(w[k * g + i] * s[k] + r.zero[k])));
      r.codes[k * g + i] = static_cast<uint8_t>(q);
    }
  }
  return r;
}

}  // namespace

HqqResult hqq_reference(const float* w, size_t rows, size_t cols, int bits, size_t group, const HqqOptions& opt) {
  check(w, rows, cols, bits, group, opt);
  const size_t g = group == 0 ? cols : group;
  const size_t ng = rows * cols / g;
  const float maxq = static_cast<float>((1 << bits) - 1);
  const float p = static_cast<float>(opt.lp_norm);
  std::vector<float> s(ng), z(ng);
  for (size_t k = 0; k < ng; ++k) init_group(w + k * g, g, maxq, s[k], z[k]);
  float beta = static_cast<float>(opt.beta);
  double best = 1e4;
  size_t it = 0;
  for (; it < opt.iters; ++it) {
    double err = 0;
    for (size_t k = 0; k < ng; ++k) {
      double zs = 0;
      for (size_t i = 0; i < g; ++i) {
        const float x = w[k * g + i];
        const float q = std::fmin(maxq, std::fmax(0.f, std::nearbyint(x * s[k] + z[k])));
        const float wr = (q - z[k]) / s[k];
        const float we = shrink(x - wr, beta, p);
        zs += q - (x - we) * s[k];
        err += std::fabs(x - wr);
      }
      z[k] = static_cast<float>(zs / static_cast<double>(g));
    }
    beta *= static_cast<float>(opt.kappa);
    err /= static_cast<double>(rows * cols);
    if (err < best) {
      best = err;
    } else {
      ++it;
      break;
    }
  }
  return finish(w, rows, cols, g, maxq, s, std::move(z), it, best);
}

HqqResult hqq(const float* w, size_t rows, size_t cols, int bits, size_t group, const HqqOptions& opt) {
  check(w, rows, cols, bits, group, opt);
  const size_t g = group == 0 ? cols : group;
  const size_t ng = rows * cols / g;
  const size_t T = opt.iters;
  const float maxq = static_cast<float>((1 << bits) - 1);
  const float p = static_cast<float>(opt.lp_norm);
  std::vector<float> betas(T);
  {
    float b = static_cast<float>(opt.beta);
    for (size_t t = 0; t < T; ++t) {
      betas[t] = b;
      b *= static_cast<float>(opt.kappa);
    }
  }
  // shrink_lp(d) = 0 exactly when beta |d| <= (|d| + 1e-8)^(p-1), whose right side decreases in |d|
  // (p <= 1). thr[t] solves 1.2 beta thr = (thr + 1e-8)^(p-1) (bisection in f64), so for every |d| below
  // it the power exceeds beta |d| by >= 20%, far above the ~1e-6 error of the vectorised power: a group
  // of 8 lanes all below it skips the power and is bitwise what the full path gives (W_e = 0).
  std::vector<float> thr(T);
  for (size_t t = 0; t < T; ++t) {
    const double bt = betas[t], pm1 = static_cast<double>(p) - 1.0;
    auto f = [&](double v) { return 1.2 * bt * v - std::pow(v + 1e-8, pm1); };
    double lo = 0, hi = 1;
    while (f(hi) <= 0 && hi < 1e30) hi *= 2;
    for (int k = 0; k < 200 && hi - lo > 1e-12 * hi; ++k) {
      const double mid = 0.5 * (lo + hi);
      (f(mid) <= 0 ? lo : hi) = mid;
    }
    thr[t] = static_cast<float>(lo * (1 - 1e-6));  // below the root, also after rounding to f32
  }
  std::vector<float> s(ng), zh(ng * T);
  std::vector<double> errs(ng * T);
  const bool vec = g % 8 == 0;
#pragma omp parallel for schedule(static) num_threads(num_threads())
  for (long long gi = 0; gi < static_cast<long long>(ng); ++gi) {
    const size_t k = static_cast<size_t>(gi);
    const float* x = w + k * g;
    float sk, z;
    init_group(x, g, maxq, sk, z);
    s[k] = sk;
    for (size_t t = 0; t < T; ++t) {
      double zs = 0, err = 0;
      if (vec) {
        const __m256 vs = _mm256_set1_ps(sk), vz = _mm256_set1_ps(z), vmax = _mm256_set1_ps(maxq), zero = _mm256_setzero_ps();
        const __m256 inv_beta = _mm256_set1_ps(1.f / betas[t]), pm1 = _mm256_set1_ps(p - 1.f), eps = _mm256_set1_ps(1e-8f);
        const __m256 sign = _mm256_set1_ps(-0.f), vthr = _mm256_set1_ps(thr[t]);
        __m256 zacc = zero, eacc = zero;
        for (size_t i = 0; i < g; i += 8) {
          const __m256 xv = _mm256_loadu_ps(x + i);
          __m256 q = _mm256_round_ps(_mm256_fmadd_ps(xv, vs, vz), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
          q = _mm256_min_ps(vmax, _mm256_max_ps(zero, q));
          const __m256 wr = _mm256_div_ps(_mm256_sub_ps(q, vz), vs);
          const __m256 d = _mm256_sub_ps(xv, wr);
          const __m256 ad = _mm256_andnot_ps(sign, d);
          eacc = _mm256_add_ps(eacc, ad);
          if (_mm256_movemask_ps(_mm256_cmp_ps(ad, vthr, _CMP_LT_OQ)) == 0xFF) {
            // every lane shrinks to exactly 0 (W_e = 0): the power is not needed
            zacc = _mm256_add_ps(zacc, _mm256_fnmadd_ps(xv, vs, q));
            continue;
          }
          const __m256 pw = exp256(_mm256_mul_ps(pm1, log256(_mm256_add_ps(ad, eps))));
          const __m256 v = _mm256_max_ps(zero, _mm256_fnmadd_ps(inv_beta, pw, ad));
          const __m256 we = _mm256_or_ps(v, _mm256_and_ps(sign, d));
          zacc = _mm256_add_ps(zacc, _mm256_fnmadd_ps(_mm256_sub_ps(xv, we), vs, q));
        }
        zs = hsum(zacc);
        err = hsum(eacc);
      } else {
        for (size_t i = 0; i < g; ++i) {
          const float q = std::fmin(maxq, std::fmax(0.f, std::nearbyint(x[i] * sk + z)));
          const float wr = (q - z) / sk;
          const float we = shrink(x[i] - wr, betas[t], p);
          zs += q - (x[i] - we) * sk;
          err += std::fabs(x[i] - wr);
        }
      }
      z = static_cast<float>(zs / static_cast<double>(g));
      zh[k * T + t] = z;
      errs[k * T + t] = err;
    }
  }
  // The reference's global rule: stop at the first iteration whose mean error does not improve.
  double best = 1e4;
  size_t stop = T - 1, it = T;
  for (size_t t = 0; t < T; ++t) {
    double e = 0;
    for (size_t k = 0; k < ng; ++k) e += errs[k * T + t];
    e /= static_cast<double>(rows * cols);
    if (e < best) {
      best = e;
    } else {
      stop = t;
      it = t + 1;
      break;
    }
  }
  std::vector<float> z(ng);
  for (size_t k = 0; k < ng; ++k) z[k] = zh[k * T + stop];
  return finish(w, rows, cols, g, maxq, s, std::move(z), it, best);
}

std::vector<float> hqq_dequantize(const HqqResult& r, size_t rows, size_t cols, size_t group) {
  const size_t g = group == 0 ? cols : group;
  require(r.codes.size() == rows * cols && r.scale.size() == rows * cols / g, ErrorCode::Shape, "hqq_dequantize: result does not match the shape");
  std::vector<float> y(rows * cols);
  for (size_t i = 0; i < rows * cols; ++i) y[i] = r.scale[i / g] * (static_cast<float>(r.codes[i]) - r.zero[i / g]);
  return y;
}

}  // namespace tersor
