// Suite "kv": decode attention over compressed KV caches (tersor/kv.hpp).
// Cases kv/decode/n<N>/d<D>/gqa<G>/<method>: one query token (G query heads per KV head, 8 KV heads)
// attending to N cached tokens of one layer. "ours" = the compressed cache (KIVI 2- and 4-bit,
// group 32, residual 128: blocks dequantized inside L1 tiles, each tile used by the whole query
// group), baseline = an f16 cache through the same kernel (method fp16), measured in the same run;
// ratio = f16_time / compressed_time. Extras:
//   f32_flash_s        tersor::flash_attention over an f32 cache of the same tokens
//   bytes_per_token    cache bytes per token (all 8 KV heads, K and V) of the compressed cache
//   f16_bytes_per_token the f16 cache's
//   memory_ratio       f16 bytes / compressed bytes
//   gqa1_s             (GQA 4 cases) the same compressed case with GQA 1; gqa_cost = time / gqa1_s
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "bench.hpp"
#include "tersor/attention.hpp"
#include "tersor/kv.hpp"
#include "tersor/rng.hpp"

namespace {

using namespace tersor;

std::unique_ptr<kv::CompressedKv> filled(kv::KvMethod m, int bits, size_t N, size_t D, size_t H, size_t KV,
                                         const std::vector<float>& k, const std::vector<float>& v,
                                         const std::vector<float>& q) {
  kv::KvConfig cfg;
  cfg.method = m;
  cfg.bits = bits;
  cfg.group = 32;
  cfg.residual = 128;
  kv::KvShape s;
  s.layers = 1;
  s.heads = H;
  s.kv_heads = KV;
  s.head_dim = D;
  auto c = std::make_unique<kv::CompressedKv>(cfg, s, N + 1, nullptr);
  std::vector<int32_t> pos(N);
  for (size_t i = 0; i < N; ++i) pos[i] = static_cast<int32_t>(i);
  std::vector<float> out(H * D);
  const size_t chunk = 256;
  for (size_t t0 = 0; t0 < N; t0 += chunk) {
    const size_t n = std::min(chunk, N - t0);
    c->append(0, k.data() + t0 * KV * D, k.data() + t0 * KV * D, v.data() + t0 * KV * D, pos.data() + t0, n);
    const int32_t qp = pos[t0 + n - 1];
    c->attend(0, q.data(), &qp, 1, out.data());
  }
  return c;
}

void kv_suite(bool quick) {
  const size_t KV = 8;
  const std::vector<size_t> lens = quick ? std::vector<size_t>{512} : std::vector<size_t>{4096, 16384};
  const std::vector<size_t> dims = quick ? std::vector<size_t>{64} : std::vector<size_t>{64, 128};
  for (size_t N : lens)
    for (size_t D : dims) {
      Rng r(N * 31 + D);
      std::vector<float> k(N * KV * D), v(N * KV * D), q(4 * KV * D);
      for (auto& x : k) x = static_cast<float>(r.next_normal());
      for (auto& x : v) x = static_cast<float>(r.next_normal());
      for (auto& x : q) x = static_cast<float>(r.next_normal());
      double gqa1[2] = {0, 0};
      for (size_t G : {size_t{1}, size_t{4}}) {
        const size_t H = KV * G;
        const int32_t qp = static_cast<int32_t>(N - 1);
        std::vector<float> out(H * D);
        auto f16 = filled(kv::KvMethod::F16, 8, N, D, H, KV, k, v, q);
        const double f16_s = bench::median_seconds([&] { f16->attend(0, q.data(), &qp, 1, out.data()); }, quick ? 3 : 7);
        // f32 flash attention over a dense f32 cache
        AttentionParams ap;
        ap.n_q = 1;
        ap.n_kv = N;
        ap.heads = H;
        ap.kv_heads = KV;
        ap.head_dim = D;
        ap.q_start = N - 1;
        const double f32_s = bench::median_seconds([&] { flash_attention(q.data(), k.data(), v.data(), out.data(), ap); }, quick ? 3 : 7);
        for (int bi = 0; bi < 2; ++bi) {
          const int bits = bi == 0 ? 2 : 4;
          auto c = filled(kv::KvMethod::Kivi, bits, N, D, H, KV, k, v, q);
          const double s = bench::median_seconds([&] { c->attend(0, q.data(), &qp, 1, out.data()); }, quick ? 3 : 7);
          bench::Extra ex = {{"f32_flash_s", f32_s},
                             {"bytes_per_token", static_cast<double>(c->bytes()) / static_cast<double>(N)},
                             {"f16_bytes_per_token", static_cast<double>(f16->bytes()) / static_cast<double>(N)},
                             {"memory_ratio", static_cast<double>(f16->bytes()) / static_cast<double>(c->bytes())}};
          if (G == 1) gqa1[bi] = s;
          else ex.push_back({"gqa1_s", gqa1[bi]}), ex.push_back({"gqa_cost", s / gqa1[bi]});
          bench::report("kv", "kv/decode/n" + std::to_string(N) + "/d" + std::to_string(D) + "/gqa" + std::to_string(G) +
                                  "/kivi" + std::to_string(bits),
                        s, "f16_cache", f16_s, ex);
        }
      }
    }
}

}  // namespace

TERSOR_BENCH_SUITE("kv", kv_suite);
