// Suite "quant", layer methods: GPTQ 4-bit g128 on a 4096 x 4096 layer (lazy 128-column batches with
// GEMM updates) against the straightforward unblocked GPTQ in the same run, and HQQ 4-bit g64 (AVX2,
// all iterations per group in registers) against its scalar formulation. --quick uses 512 x 512.
#include <cmath>
#include <string>
#include <vector>

#include "bench.hpp"
#include "tersor/linalg.hpp"
#include "tersor/quant_methods.hpp"
#include "tersor/rng.hpp"

namespace {

void run_quant_methods(bool quick) {
  using namespace tersor;
  const size_t n = quick ? 512 : 4096;
  const size_t samples = quick ? 1024 : 4096;
  std::vector<float> w(n * n);
  fill_normal<float>(1, w.data(), w.size());
  for (auto& v : w) v *= 0.02f;
  // Gram of correlated activations: X = Z M with Z Gaussian [samples, n], M = I + Gaussian / sqrt(n).
  std::vector<float> z(samples * n), m(n * n), x(samples * n);
  fill_normal<float>(2, z.data(), z.size());
  fill_normal<float>(3, m.data(), m.size());
  for (size_t i = 0; i < n * n; ++i) m[i] /= std::sqrt(static_cast<float>(n));
  for (size_t i = 0; i < n; ++i) m[i * n + i] += 1.f;
  sgemm(Trans::No, Trans::No, samples, n, n, 1.f, z.data(), n, m.data(), n, 0.f, x.data(), n);
  std::vector<float> gf(n * n);
  sgemm(Trans::Yes, Trans::No, n, n, samples, 1.f, x.data(), n, x.data(), n, 0.f, gf.data(), n);
  std::vector<double> g(gf.begin(), gf.end());
  BlockCodec c = scheme_codec("int4-g128", n);
  const int reps = quick ? 3 : 3;
  GptqResult r1, r2;
  const double ours = bench::median_seconds([&] { r1 = gptq(c, w.data(), n, n, g.data(), samples); }, reps, 1);
  const double base = bench::median_seconds([&] { r2 = gptq_reference(c, w.data(), n, n, g.data(), samples); }, quick ? 3 : 1, 0);
  const double e1 = output_error(w.data(), r1.deq.data(), n, n, g.data());
  const double e2 = output_error(w.data(), r2.deq.data(), n, n, g.data());
  bench::report("quant", "gptq_int4_g128/" + std::to_string(n), ours, "unblocked gptq", base,
                {{"output_error", e1}, {"baseline_output_error", e2}, {"target_s", 1.5}});
  HqqResult h1, h2;
  const double hq = bench::median_seconds([&] { h1 = hqq(w.data(), n, n, 4, 64); }, reps, 1);
  const double hb = bench::median_seconds([&] { h2 = hqq_reference(w.data(), n, n, 4, 64); }, quick ? 3 : 1, 0);
  bench::report("quant", "hqq_int4_g64/" + std::to_string(n), hq, "scalar hqq", hb,
                {{"mean_abs_error", h1.error}, {"baseline_mean_abs_error", h2.error}, {"iterations", static_cast<double>(h1.iterations)}, {"target_s", 1.0}});
}

}  // namespace

TERSOR_BENCH_SUITE("quant", run_quant_methods);
