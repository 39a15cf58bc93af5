// KV-cache compression for decode-time attention, CPU (no N-API here; bindings in napi/kv.cpp).
//
// A CompressedKv holds the K/V cache of one sequence for every layer and KV head. Tokens arrive in
// chunks (prefill chunk or one decode token); per (layer, kv head) they land in a full-precision
// residual window (f16, as the papers keep it) and, for the quantizing methods, the oldest `group`
// tokens are flushed into a compressed block whenever the window holds residual + group tokens, so
// the window keeps between `residual` and `residual + group - 1` tokens. Methods:
//
//  * F16: no compression (every token in the f16 window): the baseline the ratios refer to.
//  * KIVI (Liu et al. 2024, "KIVI: A Tuning-Free Asymmetric 2bit Quantization for KV Cache"):
//    keys quantized per channel (one scale/zero per channel over a block of `group` tokens), values
//    per token (one scale/zero per `group` channels of a token, groups clipped to head_dim), uniform
//    asymmetric b-bit round-to-nearest with f16 scale and zero point.
//  * KVQuant (Hooper et al. 2024, "KVQuant: Towards 10 Million Context Length LLM Inference with
//    KV Cache Quantization"): keys quantized BEFORE RoPE (per channel) and rotated on the fly after
//    dequantization; values per token; per-layer non-uniform datatypes (2^b centroids in the
//    normalised domain [-1, 1]) fitted by sensitivity-weighted 1-D k-means on calibration data
//    (default: the first block each layer flushes, the key sensitivity of channel c being the
//    mean q_c^2 of the queries seen, the Fisher-information proxy of a key error in q.k), with
//    Q-Norm (centroids shifted/scaled so the dequantized calibration data keep the mean and standard
//    deviation of the data); dense-and-sparse: the `outliers` fraction of largest-magnitude entries
//    of a block is kept exactly (f16 value + u32 index) and excluded from the normalisation range.
//  * GEAR (Kang et al. 2024, "GEAR: An Efficient KV Cache Compression Recipe for Near-Lossless
//    Generative Inference of LLM"): X ~ D(Q_b(X - S)) + L + S per block: S the `outliers` fraction
//    of largest-magnitude entries (exact), Q_b KIVI-style uniform quantization of X - S, L = A B^T a
//    rank-`rank` approximation of the quantization residual by power (subspace) iteration.
//  * ZipCache (He et al. 2024, "ZipCache: Accurate and Efficient KV Cache Quantization with Salient
//    Token Identification"): keys channel-separable token-wise (channel c divided by
//    sqrt(max_t |k_tc|), then one scale/zero per token), values token-wise; salient tokens (the
//    `salient` fraction of a block with the highest normalised attention score: attention summed over
//    probe queries divided by the number of probe queries that could attend to the token) get
//    `bits`, the rest `low_bits`. Probe queries: the last probes/2 and probes/2 random queries of each
//    chunk (all when the chunk has <= probes), so the main path stays flash attention.
//  * H2O (Zhang et al. 2023, "H2O: Heavy-Hitter Oracle"): per KV head, keep `budget` tokens: the most
//    recent budget/2 and the heavy hitters by accumulated attention (summed over the query group).
//  * StreamingLLM (Xiao et al. 2024, "Efficient Streaming Language Models with Attention Sinks"):
//    `sinks` first tokens + the most recent budget - sinks tokens.
//  * EMS (Li et al. 2024, "EMS: Adaptive Evict-then-Merge Strategy for Head-wise KV Cache
//    Compression"): score = global_weight * (accumulated attention / queries that could attend)
//    + (1 - global_weight) * (attention from the last `local_window` queries, averaged); the budget of
//    a layer (budget x kv_heads tokens) is split across heads by their share of the globally
//    highest scores (each head keeps at least sinks + 1 tokens); evicted tokens are merged into their
//    most similar kept key (cosine) by score-weighted averaging of K and V.
//
// Budget (eviction): a value in (0, 1) is a fraction of the tokens seen (ceil(budget * length)),
// a value >= 1 a token count.
//
// Attention (attend): per (layer, kv head) one task streams the compressed blocks and the window
// with FlashAttention's online softmax, every K/V row read once for the whole GQA group (up to 8
// query heads in registers per pass); no full-precision copy of the cache exists. Two tile paths:
//  * fused (a tile whose tokens every query of the pass can see: all of decode): f16 window rows are
//    converted in registers (F16C); blocks of uniform 1/2/3/4/8-bit codes with per-channel keys and
//    per-token values (KIVI, and GEAR's quantized part) are read as codes: the key scales are
//    folded into q once per block (q'_c = q_c s_c, converted from f16 inline; q.k = q'.code + q.z),
//    the value scales into the probabilities (sum_x p_x s_xg code_xc + sum_x p_x z_xg; the f16
//    per-token scales transposed to [group][token] by F16C and shuffles), so the inner loops are
//    code x float with the codes unpacked by shifts and masks (4-bit: two nibble lanes per byte, q'
//    and the accumulators in even/odd channel order, q split once per attend call). The loops keep
//    8 independent FMA chains in registers (scores: 4 tokens x 1-2 heads, 3 x 3, 2 x 4; P V: channel
//    chunks x heads), scratch rows are 64-byte aligned, and a tile's V rows are prefetched while
//    its scores run. GEAR's low-rank term enters as rank dots (A_x . B^T q for the scores,
//    (sum_x p_x A_x) B^T for the values) and its sparse outliers as per-entry corrections, the
//    factors converted once per block for the whole query group. ZipCache blocks (keys divided by
//    channel scales, keys and values quantized per token at mixed widths up to 4 bits) have their
//    own fused pair: q.k_x = s_x (q * cs).code_x + z_x sum(q * cs), sum_x p_x v_x = sum_x (p_x s_x)
//    code_x + sum_x p_x z_x, each row unpacked by the shift and mask of its width.
//    Where the CPU has AVX-512 (kv_avx512_supported; set_avx512(false) keeps the 256-bit kernels) all
//    these fused kernels, ZipCache's included, run on 512-bit vectors when D % 16 == 0: 16 channels
//    per vector, 32 for nibble-split 4-bit codes (a ZipCache row's 16 codes are two 32-bit words of 8
//    broadcast to the two halves and shifted lane by lane).
//  * f32 tile (everything else: non-uniform KVQuant codes, ZipCache with a salient width above 4
//    bits, RoPE of pre-RoPE keys, tiles cut by the causal mask or the window): the block is
//    dequantized into an L1-sized f32 tile (codes of <= 4 bits unpacked by shifts, a non-uniform
//    codebook of <= 16 centroids looked up by two lane permutes, not gathers; pre-RoPE keys rotated
//    in the tile, window tiles included) and used at once by the group: a tile every query of the
//    pass sees goes through the fused kernels as f32 rows (token-blocked scores, chunked P V), the
//    rest through the masked per-token loops.
// Causal masking by the stored positions; an optional sliding window.
//
// Byte accounting (bytes()): codes (ceil(bits * D / 8) per token and head, packed), every f16 scale,
// zero point, channel scale, low-rank factor and window element (2 bytes), sparse outliers (2 + 4
// bytes), ZipCache's per-token precision bitmap (ceil(n/8) bytes per block), KVQuant's per-layer
// codebooks (2 bytes per centroid), eviction positions (4 bytes per token) and scores (4 bytes per
// accumulator per token). Positions of blocks and of the window are implicit (contiguous).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tersor/ops.hpp"

