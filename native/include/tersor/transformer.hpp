// tersor's decoder-only transformer runtime, CPU, f32: one architecture family described by
// switches, so Llama, Mistral, Qwen2 and GPT-2 checkpoints run through the same code (the binding
// contract is packages/native/src/binding/transformer.ts):
//
//   x = embed[tokens] (+ posEmbed[positions] when learned positions)
//   per layer:  h = norm(x; attnNorm)
//               q, k, v = h Wq^T (+bq), h Wk^T (+bk), h Wv^T (+bv);  RoPE on q, k when rope is set
//               x += attention(q, k, v; causal, GQA, sliding window) Wo^T (+bo)
//               h = norm(x; mlpNorm)
//               x += (act(h Wgate^T) * (h Wup^T)) Wdown^T            (gated: SwiGLU / GeGLU)
//               x += act(h Wup^T + bup) Wdown^T + bdown               (not gated: GPT-2 MLP)
//   logits = norm(x; finalNorm) lm_head^T  (lm_head = embed when tied)
//
// Semantics are Hugging Face's (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM,
// GPT2LMHeadModel). Kernels: rms_norm / layer_norm, rope_apply over a RopeCache built once per model
// for max_positions, swiglu / gelu, embedding (ops.hpp), flash_attention (attention.hpp) reading K
// and V straight from the KV cache through its strides (q_start = cache length), and sgemm for every
// linear layer with more than 4 rows; 1..4 rows (decode) go through a weight-streaming
// matrix-vector kernel in transformer.cpp, which reads each weight once instead of packing it.
//
// Threads: the forward pass is single-threaded orchestration; every kernel parallelises inside on
// tersor::num_threads() threads. Forward passes on different caches may run concurrently (each call
// allocates its own work buffers); a KvCache or a Capture must not be used by two calls at once
// (bindings enforce it with try_acquire / release). set_weight must not overlap a forward: it
// throws E_RANGE when one is running.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "tersor/ops.hpp"

namespace tersor {

enum class NormKind : uint8_t { RMSNorm, LayerNorm };
enum class MlpActivation : uint8_t { Silu, GeluTanh, Gelu };

/// Mirrors TransformerConfig of the binding contract (field names in snake_case).
struct TransformerConfig {
  NormKind norm = NormKind::RMSNorm;
  double norm_eps = 1e-6;
  size_t vocab_size = 0;
  size_t hidden = 0;
  size_t intermediate = 0;
  size_t layers = 0;
  size_t heads = 0;
  size_t kv_heads = 0;
  size_t head_dim = 0;
  MlpActivation activation = MlpActivation::Silu;
  bool gated_mlp = true;
  bool qkv_bias = false;
  bool out_bias = false;
  bool tie_embeddings = false;
  bool learned_positions = false;
  size_t max_positions = 0;
  /// Rotary embedding on q and k. rope_config.head_dim is set from head_dim by validation.
  bool rope = false;
  RopeConfig rope_config;
  /// Sliding attention window in positions; 0 = full causal attention.
  size_t sliding_window = 0;
};

/// Checks a config and fills derived fields (rope_config.head_dim). Throws E_RANGE (values: sizes
/// must be > 0, eps finite and >= 0, rope theta/factors) or E_SHAPE (heads % kv_heads, head_dim even
/// with RoPE, rotary_dim <= head_dim, head_dim <= 256), the message naming the field as the binding
/// spells it (e.g. "config.kvHeads").
void transformer_config_validate(TransformerConfig& cfg);

enum class WeightDType : uint8_t { F32, F16, BF16 };

/// One weight the config needs: canonical name and [out, in] (or [n]) shape.
struct WeightSpec {
  std::string name;
  std::vector<size_t> shape;
  size_t elements() const;
};

class Transformer;
namespace kv {
class CompressedKv;
struct KvConfig;
}  // namespace kv

/// KV cache of one sequence: per layer K and V of [capacity, kv_heads, head_dim] f32, token-major,
/// so attention reads it in place with the default strides.
class KvCache {
 public:
  /// Throws E_RANGE when capacity is 0 or reaches 2^31 positions.
  KvCache(const Transformer& model, size_t capacity);
  /// A compressed cache (tersor/kv.hpp; no f32 storage): forward appends K/V to the compressor and
  /// attends over it. E_RANGE for a bad configuration (kv::kv_config_validate).
  KvCache(const Transformer& model, size_t capacity, const kv::KvConfig& config);
  ~KvCache();
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  size_t length() const { return length_.load(std::memory_order_acquire); }
  size_t capacity() const { return capacity_; }
  /// Bytes of K/V storage (2 * layers * capacity * kv_heads * head_dim * 4); compressed: the
  /// compressor's exact bytes (kv::CompressedKv::bytes).
  size_t bytes() const;
  /// Keeps the first `length` tokens; E_RANGE when length > length(). Compressed: the tokens as
  /// stored (kv::CompressedKv::truncate); E_RANGE for eviction methods when length < length().
  void truncate(size_t length);
  void clear();
  /// The compressor, or nullptr for a plain f32 cache.
  kv::CompressedKv* compressed() const { return compressed_.get(); }

