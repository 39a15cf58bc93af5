// Suite "model", part "transformer": the runtime end to end on a ~25M-parameter Llama-shaped model
// with random weights (hidden 512, 8 layers, 8 heads over 4 kv heads of 64, SwiGLU 1152, vocab 8192,
// tied embeddings; 24.7M parameters), f32, RoPE.
//
//   transformer/prefill  one forward of N tokens (N = 512; 64 with --quick), all logits.
//       baseline: the same N tokens fed one at a time through a KV cache (same model, same logits:
//       the decode path, i.e. what prefill would cost without batching rows into GEMMs).
//       gflops = (2 * parameters * N + attention) / time, attention = 4 * d * heads * layers * N(N+1)/2
//       (Q K^T and P V over the causal half). naive_attention_s: the same prefill with
//       naive_attention (the double-precision reference kernel) in place of flash_attention.
//   transformer/decode   one token at context N (the cache is truncated back to N before each step),
//       last logits only. bytes_per_token = every weight the step reads (all layer matrices and
//       norms plus the lm_head; the embedding lookup reads one row) + the K/V rows read.
//       baseline: "memcpy bandwidth": a parallel memcpy of bytes_per_token bytes on the same threads,
//       timed alternately with the decode steps (same load on a shared machine; medians of each);
//       its bandwidth counts bytes read + bytes written (as STREAM's Copy does). baseline_s = the time that bandwidth needs
//       for bytes_per_token, so ratio = achieved GB/s / copy GB/s.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "bench.hpp"
#include "tersor/parallel.hpp"
#include "tersor/rng.hpp"
#include "tersor/transformer.hpp"

