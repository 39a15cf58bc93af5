// Bindings for distillation (fused KD losses). Registered by addon.cpp through init_distill.
#include "napi_util.hpp"

namespace tersor::napi {

void init_distill(Napi::Env env, Napi::Object exports) {}

}  // namespace tersor::napi
