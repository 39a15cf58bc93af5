/** Quantizer kernels (native/napi/quant.cpp). */
export interface QuantBinding {
  /**
   * Symmetric per-row int8 quantization: `scale_r = max|x_r| / 127`, `q = round_half_even(x · 127 / max|x_r|)`.
   * `x` is row-major `rows × cols`, all finite.
   */
  quantizeRowsInt8(x: Float32Array, rows: number, cols: number): Promise<{ q: Int8Array; scales: Float32Array }>;
  /** The same on a CUDA GPU; rejects with `E_NATIVE` when the build has no CUDA kernels or no GPU is present. */
  cudaQuantizeRowsInt8(x: Float32Array, rows: number, cols: number): Promise<{ q: Int8Array; scales: Float32Array }>;
}
