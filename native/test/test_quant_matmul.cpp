// Tests for the eight-row quantized GEMV kernels of native/quant/matmul.cpp (Q4_0, Q4_K, Q6_K at batch 1;
// NF4 and INT4 at every batch): their results against two independent computations,
//  * the per-row kernels, which Q4_0 / Q4_K / Q6_K use at batch > 1 with the same Q8_0 activations
//    (each activation row is quantized on its own, so a batch of two copies of x sees the same codes):
//    the two may differ only by f32 summation order;
//  * the f64 reference product with the dequantized weights and the Q8_0-rounded activations, on
//    row counts below eight and around multiples of eight (the zero-padded tail);
//  * for NF4, INT8 and Q5_K, the AVX2 kernel against the AVX-512 VNNI one where the CPU has it (exact
//    integer sums on both sides: identical results); every kernel under both settings against the
//    reference (Q8_0, Q6_K and FP8 have AVX-512 variants too).
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "tersor/quant_formats.hpp"

using namespace tersor;

namespace {

std::vector<float> normal(size_t n, uint32_t seed, float scale) {
  std::mt19937 g(seed);
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> x(n);
  for (float& v : x) v = nd(g);
  return x;
}

/// x rounded through Q8_0, as the kernels see it.
std::vector<float> q8_rounded(const std::vector<float>& x, size_t batch, size_t cols) {
  const QuantScheme q8 = parse_quant_scheme("q8_0");
  std::vector<uint8_t> t(scheme_row_bytes(q8, cols));
  std::vector<float> xr(x.size());
  for (size_t b = 0; b < batch; ++b) {
    quantize_row(q8, x.data() + b * cols, t.data(), cols);
    dequantize_row(q8, t.data(), xr.data() + b * cols, cols);
  }
  return xr;
}

/// sum_k |w_rk x_k| of the dequantized weights (the scale of f32 summation error).
double magnitude(const std::vector<float>& deq, const std::vector<float>& x, size_t r, size_t cols) {
  double m = 0;
  for (size_t k = 0; k < cols; ++k) m += std::fabs(deq[r * cols + k] * x[k]);
  return m;
}

}  // namespace

TEST_CASE("quant matmul eight-row kernels agree with the per-row kernels") {
  // 21 rows: two full groups of eight in the first 16-row chunk, then a tail of five.
  const size_t rows = 21, cols = 1024;
  const std::vector<float> w = normal(rows * cols, 5, 0.05f);
  const std::vector<float> x = normal(cols, 6, 1.0f);
  std::vector<float> x2(2 * cols);
  std::memcpy(x2.data(), x.data(), cols * sizeof(float));
  std::memcpy(x2.data() + cols, x.data(), cols * sizeof(float));
  const std::vector<float> xr = q8_rounded(x, 1, cols);
  for (const char* name : {"q8_0", "q4_0", "q4_k", "q6_k"}) {
    CAPTURE(std::string(name));
    const QuantScheme s = parse_quant_scheme(name);
    std::vector<uint8_t> q(rows * scheme_row_bytes(s, cols));
    quantize_matrix(s, w.data(), rows, cols, q.data());
    std::vector<float> deq(rows * cols), y1(rows), y2(2 * rows);
    dequantize_matrix(s, q.data(), rows, cols, deq.data());
    quant_matmul(s, q.data(), rows, cols, x.data(), 1, y1.data());
    quant_matmul(s, q.data(), rows, cols, x2.data(), 2, y2.data());
    for (size_t r = 0; r < rows; ++r) {
      const double tol = 2.0 * cols * 5.96e-8 * magnitude(deq, xr, r, cols) + 1e-30;
      CHECK(std::fabs(y1[r] - y2[r]) <= tol);
      CHECK(y2[r] == y2[rows + r]);
    }
  }
}

