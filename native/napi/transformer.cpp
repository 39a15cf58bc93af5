// Bindings of the transformer runtime: createTransformer(config) -> NativeTransformer, with
// NativeKvCache and NativeCapture objects (packages/native/src/binding/transformer.ts).
//
// Lifetimes: the C++ Transformer is shared (std::shared_ptr) by its JS wrapper, every cache and
// capture created from it and every forward / scoreSequences in flight, so it outlives all of them
// whatever the garbage collector does. Exclusivity: a cache or capture is leased by a forward from
// the moment forward() is called until its promise settles ("cache is busy" / "capture is busy",
// E_RANGE, otherwise); setWeight refuses while a forward or scoreSequences is pending.
#include <atomic>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "config.hpp"
#include "napi_util.hpp"
#include "tersor/kv.hpp"
#include "tersor/transformer.hpp"

namespace tersor::napi {

// Compressed caches (napi/kv.cpp): the kv options of createCache, and the cache's compression stats.
kv::KvConfig kv_config_from_js(const Napi::Value& value);
Napi::Value kv_stats_to_js(Napi::Env env, const KvCache& cache);

namespace {

struct Classes {
  Napi::FunctionReference transformer, cache, capture;
};


Napi::Object config_to_js(Napi::Env env, const TransformerConfig& c) {
  Napi::Object o = Napi::Object::New(env);
  auto num = [&](const char* k, double v) { o.Set(k, Napi::Number::New(env, v)); };
  o.Set("norm", c.norm == NormKind::RMSNorm ? "rmsnorm" : "layernorm");
  num("normEps", c.norm_eps);
  num("vocabSize", static_cast<double>(c.vocab_size));
  num("hidden", static_cast<double>(c.hidden));
  num("intermediate", static_cast<double>(c.intermediate));
  num("layers", static_cast<double>(c.layers));
  num("heads", static_cast<double>(c.heads));
  num("kvHeads", static_cast<double>(c.kv_heads));
  num("headDim", static_cast<double>(c.head_dim));
  o.Set("activation", c.activation == MlpActivation::Silu       ? "silu"
                      : c.activation == MlpActivation::GeluTanh ? "gelu_tanh"
                                                                : "gelu");
  o.Set("gatedMlp", c.gated_mlp);
  o.Set("qkvBias", c.qkv_bias);
  o.Set("outBias", c.out_bias);
  o.Set("tieEmbeddings", c.tie_embeddings);
  o.Set("learnedPositions", c.learned_positions);
  num("maxPositions", static_cast<double>(c.max_positions));
  if (c.rope) {
    const RopeConfig& rc = c.rope_config;
    Napi::Object r = Napi::Object::New(env);
    r.Set("theta", rc.theta);
    r.Set("style", rc.style == RopeStyle::NeoX ? "neox" : "interleaved");
    r.Set("rotaryDim", static_cast<double>(rc.rotary_dim));
    r.Set("scaling", rc.scaling == RopeScaling::None ? "none" : rc.scaling == RopeScaling::Linear ? "linear" : "llama3");
    r.Set("factor", rc.factor);
    r.Set("lowFreqFactor", rc.low_freq_factor);
    r.Set("highFreqFactor", rc.high_freq_factor);
    r.Set("originalMaxPosition", rc.original_max_position);
    r.Freeze();
    o.Set("rope", r);
  }
  num("slidingWindow", static_cast<double>(c.sliding_window));
  o.Freeze();
  return o;
}

std::string arg_string(const Napi::CallbackInfo& info, size_t i, const char* what) {
  require(i < info.Length() && info[i].IsString(), ErrorCode::Range, std::string(what) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

/// A non-negative integer from a JS value (array element, option).
size_t value_size(const Napi::Value& v, const std::string& what) {
  require(v.IsNumber(), ErrorCode::Range, what + " must be a non-negative integer");
  const double d = v.As<Napi::Number>().DoubleValue();
  require(d >= 0 && d <= 9007199254740991.0 && d == static_cast<double>(static_cast<size_t>(d)), ErrorCode::Range,
          what + " must be a non-negative integer, got " + v.ToString().Utf8Value());
  return static_cast<size_t>(d);
}

std::vector<size_t> size_list(const Napi::Value& v, const std::string& what) {
  require(v.IsArray(), ErrorCode::Range, what + " must be an array of non-negative integers");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<size_t> out(a.Length());
  for (uint32_t i = 0; i < a.Length(); ++i) out[i] = value_size(a.Get(i), what + "[" + std::to_string(i) + "]");
  return out;
}

// ---- KV cache ----------------------------------------------------------------------------------

class KvCacheWrap : public Napi::ObjectWrap<KvCacheWrap> {
 public:
  struct Init {
    std::shared_ptr<Transformer> model;
    std::shared_ptr<KvCache> cache;
  };

  static Napi::Function Define(Napi::Env env, Classes* cls) {
    return DefineClass(env, "NativeKvCache",
                       {InstanceAccessor<&KvCacheWrap::Length>("length"),
                        InstanceAccessor<&KvCacheWrap::Capacity>("capacity"),
                        InstanceMethod<&KvCacheWrap::Bytes>("bytes"),
                        InstanceMethod<&KvCacheWrap::KvStats>("kvStats"),
                        InstanceMethod<&KvCacheWrap::Truncate>("truncate"),
                        InstanceMethod<&KvCacheWrap::Clear>("clear")},
                       cls);
  }

  explicit KvCacheWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<KvCacheWrap>(info) {
    if (info.Length() < 1 || !info[0].IsExternal())
      throw Napi::TypeError::New(info.Env(), "NativeKvCache is created by NativeTransformer.createCache");
    const Init* init = info[0].As<Napi::External<Init>>().Data();
    model = init->model;
    cache = init->cache;
  }

  std::shared_ptr<Transformer> model;
  std::shared_ptr<KvCache> cache;

 private:
  void not_busy(const char* what) const {
    require(!cache->busy(), ErrorCode::Range, std::string(what) + ": cache is busy (a forward pass is using it)");
  }
  Napi::Value Length(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(cache->length()));
  }
  Napi::Value Capacity(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(cache->capacity()));
  }
  Napi::Value Bytes(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      if (cache->compressed()) not_busy("bytes");  // a compressed cache changes shape during a forward
      return Napi::Number::New(info.Env(), static_cast<double>(cache->bytes()));
    });
  }
  Napi::Value KvStats(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      not_busy("kvStats");
      return kv_stats_to_js(info.Env(), *cache);
    });
  }
  Napi::Value Truncate(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&] {
      const size_t n = arg_size(info, 0, "length");
      not_busy("truncate");
      cache->truncate(n);
      return info.Env().Undefined();
    });
  }
  Napi::Value Clear(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&] {
      not_busy("clear");
      cache->clear();
      return info.Env().Undefined();
    });
  }
};

