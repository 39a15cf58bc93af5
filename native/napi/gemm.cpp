// Bindings for matrix multiplication.
#include "napi_util.hpp"

namespace tersor::napi {

void init_gemm(Napi::Env env, Napi::Object exports) {}

}  // namespace tersor::napi
