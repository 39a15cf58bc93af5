// Bindings for matrix multiplication: tersor's packed GEMM (native/linalg/gemm.cpp) on row-major
// typed arrays. Inputs cross zero-copy and stay referenced until the worker is done; the product
// is a fresh Float32Array over the worker's own vector.
#include <atomic>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>

#include "napi_util.hpp"
#include "tersor/gemm.hpp"
#include "tersor/half.hpp"
#include "tersor/parallel.hpp"

namespace tersor::napi {
namespace {

size_t checked_mul(size_t a, size_t b, const std::string& what) {
  size_t r;
  if (__builtin_mul_overflow(a, b, &r)) fail(ErrorCode::Shape, what + " is too large to address");
  return r;
}

// Non-finite test on the bit pattern (exponent all ones), for f32, f16 and bf16 storage.
inline bool nonfinite(float x) { return (f32_bits(x) & 0x7f800000u) == 0x7f800000u; }

// Index of the first non-finite element, or n. Scanned in parallel chunks (large operands are tens
// of megabytes; a serial scan would cost a noticeable fraction of the product itself).
template <class T, class Pred>
size_t first_nonfinite(const T* x, size_t n, Pred bad) {
  constexpr size_t kChunk = size_t{1} << 16;
  const size_t chunks = (n + kChunk - 1) / kChunk;
  std::atomic<size_t> first{n};
  auto scan = [&](size_t ch) {
    const size_t begin = ch * kChunk, end = std::min(n, begin + kChunk);
    bool any = false;
    for (size_t i = begin; i < end; ++i) any |= bad(x[i]);  // branch-free, vectorises
    if (!any) return;
    for (size_t i = begin; i < end; ++i)
      if (bad(x[i])) {
        size_t cur = first.load();
        while (i < cur && !first.compare_exchange_weak(cur, i)) {
        }
        return;
      }
  };
  if (chunks <= 1) {
    if (chunks) scan(0);
  } else {
#pragma omp parallel for schedule(static) num_threads(std::min<size_t>(chunks, static_cast<size_t>(num_threads())))
    for (size_t ch = 0; ch < chunks; ++ch) scan(ch);
  }
  return first.load();
}

// Throws E_RANGE naming the operand, the flat index and its (row, column) in the stored matrix.
template <class T, class Pred>
void require_finite(const char* fn, const char* name, const T* x, size_t rows, size_t cols, Pred bad,
                    float (*widen)(T)) {
  const size_t n = rows * cols;
  const size_t i = first_nonfinite(x, n, bad);
  if (i == n) return;
  const float v = widen(x[i]);
  fail(ErrorCode::Range, std::string(fn) + ": " + name + "[" + std::to_string(i) + "] (row " +
                             std::to_string(i / cols) + ", column " + std::to_string(i % cols) + " of the stored " +
                             std::to_string(rows) + " x " + std::to_string(cols) + " matrix) is " +
                             (std::isnan(v) ? "NaN" : v > 0 ? "+Infinity" : "-Infinity") +
                             "; matmul needs finite inputs");
}

float widen_f32(float x) { return x; }
float widen_f16(uint16_t h) { return f16_to_f32_scalar(h); }
float widen_bf16(uint16_t h) { return bf16_to_f32_scalar(h); }

// Checks that `size` elements hold a rows x cols matrix (stated both ways for the message).
void require_size(const char* fn, const char* name, size_t size, size_t rows, size_t cols, const char* dims) {
  const size_t want = checked_mul(rows, cols, std::string(fn) + ": " + name + " (" + dims + ")");
  if (size != want)
    fail(ErrorCode::Shape, std::string(fn) + ": " + name + " has " + std::to_string(size) + " elements, expected " +
                               dims + " = " + std::to_string(rows) + " * " + std::to_string(cols) + " = " +
                               std::to_string(want));
}

// (a: Float32Array, b: Float32Array, m, k, n, transA, transB) -> Promise<Float32Array (m x n)>
TERSOR_NAPI(Matmul) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    ArgArray<float> a = arg_array<float>(info, 0, "matmul: a", true);
    ArgArray<float> b = arg_array<float>(info, 1, "matmul: b", true);
    const size_t m = arg_size(info, 2, "matmul: m"), k = arg_size(info, 3, "matmul: k"),
                 n = arg_size(info, 4, "matmul: n");
    const bool ta = arg_bool(info, 5, false), tb = arg_bool(info, 6, false);
    // Stored shapes: a is m x k (k x m when transposed), b is k x n (n x k when transposed).
    const size_t a_rows = ta ? k : m, a_cols = ta ? m : k;
    const size_t b_rows = tb ? n : k, b_cols = tb ? k : n;
    require_size("matmul", "a", a.size, a_rows, a_cols, ta ? "k*m (a is transposed)" : "m*k");
    require_size("matmul", "b", b.size, b_rows, b_cols, tb ? "n*k (b is transposed)" : "k*n");
    const size_t mn = checked_mul(m, n, "matmul: the product (m*n)");
    auto out = std::make_shared<std::vector<float>>();
    const float* ap = a.data;
    const float* bp = b.data;
    return run_async(
        env,
        [=] {
          auto is_bad = [](float x) { return nonfinite(x); };
          require_finite("matmul", "a", ap, a_rows, a_cols, is_bad, widen_f32);
          require_finite("matmul", "b", bp, b_rows, b_cols, is_bad, widen_f32);
          out->resize(mn);
          sgemm(ta ? Trans::Yes : Trans::No, tb ? Trans::Yes : Trans::No, m, n, k, 1.f, ap, a_cols, bp, b_cols, 0.f,
                out->data(), n);
        },
        [=](Napi::Env e) -> Napi::Value { return to_typed_array<float>(e, std::move(*out)); }, std::move(a.keep),
        std::move(b.keep));
  });
}