TEST_CASE("quant matmul eight-row kernels on short and ragged row counts") {
  // Fewer rows than one group (1, 3, 7), exactly one (8), one more (9), and 16 + 7 across two chunks;
  // batch 1 and 3 (NF4 / INT4 run the eight-row kernel per activation row).
  const size_t cols = 512;
  for (bool vnni : {true, false}) {
    quant_matmul_set_vnni(vnni);
    for (size_t rows : {size_t{1}, size_t{3}, size_t{7}, size_t{8}, size_t{9}, size_t{23}})
      for (size_t batch : {size_t{1}, size_t{3}})
        for (const char* name : {"q8_0", "q4_0", "q4_k", "q5_k", "q6_k", "mxfp4", "nf4", "nf4-g128", "int4-g32", "int4-g128-asym", "int4",
                                 "int8", "int8-g32-asym", "fp8", "fp8_e5m2-g64"}) {
          CAPTURE(std::string(name));
          CAPTURE(rows);
          CAPTURE(batch);
          const QuantScheme s = parse_quant_scheme(name);
          const std::vector<float> w = normal(rows * cols, 10 + static_cast<uint32_t>(rows), 0.05f);
          const std::vector<float> x = normal(batch * cols, 20 + static_cast<uint32_t>(batch), 1.0f);
          // FP8 keeps the activations in f32 (its values are not integers)
          const bool fp8 = s.format == QuantFormat::FP8_E4M3 || s.format == QuantFormat::FP8_E5M2;
          const std::vector<float> xr = fp8 ? x : q8_rounded(x, batch, cols);
          std::vector<uint8_t> q(rows * scheme_row_bytes(s, cols));
          quantize_matrix(s, w.data(), rows, cols, q.data());
          std::vector<float> deq(rows * cols), y(batch * rows), yr(batch * rows);
          dequantize_matrix(s, q.data(), rows, cols, deq.data());
          quant_matmul(s, q.data(), rows, cols, x.data(), batch, y.data());
          quant_ref::quant_matmul(s, q.data(), rows, cols, xr.data(), batch, yr.data());
          const bool nf4 = s.format == QuantFormat::NF4;
          const size_t rb = scheme_row_bytes(s, cols);
          for (size_t b = 0; b < batch; ++b) {
            const std::vector<float> xb(xr.begin() + static_cast<std::ptrdiff_t>(b * cols),
                                        xr.begin() + static_cast<std::ptrdiff_t>((b + 1) * cols));
            for (size_t r = 0; r < rows; ++r) {
              double table = 0;  // NF4: the 13-bit fixed-point table, |error| <= 2^-13 absmax per weight
              if (nf4)
                for (size_t k = 0; k < cols; ++k) {
                  float absmax;
                  std::memcpy(&absmax, q.data() + r * rb + (k / s.group) * (4 + s.group / 2), 4);
                  table += std::fabs(absmax * xb[k]) / 8192.0;
                }
              const double tol = 2.0 * cols * 5.96e-8 * magnitude(deq, xb, r, cols) + table + 1e-30;
              CHECK(std::fabs(y[b * rows + r] - yr[b * rows + r]) <= tol);
            }
          }
        }
  }
  quant_matmul_set_vnni(true);
}

TEST_CASE("quant matmul vnni and avx2 kernels give identical results") {
  if (!quant_matmul_vnni_active()) {
    MESSAGE("this CPU has no AVX-512 VNNI: only the AVX2 kernel exists here");
    return;
  }
  const size_t rows = 37, cols = 1024;
  const std::vector<float> w = normal(rows * cols, 41, 0.05f), x = normal(2 * cols, 42, 1.0f);
  // batch 1: the eight-row kernels of every format; batch 2: the same for NF4 / INT8 / Q5_K
  for (size_t batch : {size_t{1}, size_t{2}}) {
    for (const char* name : {"nf4", "nf4-g32", "nf4-g256", "int8", "int8-g64-asym", "q5_k", "q8_0", "q6_k"}) {
      CAPTURE(std::string(name));
      CAPTURE(batch);
      const QuantScheme s = parse_quant_scheme(name);
      std::vector<uint8_t> q(rows * scheme_row_bytes(s, cols));
      quantize_matrix(s, w.data(), rows, cols, q.data());
      std::vector<float> a(batch * rows), b(batch * rows);
      quant_matmul(s, q.data(), rows, cols, x.data(), batch, a.data());
      quant_matmul_set_vnni(false);
      CHECK_FALSE(quant_matmul_vnni_active());
      quant_matmul(s, q.data(), rows, cols, x.data(), batch, b.data());
      quant_matmul_set_vnni(true);
      CHECK(a == b);
    }
  }
}

TEST_CASE("quant matmul fp8 kernels on rows that are not a multiple of the vector width") {
  // 200 = 6 x 32 + 8 (the AVX-512 kernel's scalar tail) = 12 x 16 + 8 (the AVX2 kernel's); 6 rows:
  // one group of four and two single rows
  const size_t rows = 6, cols = 200;
  for (bool vnni : {true, false}) {
    quant_matmul_set_vnni(vnni);
    for (const char* name : {"fp8", "fp8_e5m2"}) {
      CAPTURE(std::string(name));
      CAPTURE(vnni);
      const QuantScheme s = parse_quant_scheme(name);
      const std::vector<float> w = normal(rows * cols, 51, 0.05f), x = normal(cols, 52, 1.0f);
      std::vector<uint8_t> q(rows * scheme_row_bytes(s, cols));
      quantize_matrix(s, w.data(), rows, cols, q.data());
      std::vector<float> deq(rows * cols), y(rows), yr(rows);
      dequantize_matrix(s, q.data(), rows, cols, deq.data());
      quant_matmul(s, q.data(), rows, cols, x.data(), 1, y.data());
      quant_ref::quant_matmul(s, q.data(), rows, cols, x.data(), 1, yr.data());
      for (size_t r = 0; r < rows; ++r) CHECK(std::fabs(y[r] - yr[r]) <= 2.0 * cols * 5.96e-8 * magnitude(deq, x, r, cols) + 1e-30);
    }
  }
  quant_matmul_set_vnni(true);
}
