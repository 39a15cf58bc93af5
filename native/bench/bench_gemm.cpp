// linalg suite, GEMM part: tersor::sgemm against OpenBLAS's cblas_sgemm (or, in a build without
// CBLAS, Eigen's product; Eigen is built with EIGEN_DONT_PARALLELIZE here, so that baseline is
// single-threaded). Cases: square NN products, the tall-skinny product of randomized SVD
// (Y = A * Omega, 4096 x 11008 times 11008 x 74) and its transposed partner (Q^T * A).
#include <algorithm>
#include <chrono>
#include <functional>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "bench.hpp"
#include "tersor/gemm.hpp"
#include "tersor/parallel.hpp"
#include "tersor/rng.hpp"

#ifdef TERSOR_HAVE_CBLAS
#include <cblas.h>
#else
#include <Eigen/Dense>
#endif

namespace {

using tersor::Trans;

struct GemmCase {
  std::string name;
  Trans ta, tb;
  size_t m, n, k;
};

std::vector<float> random_matrix(size_t count, uint64_t seed) {
  tersor::Rng rng(seed);
  std::vector<float> v(count);
  for (auto& x : v) x = rng.next_f32() * 2.f - 1.f;
  return v;
}

#ifdef TERSOR_HAVE_CBLAS
const char* const kBaseline = "openblas cblas_sgemm";
void baseline_gemm(Trans ta, Trans tb, size_t m, size_t n, size_t k, const float* a, size_t lda, const float* b,
                   size_t ldb, float* c, size_t ldc) {
  cblas_sgemm(CblasRowMajor, ta == Trans::Yes ? CblasTrans : CblasNoTrans, tb == Trans::Yes ? CblasTrans : CblasNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), 1.f, a, static_cast<int>(lda), b,
              static_cast<int>(ldb), 0.f, c, static_cast<int>(ldc));
}
#else
const char* const kBaseline = "eigen";
void baseline_gemm(Trans ta, Trans tb, size_t m, size_t n, size_t k, const float* a, size_t lda, const float* b,
                   size_t ldb, float* c, size_t ldc) {
  using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Map = Eigen::Map<const RowMat, 0, Eigen::OuterStride<>>;
  const Map A(a, ta == Trans::No ? m : k, ta == Trans::No ? k : m, Eigen::OuterStride<>(lda));
  const Map B(b, tb == Trans::No ? k : n, tb == Trans::No ? n : k, Eigen::OuterStride<>(ldb));
  Eigen::Map<RowMat, 0, Eigen::OuterStride<>> C(c, m, n, Eigen::OuterStride<>(ldc));
  if (ta == Trans::No && tb == Trans::No) C.noalias() = A * B;
  else if (ta == Trans::Yes && tb == Trans::No) C.noalias() = A.transpose() * B;
  else if (ta == Trans::No) C.noalias() = A * B.transpose();
  else C.noalias() = A.transpose() * B.transpose();
}
#endif

// Both libraries keep their worker threads spinning for a while after a call (libgomp for a few
// milliseconds, OpenBLAS's thread server for about 2^28 cycles, ~70 ms here); on a 2-core machine
// the spinning pool of one library steals the cores from the other. So the two sides are never
// interleaved call by call: each is timed in a block of back-to-back calls (as a caller would use
// it) after the other side's threads have gone to sleep. Two rounds, and each side keeps the better
// of its two medians, which also damps bursts of load from elsewhere on the machine.
void let_pools_sleep() { std::this_thread::sleep_for(std::chrono::milliseconds(150)); }

std::pair<double, double> timed_medians(const std::function<void()>& ours, const std::function<void()>& base, int reps,
                                        double min_total_s, int rounds) {
  double best_ours = 1e300, best_base = 1e300;
  for (int r = 0; r < rounds; ++r) {
    let_pools_sleep();
    best_ours = std::min(best_ours, tersor::bench::median_seconds(ours, reps, 1, min_total_s));
    let_pools_sleep();
    best_base = std::min(best_base, tersor::bench::median_seconds(base, reps, 1, min_total_s));
  }
  return {best_ours, best_base};
}

