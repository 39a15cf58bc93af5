// Scaled dot-product attention for decoder-only transformers, CPU, f32.
//
//   out[t, h, :] = sum_j softmax_j(scale * q[t, h, :] . k[j, g(h), :]) v[j, g(h), :]
//
// over the keys j visible to query t. Query row t sits at absolute position p = q_start + t; key
// row j sits at position j. Key j is visible to query p when
//     (!causal || j <= p)  &&  (window == 0 || j > p - window || j < sinks)
// i.e. causal masking, an optional sliding window of `window` positions (the query's own position
// included, as Mistral's sliding_window), and optional attention sinks: the first `sinks` positions
// stay visible whatever the window (StreamingLLM, Xiao et al. 2023). A query with no visible key
// gets a zero output row.
//
// Grouped-query attention: heads % kv_heads == 0 and query head h reads kv head
// g(h) = h / (heads / kv_heads) (HF repeat_kv order). Multi-query is kv_heads = 1.
//
// Layout: every tensor is [tokens, heads, head_dim] addressed through a row stride (elements
// between consecutive tokens) and a head stride (elements between consecutive heads); the default
// strides describe a dense token-major tensor. Explicit strides let a KV cache be passed as it is:
//   token-major cache [capacity, kv_heads, d] holding n_kv tokens: the defaults (n_kv < capacity);
//   head-major cache  [kv_heads, capacity, d]: k_row_stride = d, k_head_stride = capacity * d;
//   a slice of a fused QKV projection: q_row_stride = (heads + 2 kv_heads) d, and so on.
// The innermost (head_dim) axis is always contiguous.
//
// Two implementations with the same contract:
//  * flash_attention: FlashAttention (Dao et al. 2022) with FlashAttention-2's loop order (Dao 2023):
//    each task owns one kv head and a block of queries of every query head in its group, keeps
//    running max / sum / output accumulators in f32 and streams key/value tiles through AVX2 FMA
//    micro-kernels; the score matrix never exists beyond one tile, so extra memory is O(tile) per
//    thread (see flash_attention_workspace_bytes). Parallel over (kv head, query block) with OpenMP
//    on tersor::num_threads() threads.
//  * naive_attention: the reference: full score rows in double, exact exp, double accumulation. Slow;
//    the test oracle. Extra memory: one score row of n_kv doubles per thread.
// Both throw tersor::Error(E_SHAPE) for inconsistent shapes before touching `out`.
#pragma once
#include <cstddef>
#include <cstdint>

namespace tersor {

/// Largest head_dim the attention kernels accept.
inline constexpr size_t kMaxAttentionHeadDim = 256;

struct AttentionParams {
  size_t n_q = 0;       ///< query rows (tokens)
  size_t n_kv = 0;      ///< key/value rows (tokens) present
  size_t heads = 0;     ///< query heads H
  size_t kv_heads = 0;  ///< key/value heads H_kv; H % H_kv == 0. 0 = heads
  size_t head_dim = 0;  ///< d, 1..256

  /// Softmax scale; 0 (the default) = 1 / sqrt(head_dim).
  float scale = 0.f;
  bool causal = true;
  /// Absolute position of query row 0. Prefill: 0; decode with a cache: n_kv - 1 (n_q = 1);
  /// chunked prefill: n_kv - n_q.
  size_t q_start = 0;
  /// Sliding window in positions (0 = none): key j visible to query p only if j > p - window.
  size_t window = 0;
  /// Attention sinks: keys at positions < sinks are exempt from the window (0 = none).
  size_t sinks = 0;

  /// Strides in elements; 0 = dense defaults: row = heads * d (q, out) or kv_heads * d (k, v),
  /// head = d.
  size_t q_row_stride = 0, q_head_stride = 0;
  size_t k_row_stride = 0, k_head_stride = 0;
  size_t v_row_stride = 0, v_head_stride = 0;
  size_t o_row_stride = 0, o_head_stride = 0;
};

/// Checks `p` and returns it with every default filled in (kv_heads, scale, strides) and the mask
/// normalised (a window covering every position becomes 0; sinks without a window become 0).
/// Throws E_SHAPE for: head_dim outside 1..256, heads == 0, heads % kv_heads != 0, positions
/// reaching 2^31, a non-finite or non-positive scale, or output strides under which two output
/// vectors overlap (inputs may overlap freely).
AttentionParams attention_resolve(const AttentionParams& p);

/// Elements of each tensor an AttentionParams addresses: (rows - 1) * row_stride +
/// (heads - 1) * head_stride + head_dim, 0 when rows == 0. Bindings check buffer sizes with these.
size_t attention_q_extent(const AttentionParams& resolved);
size_t attention_kv_extent(const AttentionParams& resolved, bool v);
size_t attention_o_extent(const AttentionParams& resolved);

/// Flash attention (see the top of this header). q, k, v, out as described by `p`; out must not
/// alias q, k or v.
void flash_attention(const float* q, const float* k, const float* v, float* out, const AttentionParams& p);

/// Reference attention with double accumulation (see the top of this header).
void naive_attention(const float* q, const float* k, const float* v, float* out, const AttentionParams& p);

/// Bytes of scratch flash_attention allocates for `p` with `threads` threads (0 = num_threads()).
size_t flash_attention_workspace_bytes(const AttentionParams& p, int threads = 0);

/// Scratch allocated by the attention kernels (both of them), in bytes: what is held now and the
/// high-water mark since the last reset. For benchmarks and tests that bound memory use.
struct AttentionScratchStats {
  size_t current_bytes = 0;
  size_t peak_bytes = 0;
};
AttentionScratchStats attention_scratch_stats();
/// Resets the high-water mark to the current holding.
void attention_scratch_reset_peak();

namespace detail {
/// 64-byte aligned scratch counted in attention_scratch_stats(); zero-filled. Throws
/// std::bad_alloc when out of memory.
void* attention_scratch_alloc(size_t bytes);
void attention_scratch_free(void* p, size_t bytes);

/// RAII holder for attention scratch.
class AttentionScratch {
 public:
  explicit AttentionScratch(size_t bytes) : bytes_(bytes), p_(attention_scratch_alloc(bytes)) {}
  ~AttentionScratch() { attention_scratch_free(p_, bytes_); }
  AttentionScratch(const AttentionScratch&) = delete;
  AttentionScratch& operator=(const AttentionScratch&) = delete;
  template <class T>
  T* as() const { return static_cast<T*>(p_); }

 private:
  size_t bytes_;
  void* p_;
};
}  // namespace detail

}  // namespace tersor