// ---- capture -----------------------------------------------------------------------------------

class CaptureWrap : public Napi::ObjectWrap<CaptureWrap> {
 public:
  struct Init {
    std::shared_ptr<Transformer> model;
    std::shared_ptr<Capture> capture;
  };

  static Napi::Function Define(Napi::Env env, Classes* cls) {
    return DefineClass(env, "NativeCapture",
                       {InstanceAccessor<&CaptureWrap::Mode>("mode"), InstanceMethod<&CaptureWrap::Names>("names"),
                        InstanceMethod<&CaptureWrap::Rows>("rows"), InstanceMethod<&CaptureWrap::Get>("get"),
                        InstanceMethod<&CaptureWrap::Clear>("clear")},
                       cls);
  }

  explicit CaptureWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CaptureWrap>(info) {
    if (info.Length() < 1 || !info[0].IsExternal())
      throw Napi::TypeError::New(info.Env(), "NativeCapture is created by NativeTransformer.createCapture");
    const Init* init = info[0].As<Napi::External<Init>>().Data();
    model = init->model;
    capture = init->capture;
  }

  std::shared_ptr<Transformer> model;
  std::shared_ptr<Capture> capture;

 private:
  void not_busy(const char* what) const {
    require(!capture->busy(), ErrorCode::Range, std::string(what) + ": capture is busy (a forward pass is using it)");
  }
  Napi::Value Mode(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), capture->mode() == CaptureMode::Gram ? "gram" : "raw");
  }
  Napi::Value Names(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const auto& names = capture->names();
    Napi::Array a = Napi::Array::New(env, names.size());
    for (uint32_t i = 0; i < names.size(); ++i) a.Set(i, Napi::String::New(env, names[i]));
    return a;
  }
  Napi::Value Rows(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&] {
      const std::string name = arg_string(info, 0, "name");
      not_busy("rows");
      return Napi::Number::New(info.Env(), static_cast<double>(capture->rows(name)));
    });
  }
  Napi::Value Get(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      const std::string name = arg_string(info, 0, "name");
      not_busy("get");
      if (capture->mode() == CaptureMode::Gram) return to_typed_array<double>(info.Env(), capture->gram(name));
      return to_typed_array<float>(info.Env(), capture->raw(name));
    });
  }
  Napi::Value Clear(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&] {
      not_busy("clear");
      capture->clear();
      return info.Env().Undefined();
    });
  }
};

