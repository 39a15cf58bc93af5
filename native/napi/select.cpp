// Bindings for data selection (hashing, MinHash, DSIR features, NCD, set functions). Registered by addon.cpp through init_select.
#include "napi_util.hpp"

namespace tersor::napi {

void init_select(Napi::Env env, Napi::Object exports) {}

}  // namespace tersor::napi
