// The native trainer (tersor/train.hpp): every op's backward against central finite differences in
// double, whole-model gradients in double, the f32 forward against the inference runtime, AdamW
// against its formula, a memorisation run, determinism and the error contract.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "tersor/attention.hpp"
#include "tersor/error.hpp"
#include "tersor/parallel.hpp"
#include "tersor/rng.hpp"
#include "tersor/train.hpp"
#include "tersor/transformer.hpp"

using namespace tersor;
using namespace tersor::train;

namespace {

using Vec = std::vector<double>;

Vec randn(size_t n, uint64_t seed, double sd = 1.0) {
  Rng r(seed);
  Vec v(n);
  for (double& x : v) x = sd * r.next_normal();
  return v;
}

double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

/// Central differences of `loss` w.r.t. every entry of x (or `stride`-spaced ones) against `analytic`:
/// |fd - an| <= tol * max(|fd|, |an|) + 1e-9.
void check_grad(Vec& x, const Vec& analytic, const std::function<double()>& loss, const std::string& what,
                size_t stride = 1, double tol = 1e-6) {
  REQUIRE(analytic.size() == x.size());
  const double h = 1e-5;
  double worst = 0;
  for (size_t i = 0; i < x.size(); i += stride) {
    const double keep = x[i];
    x[i] = keep + h;
    const double lp = loss();
    x[i] = keep - h;
    const double lm = loss();
    x[i] = keep;
    const double fd = (lp - lm) / (2 * h);
    const double err = std::abs(fd - analytic[i]);
    const double bound = tol * std::max(std::abs(fd), std::abs(analytic[i])) + 1e-9;
    worst = std::max(worst, err / bound);
    if (err > bound) {
      INFO(what << " entry " << i << ": finite difference " << fd << " analytic " << analytic[i]);
      CHECK(err <= bound);
      return;
    }
  }
  INFO(what);
  CHECK(worst <= 1.0);
}

template <class F>
Error error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  FAIL("no tersor::Error thrown");
  return Error(ErrorCode::Native, "");
}

TransformerConfig llama_config() {
  TransformerConfig c;
  c.norm = NormKind::RMSNorm;
  c.norm_eps = 1e-5;
  c.vocab_size = 11;
  c.hidden = 8;
  c.intermediate = 12;
  c.layers = 2;
  c.heads = 4;
  c.kv_heads = 2;
  c.head_dim = 4;
  c.activation = MlpActivation::Silu;
  c.gated_mlp = true;
  c.tie_embeddings = true;
  c.max_positions = 16;
  c.rope = true;
  c.rope_config.theta = 100.0;
  return c;
}

TransformerConfig gpt2_config() {
  TransformerConfig c;
  c.norm = NormKind::LayerNorm;
  c.norm_eps = 1e-5;
  c.vocab_size = 13;
  c.hidden = 8;
  c.intermediate = 16;
  c.layers = 2;
  c.heads = 2;
  c.kv_heads = 2;
  c.head_dim = 4;
  c.activation = MlpActivation::GeluTanh;
  c.gated_mlp = false;
  c.qkv_bias = true;
  c.out_bias = true;
  c.tie_embeddings = true;
  c.learned_positions = true;
  c.max_positions = 12;
  return c;
}

TransformerConfig mistral_config() {
  TransformerConfig c = llama_config();
  c.tie_embeddings = false;
  c.qkv_bias = true;
  c.sliding_window = 3;
  c.heads = 2;
  c.kv_heads = 1;
  c.rope_config.style = RopeStyle::Interleaved;
  c.rope_config.rotary_dim = 2;
  c.activation = MlpActivation::Gelu;
  return c;
}

std::vector<int32_t> random_tokens(size_t n, size_t vocab, uint64_t seed) {
  Rng r(seed);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = static_cast<int32_t>(r.next_below(static_cast<uint32_t>(vocab)));
  return t;
}

