// Tests for the quantization formats (native/quant/formats.cpp) and the quantized matmul
// (native/quant/matmul.cpp).
//
// References used here, all independent of the code under test:
//  * ggml's own check (tests/test-quantize-fns.cpp): x_i = 0.1 + 2 cos(i + offset), 4096 values,
//    error = sqrt(sum (x - x^)^2) / n, with ggml's thresholds and the errors ggml's reference
//    quantizers reach (issue 5); ours must not exceed them (reported to 6 decimals, so we allow
//    half a unit of the last printed digit);
//  * hand-computed bytes for inputs whose scales are exact in f16;
//  * an element-wise decoder written here from the ggml block layouts (ggml-common.h), for the
//    K-quants, compared with our dequantizer on every element;
//  * every FP8 code decoded from the OCP definition and re-encoded.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "tersor/error.hpp"
#include "tersor/half.hpp"
#include "tersor/quant_formats.hpp"

using namespace tersor;

namespace {

std::vector<float> cos_data(size_t n, float offset) {
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i) x[i] = 0.1f + 2.0f * std::cos(static_cast<float>(i) + offset);
  return x;
}

std::vector<float> gauss(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 g(seed);
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> x(n);
  for (float& v : x) v = nd(g);
  return x;
}

std::vector<uint8_t> quant(const std::string& name, const std::vector<float>& x, const float* imp = nullptr) {
  QuantScheme s = parse_quant_scheme(name);
  std::vector<uint8_t> q(scheme_row_bytes(s, x.size()));
  quantize_row(s, x.data(), q.data(), x.size(), imp);
  return q;
}

std::vector<float> dequant(const std::string& name, const std::vector<uint8_t>& q, size_t n) {
  std::vector<float> y(n);
  dequantize_row(parse_quant_scheme(name), q.data(), y.data(), n);
  return y;
}

float f16(const uint8_t* p) { uint16_t h; std::memcpy(&h, p, 2); return f16_to_f32_scalar(h); }
void put16(uint8_t* p, float v) { uint16_t h = f32_to_f16_scalar(v); std::memcpy(p, &h, 2); }

// Element i of a K-quant super-block, straight from the ggml block layouts.
float kquant_element(const std::string& fmt, const uint8_t* b, int i) {
  if (fmt == "q2_k") {  // scales[16] qs[64] d dmin
    const int h = i / 128, r = i % 128, shift = 2 * (r / 32), l = r % 32;
    const int q = (b[16 + 32 * h + l] >> shift) & 3;
    const int sc = b[i / 16];
    return (f16(b + 80) * (sc & 15)) * q - f16(b + 82) * (sc >> 4);
  }
  if (fmt == "q3_k") {  // hmask[32] qs[64] scales[12] d
    const int h = i / 128, r = i % 128, shift = 2 * (r / 32), l = r % 32;
    const int q = (b[32 + 32 * h + l] >> shift) & 3;
    const int hb = (b[i % 32] >> (i / 32)) & 1;
    const int j = i / 16;
    const uint8_t* s = b + 96;
    const int lo = j < 8 ? (s[j] & 15) : (s[j - 8] >> 4), hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
    return (f16(b + 108) * ((lo | (hi << 4)) - 32)) * (q - (hb ? 0 : 4));
  }
  if (fmt == "q4_k" || fmt == "q5_k") {  // d dmin scales[12] (qh[32]) qs[128]
    const bool five = fmt == "q5_k";
    const int c = i / 64, hi = (i % 64) >= 32, l = i % 32, j = i / 32;
    const uint8_t byte = b[(five ? 48 : 16) + 32 * c + l];
    int q = hi ? byte >> 4 : byte & 15;
    if (five && ((b[16 + l] >> (2 * c + hi)) & 1)) q += 16;
    const uint8_t* s = b + 4;
    int sc, m;
    if (j < 4) { sc = s[j] & 63; m = s[j + 4] & 63; }
    else { sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4); m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4); }
    return (f16(b) * sc) * q - f16(b + 2) * m;
  }
  // q6_k: ql[128] qh[64] scales[16] d
  const int h = i / 128, r = i % 128, t = r / 32, l = r % 32;
  const uint8_t lb = b[64 * h + 32 * (t & 1) + l];
  const int lo = t >= 2 ? lb >> 4 : lb & 15;
  const int hi = (b[128 + 32 * h + l] >> (2 * t)) & 3;
  return (f16(b + 208) * static_cast<int8_t>(b[192 + i / 16])) * ((lo | (hi << 4)) - 32);
}

const char* kAll[] = {"q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "mxfp4",
                      "nvfp4", "nf4", "nf4-dq", "nf4-g128", "fp8", "fp8_e5m2", "fp8-g128", "int4-g128",
                      "int4-g128-asym", "int3-g64", "int2-g32-asym", "int8", "int5-asym", "int4-pt", "kmeans4",
                      "kmeans3"};

}  // namespace

