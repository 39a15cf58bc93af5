// Bindings for linear algebra (decompositions, Walsh-Hadamard); see tersor/linalg.hpp.
// Every function takes a Float32Array or a Float64Array plus its dimensions (row-major), computes in
// that precision on the libuv pool and returns a Promise; results are new typed arrays of the same
// type. Argument errors reject the Promise too (guard_async).
#include <string>

#include "napi_util.hpp"
#include "tersor/linalg.hpp"

namespace tersor::napi {
namespace {

enum class FloatKind { F32, F64 };

FloatKind float_kind(const Napi::CallbackInfo& info, size_t index, const char* what) {
  if (index < info.Length() && info[index].IsTypedArray()) {
    const napi_typedarray_type t = info[index].As<Napi::TypedArray>().TypedArrayType();
    if (t == napi_float32_array) return FloatKind::F32;
    if (t == napi_float64_array) return FloatKind::F64;
  }
  throw make_error(info.Env(), "E_DTYPE", std::string(what) + " must be a Float32Array or a Float64Array");
}

/// Runs body.template operator()<float or double>() by the type of argument 0; errors reject.
template <class F>
Napi::Value dispatch(const Napi::CallbackInfo& info, F&& body) {
  return guard_async(info.Env(), [&]() -> Napi::Value {
    if (float_kind(info, 0, "a") == FloatKind::F32) return body.template operator()<float>();
    return body.template operator()<double>();
  });
}

template <class T>
struct MatArg {
  ArgArray<T> arr;
  size_t rows = 0, cols = 0;
};

/// A row-major matrix argument: typed array at `index`, rows and cols right after it.
template <class T>
MatArg<T> arg_matrix(const Napi::CallbackInfo& info, size_t index, const char* what) {
  MatArg<T> m;
  m.arr = arg_array<T>(info, index, what, true);
  m.rows = arg_size(info, index + 1, "rows");
  m.cols = arg_size(info, index + 2, "cols");
  size_t total = 0;
  if (__builtin_mul_overflow(m.rows, m.cols, &total) || total != m.arr.size)
    fail(ErrorCode::Shape, std::string(what) + " has " + std::to_string(m.arr.size) + " elements, expected rows*cols = " +
                               std::to_string(m.rows) + "*" + std::to_string(m.cols));
  return m;
}

uint64_t arg_seed(const Napi::CallbackInfo& info, size_t index) {
  const double hi = arg_number(info, index, "seedHi"), lo = arg_number(info, index + 1, "seedLo");
  auto ok = [](double v) { return v >= 0 && v < 4294967296.0 && v == static_cast<double>(static_cast<uint64_t>(v)); };
  require(ok(hi) && ok(lo), ErrorCode::Range, "seed halves must be integers in [0, 2^32)");
  return (static_cast<uint64_t>(hi) << 32) | static_cast<uint64_t>(lo);
}

template <class T>
Napi::Value svd_object(Napi::Env env, Svd<T>& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("u", to_typed_array<T>(env, std::move(r.u)));
  o.Set("s", to_typed_array<T>(env, std::move(r.s)));
  o.Set("vt", to_typed_array<T>(env, std::move(r.vt)));
  return o;
}

/// A binding over a routine that maps one matrix to one matrix: fn(a, rows, cols) -> vector.
template <class T, class Fn>
Napi::Value matrix_to_matrix(const Napi::CallbackInfo& info, Fn fn) {
  MatArg<T> a = arg_matrix<T>(info, 0, "a");
  auto out = std::make_shared<std::vector<T>>();
  const T* p = a.arr.data;
  const size_t rows = a.rows, cols = a.cols;
  return run_async(
      info.Env(), [=] { *out = fn(p, rows, cols); },
      [=](Napi::Env env) -> Napi::Value { return to_typed_array<T>(env, std::move(*out)); }, std::move(a.arr.keep));
}

// (a, m, n, full) -> Promise<{u, s, vt}>
TERSOR_NAPI(SvdJs) {
  return dispatch(info, [&]<class T>() -> Napi::Value {
    MatArg<T> a = arg_matrix<T>(info, 0, "a");
    const bool full = arg_bool(info, 3, false);
    auto res = std::make_shared<Svd<T>>();
    const T* p = a.arr.data;
    const size_t m = a.rows, n = a.cols;
    return run_async(
        info.Env(), [=] { *res = svd(p, m, n, full); }, [=](Napi::Env env) { return svd_object(env, *res); },
        std::move(a.arr.keep));
  });
}

// (a, m, n, k, tol, maxIter, seedHi, seedLo) -> Promise<{u, s, vt, iterations, residual, converged}>
TERSOR_NAPI(TruncatedSvdJs) {
  return dispatch(info, [&]<class T>() -> Napi::Value {
    MatArg<T> a = arg_matrix<T>(info, 0, "a");
    const size_t k = arg_size(info, 3, "k");
    TruncatedSvdOptions opt;
    opt.tol = arg_number(info, 4, "tol");
    opt.max_iter = arg_size(info, 5, "maxIter");
    opt.seed = arg_seed(info, 6);
    auto res = std::make_shared<Svd<T>>();
    auto inf = std::make_shared<TruncatedSvdInfo>();
    const T* p = a.arr.data;
    const size_t m = a.rows, n = a.cols;
    return run_async(
        info.Env(), [=] { *res = truncated_svd(p, m, n, k, opt, inf.get()); },
        [=](Napi::Env env) -> Napi::Value {
          Napi::Object o = svd_object(env, *res).template As<Napi::Object>();
          o.Set("iterations", Napi::Number::New(env, static_cast<double>(inf->iterations)));
          o.Set("residual", Napi::Number::New(env, inf->residual));
          o.Set("converged", Napi::Boolean::New(env, inf->converged));
          return o;
        },
        std::move(a.arr.keep));
  });
}

// (a, m, n, k, oversample, powerIters, seedHi, seedLo) -> Promise<{u, s, vt}>
TERSOR_NAPI(RandomizedSvdJs) {
  return dispatch(info, [&]<class T>() -> Napi::Value {
    MatArg<T> a = arg_matrix<T>(info, 0, "a");
    const size_t k = arg_size(info, 3, "k");
    RandomizedSvdOptions opt;
    opt.oversample = arg_size(info, 4, "oversample");
    opt.power_iters = arg_size(info, 5, "powerIters");
    opt.seed = arg_seed(info, 6);
    auto res = std::make_shared<Svd<T>>();
    const T* p = a.arr.data;
    const size_t m = a.rows, n = a.cols;
    return run_async(
        info.Env(), [=] { *res = randomized_svd(p, m, n, k, opt); },
        [=](Napi::Env env) { return svd_object(env, *res); }, std::move(a.arr.keep));
  });
}

// (a, n, n) -> Promise<{w, v}>
TERSOR_NAPI(EighJs) {
  return dispatch(info, [&]<class T>() -> Napi::Value {
    MatArg<T> a = arg_matrix<T>(info, 0, "a");
    auto res = std::make_shared<Eigh<T>>();
    const T* p = a.arr.data;
    const size_t rows = a.rows, cols = a.cols;
    return run_async(
        info.Env(), [=] { *res = eigh(p, rows, cols); },
        [=](Napi::Env env) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          o.Set("w", to_typed_array<T>(env, std::move(res->w)));
          o.Set("v", to_typed_array<T>(env, std::move(res->v)));
          return o;
        },
        std::move(a.arr.keep));
  });
}

// (a, n, n, damping) -> Promise<L | U | A^-1>
template <int Which>
Napi::Value spd_binding(const Napi::CallbackInfo& info) {
  return dispatch(info, [&]<class T>() -> Napi::Value {
    const double damping = arg_number(info, 3, "damping");
    return matrix_to_matrix<T>(info, [damping](const T* p, size_t r, size_t c) {
      if constexpr (Which == 0) return cholesky(p, r, c, damping);
      else if constexpr (Which == 1) return cholesky_inverse(p, r, c, damping);
      else return inverse_spd(p, r, c, damping);
    });
  });
}
TERSOR_NAPI(CholeskyJs) { return spd_binding<0>(info); }
TERSOR_NAPI(CholeskyInverseJs) { return spd_binding<1>(info); }
TERSOR_NAPI(InverseSpdJs) { return spd_binding<2>(info); }

// (a, m, n) -> Promise<{q, r}>
TERSOR_NAPI(QrJs) {
  return dispatch(info, [&]<class T>() -> Napi::Value {
    MatArg<T> a = arg_matrix<T>(info, 0, "a");
    auto res = std::make_shared<Qr<T>>();
    const T* p = a.arr.data;
    const size_t m = a.rows, n = a.cols;
    return run_async(
        info.Env(), [=] { *res = qr(p, m, n); },
        [=](Napi::Env env) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          o.Set("q", to_typed_array<T>(env, std::move(res->q)));
          o.Set("r", to_typed_array<T>(env, std::move(res->r)));
          return o;
        },
        std::move(a.arr.keep));
  });
}