/// Whole-model gradient check in double: every parameter entry (stride 1) or a spaced subset.
void check_model_gradient(const TransformerConfig& cfg, const Targets& tg, const std::vector<int32_t>& tokens,
                          size_t batch, size_t seq, size_t stride) {
  TrainableTransformer<double> m(cfg, 7, 0.3);
  // Non-trivial norm weights and biases.
  Rng r(99);
  for (const ParamInfo& p : m.parameters())
    if (p.shape.size() == 1)
      for (size_t i = 0; i < p.size; ++i) m.params()[p.offset + i] += 0.2 * r.next_normal();
  m.zero_grad();
  const LossSum ls = m.step(tokens.data(), batch, seq, tg, 1.0);
  CHECK(std::isfinite(ls.loss));
  Vec analytic(m.grads(), m.grads() + m.parameter_count());
  Vec w(m.params(), m.params() + m.parameter_count());
  auto loss = [&] {
    std::copy(w.begin(), w.end(), m.params());
    return m.evaluate(tokens.data(), batch, seq, tg).loss;
  };
  for (const ParamInfo& p : m.parameters()) {
    Vec sub(w.begin() + static_cast<std::ptrdiff_t>(p.offset), w.begin() + static_cast<std::ptrdiff_t>(p.offset + p.size));
    Vec an(analytic.begin() + static_cast<std::ptrdiff_t>(p.offset),
           analytic.begin() + static_cast<std::ptrdiff_t>(p.offset + p.size));
    auto sub_loss = [&] {
      std::copy(sub.begin(), sub.end(), w.begin() + static_cast<std::ptrdiff_t>(p.offset));
      return loss();
    };
    check_grad(sub, an, sub_loss, p.name, p.size > 64 ? stride : 1);
    std::copy(sub.begin(), sub.end(), w.begin() + static_cast<std::ptrdiff_t>(p.offset));
  }
}

}  // namespace

// ---- ops alone -----------------------------------------------------------------------------------

TEST_CASE("train: embedding backward matches finite differences") {
  const size_t V = 6, E = 5;
  const std::vector<int32_t> ids = {1, 4, 1, 0, 5, 1};
  Vec table = randn(V * E, 1);
  const Vec r = randn(ids.size() * E, 2);
  auto loss = [&] {
    Vec out(ids.size() * E);
    embedding_forward<double>(table.data(), V, E, ids.data(), ids.size(), out.data());
    return dot(out, r);
  };
  Vec g(V * E, 0.0);
  embedding_backward<double>(r.data(), ids.data(), ids.size(), E, g.data());
  check_grad(table, g, loss, "embedding");
  CHECK(g[2 * E] == 0.0);  // id 2 unused
}

TEST_CASE("train: rmsnorm backward matches finite differences") {
  const size_t R = 3, E = 7;
  Vec x = randn(R * E, 3), w = randn(E, 4);
  const Vec r = randn(R * E, 5);
  auto loss = [&] {
    Vec y(R * E), rs(R);
    rmsnorm_forward<double>(x.data(), w.data(), y.data(), rs.data(), R, E, 1e-5);
    return dot(y, r);
  };
  Vec y(R * E), rs(R), dx(R * E, 0.0), dw(E, 0.0);
  rmsnorm_forward<double>(x.data(), w.data(), y.data(), rs.data(), R, E, 1e-5);
  rmsnorm_backward<double>(r.data(), x.data(), w.data(), rs.data(), dx.data(), dw.data(), R, E);
  check_grad(x, dx, loss, "rmsnorm x");
  check_grad(w, dw, loss, "rmsnorm weight");
}

TEST_CASE("train: layernorm backward matches finite differences") {
  const size_t R = 3, E = 6;
  Vec x = randn(R * E, 6), w = randn(E, 7), b = randn(E, 8);
  for (double& v : x) v += 3.0;  // a large mean
  const Vec r = randn(R * E, 9);
  auto loss = [&] {
    Vec y(R * E), mu(R), rs(R);
    layernorm_forward<double>(x.data(), w.data(), b.data(), y.data(), mu.data(), rs.data(), R, E, 1e-5);
    return dot(y, r);
  };
  Vec y(R * E), mu(R), rs(R), dx(R * E, 0.0), dw(E, 0.0), db(E, 0.0);
  layernorm_forward<double>(x.data(), w.data(), b.data(), y.data(), mu.data(), rs.data(), R, E, 1e-5);
  layernorm_backward<double>(r.data(), x.data(), w.data(), mu.data(), rs.data(), dx.data(), dw.data(), db.data(), R, E);
  check_grad(x, dx, loss, "layernorm x");
  check_grad(w, dw, loss, "layernorm weight");
  check_grad(b, db, loss, "layernorm bias");
}