TEST_CASE("quant formats ggml cosine check") {
  struct Ref { const char* name; double threshold, ggml; };
  const Ref refs[] = {{"q4_0", 0.002, 0.001121}, {"q4_1", 0.002, 0.001144}, {"q5_0", 0.002, 0.000591},
                      {"q5_1", 0.002, 0.000556}, {"q8_0", 0.002, 0.000074}, {"q2_k", 0.0075, 0.004672},
                      {"q3_k", 0.0040, 0.002510}, {"q4_k", 0.002, 0.000982}, {"q5_k", 0.002, 0.000531},
                      {"q6_k", 0.002, 0.000261}, {"mxfp4", 0.0030, 0.001881}, {"nvfp4", 0.0030, 0.002337}};
  const size_t n = 4096;
  const std::vector<float> x = cos_data(n, 0.0f);
  for (const Ref& r : refs) {
    CAPTURE(std::string(r.name));
    const std::vector<float> y = dequant(r.name, quant(r.name, x), n);
    double se = 0;
    for (size_t i = 0; i < n; ++i) se += (static_cast<double>(x[i]) - y[i]) * (static_cast<double>(x[i]) - y[i]);
    const double err = std::sqrt(se) / n;
    CHECK(err <= r.threshold);
    CHECK(err <= r.ggml + 0.5e-6);
  }
}

TEST_CASE("quant formats hand computed bytes for the ggml 32 blocks") {
  // Q8_0: amax 127 -> d = 1 (f16 0x3C00), codes = x.
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j * 8 - 127 + (j == 0 ? 0 : 0));
  x[0] = -127;
  std::vector<uint8_t> q = quant("q8_0", x);
  REQUIRE(q.size() == 34);
  CHECK(q[0] == 0x00); CHECK(q[1] == 0x3C);
  for (int j = 0; j < 32; ++j) CHECK(static_cast<int8_t>(q[2 + j]) == static_cast<int>(x[j]));
  // Q4_0: the largest |x| is -8 -> d = max / -8 = 1, code = x + 8.
  for (int j = 0; j < 16; ++j) { x[j] = static_cast<float>(j - 8); x[j + 16] = static_cast<float>(7 - j); }
  q = quant("q4_0", x);
  REQUIRE(q.size() == 18);
  CHECK(q[0] == 0x00); CHECK(q[1] == 0x3C);
  for (int j = 0; j < 16; ++j) CHECK(q[2 + j] == static_cast<uint8_t>(j | ((15 - j) << 4)));
  // Q4_1: min 1, max 8.5 -> d = 0.5 (0x3800), m = 1 (0x3C00), code = 2 (x - 1).
  for (int j = 0; j < 32; ++j) x[j] = 0.5f * (j % 16) + 1.0f;
  q = quant("q4_1", x);
  REQUIRE(q.size() == 20);
  CHECK(q[0] == 0x00); CHECK(q[1] == 0x38); CHECK(q[2] == 0x00); CHECK(q[3] == 0x3C);
  for (int j = 0; j < 16; ++j) CHECK(q[4 + j] == static_cast<uint8_t>(j * 17));
  // Q5_0: x = j - 16 -> d = -16 / -16 = 1, code = j; the 5th bits (codes 16..31) are qh bits 16..31.
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j - 16);
  q = quant("q5_0", x);
  REQUIRE(q.size() == 22);
  CHECK(q[0] == 0x00); CHECK(q[1] == 0x3C);
  CHECK(q[2] == 0x00); CHECK(q[3] == 0x00); CHECK(q[4] == 0xFF); CHECK(q[5] == 0xFF);
  for (int j = 0; j < 16; ++j) CHECK(q[6 + j] == static_cast<uint8_t>(j * 17));
  // Q5_1: x = j/4 - 2 -> d = 0.25 (0x3400), m = -2 (0xC000), code = j.
  for (int j = 0; j < 32; ++j) x[j] = 0.25f * j - 2.0f;
  q = quant("q5_1", x);
  REQUIRE(q.size() == 24);
  CHECK(q[0] == 0x00); CHECK(q[1] == 0x34); CHECK(q[2] == 0x00); CHECK(q[3] == 0xC0);
  CHECK(q[4] == 0x00); CHECK(q[5] == 0x00); CHECK(q[6] == 0xFF); CHECK(q[7] == 0xFF);
  for (int j = 0; j < 16; ++j) CHECK(q[8 + j] == static_cast<uint8_t>(j * 17));
  // MXFP4: amax 6 -> e = floor(log2 6) - 2 + 127 = 127, d = 0.5 on the doubled E2M1 values: codes
  // are the E2M1 codes of x (sign bit 8).
  const float e2m1[8] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};
  for (int j = 0; j < 32; ++j) x[j] = 0;
  for (int k = 0; k < 8; ++k) x[k] = e2m1[k];
  for (int k = 0; k < 7; ++k) x[8 + k] = -e2m1[k + 1];
  q = quant("mxfp4", x);
  REQUIRE(q.size() == 17);
  CHECK(q[0] == 127);
  for (int k = 0; k < 8; ++k) CHECK(q[1 + k] == k);
  for (int k = 0; k < 7; ++k) CHECK(q[9 + k] == 9 + k);
  CHECK(q[16] == 0);
  // NVFP4: per 16 values amax 6 -> scale ue4m3(6 / 6 = 1) = exponent 7 = 0x38.
  std::vector<float> x64(64, 0.0f);
  for (int k = 0; k < 8; ++k) x64[k] = e2m1[k];
  x64[8] = -6.0f;
  q = quant("nvfp4", x64);
  REQUIRE(q.size() == 36);
  CHECK(q[0] == 0x38);
  CHECK(q[1] == 0); CHECK(q[2] == 0); CHECK(q[3] == 0);  // all-zero sub-blocks
  CHECK(q[4] == (0 | (15 << 4)));                        // x[0] = 0 low, x[8] = -6 (code 15) high
  for (int k = 1; k < 8; ++k) CHECK(q[4 + k] == k);
}

