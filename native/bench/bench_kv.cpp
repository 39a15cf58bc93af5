// Suite "kv": decode attention over compressed KV caches (tersor/kv.hpp).
// Cases kv/decode/n<N>/d<D>/gqa<G>/<method>: one query token (G query heads per KV head, 8 KV heads)
// attending to N cached tokens of one layer (group 32, residual window 128). "ours" = the
// compressed cache through CompressedKv::attend (fused tiles: codes unpacked in registers, key
// scales folded into q and value scales into P once per block, each K/V row read once for the whole
// query group with 8+ independent FMA chains, on 512-bit vectors where the CPU has AVX-512); baseline = an f16 cache (method fp16) through the
// same kernel family (F16C rows). All variants of a (N, D, G) point are timed interleaved, repetition
// by repetition (>= 5 full, 3 quick; median), so a loaded machine slows them alike; ratio =
// f16_time / compressed_time. These are warm timings: each timed call follows an untimed call of the
// same variant, so its cache is as resident in the CPU caches as its size allows (without that, the
// other variants timed in between, some 60 MB at n4096, evict it and "warm" would be half cold). Extras:
//   cpu_ratio            the same ratio from process CPU time (robust to preemption on a busy machine)
//   f32_flash_s          tersor::flash_attention over a dense f32 cache of the same tokens
//   f32_ratio            f32_flash_s / ours_s
//   tile_path_s          the same compressed cache through f32 tiles (set_fused_attention(false))
//   bytes_per_token      cache bytes per token (8 KV heads, K and V, codes + scales + window): the
//                        bytes one decode step reads per cached token (each is read once per step)
//   f16_bytes_per_token  the f16 cache's; memory_ratio = f16 bytes / compressed bytes
//   gbps, f16_gbps       bytes read / time of the compressed and the f16 cache
//   gqa1_s, gqa_cost     (GQA 4) the same case at GQA 1 and time / gqa1_s; f16_gqa_cost the f16 cache's
//   cold_s, cold_ratio   every variant timed again with the caches evicted before each call (a 256 MB
//                        read by the kernels' thread team, which is then awake as after the previous
//                        layer), as in a decode step where the other layers' caches and weights pass
//                        through between two visits of this layer; cold_ratio = f16 cold / ours cold;
//                        cold_gbps, f16_cold_gbps, cold_gqa_cost, f16_cold_gqa_cost likewise
//   avx2_s, f16_avx2_s   (kivi4 and zipcache4_2, on AVX-512 CPUs) the compressed and the f16 cache through the 256-bit
//                        kernels (set_avx512(false)): the 512-bit kernels' gain in the same run
//   bf16_s, bf16_ratio   (kivi4, on CPUs with AVX-512 BF16) the opt-in KvConfig::bf16_dot kernels (q' and P' rounded
//                        to bf16, vdpbf16ps) and f16_time / bf16_s; bf16_gqa_cost (GQA 4) their time / their GQA 1 time
//   extra_heads_fma_s    (GQA 4) the time the extra query heads' multiply-adds alone take at this CPU's peak f32
//                        rate: (G - 1) * 8 * N * 2D of them (q.k and p.v; softmax not counted), as independent
//                        FMA chains on registers, on the kernels' thread team and vector width, timed with the rest
//   gqa_fma_floor        1 + extra_heads_fma_s / gqa1_s: the gqa_cost if the extra heads cost nothing but their
//                        multiply-adds at the peak rate on top of the GQA 1 time (f16_gqa_fma_floor with the f16
//                        cache's gqa1_s). Where GQA 1 is compute-bound (the quantized caches: codes unpacked on the
//                        same vector units) those multiply-adds have no idle units to hide in, so sharing the K/V
//                        tiles better cannot take an exact f32 kernel below it; a memory-bound GQA 1 (the f16
//                        cache, cold) can hide them in its memory stalls
// KIVI at 2, 4 and 8 bits at every point; KVQuant-4, GEAR-4 and ZipCache 4/2 at n4096 only (their
// compression of 16384 tokens takes long). GEAR-4 runs the fused KIVI kernels plus its low-rank
// (rank dots) and sparse (per-entry) terms; ZipCache 4/2 its own fused kernels (channel scales folded
// into q, per-token codes of mixed width unpacked by a per-row shift and mask); KVQuant-4 (non-uniform
// codebook looked up by lane permutes, pre-RoPE keys rotated by a NeoX RoPE table, 1% sparse
// outliers) is dequantized per block into an L1 tile of f32 rows that the same fused kernels read.
#include <immintrin.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bench.hpp"
#include "tersor/attention.hpp"
#include "tersor/kv.hpp"
#include "tersor/parallel.hpp"
#include "tersor/rng.hpp"