TEST_CASE("train: rope backward matches finite differences for both styles") {
  for (RopeStyle style : {RopeStyle::NeoX, RopeStyle::Interleaved}) {
    for (size_t rot : {size_t{0}, size_t{4}}) {
      RopeConfig rc;
      rc.head_dim = 6;
      rc.rotary_dim = rot;
      rc.theta = 50.0;
      rc.style = style;
      const RopeTable<double> tab(rc, 10);
      const size_t tokens = 4, heads = 2, n = tokens * heads * 6;
      const std::vector<int32_t> pos = {0, 3, 7, 9};
      Vec x = randn(n, 10);
      const Vec r = randn(n, 11);
      auto loss = [&] {
        Vec y = x;
        rope_rotate<double>(y.data(), tokens, heads, pos.data(), tab, false);
        return dot(y, r);
      };
      Vec g = r;
      rope_rotate<double>(g.data(), tokens, heads, pos.data(), tab, true);
      check_grad(x, g, loss, "rope");
      // The rotation matches the inference kernel's definition (f32 rope_apply).
      std::vector<float> xf(x.begin(), x.end());
      rope_apply(xf.data(), tokens, heads, pos.data(), rc);
      Vec y = x;
      rope_rotate<double>(y.data(), tokens, heads, pos.data(), tab, false);
      for (size_t i = 0; i < n; ++i) CHECK(std::abs(y[i] - xf[i]) <= 1e-5 * (1 + std::abs(y[i])));
    }
  }
}

TEST_CASE("train: attention backward matches finite differences with GQA and causal mask") {
  for (size_t window : {size_t{0}, size_t{5}}) {
    AttentionShape s;
    s.batch = 2;
    s.seq = 67;  // two query blocks
    s.heads = 4;
    s.kv_heads = 2;
    s.head_dim = 3;
    s.window = window;
    const size_t N = s.batch * s.seq, HD = s.heads * s.head_dim, KVD = s.kv_heads * s.head_dim;
    Vec q = randn(N * HD, 12), k = randn(N * KVD, 13), v = randn(N * KVD, 14);
    const Vec r = randn(N * HD, 15);
    auto loss = [&] {
      Vec o(N * HD), lse(N * s.heads);
      attention_forward<double>(q.data(), k.data(), v.data(), o.data(), lse.data(), s);
      return dot(o, r);
    };
    Vec o(N * HD), lse(N * s.heads), dq(N * HD), dk(N * KVD), dv(N * KVD);
    attention_forward<double>(q.data(), k.data(), v.data(), o.data(), lse.data(), s);
    attention_backward<double>(q.data(), k.data(), v.data(), o.data(), lse.data(), r.data(), dq.data(), dk.data(),
                               dv.data(), s);
    check_grad(q, dq, loss, "attention q", 13);
    check_grad(k, dk, loss, "attention k", 11);
    check_grad(v, dv, loss, "attention v", 11);
    // Forward against the runtime's reference attention (double accumulation) on f32 copies.
    std::vector<float> qf(q.begin(), q.end()), kf(k.begin(), k.end()), vf(v.begin(), v.end()), of(N * HD);
    AttentionParams ap;
    ap.n_q = ap.n_kv = s.seq;
    ap.heads = s.heads;
    ap.kv_heads = s.kv_heads;
    ap.head_dim = s.head_dim;
    ap.window = window;
    for (size_t b = 0; b < s.batch; ++b)
      naive_attention(qf.data() + b * s.seq * HD, kf.data() + b * s.seq * KVD, vf.data() + b * s.seq * KVD,
                      of.data() + b * s.seq * HD, ap);
    for (size_t i = 0; i < N * HD; ++i) CHECK(std::abs(o[i] - of[i]) <= 1e-5);
  }
}

TEST_CASE("train: swiglu and gated gelu backward match finite differences") {
  for (Activation a : {Activation::Silu, Activation::GeluTanh, Activation::GeluErf}) {
    const size_t n = 40;
    Vec g = randn(n, 16, 2.0), u = randn(n, 17);
    const Vec r = randn(n, 18);
    auto loss = [&] {
      Vec o(n);
      gated_forward<double>(a, g.data(), u.data(), o.data(), n);
      return dot(o, r);
    };
    Vec dg(n), du(n);
    gated_backward<double>(a, g.data(), u.data(), r.data(), dg.data(), du.data(), n);
    check_grad(g, dg, loss, "gated gate");
    check_grad(u, du, loss, "gated up");
  }
}