TEST_CASE("quant formats hand built K-quant blocks decode per spec") {
  // Q4_K with d = 1, dmin = 0.5, 6-bit scales and mins that use the high bits for blocks 4..7.
  const int sc[8] = {1, 2, 3, 4, 17, 33, 50, 63}, mn[8] = {0, 1, 2, 3, 20, 40, 5, 63};
  std::vector<uint8_t> b(144, 0);
  put16(b.data(), 1.0f);
  put16(b.data() + 2, 0.5f);
  uint8_t* s = b.data() + 4;
  for (int j = 0; j < 4; ++j) {
    s[j] = static_cast<uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
    s[j + 4] = static_cast<uint8_t>(mn[j] | ((mn[j + 4] >> 4) << 6));
    s[j + 8] = static_cast<uint8_t>((sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4));
  }
  for (int i = 0; i < 128; ++i) b[16 + i] = 0x21;  // low nibble 1 (even blocks), high 2 (odd blocks)
  const std::vector<float> y = dequant("q4_k", b, 256);
  for (int i = 0; i < 256; ++i) {
    const int j = i / 32, code = (j % 2 == 0) ? 1 : 2;
    CHECK(y[i] == static_cast<float>(1.0 * sc[j] * code - 0.5 * mn[j]));
  }
  // quantizing those values packs the same 6-bit scales back (they are exactly representable)
  const std::vector<uint8_t> again = quant("q4_k", y);
  const std::vector<float> y2 = dequant("q4_k", again, 256);
  double se = 0, sx = 0;
  for (int i = 0; i < 256; ++i) { se += (y[i] - y2[i]) * (y[i] - y2[i]); sx += y[i] * y[i]; }
  CHECK(std::sqrt(se / sx) < 0.02);
}

TEST_CASE("quant formats K-quant dequantizer matches an element-wise layout decoder") {
  for (const char* fmt : {"q2_k", "q3_k", "q4_k", "q5_k", "q6_k"}) {
    CAPTURE(std::string(fmt));
    const std::vector<float> x = gauss(1024, 7, 0.3f);
    const std::vector<uint8_t> q = quant(fmt, x);
    const std::vector<float> y = dequant(fmt, q, x.size());
    const size_t bb = scheme_block_bytes(parse_quant_scheme(fmt), x.size());
    int bad = 0;
    for (int i = 0; i < 1024; ++i)
      if (y[i] != kquant_element(fmt, q.data() + (i / 256) * bb, i % 256)) ++bad;
    CHECK(bad == 0);
  }
}

TEST_CASE("quant formats avx2 and scalar reference give the same bytes") {
  std::vector<float> x = gauss(4096, 3);
  std::vector<float> xs = gauss(4096, 4, 0.02f);  // typical weight scale
  for (int i = 0; i < 40; ++i) xs[i * 97] = 0.0f;
  std::vector<float> z(1024, 0.0f);
  const std::vector<float> imp = [] {
    std::vector<float> v = gauss(4096, 5);
    for (float& a : v) a = a * a + 0.01f;
    return v;
  }();
  for (const char* name : kAll) {
    CAPTURE(std::string(name));
    const QuantScheme s = parse_quant_scheme(name);
    for (const std::vector<float>* v : {&x, &xs, &z}) {
      std::vector<uint8_t> a(scheme_row_bytes(s, v->size())), b(a.size());
      quantize_row(s, v->data(), a.data(), v->size());
      quant_ref::quantize_row(s, v->data(), b.data(), v->size());
      CHECK(a == b);
    }
    std::vector<uint8_t> a(scheme_row_bytes(s, x.size())), b(a.size());
    quantize_row(s, x.data(), a.data(), x.size(), imp.data());
    quant_ref::quantize_row(s, x.data(), b.data(), x.size(), imp.data());
    CHECK(a == b);
  }
}

