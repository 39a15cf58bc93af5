// Suite "train": the native trainer (tersor/train.hpp) on the ref-small shape: Llama-style, hidden
// 256, 8 layers, 8 heads over 4 kv heads of 32, SwiGLU 688, vocab 259, RoPE, tied embeddings; a
// batch of 8 sequences of 256 tokens (--quick: hidden 64, 2 layers, 4 heads over 2 kv heads of 16,
// intermediate 160, batch 2 of 64 tokens).
//
//   train/step  ours: one training step, forward + cross-entropy + backward (gradients accumulated),
//       on a fixed batch. baseline: "forward": the forward pass + loss alone on the same batch, timed
//       in the same run (the two alternate; each figure is the fastest of 5 runs, 9 with --quick), so ratio = forward time / step time and step_over_forward = its inverse
//       (the backward should cost about twice the forward, so about 3).
//       Extras: tokens_per_s = batch tokens / (step + AdamW update); adamw_s; gflops = (6 * params *
//       tokens + attention) / step time with attention = 12 * layers * heads * head_dim * seq per token
//       (PaLM's accounting, Chowdhery et al. 2022, appendix B: forward + backward of Q K^T and P V,
//       not discounting the causal half); params.
#include <algorithm>
#include <chrono>
#include <functional>
#include <cmath>
#include <vector>

#include "bench.hpp"
#include "tersor/rng.hpp"
#include "tersor/train.hpp"

namespace {

using namespace tersor;

void run_train(bool quick) {
  TransformerConfig c;
  c.norm = NormKind::RMSNorm;
  c.norm_eps = 1e-5;
  c.vocab_size = 259;
  c.hidden = quick ? 64 : 256;
  c.intermediate = quick ? 160 : 688;
  c.layers = quick ? 2 : 8;
  c.heads = quick ? 4 : 8;
  c.kv_heads = quick ? 2 : 4;
  c.head_dim = c.hidden / c.heads;
  c.activation = MlpActivation::Silu;
  c.gated_mlp = true;
  c.tie_embeddings = true;
  c.max_positions = 1024;
  c.rope = true;
  c.rope_config.theta = 10000.0;
  const size_t B = quick ? 2 : 8, S = quick ? 64 : 256, N = B * S;

  train::TrainableTransformer<float> m(c, 1, 0.02);
  Rng r(3);
  std::vector<int32_t> tokens(N + 1);
  for (auto& t : tokens) t = static_cast<int32_t>(r.next_below(static_cast<uint32_t>(c.vocab_size)));
  const std::vector<int32_t> input(tokens.begin(), tokens.end() - 1), ids(tokens.begin() + 1, tokens.end());
  train::Targets tg;
  tg.kind = train::TargetKind::Hard;
  tg.ids = ids.data();
  tg.ids_size = N;

  const int reps = quick ? 9 : 5;
  train::AdamWOptions o;
  o.lr = 0.0;  // keep the weights (and so the work) identical across repetitions
  // Forward and step alternate (one warm-up each), so a burst of load elsewhere on a shared machine
  // hits both; each time is the fastest of its own runs (the least disturbed one).
  auto seconds = [](const std::function<void()>& f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  const std::function<void()> fwd = [&] { m.evaluate(input.data(), B, S, tg); };
  const std::function<void()> stp = [&] {
    m.zero_grad();
    m.step(input.data(), B, S, tg, 1.0 / static_cast<double>(N));
  };
  fwd();
  stp();
  std::vector<double> tf, ts;
  for (int i = 0; i < reps; ++i) {
    tf.push_back(seconds(fwd));
    ts.push_back(seconds(stp));
  }
  const double fwd_s = *std::min_element(tf.begin(), tf.end()), step_s = *std::min_element(ts.begin(), ts.end());
  const double adam_s = bench::median_seconds([&] { m.adamw(o); }, reps, 1);
  const double P = static_cast<double>(m.parameter_count());
  const double attn = 12.0 * static_cast<double>(c.layers * c.heads * c.head_dim * S);
  const double flops = (6.0 * P + attn) * static_cast<double>(N);
  bench::report("train", quick ? "step/quick" : "step/ref-small", step_s, "forward", fwd_s,
                {{"step_over_forward", step_s / fwd_s},
                 {"tokens_per_s", static_cast<double>(N) / (step_s + adam_s)},
                 {"adamw_s", adam_s},
                 {"gflops", flops / step_s / 1e9},
                 {"params", P},
                 {"tokens", static_cast<double>(N)}});
}

}  // namespace

TERSOR_BENCH_SUITE("train", run_train);