TEST_CASE("train: fused gate-up rows equal the separate gated kernels") {
  for (Activation a : {Activation::Silu, Activation::GeluTanh, Activation::GeluErf}) {
    const size_t rows = 3, cols = 300;  // more than one 256-column chunk
    const Vec gu = randn(rows * 2 * cols, 27, 2.0), d = randn(rows * cols, 28);
    Vec out(rows * cols), dgu(rows * 2 * cols);
    gated_forward_fused<double>(a, gu.data(), out.data(), rows, cols);
    gated_backward_fused<double>(a, gu.data(), d.data(), dgu.data(), rows, cols);
    for (size_t r = 0; r < rows; ++r) {
      const double* g = gu.data() + r * 2 * cols;
      Vec o(cols), dg(cols), du(cols);
      gated_forward<double>(a, g, g + cols, o.data(), cols);
      gated_backward<double>(a, g, g + cols, d.data() + r * cols, dg.data(), du.data(), cols);
      for (size_t i = 0; i < cols; ++i) {
        CHECK(out[r * cols + i] == doctest::Approx(o[i]).epsilon(1e-13));
        CHECK(dgu[r * 2 * cols + i] == doctest::Approx(dg[i]).epsilon(1e-13));
        CHECK(dgu[r * 2 * cols + cols + i] == doctest::Approx(du[i]).epsilon(1e-13));
      }
    }
    // f32 (vectorised exp for SiLU) against the double kernels
    const std::vector<float> guf(gu.begin(), gu.end()), df(d.begin(), d.end());
    std::vector<float> outf(rows * cols), dguf(rows * 2 * cols);
    gated_forward_fused<float>(a, guf.data(), outf.data(), rows, cols);
    gated_backward_fused<float>(a, guf.data(), df.data(), dguf.data(), rows, cols);
    for (size_t i = 0; i < rows * cols; ++i) CHECK(std::abs(outf[i] - out[i]) <= 1e-5 * (1 + std::abs(out[i])));
    for (size_t i = 0; i < rows * 2 * cols; ++i) CHECK(std::abs(dguf[i] - dgu[i]) <= 1e-5 * (1 + std::abs(dgu[i])));
  }
}

TEST_CASE("train: gelu and silu activations match their formulas and finite differences") {
  for (Activation a : {Activation::Silu, Activation::GeluTanh, Activation::GeluErf}) {
    const size_t n = 50;
    Vec x = randn(n, 19, 2.5);
    const Vec r = randn(n, 20);
    auto loss = [&] {
      Vec y(n);
      activation_forward<double>(a, x.data(), y.data(), n);
      return dot(y, r);
    };
    Vec dx(n);
    activation_backward<double>(a, x.data(), r.data(), dx.data(), n);
    check_grad(x, dx, loss, "activation");
    // forward against the inference kernels (f32)
    std::vector<float> xf(x.begin(), x.end()), yf(n);
    if (a == Activation::Silu) {
      std::vector<float> one(n, 1.f);
      swiglu(xf.data(), one.data(), yf.data(), n);
    } else {
      gelu(xf.data(), yf.data(), n, a == Activation::GeluTanh ? GeluKind::Tanh : GeluKind::Erf);
    }
    Vec y(n);
    activation_forward<double>(a, x.data(), y.data(), n);
    for (size_t i = 0; i < n; ++i) CHECK(std::abs(y[i] - yf[i]) <= 1e-6 * (1 + std::abs(y[i])));
  }
}

