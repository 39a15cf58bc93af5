/**
 * The native transformer runtime (native/model/transformer.cpp, bound in native/napi/transformer.cpp).
 * One decoder-only architecture family described by switches, so Llama, Mistral, Qwen2 and GPT-2
 * run through the same code:
 *
 *   x = embed[tokens] (+ posEmbed[positions] when learned positions)
 *   per layer:  h = norm(x; attnNorm)
 *               q, k, v = h·Wqᵀ (+bq), h·Wkᵀ (+bk), h·Wvᵀ (+bv);  RoPE on q, k when rope is set
 *               x += attention(q, k, v; causal, GQA, sliding window)·Woᵀ (+bo)
 *               h = norm(x; mlpNorm)
 *               x += (act(h·Wgateᵀ) ⊙ (h·Wupᵀ))·Wdownᵀ          (gated: SwiGLU)
 *               x += act(h·Wupᵀ + bup)·Wdownᵀ + bdown             (not gated: GPT-2 MLP)
 *   logits = norm(x; finalNorm)·lm_headᵀ  (lm_head = embed when tied)
 *
 * Weights are given under tersor's canonical names (below), all in the [out, in] layout of
 * nn.Linear: loaders transpose GPT-2's Conv1D weights and split its fused c_attn before handing
 * them over. Weights are copied into native memory as f32 at `setWeight`.
 */
import type { NativeKvOptions, NativeKvStats } from "./kv.js";
export interface TransformerConfig {
  /** Normalisation: RMSNorm (Llama family) or LayerNorm with bias (GPT-2). */
  norm: "rmsnorm" | "layernorm";
  normEps: number;
  vocabSize: number;
  hidden: number;
  /** MLP inner width. */
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  /** MLP activation: SiLU (gated = SwiGLU), GELU tanh approximation, or exact GELU. */
  activation: "silu" | "gelu_tanh" | "gelu";
  /** Gated MLP (gate_proj/up_proj/down_proj) or plain two-layer MLP (c_fc/c_proj). */
  gatedMlp: boolean;
  /** Biases on q/k/v (Qwen2, GPT-2). */
  qkvBias: boolean;
  /** Biases on the attention output and MLP projections (GPT-2). */
  outBias: boolean;
  /** lm_head shares the embedding matrix. */
  tieEmbeddings: boolean;
  /** Learned absolute positions (GPT-2) — `posEmbed` weight of [maxPositions, hidden]. */
  learnedPositions: boolean;
  /** Longest sequence: learned position table size, and the RoPE cos/sin table size. */
  maxPositions: number;
  /** Rotary embedding; absent for learned positions. Field meanings as native/include/tersor/ops.hpp RopeConfig. */
  rope?: {
    theta: number;
    style: "neox" | "interleaved";
    /** Rotated dims per head; 0 = headDim. */
    rotaryDim: number;
    scaling: "none" | "linear" | "llama3";
    factor: number;
    lowFreqFactor: number;
    highFreqFactor: number;
    originalMaxPosition: number;
  };
  /** Sliding attention window in positions (Mistral); 0 = full causal attention. */
  slidingWindow: number;
}

/**
 * Canonical weight names, per layer i:
 * `embed` [vocab, hidden]; `posEmbed` [maxPositions, hidden] (learned positions only);
 * `layers.i.attnNorm.weight` / `.bias` (bias: layernorm only);
 * `layers.i.q.weight` [heads·headDim, hidden], `layers.i.k.weight` / `layers.i.v.weight` [kvHeads·headDim, hidden],
 * `layers.i.q.bias` … (qkvBias); `layers.i.o.weight` [hidden, heads·headDim], `layers.i.o.bias` (outBias);
 * `layers.i.mlpNorm.weight` / `.bias`; `layers.i.gate.weight` [intermediate, hidden] (gated only);
 * `layers.i.up.weight` [intermediate, hidden], `layers.i.up.bias` (outBias); `layers.i.down.weight` [hidden, intermediate],
 * `layers.i.down.bias` (outBias); `finalNorm.weight` / `.bias`; `lmHead` [vocab, hidden] (untied only).
 */
export type TransformerWeightName = string;

