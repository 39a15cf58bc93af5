// Weight-quantization methods over one linear layer: RTN, GPTQ, AWQ's scale search, HQQ, and the
// low-rank factorisations LoRD / LoRC / EoRA. No N-API here: native/napi/quant_methods.cpp binds
// these for JavaScript; @tersor/quant drives them over a whole model.
//
// Conventions: a linear's weight W is row-major [rows = out, cols = in] and computes y = x W^T;
// calibration inputs X are [N, cols] and enter only through the Gram G = X^T X ([cols, cols], f64,
// what the runtime's capture accumulates). The calibration output error of a quantized W^ is
// ||X (W - W^)^T||_F^2 = tr((W - W^) G (W - W^)^T). Quantized storage is row by row, each row a
// sequence of blocks of `BlockCodec::block` elements, `block_bytes` bytes each (the formats of
// tersor/quant_formats.hpp through scheme_codec, or the integer reference codec int_codec).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace tersor {

/// A row-blocked quantization format as the methods see it.
struct BlockCodec {
  std::string name;
  size_t block = 0;        // elements per block along a row
  size_t block_bytes = 0;  // bytes of one block
  /// Chooses the block's parameters (scales, zero points) from `x` and writes its codes.
  /// `importance` (block floats, may be null) weights the parameter search where the format has one.
  std::function<void(const float* x, void* blk, const float* importance)> quantize;
  /// Rewrites element `index` of an already parameterised block to the nearest value representable
  /// under its frozen parameters; returns that value (GPTQ's column-wise snapping).
  std::function<float(void* blk, size_t index, float x)> snap;
  /// Optional (may be empty): snap of element `index` in `count` blocks at blk0 + r * stride for the
  /// values x[r], the results in out[r]; the same as `count` calls of snap, without a call per element.
  std::function<void(void* blk0, size_t stride, size_t count, size_t index, const float* x, float* out)> snap_many;
  /// The block's values.
  std::function<void(const void* blk, float* y)> dequantize;
  /// Bits per weight of the stored form.
  double bits_per_weight() const { return block == 0 ? 0.0 : 8.0 * static_cast<double>(block_bytes) / static_cast<double>(block); }
};

/// tersor's reference integer codec (GPTQ's quantizer, Frantar et al. 2022): per block of `group`
/// elements (0 = the whole row of `row_len`), bits in [2, 8], maxq = 2^bits - 1;
/// symmetric: scale = 2 max|x| / maxq, zero = (maxq + 1) / 2; asymmetric: over [min(x, 0), max(x, 0)],
/// scale = (max - min) / maxq, zero = round(-min / scale); code q = clamp(round(x / scale) + zero, 0, maxq),
/// value = scale (q - zero). Storage: f32 scale, f32 zero, then one byte per code. For methods'
/// tests and as the fallback when the scheme is not a tersor/quant_formats.hpp scheme.
BlockCodec int_codec(int bits, size_t group, bool symmetric, size_t row_len);

/// The codec of a scheme name of tersor/quant_formats.hpp ("q4_k", "int4-g128", "nf4", ...) for rows
/// of `row_len` elements, over quantize_row / snap_to_block / dequantize_row (Shape when row_len is not
/// a multiple of the scheme's block; Range for an unknown name, per-tensor scales or NF4 double quant).
BlockCodec scheme_codec(const std::string& scheme, size_t row_len);

/// Bytes of one quantized row.
size_t codec_row_bytes(const BlockCodec& c, size_t row_len);

/// Round-to-nearest: every row through codec.quantize. Returns rows * row_bytes bytes. Rows in parallel.
std::vector<uint8_t> rtn_quantize(const BlockCodec& c, const float* w, size_t rows, size_t cols,
                                  const float* importance = nullptr);
/// Values of quantized rows.
std::vector<float> dequantize_rows(const BlockCodec& c, const uint8_t* q, size_t rows, size_t cols);

/// tr((W - V) G (W - V)^T) = ||X (W - V)^T||_F^2 in f64 (V = W^ for the quantization's output error).
double output_error(const float* w, const float* v, size_t rows, size_t cols, const double* gram);

struct GptqOptions {
  /// Dampening: lambda = damp * mean(diag(H)) added to the diagonal (the paper's 1%).
  double damp = 0.01;
  /// Lazy-batch width (columns per block update; the paper's B = 128). Raised to the codec's block
  /// when that is wider (K-quant super-blocks), so a block's parameters see every update before it.
  size_t block_size = 128;
  /// Process columns by decreasing diag(H) ("act-order" / desc_act). Implies static groups: the
  /// stored blocks follow the original column order, so their parameters are chosen up front.
  bool act_order = false;
  /// Choose every block's parameters from the (dead-column-zeroed) weights before any update.
  bool static_groups = false;
};

struct GptqResult {
  std::vector<uint8_t> q;       // rows * row_bytes
  std::vector<float> deq;       // rows * cols, the quantized values
  std::vector<int32_t> order;   // the column order processed
  size_t dead = 0;              // columns with diag(H) = 0 (weights zeroed)
  double loss = 0;              // GPTQ's sum over columns of ||w - q||^2 / [H^-1]_jj^2 / 2
};