TEST_CASE("train: linear with bias backward matches finite differences") {
  const size_t R = 5, IN = 7, OUT = 4;
  Vec x = randn(R * IN, 21), w = randn(OUT * IN, 22), b = randn(OUT, 23);
  const Vec r = randn(R * OUT, 24);
  auto loss = [&] {
    Vec y(R * OUT);
    linear_forward<double>(x.data(), w.data(), b.data(), y.data(), R, IN, OUT);
    return dot(y, r);
  };
  Vec dx(R * IN, 5.0), dw(OUT * IN, 0.0), db(OUT, 0.0);
  linear_backward<double>(x.data(), w.data(), r.data(), dx.data(), false, dw.data(), db.data(), R, IN, OUT);
  check_grad(x, dx, loss, "linear x");
  check_grad(w, dw, loss, "linear weight");
  check_grad(b, db, loss, "linear bias");
  // accumulate_dx adds
  Vec dx2 = dx;
  linear_backward<double>(x.data(), w.data(), r.data(), dx2.data(), true, nullptr, nullptr, R, IN, OUT);
  for (size_t i = 0; i < dx.size(); ++i) CHECK(dx2[i] == doctest::Approx(2 * dx[i]));
}

TEST_CASE("train: cross entropy with hard dense and sparse targets matches its definition and finite differences") {
  const size_t R = 4, V = 6, K = 3;
  Vec z = randn(R * V, 25, 2.0);
  const std::vector<int32_t> hard = {2, -1, 5, 0};
  Vec pr = randn(R * V, 26);
  std::vector<float> probs(R * V);
  for (size_t i = 0; i < R * V; ++i) probs[i] = static_cast<float>(std::abs(pr[i]));
  for (size_t j = 0; j < V; ++j) probs[1 * V + j] = 0.f;  // ignored row
  const std::vector<int32_t> sids = {1, 3, -1, -1, -1, -1, 0, 0, 5, 4, -1, 2};
  const std::vector<float> sw = {0.5f, 0.25f, 9.f, 1.f, 1.f, 1.f, 0.3f, 0.2f, 0.5f, 1.f, 7.f, 0.f};
  Targets th{TargetKind::Hard, hard.data(), nullptr, nullptr, 0, R, 0, 0};
  Targets td{TargetKind::Dense, nullptr, probs.data(), nullptr, 0, 0, R * V, 0};
  Targets ts{TargetKind::Sparse, sids.data(), nullptr, sw.data(), K, R * K, 0, R * K};
  for (const Targets* t : {&th, &td, &ts}) {
    validate_targets(*t, R, V);
    auto loss = [&] { return cross_entropy<double>(z.data(), R, V, *t, nullptr, 1.0).loss; };
    Vec dz(R * V);
    const LossSum ls = cross_entropy<double>(z.data(), R, V, *t, dz.data(), 1.0);
    CHECK(ls.count == 3);
    check_grad(z, dz, loss, "cross entropy");
    // the definition: -Σ_j target_j log softmax(z)_j summed over counted rows
    double ref = 0;
    for (size_t r = 0; r < R; ++r) {
      double mx = -1e300, s = 0;
      for (size_t j = 0; j < V; ++j) mx = std::max(mx, z[r * V + j]);
      for (size_t j = 0; j < V; ++j) s += std::exp(z[r * V + j] - mx);
      auto logq = [&](size_t j) { return z[r * V + j] - mx - std::log(s); };
      if (t->kind == TargetKind::Hard && hard[r] >= 0) ref -= logq(static_cast<size_t>(hard[r]));
      if (t->kind == TargetKind::Dense)
        for (size_t j = 0; j < V; ++j) ref -= probs[r * V + j] * logq(j);
      if (t->kind == TargetKind::Sparse)
        for (size_t i = 0; i < K; ++i)
          if (sids[r * K + i] >= 0) ref -= sw[r * K + i] * logq(static_cast<size_t>(sids[r * K + i]));
    }
    CHECK(ls.loss == doctest::Approx(ref).epsilon(1e-12));
    // scale multiplies the gradient
    Vec dz3(R * V);
    cross_entropy<double>(z.data(), R, V, *t, dz3.data(), 3.0);
    for (size_t i = 0; i < R * V; ++i) CHECK(dz3[i] == doctest::Approx(3 * dz[i]));
    for (size_t j = 0; j < V; ++j) CHECK(dz[1 * V + j] == 0.0);  // ignored row
  }
}

// ---- whole model ---------------------------------------------------------------------------------

TEST_CASE("train: whole llama model gradient in double matches finite differences") {
  const TransformerConfig c = llama_config();
  const size_t B = 2, S = 5;
  const auto tokens = random_tokens(B * S, c.vocab_size, 30);
  auto ids = random_tokens(B * S, c.vocab_size, 31);
  ids[3] = -1;
  Targets t{TargetKind::Hard, ids.data(), nullptr, nullptr, 0, ids.size(), 0, 0};
  check_model_gradient(c, t, tokens, B, S, 3);
}

