// Bindings for data mixing: the histogram GBDT of RegMix (tersor/gbdt.hpp). Fitting and batch
// prediction run on the libuv pool and return Promises; argument errors reject them (guard_async).
#include <memory>
#include <string>

#include "napi_util.hpp"
#include "tersor/gbdt.hpp"

namespace tersor::napi {
namespace {

/// Reads an optional numeric field of an options object (absent or undefined keeps `fallback`).
double opt_number(const Napi::Object& o, const char* key, double fallback) {
  if (!o.Has(key)) return fallback;
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsNumber()) fail(ErrorCode::Range, std::string("option ") + key + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

size_t opt_size(const Napi::Object& o, const char* key, size_t fallback) {
  const double v = opt_number(o, key, static_cast<double>(fallback));
  if (!(v >= 0) || v != static_cast<double>(static_cast<size_t>(v)) || v > 9007199254740991.0)
    fail(ErrorCode::Range, std::string("option ") + key + " must be a non-negative integer");
  return static_cast<size_t>(v);
}

gbdt::Options arg_options(const Napi::CallbackInfo& info, size_t index) {
  gbdt::Options o;
  if (index >= info.Length() || info[index].IsUndefined()) return o;
  if (!info[index].IsObject()) fail(ErrorCode::Range, "options must be an object");
  const Napi::Object obj = info[index].As<Napi::Object>();
  o.num_rounds = opt_size(obj, "numRounds", o.num_rounds);
  o.learning_rate = opt_number(obj, "learningRate", o.learning_rate);
  o.max_depth = opt_size(obj, "maxDepth", o.max_depth);
  o.num_leaves = opt_size(obj, "numLeaves", o.num_leaves);
  o.lambda_l2 = opt_number(obj, "lambdaL2", o.lambda_l2);
  o.min_child_samples = opt_size(obj, "minChildSamples", o.min_child_samples);
  o.min_gain = opt_number(obj, "minGain", o.min_gain);
  o.subsample = opt_number(obj, "subsample", o.subsample);
  o.colsample = opt_number(obj, "colsample", o.colsample);
  o.max_bins = opt_size(obj, "maxBins", o.max_bins);
  o.valid_fraction = opt_number(obj, "validFraction", o.valid_fraction);
  o.early_stopping_rounds = opt_size(obj, "earlyStoppingRounds", o.early_stopping_rounds);
  o.seed = static_cast<uint64_t>(opt_size(obj, "seed", 0));
  return o;
}

void check_matrix(const ArgArray<double>& a, size_t n, size_t d, const char* what) {
  size_t total = 0;
  if (__builtin_mul_overflow(n, d, &total) || total != a.size)
    fail(ErrorCode::Shape, std::string(what) + " has " + std::to_string(a.size) + " values, expected " + std::to_string(n) +
                               " rows x " + std::to_string(d) + " columns");
}

// (x: Float64Array, n, d, y: Float64Array, options) -> Promise<{model, bestRound, roundsRun, trainMse, validMse}>
TERSOR_NAPI(GbdtFit) {
  return guard_async(info.Env(), [&]() -> Napi::Value {
    const size_t n = arg_size(info, 1, "n"), d = arg_size(info, 2, "d");
    ArgArray<double> x = arg_array<double>(info, 0, "x", true);
    check_matrix(x, n, d, "x");
    ArgArray<double> y = arg_array<double>(info, 3, "y", true);
    require(y.size == n, ErrorCode::Shape, "y has " + std::to_string(y.size) + " values, expected one per row (" + std::to_string(n) + ")");
    const gbdt::Options o = arg_options(info, 4);
    auto res = std::make_shared<gbdt::FitResult>();
    const double* xp = x.data;
    const double* yp = y.data;
    return run_async(
        info.Env(), [res, xp, yp, n, d, o] { *res = gbdt::fit(xp, n, d, yp, o); },
        [res](Napi::Env env) -> Napi::Value {
          Napi::Object out = Napi::Object::New(env);
          out.Set("model", to_typed_array(env, res->model.serialize()));
          out.Set("bestRound", Napi::Number::New(env, static_cast<double>(res->best_round)));
          out.Set("roundsRun", Napi::Number::New(env, static_cast<double>(res->rounds_run)));
          out.Set("trainMse", to_typed_array(env, std::move(res->train_mse)));
          out.Set("validMse", to_typed_array(env, std::move(res->valid_mse)));
          return out;
        },
        std::move(x.keep), std::move(y.keep));
  });
}

// (model: Float64Array, x: Float64Array, n, d) -> Promise<Float64Array>
TERSOR_NAPI(GbdtPredict) {
  return guard_async(info.Env(), [&]() -> Napi::Value {
    ArgArray<double> m = arg_array<double>(info, 0, "model", true);
    auto model = std::make_shared<gbdt::Model>(gbdt::Model::deserialize(m.data, m.size));
    const size_t n = arg_size(info, 2, "n"), d = arg_size(info, 3, "d");
    ArgArray<double> x = arg_array<double>(info, 1, "x", true);
    check_matrix(x, n, d, "x");
    require(d == model->features, ErrorCode::Shape,
            "x has " + std::to_string(d) + " columns, the model was fitted on " + std::to_string(model->features));
    auto out = std::make_shared<std::vector<double>>();
    const double* xp = x.data;
    return run_async(
        info.Env(), [out, model, xp, n] { *out = model->predict(xp, n); },
        [out](Napi::Env env) -> Napi::Value { return to_typed_array(env, std::move(*out)); }, std::move(x.keep));
  });
}

}  // namespace

void init_mix(Napi::Env env, Napi::Object exports) {
  exports.Set("gbdtFit", Napi::Function::New(env, GbdtFit, "gbdtFit"));
  exports.Set("gbdtPredict", Napi::Function::New(env, GbdtPredict, "gbdtPredict"));
}

}  // namespace tersor::napi
