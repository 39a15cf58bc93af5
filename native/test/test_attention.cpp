// Flash attention against the double-accumulating reference (attention.hpp).
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "tersor/attention.hpp"
#include "tersor/error.hpp"
#include "tersor/parallel.hpp"
#include "tersor/rng.hpp"

using namespace tersor;

namespace {

std::vector<float> randn(size_t n, uint64_t seed) {
  Rng r(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(r.next_normal());
  return v;
}

template <class F>
ErrorCode code_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code();
  }
  FAIL("expected a tersor::Error");
  return ErrorCode::Native;
}

/// Dense random q/k/v for p (default strides), flash vs naive; returns the max abs difference.
double flash_vs_naive(const AttentionParams& p, uint64_t seed) {
  const AttentionParams r = attention_resolve(p);
  auto q = randn(attention_q_extent(r), seed);
  auto k = randn(attention_kv_extent(r, false), seed + 1);
  auto v = randn(attention_kv_extent(r, true), seed + 2);
  std::vector<float> a(attention_o_extent(r), 7.f), b(attention_o_extent(r), 7.f);
  flash_attention(q.data(), k.data(), v.data(), a.data(), p);
  naive_attention(q.data(), k.data(), v.data(), b.data(), p);
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, static_cast<double>(std::fabs(a[i] - b[i])));
  return worst;
}

AttentionParams make(size_t n_q, size_t n_kv, size_t heads, size_t kv_heads, size_t d) {
  AttentionParams p;
  p.n_q = n_q;
  p.n_kv = n_kv;
  p.heads = heads;
  p.kv_heads = kv_heads;
  p.head_dim = d;
  p.q_start = n_kv - n_q;
  return p;
}

}  // namespace

TEST_CASE("attention: naive reference on a hand-computed example") {
  // one head, d = 2, keys (1,0) and (0,1), values 10 and 20, query (1,0) at position 1, scale 1:
  // weights softmax(1, 0) = (e, 1) / (e + 1)
  const float q[] = {0, 0, 1, 0};  // query rows 0 and 1
  const float k[] = {1, 0, 0, 1};
  const float v[] = {10, 10, 20, 20};
  float out[4];
  AttentionParams p = make(2, 2, 1, 1, 2);
  p.scale = 1.f;
  naive_attention(q, k, v, out, p);
  CHECK(out[0] == 10.f);  // row 0 sees key 0 only
  const double e = std::exp(1.0);
  CHECK(out[2] == doctest::Approx((10 * e + 20) / (e + 1)).epsilon(1e-7));
  float fo[4];
  flash_attention(q, k, v, fo, p);
  CHECK(fo[0] == 10.f);
  CHECK(fo[2] == doctest::Approx(out[2]).epsilon(1e-6));
}

TEST_CASE("attention: flash matches naive over lengths 1..1000, head dims 32..128, GQA 1..8") {
  uint64_t seed = 100;
  for (size_t n : {1u, 7u, 63u, 64u, 65u, 1000u}) {
    double worst = 0;
    for (size_t d : {32u, 64u, 80u, 128u}) {
      for (size_t ratio : {1u, 2u, 4u, 8u}) {
        const size_t kv_heads = n <= 65 ? 2 : 1;
        const double e = flash_vs_naive(make(n, n, ratio * kv_heads, kv_heads, d), seed++);
        CAPTURE(n);
        CAPTURE(d);
        CAPTURE(ratio);
        CHECK(e <= 1e-5);
        worst = std::max(worst, e);
      }
    }
    MESSAGE("n = " << n << ": max |flash - naive| = " << worst);
  }
}

TEST_CASE("attention: sliding window and sinks") {
  struct Case {
    size_t n, d, heads, kv_heads, window, sinks;
  };
  const Case cases[] = {{1000, 64, 8, 2, 100, 4}, {1000, 128, 4, 4, 257, 0}, {65, 80, 4, 1, 16, 0},
                        {65, 32, 2, 2, 7, 3},     {300, 64, 8, 1, 1, 1},     {200, 96, 6, 3, 64, 64},
                        {130, 64, 2, 1, 5, 100}};
  uint64_t seed = 500;
  for (const Case& c : cases) {
    AttentionParams p = make(c.n, c.n, c.heads, c.kv_heads, c.d);
    p.window = c.window;
    p.sinks = c.sinks;
    CAPTURE(c.n);
    CAPTURE(c.window);
    CAPTURE(c.sinks);
    CHECK(flash_vs_naive(p, seed++) <= 1e-5);
  }
}

