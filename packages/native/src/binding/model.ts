/**
 * Transformer runtime kernels (native/napi/model_ops.cpp over native/include/tersor/ops.hpp and
 * attention.hpp), CPU, f32. Every function validates shapes synchronously but reports failures by
 * rejecting its Promise: `E_SHAPE` for inconsistent shapes, `E_RANGE` for bad values or options,
 * `E_DTYPE` for a wrong array type. Inputs are read zero-copy (a view's `byteOffset` is honoured)
 * and never modified; each call resolves with a new Float32Array.
 */
export interface ModelOpsBinding {
  /**
   * RMSNorm (Llama): `y = x / sqrt(mean(x²) + eps) * weight` per row of `dim` values.
   * @param weight `dim` values, or `null` for none.
   * @param eps default `1e-5`.
   */
  rmsNorm(x: Float32Array, weight: Float32Array | null, rows: number, dim: number, eps?: number): Promise<Float32Array>;
  /**
   * LayerNorm (GPT-2): `y = (x - mean) / sqrt(var + eps) * weight + bias` per row, biased variance.
   * @param eps default `1e-5`.
   */
  layerNorm(
    x: Float32Array,
    weight: Float32Array | null,
    bias: Float32Array | null,
    rows: number,
    dim: number,
    eps?: number,
  ): Promise<Float32Array>;
  /**
   * Rotary position embedding of `x = [tokens, heads, headDim]` (Q or K): token `t` is rotated by
   * `positions[t] * inv_freq`. Returns a rotated copy of the whole of `x` (with `tokenStride`, the
   * elements between heads are copied unchanged).
   */
  rope(
    x: Float32Array,
    positions: Int32Array,
    tokens: number,
    heads: number,
    headDim: number,
    options?: RopeOptions,
  ): Promise<Float32Array>;
  /** SwiGLU: `silu(gate) * up`, element-wise; `gate` and `up` have equal length. */
  swiglu(gate: Float32Array, up: Float32Array): Promise<Float32Array>;
  /**
   * GELU, element-wise. `approximate = "tanh"` (default) is GPT-2's `gelu_new`
   * (`0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))`); `"none"` is the exact `0.5 x (1 + erf(x / √2))`.
   */
  gelu(x: Float32Array, approximate?: "tanh" | "none"): Promise<Float32Array>;
  /** Numerically stable softmax over each row of `cols` values; a row of only `-Infinity` gives zeros. */
  softmax(x: Float32Array, rows: number, cols: number): Promise<Float32Array>;
  /**
   * Causal scaled dot-product attention by FlashAttention-2 tiling on CPU (no `n × n` score matrix;
   * grouped-query heads share each key/value tile). `q` is `[nQ, heads, headDim]`, `k` and `v` are
   * `[nKv, kvHeads, headDim]` (or laid out by the stride options; they may be longer than needed, e.g.
   * a KV cache with spare capacity). Resolves with `[nQ, heads, headDim]`.
   */
  flashAttention(
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    shape: AttentionShape,
    options?: AttentionOptions,
  ): Promise<Float32Array>;
  /** The same contract evaluated directly with double accumulation: slow, the reference for tests. */
  naiveAttention(
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    shape: AttentionShape,
    options?: AttentionOptions,
  ): Promise<Float32Array>;
}

/** RoPE configuration, after the HF config fields. */
export interface RopeOptions {
  /** `rope_theta`; default 10000. */
  theta?: number;
  /** Rotated dimensions (the first `rotaryDim` of each head): HF `head_dim * partial_rotary_factor`. Default `headDim`. */
  rotaryDim?: number;
  /**
   * Pairing: `"neox"` (default; HF `rotate_half`, dimension `i` with `i + rotaryDim/2`: HF Llama,
   * Qwen2, Mistral) or `"interleaved"` (GPT-J / Meta's original Llama: `2i` with `2i + 1`).
   */
  style?: "neox" | "interleaved";
  /** Elements between consecutive tokens of `x` (default `heads * headDim`), e.g. for a fused QKV row. */
  tokenStride?: number;
  /** HF `rope_scaling`. */
  scaling?: RopeScaling;
}

/** HF `rope_scaling` variants tersor implements. */
export type RopeScaling =
  | { type: "default" }
  | { type: "linear"; factor: number }
  | {
      /** Llama 3.1 frequency-dependent scaling (HF `_compute_llama3_parameters`). */
      type: "llama3";
      factor: number;
      /** default 1 */
      lowFreqFactor?: number;
      /** default 4 */
      highFreqFactor?: number;
      /** default 8192 */
      originalMaxPositionEmbeddings?: number;
    };

/** Sizes of an attention call. */
export interface AttentionShape {
  /** Query rows (tokens). */
  nQ: number;
  /** Key/value rows present. */
  nKv: number;
  /** Query heads. */
  heads: number;
  /** Key/value heads; `heads % kvHeads === 0`. Default `heads`. */
  kvHeads?: number;
  /** 1 to 256. */
  headDim: number;
}

/**
 * Masking and layout options. Query row `t` sits at position `qStart + t`, key row `j` at `j`; key
 * `j` is visible to a query at `p` when `(!causal || j <= p) && (window == 0 || j > p - window || j < sinks)`.
 * A query that sees no key gets a zero row.
 */
export interface AttentionOptions {
  /** Softmax scale; default `1 / sqrt(headDim)`. */
  scale?: number;
  /** Default true. */
  causal?: boolean;
  /** Absolute position of query row 0; default `nKv - nQ` (prefill 0, decode `nKv - 1`). */
  qStart?: number;
  /** Sliding window in positions (Mistral's `sliding_window`); 0 or absent = none. */
  window?: number;
  /** Attention sinks: the first `sinks` positions stay visible whatever the window (StreamingLLM). */
  sinks?: number;
  /** Elements between consecutive query tokens / heads (defaults: dense `[nQ, heads, headDim]`). */
  qRowStride?: number;
  qHeadStride?: number;
  /**
   * Elements between consecutive key tokens / heads. Defaults: token-major `[nKv, kvHeads, headDim]`.
   * A head-major cache `[kvHeads, capacity, headDim]` is `kRowStride = headDim, kHeadStride = capacity * headDim`.
   */
  kRowStride?: number;
  kHeadStride?: number;
  vRowStride?: number;
  vHeadStride?: number;
}
