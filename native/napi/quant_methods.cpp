// Bindings for quantization methods (GPTQ, AWQ, HQQ, rotations, low-rank). Registered by addon.cpp through init_quant_methods.
#include "napi_util.hpp"

namespace tersor::napi {

void init_quant_methods(Napi::Env env, Napi::Object exports) {}

}  // namespace tersor::napi
