// Placeholder GEMM over Eigen's product; replaced by tersor's own packed AVX2 kernel.
#include "tersor/gemm.hpp"

#include <Eigen/Dense>
#include <vector>

#include "tersor/half.hpp"

namespace tersor {

using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Stride = Eigen::OuterStride<>;

void sgemm(Trans ta, Trans tb, size_t m, size_t n, size_t k, float alpha, const float* a, size_t lda,
           const float* b, size_t ldb, float beta, float* c, size_t ldc) {
  Eigen::Map<RowMat, 0, Stride> C(c, m, n, Stride(ldc));
  const Eigen::Index ar = ta == Trans::No ? m : k, ac = ta == Trans::No ? k : m;
  const Eigen::Index br = tb == Trans::No ? k : n, bc = tb == Trans::No ? n : k;
  Eigen::Map<const RowMat, 0, Stride> A(a, ar, ac, Stride(lda));
  Eigen::Map<const RowMat, 0, Stride> B(b, br, bc, Stride(ldb));
  if (beta == 0.f) C.setZero(); else C *= beta;
  if (ta == Trans::No && tb == Trans::No) C.noalias() += alpha * A * B;
  else if (ta == Trans::Yes && tb == Trans::No) C.noalias() += alpha * A.transpose() * B;
  else if (ta == Trans::No) C.noalias() += alpha * A * B.transpose();
  else C.noalias() += alpha * A.transpose() * B.transpose();
}

static void widen(const uint16_t* src, size_t n, std::vector<float>& dst, bool bf16) {
  dst.resize(n);
  if (bf16) bf16_to_f32(src, dst.data(), n); else f16_to_f32(src, dst.data(), n);
}

void hgemm_f32acc(size_t m, size_t n, size_t k, const uint16_t* a, const uint16_t* b, float* c) {
  std::vector<float> fa, fb;
  widen(a, m * k, fa, false);
  widen(b, k * n, fb, false);
  sgemm(Trans::No, Trans::No, m, n, k, 1.f, fa.data(), k, fb.data(), n, 0.f, c, n);
}

void bgemm_f32acc(size_t m, size_t n, size_t k, const uint16_t* a, const uint16_t* b, float* c) {
  std::vector<float> fa, fb;
  widen(a, m * k, fa, true);
  widen(b, k * n, fb, true);
  sgemm(Trans::No, Trans::No, m, n, k, 1.f, fa.data(), k, fb.data(), n, 0.f, c, n);
}

}  // namespace tersor