namespace {

using namespace tersor;

struct Variant {
  std::string name;
  kv::KvMethod method;
  int bits;
  bool fused = true;
  bool avx512 = true;  // false: the fused kernels on 256-bit vectors (reported as avx2_s of the main case)
  bool bf16 = false;   // true: KvConfig::bf16_dot (reported as bf16_s of the main case)
};

std::unique_ptr<kv::CompressedKv> filled(const Variant& m, size_t N, size_t D, size_t H, size_t KV,
                                         const std::vector<float>& k, const std::vector<float>& v,
                                         const std::vector<float>& q, const RopeCache* rope) {
  kv::KvConfig cfg;
  cfg.method = m.method;
  cfg.bits = m.bits;
  cfg.low_bits = 2;
  cfg.group = 32;
  cfg.residual = 128;
  cfg.bf16_dot = m.bf16;
  kv::KvShape s;
  s.layers = 1;
  s.heads = H;
  s.kv_heads = KV;
  s.head_dim = D;
  // KVQuant stores its keys before RoPE and rotates them per tile (the random keys stand for the
  // pre-RoPE ones; the timing is what matters)
  auto c = std::make_unique<kv::CompressedKv>(cfg, s, N + 1, m.method == kv::KvMethod::KvQuant ? rope : nullptr);
  c->set_fused_attention(m.fused);
  c->set_avx512(m.avx512);
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

double cpu_now() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

/// Evicts the caches: reads a buffer several times the size of any last-level cache, as the other
/// layers of a decode step do between two visits of one layer's KV cache.
class CacheFlusher {
 public:
  CacheFlusher() : buf_(size_t{256} << 20, 1) {}
  // Read by the OpenMP team the kernels run on, so that its threads are awake (spinning) when the
  // timed call starts, as in a decode step where the previous layer has just run on them. A flush by
  // this thread alone lets them fall asleep, and each call would then time their wake-up (about
  // 40 us on this machine class, the same for every variant, which pulls every cold ratio toward 1).
  void operator()() {
    uint64_t acc = 0;
    const auto lines = static_cast<std::ptrdiff_t>(buf_.size() / 64);
#pragma omp parallel for reduction(+ : acc) num_threads(num_threads()) schedule(static)
    for (std::ptrdiff_t i = 0; i < lines; ++i) acc += buf_[static_cast<size_t>(i) * 64];
    sink_ = sink_ + acc;
  }

 private:
  std::vector<uint8_t> buf_;
  volatile uint64_t sink_ = 0;
};

/// `iters` rounds of 12 independent FMA chains on registers (no loads: the CPU's peak f32 FMA rate).
__attribute__((target("avx512f"))) float fma_chains_z(size_t iters) {
  __m512 a[12];
  for (int j = 0; j < 12; ++j) a[j] = _mm512_set1_ps(1.0f + 0.01f * static_cast<float>(j));
  const __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-6f);  // fixed point 1: stays finite
  for (size_t i = 0; i < iters; ++i)
    _Pragma("GCC unroll 12") for (auto& aj : a) aj = _mm512_fmadd_ps(aj, x, y);
  for (int j = 1; j < 12; ++j) a[0] = _mm512_add_ps(a[0], a[j]);
  alignas(64) float t[16];
  _mm512_store_ps(t, a[0]);
  float s = 0;
  for (const float x : t) s += x;
  return s;
}
float fma_chains(size_t iters) {
  __m256 a[12];
  for (int j = 0; j < 12; ++j) a[j] = _mm256_set1_ps(1.0f + 0.01f * static_cast<float>(j));
  const __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-6f);
  for (size_t i = 0; i < iters; ++i)
    _Pragma("GCC unroll 12") for (auto& aj : a) aj = _mm256_fmadd_ps(aj, x, y);
  for (int j = 1; j < 12; ++j) a[0] = _mm256_add_ps(a[0], a[j]);
  alignas(32) float t[8];
  _mm256_store_ps(t, a[0]);
  return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}

