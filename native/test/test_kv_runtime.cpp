// Compressed KV caches inside the transformer runtime: an f16 cache and 8-bit caches give logits
// close to the f32 cache; lower precision moves them more; eviction keeps the budget; errors.
#include <doctest/doctest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "tersor/error.hpp"
#include "tersor/kv.hpp"
#include "tersor/rng.hpp"
#include "tersor/transformer.hpp"

using namespace tersor;

namespace {

std::unique_ptr<Transformer> random_llama(uint64_t seed) {
  TransformerConfig c;
  c.norm = NormKind::RMSNorm;
  c.norm_eps = 1e-5;
  c.vocab_size = 101;
  c.hidden = 64;
  c.intermediate = 128;
  c.layers = 2;
  c.heads = 4;
  c.kv_heads = 2;
  c.head_dim = 16;
  c.max_positions = 512;
  c.rope = true;
  auto t = std::make_unique<Transformer>(c);
  Rng r(seed);
  for (const WeightSpec& s : t->weight_specs()) {
    std::vector<float> v(s.elements());
    const bool norm = s.name.find("Norm.weight") != std::string::npos;
    const double scale = norm ? 0.1 : s.name == "embed" ? 0.7 : 1.0 / std::sqrt(static_cast<double>(s.shape[1]));
    for (float& x : v) x = static_cast<float>((norm ? 1.0 : 0.0) + scale * r.next_normal());
    t->set_weight(s.name, v.data(), WeightDType::F32, v.size(), s.shape);
  }
  return t;
}

/// Logits of every position, decoding the tokens in chunks through `cache`.
std::vector<float> chunked_logits(const Transformer& t, KvCache& cache, const std::vector<int32_t>& tok, size_t chunk) {
  std::vector<float> all;
  for (size_t i = 0; i < tok.size(); i += chunk) {
    const size_t n = std::min(chunk, tok.size() - i);
    ForwardOutput o = t.forward(tok.data() + i, n, &cache, LogitsMode::All);
    all.insert(all.end(), o.logits.begin(), o.logits.end());
  }
  return all;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, static_cast<double>(std::fabs(a[i] - b[i])));
  return m;
}

}  // namespace

TEST_CASE("kv runtime: 8-bit and f16 compressed caches give logits close to the f32 cache") {
  auto t = random_llama(5);
  std::vector<int32_t> tok(200);
  Rng r(9);
  for (auto& x : tok) x = static_cast<int32_t>(r.next_u32() % 101);
  KvCache full(*t, 256);
  const auto ref = chunked_logits(*t, full, tok, 8);
  double scale = 0;
  for (float x : ref) scale = std::max(scale, static_cast<double>(std::fabs(x)));

  auto run = [&](kv::KvConfig cfg) {
    KvCache c(*t, 256, cfg);
    auto l = chunked_logits(*t, c, tok, 8);
    CHECK(c.length() == tok.size());
    CHECK(c.compressed()->length() == tok.size());
    return max_abs_diff(ref, l) / scale;
  };
  kv::KvConfig f16;
  f16.method = kv::KvMethod::F16;
  const double e16 = run(f16);
  kv::KvConfig k8;
  k8.method = kv::KvMethod::Kivi;
  k8.bits = 8;
  k8.group = 32;
  k8.residual = 16;
  const double e8 = run(k8);
  kv::KvConfig q8 = k8;
  q8.method = kv::KvMethod::KvQuant;
  const double eq8 = run(q8);
  kv::KvConfig k2 = k8;
  k2.bits = 2;
  const double e2 = run(k2);
  MESSAGE("max |logit diff| / max |logit|: f16 " << e16 << ", kivi-8 " << e8 << ", kvquant-8 " << eq8 << ", kivi-2 " << e2);
  CHECK(e16 < 2e-3);
  CHECK(e8 < 1e-2);
  CHECK(eq8 < 2e-2);
  CHECK(e2 > e8);
}

TEST_CASE("kv runtime: compressed cache bytes, ratio and errors") {
  auto t = random_llama(6);
  std::vector<int32_t> tok(100, 3);
  kv::KvConfig cfg;
  cfg.method = kv::KvMethod::Kivi;
  cfg.bits = 2;
  cfg.group = 32;
  cfg.residual = 32;
  KvCache c(*t, 128, cfg);
  t->forward(tok.data(), tok.size(), &c, LogitsMode::Last);
  // 100 tokens: 2 blocks of 32 flushed per head, 36 in the window.
  const size_t D = 16, KV = 2, L = 2;
  const size_t per_block = 2 * (32 * D * 2 / 8) + 2 * D * 2 + 32 * 1 * 2 * 2;  // codes K+V, K ch. scales, V token scales
  CHECK(c.bytes() == L * KV * (2 * per_block + 36 * D * 2 * 2));
  CHECK(c.compressed()->f16_bytes() == 100 * L * KV * D * 2 * 2);
  c.truncate(40);  // inside the second block: the first 8 of its tokens stay as stored
  CHECK(c.length() == 40);
  CHECK(c.compressed()->length() == 40);
  for (size_t l = 0; l < L; ++l)
    for (size_t k = 0; k < KV; ++k) CHECK(c.compressed()->stored(l, k) == 40);
  const size_t cut_block = 2 * (8 * D * 2 / 8) + 2 * D * 2 + 8 * 1 * 2 * 2;
  CHECK(c.bytes() == L * KV * (per_block + cut_block));
  t->forward(tok.data(), 5, &c, LogitsMode::Last);  // goes on from the cut
  CHECK(c.length() == 45);
  CHECK_THROWS_AS(c.truncate(46), Error);
  c.clear();
  CHECK(c.length() == 0);
  CHECK(c.bytes() == 0);
  cfg.residual = 200;
  CHECK_THROWS_AS(KvCache(*t, 128, cfg), Error);
  cfg.residual = 0;
  cfg.bits = 9;
  CHECK_THROWS_AS(KvCache(*t, 128, cfg), Error);
  kv::KvConfig ev;
  ev.method = kv::KvMethod::H2O;
  ev.budget = 16;
  KvCache h(*t, 128, ev);
  t->forward(tok.data(), 50, &h, LogitsMode::Last);
  for (size_t l = 0; l < L; ++l)
    for (size_t k = 0; k < KV; ++k) CHECK(h.compressed()->stored(l, k) == 16);
  CHECK(h.bytes() == L * KV * 16 * (D * 4 + 4 + 4));
  CHECK_THROWS_AS(h.truncate(10), Error);  // eviction: not exact
  CHECK(h.length() == 50);
}

TEST_CASE("kv runtime: a truncated f16 compressed cache decodes like a cache prefilled to the cut") {
  auto t = random_llama(7);
  std::vector<int32_t> tok(60);
  Rng r(11);
  for (auto& x : tok) x = static_cast<int32_t>(r.next_u32() % 101);
  kv::KvConfig f16;
  f16.method = kv::KvMethod::F16;
  KvCache a(*t, 128, f16), b(*t, 128, f16);
  t->forward(tok.data(), 60, &a, LogitsMode::Last);
  a.truncate(37);
  t->forward(tok.data(), 37, &b, LogitsMode::Last);
  const ForwardOutput oa = t->forward(tok.data() + 40, 3, &a, LogitsMode::All);
  const ForwardOutput ob = t->forward(tok.data() + 40, 3, &b, LogitsMode::All);
  CHECK(a.length() == 40);
  CHECK(max_abs_diff(oa.logits, ob.logits) == 0.0);  // f16 rows are stored per token: the same cache
}