// ---- transformer -------------------------------------------------------------------------------

/// Exclusive use of a cache / capture and a count of pending calls on the model, released on the
/// main thread when the call settles (or when the call never gets queued).
struct Lease {
  std::shared_ptr<KvCache> cache;
  std::shared_ptr<Capture> capture;
  std::shared_ptr<std::atomic<int>> pending;
  bool done = false;
  void release() {
    if (done) return;
    done = true;
    if (cache) cache->release();
    if (capture) capture->release();
    if (pending) pending->fetch_sub(1, std::memory_order_acq_rel);
  }
  ~Lease() { release(); }
};

/// Main-thread completion of a forward / scoreSequences: frees the lease (so JS sees the cache and
/// capture busy until the promise settles, deterministically) and rethrows the worker's error for
/// AsyncTask to reject with its code.
void settle(Napi::Env env, Lease& lease, const std::exception_ptr& failure) {
  lease.release();
  if (!failure) return;
  try {
    std::rethrow_exception(failure);
  } catch (const std::bad_alloc&) {
    throw make_error(env, "E_NATIVE", "out of memory");
  }
}

class TransformerWrap : public Napi::ObjectWrap<TransformerWrap> {
 public:
  static Napi::Function Define(Napi::Env env, Classes* cls) {
    return DefineClass(env, "NativeTransformer",
                       {InstanceAccessor<&TransformerWrap::Config>("config"),
                        InstanceMethod<&TransformerWrap::SetWeight>("setWeight"),
                        InstanceMethod<&TransformerWrap::SetQuantizedWeight>("setQuantizedWeight"),
                        InstanceMethod<&TransformerWrap::MissingWeights>("missingWeights"),
                        InstanceMethod<&TransformerWrap::ParameterCount>("parameterCount"),
                        InstanceMethod<&TransformerWrap::CreateCache>("createCache"),
                        InstanceMethod<&TransformerWrap::CreateCapture>("createCapture"),
                        InstanceMethod<&TransformerWrap::Forward>("forward"),
                        InstanceMethod<&TransformerWrap::ScoreSequences>("scoreSequences")},
                       cls);
  }

  explicit TransformerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TransformerWrap>(info) {
    if (info.Length() < 1 || !info[0].IsExternal())
      throw Napi::TypeError::New(info.Env(), "NativeTransformer is created by createTransformer(config)");
    cls_ = static_cast<Classes*>(info.Data());
    model_ = *info[0].As<Napi::External<std::shared_ptr<Transformer>>>().Data();
    pending_ = std::make_shared<std::atomic<int>>(0);
    config_ = Napi::Persistent(config_to_js(info.Env(), model_->config()));
  }

 private:
  Napi::Value Config(const Napi::CallbackInfo&) { return config_.Value(); }

