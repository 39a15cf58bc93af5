// Symmetric per-row int8 quantization (absmax): scale_r = max_j |x_rj| / 127,
// q_rj = round_half_even(x_rj * (127 / max_j |x_rj|)), clamped to [-127, 127]; an all-zero row has
// scale 0 and q = 0. The CUDA kernel (native/cuda/quant_int8.cu) computes the same bits.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace tersor {

void quantize_rows_int8(const float* x, size_t rows, size_t cols, int8_t* q, float* scales);
void dequantize_rows_int8(const int8_t* q, const float* scales, size_t rows, size_t cols, float* x);

/// True when this build has CUDA kernels and a usable GPU; otherwise `why` says what is missing.
bool cuda_available(std::string* why);
/// GPU version of quantize_rows_int8 (host pointers in and out). Throws E_NATIVE without a GPU.
void cuda_quantize_rows_int8(const float* x, size_t rows, size_t cols, int8_t* q, float* scales);

}  // namespace tersor
