// Quantized linear layers with low-rank adapters (tersor/quant_linear.hpp).
#include "tersor/quant_linear.hpp"

#include <cmath>
#include <string>

#include "tersor/error.hpp"

namespace tersor {

std::shared_ptr<const QuantLinear> make_quant_linear(const QuantScheme& scheme, size_t out, size_t in, const uint8_t* bytes,
                                                     size_t nbytes, const float* a, const float* b, size_t rank) {
  require(out > 0 && in > 0, ErrorCode::Shape, "quantized linear: empty weight");
  const size_t rb = scheme_row_bytes(scheme, in);
  require(nbytes == out * rb, ErrorCode::Shape,
          "quantized linear: " + std::to_string(nbytes) + " bytes, expected " + std::to_string(out) + " rows * " +
              std::to_string(rb) + " bytes (" + quant_scheme_name(scheme) + ", " + std::to_string(in) + " columns)");
  require(rank == 0 || (a && b), ErrorCode::Range, "quantized linear: an adapter of rank > 0 needs A and B");
  auto q = std::make_shared<QuantLinear>();
  q->scheme = scheme;
  q->out = out;
  q->in = in;
  q->bytes.assign(bytes, bytes + nbytes);
  q->rank = rank;
  if (rank) {
    q->a.assign(a, a + rank * in);
    q->b.assign(b, b + out * rank);
    for (float v : q->a) require(std::isfinite(v), ErrorCode::Range, "quantized linear: non-finite value in adapter A");
    for (float v : q->b) require(std::isfinite(v), ErrorCode::Range, "quantized linear: non-finite value in adapter B");
  }
  return q;
}

void quant_linear_apply(const QuantLinear& q, const float* x, size_t rows, const float* bias, float* y, size_t ldy,
                        bool accumulate) {
  if (rows == 0) return;
  std::vector<float> t(rows * q.out);
  quant_matmul(q.scheme, q.bytes.data(), q.out, q.in, x, rows, t.data(), /*f32_activations=*/true);
  std::vector<float> xa;
  if (q.rank) {  // xa = x A^T  [rows, rank]
    xa.assign(rows * q.rank, 0.0f);
    for (size_t r = 0; r < rows; ++r)
      for (size_t k = 0; k < q.rank; ++k) {
        const float* ar = &q.a[k * q.in];
        const float* xr = x + r * q.in;
        double s = 0;
        for (size_t i = 0; i < q.in; ++i) s += static_cast<double>(ar[i]) * xr[i];
        xa[r * q.rank + k] = static_cast<float>(s);
      }
  }
  for (size_t r = 0; r < rows; ++r) {
    float* yr = y + r * ldy;
    for (size_t o = 0; o < q.out; ++o) {
      float v = t[r * q.out + o];
      if (bias) v += bias[o];
      if (q.rank) {
        float s = 0;
        for (size_t k = 0; k < q.rank; ++k) s += xa[r * q.rank + k] * q.b[o * q.rank + k];
        v += s;
      }
      yr[o] = accumulate ? yr[o] + v : v;
    }
  }
}

}  // namespace tersor
