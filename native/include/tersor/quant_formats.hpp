// Weight quantization formats: integer (sym/asym, 2..8 bit, per tensor / channel / group), NF4
// (QLoRA), learned k-means codebooks, FP8 (E4M3 / E5M2, OCP), MXFP4 / NVFP4, and the ggml block
// formats Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K Q4_K Q5_K Q6_K, byte-exact with ggml's block layouts
// (ggml/src/ggml-common.h) so GGUF files we write load in llama.cpp and theirs load here.
//
// Everything works on whole ROWS of n elements (a weight matrix [out, in] is quantized row by row;
// rows are independent, so a quantized matrix is rows * scheme_row_bytes(n) bytes, row-major).
//
// Byte layouts (little-endian; f16 = IEEE binary16):
//   ggml formats: exactly ggml's block_q8_0, block_q4_0, ..., block_q6_K (QK_K = 256). MXFP4 is
//     ggml's block_mxfp4 { u8 e (E8M0); u8 qs[16] } over 32 values, value = e2m1(code) * 2^(e-127)
//     with the codes of elements j and j+16 in the low / high nibble of qs[j]. NVFP4 is ggml's
//     block_nvfp4 { u8 d[4] (unsigned E4M3, one per 16 values); u8 qs[32] } over 64 values: sub-block
//     s uses qs[8s..8s+7], low nibble = element j, high = element j+8 of the sub-block, value =
//     e2m1(code) * ue4m3(d[s]); NVIDIA's per-tensor f32 second-level scale is not part of the row.
//   INT (tersor's own): per group of g elements (g = group, or n when group == 0 = per channel):
//     f16 scale d, then (asym only) u8 zero point z, then ceil(g*bits/8) bytes of codes c in
//     [0, 2^bits) packed LSB-first (element 0 in the lowest bits of byte 0). Value:
//       symmetric:  d * (c - 2^(bits-1))       (codes use the full range, like ggml's Q4_0)
//       asymmetric: d * (c - z)
//     Per-tensor quantization (scheme.per_tensor) stores the SAME layout as per channel but every row
//     carries the one tensor-wide scale (and zero point), chosen by quantize_matrix.
//   NF4 (Dettmers et al. 2023, QLoRA): blocks of `group` (default 64) elements, codes index the
//     16-value NF4 table (nf4_table()), value = table[c] * absmax; two codes per byte, element 2j in
//     the low nibble of byte j. Without double quantization a block is { f32 absmax; u8 codes[g/2] }.
//     With double quantization (scheme.double_quant) the row starts with one header per chunk of 256
//     blocks { f32 mean; f32 step } and each block is { u8 qabsmax; u8 codes[g/2] } with
//     absmax = mean + step * (qabsmax - 128) (a linear 8-bit second level; QLoRA uses bitsandbytes'
//     dynamic 8-bit map, the structure - 8-bit scales per block, f32 constants per 256 blocks, mean
//     subtracted - is the paper's).
//   KMEANS (learned non-uniform codebook, SqueezeLLM-style per output channel, Kim et al. 2023): the
//     row starts with 2^bits f16 centroids (sorted ascending), then n codes of `bits` bits packed
//     LSB-first. Centroids are fitted by (importance-weighted) k-means (Lloyd) on the row.
//   FP8_E4M3 / FP8_E5M2 (OCP 8-bit floating point spec v1.0): per group of g (0 = whole row)
//     elements an f32 scale s then g bytes of FP8 codes; value = fp8(code) * s. s = absmax / max
//     finite (448 for E4M3, 57344 for E5M2) so the group uses the full range; encoding rounds to
//     nearest even and saturates to the largest finite value (never produces Inf / NaN).
//
// Scalar references for every quantizer, dequantizer and the GEMV live in namespace quant_ref and
// are what the AVX2 paths are tested against (same bytes for quantization; dot products to within
// f32 summation-order rounding).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace tersor {

enum class QuantFormat : uint8_t {
  Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K,
  MXFP4, NVFP4, NF4, FP8_E4M3, FP8_E5M2, INT, KMEANS
};

/// A format plus its parameters.
///   INT: bits 2..8, group 0 = per channel (or per tensor with per_tensor) or 32/64/128, symmetric or not.
///   NF4: group = block size (64 default), double_quant.   KMEANS: bits 2..8.
///   FP8_*: group 0 = one scale per row, else one per group.   Other formats: fixed.
struct QuantScheme {
  QuantFormat format = QuantFormat::Q8_0;
  int bits = 0;
  size_t group = 0;
  bool symmetric = true;
  bool double_quant = false;
  bool per_tensor = false;
  /// MSE-optimal clipping search for INT (scale shrink grid, Lin et al. 2023 / AWQ-style), default on.
  bool clip_search = true;
};

