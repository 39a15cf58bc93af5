// The transformer runtime against a straightforward double-precision forward written here from the
// formula in transformer.hpp (naive loops, none of tersor's kernels), plus the cache, capture,
// scoring and error contracts.
#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tersor/error.hpp"
#include "tersor/half.hpp"
#include "tersor/rng.hpp"
#include "tersor/transformer.hpp"

using namespace tersor;

namespace {

using Weights = std::map<std::string, std::vector<float>>;
using Mat = std::vector<double>;  // row-major

template <class F>
Error error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  FAIL("expected a tersor::Error");
  return Error(ErrorCode::Native, "");
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// A model with random weights; the same values are kept for the reference.
struct Model {
  std::unique_ptr<Transformer> t;
  Weights w;
};

Model make_model(const TransformerConfig& cfg, uint64_t seed, const std::string& skip = "") {
  Model m{std::make_unique<Transformer>(cfg), {}};
  Rng r(seed);
  for (const WeightSpec& s : m.t->weight_specs()) {
    std::vector<float> v(s.elements());
    const bool norm = ends_with(s.name, "Norm.weight");
    const bool bias = ends_with(s.name, ".bias");
    const bool table = s.name == "embed" || s.name == "posEmbed";
    const double scale = norm || bias ? 0.1 : table ? 0.7 : 1.0 / std::sqrt(static_cast<double>(s.shape[1]));
    for (float& x : v) x = static_cast<float>((norm ? 1.0 : 0.0) + scale * r.next_normal());
    if (s.name != skip) m.t->set_weight(s.name, v.data(), WeightDType::F32, v.size(), s.shape);
    m.w[s.name] = std::move(v);
  }
  return m;
}

// ---- the reference, in double -------------------------------------------------------------------

struct RefOut {
  Mat logits;                     // [T, V]
  std::vector<Mat> hidden;        // layers + 1 of [T, E]
  std::vector<Mat> attn_in, down_in;  // per layer: norm output [T, E], MLP activation [T, I]
};

Mat ref_norm(const TransformerConfig& c, const Mat& x, size_t T, const std::vector<float>& w, const std::vector<float>* b) {
  const size_t E = c.hidden;
  Mat y(T * E);
  for (size_t t = 0; t < T; ++t) {
    const double* xr = x.data() + t * E;
    if (c.norm == NormKind::RMSNorm) {
      double ms = 0;
      for (size_t e = 0; e < E; ++e) ms += xr[e] * xr[e];
      const double r = 1.0 / std::sqrt(ms / static_cast<double>(E) + c.norm_eps);
      for (size_t e = 0; e < E; ++e) y[t * E + e] = xr[e] * r * w[e];
    } else {
      double mean = 0;
      for (size_t e = 0; e < E; ++e) mean += xr[e];
      mean /= static_cast<double>(E);
      double var = 0;
      for (size_t e = 0; e < E; ++e) var += (xr[e] - mean) * (xr[e] - mean);
      const double r = 1.0 / std::sqrt(var / static_cast<double>(E) + c.norm_eps);
      for (size_t e = 0; e < E; ++e) y[t * E + e] = (xr[e] - mean) * r * w[e] + (*b)[e];
    }
  }
  return y;
}

/// y[T, out] = x[T, in] W^T + b, W [out, in].
Mat ref_linear(const Mat& x, size_t T, size_t in, const std::vector<float>& W, size_t out, const std::vector<float>* b) {
  Mat y(T * out);
  for (size_t t = 0; t < T; ++t)
    for (size_t o = 0; o < out; ++o) {
      double s = b ? (*b)[o] : 0.0;
      for (size_t i = 0; i < in; ++i) s += x[t * in + i] * W[o * in + i];
      y[t * out + o] = s;
    }
  return y;
}

void ref_rope(const TransformerConfig& c, Mat& x, size_t T, size_t heads) {
  const size_t D = c.head_dim;
  const size_t rot = c.rope_config.rotary_dim ? c.rope_config.rotary_dim : D;
  const size_t half = rot / 2;
  for (size_t t = 0; t < T; ++t)
    for (size_t h = 0; h < heads; ++h) {
      double* v = x.data() + (t * heads + h) * D;
      for (size_t i = 0; i < half; ++i) {
        const double inv = std::pow(c.rope_config.theta, -2.0 * static_cast<double>(i) / static_cast<double>(rot));
        const double a = static_cast<double>(t) * inv;
        const size_t ia = c.rope_config.style == RopeStyle::NeoX ? i : 2 * i;
        const size_t ib = c.rope_config.style == RopeStyle::NeoX ? i + half : 2 * i + 1;
        const double xa = v[ia], xb = v[ib];
        v[ia] = xa * std::cos(a) - xb * std::sin(a);
        v[ib] = xb * std::cos(a) + xa * std::sin(a);
      }
    }
}

RefOut ref_forward(const TransformerConfig& c, const Weights& w, const std::vector<int32_t>& tok) {
  const size_t T = tok.size(), E = c.hidden, H = c.heads, KV = c.kv_heads, D = c.head_dim, I = c.intermediate,
               V = c.vocab_size;
  auto W = [&](const std::string& n) -> const std::vector<float>& { return w.at(n); };
  auto B = [&](const std::string& n) -> const std::vector<float>* {
    auto it = w.find(n);
    return it == w.end() ? nullptr : &it->second;
  };
  RefOut out;
  Mat x(T * E);
  for (size_t t = 0; t < T; ++t)
    for (size_t e = 0; e < E; ++e)
      x[t * E + e] = W("embed")[tok[t] * E + e] + (c.learned_positions ? W("posEmbed")[t * E + e] : 0.0);
  for (size_t l = 0; l < c.layers; ++l) {
    out.hidden.push_back(x);
    const std::string p = "layers." + std::to_string(l) + ".";
    Mat h = ref_norm(c, x, T, W(p + "attnNorm.weight"), B(p + "attnNorm.bias"));
    out.attn_in.push_back(h);
    Mat q = ref_linear(h, T, E, W(p + "q.weight"), H * D, B(p + "q.bias"));
    Mat k = ref_linear(h, T, E, W(p + "k.weight"), KV * D, B(p + "k.bias"));
    Mat v = ref_linear(h, T, E, W(p + "v.weight"), KV * D, B(p + "v.bias"));
    if (c.rope) {
      ref_rope(c, q, T, H);
      ref_rope(c, k, T, KV);
    }
    Mat att(T * H * D, 0.0);
    const double scale = 1.0 / std::sqrt(static_cast<double>(D));
    for (size_t hh = 0; hh < H; ++hh) {
      const size_t g = hh / (H / KV);
      for (size_t t = 0; t < T; ++t) {
        std::vector<double> s(t + 1, -INFINITY);
        double mx = -INFINITY;
        for (size_t j = 0; j <= t; ++j) {
          if (c.sliding_window && j + c.sliding_window <= t) continue;  // visible iff j > t - window
          double d = 0;
          for (size_t i = 0; i < D; ++i) d += q[(t * H + hh) * D + i] * k[(j * KV + g) * D + i];
          s[j] = d * scale;
          mx = std::max(mx, s[j]);
        }
        double z = 0;
        for (size_t j = 0; j <= t; ++j) z += std::exp(s[j] - mx);
        for (size_t j = 0; j <= t; ++j) {
          const double pj = std::exp(s[j] - mx) / z;
          for (size_t i = 0; i < D; ++i) att[(t * H + hh) * D + i] += pj * v[(j * KV + g) * D + i];
        }
      }
    }
    Mat o = ref_linear(att, T, H * D, W(p + "o.weight"), E, B(p + "o.bias"));
    for (size_t i = 0; i < T * E; ++i) x[i] += o[i];
    h = ref_norm(c, x, T, W(p + "mlpNorm.weight"), B(p + "mlpNorm.bias"));
    Mat u = ref_linear(h, T, E, W(p + "up.weight"), I, B(p + "up.bias"));
    auto act = [&](double a) {
      switch (c.activation) {
        case MlpActivation::Silu: return a / (1.0 + std::exp(-a));
        case MlpActivation::GeluTanh:
          return 0.5 * a * (1.0 + std::tanh(std::sqrt(2.0 / 3.14159265358979323846) * (a + 0.044715 * a * a * a)));
        case MlpActivation::Gelu: return 0.5 * a * (1.0 + std::erf(a / std::sqrt(2.0)));
      }
      return a;
    };
    if (c.gated_mlp) {
      Mat gt = ref_linear(h, T, E, W(p + "gate.weight"), I, nullptr);
      for (size_t i = 0; i < T * I; ++i) u[i] *= act(gt[i]);
    } else {
      for (double& a : u) a = act(a);
    }
    out.down_in.push_back(u);
    Mat d = ref_linear(u, T, I, W(p + "down.weight"), E, B(p + "down.bias"));
    for (size_t i = 0; i < T * E; ++i) x[i] += d[i];
  }
  out.hidden.push_back(x);
  Mat f = ref_norm(c, x, T, W("finalNorm.weight"), B("finalNorm.bias"));
  out.logits = ref_linear(f, T, E, c.tie_embeddings ? W("embed") : W("lmHead"), V, nullptr);
  return out;
}

// ---- helpers ------------------------------------------------------------------------------------

/// max |a - b| / max(1, max |b|).
template <class A, class B>
double rel_err(const A& a, const B& b) {
  REQUIRE(a.size() == b.size());
  double d = 0, m = 1;
  for (size_t i = 0; i < a.size(); ++i) {
    d = std::max(d, std::fabs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
    m = std::max(m, std::fabs(static_cast<double>(b[i])));
  }
  return d / m;
}

std::vector<int32_t> random_tokens(size_t n, size_t vocab, uint64_t seed) {
  Rng r(seed);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = static_cast<int32_t>(r.next_below(static_cast<uint32_t>(vocab)));
  return t;
}

TransformerConfig llama_config() {
  TransformerConfig c;
  c.norm = NormKind::RMSNorm;
  c.norm_eps = 1e-5;
  c.vocab_size = 97;
  c.hidden = 64;
  c.intermediate = 96;
  c.layers = 2;
  c.heads = 4;
  c.kv_heads = 2;
  c.head_dim = 16;
  c.activation = MlpActivation::Silu;
  c.gated_mlp = true;
  c.qkv_bias = true;
  c.max_positions = 1024;
  c.rope = true;
  c.rope_config.theta = 10000.0;
  return c;
}

TransformerConfig gpt2_config() {
  TransformerConfig c;
  c.norm = NormKind::LayerNorm;
  c.norm_eps = 1e-5;
  c.vocab_size = 101;
  c.hidden = 48;
  c.intermediate = 192;
  c.layers = 2;
  c.heads = 4;
  c.kv_heads = 4;
  c.head_dim = 12;
  c.activation = MlpActivation::GeluTanh;
  c.gated_mlp = false;
  c.qkv_bias = true;
  c.out_bias = true;
  c.tie_embeddings = true;
  c.learned_positions = true;
  c.max_positions = 40;
  return c;
}

TransformerConfig mistral_config() {
  TransformerConfig c = llama_config();
  c.qkv_bias = false;
  c.sliding_window = 5;
  c.tie_embeddings = true;
  c.rope_config.style = RopeStyle::Interleaved;
  c.rope_config.rotary_dim = 8;  // partial rotary: dims 8..15 of each head pass through
  return c;
}

}  // namespace

TEST_CASE("transformer: llama-style model (GQA 4:2, RoPE, qkv bias) matches the f64 reference") {
  const TransformerConfig c = llama_config();
  Model m = make_model(c, 11);
  const auto tok = random_tokens(23, c.vocab_size, 1);
  const ForwardOutput out = m.t->forward(tok.data(), tok.size());
  const RefOut ref = ref_forward(c, m.w, tok);
  CHECK(out.logit_rows == tok.size());
  CHECK(rel_err(out.logits, ref.logits) < 1e-4);
  // A single token (the matrix-vector path) and two (its two-row variant).
  for (size_t n : {size_t{1}, size_t{2}, size_t{3}, size_t{5}}) {
    std::vector<int32_t> t(tok.begin(), tok.begin() + n);
    const RefOut r = ref_forward(c, m.w, t);
    CHECK(rel_err(m.t->forward(t.data(), n).logits, r.logits) < 1e-4);
  }
  CHECK(m.t->parameter_count() == 97 * 64 * 2 + 2 * (64 + 4 * 16 * 64 + 64 + 2 * (2 * 16 * 64 + 32) + 64 * 64 + 64 +
                                                     3 * 96 * 64) + 64);
}

TEST_CASE("transformer: gpt2-style model (layernorm, learned positions, gelu_tanh, biases) matches the f64 reference") {
  const TransformerConfig c = gpt2_config();
  Model m = make_model(c, 12);
  const auto tok = random_tokens(19, c.vocab_size, 2);
  const ForwardOutput out = m.t->forward(tok.data(), tok.size());
  const RefOut ref = ref_forward(c, m.w, tok);
  CHECK(rel_err(out.logits, ref.logits) < 1e-4);
  // Exact GELU, plain SiLU MLP and an untied head through the same switches.
  for (MlpActivation a : {MlpActivation::Gelu, MlpActivation::Silu}) {
    TransformerConfig c2 = c;
    c2.activation = a;
    c2.tie_embeddings = false;
    Model m2 = make_model(c2, 13);
    CHECK(rel_err(m2.t->forward(tok.data(), tok.size()).logits, ref_forward(c2, m2.w, tok).logits) < 1e-4);
  }
}

TEST_CASE("transformer: gated GELU (GeGLU) and a model without position encoding match the reference") {
  TransformerConfig c = llama_config();
  c.activation = MlpActivation::GeluTanh;
  c.rope = false;
  Model m = make_model(c, 14);
  const auto tok = random_tokens(9, c.vocab_size, 3);
  CHECK(rel_err(m.t->forward(tok.data(), tok.size()).logits, ref_forward(c, m.w, tok).logits) < 1e-4);
}

TEST_CASE("transformer: decode token by token with a cache equals the full prefill") {
  for (const TransformerConfig& c : {llama_config(), gpt2_config(), mistral_config()}) {
    Model m = make_model(c, 21);
    const auto tok = random_tokens(30, c.vocab_size, 4);
    const ForwardOutput full = m.t->forward(tok.data(), tok.size());
    KvCache cache(*m.t, 32);
    std::vector<float> got;
    for (size_t i = 0; i < tok.size(); ++i) {
      const ForwardOutput o = m.t->forward(&tok[i], 1, &cache, LogitsMode::All);
      REQUIRE(o.logit_rows == 1);
      got.insert(got.end(), o.logits.begin(), o.logits.end());
      CHECK(cache.length() == i + 1);
    }
    CHECK(rel_err(got, full.logits) < 1e-4);
    CHECK(cache.bytes() == 2 * c.layers * 32 * c.kv_heads * c.head_dim * 4);
  }
}

TEST_CASE("transformer: chunked prefill equals the full prefill, truncate then re-decode equals") {
  for (const TransformerConfig& c : {llama_config(), gpt2_config()}) {
    Model m = make_model(c, 22);
    const auto tok = random_tokens(31, c.vocab_size, 5);
    const ForwardOutput full = m.t->forward(tok.data(), tok.size());
    KvCache cache(*m.t, 40);
    std::vector<float> got;
    size_t at = 0;
    for (size_t chunk : {7, 3, 2, 1, 4, 9, 5}) {
      const ForwardOutput o = m.t->forward(tok.data() + at, chunk, &cache);
      got.insert(got.end(), o.logits.begin(), o.logits.end());
      at += chunk;
    }
    REQUIRE(at == tok.size());
    CHECK(rel_err(got, full.logits) < 1e-4);

    // Roll back to 12 tokens and continue with different ones: equals a fresh prefill.
    cache.truncate(12);
    CHECK(cache.length() == 12);
    std::vector<int32_t> alt(tok.begin(), tok.begin() + 12);
    const auto extra = random_tokens(6, c.vocab_size, 6);
    alt.insert(alt.end(), extra.begin(), extra.end());
    const ForwardOutput ref = m.t->forward(alt.data(), alt.size());
    std::vector<float> re;
    for (size_t i = 0; i < extra.size(); ++i) {
      const ForwardOutput o = m.t->forward(&extra[i], 1, &cache, LogitsMode::Last);
      re.insert(re.end(), o.logits.begin(), o.logits.end());
    }
    std::vector<float> tail(ref.logits.begin() + 12 * c.vocab_size, ref.logits.end());
    CHECK(rel_err(re, tail) < 1e-4);
    cache.clear();
    CHECK(cache.length() == 0);
    CHECK(rel_err(m.t->forward(tok.data(), 5, &cache).logits,
                  std::vector<float>(full.logits.begin(), full.logits.begin() + 5 * c.vocab_size)) < 1e-4);
  }
}

TEST_CASE("transformer: sliding window with interleaved partial RoPE matches the reference") {
  const TransformerConfig c = mistral_config();
  Model m = make_model(c, 23);
  const auto tok = random_tokens(17, c.vocab_size, 7);
  const RefOut ref = ref_forward(c, m.w, tok);
  CHECK(rel_err(m.t->forward(tok.data(), tok.size()).logits, ref.logits) < 1e-4);
  // The window really matters: without it the logits differ.
  TransformerConfig full = c;
  full.sliding_window = 0;
  CHECK(rel_err(ref_forward(full, m.w, tok).logits, ref.logits) > 1e-3);
  // And the reference attention switch gives the same answer.
  m.t->set_reference_attention(true);
  CHECK(rel_err(m.t->forward(tok.data(), tok.size()).logits, ref.logits) < 1e-4);
}

TEST_CASE("transformer: last logits equal the last row of all, hidden states match the reference") {
  const TransformerConfig c = llama_config();
  Model m = make_model(c, 24);
  const auto tok = random_tokens(13, c.vocab_size, 8);
  const ForwardOutput all = m.t->forward(tok.data(), tok.size(), nullptr, LogitsMode::All, {2, 0, 1, 2});
  const ForwardOutput last = m.t->forward(tok.data(), tok.size(), nullptr, LogitsMode::Last);
  const ForwardOutput none = m.t->forward(tok.data(), tok.size(), nullptr, LogitsMode::None, {1});
  REQUIRE(last.logit_rows == 1);
  REQUIRE(last.logits.size() == c.vocab_size);
  CHECK(rel_err(last.logits, std::vector<float>(all.logits.end() - c.vocab_size, all.logits.end())) < 1e-6);
  CHECK(none.logits.empty());
  CHECK(none.logit_rows == 0);
  const RefOut ref = ref_forward(c, m.w, tok);
  REQUIRE(all.hidden.size() == 4);
  CHECK(rel_err(all.hidden[0], ref.hidden[2]) < 1e-5);
  CHECK(rel_err(all.hidden[1], ref.hidden[0]) < 1e-6);
  CHECK(rel_err(all.hidden[2], ref.hidden[1]) < 1e-5);
  CHECK(all.hidden[3] == all.hidden[0]);
  CHECK(none.hidden[0] == all.hidden[2]);
  // With a cache, hidden states cover the new tokens only.
  KvCache cache(*m.t, 16);
  m.t->forward(tok.data(), 10, &cache);
  const ForwardOutput rest = m.t->forward(tok.data() + 10, 3, &cache, LogitsMode::None, {2});
  REQUIRE(rest.hidden[0].size() == 3 * c.hidden);
  CHECK(rel_err(rest.hidden[0], Mat(ref.hidden[2].begin() + 10 * c.hidden, ref.hidden[2].end())) < 1e-5);
}

TEST_CASE("transformer: gram capture equals X^T X of the raw captured rows") {
  const TransformerConfig c = llama_config();
  Model m = make_model(c, 25);
  const auto a = random_tokens(300, c.vocab_size, 9);  // > one 256-row gram block
  const auto b = random_tokens(3, c.vocab_size, 10);
  Capture raw(*m.t, CaptureMode::Raw);
  Capture gram(*m.t, CaptureMode::Gram);
  Capture one(*m.t, CaptureMode::Gram, {1});
  for (const auto* t : {&a, &b}) {
    m.t->forward(t->data(), t->size(), nullptr, LogitsMode::None, {}, &raw);
    m.t->forward(t->data(), t->size(), nullptr, LogitsMode::None, {}, &gram);
    m.t->forward(t->data(), t->size(), nullptr, LogitsMode::None, {}, &one);
  }
  REQUIRE(raw.names().size() == 2 * 7);
  CHECK(raw.names()[0] == "layers.0.q");
  CHECK(raw.names()[6] == "layers.0.down");
  REQUIRE(one.names().size() == 7);
  CHECK(one.names()[0] == "layers.1.q");
  CHECK(error_of([&] { one.rows("layers.0.q"); }).code() == ErrorCode::Range);
  CHECK(error_of([&] { raw.gram("layers.0.q"); }).code() == ErrorCode::Range);
  for (const std::string& name : raw.names()) {
    const size_t rows = raw.rows(name), cols = raw.cols(name);
    CHECK(rows == 303);
    CHECK(gram.rows(name) == 303);
    const std::vector<float> x = raw.raw(name);
    REQUIRE(x.size() == rows * cols);
    std::vector<double> direct(cols * cols, 0.0);
    for (size_t r = 0; r < rows; ++r)
      for (size_t i = 0; i < cols; ++i)
        for (size_t j = 0; j < cols; ++j)
          direct[i * cols + j] += static_cast<double>(x[r * cols + i]) * static_cast<double>(x[r * cols + j]);
    CHECK(rel_err(gram.gram(name), direct) < 1e-6);
    if (name.rfind("layers.1.", 0) == 0) CHECK(one.gram(name) == gram.gram(name));
  }
  // Aliases share one accumulator; the captured input is the attention-norm output.
  CHECK(raw.raw("layers.0.q") == raw.raw("layers.0.v"));
  CHECK(raw.raw("layers.1.gate") == raw.raw("layers.1.up"));
  const RefOut ref = ref_forward(c, m.w, a);
  const std::vector<float> q0 = raw.raw("layers.1.q");
  CHECK(rel_err(std::vector<float>(q0.begin(), q0.begin() + 300 * c.hidden), ref.attn_in[1]) < 1e-4);
  const std::vector<float> d0 = raw.raw("layers.0.down");
  CHECK(rel_err(std::vector<float>(d0.begin(), d0.begin() + 300 * c.intermediate), ref.down_in[0]) < 1e-4);
  gram.clear();
  CHECK(gram.rows("layers.0.o") == 0);
  CHECK(gram.gram("layers.0.o") == std::vector<double>(c.heads * c.head_dim * c.heads * c.head_dim, 0.0));
}

TEST_CASE("transformer: scoreSequences equals log-softmax sums from full logits") {
  for (const TransformerConfig& c : {llama_config(), gpt2_config()}) {
    Model m = make_model(c, 26);
    // Lengths chosen so that batches split (llama: 299 + 249 tokens exceed one 512-token batch).
    const bool big = !c.learned_positions;
    const std::vector<size_t> lens = big ? std::vector<size_t>{300, 1, 250, 40, 6, 0, 9}
                                         : std::vector<size_t>{30, 1, 25, 40, 6, 0, 9};
    const std::vector<int32_t> from = {1, 1, 3, 2, 6, 1, 8};
    std::vector<int32_t> tokens, offsets = {0};
    for (size_t i = 0; i < lens.size(); ++i) {
      const auto t = random_tokens(lens[i], c.vocab_size, 100 + i);
      tokens.insert(tokens.end(), t.begin(), t.end());
      offsets.push_back(static_cast<int32_t>(tokens.size()));
    }
    std::vector<double> lp(lens.size(), -1);
    std::vector<int32_t> cnt(lens.size(), -1);
    m.t->score_sequences(tokens.data(), tokens.size(), offsets.data(), lens.size(), from.data(), lp.data(), cnt.data());
    for (size_t s = 0; s < lens.size(); ++s) {
      double want = 0;
      int32_t n = 0;
      if (lens[s] > static_cast<size_t>(from[s])) {
        const int32_t* t = tokens.data() + offsets[s];
        const ForwardOutput o = m.t->forward(t, lens[s]);
        for (size_t i = static_cast<size_t>(from[s]); i < lens[s]; ++i) {
          const float* z = o.logits.data() + (i - 1) * c.vocab_size;
          double mx = -INFINITY, sum = 0;
          for (size_t v = 0; v < c.vocab_size; ++v) mx = std::max(mx, static_cast<double>(z[v]));
          for (size_t v = 0; v < c.vocab_size; ++v) sum += std::exp(z[v] - mx);
          want += z[t[i]] - mx - std::log(sum);
          ++n;
        }
      }
      CAPTURE(s);
      CHECK(cnt[s] == n);
      CHECK(std::fabs(lp[s] - want) <= 1e-4 * std::max(1.0, std::fabs(want)));
    }
    const std::vector<int32_t> bad_from = {0, 1, 1, 1, 1, 1, 1};
    CHECK(error_of([&] {
            m.t->score_sequences(tokens.data(), tokens.size(), offsets.data(), lens.size(), bad_from.data(),
                                 lp.data(), cnt.data());
          }).code() == ErrorCode::Range);
    std::vector<int32_t> bad_off = offsets;
    bad_off.back() -= 1;
    CHECK(error_of([&] {
            m.t->score_sequences(tokens.data(), tokens.size(), bad_off.data(), lens.size(), from.data(), lp.data(),
                                 cnt.data());
          }).code() == ErrorCode::Range);
  }
}

TEST_CASE("transformer: f16 and bf16 weights are widened with tersor conversions") {
  const TransformerConfig c = gpt2_config();
  Transformer t(c);
  const WeightSpec& s = t.weight_specs()[0];
  REQUIRE(s.name == "embed");
  Rng r(5);
  std::vector<uint16_t> h(s.elements()), b(s.elements());
  for (size_t i = 0; i < h.size(); ++i) {
    const float v = static_cast<float>(r.next_normal());
    h[i] = f32_to_f16_scalar(v);
    b[i] = f32_to_bf16_scalar(v);
  }
  t.set_weight("embed", h.data(), WeightDType::F16, h.size(), s.shape);
  for (size_t i = 0; i < h.size(); ++i) REQUIRE(t.weight("embed")[i] == f16_to_f32_scalar(h[i]));
  t.set_weight("embed", b.data(), WeightDType::BF16, b.size(), s.shape);
  for (size_t i = 0; i < b.size(); ++i) REQUIRE(t.weight("embed")[i] == bf16_to_f32_scalar(b[i]));
  CHECK(reinterpret_cast<uintptr_t>(t.weight("embed")) % 64 == 0);
}

TEST_CASE("transformer: errors name the problem (missing weight, shapes, token ids, full cache, config)") {
  const TransformerConfig c = llama_config();
  {
    Model m = make_model(c, 31, "layers.1.v.weight");
    CHECK(m.t->missing_weights() == std::vector<std::string>{"layers.1.v.weight"});
    const int32_t tok[2] = {1, 2};
    const Error e = error_of([&] { m.t->forward(tok, 2); });
    CHECK(e.code() == ErrorCode::Format);
    CHECK(std::string(e.what()).find("layers.1.v.weight") != std::string::npos);
  }
  Model m = make_model(c, 32);
  std::vector<float> w(63 * 64);
  {
    const Error e = error_of([&] { m.t->set_weight("layers.0.q.weight", w.data(), WeightDType::F32, w.size(), {63, 64}); });
    CHECK(e.code() == ErrorCode::Shape);
    const std::string msg = e.what();
    CHECK(msg.find("layers.0.q.weight") != std::string::npos);
    CHECK(msg.find("[63, 64]") != std::string::npos);
    CHECK(msg.find("[64, 64]") != std::string::npos);
  }
  CHECK(error_of([&] { m.t->set_weight("layers.0.q.weight", w.data(), WeightDType::F32, w.size(), {64, 64}); }).code() ==
        ErrorCode::Shape);
  CHECK(error_of([&] { m.t->set_weight("layers.0.o.bias", w.data(), WeightDType::F32, 64, {64}); }).code() ==
        ErrorCode::Format);
  {
    const int32_t tok[3] = {1, 97, 2};
    const Error e = error_of([&] { m.t->forward(tok, 3); });
    CHECK(e.code() == ErrorCode::Range);
    CHECK(std::string(e.what()).find("97") != std::string::npos);
    const int32_t neg = -1;
    CHECK(error_of([&] { m.t->forward(&neg, 1); }).code() == ErrorCode::Range);
    CHECK(error_of([&] { m.t->forward(tok, 0); }).code() == ErrorCode::Range);
    CHECK(error_of([&] { m.t->forward(tok, 1, nullptr, LogitsMode::All, {3}); }).code() == ErrorCode::Range);
  }
  {
    KvCache cache(*m.t, 4);
    const int32_t tok[3] = {1, 2, 3};
    m.t->forward(tok, 3, &cache);
    const Error e = error_of([&] { m.t->forward(tok, 2, &cache); });
    CHECK(e.code() == ErrorCode::Range);
    CHECK(std::string(e.what()).find("cache full") != std::string::npos);
    CHECK(cache.length() == 3);
    CHECK(error_of([&] { cache.truncate(4); }).code() == ErrorCode::Range);
    CHECK(error_of([&] { KvCache zero(*m.t, 0); }).code() == ErrorCode::Range);
    Model other = make_model(c, 33);
    CHECK(error_of([&] { other.t->forward(tok, 1, &cache); }).code() == ErrorCode::Range);
  }
  {  // learned positions end at maxPositions
    Model g = make_model(gpt2_config(), 34);
    KvCache cache(*g.t, 64);
    const auto tok = random_tokens(40, 101, 3);
    g.t->forward(tok.data(), 40, &cache);
    CHECK(error_of([&] { g.t->forward(tok.data(), 1, &cache); }).code() == ErrorCode::Range);
  }
  auto config_error = [](TransformerConfig bad, ErrorCode code, const char* field) {
    const Error e = error_of([&] { Transformer t(bad); });
    CHECK(e.code() == code);
    CHECK(std::string(e.what()).find(field) != std::string::npos);
  };
  TransformerConfig bad = c;
  bad.kv_heads = 3;
  config_error(bad, ErrorCode::Shape, "config.kvHeads");
  bad = c;
  bad.head_dim = 15;
  config_error(bad, ErrorCode::Shape, "config.headDim");
  bad = c;
  bad.vocab_size = 0;
  config_error(bad, ErrorCode::Range, "config.vocabSize");
  bad = c;
  bad.norm_eps = -1;
  config_error(bad, ErrorCode::Range, "config.normEps");
  bad = c;
  bad.rope_config.theta = 0;
  config_error(bad, ErrorCode::Range, "config.rope.theta");
  bad = c;
  bad.rope_config.rotary_dim = 18;
  config_error(bad, ErrorCode::Shape, "config.rope.rotaryDim");
  bad = c;
  bad.learned_positions = true;
  config_error(bad, ErrorCode::Range, "config.rope");
}
