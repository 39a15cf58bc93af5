// Bindings for information measures (tersor/stats.hpp). Samples are row-major Float64Arrays with
// their sizes; every function validates sizes (E_SHAPE), runs on the libuv pool and returns a
// Promise. Argument errors reject the Promise too (guard_async).
#include <cmath>
#include <memory>
#include <string>

#include "napi_util.hpp"
#include "tersor/stats.hpp"

namespace tersor::napi {
namespace {

using stats::Metric;

/// A row-major n x d Float64Array argument (checked against the sizes, kept alive for the worker).
struct Sample {
  ArgArray<double> arr;
  size_t n = 0, d = 0;
  const double* data() const { return arr.data; }
};

Sample arg_sample(const Napi::CallbackInfo& info, size_t index, const char* what, size_t n, size_t d) {
  Sample s{arg_array<double>(info, index, what, true), n, d};
  size_t total = 0;
  if (__builtin_mul_overflow(n, d, &total) || total != s.arr.size)
    fail(ErrorCode::Shape, std::string(what) + " has " + std::to_string(s.arr.size) + " values, expected " +
                               std::to_string(n) + " rows x " + std::to_string(d) + " columns");
  return s;
}

Metric arg_metric(const Napi::CallbackInfo& info, size_t index) {
  if (index < info.Length() && info[index].IsString()) {
    const std::string m = info[index].As<Napi::String>().Utf8Value();
    if (m == "chebyshev") return Metric::Chebyshev;
    if (m == "euclidean") return Metric::Euclidean;
  }
  fail(ErrorCode::Range, "metric must be \"chebyshev\" or \"euclidean\"");
}

bool is_null_or_undefined(const Napi::CallbackInfo& info, size_t index) {
  return index >= info.Length() || info[index].IsNull() || info[index].IsUndefined();
}

/// Labels as a Uint32Array of n entries below `classes`.
struct Labels {
  ArgArray<uint32_t> arr;
  size_t classes = 0;
};
Labels arg_labels(const Napi::CallbackInfo& info, size_t index, size_t n, size_t classes_index) {
  Labels l{arg_array<uint32_t>(info, index, "labels", true), arg_size(info, classes_index, "classes")};
  require(l.arr.size == n, ErrorCode::Shape,
          "labels has " + std::to_string(l.arr.size) + " entries, expected one per sample (" + std::to_string(n) + ")");
  return l;
}

/// Runs `compute` (returning double) on the pool and resolves with the number.
template <class F, class... Refs>
Napi::Value async_number(Napi::Env env, F compute, Refs&&... refs) {
  auto out = std::make_shared<double>(0);
  return run_async(
      env, [out, compute] { *out = compute(); },
      [out](Napi::Env e) -> Napi::Value { return Napi::Number::New(e, *out); }, std::forward<Refs>(refs)...);
}

// (x, n, d, k, metric, queries | null, nq) -> Promise<{dist: Float64Array, idx: Uint32Array}>
TERSOR_NAPI(KnnSearch) {
  return guard_async(info.Env(), [&]() -> Napi::Value {
    const size_t n = arg_size(info, 1, "n"), d = arg_size(info, 2, "d"), k = arg_size(info, 3, "k");
    Sample x = arg_sample(info, 0, "x", n, d);
    const Metric metric = arg_metric(info, 4);
    const bool external = !is_null_or_undefined(info, 5);
    const size_t nq = external ? arg_size(info, 6, "nq") : n;
    Sample q = external ? arg_sample(info, 5, "queries", nq, d) : Sample{};
    auto dist = std::make_shared<std::vector<double>>();
    auto idx = std::make_shared<std::vector<uint32_t>>();
    const double* xp = x.data();
    const double* qp = q.data();
    Napi::ObjectReference qkeep = external ? std::move(q.arr.keep) : Napi::ObjectReference();
    return run_async(
        info.Env(),
        [=] {
          stats::NeighborIndex index(xp, n, d, metric);
          dist->resize(nq * k);
          idx->resize(nq * k);
          if (external) index.knn(qp, nq, k, dist->data(), idx->data());
          else index.knn_self(k, dist->data(), idx->data());
        },
        [=](Napi::Env env) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          o.Set("dist", to_typed_array<double>(env, std::move(*dist)));
          o.Set("idx", to_typed_array<uint32_t>(env, std::move(*idx)));
          return o;
        },
        std::move(x.arr.keep), std::move(qkeep));
  });
}

// (x, n, d, radii, metric, strict) -> Promise<Uint32Array>
TERSOR_NAPI(KnnCountWithin) {
  return guard_async(info.Env(), [&]() -> Napi::Value {
    const size_t n = arg_size(info, 1, "n"), d = arg_size(info, 2, "d");
    Sample x = arg_sample(info, 0, "x", n, d);
    Sample r = arg_sample(info, 3, "radii", n, 1);
    const Metric metric = arg_metric(info, 4);
    const bool strict = arg_bool(info, 5, true);
    auto counts = std::make_shared<std::vector<uint32_t>>();
    const double *xp = x.data(), *rp = r.data();
    return run_async(
        info.Env(),
        [=] {
          stats::NeighborIndex index(xp, n, d, metric, stats::auto_backend(n, d, true));
          counts->resize(n);
          index.count_self(rp, strict, counts->data());
        },
        [=](Napi::Env env) -> Napi::Value { return to_typed_array<uint32_t>(env, std::move(*counts)); },
        std::move(x.arr.keep), std::move(r.arr.keep));
  });
}

// (x, n, d, k, metric) -> Promise<number>
TERSOR_NAPI(KlEntropy) {
  return guard_async(info.Env(), [&]() -> Napi::Value {
    const size_t n = arg_size(info, 1, "n"), d = arg_size(info, 2, "d"), k = arg_size(info, 3, "k");
    Sample x = arg_sample(info, 0, "x", n, d);
    const Metric metric = arg_metric(info, 4);
    const double* xp = x.data();
    return async_number(info.Env(), [=] { return stats::kl_entropy(xp, n, d, k, metric); }, std::move(x.arr.keep));
  });
}

// (x, y, n, dx, dy, k, algorithm) -> Promise<number>
TERSOR_NAPI(KsgMutualInformation) {
  return guard_async(info.Env(), [&]() -> Napi::Value {
    const size_t n = arg_size(info, 2, "n"), dx = arg_size(info, 3, "dx"), dy = arg_size(info, 4, "dy");
    const size_t k = arg_size(info, 5, "k"), alg = arg_size(info, 6, "algorithm");
    Sample x = arg_sample(info, 0, "x", n, dx), y = arg_sample(info, 1, "y", n, dy);
    const double *xp = x.data(), *yp = y.data();
    return async_number(
        info.Env(), [=] { return stats::ksg_mi(xp, dx, yp, dy, n, k, static_cast<int>(alg)); }, std::move(x.arr.keep),
        std::move(y.arr.keep));
  });
}

// (x, y, z, n, dx, dy, dz, k) -> Promise<number>
TERSOR_NAPI(KsgConditionalMutualInformation) {
  return guard_async(info.Env(), [&]() -> Napi::Value {
    const size_t n = arg_size(info, 3, "n"), dx = arg_size(info, 4, "dx"), dy = arg_size(info, 5, "dy");
    const size_t dz = arg_size(info, 6, "dz"), k = arg_size(info, 7, "k");
    Sample x = arg_sample(info, 0, "x", n, dx), y = arg_sample(info, 1, "y", n, dy), z = arg_sample(info, 2, "z", n, dz);
    const double *xp = x.data(), *yp = y.data(), *zp = z.data();
    return async_number(
        info.Env(), [=] { return stats::ksg_cmi(xp, dx, yp, dy, zp, dz, n, k); }, std::move(x.arr.keep),
        std::move(y.arr.keep), std::move(z.arr.keep));
  });
}

// (x, y, n, dx, dy, k) -> Promise<number>
TERSOR_NAPI(MixedMutualInformation) {
  return guard_async(info.Env(), [&]() -> Napi::Value {
    const size_t n = arg_size(info, 2, "n"), dx = arg_size(info, 3, "dx"), dy = arg_size(info, 4, "dy");
    const size_t k = arg_size(info, 5, "k");
    Sample x = arg_sample(info, 0, "x", n, dx), y = arg_sample(info, 1, "y", n, dy);
    const double *xp = x.data(), *yp = y.data();
    return async_number(
        info.Env(), [=] { return stats::mixed_mi(xp, dx, yp, dy, n, k); }, std::move(x.arr.keep), std::move(y.arr.keep));
  });
}

// (x, n, y, m, d, k, metric) -> Promise<number>
TERSOR_NAPI(KnnKlDivergence) {
  return guard_async(info.Env(), [&]() -> Napi::Value {
    const size_t n = arg_size(info, 1, "n"), m = arg_size(info, 3, "m"), d = arg_size(info, 4, "d");
    const size_t k = arg_size(info, 5, "k");
    Sample x = arg_sample(info, 0, "x", n, d), y = arg_sample(info, 2, "y", m, d);
    const Metric metric = arg_metric(info, 6);
    const double *xp = x.data(), *yp = y.data();
    return async_number(
        info.Env(), [=] { return stats::knn_kl_divergence(xp, n, yp, m, d, k, metric); }, std::move(x.arr.keep),
        std::move(y.arr.keep));
  });
}

// (x, n, d, sigma) -> Promise<Float64Array n x n>
TERSOR_NAPI(GaussianGram) {
  return guard_async(info.Env(), [&]() -> Napi::Value {
    const size_t n = arg_size(info, 1, "n"), d = arg_size(info, 2, "d");
    Sample x = arg_sample(info, 0, "x", n, d);
    const double sigma = arg_number(info, 3, "sigma");
    auto out = std::make_shared<std::vector<double>>();
    const double* xp = x.data();
    return run_async(
        info.Env(), [=] { *out = stats::gaussian_gram(xp, n, d, sigma); },
        [=](Napi::Env env) -> Napi::Value { return to_typed_array<double>(env, std::move(*out)); }, std::move(x.arr.keep));
  });
}

// (x, n, d, h) -> Promise<number>
TERSOR_NAPI(KdeEntropy) {
  return guard_async(info.Env(), [&]() -> Napi::Value {
    const size_t n = arg_size(info, 1, "n"), d = arg_size(info, 2, "d");
    Sample x = arg_sample(info, 0, "x", n, d);
    const double h = arg_number(info, 3, "h");
    const double* xp = x.data();
    return async_number(info.Env(), [=] { return stats::kde_entropy(xp, n, d, h); }, std::move(x.arr.keep));
  });
}

// (ka, n, alpha, kb | null) -> Promise<number>: S_alpha(A), or the joint S_alpha(A, B) when kb is given.
TERSOR_NAPI(MatrixRenyiEntropy) {
  return guard_async(info.Env(), [&]() -> Napi::Value {
    const size_t n = arg_size(info, 1, "n");
    Sample a = arg_sample(info, 0, "gram", n, n);
    const double alpha = arg_number(info, 2, "alpha");
    const bool joint = !is_null_or_undefined(info, 3);
    Sample b = joint ? arg_sample(info, 3, "second gram", n, n) : Sample{};
    const double *ap = a.data(), *bp = b.data();
    Napi::ObjectReference bkeep = joint ? std::move(b.arr.keep) : Napi::ObjectReference();
    return async_number(
        info.Env(),
        [=] { return joint ? stats::matrix_renyi_joint_entropy(ap, bp, n, alpha) : stats::matrix_renyi_entropy(ap, n, alpha); },
        std::move(a.arr.keep), std::move(bkeep));
  });
}

// (z, n, d, center) -> Promise<Float64Array> (eigenvalues of Z^T Z / n, descending)
TERSOR_NAPI(CovarianceSpectrum) {
  return guard_async(info.Env(), [&]() -> Napi::Value {
    const size_t n = arg_size(info, 1, "n"), d = arg_size(info, 2, "d");
    Sample z = arg_sample(info, 0, "z", n, d);
    const bool center = arg_bool(info, 3, false);
    auto out = std::make_shared<std::vector<double>>();
    const double* zp = z.data();
    return run_async(
        info.Env(), [=] { *out = stats::covariance_spectrum(zp, n, d, center); },
        [=](Napi::Env env) -> Napi::Value { return to_typed_array<double>(env, std::move(*out)); }, std::move(z.arr.keep));
  });
}

// (z, n, d, eps2) -> Promise<number>
TERSOR_NAPI(CodingRate) {
  return guard_async(info.Env(), [&]() -> Napi::Value {
    const size_t n = arg_size(info, 1, "n"), d = arg_size(info, 2, "d");
    Sample z = arg_sample(info, 0, "z", n, d);
    const double eps2 = arg_number(info, 3, "eps2");
    const double* zp = z.data();
    return async_number(info.Env(), [=] { return stats::coding_rate(zp, n, d, eps2); }, std::move(z.arr.keep));
  });
}

// (z, n, d, labels, classes, eps2) -> Promise<{rate, classRate, reduction, classSizes}>
TERSOR_NAPI(RateReduction) {
  return guard_async(info.Env(), [&]() -> Napi::Value {
    const size_t n = arg_size(info, 1, "n"), d = arg_size(info, 2, "d");
    Sample z = arg_sample(info, 0, "z", n, d);
    Labels l = arg_labels(info, 3, n, 4);
    const double eps2 = arg_number(info, 5, "eps2");
    auto out = std::make_shared<stats::RateReduction>();
    const double* zp = z.data();
    const uint32_t* lp = l.arr.data;
    const size_t classes = l.classes;
    return run_async(
        info.Env(), [=] { *out = stats::rate_reduction(zp, n, d, lp, classes, eps2); },
        [=](Napi::Env env) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          o.Set("rate", out->rate);
          o.Set("classRate", out->class_rate);
          o.Set("reduction", out->reduction);
          o.Set("classSizes", to_typed_array<uint32_t>(env, std::move(out->class_sizes)));
          return o;
        },
        std::move(z.arr.keep), std::move(l.arr.keep));
  });
}