TEST_CASE("quant formats lane-per-sub-block searches of the K-quants on empty tied tiny and one-signed sub-blocks") {
  // The AVX2 searches of Q6_K, Q2_K and Q3_K (sub-blocks of 16) and Q4_K / Q5_K (sub-blocks of 32) run 8
  // sub-blocks in the lanes of one vector: every lane must take the scalar reference's branch (empty
  // sub-block, +a / -a tie, extreme below 1e-30, one sign only, flat, wide range).
  const size_t n = 4096;
  std::vector<float> imp = gauss(n, 22);
  for (float& v : imp) v = v * v + 0.01f;
  for (const auto& [name, sub] : {std::pair{"q6_k", 16}, std::pair{"q2_k", 16}, std::pair{"q3_k", 16},
                                  std::pair{"q4_k", 32}, std::pair{"q5_k", 32}, std::pair{"q4_k", 16},
                                  std::pair{"q5_k", 16}}) {
    CAPTURE(std::string(name));
    CAPTURE(sub);
    std::vector<float> x = gauss(n, 21);
    for (size_t j = 0; j < n / sub; ++j) {
      float* s = &x[sub * j];
      // every case at every lane position; the wide range (which sets the whole super-block's scale)
      // only in every third super-block
      const size_t per = 256 / sub;
      int c = static_cast<int>((j + j / per) % 11);
      if (c == 6 && (j / per) % 3 != 0) c = 10;
      switch (c) {
        case 0: for (int i = 0; i < sub; ++i) s[i] = 0.0f; break;                        // empty
        case 1: s[3] = 4.0f; s[9] = -4.0f; break;                                       // tie: + wins
        case 2: for (int i = 0; i < sub; ++i) s[i] *= 1e-31f; break;                    // below 1e-30
        case 3: for (int i = 0; i < sub; ++i) s[i] = -std::fabs(s[i]); break;          // negative only
        case 4: for (int i = 0; i < sub; ++i) s[i] = i == 7 ? 0.5f : 0.0f; break;       // one value
        case 5: for (int i = 0; i < sub; ++i) s[i] = 1.25f; break;                      // constant > 0
        case 6: for (int i = 0; i < sub; ++i) s[i] *= 1e3f; break;                      // wide range
        case 7: for (int i = 0; i < sub; ++i) s[i] = std::fabs(s[i]) + 0.5f; break;    // positive only
        case 8: for (int i = 0; i < sub; ++i) s[i] = -0.75f; break;                     // flat < 0
        default: break;                                                                 // N(0,1)
      }
    }
    const QuantScheme s = parse_quant_scheme(name);
    for (const float* w : {static_cast<const float*>(nullptr), static_cast<const float*>(imp.data())}) {
      CAPTURE(w != nullptr);
      std::vector<uint8_t> a(scheme_row_bytes(s, n)), b(a.size());
      quantize_row(s, x.data(), a.data(), n, w);
      quant_ref::quantize_row(s, x.data(), b.data(), n, w);
      CHECK(a == b);
      if (std::string(name) == "q6_k") {
        const std::vector<float> y = dequant(name, a, n);
        for (size_t i = 0; i < n; ++i)
          if (x[i] == 0.0f) CHECK(y[i] == 0.0f);  // zero is a code of every Q6_K sub-block
      }
    }
  }
  // a Q6_K super-block whose values are all below 1e-30 quantizes to zeros (d = 0)
  std::vector<float> tiny(256, 1e-31f);
  const std::vector<uint8_t> q = quant("q6_k", tiny);
  CHECK(f16(q.data() + 208) == 0.0f);
  for (float v : dequant("q6_k", q, 256)) CHECK(v == 0.0f);
}

TEST_CASE("quant formats round trip error on gaussian weights") {
  // relative RMSE bounds of issue 5 (llama.cpp's figures on 4096 x 4096 N(0,1)); 512 x 4096 here.
  struct Ref { const char* name; double rrmse; };
  const Ref refs[] = {{"q8_0", 0.00535}, {"q6_k", 0.0177}, {"q5_k", 0.0361}, {"q4_k", 0.0713}, {"q4_0", 0.0859},
                      {"nvfp4", 0.0951}, {"mxfp4", 0.1150}, {"q3_k", 0.1509}, {"q2_k", 0.2965}};
  const size_t rows = 512, cols = 4096;
  const std::vector<float> w = gauss(rows * cols, 11);
  for (const Ref& r : refs) {
    CAPTURE(std::string(r.name));
    const QuantScheme s = parse_quant_scheme(r.name);
    std::vector<uint8_t> q(rows * scheme_row_bytes(s, cols));
    quantize_matrix(s, w.data(), rows, cols, q.data());
    std::vector<float> y(rows * cols);
    dequantize_matrix(s, q.data(), rows, cols, y.data());
    double se = 0, sx = 0;
    for (size_t i = 0; i < w.size(); ++i) { se += (w[i] - y[i]) * (w[i] - y[i]); sx += w[i] * w[i]; }
    CHECK(std::sqrt(se / sx) <= r.rrmse);
  }
}

