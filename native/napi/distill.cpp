// Bindings for distillation (tersor/distill.hpp): the fused KD loss and the teacher sparsifiers
// behind the teacher-logit cache. All three run on the libuv pool and return Promises; argument
// errors reject them (guard_async). Typed arrays cross zero-copy and are kept alive for the worker.
#include <cmath>
#include <memory>
#include <string>

#include "napi_util.hpp"
#include "tersor/distill.hpp"

namespace tersor::napi {
namespace {

using namespace tersor::distill;

Loss parse_loss(const std::string& s) {
  if (s == "fkl") return Loss::ForwardKL;
  if (s == "rkl") return Loss::ReverseKL;
  if (s == "gkd") return Loss::GJSD;
  if (s == "tv") return Loss::TotalVariation;
  if (s == "ttm") return Loss::TTM;
  if (s == "wttm") return Loss::WTTM;
  if (s == "mixce") return Loss::MixCE;
  if (s == "ce") return Loss::CE;
  fail(ErrorCode::Range, "unknown loss \"" + s + "\" (fkl, rkl, gkd, tv, ttm, wttm, mixce, ce)");
}

double opt_number(const Napi::Object& o, const char* key, double fallback) {
  if (!o.Has(key)) return fallback;
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsNumber()) fail(ErrorCode::Range, std::string(key) + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

template <class T>
ArgArray<T> prop_array(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != TypedArrayTraits<T>::type)
    fail(ErrorCode::DType, std::string("teacher.") + key + " must be a " + TypedArrayTraits<T>::name);
  Napi::TypedArrayOf<T> arr = v.As<Napi::TypedArrayOf<T>>();
  ArgArray<T> out;
  out.data = arr.Data();
  out.size = arr.ElementLength();
  out.keep = Napi::Persistent(static_cast<Napi::Object>(arr));
  return out;
}

std::string sz(size_t v) { return std::to_string(v); }

// (student: Float32Array, rows, vocab, teacher: {kind, ...} | null, labels: Int32Array | null,
//  options: {loss, temperature, beta, eta, kdWeight, ceWeight, scale, grad})
//   -> Promise<{loss, kd, ce, count, dlogits?: Float32Array}>
TERSOR_NAPI(DistillLoss) {
  return guard_async(info.Env(), [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const size_t rows = arg_size(info, 1, "rows"), vocab = arg_size(info, 2, "vocab");
    ArgArray<float> student = arg_array<float>(info, 0, "student logits", true);
    size_t total = 0;
    if (__builtin_mul_overflow(rows, vocab, &total) || total != student.size)
      fail(ErrorCode::Shape, "student logits have " + sz(student.size) + " values, expected rows x vocab = " + sz(rows) +
                                 " x " + sz(vocab));
    if (info.Length() < 6 || !info[5].IsObject()) fail(ErrorCode::Range, "options must be an object");
    Napi::Object o = info[5].As<Napi::Object>();
    LossOptions opt;
    if (!o.Get("loss").IsString()) fail(ErrorCode::Range, "options.loss must be a string");
    opt.loss = parse_loss(o.Get("loss").As<Napi::String>().Utf8Value());
    opt.temperature = opt_number(o, "temperature", 1.0);
    opt.beta = opt_number(o, "beta", 0.5);
    opt.eta = opt_number(o, "eta", 0.5);
    opt.kd_weight = opt_number(o, "kdWeight", 1.0);
    opt.ce_weight = opt_number(o, "ceWeight", 0.0);
    opt.scale = opt_number(o, "scale", 1.0);
    const bool grad = o.Has("grad") && o.Get("grad").ToBoolean().Value();

    Teacher<float> te;
    ArgArray<float> tlogits, tvalues, ttail;
    ArgArray<int32_t> tids;
    if (info.Length() > 3 && info[3].IsObject()) {
      Napi::Object t = info[3].As<Napi::Object>();
      const std::string kind = t.Get("kind").IsString() ? t.Get("kind").As<Napi::String>().Utf8Value() : "";
      if (kind == "dense") {
        te.kind = TeacherKind::Dense;
        tlogits = prop_array<float>(t, "logits");
        if (tlogits.size != total) {
          const size_t tv = rows ? tlogits.size / rows : 0;
          fail(ErrorCode::Shape, "teacher logits have " + sz(tlogits.size) + " values (vocabulary " + sz(tv) +
                                     "), expected rows x student vocabulary = " + sz(rows) + " x " + sz(vocab));
        }
        te.logits = tlogits.data;
      } else if (kind == "logprobs" || kind == "weights") {
        te.kind = kind == "logprobs" ? TeacherKind::SparseLogProb : TeacherKind::SparseWeight;
        te.k = static_cast<size_t>(opt_number(t, "k", 0));
        tids = prop_array<int32_t>(t, "ids");
        tvalues = prop_array<float>(t, kind == "logprobs" ? "logprobs" : "weights");
        if (tids.size != rows * te.k || tvalues.size != rows * te.k)
          fail(ErrorCode::Shape, "sparse teacher has " + sz(tids.size) + " ids and " + sz(tvalues.size) +
                                     " values, expected rows x k = " + sz(rows) + " x " + sz(te.k));
        te.ids = tids.data;
        te.values = tvalues.data;
        if (kind == "logprobs") {
          const std::string tail = t.Has("tail") && t.Get("tail").IsString() ? t.Get("tail").As<Napi::String>().Utf8Value() : "zero";
          if (tail == "zero") te.tail = Tail::Zero;
          else if (tail == "uniform") te.tail = Tail::Uniform;
          else fail(ErrorCode::Range, "teacher.tail must be \"zero\" or \"uniform\", got \"" + tail + "\"");
          if (t.Has("tailLogMass") && !t.Get("tailLogMass").IsUndefined() && !t.Get("tailLogMass").IsNull()) {
            ttail = prop_array<float>(t, "tailLogMass");
            if (ttail.size != rows) fail(ErrorCode::Shape, "teacher.tailLogMass has " + sz(ttail.size) + " values, expected one per row (" + sz(rows) + ")");
            te.tail_log_mass = ttail.data;
          }
        }
      } else {
        fail(ErrorCode::Range, "teacher.kind must be \"dense\", \"logprobs\" or \"weights\"");
      }
    }
    ArgArray<int32_t> labels;
    if (info.Length() > 4 && !info[4].IsNull() && !info[4].IsUndefined()) {
      labels = arg_array<int32_t>(info, 4, "labels", true);
      if (labels.size != rows) fail(ErrorCode::Shape, "labels have " + sz(labels.size) + " entries, expected one per row (" + sz(rows) + ")");
    }
    struct Out {
      LossResult r;
      std::vector<float> g;
    };
    auto out = std::make_shared<Out>();
    const float* sp = student.data;
    const int32_t* lp = labels.data;
    return run_async(
        env,
        [=]() {
          if (grad) out->g.resize(total);
          out->r = kd_loss<float>(sp, rows, vocab, te, lp, opt, grad ? out->g.data() : nullptr);
        },
        [out, grad](Napi::Env e) -> Napi::Value {
          Napi::Object res = Napi::Object::New(e);
          res.Set("loss", out->r.loss);
          res.Set("kd", out->r.kd);
          res.Set("ce", out->r.ce);
          res.Set("count", static_cast<double>(out->r.count));
          if (grad) res.Set("dlogits", to_typed_array<float>(e, std::move(out->g)));
          return res;
        },
        std::move(student.keep), std::move(tlogits.keep), std::move(tvalues.keep), std::move(ttail.keep),
        std::move(tids.keep), std::move(labels.keep));
  });
}

// (logits: Float32Array, rows, vocab, k, temperature) -> Promise<{ids, logprobs, tailLogMass}>
TERSOR_NAPI(DistillTopK) {
  return guard_async(info.Env(), [&]() -> Napi::Value {
    const size_t rows = arg_size(info, 1, "rows"), vocab = arg_size(info, 2, "vocab"), k = arg_size(info, 3, "k");
    const double temperature = arg_number(info, 4, "temperature");
    ArgArray<float> logits = arg_array<float>(info, 0, "logits", true);
    if (logits.size != rows * vocab)
      fail(ErrorCode::Shape, "logits have " + sz(logits.size) + " values, expected rows x vocab = " + sz(rows) + " x " + sz(vocab));
    require(k >= 1 && k <= vocab, ErrorCode::Range, "k must be in [1, vocab = " + sz(vocab) + "], got " + sz(k));
    require(std::isfinite(temperature) && temperature > 0, ErrorCode::Range, "temperature must be > 0 and finite");
    struct Out {
      std::vector<int32_t> ids;
      std::vector<float> lp, tail;
    };
    auto out = std::make_shared<Out>();
    const float* x = logits.data;
    return run_async(
        info.Env(),
        [=]() {
          out->ids.resize(rows * k);
          out->lp.resize(rows * k);
          out->tail.resize(rows);
          topk_logprobs(x, rows, vocab, k, temperature, out->ids.data(), out->lp.data(), out->tail.data());
        },
        [out](Napi::Env e) -> Napi::Value {
          Napi::Object res = Napi::Object::New(e);
          res.Set("ids", to_typed_array<int32_t>(e, std::move(out->ids)));
          res.Set("logprobs", to_typed_array<float>(e, std::move(out->lp)));
          res.Set("tailLogMass", to_typed_array<float>(e, std::move(out->tail)));
          return res;
        },
        std::move(logits.keep));
  });
}

// (logits, rows, vocab, samples, temperature, proposalTemperature, seed, rowOffset) -> Promise<{ids, weights}>
TERSOR_NAPI(DistillSample) {
  return guard_async(info.Env(), [&]() -> Napi::Value {
    const size_t rows = arg_size(info, 1, "rows"), vocab = arg_size(info, 2, "vocab"), k = arg_size(info, 3, "samples");
    const double temperature = arg_number(info, 4, "temperature");
    const double ptemp = arg_number(info, 5, "proposalTemperature");
    const uint64_t seed = arg_size(info, 6, "seed"), offset = arg_size(info, 7, "rowOffset");
    ArgArray<float> logits = arg_array<float>(info, 0, "logits", true);
    if (logits.size != rows * vocab)
      fail(ErrorCode::Shape, "logits have " + sz(logits.size) + " values, expected rows x vocab = " + sz(rows) + " x " + sz(vocab));
    require(k >= 1, ErrorCode::Range, "samples must be >= 1");
    require(std::isfinite(temperature) && temperature > 0, ErrorCode::Range, "temperature must be > 0 and finite");
    require(std::isfinite(ptemp) && ptemp > 0, ErrorCode::Range, "proposal temperature must be > 0 and finite");
    struct Out {
      std::vector<int32_t> ids;
      std::vector<float> w;
    };
    auto out = std::make_shared<Out>();
    const float* x = logits.data;
    return run_async(
        info.Env(),
        [=]() {
          out->ids.resize(rows * k);
          out->w.resize(rows * k);
          sample_weights(x, rows, vocab, k, temperature, ptemp, seed, offset, out->ids.data(), out->w.data());
        },
        [out](Napi::Env e) -> Napi::Value {
          Napi::Object res = Napi::Object::New(e);
          res.Set("ids", to_typed_array<int32_t>(e, std::move(out->ids)));
          res.Set("weights", to_typed_array<float>(e, std::move(out->w)));
          return res;
        },
        std::move(logits.keep));
  });
}

}  // namespace

void init_distill(Napi::Env env, Napi::Object exports) {
  exports.Set("distillLoss", Napi::Function::New(env, DistillLoss, "distillLoss"));
  exports.Set("distillTopK", Napi::Function::New(env, DistillTopK, "distillTopK"));
  exports.Set("distillSample", Napi::Function::New(env, DistillSample, "distillSample"));
}

}  // namespace tersor::napi