// (z, n, d, sigma, t) -> Promise<number>
TERSOR_NAPI(DiffusionSpectralEntropy) {
  return guard_async(info.Env(), [&]() -> Napi::Value {
    const size_t n = arg_size(info, 1, "n"), d = arg_size(info, 2, "d");
    Sample z = arg_sample(info, 0, "z", n, d);
    const double sigma = arg_number(info, 3, "sigma"), t = arg_number(info, 4, "t");
    const double* zp = z.data();
    return async_number(info.Env(), [=] { return stats::diffusion_spectral_entropy(zp, n, d, sigma, t); },
                        std::move(z.arr.keep));
  });
}

// (z, n, d, labels, classes, sigma, t) -> Promise<{entropy, conditionalEntropy, mi}>
TERSOR_NAPI(DiffusionSpectralMutualInformation) {
  return guard_async(info.Env(), [&]() -> Napi::Value {
    const size_t n = arg_size(info, 1, "n"), d = arg_size(info, 2, "d");
    Sample z = arg_sample(info, 0, "z", n, d);
    Labels l = arg_labels(info, 3, n, 4);
    const double sigma = arg_number(info, 5, "sigma"), t = arg_number(info, 6, "t");
    auto out = std::make_shared<stats::DiffusionSpectralMi>();
    const double* zp = z.data();
    const uint32_t* lp = l.arr.data;
    const size_t classes = l.classes;
    return run_async(
        info.Env(), [=] { *out = stats::diffusion_spectral_mi(zp, n, d, lp, classes, sigma, t); },
        [=](Napi::Env env) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          o.Set("entropy", out->entropy);
          o.Set("conditionalEntropy", out->conditional_entropy);
          o.Set("mi", out->mi);
          return o;
        },
        std::move(z.arr.keep), std::move(l.arr.keep));
  });
}