/// Parses "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q2_k".."q6_k", "mxfp4", "nvfp4", "nf4",
/// "nf4-g128", "nf4-dq", "fp8" (= fp8_e4m3), "fp8_e4m3", "fp8_e5m2", "fp8-g128",
/// "int<b>" (per channel), "int<b>-g<32|64|128>", "int<b>-pt" (per tensor), any INT form with
/// "-asym" appended, "kmeans<b>". Case-insensitive. E_RANGE listing the valid names otherwise.
QuantScheme parse_quant_scheme(const std::string& name);
/// Canonical name (parse_quant_scheme(quant_scheme_name(s)) == s).
std::string quant_scheme_name(const QuantScheme&);
/// Elements per block: 32 (Q*_0/_1, MXFP4), 256 (K-quants), 64 (NVFP4), group (NF4, INT, FP8 with a
/// group), 0 when the whole row is one block (INT per channel / per tensor, FP8 per row, KMEANS).
size_t scheme_block(const QuantScheme&);
/// Bytes of one block in a row of n elements (for block = 0: the row's bytes without row headers).
size_t scheme_block_bytes(const QuantScheme&, size_t n);
/// Bytes of a quantized row of n elements (E_SHAPE if n is not a multiple of the block).
size_t scheme_row_bytes(const QuantScheme&, size_t n);
/// Storage bits per weight (for a row of n elements where the format has row headers; n = 4096 default).
double scheme_bits_per_weight(const QuantScheme&, size_t n = 4096);

/// Quantizes one row. importance (n floats, may be null) = per-column weights of the error in the
/// scale searches (K-quants, INT clip search, KMEANS, NF4 ignores it). Throws E_SHAPE / E_RANGE
/// (non-finite input).
void quantize_row(const QuantScheme&, const float* x, void* out, size_t n, const float* importance = nullptr);
void dequantize_row(const QuantScheme&, const void* in, float* y, size_t n);

/// Whole matrix [rows, cols], rows in parallel on tersor::num_threads(); handles per_tensor.
void quantize_matrix(const QuantScheme&, const float* x, size_t rows, size_t cols, void* out,
                     const float* importance = nullptr);
void dequantize_matrix(const QuantScheme&, const void* in, size_t rows, size_t cols, float* y);

/// For GPTQ's column-by-column updates with frozen block parameters: `block` points at one block's
/// bytes (for block == 0 formats: the row) whose parameters were chosen by quantize_row;
/// snap_to_block rewrites element `index` of that block to the nearest value representable under the
/// block's existing parameters and returns the dequantized value. E_RANGE for NF4 with double
/// quantization (its scale lives in the row header).
float snap_to_block(const QuantScheme&, void* block, size_t index, float x);
/// snap_to_block of element `index` in `count` blocks at block0 + r * stride (r < count) for the values
/// x[r], the snapped values written to out[r] (GPTQ snaps one column of many rows at once).
void snap_to_blocks(const QuantScheme&, void* block0, size_t stride, size_t count, size_t index, const float* x, float* out);

/// Y[b, r] = sum_k W[r, k] X[b, k] for a quantized W [rows, cols] (rows * scheme_row_bytes(cols)
/// bytes) and f32 X [batch, cols]; Y is [batch, rows]. Dequantizes on the fly (AVX2), rows in
/// parallel on tersor::num_threads(). Q8_0, Q4_0, Q4_K, Q5_K, Q6_K, MXFP4, NF4 (blocks a multiple of
/// 32, no double quantization) and 4- or 8-bit INT (groups a multiple of 32) quantize X to Q8_0 blocks (8-bit
/// activations, as llama.cpp does; exactly quantize_row(q8_0) of each row) and use integer dot
/// products (NF4's table in 13-bit fixed point: |error| <= 2^-13 absmax per weight); every other
/// format multiplies dequantized f32 weights with f32 X. f32_activations = true keeps X in f32
/// for every format (the product then equals the f32 product with the dequantized weights up to
/// f32 summation rounding; the transformer runtime uses it).
void quant_matmul(const QuantScheme&, const void* w, size_t rows, size_t cols, const float* x, size_t batch, float* y,
                  bool f32_activations = false);
/// quant_matmul uses AVX-512 VNNI (vpdpbusd on 256-bit registers) for Q8_0, Q5_K, Q6_K, NF4 and INT8,
/// and 512-bit registers for FP8, where the CPU has them (checked at run time); false turns that off
/// (the AVX2 kernels then run: tests compare both with the reference, and the integer kernels with
/// each other: identical, both sums being exact integers). quant_matmul_vnni_active() says which runs now.
void quant_matmul_set_vnni(bool enabled);
bool quant_matmul_vnni_active();

// ---- element codecs -------------------------------------------------------------------------
/// The 16 NF4 values (QLoRA, Appendix E), ascending, table[7] = 0.
const float* nf4_table();
/// FP8 codecs (OCP): round to nearest even, saturating to +-max finite; NaN input -> NaN code.
uint8_t fp8_e4m3_encode(float x);
float fp8_e4m3_decode(uint8_t c);
uint8_t fp8_e5m2_encode(float x);
float fp8_e5m2_decode(uint8_t c);
/// E2M1 (FP4) code of x (nearest of 0, 0.5, 1, 1.5, 2, 3, 4, 6, ties to even code), and its value.
uint8_t e2m1_encode(float x);
float e2m1_decode(uint8_t c);

/// (Weighted) k-means in 1-D: k centroids (sorted) fitted to x by Lloyd iterations from quantile
/// initialisation. Deterministic.
std::vector<float> kmeans_1d(const float* x, const float* w, size_t n, size_t k, int iters = 30);

namespace quant_ref {
/// Scalar references (no SIMD) of the functions above.
void quantize_row(const QuantScheme&, const float* x, void* out, size_t n, const float* importance = nullptr);
void dequantize_row(const QuantScheme&, const void* in, float* y, size_t n);
void quant_matmul(const QuantScheme&, const void* w, size_t rows, size_t cols, const float* x, size_t batch, float* y);
}  // namespace quant_ref

}  // namespace tersor
