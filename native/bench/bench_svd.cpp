// "linalg" suite, SVD part:
//  (a) a 2048 x 2048 f32 matrix of rank 64 plus small noise: our truncated SVD (rank 64) and our
//      randomized SVD (rank 64), each against Eigen's full BDCSVD truncated afterwards; the errors of
//      the top-64 singular values relative to BDCSVD's, and to the exact values of the same matrix (a
//      double BDCSVD), are extra fields;
//  (b) randomized SVD of rank 64 of a 4096 x 11008 f32 matrix (an MLP projection's shape) over
//      tersor::sgemm, against the same algorithm with OpenBLAS's cblas_sgemm for the products (Eigen's
//      product when the bench is built without CBLAS). target_s is what numpy + OpenBLAS takes for the
//      same algorithm with 2 threads.
// --quick shrinks both to seconds.
#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "bench.hpp"
#include "tersor/gemm.hpp"
#include "tersor/linalg.hpp"
#include "tersor/parallel.hpp"
#include "tersor/rng.hpp"

#ifdef TERSOR_HAVE_CBLAS
#include <cblas.h>
#endif

namespace {

using namespace tersor;
using RowMatF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// A (m x n, f32) = U diag(s) V^T + noise * G with Gaussian U, V (scaled to near-orthonormal columns),
/// s_i = 10^(-2 i / (rank - 1)) and G standard normal (rows drawn in parallel, one stream per row).
std::vector<float> test_matrix(size_t m, size_t n, size_t rank, double noise, uint64_t seed) {
  std::vector<float> u(m * rank), vt(rank * n), a(m * n);
  Rng rng(seed);
  for (size_t i = 0; i < m; ++i)
    for (size_t j = 0; j < rank; ++j)
      u[i * rank + j] = static_cast<float>(rng.next_normal() / std::sqrt(double(m)) *
                                           std::pow(10.0, -2.0 * double(j) / double(std::max<size_t>(rank - 1, 1))));
  for (auto& x : vt) x = static_cast<float>(rng.next_normal() / std::sqrt(double(n)));
  sgemm(Trans::No, Trans::No, m, n, rank, 1.f, u.data(), rank, vt.data(), n, 0.f, a.data(), n);
  if (noise > 0) {
    const long long rows = static_cast<long long>(m);
#pragma omp parallel for schedule(static)
    for (long long i = 0; i < rows; ++i) {
      Rng r(seed * 0x9e3779b97f4a7c15ULL + static_cast<uint64_t>(i) + 1);
      for (size_t j = 0; j < n; ++j) a[static_cast<size_t>(i) * n + j] += static_cast<float>(noise * r.next_normal());
    }
  }
  return a;
}

double max_rel_err(const std::vector<float>& s, const std::vector<float>& ref, size_t k) {
  double e = 0;
  for (size_t i = 0; i < k; ++i) e = std::max(e, std::abs(double(s[i]) - double(ref[i])) / double(ref[i]));
  return e;
}

#ifdef TERSOR_HAVE_CBLAS
void blas_sgemm(Trans ta, Trans tb, size_t m, size_t n, size_t k, float alpha, const float* a, size_t lda,
                const float* b, size_t ldb, float beta, float* c, size_t ldc) {
  cblas_sgemm(CblasRowMajor, ta == Trans::Yes ? CblasTrans : CblasNoTrans, tb == Trans::Yes ? CblasTrans : CblasNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b,
              static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}
constexpr const char* kBlasName = "randomized svd over cblas_sgemm";
#else
using Stride = Eigen::OuterStride<>;
void blas_sgemm(Trans ta, Trans tb, size_t m, size_t n, size_t k, float alpha, const float* a, size_t lda,
                const float* b, size_t ldb, float beta, float* c, size_t ldc) {
  Eigen::Map<RowMatF, 0, Stride> C(c, m, n, Stride(ldc));
  Eigen::Map<const RowMatF, 0, Stride> A(a, ta == Trans::No ? m : k, ta == Trans::No ? k : m, Stride(lda));
  Eigen::Map<const RowMatF, 0, Stride> B(b, tb == Trans::No ? k : n, tb == Trans::No ? n : k, Stride(ldb));
  if (beta == 0.f) C.setZero(); else C *= beta;
  if (ta == Trans::No && tb == Trans::No) C.noalias() += alpha * A * B;
  else if (ta == Trans::Yes && tb == Trans::No) C.noalias() += alpha * A.transpose() * B;
  else if (ta == Trans::No) C.noalias() += alpha * A * B.transpose();
  else C.noalias() += alpha * A.transpose() * B.transpose();
}
constexpr const char* kBlasName = "randomized svd over eigen product";
#endif

void svd_part(bool quick) {
  const std::string suite = "linalg";
  // (a) rank-64 square matrix: truncated and randomized vs full BDCSVD.
  {
    const size_t n = quick ? 512 : 2048, k = quick ? 32 : 64;
    const std::vector<float> a = test_matrix(n, n, k, 1e-5, 11);
    std::vector<float> ref_s;
    const double base_s = bench::median_seconds(
        [&] {
          Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic> A = Eigen::Map<const RowMatF>(a.data(), n, n);
          Eigen::BDCSVD<Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic>> sv(A, Eigen::ComputeThinU | Eigen::ComputeThinV);
          ref_s.assign(sv.singularValues().data(), sv.singularValues().data() + k);
        },
        quick ? 3 : 3, 0);
    // The exact values of this f32 matrix (double BDCSVD, values only), to tell our error from BDCSVD-f32's.
    std::vector<float> exact_s(k);
    {
      Eigen::MatrixXd A = Eigen::Map<const RowMatF>(a.data(), n, n).cast<double>();
      Eigen::BDCSVD<Eigen::MatrixXd> sv(A);
      for (size_t i = 0; i < k; ++i) exact_s[i] = static_cast<float>(sv.singularValues()[static_cast<Eigen::Index>(i)]);
    }
    TruncatedSvdInfo info;
    Svd<float> t;
    const double ours_t = bench::median_seconds([&] { t = truncated_svd(a.data(), n, n, k, {}, &info); });
    const std::string size = std::to_string(n) + "x" + std::to_string(n) + " rank " + std::to_string(k);
    bench::report(suite, "truncated svd " + size, ours_t, "eigen BDCSVD", base_s,
                  {{"max_rel_err_top_s", max_rel_err(t.s, ref_s, k)},
                   {"max_rel_err_top_s_vs_f64", max_rel_err(t.s, exact_s, k)},
                   {"baseline_max_rel_err_vs_f64", max_rel_err(ref_s, exact_s, k)},
                   {"restarts", double(info.iterations)},
                   {"residual", info.residual},
                   {"sigma_k", ref_s[k - 1] / ref_s[0]}});
    Svd<float> r;
    const double ours_r = bench::median_seconds([&] { r = randomized_svd(a.data(), n, n, k); });
    bench::report(suite, "randomized svd " + size, ours_r, "eigen BDCSVD", base_s,
                  {{"max_rel_err_top_s", max_rel_err(r.s, ref_s, k)},
                   {"max_rel_err_top_s_vs_f64", max_rel_err(r.s, exact_s, k)}});
  }
  // (b) randomized SVD of an MLP-shaped matrix, our GEMM vs OpenBLAS's under the same algorithm.
  {
    const size_t m = quick ? 1024 : 4096, n = quick ? 2752 : 11008, k = 64;
#ifdef TERSOR_HAVE_CBLAS
    openblas_set_num_threads(num_threads());
#endif
    const std::vector<float> a = test_matrix(m, n, 256, 1e-4, 12);
    RandomizedSvdOptions ob;
    ob.sgemm = &blas_sgemm;
    Svd<float> rb, r;
    // Ours first: OpenBLAS's pthreads keep spinning for a while after a call and would take cores from
    // the OpenMP threads of a run that follows (libgomp's own spin before sleeping is far shorter).
    const double ours_s = bench::median_seconds([&] { r = randomized_svd(a.data(), m, n, k); });
    const double base_s = bench::median_seconds([&] { rb = randomized_svd(a.data(), m, n, k, ob); });
    bench::report(suite, "randomized svd " + std::to_string(m) + "x" + std::to_string(n) + " rank 64", ours_s, kBlasName,
                  base_s,
                  {{"target_s", 0.45}, {"threads", double(num_threads())}, {"max_rel_diff_s", max_rel_err(r.s, rb.s, k)}});
  }
}

}  // namespace

TERSOR_BENCH_SUITE("linalg", svd_part);