/// `macs` f32 multiply-adds at the peak rate, split over the kernels' thread team, on the vector width the
/// fused kernels use (512-bit where the CPU has AVX-512).
void peak_fmas(double macs) {
  static volatile float sink = 0;
  const int nt = num_threads();
  const bool wide = kv::kv_avx512_supported();
  const auto iters = static_cast<size_t>(macs / (wide ? 16.0 : 8.0) / 12.0 / nt);
  float acc = 0;
#pragma omp parallel for reduction(+ : acc) num_threads(nt) schedule(static)
  for (int t = 0; t < nt; ++t) acc += wide ? fma_chains_z(iters) : fma_chains(iters);
  sink = sink + acc;
}

/// Median wall and CPU seconds of each function, timed interleaved (one warm-up round); `before(i)`
/// (untimed) runs ahead of every call of fns[i].
void interleaved(const std::vector<std::function<void()>>& fns, int reps, std::vector<double>& wall,
                 std::vector<double>& cpu, const std::function<void(size_t)>& before) {
  std::vector<std::vector<double>> w(fns.size()), c(fns.size());
  for (int r = -1; r < reps; ++r)
    for (size_t i = 0; i < fns.size(); ++i) {
      before(i);
      const double c0 = cpu_now();
      const auto t0 = std::chrono::steady_clock::now();
      fns[i]();
      const double ws = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double cs = cpu_now() - c0;
      if (r >= 0) w[i].push_back(ws), c[i].push_back(cs);
    }
  auto median = [](std::vector<double> x) {
    std::sort(x.begin(), x.end());
    return x[x.size() / 2];
  };
  wall.resize(fns.size());
  cpu.resize(fns.size());
  for (size_t i = 0; i < fns.size(); ++i) wall[i] = median(w[i]), cpu[i] = median(c[i]);
}