  // setWeight(name, data, dtype, shape)
  Napi::Value SetWeight(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guard(env, [&] {
      const std::string name = arg_string(info, 0, "name");
      const std::string dtype = arg_string(info, 2, "dtype");
      require(dtype == "f32" || dtype == "f16" || dtype == "bf16", ErrorCode::DType,
              "setWeight: dtype must be \"f32\", \"f16\" or \"bf16\", got \"" + dtype + "\"");
      require(info.Length() > 3, ErrorCode::Range, "setWeight: shape is required");
      const std::vector<size_t> shape = size_list(info[3], "setWeight: shape");
      require(pending_->load(std::memory_order_acquire) == 0, ErrorCode::Range,
              "setWeight: " + name + " cannot change while a forward pass is queued or running");
      if (dtype == "f32") {
        ArgArray<float> d = arg_array<float>(info, 1, "setWeight: f32 data");
        model_->set_weight(name, d.data, WeightDType::F32, d.size, shape);
      } else {
        ArgArray<uint16_t> d = arg_array<uint16_t>(info, 1, ("setWeight: " + dtype + " data").c_str());
        model_->set_weight(name, d.data, dtype == "f16" ? WeightDType::F16 : WeightDType::BF16, d.size, shape);
      }
      return env.Undefined();
    });
  }

  // setQuantizedWeight(name, bytes: Uint8Array, scheme, loraA?: Float32Array | null, loraB?: Float32Array | null)
  Napi::Value SetQuantizedWeight(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guard(env, [&] {
      const std::string name = arg_string(info, 0, "name");
      ArgArray<uint8_t> q = arg_array<uint8_t>(info, 1, "setQuantizedWeight: bytes");
      const std::string scheme = arg_string(info, 2, "scheme");
      const bool lora = info.Length() > 3 && !info[3].IsUndefined() && !info[3].IsNull();
      ArgArray<float> a, b;
      size_t rank = 0;
      if (lora) {
        a = arg_array<float>(info, 3, "setQuantizedWeight: loraA");
        b = arg_array<float>(info, 4, "setQuantizedWeight: loraB");
        const size_t in = a.size, out = b.size;
        // rank from the adapter sizes: A [rank, in], B [out, rank] with rank * in = |A|, out * rank = |B|
        const WeightSpec* spec = nullptr;
        for (const WeightSpec& s : model_->weight_specs())
          if (s.name == name) spec = &s;
        require(spec && spec->shape.size() == 2, ErrorCode::Format, "setQuantizedWeight: no linear named '" + name + "'");
        require(in % spec->shape[1] == 0 && in > 0, ErrorCode::Shape, "setQuantizedWeight: loraA must be [rank, in]");
        rank = in / spec->shape[1];
        require(out == spec->shape[0] * rank, ErrorCode::Shape, "setQuantizedWeight: loraB must be [out, rank]");
      }
      require(pending_->load(std::memory_order_acquire) == 0, ErrorCode::Range,
              "setQuantizedWeight: " + name + " cannot change while a forward pass is queued or running");
      model_->set_quantized_weight(name, scheme, q.data, q.size, lora ? a.data : nullptr, lora ? b.data : nullptr, rank);
      return env.Undefined();
    });
  }

  Napi::Value MissingWeights(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const std::vector<std::string> m = model_->missing_weights();
    Napi::Array a = Napi::Array::New(env, m.size());
    for (uint32_t i = 0; i < m.size(); ++i) a.Set(i, Napi::String::New(env, m[i]));
    return a;
  }

