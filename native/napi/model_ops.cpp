// Bindings for the transformer runtime kernels (tersor/ops.hpp, tersor/attention.hpp).
// Every function takes Float32Arrays (zero-copy, byteOffset honoured, kept alive while the worker
// runs), validates shapes on the calling thread, computes on the libuv pool and resolves with a new
// Float32Array; inputs are never modified. Shape problems reject with E_SHAPE, bad values (eps,
// options, positions) with E_RANGE, wrong array types with E_DTYPE.
#include <cmath>
#include <memory>

#include "napi_util.hpp"
#include "tersor/attention.hpp"
#include "tersor/ops.hpp"

namespace tersor::napi {
namespace {

using FloatVec = std::shared_ptr<std::vector<float>>;

Napi::Value resolve_floats(Napi::Env env, const FloatVec& out) { return to_typed_array<float>(env, std::move(*out)); }

bool present(const Napi::CallbackInfo& info, size_t i) {
  return i < info.Length() && !info[i].IsUndefined() && !info[i].IsNull();
}

/// An optional Float32Array argument (undefined / null = absent).
ArgArray<float> opt_array(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!present(info, i)) return {};
  return arg_array<float>(info, i, what, true);
}

/// The options object at `i` (an empty object when absent).
Napi::Object options_at(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!present(info, i)) return Napi::Object::New(info.Env());
  if (!info[i].IsObject()) throw make_error(info.Env(), "E_RANGE", std::string(what) + " must be an object");
  return info[i].As<Napi::Object>();
}

bool has(const Napi::Object& o, const char* key) {
  if (!o.Has(key)) return false;
  const Napi::Value v = o.Get(key);
  return !v.IsUndefined() && !v.IsNull();
}

double get_number(Napi::Env env, const Napi::Object& o, const char* key, double fallback, const char* code,
                  const std::string& where) {
  if (!has(o, key)) return fallback;
  const Napi::Value v = o.Get(key);
  if (!v.IsNumber() || !std::isfinite(v.As<Napi::Number>().DoubleValue()))
    throw make_error(env, code, where + "." + key + " must be a finite number");
  return v.As<Napi::Number>().DoubleValue();
}

size_t get_size(Napi::Env env, const Napi::Object& o, const char* key, size_t fallback, const char* code,
                const std::string& where) {
  if (!has(o, key)) return fallback;
  const double v = get_number(env, o, key, 0, code, where);
  if (!(v >= 0) || v != std::floor(v) || v > 9007199254740991.0)
    throw make_error(env, code, where + "." + key + " must be a non-negative integer");
  return static_cast<size_t>(v);
}

size_t required_size(Napi::Env env, const Napi::Object& o, const char* key, const char* code, const std::string& where) {
  if (!has(o, key)) throw make_error(env, code, where + "." + key + " is required");
  return get_size(env, o, key, 0, code, where);
}