/** A KV cache for one sequence: per layer K and V of [capacity, kvHeads, headDim] f32. */
export interface NativeKvCache {
  /** Tokens held. */
  readonly length: number;
  readonly capacity: number;
  /** Bytes of K/V storage (compressed caches: the exact compressed bytes). */
  bytes(): number;
  /** Byte accounting of a compressed cache (null for a plain f32 cache). */
  kvStats(): NativeKvStats | null;
  /** Drops tokens from the end, keeping the first `length` (for speculative rollback / reuse). */
  truncate(length: number): void;
  clear(): void;
}

/** What a forward pass returns. */
export interface ForwardResult {
  /** Logits of shape `[rows, vocab]`, for all positions (`logits: "all"`) or the last one (`"last"`). Absent for `"none"`. */
  logits?: Float32Array;
  /** Requested hidden states, one [tokens, hidden] array per requested layer index (0 = embeddings, L = after the last layer, before the final norm). */
  hidden?: Float32Array[];
}

export interface ForwardOptions {
  /** Continue this cache: tokens sit at positions cache.length … and are appended to it. */
  cache?: NativeKvCache;
  /** Which logits to return; default "all". */
  logits?: "all" | "last" | "none";
  /** Hidden-state layer indices to return (0 … layers). */
  hiddenLayers?: number[];
  /**
   * Activation tap on the inputs of every linear layer (for GPTQ/AWQ/EoRA): with "gram", the
   * running XᵀX of each linear's input accumulates in f64 inside `capture`; with "raw", its rows are
   * appended. The linears are named `layers.i.{q,k,v,o,gate,up,down}` (q, k, v share one input).
   */
  capture?: NativeCapture;
}

/** Accumulated linear-layer inputs from one or more forward passes. */
export interface NativeCapture {
  readonly mode: "gram" | "raw";
  /** Names of the captured linears. */
  names(): string[];
  /** Rows accumulated for a linear. */
  rows(name: string): number;
  /** gram: [in, in] f64, XᵀX summed over every captured row. raw: [rows, in] f32. */
  get(name: string): Float64Array | Float32Array;
  clear(): void;
}

export interface NativeTransformer {
  readonly config: TransformerConfig;
  /** Copies a weight in (f32, or f16/bf16 bit patterns widened to f32). Shape is checked against the config (E_SHAPE naming the weight). */
  setWeight(name: TransformerWeightName, data: Float32Array | Uint16Array, dtype: "f32" | "f16" | "bf16", shape: number[]): void;
  /**
   * Holds a linear weight quantized (`bytes` = `out × quantRowBytes(scheme, in)`, @tersor/quant's formats) plus an optional
   * low-rank adapter `y += (x Aᵀ) Bᵀ` (`loraA` `[rank, in]`, `loraB` `[out, rank]`); forward multiplies it with the
   * dequantize-on-the-fly kernels. E_FORMAT for a name that is not a linear, E_SHAPE for wrong sizes, E_RANGE for a bad scheme.
   */
  setQuantizedWeight(name: TransformerWeightName, bytes: Uint8Array, scheme: string, loraA?: Float32Array | null, loraB?: Float32Array | null): void;
  /** Names of the weights the config needs that have not been set yet. */
  missingWeights(): string[];
  /** Parameters (elements of all weights, tied ones once). */
  parameterCount(): number;
  /** An f32 cache, or with `kv` a compressed one (native/kv; E_RANGE for bad options). */
  createCache(capacity: number, kv?: NativeKvOptions): NativeKvCache;
  /** Capture of linear inputs restricted to `layers` (all when absent). */
  createCapture(mode: "gram" | "raw", layers?: number[]): NativeCapture;
  /** Runs `tokens` (int32 ids) through the model. Rejects with E_FORMAT when weights are missing, E_RANGE for bad ids or a cache without room. */
  forward(tokens: Int32Array, options?: ForwardOptions): Promise<ForwardResult>;
  /**
   * Scores several independent sequences in one call (batched over sequences, parallel across
   * them): for each sequence, the natural-log probability of tokens[i] given tokens[0..i) for
   * i ≥ `scoreFrom[s]`, summed, and the count of scored tokens. Sequences are concatenated in
   * `tokens` with `offsets` (length n+1).
   */
  scoreSequences(tokens: Int32Array, offsets: Int32Array, scoreFrom: Int32Array): Promise<{ logprob: Float64Array; count: Int32Array }>;
}

/** Constructor exposed by the addon. */
export interface TransformerBinding {
  /** Creates a runtime for `config` (validated: E_RANGE/E_SHAPE with the field named). */
  createTransformer(config: TransformerConfig): NativeTransformer;
}
