/** Linear algebra kernels (native/napi/linalg.cpp). Matrices are row-major. */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface LinalgBinding {}
