/** Quantizer kernels (native/napi/quant.cpp). */
export interface QuantBinding {
  /**
   * Symmetric per-row int8 quantization: `scale_r = max|x_r| / 127`, `q = round_half_even(x · 127 / max|x_r|)`.
   * `x` is row-major `rows × cols`, all finite.
   */
  quantizeRowsInt8(x: Float32Array, rows: number, cols: number): Promise<{ q: Int8Array; scales: Float32Array }>;
  /** The same on a CUDA GPU; rejects with `E_NATIVE` when the build has no CUDA kernels or no GPU is present. */
  cudaQuantizeRowsInt8(x: Float32Array, rows: number, cols: number): Promise<{ q: Int8Array; scales: Float32Array }>;

  /** A quantization scheme parsed (`"q4_k"`, `"int4-g128-asym"`, `"nf4-dq"`, ...): E_RANGE listing the valid names otherwise. */
  quantSchemeInfo(scheme: string): QuantSchemeInfo;
  /** Bytes of one quantized row of `cols` elements (E_SHAPE when `cols` is not a multiple of the block). */
  quantRowBytes(scheme: string, cols: number): number;
  /** Storage bits per weight for rows of `cols` elements. */
  quantBitsPerWeight(scheme: string, cols: number): number;
  /**
   * Quantizes a row-major `rows × cols` matrix (rows in parallel) into `rows × quantRowBytes(scheme, cols)` bytes.
   * `importance` (`cols` finite values ≥ 0) weights the per-column error of the scale searches (imatrix).
   */
  quantizeTensor(x: Float32Array, rows: number, cols: number, scheme: string, importance?: Float32Array | null): Promise<Uint8Array>;
  /** Inverse of {@link quantizeTensor}. */
  dequantizeTensor(q: Uint8Array, rows: number, cols: number, scheme: string): Promise<Float32Array>;
  /** `Y = X Wᵀ` for quantized `W` (`rows × cols`) and f32 `X` (`batch × cols`); `Y` is `batch × rows`. */
  quantMatmul(q: Uint8Array, rows: number, cols: number, scheme: string, x: Float32Array, batch: number): Promise<Float32Array>;
}

/** A parsed quantization scheme (native/include/tersor/quant_formats.hpp). */
export interface QuantSchemeInfo {
  /** Canonical name. */
  name: string;
  format:
    | "q8_0" | "q4_0" | "q4_1" | "q5_0" | "q5_1" | "q2_k" | "q3_k" | "q4_k" | "q5_k" | "q6_k"
    | "mxfp4" | "nvfp4" | "nf4" | "fp8_e4m3" | "fp8_e5m2" | "int" | "kmeans";
  bits: number;
  /** Group / block size of INT, NF4 and FP8 (0 = per row). */
  group: number;
  symmetric: boolean;
  doubleQuant: boolean;
  perTensor: boolean;
  /** Elements per block (0 = the whole row is one block). */
  block: number;
}
