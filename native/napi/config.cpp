// Parsing of plain JS option objects shared by the bindings: typed fields with messages that name the
// field as the binding spells it, and the TransformerConfig of packages/native/src/binding/transformer.ts
// (createTransformer and TrainableTransformer take the same config).
#include "config.hpp"

namespace tersor::napi {

bool absent(const Napi::Value& v) { return v.IsUndefined() || v.IsNull(); }

double cfg_number(Napi::Object o, const char* name, const std::string& prefix, bool optional,
                  double fallback) {
  Napi::Value v = o.Get(name);
  if (optional && absent(v)) return fallback;
  require(v.IsNumber(), ErrorCode::Range, prefix + name + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

size_t cfg_size(Napi::Object o, const char* name, const std::string& prefix, bool optional,
                size_t fallback) {
  Napi::Value v = o.Get(name);
  if (optional && absent(v)) return fallback;
  require(v.IsNumber(), ErrorCode::Range, prefix + name + " must be a non-negative integer");
  const double d = v.As<Napi::Number>().DoubleValue();
  require(d >= 0 && d <= 9007199254740991.0 && d == static_cast<double>(static_cast<size_t>(d)), ErrorCode::Range,
          prefix + name + " must be a non-negative integer, got " + v.ToString().Utf8Value());
  return static_cast<size_t>(d);
}

bool cfg_bool(Napi::Object o, const char* name, const std::string& prefix) {
  Napi::Value v = o.Get(name);
  require(v.IsBoolean(), ErrorCode::Range, prefix + name + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

std::string cfg_string(Napi::Object o, const char* name, const std::string& prefix,
                       const std::vector<const char*>& allowed, const char* fallback) {
  Napi::Value v = o.Get(name);
  if (fallback && absent(v)) return fallback;
  std::string list;
  for (size_t i = 0; i < allowed.size(); ++i) list += (i ? ", \"" : "\"") + std::string(allowed[i]) + "\"";
  require(v.IsString(), ErrorCode::Range, prefix + name + " must be one of " + list);
  const std::string s = v.As<Napi::String>().Utf8Value();
  for (const char* a : allowed)
    if (s == a) return s;
  fail(ErrorCode::Range, prefix + name + " must be one of " + list + ", got \"" + s + "\"");
}

TransformerConfig parse_transformer_config(const Napi::Value& value) {
  require(value.IsObject(), ErrorCode::Range, "config must be an object");
  Napi::Object o = value.As<Napi::Object>();
  const std::string p = "config.";
  TransformerConfig c;
  c.norm = cfg_string(o, "norm", p, {"rmsnorm", "layernorm"}) == "rmsnorm" ? NormKind::RMSNorm : NormKind::LayerNorm;
  c.norm_eps = cfg_number(o, "normEps", p);
  c.vocab_size = cfg_size(o, "vocabSize", p);
  c.hidden = cfg_size(o, "hidden", p);
  c.intermediate = cfg_size(o, "intermediate", p);
  c.layers = cfg_size(o, "layers", p);
  c.heads = cfg_size(o, "heads", p);
  c.kv_heads = cfg_size(o, "kvHeads", p);
  c.head_dim = cfg_size(o, "headDim", p);
  const std::string act = cfg_string(o, "activation", p, {"silu", "gelu_tanh", "gelu"});
  c.activation = act == "silu" ? MlpActivation::Silu : act == "gelu_tanh" ? MlpActivation::GeluTanh : MlpActivation::Gelu;
  c.gated_mlp = cfg_bool(o, "gatedMlp", p);
  c.qkv_bias = cfg_bool(o, "qkvBias", p);
  c.out_bias = cfg_bool(o, "outBias", p);
  c.tie_embeddings = cfg_bool(o, "tieEmbeddings", p);
  c.learned_positions = cfg_bool(o, "learnedPositions", p);
  c.max_positions = cfg_size(o, "maxPositions", p);
  c.sliding_window = cfg_size(o, "slidingWindow", p, true, 0);
  Napi::Value rope = o.Get("rope");
  if (!absent(rope)) {
    require(rope.IsObject(), ErrorCode::Range, "config.rope must be an object");
    Napi::Object r = rope.As<Napi::Object>();
    const std::string rp = "config.rope.";
    c.rope = true;
    RopeConfig& rc = c.rope_config;
    rc.theta = cfg_number(r, "theta", rp);
    rc.style = cfg_string(r, "style", rp, {"neox", "interleaved"}, "neox") == "neox" ? RopeStyle::NeoX
                                                                                    : RopeStyle::Interleaved;
    rc.rotary_dim = cfg_size(r, "rotaryDim", rp, true, 0);
    const std::string sc = cfg_string(r, "scaling", rp, {"none", "linear", "llama3"}, "none");
    rc.scaling = sc == "none" ? RopeScaling::None : sc == "linear" ? RopeScaling::Linear : RopeScaling::Llama3;
    rc.factor = cfg_number(r, "factor", rp, true, 1.0);
    rc.low_freq_factor = cfg_number(r, "lowFreqFactor", rp, true, 1.0);
    rc.high_freq_factor = cfg_number(r, "highFreqFactor", rp, true, 4.0);
    rc.original_max_position = cfg_number(r, "originalMaxPosition", rp, true, 8192.0);
  }
  transformer_config_validate(c);
  return c;
}

}  // namespace tersor::napi