TEST_CASE("quant formats nf4 block 64 mean absolute error") {
  const std::vector<float> w = gauss(512 * 4096, 13);
  for (const char* name : {"nf4", "nf4-dq"}) {
    CAPTURE(std::string(name));
    const std::vector<float> y = dequant(name, quant(name, w), w.size());
    double mae = 0;
    for (size_t i = 0; i < w.size(); ++i) mae += std::fabs(w[i] - y[i]);
    // double quantization adds the error of the 8-bit scales: allowed 1% more
    CHECK(mae / w.size() <= (std::string(name) == "nf4" ? 0.0728 : 0.0728 * 1.01));
  }
  // the table is QLoRA's: symmetric ends, exact zero, ascending
  const float* t = nf4_table();
  CHECK(t[0] == -1.0f); CHECK(t[15] == 1.0f); CHECK(t[7] == 0.0f);
  for (int i = 1; i < 16; ++i) CHECK(t[i] > t[i - 1]);
}

TEST_CASE("quant formats fp8 encode and decode every code") {
  // E4M3 (OCP): bias 7, S.1111.111 is NaN, no infinities, max 448.
  for (int c = 0; c < 256; ++c) {
    const uint8_t u = static_cast<uint8_t>(c);
    const int e = (c >> 3) & 15, m = c & 7;
    const float v = fp8_e4m3_decode(u);
    if (e == 15 && m == 7) { CHECK(std::isnan(v)); continue; }
    const double mag = e == 0 ? m * std::ldexp(1.0, -9) : (1 + m / 8.0) * std::ldexp(1.0, e - 7);
    CHECK(v == static_cast<float>((c & 0x80) ? -mag : mag));
    if (v != 0.0f) CHECK(fp8_e4m3_encode(v) == u);
  }
  CHECK(fp8_e4m3_decode(0x7E) == 448.0f);
  CHECK(fp8_e4m3_encode(1e9f) == 0x7E);
  CHECK(fp8_e4m3_encode(-1e9f) == 0xFE);
  CHECK(fp8_e4m3_encode(INFINITY) == 0x7E);
  CHECK(fp8_e4m3_encode(1.0625f) == 0x38);   // tie between 1.0 (0x38) and 1.125 (0x39): even
  CHECK(fp8_e4m3_encode(1.1875f) == 0x3A);   // tie between 1.125 and 1.25: even (0x3A)
  CHECK(fp8_e4m3_encode(std::ldexp(1.0f, -10)) == 0x00);  // half the smallest subnormal: ties to 0
  CHECK(std::isnan(fp8_e4m3_decode(fp8_e4m3_encode(NAN))));
  // E5M2: bias 15, IEEE-like (infinities and NaNs at exponent 31), max finite 57344; saturating.
  for (int c = 0; c < 256; ++c) {
    const uint8_t u = static_cast<uint8_t>(c);
    const int e = (c >> 2) & 31, m = c & 3;
    const float v = fp8_e5m2_decode(u);
    if (e == 31) { CHECK((m ? std::isnan(v) : std::isinf(v))); continue; }
    const double mag = e == 0 ? m * std::ldexp(1.0, -16) : (1 + m / 4.0) * std::ldexp(1.0, e - 15);
    CHECK(v == static_cast<float>((c & 0x80) ? -mag : mag));
    if (v != 0.0f) CHECK(fp8_e5m2_encode(v) == u);
  }
  CHECK(fp8_e5m2_encode(1e9f) == 0x7B);
  CHECK(fp8_e5m2_encode(INFINITY) == 0x7B);
  CHECK(fp8_e5m2_decode(0x7B) == 57344.0f);
  // E2M1
  for (int c = 0; c < 16; ++c) if (c != 8) CHECK(e2m1_encode(e2m1_decode(static_cast<uint8_t>(c))) == c);
  CHECK(e2m1_encode(2.5f) == 4);  // tie between 2 (code 4) and 3 (code 5): even code
  CHECK(e2m1_encode(100.0f) == 7);
}