  size_t layers() const { return layers_; }
  /// Elements per cached token of one layer's K (or V): kv_heads * head_dim.
  size_t row() const { return row_; }
  float* k(size_t layer) { return data_ + (2 * layer) * capacity_ * row_; }
  float* v(size_t layer) { return data_ + (2 * layer + 1) * capacity_ * row_; }
  const float* k(size_t layer) const { return data_ + (2 * layer) * capacity_ * row_; }
  const float* v(size_t layer) const { return data_ + (2 * layer + 1) * capacity_ * row_; }

  /// The model that created it (identity only; forward rejects another model's cache).
  const Transformer* owner() const { return owner_; }

  /// Exclusive use by one forward at a time (for bindings): true when acquired.
  bool try_acquire() { return !busy_.exchange(true, std::memory_order_acq_rel); }
  void release() { busy_.store(false, std::memory_order_release); }
  bool busy() const { return busy_.load(std::memory_order_acquire); }

 private:
  friend class Transformer;
  const Transformer* owner_;
  size_t layers_, capacity_, row_;
  float* data_ = nullptr;
  std::unique_ptr<kv::CompressedKv> compressed_;
  std::atomic<size_t> length_{0};
  std::atomic<bool> busy_{false};
};

enum class CaptureMode : uint8_t { Gram, Raw };

/// Inputs of the linear layers, accumulated over forward passes (GPTQ / AWQ / EoRA calibration).
///
/// Sites per layer i: the attention-norm output (input of q, k and v), the attention output (input
/// of o), the MLP-norm output (input of gate and up) and the MLP activation (input of down). A site
/// shared by several linears is accumulated ONCE and reported under each of its linears' names
/// (layers.i.q, layers.i.k, layers.i.v are aliases of one accumulator; so are layers.i.gate and
/// layers.i.up): names() lists every name, rows() and gram()/raw() give the same data for aliases.
///
/// Gram: G += X^T X. Each block of up to 256 rows is multiplied with tersor::sgemm (f32 products,
/// f32 sums over at most 256 rows), then added into the f64 accumulator, so the running sum over
/// blocks and passes is f64 (relative error of an entry ~1e-6 of sum |x_i x_j|). Accumulators are
/// allocated on first use. Raw: rows are appended as f32.
class Capture {
 public:
  /// `layers`: the layer indices to capture (empty = all); E_RANGE for an index >= layers.
  Capture(const Transformer& model, CaptureMode mode, std::vector<size_t> layers = {});
  CaptureMode mode() const { return mode_; }
  const std::vector<std::string>& names() const { return names_; }
  /// Rows accumulated for a linear (E_RANGE for a name not captured).
  size_t rows(const std::string& name) const;
  /// Input features of a linear.
  size_t cols(const std::string& name) const;
  /// Gram mode: [cols, cols] X^T X (zeros before any row). E_RANGE in raw mode.
  std::vector<double> gram(const std::string& name) const;
  /// Raw mode: [rows, cols] rows in capture order. E_RANGE in gram mode.
  std::vector<float> raw(const std::string& name) const;
  void clear();

  const Transformer* owner() const { return owner_; }
  bool try_acquire() { return !busy_.exchange(true, std::memory_order_acq_rel); }
  void release() { busy_.store(false, std::memory_order_release); }
  bool busy() const { return busy_.load(std::memory_order_acquire); }

  enum Site : size_t { kAttnIn = 0, kOIn = 1, kMlpIn = 2, kDownIn = 3, kSites = 4 };
  /// Whether `layer` is captured.
  bool wants(size_t layer) const { return layer < slot_of_layer_.size() && slot_of_layer_[layer] >= 0; }
  /// Adds `rows` rows of x (dense, `cols` of the site) at a site of a captured layer.
  void add(size_t layer, Site site, const float* x, size_t rows);

 private:
  struct Entry {
    size_t cols = 0;
    size_t rows = 0;
    std::vector<double> gram;
    std::vector<float> raw;
  };
  const Entry& entry(const std::string& name) const;

  const Transformer* owner_;
  CaptureMode mode_;
  std::vector<long> slot_of_layer_;  // layer -> index of its first entry / kSites, -1 = not captured
  std::vector<Entry> entries_;
  std::vector<std::string> names_;
  std::unordered_map<std::string, size_t> by_name_;
  std::atomic<bool> busy_{false};
};

enum class LogitsMode : uint8_t { All, Last, None };

struct ForwardOutput {
  /// [rows, vocab]: n rows (All), 1 row (Last), empty (None).
  std::vector<float> logits;
  size_t logit_rows = 0;
  /// One [n, hidden] array per requested hidden layer, in request order.
  std::vector<std::vector<float>> hidden;
};

class Transformer {
 public:
  /// Validates (copies) the config and lays out the weight slots; builds the RoPE table.
  explicit Transformer(TransformerConfig cfg);
  ~Transformer();
  Transformer(const Transformer&) = delete;
  Transformer& operator=(const Transformer&) = delete;

