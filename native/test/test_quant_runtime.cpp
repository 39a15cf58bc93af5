// The transformer runtime with quantized linears (Transformer::set_quantized_weight, quant_linear.hpp):
// a model holding its linears quantized (several schemes, some with a low-rank adapter) gives the
// logits of the f32 model built from the dequantized weights (adapters folded in: W + B A), to
// 1e-4 relative, for a prompt and for cached decode steps.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "tersor/error.hpp"
#include "tersor/quant_formats.hpp"
#include "tersor/quant_linear.hpp"
#include "tersor/rng.hpp"
#include "tersor/transformer.hpp"

using namespace tersor;

namespace {

TransformerConfig small_config() {
  TransformerConfig c;
  c.norm = NormKind::RMSNorm;
  c.norm_eps = 1e-5;
  c.vocab_size = 100;
  c.hidden = 256;
  c.intermediate = 512;
  c.layers = 2;
  c.heads = 4;
  c.kv_heads = 2;
  c.head_dim = 64;
  c.activation = MlpActivation::Silu;
  c.gated_mlp = true;
  c.qkv_bias = true;
  c.max_positions = 64;
  c.rope = true;
  c.rope_config.theta = 10000.0;
  return c;
}

bool is_linear(const std::string& n) {
  return n == "lmHead" || (n.rfind("layers.", 0) == 0 && n.size() > 7 && n.compare(n.size() - 7, 7, ".weight") == 0 &&
                           n.find("Norm") == std::string::npos);
}

double rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0, m = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    d = std::max(d, static_cast<double>(std::fabs(a[i] - b[i])));
    m = std::max(m, static_cast<double>(std::fabs(b[i])));
  }
  return d / m;
}

}  // namespace

TEST_CASE("quant runtime quantized linears match the dequantized float model") {
  const TransformerConfig cfg = small_config();
  Transformer qm(cfg), fm(cfg);
  Rng r(42);
  const char* schemes[] = {"q4_k", "q6_k", "q8_0", "nf4", "int4-g128", "q5_k", "q4_0", "int3-g64-asym", "mxfp4"};
  size_t li = 0;
  for (const WeightSpec& s : qm.weight_specs()) {
    std::vector<float> v(s.elements());
    const bool norm = s.name.find("Norm.weight") != std::string::npos;
    const bool bias = s.name.size() > 5 && s.name.compare(s.name.size() - 5, 5, ".bias") == 0;
    const double scale = norm || bias ? 0.1 : s.name == "embed" ? 0.7 : 1.0 / std::sqrt(static_cast<double>(s.shape[1]));
    for (float& x : v) x = static_cast<float>((norm ? 1.0 : 0.0) + scale * r.next_normal());
    if (!is_linear(s.name)) {
      qm.set_weight(s.name, v.data(), WeightDType::F32, v.size(), s.shape);
      fm.set_weight(s.name, v.data(), WeightDType::F32, v.size(), s.shape);
      continue;
    }
    const std::string scheme = schemes[li % (sizeof schemes / sizeof *schemes)];
    const size_t out = s.shape[0], in = s.shape[1];
    const QuantScheme qs = parse_quant_scheme(scheme);
    std::vector<uint8_t> q(out * scheme_row_bytes(qs, in));
    quantize_matrix(qs, v.data(), out, in, q.data());
    std::vector<float> deq(out * in);
    dequantize_matrix(qs, q.data(), out, in, deq.data());
    const size_t rank = li % 2 == 0 ? 4 : 0;  // every other linear carries an adapter
    std::vector<float> a(rank * in), b(out * rank);
    for (float& x : a) x = static_cast<float>(0.05 * r.next_normal());
    for (float& x : b) x = static_cast<float>(0.05 * r.next_normal());
    for (size_t o = 0; o < out; ++o)
      for (size_t i = 0; i < in; ++i) {
        double t = deq[o * in + i];
        for (size_t k = 0; k < rank; ++k) t += static_cast<double>(b[o * rank + k]) * a[k * in + i];
        deq[o * in + i] = static_cast<float>(t);
      }
    qm.set_quantized_weight(s.name, scheme, q.data(), q.size(), rank ? a.data() : nullptr, rank ? b.data() : nullptr, rank);
    fm.set_weight(s.name, deq.data(), WeightDType::F32, deq.size(), s.shape);
    CHECK(qm.is_quantized(s.name));
    CHECK(qm.weight(s.name) == nullptr);
    ++li;
  }
  CHECK(li == 2 * 7 + 1);
  CHECK(qm.missing_weights().empty());

  const std::vector<int32_t> prompt = {3, 17, 99, 0, 42, 7, 64, 11};
  const ForwardOutput qo = qm.forward(prompt.data(), prompt.size());
  const ForwardOutput fo = fm.forward(prompt.data(), prompt.size());
  CHECK(rel_diff(qo.logits, fo.logits) <= 1e-4);

  // cached decode: batch-1 rows go through the GEMV path
  KvCache qc(qm, 16), fc(fm, 16);
  qm.forward(prompt.data(), 5, &qc, LogitsMode::None);
  fm.forward(prompt.data(), 5, &fc, LogitsMode::None);
  for (size_t t = 5; t < prompt.size(); ++t) {
    const ForwardOutput a = qm.forward(&prompt[t], 1, &qc, LogitsMode::Last);
    const ForwardOutput b = fm.forward(&prompt[t], 1, &fc, LogitsMode::Last);
    CHECK(rel_diff(a.logits, b.logits) <= 1e-4);
  }
}

TEST_CASE("quant runtime set quantized weight rejects bad input") {
  const TransformerConfig cfg = small_config();
  Transformer m(cfg);
  const QuantScheme q4 = parse_quant_scheme("q4_k");
  std::vector<uint8_t> bytes(cfg.hidden * scheme_row_bytes(q4, cfg.hidden));
  auto code = [](auto&& f) {
    try { f(); } catch (const Error& e) { return e.code(); }
    return ErrorCode::Native;
  };
  CHECK(code([&] { m.set_quantized_weight("embed", "q4_k", bytes.data(), bytes.size()); }) == ErrorCode::Format);
  CHECK(code([&] { m.set_quantized_weight("layers.0.attnNorm.weight", "q4_k", bytes.data(), bytes.size()); }) == ErrorCode::Format);
  CHECK(code([&] { m.set_quantized_weight("layers.0.nope.weight", "q4_k", bytes.data(), bytes.size()); }) == ErrorCode::Format);
  CHECK(code([&] { m.set_quantized_weight("layers.0.q.weight", "q4_k", bytes.data(), bytes.size() - 1); }) == ErrorCode::Shape);
  CHECK(code([&] { m.set_quantized_weight("layers.0.q.weight", "q9_k", bytes.data(), bytes.size()); }) == ErrorCode::Range);
  m.set_quantized_weight("layers.0.q.weight", "q4_k", bytes.data(), bytes.size());
  CHECK(m.is_quantized("layers.0.q.weight"));
  std::vector<float> w(cfg.hidden * cfg.hidden, 0.0f);
  m.set_weight("layers.0.q.weight", w.data(), WeightDType::F32, w.size(), {cfg.hidden, cfg.hidden});
  CHECK(!m.is_quantized("layers.0.q.weight"));
}