  Napi::Value ParameterCount(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(model_->parameter_count()));
  }

  Napi::Value CreateCache(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guard(env, [&]() -> Napi::Value {
      const size_t capacity = arg_size(info, 0, "capacity");
      const bool compressed = info.Length() > 1 && !info[1].IsUndefined() && !info[1].IsNull();
      KvCacheWrap::Init init{model_, compressed ? std::make_shared<KvCache>(*model_, capacity, kv_config_from_js(info[1]))
                                                : std::make_shared<KvCache>(*model_, capacity)};
      return cls_->cache.New({Napi::External<KvCacheWrap::Init>::New(env, &init)});
    });
  }

  Napi::Value CreateCapture(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guard(env, [&]() -> Napi::Value {
      const std::string mode = arg_string(info, 0, "mode");
      require(mode == "gram" || mode == "raw", ErrorCode::Range,
              "createCapture: mode must be \"gram\" or \"raw\", got \"" + mode + "\"");
      std::vector<size_t> layers;
      if (info.Length() > 1 && !absent(info[1])) {
        layers = size_list(info[1], "createCapture: layers");
        require(!layers.empty(), ErrorCode::Range, "createCapture: layers is empty (omit it to capture every layer)");
      }
      CaptureWrap::Init init{model_, std::make_shared<Capture>(
                                         *model_, mode == "gram" ? CaptureMode::Gram : CaptureMode::Raw, layers)};
      return cls_->capture.New({Napi::External<CaptureWrap::Init>::New(env, &init)});
    });
  }

  // forward(tokens: Int32Array, options?) -> Promise<ForwardResult>
  Napi::Value Forward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guard_async(env, [&]() -> Napi::Value {
      ArgArray<int32_t> tokens = arg_array<int32_t>(info, 0, "tokens", true);
      LogitsMode mode = LogitsMode::All;
      bool want_hidden = false;
      std::vector<size_t> hidden_layers;
      std::shared_ptr<KvCache> cache;
      std::shared_ptr<Capture> capture;
      if (info.Length() > 1 && !absent(info[1])) {
        require(info[1].IsObject(), ErrorCode::Range, "forward: options must be an object");
        Napi::Object o = info[1].As<Napi::Object>();
        Napi::Value c = o.Get("cache");
        if (!absent(c)) {
          require(c.IsObject() && c.As<Napi::Object>().InstanceOf(cls_->cache.Value()), ErrorCode::Range,
                  "forward: options.cache must be a NativeKvCache from createCache");
          cache = KvCacheWrap::Unwrap(c.As<Napi::Object>())->cache;
        }
        Napi::Value l = o.Get("logits");
        if (!absent(l)) {
          require(l.IsString(), ErrorCode::Range, "forward: options.logits must be \"all\", \"last\" or \"none\"");
          const std::string s = l.As<Napi::String>().Utf8Value();
          require(s == "all" || s == "last" || s == "none", ErrorCode::Range,
                  "forward: options.logits must be \"all\", \"last\" or \"none\", got \"" + s + "\"");
          mode = s == "all" ? LogitsMode::All : s == "last" ? LogitsMode::Last : LogitsMode::None;
        }
        Napi::Value h = o.Get("hiddenLayers");
        if (!absent(h)) {
          want_hidden = true;
          hidden_layers = size_list(h, "forward: options.hiddenLayers");
        }
        Napi::Value cp = o.Get("capture");
        if (!absent(cp)) {
          require(cp.IsObject() && cp.As<Napi::Object>().InstanceOf(cls_->capture.Value()), ErrorCode::Range,
                  "forward: options.capture must be a NativeCapture from createCapture");
          capture = CaptureWrap::Unwrap(cp.As<Napi::Object>())->capture;
        }
      }
      require(!cache || cache->owner() == model_.get(), ErrorCode::Range,
              "forward: the cache belongs to another transformer");
      require(!capture || capture->owner() == model_.get(), ErrorCode::Range,
              "forward: the capture belongs to another transformer");

      auto lease = std::make_shared<Lease>();
      if (cache) {
        require(cache->try_acquire(), ErrorCode::Range, "forward: cache is busy (another forward pass is using it)");
        lease->cache = cache;
      }
      if (capture) {
        require(capture->try_acquire(), ErrorCode::Range,
                "forward: capture is busy (another forward pass is using it)");
        lease->capture = capture;
      }
      pending_->fetch_add(1, std::memory_order_acq_rel);
      lease->pending = pending_;

      auto model = model_;
      auto out = std::make_shared<ForwardOutput>();
      auto failure = std::make_shared<std::exception_ptr>();
      const int32_t* tok = tokens.data;
      const size_t n = tokens.size;
      return run_async(
          env,
          [=] {
            try {
              *out = model->forward(tok, n, cache.get(), mode, hidden_layers, capture.get());
            } catch (...) {
              *failure = std::current_exception();
            }
          },
          [=](Napi::Env env) -> Napi::Value {
            settle(env, *lease, *failure);
            Napi::Object r = Napi::Object::New(env);
            if (mode != LogitsMode::None) r.Set("logits", to_typed_array<float>(env, std::move(out->logits)));
            if (want_hidden) {
              Napi::Array a = Napi::Array::New(env, out->hidden.size());
              for (uint32_t i = 0; i < out->hidden.size(); ++i)
                a.Set(i, to_typed_array<float>(env, std::move(out->hidden[i])));
              r.Set("hidden", a);
            }
            return r;
          },
          std::move(tokens.keep));
    });
  }

  // scoreSequences(tokens, offsets, scoreFrom) -> Promise<{logprob, count}>
  Napi::Value ScoreSequences(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guard_async(env, [&]() -> Napi::Value {
      ArgArray<int32_t> tokens = arg_array<int32_t>(info, 0, "tokens", true);
      ArgArray<int32_t> offsets = arg_array<int32_t>(info, 1, "offsets", true);
      ArgArray<int32_t> from = arg_array<int32_t>(info, 2, "scoreFrom", true);
      require(offsets.size == from.size + 1, ErrorCode::Shape,
              "scoreSequences: offsets has " + std::to_string(offsets.size) + " entries, expected scoreFrom.length + 1 = " +
                  std::to_string(from.size + 1));
      auto lease = std::make_shared<Lease>();
      pending_->fetch_add(1, std::memory_order_acq_rel);
      lease->pending = pending_;
      auto model = model_;
      const size_t n_seqs = from.size;
      auto failure = std::make_shared<std::exception_ptr>();
      auto lp = std::make_shared<std::vector<double>>(n_seqs);
      auto cnt = std::make_shared<std::vector<int32_t>>(n_seqs);
      const int32_t *t = tokens.data, *off = offsets.data, *f = from.data;
      const size_t n_tokens = tokens.size;
      return run_async(
          env,
          [=] {
            try {
              model->score_sequences(t, n_tokens, off, n_seqs, f, lp->data(), cnt->data());
            } catch (...) {
              *failure = std::current_exception();
            }
          },
          [=](Napi::Env env) -> Napi::Value {
            settle(env, *lease, *failure);
            Napi::Object r = Napi::Object::New(env);
            r.Set("logprob", to_typed_array<double>(env, std::move(*lp)));
            r.Set("count", to_typed_array<int32_t>(env, std::move(*cnt)));
            return r;
          },
          std::move(tokens.keep), std::move(offsets.keep), std::move(from.keep));
    });
  }

  Classes* cls_ = nullptr;
  std::shared_ptr<Transformer> model_;
  std::shared_ptr<std::atomic<int>> pending_;
  Napi::ObjectReference config_;
};

// createTransformer(config) -> NativeTransformer
Napi::Value CreateTransformer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    require(info.Length() >= 1, ErrorCode::Range, "createTransformer: config is required");
    auto model = std::make_shared<Transformer>(parse_transformer_config(info[0]));
    Classes* cls = static_cast<Classes*>(info.Data());
    return cls->transformer.New({Napi::External<std::shared_ptr<Transformer>>::New(env, &model)});
  });
}

}  // namespace

void init_transformer(Napi::Env env, Napi::Object exports) {
  auto* cls = new Classes();
  cls->transformer = Napi::Persistent(TransformerWrap::Define(env, cls));
  cls->cache = Napi::Persistent(KvCacheWrap::Define(env, cls));
  cls->capture = Napi::Persistent(CaptureWrap::Define(env, cls));
  env.AddCleanupHook([cls] { delete cls; });
  exports.Set("createTransformer", Napi::Function::New(env, CreateTransformer, "createTransformer", cls));
}

}  // namespace tersor::napi