namespace tersor::kv {

enum class KvMethod : uint8_t { F16, Kivi, KvQuant, Gear, ZipCache, H2O, Streaming, Ems };

/// Parses "fp16" | "kivi" | "kvquant" | "gear" | "zipcache" | "h2o" | "streaming" | "ems" (E_RANGE otherwise).
KvMethod kv_method_from_string(const std::string& s);
const char* kv_method_name(KvMethod m);

struct KvConfig {
  KvMethod method = KvMethod::Kivi;
  int bits = 4;          ///< 1..8 (ZipCache: salient tokens)
  int low_bits = 2;      ///< ZipCache: other tokens, 1..bits
  size_t group = 32;     ///< tokens per block; also channels per value group (clipped to head_dim)
  size_t residual = 128; ///< full-precision window (tokens)
  double outliers = 0.01;  ///< KVQuant / GEAR: fraction of entries kept exactly, [0, 0.5)
  size_t rank = 4;       ///< GEAR: low-rank rank (0 = none), < group
  int power_iterations = 3;
  double salient = 0.4;  ///< ZipCache: fraction of salient tokens per block, [0, 1]
  size_t probes = 8;     ///< ZipCache: probe queries per chunk
  double budget = 0.2;   ///< eviction: (0, 1) fraction of tokens seen, >= 1 tokens
  size_t sinks = 4;      ///< StreamingLLM / EMS sink tokens
  double global_weight = 0.5;  ///< EMS
  size_t local_window = 16;    ///< EMS: recent queries of the local score
  bool q_norm = true;    ///< KVQuant
  /// Decode attention over 4-bit blocks (KIVI, GEAR) with q' and P' rounded to bf16 (vdpbf16ps;
  /// a relative error below 2^-9 per product, about twice the speed per query head); the exact f32
  /// kernels where the CPU lacks AVX-512 BF16 or D % 64 != 0 (see kv_bf16_dot_supported).
  bool bf16_dot = false;
  uint64_t seed = 0;
};

struct KvShape {
  size_t layers = 0, heads = 0, kv_heads = 0, head_dim = 0;
  size_t window = 0;  ///< sliding attention window of the model (0 = none)
};

/// Checks a config against a model shape and cache capacity; E_RANGE with the field named:
/// bits outside 1..8, group outside 8..1024, residual > capacity, budget <= 0 (or > capacity),
/// outliers outside [0, 0.5), rank >= group, etc.; E_SHAPE when head_dim is not a multiple of 8.
void kv_config_validate(const KvConfig& c, const KvShape& s, size_t capacity);

/// Bytes per token of an f16 cache: 2 (K, V) * layers * kv_heads * head_dim * 2.
inline size_t kv_f16_bytes_per_token(const KvShape& s) { return 4 * s.layers * s.kv_heads * s.head_dim; }

/// Packs n codes of `bits` bits (LSB first) into ceil(n * bits / 8) bytes at dst (zeroed first).
void pack_codes(const uint8_t* codes, size_t n, int bits, uint8_t* dst);
/// Unpacks n codes.
void unpack_codes(const uint8_t* src, size_t n, int bits, uint8_t* codes);

/// Weighted 1-D k-means (Lloyd, quantile initialisation, `iters` iterations) of x with weights w:
/// 2^bits sorted centroids minimising sum w (x - c)^2. With q_norm, the centroids are then mapped
/// affinely so the weighted mean and standard deviation of the quantized x equal those of x (Q-Norm).
std::vector<float> fit_nuq_codebook(const float* x, const float* w, size_t n, int bits, bool q_norm, int iters = 40);

/// Part of a compressed block: one of K or V of one KV head, n tokens x D.
struct QPart {
  enum Axis : uint8_t { PerChannel, PerToken };
  Axis axis = PerChannel;
  int bits = 0;                    ///< bits of every token; 0 when tbits (mixed) is used
  size_t cgroup = 0;               ///< channels per scale (PerToken)
  std::vector<uint8_t> codes;      ///< packed, token-major; token t at off[t] (mixed) or t * row bytes
  std::vector<uint32_t> off;       ///< mixed precision only
  std::vector<uint8_t> tbits;      ///< mixed precision only: bits of each token
  std::vector<uint16_t> scale, zero;  ///< f16: [D] (PerChannel) or [n * D / cgroup] (PerToken)
  std::vector<uint16_t> cscale;    ///< f16 [D] channel scales (ZipCache keys), empty = none
  bool nonuniform = false;         ///< codes index the layer codebook (KVQuant)
  std::vector<uint32_t> sp_idx;    ///< sparse: t * D + c
  std::vector<uint16_t> sp_val;    ///< f16
  size_t rank = 0;
  std::vector<uint16_t> lr_a, lr_b;  ///< f16 [n, rank], [D, rank]
  size_t bytes(size_t n) const;
};

struct QBlock {
  int32_t pos0 = 0;
  size_t n = 0;
  QPart k, v;
};

/// Accounting of bytes() by kind.
struct KvBytes {
  size_t codes = 0, scales = 0, outliers = 0, low_rank = 0, window = 0, index = 0, total = 0;
};

class CompressedKv {
 public:
  /// rope: the model's RoPE table (KVQuant keys are stored pre-RoPE and need it); may be null for
  /// models without RoPE (KVQuant then quantizes the keys as they are).
  CompressedKv(const KvConfig& cfg, const KvShape& shape, size_t capacity, const RopeCache* rope);
  ~CompressedKv();
  CompressedKv(const CompressedKv&) = delete;
  CompressedKv& operator=(const CompressedKv&) = delete;

