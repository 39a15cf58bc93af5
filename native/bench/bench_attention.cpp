// Suite "model": attention kernels of the transformer runtime.
//   attention       flash vs naive, N x N causal self-attention, 8 heads (MHA)
//   attention/gqa4  the same with 8 query heads over 2 kv heads
// Baseline: naive_attention (full score rows, double accumulation, one (query, head) row at a time),
// the repository's reference. Extra fields:
//   gflops            flash, counting 4 N^2 d H / 2 flops (Q K^T and P V, causal half)
//   naive_gflops      the same count over naive's time
//   flash_extra_bytes / naive_extra_bytes  peak scratch each allocated (attention_scratch_stats)
//   nxn_bytes         what one f32 N x N score matrix per head would take, for comparison
//   gemm_path_s       an f32 attention that materialises each head's N x N scores and uses
//                     tersor::sgemm + tersor::softmax (the usual "two GEMMs" formulation),
//                     heads in turn, the threads inside sgemm and softmax
//   gemm_path_extra_bytes  its score matrices
//   decode_us         flash, one query against N cached keys (q_start = N - 1)
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "bench.hpp"
#include "tersor/attention.hpp"
#include "tersor/gemm.hpp"
#include "tersor/ops.hpp"
#include "tersor/parallel.hpp"
#include "tersor/rng.hpp"

namespace {

using namespace tersor;

std::vector<float> randn(size_t n, uint64_t seed) {
  Rng r(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(r.next_normal());
  return v;
}

/// Attention with materialised per-head score matrices: S = scale Q K^T (sgemm), causal mask,
/// softmax rows, O = P V (sgemm). Heads one after the other; sgemm and softmax use the threads.
void gemm_attention(const float* q, const float* k, const float* v, float* out, size_t n, size_t h, size_t hkv,
                    size_t d, std::vector<float>& scores) {
  const size_t R = h / hkv;
  const float scale = 1.f / std::sqrt(static_cast<float>(d));
  scores.resize(n * n);
  float* s = scores.data();
  for (size_t hi = 0; hi < h; ++hi) {
    const size_t g = hi / R;
    sgemm(Trans::No, Trans::Yes, n, n, d, scale, q + hi * d, h * d, k + g * d, hkv * d, 0.f, s, n);
    for (size_t i = 0; i < n; ++i)
      std::fill(s + i * n + i + 1, s + (i + 1) * n, -std::numeric_limits<float>::infinity());
    softmax(s, s, n, n);
    sgemm(Trans::No, Trans::No, n, d, n, 1.f, s, n, v + g * d, hkv * d, 0.f, out + hi * d, h * d);
  }
}

void run_case(const char* name, size_t n, size_t h, size_t hkv, size_t d, bool quick) {
  auto q = randn(n * h * d, 1), k = randn(n * hkv * d, 2), v = randn(n * hkv * d, 3);
  std::vector<float> o1(n * h * d), o2(n * h * d), o3(n * h * d);
  AttentionParams p;
  p.n_q = n;
  p.n_kv = n;
  p.heads = h;
  p.kv_heads = hkv;
  p.head_dim = d;

  attention_scratch_reset_peak();
  const size_t base = attention_scratch_stats().current_bytes;
  const double flash_s = bench::median_seconds([&] { flash_attention(q.data(), k.data(), v.data(), o1.data(), p); },
                                               quick ? 3 : 7, 1);
  const double flash_bytes = static_cast<double>(attention_scratch_stats().peak_bytes - base);
  attention_scratch_reset_peak();
  const double naive_s = bench::median_seconds([&] { naive_attention(q.data(), k.data(), v.data(), o2.data(), p); },
                                               quick ? 1 : 3, 0);
  const double naive_bytes = static_cast<double>(attention_scratch_stats().peak_bytes - base);
  double err = 0;
  for (size_t i = 0; i < o1.size(); ++i) err = std::max(err, static_cast<double>(std::fabs(o1[i] - o2[i])));

  std::vector<float> scores;
  const double gemm_s = bench::median_seconds(
      [&] { gemm_attention(q.data(), k.data(), v.data(), o3.data(), n, h, hkv, d, scores); }, quick ? 1 : 3, 1);
  const double gemm_bytes = static_cast<double>(scores.size() * sizeof(float));
  double err_gemm = 0;
  for (size_t i = 0; i < o1.size(); ++i) err_gemm = std::max(err_gemm, static_cast<double>(std::fabs(o3[i] - o2[i])));

  // decode: one query at position n - 1 against the n cached keys
  AttentionParams dp = p;
  dp.n_q = 1;
  dp.q_start = n - 1;
  const double decode_s = bench::median_seconds(
      [&] { flash_attention(q.data(), k.data(), v.data(), o1.data(), dp); }, 5, 2, quick ? 0.01 : 0.1);

  const double flops = 4.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(d) *
                       static_cast<double>(h) / 2.0;
  bench::report("model", name, flash_s, "naive", naive_s,
                {{"n", static_cast<double>(n)},
                 {"heads", static_cast<double>(h)},
                 {"kv_heads", static_cast<double>(hkv)},
                 {"head_dim", static_cast<double>(d)},
                 {"threads", static_cast<double>(num_threads())},
                 {"gflops", flops / flash_s * 1e-9},
                 {"naive_gflops", flops / naive_s * 1e-9},
                 {"flash_extra_bytes", flash_bytes},
                 {"naive_extra_bytes", naive_bytes},
                 {"nxn_bytes", static_cast<double>(n) * static_cast<double>(n) * 4.0},
                 {"max_abs_err", err},
                 {"gemm_path_s", gemm_s},
                 {"gemm_path_ratio", gemm_s / flash_s},
                 {"gemm_path_extra_bytes", gemm_bytes},
                 {"gemm_path_max_abs_err", err_gemm},
                 {"decode_us", decode_s * 1e6}});
}

void model_suite(bool quick) {
  const size_t n = quick ? 512 : 2048;
  run_case("attention", n, 8, 8, 64, quick);
  run_case("attention/gqa4", n, 8, 2, 64, quick);
}

}  // namespace

TERSOR_BENCH_SUITE("model", model_suite);