TEST_CASE("train: whole gpt2 model gradient in double matches finite differences") {
  const TransformerConfig c = gpt2_config();
  const size_t B = 2, S = 5, K = 2;
  const auto tokens = random_tokens(B * S, c.vocab_size, 32);
  const auto ids = random_tokens(B * S * K, c.vocab_size, 33);
  std::vector<float> w(B * S * K);
  Rng r(34);
  for (float& x : w) x = r.next_f32();
  Targets t{TargetKind::Sparse, ids.data(), nullptr, w.data(), K, ids.size(), 0, w.size()};
  check_model_gradient(c, t, tokens, B, S, 3);
}

TEST_CASE("train: whole mistral model gradient in double matches finite differences") {
  const TransformerConfig c = mistral_config();
  const size_t B = 1, S = 7;
  const auto tokens = random_tokens(B * S, c.vocab_size, 35);
  std::vector<float> probs(B * S * c.vocab_size);
  Rng r(36);
  for (float& x : probs) x = r.next_f32();
  Targets t{TargetKind::Dense, nullptr, probs.data(), nullptr, 0, 0, probs.size(), 0};
  check_model_gradient(c, t, tokens, B, S, 3);
}

TEST_CASE("train: f32 forward logits equal the inference transformer on the same weights") {
  for (const TransformerConfig& c0 : {llama_config(), gpt2_config(), mistral_config()}) {
    TransformerConfig c = c0;
    c.hidden = 32;
    c.head_dim = 8;
    c.intermediate = 40;
    c.max_positions = 80;
    if (c.rope && c.rope_config.rotary_dim) c.rope_config.rotary_dim = 4;
    TrainableTransformer<float> m(c, 3, 0.2);
    Transformer ref(c);
    for (const ParamInfo& p : m.parameters())
      ref.set_weight(p.name, m.params() + p.offset, WeightDType::F32, p.size, p.shape);
    const size_t B = 2, S = 70;
    const auto tokens = random_tokens(B * S, c.vocab_size, 40);
    const std::vector<float> logits = m.forward_logits(tokens.data(), B, S);
    double maxref = 0, maxdiff = 0;
    for (size_t b = 0; b < B; ++b) {
      const ForwardOutput out = ref.forward(tokens.data() + b * S, S);
      for (size_t i = 0; i < S * c.vocab_size; ++i) {
        maxref = std::max(maxref, static_cast<double>(std::abs(out.logits[i])));
        maxdiff = std::max(maxdiff, static_cast<double>(std::abs(out.logits[i] - logits[b * S * c.vocab_size + i])));
      }
    }
    CHECK(maxref > 0.1);
    CHECK(maxdiff <= 1e-4 * maxref);
  }
}

TEST_CASE("train: adamw update follows its formula with decay only on linears") {
  TransformerConfig c = llama_config();
  c.tie_embeddings = false;
  TrainableTransformer<double> m(c, 5, 0.1);
  const size_t n = m.parameter_count();
  Vec g = randn(n, 50), w0(m.params(), m.params() + n);
  Vec m0 = randn(n, 51, 0.1), v0 = randn(n, 52, 0.1);
  for (double& x : v0) x = x * x;
  std::copy(g.begin(), g.end(), m.grads());
  std::copy(m0.begin(), m0.end(), m.adam_m());
  std::copy(v0.begin(), v0.end(), m.adam_v());
  AdamWOptions o;
  o.lr = 0.01;
  o.beta1 = 0.8;
  o.beta2 = 0.95;
  o.eps = 1e-6;
  o.weight_decay = 0.1;
  o.step = 3;
  const double norm = std::sqrt(dot(g, g));
  o.max_grad_norm = norm / 2;
  const AdamWResult r = m.adamw(o);
  CHECK(r.grad_norm == doctest::Approx(norm).epsilon(1e-12));
  CHECK(r.clipped);
  const double coef = o.max_grad_norm / (norm + 1e-6);
  size_t decayed = 0;
  for (const ParamInfo& p : m.parameters()) {
    const bool linear = p.name.find(".weight") != std::string::npos && p.shape.size() == 2;
    CHECK(p.decay == (linear || p.name == "lmHead"));
    decayed += p.decay;
    for (size_t i = p.offset; i < p.offset + p.size; ++i) {
      const double gi = g[i] * coef;
      const double mi = o.beta1 * m0[i] + (1 - o.beta1) * gi, vi = o.beta2 * v0[i] + (1 - o.beta2) * gi * gi;
      const double mh = mi / (1 - std::pow(o.beta1, 3)), vh = vi / (1 - std::pow(o.beta2, 3));
      const double wd = p.decay ? w0[i] * (1 - o.lr * o.weight_decay) : w0[i];
      const double want = wd - o.lr * mh / (std::sqrt(vh) + o.eps);
      CHECK(m.params()[i] == doctest::Approx(want).epsilon(1e-12));
      CHECK(m.adam_m()[i] == doctest::Approx(mi).epsilon(1e-12));
    }
  }
  CHECK(decayed > 0);
  CHECK(m.grads()[0] == g[0]);  // the gradients stay until zero_grad
  // no clipping below the threshold; a NaN gradient refuses the update
  o.max_grad_norm = norm * 2;
  CHECK_FALSE(m.adamw(o).clipped);
  m.grads()[1] = std::nan("");
  const Vec before(m.params(), m.params() + n);
  CHECK(error_of([&] { m.adamw(o); }).code() == ErrorCode::Range);
  CHECK(std::equal(before.begin(), before.end(), m.params()));
}

