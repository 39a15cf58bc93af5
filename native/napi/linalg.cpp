// Bindings for linear algebra (matmul, decompositions, Walsh-Hadamard).
#include "napi_util.hpp"

namespace tersor::napi {

void init_linalg(Napi::Env env, Napi::Object exports) {}

}  // namespace tersor::napi