TEST_CASE("quant formats scheme names sizes and errors") {
  CHECK(scheme_row_bytes(parse_quant_scheme("q4_k"), 512) == 288);
  CHECK(scheme_row_bytes(parse_quant_scheme("q6_k"), 256) == 210);
  CHECK(scheme_row_bytes(parse_quant_scheme("Q8_0"), 64) == 68);
  CHECK(scheme_row_bytes(parse_quant_scheme("int4-g128"), 256) == 2 * (2 + 64));
  CHECK(scheme_row_bytes(parse_quant_scheme("int3-g64-asym"), 128) == 2 * (3 + 24));
  CHECK(scheme_row_bytes(parse_quant_scheme("nf4"), 128) == 2 * 36);
  CHECK(scheme_row_bytes(parse_quant_scheme("kmeans2"), 100) == 8 + 25);
  CHECK(scheme_bits_per_weight(parse_quant_scheme("q4_k")) == doctest::Approx(4.5));
  CHECK(scheme_bits_per_weight(parse_quant_scheme("q8_0")) == doctest::Approx(8.5));
  CHECK(scheme_bits_per_weight(parse_quant_scheme("nf4")) == doctest::Approx(4.5));
  CHECK(scheme_bits_per_weight(parse_quant_scheme("nf4-dq"), 16384) == doctest::Approx(4.0 + 8.0 / 64 + 64.0 / 16384));
  for (const char* name : kAll) {
    const QuantScheme a = parse_quant_scheme(name), b = parse_quant_scheme(quant_scheme_name(a));
    CHECK((b.format == a.format && b.bits == a.bits && b.group == a.group && b.symmetric == a.symmetric &&
           b.double_quant == a.double_quant && b.per_tensor == a.per_tensor));
  }
  for (const char* bad : {"q4", "int9", "int4-g100", "int1", "nf4-g3", "fp16", "", "int4-g128-pt", "kmeans9"}) {
    CAPTURE(bad);
    try {
      parse_quant_scheme(bad);
      FAIL("accepted");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::Range);
      CHECK(std::string(e.what()).find("q4_k") != std::string::npos);
    }
  }
  std::vector<float> x(100, 1.0f);
  std::vector<uint8_t> out(1000);
  try {
    quantize_row(parse_quant_scheme("q4_k"), x.data(), out.data(), 100);
    FAIL("accepted a row of 100 for q4_k");
  } catch (const Error& e) { CHECK(e.code() == ErrorCode::Shape); }
  x.resize(256);
  x[17] = NAN;
  try {
    quantize_row(parse_quant_scheme("q4_k"), x.data(), out.data(), 256);
    FAIL("accepted NaN");
  } catch (const Error& e) { CHECK(e.code() == ErrorCode::Range); }
}

TEST_CASE("quant formats snap to block keeps parameters and picks the nearest code") {
  for (const char* name : kAll) {
    const QuantScheme s = parse_quant_scheme(name);
    if (s.format == QuantFormat::NF4 && s.double_quant) continue;
    if (s.per_tensor) continue;
    CAPTURE(std::string(name));
    const size_t n = 512;
    const std::vector<float> x = gauss(n, 21);
    std::vector<uint8_t> q(scheme_row_bytes(s, n));
    quantize_row(s, x.data(), q.data(), n);
    const std::vector<float> y0 = dequant(name, q, n);
    const size_t blk = scheme_block(s) ? scheme_block(s) : n, bb = scheme_block_bytes(s, n);
    std::mt19937 g(5);
    for (int t = 0; t < 40; ++t) {
      const size_t i = g() % n, b = i / blk;
      const float target = x[i] + 0.3f * std::normal_distribution<float>()(g);
      std::vector<uint8_t> q2 = q;
      const float v = snap_to_block(s, q2.data() + b * bb, i - b * blk, target);
      const std::vector<float> y = dequant(name, q2, n);
      CHECK(y[i] == v);
      for (size_t k = 0; k < n; ++k) if (k != i) REQUIRE(y[k] == y0[k]);
      // nearest: no other element value of the same block is closer to the target than v
      // (for the linear formats every code of the block is some other element's code or not,
      // so check the weaker property on the values present in the block)
      // elements that share element i's parameters: its sub-block for the K-quants and NVFP4
      size_t sub = blk;
      if (s.format == QuantFormat::Q2_K || s.format == QuantFormat::Q3_K || s.format == QuantFormat::Q6_K ||
          s.format == QuantFormat::NVFP4)
        sub = 16;
      if (s.format == QuantFormat::Q4_K || s.format == QuantFormat::Q5_K) sub = 32;
      for (size_t k = (i / sub) * sub; k < (i / sub + 1) * sub; ++k)
        if (s.format != QuantFormat::Q8_0) CHECK(std::fabs(v - target) <= std::fabs(y0[k] - target) + 1e-6f);
    }
  }
}

