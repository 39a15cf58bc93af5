// Bindings for KV-cache compressors. Registered by addon.cpp through init_kv.
#include "napi_util.hpp"

namespace tersor::napi {

void init_kv(Napi::Env env, Napi::Object exports) {}

}  // namespace tersor::napi
