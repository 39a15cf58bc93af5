// Bindings for quantizers: the per-row int8 quantizer on CPU and on CUDA, and the weight
// quantization formats of tersor/quant_formats.hpp (quantize / dequantize / matmul / scheme info).
#include <cmath>
#include "napi_util.hpp"
#include "tersor/quant_formats.hpp"
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

std::string arg_scheme_name(const Napi::CallbackInfo& info, size_t index) {
  if (index >= info.Length() || !info[index].IsString())
    throw make_error(info.Env(), "E_RANGE", "scheme must be a string such as \"q4_k\"");
  return info[index].As<Napi::String>().Utf8Value();
}

// (scheme) -> {name, format, bits, group, symmetric, doubleQuant, perTensor, block}
TERSOR_NAPI(QuantSchemeInfo) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const QuantScheme s = parse_quant_scheme(arg_scheme_name(info, 0));
    static const char* names[] = {"q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k", "q4_k", "q5_k",
                                  "q6_k", "mxfp4", "nvfp4", "nf4", "fp8_e4m3", "fp8_e5m2", "int", "kmeans"};
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", quant_scheme_name(s));
    o.Set("format", names[static_cast<int>(s.format)]);
    o.Set("bits", s.bits);
    o.Set("group", static_cast<double>(s.group));
    o.Set("symmetric", s.symmetric);
    o.Set("doubleQuant", s.double_quant);
    o.Set("perTensor", s.per_tensor);
    o.Set("block", static_cast<double>(scheme_block(s)));
    return o;
  });
}

// (scheme, cols) -> bytes of one quantized row (E_SHAPE when cols is not a multiple of the block)
TERSOR_NAPI(QuantRowBytes) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const QuantScheme s = parse_quant_scheme(arg_scheme_name(info, 0));
    return Napi::Number::New(info.Env(), static_cast<double>(scheme_row_bytes(s, arg_size(info, 1, "cols"))));
  });
}

// (scheme, cols) -> storage bits per weight for rows of cols elements
TERSOR_NAPI(QuantBitsPerWeight) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const QuantScheme s = parse_quant_scheme(arg_scheme_name(info, 0));
    return Napi::Number::New(info.Env(), scheme_bits_per_weight(s, arg_size(info, 1, "cols")));
  });
}

// (x: Float32Array, rows, cols, scheme, importance?: Float32Array | null) -> Promise<Uint8Array>
TERSOR_NAPI(QuantizeTensor) {
  return guard_async(info.Env(), [&]() -> Napi::Value {
    RowsArgs a = rows_args(info);
    const QuantScheme s = parse_quant_scheme(arg_scheme_name(info, 3));
    const size_t rb = scheme_row_bytes(s, a.cols);
    ArgArray<float> imp;
    const bool has_imp = info.Length() > 4 && !info[4].IsUndefined() && !info[4].IsNull();
    if (has_imp) {
      imp = arg_array<float>(info, 4, "importance", true);
      require(imp.size == a.cols, ErrorCode::Shape,
              "importance has " + std::to_string(imp.size) + " elements, expected cols = " + std::to_string(a.cols));
      for (size_t i = 0; i < imp.size; ++i)
        require(std::isfinite(imp.data[i]) && imp.data[i] >= 0, ErrorCode::Range,
                "importance must be finite and >= 0 (column " + std::to_string(i) + ")");
    }
    auto out = std::make_shared<std::vector<uint8_t>>(a.rows * rb);
    const float* x = a.x.data;
    const float* w = has_imp ? imp.data : nullptr;
    const size_t rows = a.rows, cols = a.cols;
    return run_async(
        info.Env(), [=] { quantize_matrix(s, x, rows, cols, out->data(), w); },
        [=](Napi::Env env) -> Napi::Value { return to_typed_array<uint8_t>(env, std::move(*out)); }, std::move(a.x.keep),
        std::move(imp.keep));
  });
}

// (q: Uint8Array, rows, cols, scheme) -> Promise<Float32Array>
TERSOR_NAPI(DequantizeTensor) {
  return guard_async(info.Env(), [&]() -> Napi::Value {
    ArgArray<uint8_t> q = arg_array<uint8_t>(info, 0, "q", true);
    const size_t rows = arg_size(info, 1, "rows"), cols = arg_size(info, 2, "cols");
    const QuantScheme s = parse_quant_scheme(arg_scheme_name(info, 3));
    const size_t rb = scheme_row_bytes(s, cols);
    require(q.size == rows * rb, ErrorCode::Shape,
            "q has " + std::to_string(q.size) + " bytes, expected rows * rowBytes = " + std::to_string(rows) + " * " +
                std::to_string(rb));
    auto out = std::make_shared<std::vector<float>>(rows * cols);
    const uint8_t* p = q.data;
    return run_async(
        info.Env(), [=] { dequantize_matrix(s, p, rows, cols, out->data()); },
        [=](Napi::Env env) -> Napi::Value { return to_typed_array<float>(env, std::move(*out)); }, std::move(q.keep));
  });
}

// (q: Uint8Array, rows, cols, scheme, x: Float32Array, batch) -> Promise<Float32Array [batch, rows]>
TERSOR_NAPI(QuantMatmul) {
  return guard_async(info.Env(), [&]() -> Napi::Value {
    ArgArray<uint8_t> q = arg_array<uint8_t>(info, 0, "q", true);
    const size_t rows = arg_size(info, 1, "rows"), cols = arg_size(info, 2, "cols");
    const QuantScheme s = parse_quant_scheme(arg_scheme_name(info, 3));
    ArgArray<float> x = arg_array<float>(info, 4, "x", true);
    const size_t batch = arg_size(info, 5, "batch");
    const size_t rb = scheme_row_bytes(s, cols);
    require(q.size == rows * rb, ErrorCode::Shape, "q has " + std::to_string(q.size) + " bytes, expected " + std::to_string(rows * rb));
    require(x.size == batch * cols, ErrorCode::Shape,
            "x has " + std::to_string(x.size) + " elements, expected batch * cols = " + std::to_string(batch * cols));
    auto out = std::make_shared<std::vector<float>>(batch * rows);
    const uint8_t* p = q.data;
    const float* xv = x.data;
    return run_async(
        info.Env(), [=] { quant_matmul(s, p, rows, cols, xv, batch, out->data()); },
        [=](Napi::Env env) -> Napi::Value { return to_typed_array<float>(env, std::move(*out)); }, std::move(q.keep),
        std::move(x.keep));
  });
}

}  // namespace

void init_quant(Napi::Env env, Napi::Object exports) {
  exports.Set("quantSchemeInfo", Napi::Function::New(env, QuantSchemeInfo, "quantSchemeInfo"));
  exports.Set("quantRowBytes", Napi::Function::New(env, QuantRowBytes, "quantRowBytes"));
  exports.Set("quantBitsPerWeight", Napi::Function::New(env, QuantBitsPerWeight, "quantBitsPerWeight"));
  exports.Set("quantizeTensor", Napi::Function::New(env, QuantizeTensor, "quantizeTensor"));
  exports.Set("dequantizeTensor", Napi::Function::New(env, DequantizeTensor, "dequantizeTensor"));
  exports.Set("quantMatmul", Napi::Function::New(env, QuantMatmul, "quantMatmul"));
  exports.Set("quantizeRowsInt8", Napi::Function::New(env, QuantizeRowsInt8, "quantizeRowsInt8"));
  exports.Set("cudaQuantizeRowsInt8", Napi::Function::New(env, CudaQuantizeRowsInt8, "cudaQuantizeRowsInt8"));
}

}  // namespace tersor::napi