std::string get_string(Napi::Env env, const Napi::Object& o, const char* key, const std::string& fallback,
                       const std::string& where) {
  if (!has(o, key)) return fallback;
  const Napi::Value v = o.Get(key);
  if (!v.IsString()) throw make_error(env, "E_RANGE", where + "." + key + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

void expect_len(const ArgArray<float>& a, size_t n, const char* what, const std::string& as) {
  require(a.size == n, ErrorCode::Shape,
          std::string(what) + " has " + std::to_string(a.size) + " elements, expected " + as + " = " + std::to_string(n));
}

float arg_eps(const Napi::CallbackInfo& info, size_t i) {
  if (!present(info, i)) return 1e-5f;
  return static_cast<float>(arg_number(info, i, "eps"));
}

// (x, weight | null, rows, dim, eps = 1e-5) -> Promise<Float32Array>
TERSOR_NAPI(RmsNorm) {
  return guard_async(info.Env(), [&]() -> Napi::Value {
    auto x = arg_array<float>(info, 0, "x", true);
    auto w = opt_array(info, 1, "weight");
    const size_t rows = arg_size(info, 2, "rows"), dim = arg_size(info, 3, "dim");
    const float eps = arg_eps(info, 4);
    expect_len(x, rows * dim, "x", "rows * dim");
    if (w.data) expect_len(w, dim, "weight", "dim");
    require(std::isfinite(eps) && eps >= 0, ErrorCode::Range, "eps must be finite and >= 0");
    auto out = std::make_shared<std::vector<float>>(x.size);
    const float *xp = x.data, *wp = w.data;
    return run_async(
        info.Env(), [=] { rms_norm(xp, wp, out->data(), rows, dim, eps); },
        [=](Napi::Env env) { return resolve_floats(env, out); }, std::move(x.keep), std::move(w.keep));
  });
}

// (x, weight | null, bias | null, rows, dim, eps = 1e-5) -> Promise<Float32Array>
TERSOR_NAPI(LayerNorm) {
  return guard_async(info.Env(), [&]() -> Napi::Value {
    auto x = arg_array<float>(info, 0, "x", true);
    auto w = opt_array(info, 1, "weight");
    auto b = opt_array(info, 2, "bias");
    const size_t rows = arg_size(info, 3, "rows"), dim = arg_size(info, 4, "dim");
    const float eps = arg_eps(info, 5);
    expect_len(x, rows * dim, "x", "rows * dim");
    if (w.data) expect_len(w, dim, "weight", "dim");
    if (b.data) expect_len(b, dim, "bias", "dim");
    require(std::isfinite(eps) && eps >= 0, ErrorCode::Range, "eps must be finite and >= 0");
    auto out = std::make_shared<std::vector<float>>(x.size);
    const float *xp = x.data, *wp = w.data, *bp = b.data;
    return run_async(
        info.Env(), [=] { layer_norm(xp, wp, bp, out->data(), rows, dim, eps); },
        [=](Napi::Env env) { return resolve_floats(env, out); }, std::move(x.keep), std::move(w.keep),
        std::move(b.keep));
  });
}

RopeConfig rope_config(Napi::Env env, const Napi::Object& o, size_t head_dim) {
  RopeConfig c;
  c.head_dim = head_dim;
  c.rotary_dim = get_size(env, o, "rotaryDim", 0, "E_SHAPE", "options");
  c.theta = get_number(env, o, "theta", 10000.0, "E_RANGE", "options");
  const std::string style = get_string(env, o, "style", "neox", "options");
  if (style == "neox") c.style = RopeStyle::NeoX;
  else if (style == "interleaved") c.style = RopeStyle::Interleaved;
  else throw make_error(env, "E_RANGE", "options.style must be \"neox\" or \"interleaved\", got \"" + style + "\"");
  if (has(o, "scaling")) {
    const Napi::Value sv = o.Get("scaling");
    if (!sv.IsObject()) throw make_error(env, "E_RANGE", "options.scaling must be an object");
    const Napi::Object s = sv.As<Napi::Object>();
    const std::string type = get_string(env, s, "type", "", "options.scaling");
    c.factor = get_number(env, s, "factor", 1.0, "E_RANGE", "options.scaling");
    if (type == "default" || type.empty()) {
      c.scaling = RopeScaling::None;
    } else if (type == "linear") {
      c.scaling = RopeScaling::Linear;
    } else if (type == "llama3") {
      c.scaling = RopeScaling::Llama3;
      c.low_freq_factor = get_number(env, s, "lowFreqFactor", 1.0, "E_RANGE", "options.scaling");
      c.high_freq_factor = get_number(env, s, "highFreqFactor", 4.0, "E_RANGE", "options.scaling");
      c.original_max_position =
          get_number(env, s, "originalMaxPositionEmbeddings", 8192.0, "E_RANGE", "options.scaling");
    } else {
      throw make_error(env, "E_RANGE",
                       "options.scaling.type must be \"default\", \"linear\" or \"llama3\", got \"" + type + "\"");
    }
  }
  rope_validate(c);
  return c;
}

// (x, positions: Int32Array, tokens, heads, headDim, options?) -> Promise<Float32Array>
TERSOR_NAPI(Rope) {
  return guard_async(info.Env(), [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    auto x = arg_array<float>(info, 0, "x", true);
    auto pos = arg_array<int32_t>(info, 1, "positions", true);
    const size_t tokens = arg_size(info, 2, "tokens"), heads = arg_size(info, 3, "heads"),
                 head_dim = arg_size(info, 4, "headDim");
    const Napi::Object o = options_at(info, 5, "options");
    const RopeConfig cfg = rope_config(env, o, head_dim);
    const size_t stride = get_size(env, o, "tokenStride", heads * head_dim, "E_SHAPE", "options");
    require(stride >= heads * head_dim, ErrorCode::Shape, "options.tokenStride must be >= heads * headDim");
    require(pos.size == tokens, ErrorCode::Shape,
            "positions has " + std::to_string(pos.size) + " elements, expected tokens = " + std::to_string(tokens));
    const size_t need = tokens == 0 ? 0 : (tokens - 1) * stride + heads * head_dim;
    require(x.size >= need && (stride != heads * head_dim || x.size == need), ErrorCode::Shape,
            "x has " + std::to_string(x.size) + " elements, expected " + std::to_string(need) +
                " for [tokens, heads, headDim] with the given tokenStride");
    for (size_t t = 0; t < tokens; ++t)
      require(pos.data[t] >= 0, ErrorCode::Range, "positions[" + std::to_string(t) + "] is negative");
    auto out = std::make_shared<std::vector<float>>(x.data, x.data + x.size);
    const int32_t* pp = pos.data;
    return run_async(
        env, [=] { rope_apply(out->data(), tokens, heads, pp, cfg, stride); },
        [=](Napi::Env e) { return resolve_floats(e, out); }, std::move(x.keep), std::move(pos.keep));
  });
}

// (gate, up) -> Promise<Float32Array>
TERSOR_NAPI(Swiglu) {
  return guard_async(info.Env(), [&]() -> Napi::Value {
    auto g = arg_array<float>(info, 0, "gate", true);
    auto u = arg_array<float>(info, 1, "up", true);
    require(g.size == u.size, ErrorCode::Shape,
            "gate has " + std::to_string(g.size) + " elements but up has " + std::to_string(u.size));
    auto out = std::make_shared<std::vector<float>>(g.size);
    const float *gp = g.data, *up = u.data;
    const size_t n = g.size;
    return run_async(
        info.Env(), [=] { swiglu(gp, up, out->data(), n); }, [=](Napi::Env env) { return resolve_floats(env, out); },
        std::move(g.keep), std::move(u.keep));
  });
}

// (x, approximate: "tanh" | "none" = "tanh") -> Promise<Float32Array>
TERSOR_NAPI(Gelu) {
  return guard_async(info.Env(), [&]() -> Napi::Value {
    auto x = arg_array<float>(info, 0, "x", true);
    GeluKind kind = GeluKind::Tanh;
    if (present(info, 1)) {
      if (!info[1].IsString()) throw make_error(info.Env(), "E_RANGE", "approximate must be \"tanh\" or \"none\"");
      const std::string a = info[1].As<Napi::String>().Utf8Value();
      if (a == "none") kind = GeluKind::Erf;
      else if (a != "tanh") throw make_error(info.Env(), "E_RANGE", "approximate must be \"tanh\" or \"none\", got \"" + a + "\"");
    }
    auto out = std::make_shared<std::vector<float>>(x.size);
    const float* xp = x.data;
    const size_t n = x.size;
    return run_async(
        info.Env(), [=] { gelu(xp, out->data(), n, kind); }, [=](Napi::Env env) { return resolve_floats(env, out); },
        std::move(x.keep));
  });
}

// (x, rows, cols) -> Promise<Float32Array>
TERSOR_NAPI(Softmax) {
  return guard_async(info.Env(), [&]() -> Napi::Value {
    auto x = arg_array<float>(info, 0, "x", true);
    const size_t rows = arg_size(info, 1, "rows"), cols = arg_size(info, 2, "cols");
    expect_len(x, rows * cols, "x", "rows * cols");
    auto out = std::make_shared<std::vector<float>>(x.size);
    const float* xp = x.data;
    return run_async(
        info.Env(), [=] { softmax(xp, out->data(), rows, cols); }, [=](Napi::Env env) { return resolve_floats(env, out); },
        std::move(x.keep));
  });
}

// (q, k, v, shape: {nQ, nKv, heads, kvHeads?, headDim}, options?) -> Promise<Float32Array [nQ, heads, headDim]>
Napi::Value attention(const Napi::CallbackInfo& info, bool flash) {
  return guard_async(info.Env(), [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    auto q = arg_array<float>(info, 0, "q", true);
    auto k = arg_array<float>(info, 1, "k", true);
    auto v = arg_array<float>(info, 2, "v", true);
    if (!present(info, 3) || !info[3].IsObject())
      throw make_error(env, "E_SHAPE", "shape must be an object {nQ, nKv, heads, kvHeads?, headDim}");
    const Napi::Object s = info[3].As<Napi::Object>();
    const Napi::Object o = options_at(info, 4, "options");
    AttentionParams p;
    p.n_q = required_size(env, s, "nQ", "E_SHAPE", "shape");
    p.n_kv = required_size(env, s, "nKv", "E_SHAPE", "shape");
    p.heads = required_size(env, s, "heads", "E_SHAPE", "shape");
    p.kv_heads = get_size(env, s, "kvHeads", p.heads, "E_SHAPE", "shape");
    p.head_dim = required_size(env, s, "headDim", "E_SHAPE", "shape");
    const double scale = get_number(env, o, "scale", 0.0, "E_RANGE", "options");
    require(scale >= 0, ErrorCode::Range, "options.scale must be positive");
    p.scale = static_cast<float>(scale);
    if (has(o, "causal")) p.causal = o.Get("causal").ToBoolean().Value();
    p.window = get_size(env, o, "window", 0, "E_RANGE", "options");
    p.sinks = get_size(env, o, "sinks", 0, "E_RANGE", "options");
    // default: the queries are the last n_q positions (prefill: 0; decode: nKv - 1)
    p.q_start = get_size(env, o, "qStart", p.n_kv >= p.n_q ? p.n_kv - p.n_q : 0, "E_RANGE", "options");
    p.q_row_stride = get_size(env, o, "qRowStride", 0, "E_SHAPE", "options");
    p.q_head_stride = get_size(env, o, "qHeadStride", 0, "E_SHAPE", "options");
    p.k_row_stride = get_size(env, o, "kRowStride", 0, "E_SHAPE", "options");
    p.k_head_stride = get_size(env, o, "kHeadStride", 0, "E_SHAPE", "options");
    p.v_row_stride = get_size(env, o, "vRowStride", 0, "E_SHAPE", "options");
    p.v_head_stride = get_size(env, o, "vHeadStride", 0, "E_SHAPE", "options");
    const AttentionParams r = attention_resolve(p);  // E_SHAPE on inconsistent shapes
    const size_t qe = attention_q_extent(r), ke = attention_kv_extent(r, false), ve = attention_kv_extent(r, true);
    require(q.size >= qe, ErrorCode::Shape, "q has " + std::to_string(q.size) + " elements, needs at least " + std::to_string(qe));
    require(k.size >= ke, ErrorCode::Shape, "k has " + std::to_string(k.size) + " elements, needs at least " + std::to_string(ke));
    require(v.size >= ve, ErrorCode::Shape, "v has " + std::to_string(v.size) + " elements, needs at least " + std::to_string(ve));
    auto out = std::make_shared<std::vector<float>>(attention_o_extent(r));
    const float *qp = q.data, *kp = k.data, *vp = v.data;
    return run_async(
        env,
        [=] {
          if (flash) flash_attention(qp, kp, vp, out->data(), r);
          else naive_attention(qp, kp, vp, out->data(), r);
        },
        [=](Napi::Env e) { return resolve_floats(e, out); }, std::move(q.keep), std::move(k.keep), std::move(v.keep));
  });
}

TERSOR_NAPI(FlashAttention) { return attention(info, true); }
TERSOR_NAPI(NaiveAttention) { return attention(info, false); }

}  // namespace

void init_model_ops(Napi::Env env, Napi::Object exports) {
  exports.Set("rmsNorm", Napi::Function::New(env, RmsNorm, "rmsNorm"));
  exports.Set("layerNorm", Napi::Function::New(env, LayerNorm, "layerNorm"));
  exports.Set("rope", Napi::Function::New(env, Rope, "rope"));
  exports.Set("swiglu", Napi::Function::New(env, Swiglu, "swiglu"));
  exports.Set("gelu", Napi::Function::New(env, Gelu, "gelu"));
  exports.Set("softmax", Napi::Function::New(env, Softmax, "softmax"));
  exports.Set("flashAttention", Napi::Function::New(env, FlashAttention, "flashAttention"));
  exports.Set("naiveAttention", Napi::Function::New(env, NaiveAttention, "naiveAttention"));
}

}  // namespace tersor::napi
