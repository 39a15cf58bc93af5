/**
 * Matrix multiplication kernels (native/napi/gemm.cpp). Matrices are row-major and dense (the row
 * length is the leading dimension). Inputs cross zero-copy (a view's `byteOffset` is honoured) and
 * are kept alive until the promise settles; do not modify them meanwhile. The product is computed
 * off the main thread by tersor's packed AVX2/FMA GEMM with f32 accumulation, using the thread
 * count of `setNumThreads`, and is bitwise the same for every thread count.
 *
 * Errors (as rejections, or thrown synchronously for argument types):
 * - `E_DTYPE`: an operand is not the typed array named below;
 * - `E_RANGE`: a size is not a non-negative integer, or an input holds NaN or ±Infinity (the message
 *   names the operand, the flat index and its row and column);
 * - `E_SHAPE`: an operand's length does not match the sizes (the message gives both numbers).
 */
export interface GemmBinding {
  /**
   * `C = op(A) · op(B)` in f32, where `op(A)` is `m × k` and `op(B)` is `k × n`.
   * @param a `m × k` row-major, or `k × m` when `transA` (then `op(A) = Aᵀ`); `m·k` finite values.
   * @param b `k × n` row-major, or `n × k` when `transB`; `k·n` finite values.
   * @param transA use the transpose of the stored `a` (default false).
   * @param transB use the transpose of the stored `b` (default false).
   * @returns a new row-major `m × n` Float32Array.
   */
  matmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number, transA?: boolean, transB?: boolean): Promise<Float32Array>;
  /**
   * `C = A · B` with `A` (`m × k`) and `B` (`k × n`) as IEEE binary16 bit patterns, widened to f32
   * exactly while packing and accumulated in f32 (no widened copy of the inputs is made).
   * @returns a new row-major `m × n` Float32Array.
   */
  matmulF16(a: Uint16Array, b: Uint16Array, m: number, k: number, n: number): Promise<Float32Array>;
  /** The same as {@link GemmBinding.matmulF16} for bfloat16 bit patterns. */
  matmulBf16(a: Uint16Array, b: Uint16Array, m: number, k: number, n: number): Promise<Float32Array>;
}
