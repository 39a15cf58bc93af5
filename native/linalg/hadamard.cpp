// Fast Walsh-Hadamard transform over the rows of a row-major matrix (tersor/linalg.hpp).
//
// Radix-2 butterflies (a, b) -> (a + b, a - b) at strides h = 1, 2, 4, ..., n/2 (Sylvester ordering).
// The AVX2 path does the strides inside one vector with shuffles and fused +-1 multiply-adds (exact:
// fma(b, +-1, a) rounds a +- b once, like the scalar code), and two strides per pass over memory for
// h >= one vector. Every output is the same sequence of roundings as the scalar reference, so the two
// agree bit for bit.
#include <immintrin.h>
#include <omp.h>

#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include "tersor/error.hpp"
#include "tersor/linalg.hpp"
#include "tersor/rng.hpp"

namespace tersor {
namespace {

bool is_pow2(size_t n) { return n != 0 && (n & (n - 1)) == 0; }

void check_args(size_t n) {
  require(is_pow2(n), ErrorCode::Shape,
          "hadamardTransform: row length n = " + std::to_string(n) + " is not a power of two (1, 2, 4, 8, ...)");
}

template <class T>
void fwht_scalar_row(T* x, size_t n) {
  for (size_t h = 1; h < n; h <<= 1)
    for (size_t i = 0; i < n; i += 2 * h)
      for (size_t j = i; j < i + h; ++j) {
        const T a = x[j], b = x[j + h];
        x[j] = a + b;
        x[j + h] = a - b;
      }
}

/// Strides h .. n/2 for h >= W (the vector width) on whole vectors, two strides per pass where possible.
template <class T, class Load, class Store, class Add, class Sub>
inline void wide_stages(T* x, size_t n, size_t h, size_t W, Load load, Store store, Add add, Sub sub) {
  for (; 4 * h <= n; h *= 4) {
    for (size_t i = 0; i < n; i += 4 * h)
      for (size_t j = i; j < i + h; j += W) {
        auto x0 = load(x + j), x1 = load(x + j + h), x2 = load(x + j + 2 * h), x3 = load(x + j + 3 * h);
        auto y0 = add(x0, x1), y1 = sub(x0, x1), y2 = add(x2, x3), y3 = sub(x2, x3);
        store(x + j, add(y0, y2));
        store(x + j + 2 * h, sub(y0, y2));
        store(x + j + h, add(y1, y3));
        store(x + j + 3 * h, sub(y1, y3));
      }
  }
  if (2 * h <= n) {
    for (size_t i = 0; i < n; i += 2 * h)
      for (size_t j = i; j < i + h; j += W) {
        auto a = load(x + j), b = load(x + j + h);
        store(x + j, add(a, b));
        store(x + j + h, sub(a, b));
      }
  }
}

void fwht_row(float* x, size_t n) {
  if (n < 8) return fwht_scalar_row(x, n);
  const __m256 s1 = _mm256_setr_ps(1, -1, 1, -1, 1, -1, 1, -1);
  const __m256 s2 = _mm256_setr_ps(1, 1, -1, -1, 1, 1, -1, -1);
  const __m256 s4 = _mm256_setr_ps(1, 1, 1, 1, -1, -1, -1, -1);
  for (size_t i = 0; i < n; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    // h = 1: [v0+v1, v0-v1, v2+v3, v2-v3, ...]
    v = _mm256_fmadd_ps(_mm256_movehdup_ps(v), s1, _mm256_moveldup_ps(v));
    // h = 2: [v0+v2, v1+v3, v0-v2, v1-v3] per 128-bit lane
    v = _mm256_fmadd_ps(_mm256_permute_ps(v, _MM_SHUFFLE(3, 2, 3, 2)), s2, _mm256_permute_ps(v, _MM_SHUFFLE(1, 0, 1, 0)));
    // h = 4: across the two lanes
    v = _mm256_fmadd_ps(_mm256_permute2f128_ps(v, v, 0x11), s4, _mm256_permute2f128_ps(v, v, 0x00));
    _mm256_storeu_ps(x + i, v);
  }
  wide_stages(
      x, n, 8, 8, [](const float* p) { return _mm256_loadu_ps(p); }, [](float* p, __m256 v) { _mm256_storeu_ps(p, v); },
      [](__m256 a, __m256 b) { return _mm256_add_ps(a, b); }, [](__m256 a, __m256 b) { return _mm256_sub_ps(a, b); });
}

void fwht_row(double* x, size_t n) {
  if (n < 4) return fwht_scalar_row(x, n);
  const __m256d s1 = _mm256_setr_pd(1, -1, 1, -1);
  const __m256d s2 = _mm256_setr_pd(1, 1, -1, -1);
  for (size_t i = 0; i < n; i += 4) {
    __m256d v = _mm256_loadu_pd(x + i);
    v = _mm256_fmadd_pd(_mm256_permute_pd(v, 0xF), s1, _mm256_movedup_pd(v));                          // h = 1
    v = _mm256_fmadd_pd(_mm256_permute2f128_pd(v, v, 0x11), s2, _mm256_permute2f128_pd(v, v, 0x00));  // h = 2
    _mm256_storeu_pd(x + i, v);
  }
  wide_stages(
      x, n, 4, 4, [](const double* p) { return _mm256_loadu_pd(p); },
      [](double* p, __m256d v) { _mm256_storeu_pd(p, v); }, [](__m256d a, __m256d b) { return _mm256_add_pd(a, b); },
      [](__m256d a, __m256d b) { return _mm256_sub_pd(a, b); });
}

template <class T>
void apply_signs_scale(T* x, size_t n, const std::vector<int8_t>* signs, T scale, bool before) {
  if (before && signs)
    for (size_t j = 0; j < n; ++j) x[j] = (*signs)[j] < 0 ? -x[j] : x[j];
  if (!before && scale != T(1))
    for (size_t j = 0; j < n; ++j) x[j] *= scale;
}

template <class T, bool Reference>
void run(T* x, size_t rows, size_t n, const HadamardOptions& opt) {
  check_args(n);
  if (rows == 0) return;
  std::vector<int8_t> signs;
  if (opt.random_signs) signs = hadamard_signs(n, opt.seed);
  const std::vector<int8_t>* sp = opt.random_signs ? &signs : nullptr;
  const T scale = opt.normalize ? static_cast<T>(1.0 / std::sqrt(static_cast<double>(n))) : T(1);
  const double work = static_cast<double>(rows) * static_cast<double>(n);
  const long long r = static_cast<long long>(rows);
#pragma omp parallel for schedule(static) if (!Reference && work >= 65536.0)
  for (long long i = 0; i < r; ++i) {
    T* row = x + static_cast<size_t>(i) * n;
    apply_signs_scale(row, n, sp, scale, true);
    if constexpr (Reference) fwht_scalar_row(row, n);
    else fwht_row(row, n);
    apply_signs_scale(row, n, sp, scale, false);
  }
}

}  // namespace

std::vector<int8_t> hadamard_signs(size_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<int8_t> s(n);
  for (size_t j = 0; j < n; ++j) s[j] = (rng.next_u32() & 1u) ? int8_t(-1) : int8_t(1);
  return s;
}

template <class T>
void fwht_rows(T* x, size_t rows, size_t n, const HadamardOptions& opt) {
  run<T, false>(x, rows, n, opt);
}

template <class T>
void fwht_rows_reference(T* x, size_t rows, size_t n, const HadamardOptions& opt) {
  run<T, true>(x, rows, n, opt);
}

template void fwht_rows<float>(float*, size_t, size_t, const HadamardOptions&);
template void fwht_rows<double>(double*, size_t, size_t, const HadamardOptions&);
template void fwht_rows_reference<float>(float*, size_t, size_t, const HadamardOptions&);
template void fwht_rows_reference<double>(double*, size_t, size_t, const HadamardOptions&);

}  // namespace tersor