/// GPTQ (Frantar, Ashkboos, Hoefler & Alistarh 2022, "GPTQ: Accurate Post-Training Quantization for
/// Generative Pre-trained Transformers", Alg. 1): H = 2 G / n_samples; dead columns (H_jj = 0) get
/// H_jj = 1 and W[:, j] = 0; optional act-order permutation; H += damp mean(diag H) I; U = upper
/// Cholesky factor of H^-1; columns quantized one at a time, the error (w - q) / U_jj pushed onto the
/// remaining columns of the current lazy batch through row j of U, and batch-wise onto the rest with
/// one GEMM (tersor::sgemm). A block's parameters are chosen by codec.quantize from the current
/// (updated) weights when its first column is reached (or up front with static groups), every other
/// element goes through codec.snap. Deterministic; `gram` is [cols, cols] f64 X^T X.
GptqResult gptq(const BlockCodec& c, const float* w, size_t rows, size_t cols, const double* gram,
                size_t n_samples, const GptqOptions& opt = {});

/// The same algorithm without lazy batches or GEMMs (every column update applied to all later columns
/// at once, row-major W): the straightforward formulation, for tests and the benchmark baseline.
GptqResult gptq_reference(const BlockCodec& c, const float* w, size_t rows, size_t cols, const double* gram,
                          size_t n_samples, const GptqOptions& opt = {});

struct AwqResult {
  std::vector<float> scales;   // cols: s_j = mean|x_j|^alpha / sqrt(max s * min s)
  double alpha = 0;            // the best grid point
  double error = 0;            // its summed output error
  std::vector<double> errors;  // per grid point alpha = i / grid
};

/// AWQ's activation-aware scale search (Lin et al. 2024, "AWQ: Activation-aware Weight Quantization
/// for LLM Compression and Acceleration", Sec. 3.2): for alpha on the grid {0, 1/grid, ..., (grid-1)/grid},
/// s = mean|x|^alpha (normalised by sqrt(max s * min s), as the reference implementation), each of the
/// linears sharing this input is quantized as Q(W diag(s)) diag(s)^-1 and the summed calibration
/// output error tr(dW G dW^T) is measured; the alpha with the least error wins (alpha = 0 is plain
/// RTN, so the search never does worse than RTN on the calibration data). `ws[i]` is [rows[i], cols].
AwqResult awq_search(const BlockCodec& c, const std::vector<const float*>& ws, const std::vector<size_t>& rows,
                     size_t cols, const double* gram, const float* mean_abs_x, size_t grid = 20);

struct HqqOptions {
  double lp_norm = 0.7;   // p < 1 of the sparsity-promoting error
  double beta = 10.0;     // initial half-quadratic penalty
  double kappa = 1.01;    // beta *= kappa per iteration
  size_t iters = 20;
};

struct HqqResult {
  std::vector<float> scale;  // per group: value = scale * (q - zero)
  std::vector<float> zero;   // per group, real-valued
  std::vector<uint8_t> codes;  // rows * cols codes in [0, 2^bits)
  size_t iterations = 0;
  double error = 0;          // mean |W - W^| of the last evaluated iterate
};

/// HQQ (Badri & Shaji 2023, "Half-Quadratic Quantization of Large Machine Learning Models";
/// the reference's optimize_weights_proximal): asymmetric `bits`, groups of `group` along each row
/// (0 = whole row). Initial inverse scale s = maxq / (max - min), zero z = round(-min s); then
/// alternately W_q = clamp(round(W s + z)), W_r = (W_q - z) / s, W_e = shrink_lp(W - W_r, beta)
/// with shrink_lp(x) = sign(x) relu(|x| - |x|^(p-1) / beta), z = mean_group(W_q - (W - W_e) s),
/// beta *= kappa, stopping when the mean |W - W_r| stops decreasing. No calibration data. AVX2 (the
/// power through vectorised log2/exp2) with rows in parallel.
HqqResult hqq(const float* w, size_t rows, size_t cols, int bits, size_t group, const HqqOptions& opt = {});
/// The scalar formulation (std::pow, one element at a time), for tests and the benchmark baseline.
HqqResult hqq_reference(const float* w, size_t rows, size_t cols, int bits, size_t group, const HqqOptions& opt = {});
/// Values of an HQQ result.
std::vector<float> hqq_dequantize(const HqqResult& r, size_t rows, size_t cols, size_t group);

/// A factorisation M ~ B A with B [rows, rank] and A [rank, cols].
struct LowRank {
  std::vector<float> b, a;
  size_t rows = 0, cols = 0, rank = 0;
  std::vector<float> singular_values;  // of the matrix factorised (all of them)
};

/// The smallest rank whose leading singular values hold `energy` (in (0, 1]) of sum s_i^2.
size_t rank_for_energy(const std::vector<float>& s, double energy);

/// LoRD-style truncated SVD (Kaushal et al. 2023, "LORD: Low Rank Decomposition of Monolingual Code
/// LLMs for One-Shot Compression"): W ~ (U_k S_k)(V_k^T). rank > 0: that rank; rank = 0: by `energy`.
LowRank lord(const float* w, size_t rows, size_t cols, size_t rank, double energy = 0.99);

/// LoRC (Yao et al. 2023, "ZeroQuant-V2", low-rank compensation): truncated SVD of the quantization
/// error E = W - Q(W), E ~ B A.
LowRank lorc(const float* e, size_t rows, size_t cols, size_t rank);

/// EoRA (Liu et al. 2024, "EoRA: Training-free Compensation for Compressed LLM with Eigenspace
/// Low-Rank Approximation"): G = X^T X = Q Lambda Q^T; E' = E Q Lambda^1/2; truncated SVD
/// E' ~ U_k S_k V_k^T; B = U_k S_k, A = V_k^T Lambda^-1/2 Q^T (directions with lambda <= 1e-10 max
/// lambda carry no activation and are dropped). Minimises ||X (E - B A)^T||_F over rank-k B A.
LowRank eora(const float* e, size_t rows, size_t cols, const double* gram, size_t rank);

}  // namespace tersor
