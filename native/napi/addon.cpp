// Module entry: registers every domain's bindings plus the loader's housekeeping functions.
#include <omp.h>

#include "napi_util.hpp"
#include "tersor/cpu.hpp"
#include "tersor/parallel.hpp"
#include "tersor/quant_int8.hpp"

namespace tersor::napi {
namespace {

TERSOR_NAPI(SetErrorClass) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsFunction()) throw Napi::TypeError::New(env, "setErrorClass needs a constructor");
  addon_data(env)->error_class = Napi::Persistent(info[0].As<Napi::Function>());
  return env.Undefined();
}

TERSOR_NAPI(SetNumThreads) {
  return guard(info.Env(), [&] {
    const double n = arg_number(info, 0, "threads");
    if (!(n >= 0 && n <= 4096) || n != static_cast<int>(n))
      fail(ErrorCode::Range, "threads must be an integer in [0, 4096] (0 = physical cores), got " + std::to_string(n));
    set_num_threads(static_cast<int>(n));
    return Napi::Number::New(info.Env(), num_threads());
  });
}

TERSOR_NAPI(NumThreads) { return Napi::Number::New(info.Env(), num_threads()); }

TERSOR_NAPI(BuildInfo) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("napiVersion", NAPI_VERSION);
  o.Set("physicalCores", physical_cores());
#ifdef TERSOR_HAVE_CUDA
  o.Set("cuda", true);
#else
  o.Set("cuda", false);
#endif
  std::string why;
  o.Set("cudaDevice", cuda_available(&why));
  o.Set("cudaProblem", why);
  o.Set("openmp", _OPENMP);
  o.Set("compiler", __VERSION__);
  const CpuFeatures f = cpu_features();
  Napi::Object cpu = Napi::Object::New(env);
  cpu.Set("avx2", f.avx2);
  cpu.Set("fma", f.fma);
  cpu.Set("f16c", f.f16c);
  cpu.Set("avx512f", f.avx512f);
  o.Set("cpu", cpu);
  return o;
}

}  // namespace

Napi::Object init_addon(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new AddonData());
  const std::string problem = cpu_support_problem();
  if (!problem.empty()) throw Napi::Error::New(env, problem);
  set_num_threads(0);
  exports.Set("setErrorClass", Napi::Function::New(env, SetErrorClass, "setErrorClass"));
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreads, "setNumThreads"));
  exports.Set("numThreads", Napi::Function::New(env, NumThreads, "numThreads"));
  exports.Set("buildInfo", Napi::Function::New(env, BuildInfo, "buildInfo"));
  init_core(env, exports);
  init_linalg(env, exports);
  init_gemm(env, exports);
  init_quant(env, exports);
  init_transformer(env, exports);
  init_model_ops(env, exports);
  init_mlp(env, exports);
  init_stats(env, exports);
  init_train(env, exports);
  init_quant_methods(env, exports);
  init_kv(env, exports);
  init_select(env, exports);
  init_mix(env, exports);
  init_distill(env, exports);
  return exports;
}

}  // namespace tersor::napi

static Napi::Object TersorInit(Napi::Env env, Napi::Object exports) { return tersor::napi::init_addon(env, exports); }

NODE_API_MODULE(tersor, TersorInit)