void kv_suite(bool quick) {
  const size_t KV = 8;
  CacheFlusher flush;
  const int reps = quick ? 3 : 7;
  const std::vector<size_t> lens = quick ? std::vector<size_t>{512} : std::vector<size_t>{4096, 16384};
  const std::vector<size_t> dims = quick ? std::vector<size_t>{64} : std::vector<size_t>{64, 128};
  for (size_t N : lens)
    for (size_t D : dims) {
      Rng r(N * 31 + D);
      std::vector<float> k(N * KV * D), v(N * KV * D), q(4 * KV * D);
      for (auto& x : k) x = static_cast<float>(r.next_normal());
      for (auto& x : v) x = static_cast<float>(r.next_normal());
      for (auto& x : q) x = static_cast<float>(r.next_normal());
      std::vector<Variant> vars = {{"f16", kv::KvMethod::F16, 8},   {"kivi2", kv::KvMethod::Kivi, 2},
                                   {"kivi4", kv::KvMethod::Kivi, 4}, {"kivi8", kv::KvMethod::Kivi, 8},
                                   {"kivi2", kv::KvMethod::Kivi, 2, false}, {"kivi4", kv::KvMethod::Kivi, 4, false}};
      if (kv::kv_avx512_supported())
        vars.insert(vars.end(), {{"f16", kv::KvMethod::F16, 8, true, false}, {"kivi4", kv::KvMethod::Kivi, 4, true, false}});
      if (N <= 4096)
        vars.insert(vars.end(), {{"kvquant4", kv::KvMethod::KvQuant, 4},
                                 {"gear4", kv::KvMethod::Gear, 4},
                                 {"zipcache4_2", kv::KvMethod::ZipCache, 4}});
      if (N <= 4096 && kv::kv_avx512_supported()) vars.push_back({"zipcache4_2", kv::KvMethod::ZipCache, 4, true, false});
      if (kv::kv_bf16_dot_supported() && D % 64 == 0) vars.push_back({"kivi4", kv::KvMethod::Kivi, 4, true, true, true});
      std::vector<double> gqa1(vars.size(), 0.0), gqa1_cold(vars.size(), 0.0);
      RopeConfig rc;
      rc.head_dim = D;
      const RopeCache rope(rc, N + 1);
      for (size_t G : {size_t{1}, size_t{4}}) {
        const size_t H = KV * G;
        const int32_t qp = static_cast<int32_t>(N - 1);
        std::vector<float> out(H * D);
        std::vector<std::unique_ptr<kv::CompressedKv>> caches;
        std::vector<std::function<void()>> fns;
        for (const Variant& m : vars) {
          caches.push_back(filled(m, N, D, H, KV, k, v, q, &rope));
          kv::CompressedKv* c = caches.back().get();
          fns.push_back([c, &q, &qp, &out] { c->attend(0, q.data(), &qp, 1, out.data()); });
        }
        AttentionParams ap;
        ap.n_q = 1;
        ap.n_kv = N;
        ap.heads = H;
        ap.kv_heads = KV;
        ap.head_dim = D;
        ap.q_start = N - 1;
        fns.push_back([&] { flash_attention(q.data(), k.data(), v.data(), out.data(), ap); });
        const double extra_macs = static_cast<double>((G - 1) * KV * N * 2 * D);
        if (G > 1) fns.push_back([extra_macs] { peak_fmas(extra_macs); });
        std::vector<double> wall, cpu, cold, cold_cpu;
        interleaved(fns, reps, wall, cpu, [&fns](size_t i) { fns[i](); });
        interleaved(fns, reps, cold, cold_cpu, [&flush](size_t) { flush(); });
        const size_t flash_at = vars.size();
        const double f16_s = wall[0], f16_cpu = cpu[0], f32_s = wall[flash_at], f16_cold = cold[0];
        const double fma_s = G > 1 ? wall[flash_at + 1] : 0.0;
        if (G == 1)
          for (size_t j = 0; j < vars.size(); ++j) gqa1[j] = wall[j], gqa1_cold[j] = cold[j];
        double f16_avx2 = 0;
        for (size_t j = 1; j < vars.size(); ++j)
          if (!vars[j].avx512 && vars[j].method == kv::KvMethod::F16) f16_avx2 = wall[j];
        const double f16_bpt = static_cast<double>(caches[0]->bytes()) / static_cast<double>(N);
        const double nd = static_cast<double>(N);
        for (size_t i = 1; i < vars.size(); ++i) {
          if (!vars[i].fused || !vars[i].avx512 || vars[i].bf16) continue;  // reported with the main case
          double tile_s = 0, avx2_s = 0;
          size_t bf16_at = 0;
          for (size_t j = 1; j < vars.size(); ++j) {
            if (vars[j].name != vars[i].name) continue;
            if (!vars[j].fused) tile_s = wall[j];
            if (!vars[j].avx512) avx2_s = wall[j];
            if (vars[j].bf16) bf16_at = j;
          }
          const double bpt = static_cast<double>(caches[i]->bytes()) / nd;
          bench::Extra ex = {{"cpu_ratio", f16_cpu / cpu[i]},
                             {"f32_flash_s", f32_s},
                             {"f32_ratio", f32_s / wall[i]},
                             {"bytes_per_token", bpt},
                             {"f16_bytes_per_token", f16_bpt},
                             {"memory_ratio", f16_bpt / bpt},
                             {"gbps", bpt * nd / wall[i] * 1e-9},
                             {"f16_gbps", f16_bpt * nd / f16_s * 1e-9},
                             {"cold_s", cold[i]},
                             {"cold_ratio", f16_cold / cold[i]},
                             {"cold_gbps", bpt * nd / cold[i] * 1e-9},
                             {"f16_cold_gbps", f16_bpt * nd / f16_cold * 1e-9}};
          if (tile_s > 0) ex.push_back({"tile_path_s", tile_s});
          if (avx2_s > 0) {
            ex.push_back({"avx2_s", avx2_s});
            ex.push_back({"f16_avx2_s", f16_avx2});
          }
          if (bf16_at > 0) {
            ex.push_back({"bf16_s", wall[bf16_at]});
            ex.push_back({"bf16_ratio", f16_s / wall[bf16_at]});
            if (G > 1) ex.push_back({"bf16_gqa_cost", wall[bf16_at] / gqa1[bf16_at]});
          }
          if (G > 1) {
            ex.push_back({"gqa1_s", gqa1[i]});
            ex.push_back({"gqa_cost", wall[i] / gqa1[i]});
            ex.push_back({"f16_gqa_cost", f16_s / gqa1[0]});
            ex.push_back({"cold_gqa_cost", cold[i] / gqa1_cold[i]});
            ex.push_back({"f16_cold_gqa_cost", f16_cold / gqa1_cold[0]});
            ex.push_back({"extra_heads_fma_s", fma_s});
            ex.push_back({"gqa_fma_floor", 1.0 + fma_s / gqa1[i]});
            ex.push_back({"f16_gqa_fma_floor", 1.0 + fma_s / gqa1[0]});
          }
          bench::report("kv", "kv/decode/n" + std::to_string(N) + "/d" + std::to_string(D) + "/gqa" + std::to_string(G) +
                                  "/" + vars[i].name,
                        wall[i], "f16_cache", f16_s, ex);
        }
      }
    }
}

}  // namespace

TERSOR_BENCH_SUITE("kv", kv_suite);