// (a, n, n, b, bRows, bCols, spd) -> Promise<X>
TERSOR_NAPI(SolveJs) {
  return dispatch(info, [&]<class T>() -> Napi::Value {
    MatArg<T> a = arg_matrix<T>(info, 0, "a");
    MatArg<T> b = arg_matrix<T>(info, 3, "b");
    const Assume assume = arg_bool(info, 6, false) ? Assume::Spd : Assume::General;
    auto out = std::make_shared<std::vector<T>>();
    const T* pa = a.arr.data;
    const T* pb = b.arr.data;
    const size_t ar = a.rows, ac = a.cols, br = b.rows, bc = b.cols;
    return run_async(
        info.Env(), [=] { *out = solve(pa, ar, ac, pb, br, bc, assume); },
        [=](Napi::Env env) -> Napi::Value { return to_typed_array<T>(env, std::move(*out)); }, std::move(a.arr.keep),
        std::move(b.arr.keep));
  });
}

// (a, m, n, rcond) -> Promise<pinv (n x m)>; rcond < 0 = default
TERSOR_NAPI(PinvJs) {
  return dispatch(info, [&]<class T>() -> Napi::Value {
    const double rcond = arg_number(info, 3, "rcond");
    return matrix_to_matrix<T>(info, [rcond](const T* p, size_t r, size_t c) { return pinv(p, r, c, rcond); });
  });
}

