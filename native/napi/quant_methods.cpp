// Bindings for the layer quantization methods (RTN, GPTQ, AWQ search, HQQ, LoRD/LoRC/EoRA); see
// tersor/quant_methods.hpp. Every function returns a Promise (the work runs on the libuv pool);
// argument errors reject it (guard_async).
#include <memory>
#include <string>

#include "napi_util.hpp"
#include "tersor/quant_methods.hpp"

namespace tersor::napi {
namespace {

std::string arg_string(const Napi::CallbackInfo& info, size_t index, const char* what) {
  if (index >= info.Length() || !info[index].IsString()) throw make_error(info.Env(), "E_RANGE", std::string(what) + " must be a string");
  return info[index].As<Napi::String>().Utf8Value();
}

void check_len(size_t have, size_t want, const char* what) {
  require(have == want, ErrorCode::Shape, std::string(what) + " has " + std::to_string(have) + " elements, expected " + std::to_string(want));
}

Napi::Object quantized(Napi::Env env, std::vector<uint8_t>&& q, std::vector<float>&& deq) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("q", to_typed_array<uint8_t>(env, std::move(q)));
  o.Set("deq", to_typed_array<float>(env, std::move(deq)));
  return o;
}

// quantRtn(w, rows, cols, scheme) -> {q, deq}
Napi::Value RtnJs(const Napi::CallbackInfo& info) {
  return guard_async(info.Env(), [&]() -> Napi::Value {
    auto w = arg_array<float>(info, 0, "w", true);
    const size_t rows = arg_size(info, 1, "rows"), cols = arg_size(info, 2, "cols");
    const std::string scheme = arg_string(info, 3, "scheme");
    check_len(w.size, rows * cols, "w");
    auto out = std::make_shared<std::pair<std::vector<uint8_t>, std::vector<float>>>();
    const float* p = w.data;
    return run_async(
        info.Env(),
        [=] {
          BlockCodec c = scheme_codec(scheme, cols);
          out->first = rtn_quantize(c, p, rows, cols);
          out->second = dequantize_rows(c, out->first.data(), rows, cols);
        },
        [=](Napi::Env env) -> Napi::Value { return quantized(env, std::move(out->first), std::move(out->second)); }, std::move(w.keep));
  });
}

// quantGptq(w, rows, cols, gram, nSamples, scheme, damp, blockSize, actOrder, staticGroups) -> {q, deq, loss, dead, order}
Napi::Value GptqJs(const Napi::CallbackInfo& info) {
  return guard_async(info.Env(), [&]() -> Napi::Value {
    auto w = arg_array<float>(info, 0, "w", true);
    const size_t rows = arg_size(info, 1, "rows"), cols = arg_size(info, 2, "cols");
    auto g = arg_array<double>(info, 3, "gram", true);
    const size_t n = arg_size(info, 4, "nSamples");
    const std::string scheme = arg_string(info, 5, "scheme");
    GptqOptions opt;
    opt.damp = arg_number(info, 6, "damp");
    opt.block_size = arg_size(info, 7, "blockSize");
    opt.act_order = arg_bool(info, 8, false);
    opt.static_groups = arg_bool(info, 9, false);
    check_len(w.size, rows * cols, "w");
    check_len(g.size, cols * cols, "gram");
    auto out = std::make_shared<GptqResult>();
    const float* pw = w.data;
    const double* pg = g.data;
    return run_async(
        info.Env(), [=] { *out = gptq(scheme_codec(scheme, cols), pw, rows, cols, pg, n, opt); },
        [=](Napi::Env env) -> Napi::Value {
          Napi::Object o = quantized(env, std::move(out->q), std::move(out->deq));
          o.Set("loss", Napi::Number::New(env, out->loss));
          o.Set("dead", Napi::Number::New(env, static_cast<double>(out->dead)));
          o.Set("order", to_typed_array<int32_t>(env, std::move(out->order)));
          return o;
        },
        std::move(w.keep), std::move(g.keep));
  });
}

// quantAwqSearch(ws (rows concatenated), totalRows, cols, gram, meanAbsX, scheme, grid, rowsPerWeight Float64Array)
Napi::Value AwqJs(const Napi::CallbackInfo& info) {
  return guard_async(info.Env(), [&]() -> Napi::Value {
    auto w = arg_array<float>(info, 0, "ws", true);
    const size_t total = arg_size(info, 1, "totalRows"), cols = arg_size(info, 2, "cols");
    auto g = arg_array<double>(info, 3, "gram", true);
    auto mx = arg_array<float>(info, 4, "meanAbsX", true);
    const std::string scheme = arg_string(info, 5, "scheme");
    const size_t grid = arg_size(info, 6, "grid");
    auto rp = arg_array<double>(info, 7, "rowsPerWeight");
    check_len(w.size, total * cols, "ws");
    check_len(g.size, cols * cols, "gram");
    check_len(mx.size, cols, "meanAbsX");
    std::vector<size_t> rows;
    size_t sum = 0;
    for (size_t i = 0; i < rp.size; ++i) {
      rows.push_back(static_cast<size_t>(rp.data[i]));
      sum += rows.back();
    }
    require(sum == total, ErrorCode::Shape, "awq: rowsPerWeight does not sum to totalRows");
    std::vector<const float*> ws;
    size_t off = 0;
    for (size_t r : rows) {
      ws.push_back(w.data + off * cols);
      off += r;
    }
    auto out = std::make_shared<AwqResult>();
    const double* pg = g.data;
    const float* pm = mx.data;
    return run_async(
        info.Env(), [=] { *out = awq_search(scheme_codec(scheme, cols), ws, rows, cols, pg, pm, grid); },
        [=](Napi::Env env) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          o.Set("scales", to_typed_array<float>(env, std::move(out->scales)));
          o.Set("alpha", Napi::Number::New(env, out->alpha));
          o.Set("error", Napi::Number::New(env, out->error));
          o.Set("errors", to_typed_array<double>(env, std::move(out->errors)));
          return o;
        },
        std::move(w.keep), std::move(g.keep), std::move(mx.keep));
  });
}

