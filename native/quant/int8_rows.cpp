#include <cmath>

#include "tersor/error.hpp"
#include "tersor/quant_int8.hpp"

namespace tersor {

void quantize_rows_int8(const float* x, size_t rows, size_t cols, int8_t* q, float* scales) {
#pragma omp parallel for schedule(static)
  for (long long r = 0; r < static_cast<long long>(rows); ++r) {
    const float* row = x + static_cast<size_t>(r) * cols;
    float amax = 0.f;
    for (size_t j = 0; j < cols; ++j) amax = std::fmax(amax, std::fabs(row[j]));
    const float inv = amax > 0.f ? 127.0f / amax : 0.f;
    scales[r] = amax / 127.0f;
    int8_t* out = q + static_cast<size_t>(r) * cols;
    for (size_t j = 0; j < cols; ++j) {
      float v = std::nearbyint(row[j] * inv);
      v = std::fmin(127.f, std::fmax(-127.f, v));
      out[j] = static_cast<int8_t>(v);
    }
  }
}

void dequantize_rows_int8(const int8_t* q, const float* scales, size_t rows, size_t cols, float* x) {
#pragma omp parallel for schedule(static)
  for (long long r = 0; r < static_cast<long long>(rows); ++r) {
    const float s = scales[r];
    for (size_t j = 0; j < cols; ++j) x[static_cast<size_t>(r) * cols + j] = s * q[static_cast<size_t>(r) * cols + j];
  }
}

}  // namespace tersor
