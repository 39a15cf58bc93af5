/** Matrix multiplication kernels (native/napi/gemm.cpp). Matrices are row-major. */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface GemmBinding {}