TEST_CASE("quant matmul matches the dequantized reference") {
  const size_t rows = 45, cols = 768;
  const std::vector<float> w = gauss(rows * cols, 31, 0.05f);
  for (size_t batch : {size_t{1}, size_t{3}, size_t{11}}) {
    const std::vector<float> x = gauss(batch * cols, 32 + static_cast<uint32_t>(batch));
    for (const char* name : {"q8_0", "q4_0", "q4_1", "q5_k", "q4_k", "q6_k", "nf4", "int4-g128", "int4-g128-asym",
                             "mxfp4", "fp8", "kmeans3", "q2_k", "int4-asym", "nf4-dq", "nf4-g128", "int8"}) {
      CAPTURE(std::string(name));
      CAPTURE(batch);
      const QuantScheme s = parse_quant_scheme(name);
      std::vector<uint8_t> q(rows * scheme_row_bytes(s, cols));
      quantize_matrix(s, w.data(), rows, cols, q.data());
      // Q8_0, Q4_0, Q4_K, Q5_K, Q6_K, MXFP4, NF4 (no double quantization) and INT4 / INT8 (32-multiple
      // groups) quantize the activations to Q8_0: the reference sees the same activations.
      std::vector<float> xr = x;
      const bool nf4_q8 = s.format == QuantFormat::NF4 && !s.double_quant;
      if (s.format == QuantFormat::Q8_0 || s.format == QuantFormat::Q4_0 || s.format == QuantFormat::Q4_K ||
          s.format == QuantFormat::Q6_K || s.format == QuantFormat::Q5_K || s.format == QuantFormat::MXFP4 || nf4_q8 ||
          (s.format == QuantFormat::INT && (s.bits == 4 || s.bits == 8))) {
        const QuantScheme q8 = parse_quant_scheme("q8_0");
        std::vector<uint8_t> t(scheme_row_bytes(q8, cols));
        for (size_t b = 0; b < batch; ++b) {
          quantize_row(q8, x.data() + b * cols, t.data(), cols);
          dequantize_row(q8, t.data(), xr.data() + b * cols, cols);
        }
      }
      std::vector<float> y(batch * rows), yr(batch * rows), deq(rows * cols);
      quant_matmul(s, q.data(), rows, cols, x.data(), batch, y.data());
      quant_ref::quant_matmul(s, q.data(), rows, cols, xr.data(), batch, yr.data());
      dequantize_matrix(s, q.data(), rows, cols, deq.data());
      const size_t rb = scheme_row_bytes(s, cols);
      for (size_t b = 0; b < batch; ++b)
        for (size_t r = 0; r < rows; ++r) {
          double mag = 0, table = 0;
          for (size_t k = 0; k < cols; ++k) mag += std::fabs(deq[r * cols + k] * xr[b * cols + k]);
          if (nf4_q8)  // the NF4 table in 13-bit fixed point: |error| <= 2^-13 absmax per weight
            for (size_t k = 0; k < cols; ++k) {
              float absmax;
              std::memcpy(&absmax, q.data() + r * rb + (k / s.group) * (4 + s.group / 2), 4);
              table += std::fabs(absmax * xr[b * cols + k]) / 8192.0;
            }
          // f32 accumulation over cols terms: |error| <= ~cols * 2^-24 * sum |w x|
          CHECK(std::fabs(y[b * rows + r] - yr[b * rows + r]) <= 2.0 * cols * 5.96e-8 * mag + table + 1e-30);
        }
    }
  }
}

TEST_CASE("quant formats int clip search avx2 path matches scalar on ragged groups") {
  // Per-channel INT rows of 100 and 300 elements: groups that are not a multiple of the 8 AVX2 lanes,
  // and one longer than the 256-element f32 flush of the error sum; per tensor on a 3 x 300 matrix.
  for (size_t n : {size_t{100}, size_t{300}}) {
    std::vector<float> x = gauss(n, 40 + static_cast<uint32_t>(n), 0.03f);
    std::vector<float> imp = gauss(n, 41);
    for (float& a : imp) a = a * a + 0.01f;
    for (const char* name : {"int4", "int3-asym", "int8-asym", "int5"}) {
      CAPTURE(std::string(name));
      CAPTURE(n);
      const QuantScheme s = parse_quant_scheme(name);
      for (const float* im : {static_cast<const float*>(nullptr), static_cast<const float*>(imp.data())}) {
        std::vector<uint8_t> a(scheme_row_bytes(s, n)), b(a.size());
        quantize_row(s, x.data(), a.data(), n, im);
        quant_ref::quantize_row(s, x.data(), b.data(), n, im);
        CHECK(a == b);
      }
    }
  }
  const QuantScheme pt = parse_quant_scheme("int4-pt");
  std::vector<float> m = gauss(3 * 300, 44);
  std::vector<uint8_t> q(3 * scheme_row_bytes(pt, 300));
  quantize_matrix(pt, m.data(), 3, 300, q.data());
  std::vector<float> y(m.size());
  dequantize_matrix(pt, q.data(), 3, 300, y.data());
  double se = 0, sx = 0;
  for (size_t i = 0; i < m.size(); ++i) { se += (m[i] - y[i]) * (m[i] - y[i]); sx += m[i] * m[i]; }
  CHECK(std::sqrt(se / sx) < 0.15);  // 4-bit symmetric on N(0,1): ~0.1
}