// (a, n, n, spd) -> Promise<{sign, logabsdet}>
TERSOR_NAPI(LogdetJs) {
  return dispatch(info, [&]<class T>() -> Napi::Value {
    MatArg<T> a = arg_matrix<T>(info, 0, "a");
    const Assume assume = arg_bool(info, 3, false) ? Assume::Spd : Assume::General;
    auto res = std::make_shared<LogDet>();
    const T* p = a.arr.data;
    const size_t rows = a.rows, cols = a.cols;
    return run_async(
        info.Env(), [=] { *res = logdet(p, rows, cols, assume); },
        [=](Napi::Env env) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          o.Set("sign", Napi::Number::New(env, res->sign));
          o.Set("logabsdet", Napi::Number::New(env, res->logabsdet));
          return o;
        },
        std::move(a.arr.keep));
  });
}

// (a, n, n) -> Promise<S>
TERSOR_NAPI(SqrtmSpdJs) {
  return dispatch(info, [&]<class T>() -> Napi::Value {
    return matrix_to_matrix<T>(info, [](const T* p, size_t r, size_t c) { return sqrtm_spd(p, r, c); });
  });
}

// (x, rows, n, normalize, randomSigns, seedHi, seedLo) -> Promise<void>, transforms x in place
TERSOR_NAPI(HadamardInPlaceJs) {
  return dispatch(info, [&]<class T>() -> Napi::Value {
    ArgArray<T> x = arg_array<T>(info, 0, "x", true);
    const size_t rows = arg_size(info, 1, "rows"), n = arg_size(info, 2, "n");
    size_t total = 0;
    if (__builtin_mul_overflow(rows, n, &total) || total != x.size)
      fail(ErrorCode::Shape, "x has " + std::to_string(x.size) + " elements, expected rows*n = " + std::to_string(rows) +
                                 "*" + std::to_string(n));
    HadamardOptions opt;
    opt.normalize = arg_bool(info, 3, false);
    opt.random_signs = arg_bool(info, 4, false);
    opt.seed = opt.random_signs ? arg_seed(info, 5) : 0;
    T* p = x.data;
    return run_async(
        info.Env(), [=] { fwht_rows(p, rows, n, opt); }, [](Napi::Env env) -> Napi::Value { return env.Undefined(); },
        std::move(x.keep));
  });
}

}  // namespace

void init_linalg(Napi::Env env, Napi::Object exports) {
  exports.Set("svd", Napi::Function::New(env, SvdJs, "svd"));
  exports.Set("truncatedSvd", Napi::Function::New(env, TruncatedSvdJs, "truncatedSvd"));
  exports.Set("randomizedSvd", Napi::Function::New(env, RandomizedSvdJs, "randomizedSvd"));
  exports.Set("eigh", Napi::Function::New(env, EighJs, "eigh"));
  exports.Set("cholesky", Napi::Function::New(env, CholeskyJs, "cholesky"));
  exports.Set("choleskyInverse", Napi::Function::New(env, CholeskyInverseJs, "choleskyInverse"));
  exports.Set("inverseSpd", Napi::Function::New(env, InverseSpdJs, "inverseSpd"));
  exports.Set("qr", Napi::Function::New(env, QrJs, "qr"));
  exports.Set("solve", Napi::Function::New(env, SolveJs, "solve"));
  exports.Set("pinv", Napi::Function::New(env, PinvJs, "pinv"));
  exports.Set("logdet", Napi::Function::New(env, LogdetJs, "logdet"));
  exports.Set("sqrtmSpd", Napi::Function::New(env, SqrtmSpdJs, "sqrtmSpd"));
  exports.Set("hadamardInPlace", Napi::Function::New(env, HadamardInPlaceJs, "hadamardInPlace"));
}

}  // namespace tersor::napi
