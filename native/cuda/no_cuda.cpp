// Built instead of native/cuda/*.cu when no CUDA compiler was found (TERSOR_CUDA=AUTO|OFF).
#include "tersor/error.hpp"
#include "tersor/quant_int8.hpp"

namespace tersor {

bool cuda_available(std::string* why) {
  if (why) *why = "this build of tersor has no CUDA kernels (nvcc was not found, or TERSOR_CUDA=OFF)";
  return false;
}

void cuda_quantize_rows_int8(const float*, size_t, size_t, int8_t*, float*) {
  fail(ErrorCode::Native, "this build of tersor has no CUDA kernels; rebuild with nvcc on PATH (TERSOR_CUDA=ON)");
}

}  // namespace tersor
