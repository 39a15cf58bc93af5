// A linear layer held quantized (quant_formats.hpp) plus an optional low-rank adapter, as the
// transformer runtime applies it:  y = x W^T (+ bias) (+ (x A^T) B^T)
// with W [out, in] quantized row by row under `scheme`, A [rank, in] and B [out, rank] f32 (LoRC /
// EoRA compensation of the quantization error). The product uses quant_matmul with f32 activations
// (dequantize on the fly, AVX2, rows in parallel), so a model equals the f32 model built from the
// dequantized weights up to f32 rounding.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "tersor/quant_formats.hpp"

namespace tersor {

struct QuantLinear {
  QuantScheme scheme;
  size_t out = 0, in = 0;
  std::vector<uint8_t> bytes;  // out * scheme_row_bytes(scheme, in)
  size_t rank = 0;
  std::vector<float> a;  // [rank, in]
  std::vector<float> b;  // [out, rank]
};

/// Validates and copies: E_SHAPE when nbytes != out * row bytes or in is not a multiple of the
/// scheme's block; E_RANGE for an adapter with rank 0 but data, or non-finite adapter values.
std::shared_ptr<const QuantLinear> make_quant_linear(const QuantScheme& scheme, size_t out, size_t in, const uint8_t* bytes,
                                                     size_t nbytes, const float* a = nullptr, const float* b = nullptr,
                                                     size_t rank = 0);

/// y[r, :] (row stride ldy) = (accumulate ? y : 0) + x[r, :] W^T + bias + (x A^T) B^T for r < rows.
void quant_linear_apply(const QuantLinear& q, const float* x, size_t rows, const float* bias, float* y, size_t ldy,
                        bool accumulate);

}  // namespace tersor
