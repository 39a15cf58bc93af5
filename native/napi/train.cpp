// Bindings for the trainable transformer (forward/backward, AdamW): the JS class TrainableTransformer
// of packages/native/src/binding/train.ts over tersor::train::TrainableTransformer<float>.
//
// Lifetimes: the C++ model is shared (std::shared_ptr) by its JS wrapper, every zero-copy view
// (params / grads / adamState, external ArrayBuffers whose finalizers hold a reference) and every
// call in flight. Exclusivity: step / evaluate / forwardLogits / backwardLogits lease the model from
// the call until the promise settles; a second call meanwhile rejects (E_RANGE, "busy"), and
// zeroGrad / adamw throw. Arguments are checked on the calling thread, so a bad argument rejects
// before any work is queued.
#include <cmath>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "config.hpp"
#include "napi_util.hpp"
#include "tersor/train.hpp"

namespace tersor::napi {
namespace {

using Model = train::TrainableTransformer<float>;

// ---- typed-array fields of an options object -----------------------------------------------------

template <class T>
ArgArray<T> field_array(Napi::Object o, const char* name, const std::string& what) {
  Napi::Value v = o.Get(name);
  require(v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == TypedArrayTraits<T>::type,
          ErrorCode::DType, what + " must be a " + TypedArrayTraits<T>::name);
  Napi::TypedArrayOf<T> arr = v.As<Napi::TypedArrayOf<T>>();
  ArgArray<T> out;
  out.data = arr.Data();
  out.size = arr.ElementLength();
  out.keep = Napi::Persistent(static_cast<Napi::Object>(arr));
  return out;
}

/// Parsed targets with references that keep their arrays alive during the async work.
struct TargetsArg {
  train::Targets t;
  Napi::ObjectReference keep_a, keep_b;
};

TargetsArg parse_targets(const Napi::Value& v) {
  require(v.IsObject(), ErrorCode::Range, "targets must be an object { kind, ... }");
  Napi::Object o = v.As<Napi::Object>();
  const std::string kind = cfg_string(o, "kind", "targets.", {"hard", "dense", "sparse"});
  TargetsArg a;
  if (kind == "hard") {
    ArgArray<int32_t> ids = field_array<int32_t>(o, "ids", "targets.ids");
    a.t.kind = train::TargetKind::Hard;
    a.t.ids = ids.data;
    a.t.ids_size = ids.size;
    a.keep_a = std::move(ids.keep);
  } else if (kind == "dense") {
    ArgArray<float> probs = field_array<float>(o, "probs", "targets.probs");
    a.t.kind = train::TargetKind::Dense;
    a.t.probs = probs.data;
    a.t.probs_size = probs.size;
    a.keep_a = std::move(probs.keep);
  } else {
    a.t.kind = train::TargetKind::Sparse;
    a.t.k = cfg_size(o, "k", "targets.");
    ArgArray<int32_t> ids = field_array<int32_t>(o, "ids", "targets.ids");
    ArgArray<float> w = field_array<float>(o, "weights", "targets.weights");
    a.t.ids = ids.data;
    a.t.ids_size = ids.size;
    a.t.weights = w.data;
    a.t.weights_size = w.size;
    a.keep_a = std::move(ids.keep);
    a.keep_b = std::move(w.keep);
  }
  return a;
}

Napi::Object loss_to_js(Napi::Env env, const train::LossSum& l) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("loss", Napi::Number::New(env, l.loss));
  o.Set("count", Napi::Number::New(env, static_cast<double>(l.count)));
  return o;
}

/// A Float32Array over `n` floats at `data` owned by `model` (kept alive by the view).
Napi::Value view(Napi::Env env, const std::shared_ptr<Model>& model, float* data, size_t n) {
  auto* hold = new std::shared_ptr<Model>(model);
  Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(
      env, data, n * sizeof(float), [](Napi::Env, void*, std::shared_ptr<Model>* h) { delete h; }, hold);
  return Napi::Float32Array::New(env, n, buf, 0);
}

class TrainWrap : public Napi::ObjectWrap<TrainWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "TrainableTransformer",
                       {InstanceAccessor<&TrainWrap::ParameterCount>("parameterCount"),
                        InstanceMethod<&TrainWrap::Parameters>("parameters"),
                        InstanceMethod<&TrainWrap::Params>("params"),
                        InstanceMethod<&TrainWrap::Grads>("grads"),
                        InstanceMethod<&TrainWrap::AdamState>("adamState"),
                        InstanceMethod<&TrainWrap::ZeroGrad>("zeroGrad"),
                        InstanceMethod<&TrainWrap::Step>("step"),
                        InstanceMethod<&TrainWrap::Evaluate>("evaluate"),
                        InstanceMethod<&TrainWrap::ForwardLogits>("forwardLogits"),
                        InstanceMethod<&TrainWrap::BackwardLogits>("backwardLogits"),
                        InstanceMethod<&TrainWrap::AdamW>("adamw")});
  }

  // new TrainableTransformer(config, { seed?, initStd? })
  explicit TrainWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TrainWrap>(info) {
    Napi::Env env = info.Env();
    guard(env, [&]() -> Napi::Value {
      require(info.Length() >= 1, ErrorCode::Range, "TrainableTransformer: config is required");
      TransformerConfig cfg = parse_transformer_config(info[0]);
      uint64_t seed = 0;
      double init_std = 0.02;
      if (info.Length() > 1 && !absent(info[1])) {
        require(info[1].IsObject(), ErrorCode::Range, "TrainableTransformer: options must be an object");
        Napi::Object o = info[1].As<Napi::Object>();
        seed = static_cast<uint64_t>(cfg_size(o, "seed", "options.", true, 0));
        init_std = cfg_number(o, "initStd", "options.", true, 0.02);
      }
      model_ = std::make_shared<Model>(std::move(cfg), seed, init_std);
      return env.Undefined();
    });
  }

 private:
  Napi::Value ParameterCount(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(model_->parameter_count()));
  }

  Napi::Value Parameters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const auto& ps = model_->parameters();
    Napi::Array a = Napi::Array::New(env, ps.size());
    for (uint32_t i = 0; i < ps.size(); ++i) {
      const train::ParamInfo& p = ps[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", p.name);
      Napi::Array shape = Napi::Array::New(env, p.shape.size());
      for (uint32_t j = 0; j < p.shape.size(); ++j) shape.Set(j, Napi::Number::New(env, static_cast<double>(p.shape[j])));
      o.Set("shape", shape);
      o.Set("offset", Napi::Number::New(env, static_cast<double>(p.offset)));
      o.Set("size", Napi::Number::New(env, static_cast<double>(p.size)));
      o.Set("decay", Napi::Boolean::New(env, p.decay));
      a.Set(i, o);
    }
    return a;
  }

  Napi::Value Params(const Napi::CallbackInfo& info) {
    return view(info.Env(), model_, model_->params(), model_->parameter_count());
  }
  Napi::Value Grads(const Napi::CallbackInfo& info) {
    return view(info.Env(), model_, model_->grads(), model_->parameter_count());
  }
  Napi::Value AdamState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("m", view(env, model_, model_->adam_m(), model_->parameter_count()));
    o.Set("v", view(env, model_, model_->adam_v(), model_->parameter_count()));
    return o;
  }

  /// Synchronous exclusive section (zeroGrad, adamw).
  template <class F>
  Napi::Value exclusive(Napi::Env env, const char* what, F&& f) {
    return guard(env, [&]() -> Napi::Value {
      require(model_->try_acquire(), ErrorCode::Range,
              std::string(what) + ": the model is busy with a step / evaluate / forwardLogits / backwardLogits call");
      try {
        Napi::Value v = f();
        model_->release();
        return v;
      } catch (...) {
        model_->release();
        throw;
      }
    });
  }

  Napi::Value ZeroGrad(const Napi::CallbackInfo& info) {
    return exclusive(info.Env(), "zeroGrad", [&]() -> Napi::Value {
      model_->zero_grad();
      return info.Env().Undefined();
    });
  }

  Napi::Value AdamW(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return exclusive(env, "adamw", [&]() -> Napi::Value {
      require(info.Length() >= 1 && info[0].IsObject(), ErrorCode::Range, "adamw: options must be an object");
      Napi::Object o = info[0].As<Napi::Object>();
      const std::string p = "adamw: options.";
      train::AdamWOptions a;
      a.lr = cfg_number(o, "lr", p);
      a.beta1 = cfg_number(o, "beta1", p);
      a.beta2 = cfg_number(o, "beta2", p);
      a.eps = cfg_number(o, "eps", p);
      a.weight_decay = cfg_number(o, "weightDecay", p);
      a.step = cfg_size(o, "step", p);
      a.max_grad_norm = cfg_number(o, "maxGradNorm", p);
      const train::AdamWResult r = model_->adamw(a);
      Napi::Object out = Napi::Object::New(env);
      out.Set("gradNorm", Napi::Number::New(env, r.grad_norm));
      out.Set("clipped", Napi::Boolean::New(env, r.clipped));
      return out;
    });
  }

  void acquire(const char* what) {
    require(model_->try_acquire(), ErrorCode::Range,
            std::string(what) + ": the model is busy with another call (await it first)");
  }

  /// Queues `work` holding the lease; the lease is released on the main thread as the promise settles.
  template <class Result>
  Napi::Value queue(Napi::Env env, std::function<void()> work, std::function<Napi::Value(Napi::Env)> result,
                    Napi::ObjectReference&& a, Napi::ObjectReference&& b, Napi::ObjectReference&& c) {
    auto model = model_;
    auto failure = std::make_shared<std::exception_ptr>();
    return run_async(
        env,
        [work = std::move(work), failure] {
          try {
            work();
          } catch (...) {
            *failure = std::current_exception();
          }
        },
        [model, failure, result = std::move(result)](Napi::Env e) -> Napi::Value {
          model->release();
          if (*failure) std::rethrow_exception(*failure);
          return result(e);
        },
        std::move(a), std::move(b), std::move(c));
  }

  // step(tokens, batch, seqLen, targets, { lossScale }?) / evaluate(tokens, batch, seqLen, targets)
  Napi::Value StepOrEvaluate(const Napi::CallbackInfo& info, bool grads) {
    Napi::Env env = info.Env();
    const char* what = grads ? "step" : "evaluate";
    return guard_async(env, [&]() -> Napi::Value {
      ArgArray<int32_t> tokens = arg_array<int32_t>(info, 0, "tokens", true);
      const size_t batch = arg_size(info, 1, "batch"), seq = arg_size(info, 2, "seqLen");
      require(info.Length() > 3, ErrorCode::Range, std::string(what) + ": targets are required");
      TargetsArg tg = parse_targets(info[3]);
      double scale = 1.0;
      if (grads && info.Length() > 4 && !absent(info[4])) {
        require(info[4].IsObject(), ErrorCode::Range, "step: options must be an object");
        scale = cfg_number(info[4].As<Napi::Object>(), "lossScale", "step: options.", true, 1.0);
        require(std::isfinite(scale), ErrorCode::Range, "step: options.lossScale must be finite");
      }
      model_->check_batch(tokens.size, tokens.data, batch, seq);
      train::validate_targets(tg.t, batch * seq, model_->config().vocab_size);
      acquire(what);
      auto model = model_;
      auto out = std::make_shared<train::LossSum>();
      const int32_t* tok = tokens.data;
      const train::Targets t = tg.t;
      return queue<train::LossSum>(
          env,
          [=] { *out = grads ? model->step(tok, batch, seq, t, scale) : model->evaluate(tok, batch, seq, t); },
          [out](Napi::Env e) -> Napi::Value { return loss_to_js(e, *out); }, std::move(tokens.keep),
          std::move(tg.keep_a), std::move(tg.keep_b));
    });
  }

  Napi::Value Step(const Napi::CallbackInfo& info) { return StepOrEvaluate(info, true); }
  Napi::Value Evaluate(const Napi::CallbackInfo& info) { return StepOrEvaluate(info, false); }

  // forwardLogits(tokens, batch, seqLen) -> Float32Array [batch * seqLen, vocab]
  Napi::Value ForwardLogits(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guard_async(env, [&]() -> Napi::Value {
      ArgArray<int32_t> tokens = arg_array<int32_t>(info, 0, "tokens", true);
      const size_t batch = arg_size(info, 1, "batch"), seq = arg_size(info, 2, "seqLen");
      model_->check_batch(tokens.size, tokens.data, batch, seq);
      acquire("forwardLogits");
      auto model = model_;
      auto out = std::make_shared<std::vector<float>>();
      const int32_t* tok = tokens.data;
      return queue<int>(
          env, [=] { *out = model->forward_logits(tok, batch, seq); },
          [out](Napi::Env e) -> Napi::Value { return to_typed_array<float>(e, std::move(*out)); },
          std::move(tokens.keep), Napi::ObjectReference(), Napi::ObjectReference());
    });
  }

  // backwardLogits(dlogits)
  Napi::Value BackwardLogits(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guard_async(env, [&]() -> Napi::Value {
      ArgArray<float> d = arg_array<float>(info, 0, "dlogits", true);
      const size_t rows = model_->pending_rows(), V = model_->config().vocab_size;
      require(rows > 0, ErrorCode::Range, "backwardLogits: no forwardLogits to go back from (call forwardLogits first)");
      require(d.size == rows * V, ErrorCode::Shape,
              "backwardLogits: dlogits has " + std::to_string(d.size) + " entries, expected rows * vocab = " +
                  std::to_string(rows) + " * " + std::to_string(V));
      acquire("backwardLogits");
      auto model = model_;
      const float* data = d.data;
      const size_t n = d.size;
      return queue<int>(
          env, [=] { model->backward_logits(data, n); },
          [](Napi::Env e) -> Napi::Value { return e.Undefined(); }, std::move(d.keep), Napi::ObjectReference(),
          Napi::ObjectReference());
    });
  }

  std::shared_ptr<Model> model_;
};

}  // namespace

void init_train(Napi::Env env, Napi::Object exports) {
  Napi::Function cls = TrainWrap::Define(env);
  auto* ref = new Napi::FunctionReference(Napi::Persistent(cls));
  env.AddCleanupHook([ref] { delete ref; });
  exports.Set("TrainableTransformer", cls);
}

}  // namespace tersor::napi
