// Bindings for the generic MLP and Adam (tersor/mlp.hpp) and the neural MI bounds
// (tersor/neural_mi.hpp). Parameters live in a caller-held Float32Array in the documented flat
// layout; forward/backward and neural MI training run on the libuv pool and resolve Promises;
// mlpInit and adamStep are synchronous (O(parameters)). Shape problems → E_SHAPE, bad values and
// options → E_RANGE, wrong array types → E_DTYPE.
#include <cmath>
#include <memory>
#include <string>

#include "napi_util.hpp"
#include "tersor/mlp.hpp"
#include "tersor/neural_mi.hpp"

namespace tersor::napi {
namespace {

bool has(const Napi::Object& o, const char* key) {
  if (!o.Has(key)) return false;
  const Napi::Value v = o.Get(key);
  return !v.IsUndefined() && !v.IsNull();
}

double get_number(const Napi::Object& o, const char* key, double fallback, const std::string& where) {
  if (!has(o, key)) return fallback;
  const Napi::Value v = o.Get(key);
  require(v.IsNumber() && std::isfinite(v.As<Napi::Number>().DoubleValue()), ErrorCode::Range,
          where + "." + key + " must be a finite number");
  return v.As<Napi::Number>().DoubleValue();
}

size_t get_size(const Napi::Object& o, const char* key, size_t fallback, const std::string& where) {
  if (!has(o, key)) return fallback;
  const double v = get_number(o, key, 0, where);
  require(v >= 0 && v == std::floor(v) && v <= 9007199254740991.0, ErrorCode::Range,
          where + "." + key + " must be a non-negative integer");
  return static_cast<size_t>(v);
}

std::string get_string(const Napi::Object& o, const char* key, const std::string& fallback, const std::string& where) {
  if (!has(o, key)) return fallback;
  const Napi::Value v = o.Get(key);
  require(v.IsString(), ErrorCode::Range, where + "." + key + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

std::vector<size_t> get_sizes(const Napi::Value& v, const std::string& what) {
  require(v.IsArray(), ErrorCode::Range, what + " must be an array of positive integers");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<size_t> out;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    const Napi::Value e = a.Get(i);
    require(e.IsNumber(), ErrorCode::Range, what + " must be an array of positive integers");
    const double d = e.As<Napi::Number>().DoubleValue();
    require(d >= 1 && d == std::floor(d) && d <= 16777216.0, ErrorCode::Range,
            what + "[" + std::to_string(i) + "] must be an integer in [1, 2^24]");
    out.push_back(static_cast<size_t>(d));
  }
  return out;
}

Napi::Object object_at(const Napi::CallbackInfo& info, size_t i, const char* what, bool required) {
  if (i >= info.Length() || info[i].IsUndefined() || info[i].IsNull()) {
    require(!required, ErrorCode::Range, std::string(what) + " is required");
    return Napi::Object::New(info.Env());
  }
  require(info[i].IsObject(), ErrorCode::Range, std::string(what) + " must be an object");
  return info[i].As<Napi::Object>();
}

MlpShape shape_at(const Napi::CallbackInfo& info, size_t i) {
  Napi::Object o = object_at(info, i, "spec", true);
  require(has(o, "sizes"), ErrorCode::Range, "spec.sizes is required");
  MlpShape s;
  s.sizes = get_sizes(o.Get("sizes"), "spec.sizes");
  s.hidden = parse_activation(get_string(o, "activation", "relu", "spec"));
  s.output = parse_activation(get_string(o, "outputActivation", "identity", "spec"));
  s.validate();
  return s;
}

uint64_t seed_of(double v, const char* what) {
  require(v >= 0 && v == std::floor(v) && v <= 9007199254740991.0, ErrorCode::Range,
          std::string(what) + " must be a non-negative safe integer");
  return static_cast<uint64_t>(v);
}

// (sizes: number[], seed: number) -> Float32Array
TERSOR_NAPI(MlpInit) {
  return guard(info.Env(), [&]() -> Napi::Value {
    require(info.Length() >= 1, ErrorCode::Range, "mlpInit(sizes, seed) needs the sizes");
    MlpShape s;
    s.sizes = get_sizes(info[0], "sizes");
    s.validate();
    const uint64_t seed = seed_of(arg_number(info, 1, "seed"), "seed");
    std::vector<float> p(s.param_count());
    mlp_init_xavier(s, p.data(), seed);
    return to_typed_array<float>(info.Env(), std::move(p));
  });
}

struct PassArgs {
  MlpShape shape;
  ArgArray<float> params, x;
  size_t rows;
};

PassArgs pass_args(const Napi::CallbackInfo& info) {
  PassArgs a{shape_at(info, 1), arg_array<float>(info, 0, "params", true), arg_array<float>(info, 2, "x", true),
             arg_size(info, 3, "rows")};
  require(a.params.size == a.shape.param_count(), ErrorCode::Shape,
          "params has " + std::to_string(a.params.size) + " values, the spec needs " + std::to_string(a.shape.param_count()));
  require(a.x.size == a.rows * a.shape.input_dim(), ErrorCode::Shape,
          "x has " + std::to_string(a.x.size) + " values, expected rows*in = " + std::to_string(a.rows) + "*" +
              std::to_string(a.shape.input_dim()));
  for (size_t i = 0; i < a.x.size; ++i)
    require(std::isfinite(a.x.data[i]), ErrorCode::Range, "x contains a non-finite value at index " + std::to_string(i));
  return a;
}

// (params, spec, x, rows) -> Promise<Float32Array>
TERSOR_NAPI(MlpForward) {
  return guard_async(info.Env(), [&]() -> Napi::Value {
    PassArgs a = pass_args(info);
    auto out = std::make_shared<std::vector<float>>(a.rows * a.shape.output_dim());
    const float* p = a.params.data;
    const float* x = a.x.data;
    const size_t rows = a.rows;
    MlpShape shape = a.shape;
    return run_async(
        info.Env(), [=] { mlp_forward(shape, p, x, rows, out->data()); },
        [=](Napi::Env env) -> Napi::Value { return to_typed_array<float>(env, std::move(*out)); }, std::move(a.params.keep),
        std::move(a.x.keep));
  });
}

// (params, spec, x, rows, gradOut) -> Promise<{output, gradParams, gradInput}>
TERSOR_NAPI(MlpBackward) {
  return guard_async(info.Env(), [&]() -> Napi::Value {
    PassArgs a = pass_args(info);
    ArgArray<float> go = arg_array<float>(info, 4, "gradOut", true);
    require(go.size == a.rows * a.shape.output_dim(), ErrorCode::Shape,
            "gradOut has " + std::to_string(go.size) + " values, expected rows*out = " + std::to_string(a.rows * a.shape.output_dim()));
    auto out = std::make_shared<std::vector<float>>(a.rows * a.shape.output_dim());
    auto gp = std::make_shared<std::vector<float>>(a.shape.param_count());
    auto gx = std::make_shared<std::vector<float>>(a.rows * a.shape.input_dim());
    const float* p = a.params.data;
    const float* x = a.x.data;
    const float* g = go.data;
    const size_t rows = a.rows;
    MlpShape shape = a.shape;
    return run_async(
        info.Env(),
        [=] {
          MlpTape tape;
          mlp_forward(shape, p, x, rows, out->data(), &tape);
          mlp_backward(shape, p, x, tape, g, gp->data(), gx->data());
        },
        [=](Napi::Env env) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          o.Set("output", to_typed_array<float>(env, std::move(*out)));
          o.Set("gradParams", to_typed_array<float>(env, std::move(*gp)));
          o.Set("gradInput", to_typed_array<float>(env, std::move(*gx)));
          return o;
        },
        std::move(a.params.keep), std::move(a.x.keep), std::move(go.keep));
  });
}

// (params, grad, m, v, step, options?) -> undefined; updates params, m and v in place.
TERSOR_NAPI(AdamStep) {
  return guard(info.Env(), [&]() -> Napi::Value {
    ArgArray<float> p = arg_array<float>(info, 0, "params");
    ArgArray<float> g = arg_array<float>(info, 1, "grad");
    ArgArray<float> m = arg_array<float>(info, 2, "m");
    ArgArray<float> v = arg_array<float>(info, 3, "v");
    require(g.size == p.size && m.size == p.size && v.size == p.size, ErrorCode::Shape,
            "params, grad, m and v must have the same length");
    const double t = arg_number(info, 4, "step");
    require(t >= 1 && t == std::floor(t) && t <= 9007199254740991.0, ErrorCode::Range, "step must be an integer >= 1 (1-based)");
    Napi::Object o = object_at(info, 5, "options", false);
    AdamOptions a;
    a.lr = get_number(o, "lr", a.lr, "options");
    a.beta1 = get_number(o, "beta1", a.beta1, "options");
    a.beta2 = get_number(o, "beta2", a.beta2, "options");
    a.eps = get_number(o, "eps", a.eps, "options");
    a.weight_decay = get_number(o, "weightDecay", a.weight_decay, "options");
    a.validate();
    for (size_t i = 0; i < g.size; ++i)
      require(std::isfinite(g.data[i]), ErrorCode::Range, "grad contains a non-finite value at index " + std::to_string(i));
    adam_step(p.size, p.data, g.data, m.data, v.data, static_cast<uint64_t>(t), a);
    return info.Env().Undefined();
  });
}

// (x, y, rows, dx, dy, options) -> Promise<NeuralMiResult>
TERSOR_NAPI(NeuralMi) {
  return guard_async(info.Env(), [&]() -> Napi::Value {
    ArgArray<float> x = arg_array<float>(info, 0, "x", true);
    ArgArray<float> y = arg_array<float>(info, 1, "y", true);
    const size_t n = arg_size(info, 2, "rows"), dx = arg_size(info, 3, "dx"), dy = arg_size(info, 4, "dy");
    require(dx >= 1 && dy >= 1, ErrorCode::Shape, "dx and dy must be >= 1");
    require(x.size == n * dx, ErrorCode::Shape,
            "x has " + std::to_string(x.size) + " values, expected rows*dx = " + std::to_string(n) + "*" + std::to_string(dx));
    require(y.size == n * dy, ErrorCode::Shape,
            "y has " + std::to_string(y.size) + " values, expected rows*dy = " + std::to_string(n) + "*" + std::to_string(dy));
    Napi::Object o = object_at(info, 5, "options", false);
    NeuralMiOptions opt;
    opt.bound = parse_mi_bound(get_string(o, "bound", "smile", "options").c_str());
    opt.critic = parse_critic_kind(get_string(o, "critic", "concat", "options").c_str());
    if (has(o, "hidden")) opt.hidden = get_sizes(o.Get("hidden"), "options.hidden");
    opt.activation = parse_activation(get_string(o, "activation", "relu", "options"));
    opt.embed_dim = get_size(o, "embedDim", opt.embed_dim, "options");
    opt.batch_size = get_size(o, "batchSize", opt.batch_size, "options");
    opt.steps = get_size(o, "steps", opt.steps, "options");
    opt.lr = get_number(o, "lr", opt.lr, "options");
    opt.clip = get_number(o, "clip", opt.clip, "options");
    opt.ema_rate = get_number(o, "emaRate", opt.ema_rate, "options");
    opt.holdout = get_number(o, "holdout", opt.holdout, "options");
    if (has(o, "standardize")) opt.standardize = o.Get("standardize").ToBoolean().Value();
    opt.seed = seed_of(get_number(o, "seed", 0, "options"), "options.seed");
    opt.validate();
    auto res = std::make_shared<NeuralMiResult>();
    const float* xp = x.data;
    const float* yp = y.data;
    return run_async(
        info.Env(), [=] { *res = neural_mi(xp, yp, n, dx, dy, opt); },
        [=](Napi::Env env) -> Napi::Value {
          Napi::Object r = Napi::Object::New(env);
          r.Set("estimate", res->estimate);
          r.Set("batchEstimates", to_typed_array<double>(env, std::move(res->batch_estimates)));
          r.Set("history", to_typed_array<float>(env, std::move(res->history)));
          r.Set("logBatch", res->log_batch);
          r.Set("evalBatch", static_cast<double>(res->eval_batch));
          r.Set("trainSamples", static_cast<double>(res->train_samples));
          r.Set("evalSamples", static_cast<double>(res->eval_samples));
          r.Set("paramCount", static_cast<double>(res->param_count));
          return r;
        },
        std::move(x.keep), std::move(y.keep));
  });
}

}  // namespace

void init_mlp(Napi::Env env, Napi::Object exports) {
  exports.Set("mlpInit", Napi::Function::New(env, MlpInit, "mlpInit"));
  exports.Set("mlpForward", Napi::Function::New(env, MlpForward, "mlpForward"));
  exports.Set("mlpBackward", Napi::Function::New(env, MlpBackward, "mlpBackward"));
  exports.Set("adamStep", Napi::Function::New(env, AdamStep, "adamStep"));
  exports.Set("neuralMi", Napi::Function::New(env, NeuralMi, "neuralMi"));
}

}  // namespace tersor::napi