TEST_CASE("train: gradients accumulate across steps until zero_grad and lossScale scales them") {
  const TransformerConfig c = llama_config();
  TrainableTransformer<double> m(c, 1, 0.2);
  const auto tokens = random_tokens(8, c.vocab_size, 60);
  const auto ids = random_tokens(8, c.vocab_size, 61);
  Targets t{TargetKind::Hard, ids.data(), nullptr, nullptr, 0, ids.size(), 0, 0};
  m.step(tokens.data(), 2, 4, t, 1.0);
  const Vec g1(m.grads(), m.grads() + m.parameter_count());
  m.step(tokens.data(), 2, 4, t, 0.5);
  for (size_t i = 0; i < g1.size(); ++i) CHECK(m.grads()[i] == doctest::Approx(1.5 * g1[i]).epsilon(1e-12));
  m.zero_grad();
  for (size_t i = 0; i < g1.size(); ++i) CHECK(m.grads()[i] == 0.0);
  // backward_logits with the cross-entropy gradient equals step
  const std::vector<double> logits = m.forward_logits(tokens.data(), 2, 4);
  std::vector<double> dz(logits.size());
  cross_entropy<double>(logits.data(), 8, c.vocab_size, t, dz.data(), 1.0);
  m.backward_logits(dz.data(), dz.size());
  for (size_t i = 0; i < g1.size(); ++i) CHECK(m.grads()[i] == doctest::Approx(g1[i]).epsilon(1e-12));
}

TEST_CASE("train: steps are deterministic and single-thread runs bitwise reproducible") {
  TransformerConfig c = llama_config();
  c.hidden = 32;
  c.head_dim = 8;
  c.intermediate = 64;
  c.max_positions = 96;
  const auto tokens = random_tokens(3 * 80, c.vocab_size, 70);
  const auto ids = random_tokens(3 * 80, c.vocab_size, 71);
  Targets t{TargetKind::Hard, ids.data(), nullptr, nullptr, 0, ids.size(), 0, 0};
  auto run = [&] {
    TrainableTransformer<float> m(c, 2, 0.05);
    m.step(tokens.data(), 3, 80, t, 1.0);
    AdamWOptions o;
    o.weight_decay = 0.1;
    m.adamw(o);
    m.step(tokens.data(), 3, 80, t, 1.0);
    return std::vector<float>(m.grads(), m.grads() + m.parameter_count());
  };
  const int saved = num_threads();
  const auto a = run(), b = run();
  CHECK(a == b);
  set_num_threads(1);
  const auto c1 = run(), c2 = run();
  set_num_threads(saved);
  CHECK(c1 == c2);
}