// (x, n, y, m, d, sigma) -> Promise<number>
TERSOR_NAPI(CsDivergence) {
  return guard_async(info.Env(), [&]() -> Napi::Value {
    const size_t n = arg_size(info, 1, "n"), m = arg_size(info, 3, "m"), d = arg_size(info, 4, "d");
    Sample x = arg_sample(info, 0, "x", n, d), y = arg_sample(info, 2, "y", m, d);
    const double sigma = arg_number(info, 5, "sigma");
    const double *xp = x.data(), *yp = y.data();
    return async_number(
        info.Env(), [=] { return stats::cs_divergence(xp, n, yp, m, d, sigma); }, std::move(x.arr.keep),
        std::move(y.arr.keep));
  });
}

// (x, y, n, dx, dy, sigmaX, sigmaY) -> Promise<number>
TERSOR_NAPI(CsQuadraticMutualInformation) {
  return guard_async(info.Env(), [&]() -> Napi::Value {
    const size_t n = arg_size(info, 2, "n"), dx = arg_size(info, 3, "dx"), dy = arg_size(info, 4, "dy");
    Sample x = arg_sample(info, 0, "x", n, dx), y = arg_sample(info, 1, "y", n, dy);
    const double sx = arg_number(info, 5, "sigmaX"), sy = arg_number(info, 6, "sigmaY");
    const double *xp = x.data(), *yp = y.data();
    return async_number(
        info.Env(), [=] { return stats::cs_qmi(xp, dx, yp, dy, n, sx, sy); }, std::move(x.arr.keep),
        std::move(y.arr.keep));
  });
}

}  // namespace

