// Reference attention: the definition in attention.hpp evaluated directly, one (query, head) row at a
// time, with the full score row over all n_kv keys, std::exp, and every sum in double. It is the
// oracle flash_attention is tested against, and the benchmark's baseline.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "tersor/attention.hpp"
#include "tersor/parallel.hpp"

namespace tersor {

void naive_attention(const float* q, const float* k, const float* v, float* out, const AttentionParams& in) {
  const AttentionParams p = attention_resolve(in);
  const size_t rows = p.n_q * p.heads;
  if (rows == 0) return;
  const size_t d = p.head_dim, R = p.heads / p.kv_heads;
  const double scale = static_cast<double>(p.scale);
  const double ninf = -std::numeric_limits<double>::infinity();
  const int nt = static_cast<int>(std::max<size_t>(1, std::min<size_t>(static_cast<size_t>(num_threads()), rows)));
  const size_t per_thread = p.n_kv + d;  // score row + output accumulator
  detail::AttentionScratch scratch(static_cast<size_t>(nt) * per_thread * sizeof(double));
  double* base = scratch.as<double>();

  const std::ptrdiff_t n = static_cast<std::ptrdiff_t>(rows);
#pragma omp parallel num_threads(nt)
  {
    double* score = base + static_cast<size_t>(omp_get_thread_num()) * per_thread;
    double* acc = score + p.n_kv;
#pragma omp for schedule(dynamic, 16)
    for (std::ptrdiff_t idx = 0; idx < n; ++idx) {
      const size_t t = static_cast<size_t>(idx) / p.heads, h = static_cast<size_t>(idx) % p.heads, g = h / R;
      const size_t pos = p.q_start + t;
      const float* qr = q + t * p.q_row_stride + h * p.q_head_stride;
      float* dst = out + t * p.o_row_stride + h * p.o_head_stride;
      double mx = ninf;
      for (size_t j = 0; j < p.n_kv; ++j) {
        const bool visible = (!p.causal || j <= pos) && (p.window == 0 || j + p.window > pos || j < p.sinks);
        if (!visible) {
          score[j] = ninf;
          continue;
        }
        const float* kr = k + j * p.k_row_stride + g * p.k_head_stride;
        double s = 0;
        for (size_t c = 0; c < d; ++c) s += static_cast<double>(qr[c]) * static_cast<double>(kr[c]);
        score[j] = s * scale;
        mx = std::max(mx, score[j]);
      }
      if (mx == ninf) {  // no visible key
        std::fill(dst, dst + d, 0.f);
        continue;
      }
      std::fill(acc, acc + d, 0.0);
      double sum = 0;
      for (size_t j = 0; j < p.n_kv; ++j) {
        if (score[j] == ninf) continue;
        const double w = std::exp(score[j] - mx);
        sum += w;
        const float* vr = v + j * p.v_row_stride + g * p.v_head_stride;
        for (size_t c = 0; c < d; ++c) acc[c] += w * static_cast<double>(vr[c]);
      }
      for (size_t c = 0; c < d; ++c) dst[c] = static_cast<float>(acc[c] / sum);
    }
  }
}

}  // namespace tersor