TEST_CASE("attention: decode (one query at the end of the cache) and chunked prefill") {
  uint64_t seed = 900;
  for (size_t n_kv : {1u, 7u, 64u, 65u, 1000u}) {
    for (size_t ratio : {1u, 4u, 8u}) {
      AttentionParams p = make(1, n_kv, 2 * ratio, 2, 64);
      CAPTURE(n_kv);
      CAPTURE(ratio);
      CHECK(flash_vs_naive(p, seed++) <= 1e-5);
      p.window = 32;
      p.sinks = 4;
      CHECK(flash_vs_naive(p, seed++) <= 1e-5);
    }
  }
  // chunked prefill: the queries are the last n_q of n_kv positions
  for (size_t n_q : {1u, 3u, 7u, 8u, 100u}) {
    for (size_t ratio : {1u, 2u, 8u}) {
      AttentionParams p = make(n_q, 300, ratio, 1, 80);
      CAPTURE(n_q);
      CAPTURE(ratio);
      CHECK(flash_vs_naive(p, seed++) <= 1e-5);
      p.window = 50;
      CHECK(flash_vs_naive(p, seed++) <= 1e-5);
    }
  }
  // queries in the middle of a longer key range (later keys are masked out by causality)
  AttentionParams mid = make(20, 500, 4, 2, 64);
  mid.q_start = 200;
  CHECK(flash_vs_naive(mid, seed++) <= 1e-5);
}

TEST_CASE("attention: non-causal, explicit scale, odd head dims") {
  uint64_t seed = 1300;
  for (size_t d : {1u, 3u, 8u, 17u, 100u, 256u}) {
    AttentionParams p = make(33, 33, 4, 2, d);
    p.causal = false;
    CAPTURE(d);
    CHECK(flash_vs_naive(p, seed++) <= 1e-5);
    p.causal = true;
    p.scale = 0.05f;
    CHECK(flash_vs_naive(p, seed++) <= 1e-5);
  }
  AttentionParams nc = make(10, 50, 2, 1, 64);
  nc.causal = false;
  nc.q_start = 0;
  CHECK(flash_vs_naive(nc, seed++) <= 1e-5);
}

TEST_CASE("attention: mask semantics: causal, window and sinks select exactly the visible keys") {
  // q = k = 0 gives uniform weights over the visible keys; v[j] = e_j reveals which ones they are.
  const size_t n = 100, d = 128;
  for (size_t window : {0u, 1u, 10u}) {
    for (size_t sinks : {0u, 4u}) {
      AttentionParams p = make(n, n, 2, 1, d);
      p.window = window;
      p.sinks = sinks;
      std::vector<float> q(n * 2 * d, 0.f), k(n * d, 0.f), v(n * d, 0.f);
      for (size_t j = 0; j < n; ++j) v[j * d + j] = 1.f;
      std::vector<float> a(n * 2 * d), b(n * 2 * d);
      flash_attention(q.data(), k.data(), v.data(), a.data(), p);
      naive_attention(q.data(), k.data(), v.data(), b.data(), p);
      bool ok = true;
      for (size_t t = 0; t < n; ++t) {
        size_t count = 0;
        std::vector<bool> vis(n);
        for (size_t j = 0; j < n; ++j) {
          vis[j] = j <= t && (window == 0 || t - j < window || (window && j < sinks));
          count += vis[j];
        }
        for (size_t h = 0; h < 2; ++h)
          for (size_t j = 0; j < d; ++j) {
            const float want = j < n && vis[j] ? 1.f / static_cast<float>(count) : 0.f;
            ok &= std::fabs(a[(t * 2 + h) * d + j] - want) < 1e-6f;
            ok &= std::fabs(b[(t * 2 + h) * d + j] - want) < 1e-6f;
          }
      }
      CAPTURE(window);
      CAPTURE(sinks);
      CHECK(ok);
    }
  }
}

