// Bindings for trainable transformer (forward/backward, AdamW). Registered by addon.cpp through init_train.
#include "napi_util.hpp"

namespace tersor::napi {

void init_train(Napi::Env env, Napi::Object exports) {}

}  // namespace tersor::napi
