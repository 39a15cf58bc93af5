// Conventions shared by every binding in native/napi/:
//  * typed arrays cross zero-copy: ArgArray<T> points into the caller's buffer (byteOffset honoured)
//    and, for async work, keeps a reference so the buffer outlives the worker;
//  * results computed off the main thread are owned std::vectors handed to JS as external
//    ArrayBuffers (no copy);
//  * anything that can run longer than ~1 ms goes through RunAsync, which returns a Promise;
//  * tersor::Error becomes a JS TersorError (constructor registered by the loader) with its code.
#pragma once
#include <napi.h>

#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "tersor/error.hpp"

namespace tersor::napi {

struct AddonData {
  Napi::FunctionReference error_class;  // TersorError, set by the JS loader
};

inline AddonData* addon_data(Napi::Env env) { return env.GetInstanceData<AddonData>(); }

inline Napi::Error make_error(Napi::Env env, const char* code, const std::string& message) {
  AddonData* data = addon_data(env);
  if (data && !data->error_class.IsEmpty()) {
    Napi::Object err = data->error_class.New({Napi::String::New(env, code), Napi::String::New(env, message)});
    return Napi::Error(env, err);
  }
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, code));
  return err;
}

inline Napi::Error make_error(Napi::Env env, const tersor::Error& e) {
  return make_error(env, error_code_name(e.code()), e.what());
}

/// Runs `body`, converting tersor::Error and other C++ exceptions into JS exceptions.
template <class F>
Napi::Value guard(Napi::Env env, F&& body) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (const tersor::Error& e) {
    throw make_error(env, e);
  } catch (const std::bad_alloc&) {
    throw make_error(env, "E_NATIVE", "out of memory");
  } catch (const std::exception& e) {
    throw make_error(env, "E_NATIVE", e.what());
  }
}

/// For Promise-returning bindings: argument errors reject the Promise instead of throwing
/// synchronously, so callers see one failure path.
template <class F>
Napi::Value guard_async(Napi::Env env, F&& body) {
  try {
    return guard(env, std::forward<F>(body));
  } catch (const Napi::Error& e) {
    Napi::Promise::Deferred d = Napi::Promise::Deferred::New(env);
    d.Reject(e.Value());
    return d.Promise();
  }
}

#define TERSOR_NAPI(name) Napi::Value name(const Napi::CallbackInfo& info)

template <class T> struct TypedArrayTraits;
template <> struct TypedArrayTraits<float> { static constexpr napi_typedarray_type type = napi_float32_array; static constexpr const char* name = "Float32Array"; };
template <> struct TypedArrayTraits<double> { static constexpr napi_typedarray_type type = napi_float64_array; static constexpr const char* name = "Float64Array"; };
template <> struct TypedArrayTraits<int8_t> { static constexpr napi_typedarray_type type = napi_int8_array; static constexpr const char* name = "Int8Array"; };
template <> struct TypedArrayTraits<uint8_t> { static constexpr napi_typedarray_type type = napi_uint8_array; static constexpr const char* name = "Uint8Array"; };
template <> struct TypedArrayTraits<int16_t> { static constexpr napi_typedarray_type type = napi_int16_array; static constexpr const char* name = "Int16Array"; };
template <> struct TypedArrayTraits<uint16_t> { static constexpr napi_typedarray_type type = napi_uint16_array; static constexpr const char* name = "Uint16Array"; };
template <> struct TypedArrayTraits<int32_t> { static constexpr napi_typedarray_type type = napi_int32_array; static constexpr const char* name = "Int32Array"; };
template <> struct TypedArrayTraits<uint32_t> { static constexpr napi_typedarray_type type = napi_uint32_array; static constexpr const char* name = "Uint32Array"; };
template <> struct TypedArrayTraits<int64_t> { static constexpr napi_typedarray_type type = napi_bigint64_array; static constexpr const char* name = "BigInt64Array"; };

/// A zero-copy view of a JS typed array argument.
template <class T>
struct ArgArray {
  T* data = nullptr;
  size_t size = 0;
  Napi::ObjectReference keep;  // holds the array alive while async work runs
};

template <class T>
ArgArray<T> arg_array(const Napi::CallbackInfo& info, size_t index, const char* what, bool keep_alive = false) {
  Napi::Env env = info.Env();
  if (index >= info.Length() || !info[index].IsTypedArray())
    throw make_error(env, "E_DTYPE", std::string(what) + " must be a " + TypedArrayTraits<T>::name);
  Napi::TypedArray ta = info[index].As<Napi::TypedArray>();
  if (ta.TypedArrayType() != TypedArrayTraits<T>::type)
    throw make_error(env, "E_DTYPE", std::string(what) + " must be a " + TypedArrayTraits<T>::name);
  Napi::TypedArrayOf<T> arr = info[index].As<Napi::TypedArrayOf<T>>();
  ArgArray<T> out;
  out.data = arr.Data();  // Data() already adds the view's byteOffset
  out.size = arr.ElementLength();
  if (keep_alive) out.keep = Napi::Persistent(static_cast<Napi::Object>(arr));
  return out;
}