TEST_CASE("train: a tiny model memorises a short text with adamw") {
  const std::string text = "the quick brown fox jumps over the lazy dog";
  TransformerConfig c = llama_config();
  c.vocab_size = 32;
  c.hidden = 32;
  c.heads = 4;
  c.kv_heads = 2;
  c.head_dim = 8;
  c.intermediate = 64;
  c.max_positions = 64;
  TrainableTransformer<float> m(c, 11, 0.02);
  std::vector<int32_t> tokens, ids;
  for (size_t i = 0; i + 1 < text.size(); ++i) {
    auto code = [](char ch) { return ch == ' ' ? 0 : ch - 'a' + 1; };
    tokens.push_back(code(text[i]));
    ids.push_back(code(text[i + 1]));
  }
  const size_t S = tokens.size();
  Targets t{TargetKind::Hard, ids.data(), nullptr, nullptr, 0, ids.size(), 0, 0};
  const double first = m.evaluate(tokens.data(), 1, S, t).loss / static_cast<double>(S);
  CHECK(first == doctest::Approx(std::log(32.0)).epsilon(0.05));
  AdamWOptions o;
  o.lr = 1e-2;
  o.max_grad_norm = 1.0;
  for (uint64_t step = 1; step <= 200; ++step) {
    m.zero_grad();
    m.step(tokens.data(), 1, S, t, 1.0 / static_cast<double>(S));
    o.step = step;
    m.adamw(o);
  }
  const double last = m.evaluate(tokens.data(), 1, S, t).loss / static_cast<double>(S);
  CHECK(last < 0.05);
}

TEST_CASE("train: bad input raises clear errors") {
  const TransformerConfig c = llama_config();
  TrainableTransformer<float> m(c, 1, 0.02);
  const std::vector<int32_t> tokens = {1, 2, 3, 4};
  std::vector<int32_t> ids = {1, 2, 3, 4};
  Targets t{TargetKind::Hard, ids.data(), nullptr, nullptr, 0, ids.size(), 0, 0};
  Error e = error_of([&] { m.check_batch(3, tokens.data(), 2, 2); });
  CHECK(e.code() == ErrorCode::Shape);
  CHECK(std::string(e.what()).find("tokens has 3 entries") != std::string::npos);
  std::vector<int32_t> bad = {1, 2, 99, 4};
  e = error_of([&] { m.step(bad.data(), 2, 2, t); });
  CHECK(e.code() == ErrorCode::Range);
  CHECK(std::string(e.what()).find("token id 99") != std::string::npos);
  e = error_of([&] { m.step(tokens.data(), 1, 4, Targets{TargetKind::Hard, ids.data(), nullptr, nullptr, 0, 3, 0, 0}); });
  CHECK(e.code() == ErrorCode::Shape);
  ids[2] = 11;
  e = error_of([&] { m.step(tokens.data(), 1, 4, t); });
  CHECK(e.code() == ErrorCode::Range);
  CHECK(std::string(e.what()).find("targets.ids[2] = 11") != std::string::npos);
  ids[2] = 3;
  std::vector<float> probs(4 * c.vocab_size, 0.1f);
  probs[5] = std::nanf("");
  e = error_of([&] { m.step(tokens.data(), 1, 4, Targets{TargetKind::Dense, nullptr, probs.data(), nullptr, 0, 0, probs.size(), 0}); });
  CHECK(e.code() == ErrorCode::Range);
  CHECK(std::string(e.what()).find("targets.probs[5]") != std::string::npos);
  const std::vector<int32_t> longer(17, 1);
  e = error_of([&] { m.check_batch(17, longer.data(), 1, 17); });
  CHECK(std::string(e.what()).find("maxPositions") != std::string::npos);
  e = error_of([&] { m.backward_logits(probs.data(), probs.size()); });
  CHECK(e.code() == ErrorCode::Range);
  m.forward_logits(tokens.data(), 1, 4);
  e = error_of([&] { m.backward_logits(probs.data(), 3); });
  CHECK(e.code() == ErrorCode::Shape);
  AdamWOptions o;
  o.beta1 = 1.0;
  e = error_of([&] { m.adamw(o); });
  CHECK(std::string(e.what()).find("beta1") != std::string::npos);
  TransformerConfig bad_cfg = c;
  bad_cfg.kv_heads = 3;
  CHECK(error_of([&] { TrainableTransformer<float> x(bad_cfg); }).code() == ErrorCode::Shape);
  CHECK(error_of([&] { TrainableTransformer<float> x(c, 0, -1.0); }).code() == ErrorCode::Range);
}