namespace {

using namespace tersor;

TransformerConfig bench_config() {
  TransformerConfig c;
  c.norm = NormKind::RMSNorm;
  c.norm_eps = 1e-5;
  c.vocab_size = 8192;
  c.hidden = 512;
  c.intermediate = 1152;
  c.layers = 8;
  c.heads = 8;
  c.kv_heads = 4;
  c.head_dim = 64;
  c.activation = MlpActivation::Silu;
  c.gated_mlp = true;
  c.tie_embeddings = true;
  c.max_positions = 2048;
  c.rope = true;
  c.rope_config.theta = 10000.0;
  return c;
}

std::unique_ptr<Transformer> random_model(const TransformerConfig& c) {
  auto t = std::make_unique<Transformer>(c);
  Rng r(7);
  std::vector<float> v;
  for (const WeightSpec& s : t->weight_specs()) {
    v.resize(s.elements());
    const bool norm = s.shape.size() == 1;
    // Uniform with the variance of N(0, 1/in) (N(0, 1) for the embedding), norms near 1.
    const double a = norm ? 0.1 : std::sqrt(3.0 / (s.name == "embed" ? 1.0 : static_cast<double>(s.shape[1])));
    for (float& x : v) x = static_cast<float>((norm ? 1.0 : 0.0) + a * (2.0 * r.next_f32() - 1.0));
    t->set_weight(s.name, v.data(), WeightDType::F32, v.size(), s.shape);
  }
  return t;
}

/// Parallel memcpy of `bytes` from src to dst on num_threads() threads.
void parallel_copy(char* dst, const char* src, size_t bytes) {
  const int nt = num_threads();
#pragma omp parallel num_threads(nt)
  {
    const size_t t = static_cast<size_t>(omp_get_thread_num()), n = static_cast<size_t>(omp_get_num_threads());
    const size_t b = bytes * t / n, e = bytes * (t + 1) / n;
    std::memcpy(dst + b, src + b, e - b);
  }
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void transformer_suite(bool quick) {
  const TransformerConfig c = bench_config();
  auto model = random_model(c);
  const size_t N = quick ? 64 : 512;
  std::vector<int32_t> tok(N);
  Rng r(3);
  for (auto& x : tok) x = static_cast<int32_t>(r.next_below(static_cast<uint32_t>(c.vocab_size)));
  const double params = static_cast<double>(model->parameter_count());
  const double attn_flops = 4.0 * static_cast<double>(c.head_dim * c.heads * c.layers) * static_cast<double>(N) *
                            static_cast<double>(N + 1) / 2.0;
  const double flops = 2.0 * params * static_cast<double>(N) + attn_flops;

  // ---- prefill
  const double prefill_s = bench::median_seconds([&] { model->forward(tok.data(), N); }, quick ? 3 : 5, 1);
  KvCache cache(*model, N + 1);
  const double stepwise_s = bench::median_seconds(
      [&] {
        cache.clear();
        for (size_t i = 0; i < N; ++i) model->forward(&tok[i], 1, &cache);
      },
      quick ? 1 : 3, 0);
  model->set_reference_attention(true);
  const double naive_s = bench::median_seconds([&] { model->forward(tok.data(), N); }, 1, 0);
  model->set_reference_attention(false);
  bench::report("model", "transformer/prefill", prefill_s, "token-by-token through the KV cache (same model)",
                stepwise_s,
                {{"tokens", static_cast<double>(N)},
                 {"params", params},
                 {"threads", static_cast<double>(num_threads())},
                 {"tokens_per_s", static_cast<double>(N) / prefill_s},
                 {"gflops", flops / prefill_s * 1e-9},
                 {"baseline_tokens_per_s", static_cast<double>(N) / stepwise_s},
                 {"naive_attention_s", naive_s},
                 {"naive_attention_ratio", naive_s / prefill_s}});

  // ---- decode at context N
  cache.clear();
  model->forward(tok.data(), N, &cache, LogitsMode::None);
  const int32_t next = tok[0];
  // Weights read per step: everything but the embedding table, plus the (tied) lm_head once.
  double weight_bytes = 0;
  for (const WeightSpec& s : model->weight_specs())
    if (s.name != "embed") weight_bytes += 4.0 * static_cast<double>(s.elements());
  weight_bytes += 4.0 * static_cast<double>(c.vocab_size * c.hidden);
  const double kv_bytes = 2.0 * 4.0 * static_cast<double>(c.layers * (N + 1) * c.kv_heads * c.head_dim);
  const double bytes = weight_bytes + kv_bytes;
  // Decode steps and copies of the same number of bytes alternate, so that both see the same load
  // on a shared machine; medians of each.
  const size_t copy_bytes = static_cast<size_t>(bytes);
  std::vector<char> src(copy_bytes, 1), dst(copy_bytes, 0);
  auto step = [&] {
    cache.truncate(N);
    model->forward(&next, 1, &cache, LogitsMode::Last);
  };
  for (int i = 0; i < 2; ++i) {
    step();
    parallel_copy(dst.data(), src.data(), copy_bytes);
  }
  std::vector<double> ts, tc;
  double total = 0;
  const double min_total = quick ? 0.3 : 3.0;
  while (ts.size() < 20 || total < min_total) {
    const auto t0 = std::chrono::steady_clock::now();
    step();
    const auto t1 = std::chrono::steady_clock::now();
    parallel_copy(dst.data(), src.data(), copy_bytes);
    const auto t2 = std::chrono::steady_clock::now();
    ts.push_back(std::chrono::duration<double>(t1 - t0).count());
    tc.push_back(std::chrono::duration<double>(t2 - t1).count());
    total += ts.back() + tc.back();
    if (ts.size() >= 2000) break;
  }
  const double decode_s = median(ts);
  const double copy_bw = 2.0 * static_cast<double>(copy_bytes) / median(tc);  // read + written
  const double achieved = bytes / decode_s;
  bench::report("model", "transformer/decode", decode_s, "memcpy bandwidth (parallel, read+write bytes)",
                bytes / copy_bw,
                {{"context", static_cast<double>(N)},
                 {"threads", static_cast<double>(num_threads())},
                 {"tokens_per_s", 1.0 / decode_s},
                 {"weight_bytes_per_token", weight_bytes},
                 {"kv_bytes_per_token", kv_bytes},
                 {"gbps", achieved * 1e-9},
                 {"copy_gbps", copy_bw * 1e-9}});
}

}  // namespace

TERSOR_BENCH_SUITE("model", transformer_suite);
