// Bindings for KV-cache compressors (tersor/kv.hpp). Registered by addon.cpp through init_kv.
// The compressed cache itself is a NativeKvCache made by NativeTransformer.createCache(capacity, kv):
// transformer.cpp parses the kv options with kv_config_from_js and reports them with kv_stats_to_js.
#include <cmath>

#include "napi_util.hpp"
#include "tersor/kv.hpp"
#include "tersor/transformer.hpp"

namespace tersor::napi {

namespace {

double num_field(const Napi::Object& o, const char* name, double fallback) {
  Napi::Value v = o.Get(name);
  if (v.IsUndefined()) return fallback;
  require(v.IsNumber(), ErrorCode::Range, std::string("kv.") + name + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  require(std::isfinite(d), ErrorCode::Range, std::string("kv.") + name + " must be finite");
  return d;
}

size_t size_field(const Napi::Object& o, const char* name, size_t fallback) {
  const double d = num_field(o, name, static_cast<double>(fallback));
  require(d >= 0 && d == std::floor(d) && d < 9007199254740992.0, ErrorCode::Range,
          std::string("kv.") + name + " must be a non-negative integer");
  return static_cast<size_t>(d);
}

int bits_field(const Napi::Object& o, const char* name, int fallback) {
  const double d = num_field(o, name, fallback);
  require(d == std::floor(d) && d >= 1 && d <= 8, ErrorCode::Range, std::string("kv.") + name + " must be an integer in 1..8, got " + std::to_string(d));
  return static_cast<int>(d);
}

}  // namespace

/// The kv options object of createCache (camelCase fields of kv::KvConfig; see @tersor/kv's schema).
kv::KvConfig kv_config_from_js(const Napi::Value& value) {
  require(value.IsObject(), ErrorCode::Range, "kv options must be an object");
  const Napi::Object o = value.As<Napi::Object>();
  Napi::Value m = o.Get("method");
  require(m.IsString(), ErrorCode::Range, "kv.method must be a string");
  kv::KvConfig c;
  c.method = kv::kv_method_from_string(m.As<Napi::String>().Utf8Value());
  c.bits = bits_field(o, "bits", c.bits);
  c.low_bits = bits_field(o, "lowBits", c.low_bits);
  c.group = size_field(o, "group", c.group);
  c.residual = size_field(o, "residual", c.residual);
  c.outliers = num_field(o, "outliers", c.method == kv::KvMethod::Gear ? 0.02 : c.outliers);
  c.rank = size_field(o, "rank", c.rank);
  c.power_iterations = static_cast<int>(size_field(o, "powerIterations", static_cast<size_t>(c.power_iterations)));
  c.salient = num_field(o, "salient", c.salient);
  c.probes = size_field(o, "probes", c.probes);
  c.budget = num_field(o, "budget", c.budget);
  c.sinks = size_field(o, "sinks", c.sinks);
  c.global_weight = num_field(o, "globalWeight", c.global_weight);
  c.local_window = size_field(o, "localWindow", c.local_window);
  Napi::Value qn = o.Get("qNorm");
  if (!qn.IsUndefined()) c.q_norm = qn.ToBoolean().Value();
  Napi::Value bd = o.Get("bf16Dot");
  if (!bd.IsUndefined()) {
    require(bd.IsBoolean(), ErrorCode::Range, "kv.bf16Dot must be a boolean");
    c.bf16_dot = bd.As<Napi::Boolean>().Value();
  }
  c.seed = static_cast<uint64_t>(size_field(o, "seed", 0));
  return c;
}

/// { method, bytes, f16Bytes, ratio, codes, scales, outliers, lowRank, window, index, tokens } or null.
Napi::Value kv_stats_to_js(Napi::Env env, const KvCache& cache) {
  const kv::CompressedKv* c = cache.compressed();
  if (!c) return env.Null();
  const kv::KvBytes b = c->bytes_breakdown();
  Napi::Object o = Napi::Object::New(env);
  o.Set("method", kv::kv_method_name(c->config().method));
  o.Set("tokens", static_cast<double>(c->length()));
  o.Set("bytes", static_cast<double>(b.total));
  o.Set("f16Bytes", static_cast<double>(c->f16_bytes()));
  o.Set("ratio", b.total > 0 ? static_cast<double>(c->f16_bytes()) / static_cast<double>(b.total) : 0.0);
  o.Set("codes", static_cast<double>(b.codes));
  o.Set("scales", static_cast<double>(b.scales));
  o.Set("outliers", static_cast<double>(b.outliers));
  o.Set("lowRank", static_cast<double>(b.low_rank));
  o.Set("window", static_cast<double>(b.window));
  o.Set("index", static_cast<double>(b.index));
  return o;
}

void init_kv(Napi::Env env, Napi::Object exports) {
  // kvMethods(): the method names the native compressor knows.
  exports.Set("kvMethods", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
                Napi::Env e = info.Env();
                const kv::KvMethod ms[] = {kv::KvMethod::F16, kv::KvMethod::Kivi, kv::KvMethod::KvQuant, kv::KvMethod::Gear,
                                           kv::KvMethod::ZipCache, kv::KvMethod::H2O, kv::KvMethod::Streaming, kv::KvMethod::Ems};
                Napi::Array a = Napi::Array::New(e, 8);
                for (uint32_t i = 0; i < 8; ++i) a.Set(i, Napi::String::New(e, kv::kv_method_name(ms[i])));
                return a;
              }));
  // kvBf16DotSupported(): whether KvConfig::bf16_dot takes effect on this CPU.
  exports.Set("kvBf16DotSupported", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
                return Napi::Boolean::New(info.Env(), kv::kv_bf16_dot_supported());
              }));
}

}  // namespace tersor::napi