  const KvConfig& config() const { return cfg_; }
  const KvShape& shape() const { return shape_; }
  size_t capacity() const { return capacity_; }
  /// Tokens appended so far (positions 0 .. length-1).
  size_t length() const { return length_; }

  /// Adds n tokens of one layer at positions pos[0..n): k_pre = keys before RoPE, k = after RoPE,
  /// v = values ([n, kv_heads, D] dense each). Layers are appended in order within a step; the
  /// length advances when the last layer is appended. E_RANGE when the cache is full.
  void append(size_t layer, const float* k_pre, const float* k, const float* v, const int32_t* pos, size_t n);
  /// Attention of q ([n_q, heads, D], after RoPE, at positions qpos) over the layer's cache into out
  /// ([n_q, heads, D]); then updates scores, flushes the window into blocks and evicts (per method).
  /// Call once per layer after its append. scale 0 = 1/sqrt(D).
  void attend(size_t layer, const float* q, const int32_t* qpos, size_t n_q, float* out, float scale = 0.f);

  /// Bytes held (see the top of this file) and the breakdown.
  size_t bytes() const { return bytes_breakdown().total; }
  KvBytes bytes_breakdown() const;
  /// Bytes an f16 cache of length() tokens takes.
  size_t f16_bytes() const { return kv_f16_bytes_per_token(shape_) * length_; }

