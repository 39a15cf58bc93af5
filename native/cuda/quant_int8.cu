// CUDA version of tersor::quantize_rows_int8: one block per row, a shared-memory absmax reduction,
// then the same round-half-even arithmetic as the CPU path (explicit _rn intrinsics so that
// --use_fast_math cannot change the bits).
#include <cuda_runtime.h>

#include <string>

#include "tersor/error.hpp"
#include "tersor/quant_int8.hpp"

namespace tersor {
namespace {

constexpr int kThreads = 256;

__global__ void quantize_rows_int8_kernel(const float* __restrict__ x, size_t cols, int8_t* __restrict__ q,
                                          float* __restrict__ scales) {
  __shared__ float partial[kThreads];
  const size_t row = blockIdx.x;
  const float* xr = x + row * cols;
  float amax = 0.f;
  for (size_t j = threadIdx.x; j < cols; j += blockDim.x) amax = fmaxf(amax, fabsf(xr[j]));
  partial[threadIdx.x] = amax;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) partial[threadIdx.x] = fmaxf(partial[threadIdx.x], partial[threadIdx.x + s]);
    __syncthreads();
  }
  amax = partial[0];
  const float inv = amax > 0.f ? __fdiv_rn(127.0f, amax) : 0.f;
  if (threadIdx.x == 0) scales[row] = __fdiv_rn(amax, 127.0f);
  int8_t* qr = q + row * cols;
  for (size_t j = threadIdx.x; j < cols; j += blockDim.x) {
    float v = rintf(__fmul_rn(xr[j], inv));
    v = fminf(127.f, fmaxf(-127.f, v));
    qr[j] = static_cast<int8_t>(v);
  }
}

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) fail(ErrorCode::Native, std::string("CUDA ") + what + ": " + cudaGetErrorString(err));
}

}  // namespace

bool cuda_available(std::string* why) {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess || n == 0) {
    if (why) *why = err != cudaSuccess ? std::string("no usable CUDA device: ") + cudaGetErrorString(err) : "no CUDA device";
    return false;
  }
  return true;
}

void cuda_quantize_rows_int8(const float* x, size_t rows, size_t cols, int8_t* q, float* scales) {
  std::string why;
  if (!cuda_available(&why)) fail(ErrorCode::Native, why);
  if (rows == 0 || cols == 0) return;
  float* dx = nullptr;
  int8_t* dq = nullptr;
  float* ds = nullptr;
  const size_t n = rows * cols;
  try {
    check(cudaMalloc(&dx, n * sizeof(float)), "cudaMalloc");
    check(cudaMalloc(&dq, n), "cudaMalloc");
    check(cudaMalloc(&ds, rows * sizeof(float)), "cudaMalloc");
    check(cudaMemcpy(dx, x, n * sizeof(float), cudaMemcpyHostToDevice), "copy to device");
    quantize_rows_int8_kernel<<<static_cast<unsigned>(rows), kThreads>>>(dx, cols, dq, ds);
    check(cudaGetLastError(), "kernel launch");
    check(cudaMemcpy(q, dq, n, cudaMemcpyDeviceToHost), "copy to host");
    check(cudaMemcpy(scales, ds, rows * sizeof(float), cudaMemcpyDeviceToHost), "copy to host");
  } catch (...) {
    cudaFree(dx);
    cudaFree(dq);
    cudaFree(ds);
    throw;
  }
  cudaFree(dx);
  cudaFree(dq);
  cudaFree(ds);
}

}  // namespace tersor