TEST_CASE("quant matmul register-blocked kernels on ragged shapes and every batch count") {
  // INT4 per channel with cols = 784 = 49 * 16: code bytes end in a half 16-byte step; Q8_0 / Q4_0 with
  // cols = 800: an odd number (25) of 32-blocks for the paired accumulators. Batch counts 1..9 reach
  // every compile-time batch kernel (and 9 = 8 + 1); 37 rows split unevenly.
  const size_t rows = 37;
  for (const char* name : {"int4", "int4-asym", "q8_0", "q4_0"}) {
    const QuantScheme s = parse_quant_scheme(name);
    const size_t cols = s.format == QuantFormat::INT ? 784 : 800;
    const std::vector<float> w = gauss(rows * cols, 51, 0.05f);
    std::vector<uint8_t> q(rows * scheme_row_bytes(s, cols));
    quantize_matrix(s, w.data(), rows, cols, q.data());
    std::vector<float> deq(rows * cols);
    dequantize_matrix(s, q.data(), rows, cols, deq.data());
    const bool q8 = s.format == QuantFormat::Q8_0 || s.format == QuantFormat::Q4_0;
    for (size_t batch = 1; batch <= 9; ++batch) {
      CAPTURE(std::string(name));
      CAPTURE(batch);
      const std::vector<float> x = gauss(batch * cols, 60 + static_cast<uint32_t>(batch));
      std::vector<float> xr = x;
      if (q8) {
        const QuantScheme q8s = parse_quant_scheme("q8_0");
        std::vector<uint8_t> t(scheme_row_bytes(q8s, cols));
        for (size_t b = 0; b < batch; ++b) {
          quantize_row(q8s, x.data() + b * cols, t.data(), cols);
          dequantize_row(q8s, t.data(), xr.data() + b * cols, cols);
        }
      }
      std::vector<float> y(batch * rows), yr(batch * rows);
      quant_matmul(s, q.data(), rows, cols, x.data(), batch, y.data());
      quant_ref::quant_matmul(s, q.data(), rows, cols, xr.data(), batch, yr.data());
      for (size_t b = 0; b < batch; ++b)
        for (size_t r = 0; r < rows; ++r) {
          double mag = 0;
          for (size_t k = 0; k < cols; ++k) mag += std::fabs(deq[r * cols + k] * xr[b * cols + k]);
          CHECK(std::fabs(y[b * rows + r] - yr[b * rows + r]) <= 2.0 * cols * 5.96e-8 * mag + 1e-30);
        }
    }
  }
}

TEST_CASE("quant matmul with f32 activations matches the dequantized reference") {
  // The runtime's path (f32_activations = true): no activation quantization, so the product must equal
  // the f64 product with the dequantized weights up to f32 summation rounding. 25 blocks of 32 (odd).
  const size_t rows = 29, cols = 800;
  const std::vector<float> w = gauss(rows * cols, 71, 0.05f);
  for (const char* name : {"q8_0", "q4_0", "q4_k", "q6_k", "nf4", "int4-g32"}) {
    const QuantScheme s = parse_quant_scheme(name);
    const bool odd_ok = s.format == QuantFormat::Q8_0 || s.format == QuantFormat::Q4_0 || s.format == QuantFormat::INT;
    const size_t n = odd_ok ? cols : 768;
    std::vector<uint8_t> q(rows * scheme_row_bytes(s, n));
    quantize_matrix(s, w.data(), rows, n, q.data());
    std::vector<float> deq(rows * n);
    dequantize_matrix(s, q.data(), rows, n, deq.data());
    for (size_t batch : {size_t{1}, size_t{2}, size_t{9}}) {
      CAPTURE(std::string(name));
      CAPTURE(batch);
      const std::vector<float> x = gauss(batch * n, 80 + static_cast<uint32_t>(batch));
      std::vector<float> y(batch * rows), yr(batch * rows);
      quant_matmul(s, q.data(), rows, n, x.data(), batch, y.data(), /*f32_activations=*/true);
      quant_ref::quant_matmul(s, q.data(), rows, n, x.data(), batch, yr.data());
      for (size_t b = 0; b < batch; ++b)
        for (size_t r = 0; r < rows; ++r) {
          double mag = 0;
          for (size_t k = 0; k < n; ++k) mag += std::fabs(deq[r * n + k] * x[b * n + k]);
          CHECK(std::fabs(y[b * rows + r] - yr[b * rows + r]) <= 2.0 * n * 5.96e-8 * mag + 1e-30);
        }
    }
  }
}

TEST_CASE("quant formats snap to blocks equals snap to block element by element") {
  const size_t rows = 5, n = 512;
  const std::vector<float> w = gauss(rows * n, 91, 0.05f), v = gauss(rows, 92, 0.06f);
  for (const char* name : {"q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "mxfp4", "nvfp4",
                           "nf4", "fp8", "int4-g128", "int3-g64-asym", "int8", "kmeans3"}) {
    CAPTURE(std::string(name));
    const QuantScheme s = parse_quant_scheme(name);
    const size_t rb = scheme_row_bytes(s, n), blk = scheme_block(s) ? scheme_block(s) : n;
    const size_t bb = scheme_block(s) ? scheme_block_bytes(s, n) : rb;
    std::vector<uint8_t> a(rows * rb);
    quantize_matrix(s, w.data(), rows, n, a.data());
    std::vector<uint8_t> b = a;
    const size_t col = blk < n ? blk + 3 : n - 5;  // element 3 of the second block; near the end of one-block rows
    const size_t block = col / blk, index = col % blk;
    std::vector<float> out(rows), ref(rows);
    snap_to_blocks(s, a.data() + block * bb, rb, rows, index, v.data(), out.data());
    for (size_t r = 0; r < rows; ++r) ref[r] = snap_to_block(s, b.data() + r * rb + block * bb, index, v[r]);
    CHECK(a == b);
    CHECK(out == ref);
  }
}