  /// Tokens stored (compressed + window) for one head.
  size_t stored(size_t layer, size_t head) const;
  /// The dequantized cache of one head: keys AFTER RoPE, values, positions ([stored, D] each).
  void dequantize(size_t layer, size_t head, std::vector<float>& k, std::vector<float>& v,
                  std::vector<int32_t>& pos) const;
  /// The per-layer key / value codebooks (KVQuant; empty before calibration).
  const std::vector<float>& codebook(size_t layer, bool values) const;
  /// Forces every window token into blocks where possible (tests): flushes whole groups.
  void flush_all();
  /// Empties the cache (codebooks and calibration statistics included).
  void reset();
  /// Keeps the first n appended tokens (n <= length()) of every layer and head, exactly as they are
  /// stored: compressed blocks and window rows after them are dropped, a block cut by n keeps its
  /// first tokens' codes, scales, zero points, sparse entries and low-rank rows (its per-channel key
  /// scales stay those of the whole block), so the cache then equals the first n tokens of its
  /// dequantized copy and later tokens append after them (the next flush starts a new block).
  /// KVQuant's codebooks stay fitted; ZipCache's accumulated probe scores of the kept window tokens
  /// keep the attention of the removed queries. n == 0 is reset(). Eviction methods (h2o,
  /// streaming, ems): E_RANGE unless n == length(), since which tokens were evicted or merged, and
  /// their scores, depend on the tokens after the cut.
  void truncate(size_t n);
  /// Whether attend() reads fully visible tiles through the fused kernels (default) or always
  /// through an f32 copy of the tile (the reference path; tests and benchmarks compare the two).
  void set_fused_attention(bool on) { fused_ = on; }
  /// Whether the fused kernels run on 512-bit vectors where the CPU has AVX-512 (default) or on the
  /// 256-bit ones (tests compare the two; no effect without AVX-512, see kv_avx512_supported).
  void set_avx512(bool on) { avx512_ = on; }

  struct Head;

 private:
  void flush(size_t layer, size_t head, size_t keep);
  void compress_block(size_t layer, size_t head, QBlock& b, const float* k, const float* v, const float* score);
  void calibrate(size_t layer);
  void evict(size_t layer);
  void tile(size_t layer, const Head& h, size_t i, float* k, float* v, int32_t* pos, size_t& n) const;
  size_t tiles(const Head& h) const;

  KvConfig cfg_;
  KvShape shape_;
  size_t capacity_;
  const RopeCache* rope_;
  size_t length_ = 0;
  size_t pending_ = 0;  // tokens of the current step (appended to layer 0 but not yet the last layer)
  std::vector<std::unique_ptr<Head>> heads_;  // [layer * kv_heads + head]
  std::vector<std::vector<float>> kcode_, vcode_;  // KVQuant codebooks per layer
  std::vector<std::vector<double>> qsens_;    // KVQuant: sum q_c^2 per layer [kv_heads * D] and count
  std::vector<double> qcount_;
  std::vector<float> identity_lut_;
  bool fused_ = true;
  bool avx512_ = true;
};

/// Whether this CPU (and OS) runs the 512-bit fused attention kernels (AVX-512 F, VL, BW, DQ).
bool kv_avx512_supported();
/// Whether this CPU runs the bf16 dot-product kernels of KvConfig::bf16_dot (AVX-512 BF16).
bool kv_bf16_dot_supported();

/// Reference attention in double over explicit (dequantized) K/V of one KV head with positions:
/// out[t, j, :] for the `group` query heads of that head; q [n_q, group, D]. For tests.
void reference_attention(const float* q, const int32_t* qpos, size_t n_q, size_t group, const float* k,
                         const float* v, const int32_t* kpos, size_t n_kv, size_t D, float scale, size_t window,
                         float* out);

}  // namespace tersor::kv
