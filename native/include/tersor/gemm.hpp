// Single-precision GEMM, the kernel under every linear layer and decomposition in tersor.
// C = alpha * op(A) * op(B) + beta * C, row-major, op = transpose or not, with leading dimensions
// (elements between consecutive rows). Accumulation is in f32.
#pragma once
#include <cstddef>
#include <cstdint>

namespace tersor {

enum class Trans : uint8_t { No, Yes };

/// op(A) is m x k, op(B) is k x n, C is m x n. lda/ldb/ldc are row strides of the stored matrices.
void sgemm(Trans ta, Trans tb, size_t m, size_t n, size_t k, float alpha, const float* a, size_t lda,
           const float* b, size_t ldb, float beta, float* c, size_t ldc);

/// C = A(m x k) * B(k x n) where A and B hold IEEE f16 bit patterns; f32 accumulation.
void hgemm_f32acc(size_t m, size_t n, size_t k, const uint16_t* a, const uint16_t* b, float* c);
/// Same with bfloat16 inputs.
void bgemm_f32acc(size_t m, size_t n, size_t k, const uint16_t* a, const uint16_t* b, float* c);

}  // namespace tersor