  const TransformerConfig& config() const { return cfg_; }
  /// Every weight the config needs, canonical order (embed, posEmbed, layers..., finalNorm, lmHead).
  const std::vector<WeightSpec>& weight_specs() const { return specs_; }

  /// Copies a weight in, widening f16/bf16 bit patterns to f32. `count` = elements at `data`.
  /// E_FORMAT for a name this config does not use; E_SHAPE (naming the weight and both shapes) for
  /// a wrong shape or a count that is not the shape's product; E_RANGE while a forward runs.
  void set_weight(const std::string& name, const void* data, WeightDType dtype, size_t count,
                  const std::vector<size_t>& shape);
  /// Holds linear `name` ("layers.i.q.weight", ..., "lmHead"; [out, in]) quantized under `scheme`
  /// (quant_formats.hpp: out * scheme_row_bytes(in) bytes), plus an optional low-rank adapter
  /// y += (x A^T) B^T (A [rank, in], B [out, rank]); forward then uses quant_matmul for it (see
  /// quant_linear.hpp). Replaces an f32 copy (weight(name) becomes nullptr); set_weight replaces the
  /// quantized one. E_FORMAT for a name that is not a linear of this config; E_SHAPE for wrong sizes.
  void set_quantized_weight(const std::string& name, const std::string& scheme, const uint8_t* bytes, size_t nbytes,
                            const float* lora_a = nullptr, const float* lora_b = nullptr, size_t rank = 0);
  bool is_quantized(const std::string& name) const;
  /// The f32 weight, or nullptr when not set (E_FORMAT for an unknown name).
  const float* weight(const std::string& name) const;
  std::vector<std::string> missing_weights() const;
  /// Elements of all weights (tied ones once), set or not.
  size_t parameter_count() const;

  /// Runs n >= 1 tokens. With a cache, the tokens sit at positions cache.length() ... and are
  /// appended (the cache length changes only when the call succeeds). hidden_layers: indices
  /// 0..layers (0 = embeddings, layers = after the last layer, before the final norm).
  /// Errors, all before any state changes: E_FORMAT missing weights (named); E_RANGE empty input,
  /// a token id outside the vocabulary, no room in the cache, positions beyond max_positions with
  /// learned positions, a hidden layer index out of range, another model's cache or capture.
  ForwardOutput forward(const int32_t* tokens, size_t n, KvCache* cache = nullptr, LogitsMode logits = LogitsMode::All,
                        const std::vector<size_t>& hidden_layers = {}, Capture* capture = nullptr) const;

  /// For each of n_seqs sequences tokens[offsets[s] .. offsets[s+1]) (offsets[0] = 0,
  /// offsets[n_seqs] = n_tokens, non-decreasing): the sum over i >= score_from[s] (>= 1) of
  /// log softmax(logits at position i-1)[tokens[i]] in f64, and the count of such i. Short
  /// sequences are batched (one GEMM per linear for several sequences, attention per sequence);
  /// logits exist at most one block of rows at a time.
  void score_sequences(const int32_t* tokens, size_t n_tokens, const int32_t* offsets, size_t n_seqs,
                       const int32_t* score_from, double* logprob, int32_t* count) const;

  /// The RoPE table (nullptr without RoPE); compressed caches rotate pre-RoPE keys with it.
  const RopeCache* rope_cache() const { return rope_.get(); }

  /// Testing/benchmark switch: use naive_attention (double reference) instead of flash_attention.
  void set_reference_attention(bool on) { reference_attention_ = on; }

 private:
  struct Slot;
  struct Layer;
  struct Segment;
  struct Work;
  void check_ready() const;
  void check_tokens(const int32_t* tokens, size_t n) const;
  void run(const int32_t* tokens, size_t n, const std::vector<Segment>& segs, KvCache* cache, Capture* capture,
           const std::vector<size_t>& hidden_layers, std::vector<std::vector<float>>* hidden, Work& w) const;
  void final_norm(const float* x, float* y, size_t rows) const;
  const float* lm_head() const;

  TransformerConfig cfg_;
  std::vector<WeightSpec> specs_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::unordered_map<std::string, size_t> index_;
  std::vector<Layer> layer_idx_;
  long embed_ = -1, pos_embed_ = -1, final_w_ = -1, final_b_ = -1, lm_head_ = -1;
  std::unique_ptr<RopeCache> rope_;
  bool reference_attention_ = false;
  mutable std::shared_mutex weights_mutex_;
};

}  // namespace tersor
