// tersor_bench quant: the quantization formats (native/quant/formats.cpp, matmul.cpp).
//
//  * <format>/quantize: single-thread quantize throughput of the fast path vs the scalar reference
//    (quant_ref::quantize_row, same algorithm and bytes) on N(0,1) rows of 4096; fields
//    weights_per_s_per_thread, ref_weights_per_s_per_thread and, where issue 5 lists it, the
//    llama.cpp figure measured on this machine class (llama_cpp_weights_per_s_per_thread) and our
//    multiple of it (x_llama_cpp, from thread CPU time: cpu_weights_per_s_per_thread).
//  * <format>/roundtrip: relative RMSE and SQNR (dB) of quantize + dequantize on a 4096 x 4096 N(0,1)
//    matrix (256 x 4096 with --quick), timed as the multi-threaded quantize_matrix vs the
//    single-threaded reference.
//  * <format>/gemv: batch-1 quant_matmul on a 4096 x 14336 matrix (rows x cols; 1024 x 4096 quick),
//    all threads, vs the scalar reference GEMV (dequantize a row, f64 dot); gb_per_s = quantized
//    weight bytes read per second (effective weight-read bandwidth); cpu_gb_per_s_per_thread = the same
//    on one thread from thread CPU time (robust on a loaded machine); f32_activations_gb_per_s = the
//    transformer runtime's path (activations kept in f32); nf4 on a CPU with AVX-512 VNNI also carries
//    avx2_gb_per_s (the AVX2 kernel). f32/gemv: the dense f32 weights (AVX2 FMA GEMV) against
//    tersor::sgemm with n = 1. The f32 and format GEMVs are timed interleaved (25 rounds, each slot
//    the mean of 4 calls; median over rounds) so that load from elsewhere hits them alike; f32_ratio =
//    a format's gb_per_s over f32's from the same rounds.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include <functional>

#include <immintrin.h>

#include "bench.hpp"
#include "tersor/gemm.hpp"
#include "tersor/parallel.hpp"
#include "tersor/quant_formats.hpp"

namespace {

using tersor::QuantScheme;

std::vector<float> gaussian(size_t n, uint32_t seed) {
  std::vector<float> x(n);
  std::mt19937 g(seed);
  std::normal_distribution<float> nd;
  for (float& v : x) v = nd(g);
  return x;
}

// Thread CPU seconds of fn (best of reps): per-thread throughput that a loaded machine's
// descheduling does not distort.
double cpu_seconds(const std::function<void()>& fn, int reps) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    timespec a, b;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
    fn();
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
    best = std::min(best, static_cast<double>(b.tv_sec - a.tv_sec) + 1e-9 * static_cast<double>(b.tv_nsec - a.tv_nsec));
  }
  return best;
}

