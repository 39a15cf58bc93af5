// Bindings for data mixing (GBDT, mixing laws). Registered by addon.cpp through init_mix.
#include "napi_util.hpp"

namespace tersor::napi {

void init_mix(Napi::Env env, Napi::Object exports) {}

}  // namespace tersor::napi