// (a: Uint16Array, b: Uint16Array, m, k, n) with f16 or bf16 bit patterns -> Promise<Float32Array>
Napi::Value matmul_half(const Napi::CallbackInfo& info, bool bf16) {
  Napi::Env env = info.Env();
  const char* fn = bf16 ? "matmulBf16" : "matmulF16";
  return guard(env, [&]() -> Napi::Value {
    const std::string pre = std::string(fn) + ": ";
    ArgArray<uint16_t> a = arg_array<uint16_t>(info, 0, (pre + "a").c_str(), true);
    ArgArray<uint16_t> b = arg_array<uint16_t>(info, 1, (pre + "b").c_str(), true);
    const size_t m = arg_size(info, 2, (pre + "m").c_str()), k = arg_size(info, 3, (pre + "k").c_str()),
                 n = arg_size(info, 4, (pre + "n").c_str());
    require_size(fn, "a", a.size, m, k, "m*k");
    require_size(fn, "b", b.size, k, n, "k*n");
    const size_t mn = checked_mul(m, n, pre + "the product (m*n)");
    auto out = std::make_shared<std::vector<float>>();
    const uint16_t* ap = a.data;
    const uint16_t* bp = b.data;
    return run_async(
        env,
        [=] {
          // Exponent all ones: 0x7c00 for f16, 0x7f80 for bf16.
          const uint16_t mask = bf16 ? 0x7f80u : 0x7c00u;
          auto is_bad = [mask](uint16_t h) { return (h & mask) == mask; };
          require_finite(fn, "a", ap, m, k, is_bad, bf16 ? widen_bf16 : widen_f16);
          require_finite(fn, "b", bp, k, n, is_bad, bf16 ? widen_bf16 : widen_f16);
          out->resize(mn);
          if (bf16)
            bgemm_f32acc(m, n, k, ap, bp, out->data());
          else
            hgemm_f32acc(m, n, k, ap, bp, out->data());
        },
        [=](Napi::Env e) -> Napi::Value { return to_typed_array<float>(e, std::move(*out)); }, std::move(a.keep),
        std::move(b.keep));
  });
}

TERSOR_NAPI(MatmulF16) { return matmul_half(info, false); }
TERSOR_NAPI(MatmulBf16) { return matmul_half(info, true); }

}  // namespace

void init_gemm(Napi::Env env, Napi::Object exports) {
  exports.Set("matmul", Napi::Function::New(env, Matmul, "matmul"));
  exports.Set("matmulF16", Napi::Function::New(env, MatmulF16, "matmulF16"));
  exports.Set("matmulBf16", Napi::Function::New(env, MatmulBf16, "matmulBf16"));
}

}  // namespace tersor::napi