void init_stats(Napi::Env env, Napi::Object exports) {
  exports.Set("knnSearch", Napi::Function::New(env, KnnSearch, "knnSearch"));
  exports.Set("knnCountWithin", Napi::Function::New(env, KnnCountWithin, "knnCountWithin"));
  exports.Set("klEntropy", Napi::Function::New(env, KlEntropy, "klEntropy"));
  exports.Set("ksgMutualInformation", Napi::Function::New(env, KsgMutualInformation, "ksgMutualInformation"));
  exports.Set("ksgConditionalMutualInformation",
              Napi::Function::New(env, KsgConditionalMutualInformation, "ksgConditionalMutualInformation"));
  exports.Set("mixedMutualInformation", Napi::Function::New(env, MixedMutualInformation, "mixedMutualInformation"));
  exports.Set("knnKlDivergence", Napi::Function::New(env, KnnKlDivergence, "knnKlDivergence"));
  exports.Set("gaussianGram", Napi::Function::New(env, GaussianGram, "gaussianGram"));
  exports.Set("kdeEntropy", Napi::Function::New(env, KdeEntropy, "kdeEntropy"));
  exports.Set("matrixRenyiEntropy", Napi::Function::New(env, MatrixRenyiEntropy, "matrixRenyiEntropy"));
  exports.Set("covarianceSpectrum", Napi::Function::New(env, CovarianceSpectrum, "covarianceSpectrum"));
  exports.Set("codingRate", Napi::Function::New(env, CodingRate, "codingRate"));
  exports.Set("rateReduction", Napi::Function::New(env, RateReduction, "rateReduction"));
  exports.Set("diffusionSpectralEntropy", Napi::Function::New(env, DiffusionSpectralEntropy, "diffusionSpectralEntropy"));
  exports.Set("diffusionSpectralMutualInformation",
              Napi::Function::New(env, DiffusionSpectralMutualInformation, "diffusionSpectralMutualInformation"));
  exports.Set("csDivergence", Napi::Function::New(env, CsDivergence, "csDivergence"));
  exports.Set("csQuadraticMutualInformation",
              Napi::Function::New(env, CsQuadraticMutualInformation, "csQuadraticMutualInformation"));
}

}  // namespace tersor::napi