TEST_CASE("attention: strided KV caches (token-major with capacity, head-major) and a fused QKV view") {
  const size_t n_kv = 150, cap = 256, kvh = 2, h = 8, d = 64, n_q = 30;
  auto qkv = randn(n_q * (h + 2 * kvh) * d, 41);  // only the Q part is used
  auto kd = randn(n_kv * kvh * d, 42), vd = randn(n_kv * kvh * d, 43);
  // dense reference inputs
  std::vector<float> qd(n_q * h * d);
  for (size_t t = 0; t < n_q; ++t) std::memcpy(&qd[t * h * d], &qkv[t * (h + 2 * kvh) * d], h * d * 4);
  AttentionParams p = make(n_q, n_kv, h, kvh, d);
  std::vector<float> ref(n_q * h * d);
  naive_attention(qd.data(), kd.data(), vd.data(), ref.data(), p);
  // head-major cache [kvh, cap, d]; output into a wider row
  std::vector<float> kc(kvh * cap * d, 1e30f), vc(kvh * cap * d, 1e30f);
  for (size_t j = 0; j < n_kv; ++j)
    for (size_t g = 0; g < kvh; ++g) {
      std::memcpy(&kc[(g * cap + j) * d], &kd[(j * kvh + g) * d], d * 4);
      std::memcpy(&vc[(g * cap + j) * d], &vd[(j * kvh + g) * d], d * 4);
    }
  AttentionParams s = p;
  s.q_row_stride = (h + 2 * kvh) * d;
  s.k_row_stride = s.v_row_stride = d;
  s.k_head_stride = s.v_head_stride = cap * d;
  s.o_row_stride = h * d + 5;
  std::vector<float> fo(n_q * s.o_row_stride, -3.f), no(n_q * s.o_row_stride, -3.f);
  flash_attention(qkv.data(), kc.data(), vc.data(), fo.data(), s);
  naive_attention(qkv.data(), kc.data(), vc.data(), no.data(), s);
  double wf = 0, wn = 0;
  for (size_t t = 0; t < n_q; ++t) {
    for (size_t i = 0; i < h * d; ++i) {
      wf = std::max(wf, static_cast<double>(std::fabs(fo[t * s.o_row_stride + i] - ref[t * h * d + i])));
      wn = std::max(wn, static_cast<double>(std::fabs(no[t * s.o_row_stride + i] - ref[t * h * d + i])));
    }
    for (size_t i = h * d; i < s.o_row_stride; ++i) CHECK(fo[t * s.o_row_stride + i] == -3.f);
  }
  CHECK(wf <= 1e-5);
  CHECK(wn == 0.0);
  // token-major cache with capacity > length: just a longer buffer, default strides
  std::vector<float> kt(cap * kvh * d, 1e30f), vt(cap * kvh * d, 1e30f);
  std::memcpy(kt.data(), kd.data(), kd.size() * 4);
  std::memcpy(vt.data(), vd.data(), vd.size() * 4);
  std::vector<float> to(n_q * h * d);
  flash_attention(qd.data(), kt.data(), vt.data(), to.data(), p);
  double wt = 0;
  for (size_t i = 0; i < to.size(); ++i) wt = std::max(wt, static_cast<double>(std::fabs(to[i] - ref[i])));
  CHECK(wt <= 1e-5);
}

TEST_CASE("attention: results do not depend on the thread count, scratch is O(tile)") {
  AttentionParams p = make(700, 700, 8, 2, 64);
  auto q = randn(700 * 8 * 64, 1), k = randn(700 * 2 * 64, 2), v = randn(700 * 2 * 64, 3);
  std::vector<float> a(q.size()), b(q.size());
  set_num_threads(1);
  flash_attention(q.data(), k.data(), v.data(), a.data(), p);
  set_num_threads(2);
  attention_scratch_reset_peak();
  const size_t before = attention_scratch_stats().current_bytes;
  flash_attention(q.data(), k.data(), v.data(), b.data(), p);
  const size_t peak = attention_scratch_stats().peak_bytes - before;
  set_num_threads(0);
  CHECK(std::memcmp(a.data(), b.data(), a.size() * 4) == 0);
  CHECK(peak == flash_attention_workspace_bytes(p, 2));
  CHECK(peak < 200 * 1024);  // vs 700 * 700 * 8 * 4 = 15.7 MB for the score matrices
  CHECK(attention_scratch_stats().current_bytes == before);
}

TEST_CASE("attention: empty inputs and queries with no visible key") {
  AttentionParams p = make(0, 0, 2, 1, 16);
  flash_attention(nullptr, nullptr, nullptr, nullptr, p);
  naive_attention(nullptr, nullptr, nullptr, nullptr, p);
  // n_kv = 0: zero rows
  AttentionParams z = make(3, 3, 2, 1, 16);
  z.n_kv = 0;
  z.q_start = 0;
  std::vector<float> q(3 * 2 * 16, 1.f), out(3 * 2 * 16, 5.f);
  flash_attention(q.data(), nullptr, nullptr, out.data(), z);
  for (float x : out) CHECK(x == 0.f);
}

TEST_CASE("attention: bad shapes throw E_SHAPE") {
  std::vector<float> buf(1 << 16);
  const float* b = buf.data();
  float* o = buf.data();
  auto expect_shape = [&](AttentionParams p) {
    CHECK(code_of([&] { flash_attention(b, b, b, o, p); }) == ErrorCode::Shape);
    CHECK(code_of([&] { naive_attention(b, b, b, o, p); }) == ErrorCode::Shape);
  };
  expect_shape(make(4, 4, 2, 1, 0));    // head_dim 0
  expect_shape(make(4, 4, 2, 1, 257));  // head_dim above 256
  expect_shape(make(4, 4, 6, 4, 64));   // heads % kv_heads
  expect_shape(make(4, 4, 0, 0, 64));   // no heads
  AttentionParams ov = make(4, 4, 2, 1, 64);
  ov.o_row_stride = 64;  // two heads of a row would overlap
  expect_shape(ov);
  AttentionParams sc = make(4, 4, 2, 1, 64);
  sc.scale = -1.f;
  expect_shape(sc);
  CHECK(code_of([&] { flash_attention_workspace_bytes(make(4, 4, 3, 2, 64)); }) == ErrorCode::Shape);
}