inline double arg_number(const Napi::CallbackInfo& info, size_t index, const char* what) {
  if (index >= info.Length() || !info[index].IsNumber())
    throw make_error(info.Env(), "E_RANGE", std::string(what) + " must be a number");
  return info[index].As<Napi::Number>().DoubleValue();
}

/// A non-negative integer argument (array sizes, ranks, counts).
inline size_t arg_size(const Napi::CallbackInfo& info, size_t index, const char* what) {
  const double v = arg_number(info, index, what);
  if (!(v >= 0) || v != static_cast<double>(static_cast<size_t>(v)) || v > 9007199254740991.0)
    throw make_error(info.Env(), "E_RANGE", std::string(what) + " must be a non-negative integer");
  return static_cast<size_t>(v);
}

inline bool arg_bool(const Napi::CallbackInfo& info, size_t index, bool fallback) {
  if (index >= info.Length() || info[index].IsUndefined()) return fallback;
  return info[index].ToBoolean().Value();
}

/// Hands an owned vector to JS as a typed array over an external ArrayBuffer (no copy).
template <class T, class ArrayT = Napi::TypedArrayOf<T>>
Napi::Value to_typed_array(Napi::Env env, std::vector<T>&& v) {
  auto* holder = new std::vector<T>(std::move(v));
  const size_t n = holder->size();
  if (n == 0) {
    delete holder;
    return ArrayT::New(env, 0);
  }
  Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, holder->data(), n * sizeof(T),
                                                 [](Napi::Env, void*, std::vector<T>* h) { delete h; }, holder);
  return ArrayT::New(env, n, buf, 0);
}

/// Promise-returning async work: `execute` runs on a worker thread (no JS access there), then
/// `result` builds the JS value on the main thread. Errors keep their tersor code.
class AsyncTask : public Napi::AsyncWorker {
 public:
  AsyncTask(Napi::Env env, std::function<void()> execute, std::function<Napi::Value(Napi::Env)> result)
      : Napi::AsyncWorker(env, "tersor"), deferred_(Napi::Promise::Deferred::New(env)),
        execute_(std::move(execute)), result_(std::move(result)) {}

  Napi::Promise promise() { return deferred_.Promise(); }
  void keep(Napi::ObjectReference&& ref) { keep_.push_back(std::move(ref)); }

 protected:
  void Execute() override {
    try {
      execute_();
    } catch (const tersor::Error& e) {
      code_ = error_code_name(e.code());
      SetError(e.what());
    } catch (const std::bad_alloc&) {
      code_ = "E_NATIVE";
      SetError("out of memory");
    } catch (const std::exception& e) {
      code_ = "E_NATIVE";
      SetError(e.what());
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    try {
      deferred_.Resolve(result_(env));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (const tersor::Error& e) {
      deferred_.Reject(make_error(env, e).Value());
    } catch (const std::exception& e) {
      deferred_.Reject(make_error(env, "E_NATIVE", e.what()).Value());
    }
  }
  void OnError(const Napi::Error& e) override {
    deferred_.Reject(make_error(Env(), code_.c_str(), e.Message()).Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::function<void()> execute_;
  std::function<Napi::Value(Napi::Env)> result_;
  std::vector<Napi::ObjectReference> keep_;
  std::string code_ = "E_NATIVE";
};

/// Queue `execute` on the libuv pool and return its Promise. Pass the ArgArrays' references to
/// keep their buffers alive.
template <class... Refs>
Napi::Value run_async(Napi::Env env, std::function<void()> execute, std::function<Napi::Value(Napi::Env)> result,
                      Refs&&... refs) {
  auto* task = new AsyncTask(env, std::move(execute), std::move(result));
  (task->keep(std::move(refs)), ...);
  Napi::Promise p = task->promise();
  task->Queue();
  return p;
}

// Registration hooks, one per domain file in native/napi/.
void init_core(Napi::Env env, Napi::Object exports);
void init_linalg(Napi::Env env, Napi::Object exports);
void init_gemm(Napi::Env env, Napi::Object exports);
void init_quant(Napi::Env env, Napi::Object exports);
void init_transformer(Napi::Env env, Napi::Object exports);
void init_model_ops(Napi::Env env, Napi::Object exports);
void init_mlp(Napi::Env env, Napi::Object exports);
void init_stats(Napi::Env env, Napi::Object exports);
void init_train(Napi::Env env, Napi::Object exports);
void init_quant_methods(Napi::Env env, Napi::Object exports);
void init_kv(Napi::Env env, Napi::Object exports);
void init_select(Napi::Env env, Napi::Object exports);
void init_mix(Napi::Env env, Napi::Object exports);
void init_distill(Napi::Env env, Napi::Object exports);

}  // namespace tersor::napi
