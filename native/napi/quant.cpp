// Bindings for quantizers. For now: the per-row int8 quantizer on CPU and on CUDA.
#include <cmath>
#include "napi_util.hpp"
#include "tersor/quant_int8.hpp"

namespace tersor::napi {
namespace {

struct RowsArgs {
  ArgArray<float> x;
  size_t rows, cols;
};

RowsArgs rows_args(const Napi::CallbackInfo& info) {
  RowsArgs a{arg_array<float>(info, 0, "x", true), arg_size(info, 1, "rows"), arg_size(info, 2, "cols")};
  require(a.rows * a.cols == a.x.size, ErrorCode::Shape,
          "x has " + std::to_string(a.x.size) + " elements, expected rows*cols = " + std::to_string(a.rows) + "*" +
              std::to_string(a.cols));
  for (size_t i = 0; i < a.x.size; ++i)
    require(std::isfinite(a.x.data[i]), ErrorCode::Range,
            "x contains a non-finite value at row " + std::to_string(i / (a.cols ? a.cols : 1)) + ", column " +
                std::to_string(i % (a.cols ? a.cols : 1)));
  return a;
}

Napi::Value quantize_rows(const Napi::CallbackInfo& info, bool gpu) {
  return guard_async(info.Env(), [&]() -> Napi::Value {
    RowsArgs a = rows_args(info);
    auto q = std::make_shared<std::vector<int8_t>>(a.x.size);
    auto s = std::make_shared<std::vector<float>>(a.rows);
    const float* x = a.x.data;
    const size_t rows = a.rows, cols = a.cols;
    return run_async(
        info.Env(),
        [=] {
          if (gpu)
            cuda_quantize_rows_int8(x, rows, cols, q->data(), s->data());
          else
            quantize_rows_int8(x, rows, cols, q->data(), s->data());
        },
        [=](Napi::Env env) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          o.Set("q", to_typed_array<int8_t>(env, std::move(*q)));
          o.Set("scales", to_typed_array<float>(env, std::move(*s)));
          return o;
        },
        std::move(a.x.keep));
  });
}

// (x: Float32Array, rows, cols) -> Promise<{q: Int8Array, scales: Float32Array}>
TERSOR_NAPI(QuantizeRowsInt8) { return quantize_rows(info, false); }
TERSOR_NAPI(CudaQuantizeRowsInt8) { return quantize_rows(info, true); }

}  // namespace

void init_quant(Napi::Env env, Napi::Object exports) {
  exports.Set("quantizeRowsInt8", Napi::Function::New(env, QuantizeRowsInt8, "quantizeRowsInt8"));
  exports.Set("cudaQuantizeRowsInt8", Napi::Function::New(env, CudaQuantizeRowsInt8, "cudaQuantizeRowsInt8"));
}

}  // namespace tersor::napi