void run_gemm(bool quick) {
#if defined(TERSOR_HAVE_CBLAS) && defined(OPENBLAS_VERSION)
  openblas_set_num_threads(tersor::num_threads());
#endif
  // --quick (a smoke test) drops the 2048 case and shortens k of the tall-skinny pair 4x; every
  // record carries its m, n, k.
  const size_t ts_k = quick ? 11008 / 4 : 11008, ts_m = quick ? 4096 / 4 : 4096;
  std::vector<GemmCase> cases = {
      {"gemm/256", Trans::No, Trans::No, 256, 256, 256},
      {"gemm/1024", Trans::No, Trans::No, 1024, 1024, 1024},
      {"gemm/2048", Trans::No, Trans::No, 2048, 2048, 2048},
      // Randomized SVD of a 4096 x 11008 matrix with 64 + 10 probe vectors: Y = A * Omega ...
      {"gemm/tall-skinny", Trans::No, Trans::No, ts_m, 74, ts_k},
      // ... and the projection B = Q^T * A with Q (4096 x 74) stored untransposed.
      {"gemm/tall-skinny-tn", Trans::Yes, Trans::No, 74, ts_k, ts_m},
  };
  if (quick) cases.erase(cases.begin() + 2);
  // One pool of random values for all cases (each case reads a prefix).
  size_t a_max = 0, b_max = 0;
  for (const GemmCase& gc : cases) {
    a_max = std::max(a_max, gc.m * gc.k);
    b_max = std::max(b_max, gc.k * gc.n);
  }
  const std::vector<float> a = random_matrix(a_max, 1), b = random_matrix(b_max, 2);
  for (const GemmCase& gc : cases) {
    const size_t lda = gc.ta == Trans::No ? gc.k : gc.m;
    const size_t ldb = gc.tb == Trans::No ? gc.n : gc.k;
    std::vector<float> c1(gc.m * gc.n), c2(gc.m * gc.n);
    const double flops = 2.0 * static_cast<double>(gc.m) * static_cast<double>(gc.n) * static_cast<double>(gc.k);
    // Small cases repeat until ~0.2 s (0.03 s quick) so the median is stable; big ones 5 times (3).
    const auto [ours_s, base_s] = timed_medians(
        [&] { tersor::sgemm(gc.ta, gc.tb, gc.m, gc.n, gc.k, 1.f, a.data(), lda, b.data(), ldb, 0.f, c1.data(), gc.n); },
        [&] { baseline_gemm(gc.ta, gc.tb, gc.m, gc.n, gc.k, a.data(), lda, b.data(), ldb, c2.data(), gc.n); },
        quick ? 3 : 5, quick ? 0.03 : 0.2, quick ? 1 : 2);
    // Guard against benchmarking a broken kernel: the two results must agree to f32 accuracy.
    double worst = 0;
    for (size_t i = 0; i < c1.size(); ++i) worst = std::max(worst, static_cast<double>(std::abs(c1[i] - c2[i])));
    if (worst > 1e-3) std::fprintf(stderr, "bench %s: results differ from the baseline by %g\n", gc.name.c_str(), worst);
    tersor::bench::report("linalg", gc.name, ours_s, kBaseline, base_s,
                          {{"gflops_ours", flops / ours_s * 1e-9},
                           {"gflops_baseline", flops / base_s * 1e-9},
                           {"threads", tersor::num_threads()},
                           {"m", static_cast<double>(gc.m)},
                           {"n", static_cast<double>(gc.n)},
                           {"k", static_cast<double>(gc.k)}});
  }
}

}  // namespace

TERSOR_BENCH_SUITE("linalg", run_gemm);