// quantHqq(w, rows, cols, bits, group, lpNorm, beta, kappa, iters) -> {scale, zero, codes, deq, iterations, error}
Napi::Value HqqJs(const Napi::CallbackInfo& info) {
  return guard_async(info.Env(), [&]() -> Napi::Value {
    auto w = arg_array<float>(info, 0, "w", true);
    const size_t rows = arg_size(info, 1, "rows"), cols = arg_size(info, 2, "cols");
    const int bits = static_cast<int>(arg_size(info, 3, "bits"));
    const size_t group = arg_size(info, 4, "group");
    HqqOptions opt;
    opt.lp_norm = arg_number(info, 5, "lpNorm");
    opt.beta = arg_number(info, 6, "beta");
    opt.kappa = arg_number(info, 7, "kappa");
    opt.iters = arg_size(info, 8, "iters");
    check_len(w.size, rows * cols, "w");
    auto out = std::make_shared<std::pair<HqqResult, std::vector<float>>>();
    const float* pw = w.data;
    return run_async(
        info.Env(),
        [=] {
          out->first = hqq(pw, rows, cols, bits, group, opt);
          out->second = hqq_dequantize(out->first, rows, cols, group);
        },
        [=](Napi::Env env) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          o.Set("scale", to_typed_array<float>(env, std::move(out->first.scale)));
          o.Set("zero", to_typed_array<float>(env, std::move(out->first.zero)));
          o.Set("codes", to_typed_array<uint8_t>(env, std::move(out->first.codes)));
          o.Set("deq", to_typed_array<float>(env, std::move(out->second)));
          o.Set("iterations", Napi::Number::New(env, static_cast<double>(out->first.iterations)));
          o.Set("error", Napi::Number::New(env, out->first.error));
          return o;
        },
        std::move(w.keep));
  });
}

// quantLowRank(kind "lord"|"lorc"|"eora", m, rows, cols, rank, gram|null, energy) -> {b, a, rank, singularValues}
Napi::Value LowRankJs(const Napi::CallbackInfo& info) {
  return guard_async(info.Env(), [&]() -> Napi::Value {
    const std::string kind = arg_string(info, 0, "kind");
    require(kind == "lord" || kind == "lorc" || kind == "eora", ErrorCode::Range, "low-rank kind must be lord, lorc or eora, got " + kind);
    auto m = arg_array<float>(info, 1, "m", true);
    const size_t rows = arg_size(info, 2, "rows"), cols = arg_size(info, 3, "cols"), rank = arg_size(info, 4, "rank");
    check_len(m.size, rows * cols, "m");
    ArgArray<double> g;
    if (kind == "eora") {
      g = arg_array<double>(info, 5, "gram", true);
      check_len(g.size, cols * cols, "gram");
    }
    const double energy = info.Length() > 6 && info[6].IsNumber() ? info[6].As<Napi::Number>().DoubleValue() : 0.99;
    auto out = std::make_shared<LowRank>();
    const float* pm = m.data;
    const double* pg = g.data;
    return run_async(
        info.Env(),
        [=] {
          if (kind == "lord") *out = lord(pm, rows, cols, rank, energy);
          else if (kind == "lorc") *out = lorc(pm, rows, cols, rank);
          else *out = eora(pm, rows, cols, pg, rank);
        },
        [=](Napi::Env env) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          o.Set("b", to_typed_array<float>(env, std::move(out->b)));
          o.Set("a", to_typed_array<float>(env, std::move(out->a)));
          o.Set("rank", Napi::Number::New(env, static_cast<double>(out->rank)));
          o.Set("singularValues", to_typed_array<float>(env, std::move(out->singular_values)));
          return o;
        },
        std::move(m.keep), std::move(g.keep));
  });
}

// quantOutputError(w, v, rows, cols, gram) -> number
Napi::Value OutputErrorJs(const Napi::CallbackInfo& info) {
  return guard_async(info.Env(), [&]() -> Napi::Value {
    auto w = arg_array<float>(info, 0, "w", true);
    auto v = arg_array<float>(info, 1, "v", true);
    const size_t rows = arg_size(info, 2, "rows"), cols = arg_size(info, 3, "cols");
    auto g = arg_array<double>(info, 4, "gram", true);
    check_len(w.size, rows * cols, "w");
    check_len(v.size, rows * cols, "v");
    check_len(g.size, cols * cols, "gram");
    auto out = std::make_shared<double>(0);
    const float *pw = w.data, *pv = v.data;
    const double* pg = g.data;
    return run_async(
        info.Env(), [=] { *out = output_error(pw, pv, rows, cols, pg); },
        [=](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, *out); }, std::move(w.keep), std::move(v.keep), std::move(g.keep));
  });
}

}  // namespace

void init_quant_methods(Napi::Env env, Napi::Object exports) {
  exports.Set("quantRtn", Napi::Function::New(env, RtnJs, "quantRtn"));
  exports.Set("quantGptq", Napi::Function::New(env, GptqJs, "quantGptq"));
  exports.Set("quantAwqSearch", Napi::Function::New(env, AwqJs, "quantAwqSearch"));
  exports.Set("quantHqq", Napi::Function::New(env, HqqJs, "quantHqq"));
  exports.Set("quantLowRank", Napi::Function::New(env, LowRankJs, "quantLowRank"));
  exports.Set("quantOutputError", Napi::Function::New(env, OutputErrorJs, "quantOutputError"));
}

}  // namespace tersor::napi