// Median thread CPU seconds of fn run on one thread: per-thread throughput that other processes on a
// loaded machine distort far less than the wall time of a multi-threaded run.
double one_thread_cpu_seconds(const std::function<void()>& fn, int reps) {
  const int saved = tersor::num_threads();
  tersor::set_num_threads(1);
  std::vector<double> t;
  fn();
  for (int r = 0; r < reps; ++r) {
    timespec a, b;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
    fn();
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
    t.push_back(static_cast<double>(b.tv_sec - a.tv_sec) + 1e-9 * static_cast<double>(b.tv_nsec - a.tv_nsec));
  }
  tersor::set_num_threads(saved);
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

double llama_figure(const std::string& f) {  // issue 5: llama.cpp quantize weights/s per thread
  if (f == "q4_0") return 894e6;
  if (f == "q8_0") return 283e6;
  if (f == "q6_k") return 29e6;
  if (f == "q4_k") return 13.1e6;
  if (f == "q2_k") return 15e6;
  return 0;
}

void run_quant(bool quick) {
  const char* formats[] = {"q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k",
                           "mxfp4", "nvfp4", "nf4", "nf4-dq", "fp8", "fp8_e5m2", "int8", "int4-g128",
                           "int4-g128-asym", "int3-g64", "int2-g32-asym", "kmeans4"};
  // ---- quantize throughput, one thread
  {
    const size_t rows = quick ? 8 : 64, cols = 4096;
    const std::vector<float> w = gaussian(rows * cols, 1);
    for (const char* name : formats) {
      const QuantScheme s = tersor::parse_quant_scheme(name);
      const size_t rb = tersor::scheme_row_bytes(s, cols);
      std::vector<uint8_t> q(rows * rb);
      auto ours = [&] { for (size_t r = 0; r < rows; ++r) tersor::quantize_row(s, &w[r * cols], &q[r * rb], cols); };
      auto ref = [&] { for (size_t r = 0; r < rows; ++r) tersor::quant_ref::quantize_row(s, &w[r * cols], &q[r * rb], cols); };
      const int reps = quick ? 3 : 5;
      const double t = tersor::bench::median_seconds(ours, reps, 1);
      const double tr = tersor::bench::median_seconds(ref, reps, 1);
      const double n = static_cast<double>(rows * cols);
      const double tc = cpu_seconds(ours, reps), trc = cpu_seconds(ref, reps);
      tersor::bench::Extra ex = {{"weights_per_s_per_thread", n / t}, {"ref_weights_per_s_per_thread", n / tr},
                                 {"cpu_weights_per_s_per_thread", n / tc}, {"cpu_ref_weights_per_s_per_thread", n / trc}};
      const double lf = llama_figure(name);
      if (lf > 0) { ex.push_back({"llama_cpp_weights_per_s_per_thread", lf}); ex.push_back({"x_llama_cpp", n / tc / lf}); }
      tersor::bench::report("quant", std::string(name) + "/quantize", t, "scalar reference (same algorithm)", tr, ex);
    }
  }
  // ---- round-trip error on N(0,1)
  {
    const size_t rows = quick ? 256 : 4096, cols = 4096;
    const std::vector<float> w = gaussian(rows * cols, 2);
    std::vector<float> y(rows * cols);
    double sx = 0;
    for (float v : w) sx += static_cast<double>(v) * v;
    for (const char* name : formats) {
      const QuantScheme s = tersor::parse_quant_scheme(name);
      const size_t rb = tersor::scheme_row_bytes(s, cols);
      std::vector<uint8_t> q(rows * rb);
      const double t = tersor::bench::median_seconds([&] { tersor::quantize_matrix(s, w.data(), rows, cols, q.data()); }, 1, 0);
      // the reference on a slice of 64 rows, scaled to the matrix
      const size_t sl = quick ? 16 : 64;
      const double tr = tersor::bench::median_seconds(
                            [&] { for (size_t r = 0; r < sl; ++r) tersor::quant_ref::quantize_row(s, &w[r * cols], &q[r * rb], cols); }, 1, 0) *
                        static_cast<double>(rows) / sl;
      tersor::quantize_matrix(s, w.data(), rows, cols, q.data());
      tersor::dequantize_matrix(s, q.data(), rows, cols, y.data());
      double se = 0, ae = 0;
      for (size_t i = 0; i < w.size(); ++i) {
        const double d = static_cast<double>(w[i]) - y[i];
        se += d * d;
        ae += std::fabs(d);
      }
      tersor::bench::report("quant", std::string(name) + "/roundtrip", t, "scalar reference, 1 thread", tr,
                            {{"rel_rmse", std::sqrt(se / sx)}, {"sqnr_db", 10 * std::log10(sx / se)},
                             {"mean_abs_err", ae / static_cast<double>(w.size())},
                             {"bits_per_weight", tersor::scheme_bits_per_weight(s, cols)},
                             {"threads", static_cast<double>(tersor::num_threads())}});
    }
  }
  // ---- batch-1 GEMV
  {
    const size_t rows = quick ? 1024 : 4096, cols = quick ? 4096 : 14336;
    const std::vector<float> w = gaussian(rows * cols, 3), x = gaussian(cols, 4);
    std::vector<float> y(rows);
    // f32: the dense weights, read once (AVX2 FMA, four accumulators, rows over the threads), against
    // tersor::sgemm with n = 1 (what a dense layer costs without a dedicated GEMV).
    const float* wp = w.data();
    const float* xp = x.data();
    float* yp = y.data();
    auto f32_gemv = [&] {
#pragma omp parallel for schedule(static) num_threads(tersor::num_threads())
      for (long r = 0; r < static_cast<long>(rows); ++r) {
        const float* row = wp + static_cast<size_t>(r) * cols;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        size_t k = 0;
        for (; k + 32 <= cols; k += 32) {
          a0 = _mm256_fmadd_ps(_mm256_loadu_ps(row + k), _mm256_loadu_ps(xp + k), a0);
          a1 = _mm256_fmadd_ps(_mm256_loadu_ps(row + k + 8), _mm256_loadu_ps(xp + k + 8), a1);
          a2 = _mm256_fmadd_ps(_mm256_loadu_ps(row + k + 16), _mm256_loadu_ps(xp + k + 16), a2);
          a3 = _mm256_fmadd_ps(_mm256_loadu_ps(row + k + 24), _mm256_loadu_ps(xp + k + 24), a3);
        }
        alignas(32) float t[8];
        _mm256_store_ps(t, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
        float sum = ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
        for (; k < cols; ++k) sum += row[k] * xp[k];
        yp[r] = sum;
      }
    };
    const char* gemv_formats[] = {"q8_0", "q4_0", "q4_k", "q6_k", "q5_k", "nf4", "int4-g128", "int8", "mxfp4", "fp8"};
    constexpr size_t nf = sizeof(gemv_formats) / sizeof(gemv_formats[0]);
    std::vector<QuantScheme> schemes;
    std::vector<std::vector<uint8_t>> qs(nf);
    for (size_t f = 0; f < nf; ++f) {
      schemes.push_back(tersor::parse_quant_scheme(gemv_formats[f]));
      qs[f].resize(rows * tersor::scheme_row_bytes(schemes[f], cols));
      tersor::quantize_matrix(schemes[f], w.data(), rows, cols, qs[f].data());
    }
    // All cases timed interleaved, round by round (each slot the mean of a few calls), median over the
    // rounds: a burst of load from elsewhere on the machine then slows every case alike instead of
    // whichever happened to be running, and f32_ratio (this case's bandwidth over f32's, same rounds)
    // stays meaningful on a loaded machine.
    std::vector<std::function<void()>> calls;
    calls.push_back(f32_gemv);
    for (size_t f = 0; f < nf; ++f)
      calls.push_back([&, f] { tersor::quant_matmul(schemes[f], qs[f].data(), rows, cols, x.data(), 1, y.data()); });
    const int rounds = quick ? 5 : 25, per_slot = quick ? 2 : 4;
    std::vector<std::vector<double>> times(calls.size());
    for (auto& c : calls) c();  // warm-up
    for (int r = 0; r < rounds; ++r)
      for (size_t c = 0; c < calls.size(); ++c) {
        const auto t0 = std::chrono::steady_clock::now();
        for (int k = 0; k < per_slot; ++k) calls[c]();
        times[c].push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / per_slot);
      }
    auto median = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      return v[v.size() / 2];
    };
    const double f32_bytes = 4.0 * static_cast<double>(rows * cols);
    const double t32 = median(times[0]);
    {
      const double tb = tersor::bench::median_seconds(
          [&] { tersor::sgemm(tersor::Trans::No, tersor::Trans::No, rows, 1, cols, 1.f, wp, cols, xp, 1, 0.f, yp, 1); }, quick ? 3 : 5, 1);
      const double tc = one_thread_cpu_seconds(f32_gemv, quick ? 3 : 7);
      tersor::bench::report("quant", "f32/gemv", t32, "tersor::sgemm n=1", tb,
                            {{"gb_per_s", f32_bytes / t32 / 1e9}, {"f32_equiv_gb_per_s", f32_bytes / t32 / 1e9},
                             {"cpu_gb_per_s_per_thread", f32_bytes / tc / 1e9},
                             {"rows", static_cast<double>(rows)}, {"cols", static_cast<double>(cols)},
                             {"threads", static_cast<double>(tersor::num_threads())}});
    }
    for (size_t f = 0; f < nf; ++f) {
      const QuantScheme& s = schemes[f];
      const std::vector<uint8_t>& q = qs[f];
      const double t = median(times[f + 1]);
      const double tr = tersor::bench::median_seconds(
          [&] { tersor::quant_ref::quant_matmul(s, q.data(), rows, cols, x.data(), 1, y.data()); }, 1, 0);
      const double bytes = static_cast<double>(q.size());
      const double tc = one_thread_cpu_seconds([&] { tersor::quant_matmul(s, q.data(), rows, cols, x.data(), 1, y.data()); }, quick ? 3 : 7);
      const double tf = tersor::bench::median_seconds(
          [&] { tersor::quant_matmul(s, q.data(), rows, cols, x.data(), 1, y.data(), /*f32_activations=*/true); }, quick ? 3 : 7, 1);
      tersor::bench::Extra ex = {{"gb_per_s", bytes / t / 1e9}, {"f32_equiv_gb_per_s", f32_bytes / t / 1e9},
                                 {"f32_ratio", (bytes / t) / (f32_bytes / t32)},
                                 {"cpu_gb_per_s_per_thread", bytes / tc / 1e9}, {"f32_activations_gb_per_s", bytes / tf / 1e9},
                                 {"rows", static_cast<double>(rows)}, {"cols", static_cast<double>(cols)},
                                 {"threads", static_cast<double>(tersor::num_threads())}};
      if (s.format == tersor::QuantFormat::NF4 && tersor::quant_matmul_vnni_active()) {
        // the AVX2 kernel too (the figure above uses AVX-512 VNNI)
        tersor::quant_matmul_set_vnni(false);
        const double ta = tersor::bench::median_seconds([&] { tersor::quant_matmul(s, q.data(), rows, cols, x.data(), 1, y.data()); },
                                                        quick ? 5 : 9, 2, quick ? 0.05 : 0.3);
        tersor::quant_matmul_set_vnni(true);
        ex.push_back({"vnni", 1.0});
        ex.push_back({"avx2_gb_per_s", bytes / ta / 1e9});
      }
      tersor::bench::report("quant", std::string(gemv_formats[f]) + "/gemv", t, "scalar reference gemv", tr, ex);
    }
  }
}

}  // namespace

TERSOR_BENCH_SUITE("quant", run_quant);
