/** The loaded model: forward, log-probabilities, generation, hidden states, activation capture, scoring. */
import { randomBytes } from "node:crypto";

import { Rng, Tensor, TersorError } from "@tersor/core";
import { type KvOptions, type KvOptionsInput, checkKvForContext, parseKvOptions } from "@tersor/kv";
import type { NativeKvCache, NativeTransformer, TransformerConfig } from "@tersor/native";

import type { ModelArchitecture } from "./config.js";
import { type SamplingOptions, checkSampling, sampleToken } from "./sampling.js";
import { StreamDecoder, type Tokenizer } from "./tokenizer.js";

/** Where a model came from. */
export interface ModelSource {
  /** The path loaded (after name resolution). */
  path: string;
  format: "huggingface" | "gguf";
  /** The Hugging Face config.json, or the GGUF metadata as plain values (bigints kept). */
  metadata: Record<string, unknown>;
}

/** Everything {@link Model} is built from; {@link loadModel} assembles it. */
export interface ModelParts {
  runtime: NativeTransformer;
  tokenizer: Tokenizer;
  architecture: ModelArchitecture;
  source: ModelSource;
  /** Token ids that end generation. */
  eosTokenIds: number[];
  /** BOS of the config, when the tokenizer has none. */
  bosTokenId?: number;
  /** f32 copies of `finalNorm.weight` / `finalNorm.bias`, for hidden states with the final norm. */
  finalNorm: { weight: Float32Array; bias?: Float32Array };
  warnings: string[];
}

/** Token ids: a plain array or an Int32Array. */
export type Tokens = readonly number[] | Int32Array;

/** Options of {@link Model.generate}. */
export interface GenerateOptions {
  /** Most new tokens (default 128). */
  maxTokens?: number;
  /** 0 = greedy (the default). */
  temperature?: number;
  topK?: number;
  topP?: number;
  /** Seed of tersor's Rng for sampling (default: random). Same seed, same tokens. */
  seed?: number;
  /** Generation ends when the text contains one of these; the stop string itself is not emitted. */
  stop?: string[];
  /** Token ids that end generation (default: the model's EOS ids). Pass [] to never stop on EOS. */
  eosTokenIds?: number[];
  /** A compressed KV cache (@tersor/kv), e.g. `{ method: "kivi", bits: 2, group: 32, residual: 128 }`. */
  kv?: KvOptionsInput;
}

/** Options of scoring with a compressed KV cache ({@link Model.logprobs}, {@link Model.scoreWindows}, {@link Model.scorer}). */
export interface KvScoringOptions {
  /** The compressed cache (@tersor/kv options). Without it, scoring uses the runtime's exact batched path. */
  kv?: KvOptionsInput;
  /**
   * Tokens per forward through the compressed cache (default 16): each chunk attends to the
   * compressed past plus itself, as decoding does (1 = token-by-token decoding).
   */
  chunk?: number;
}

/** One streamed step of {@link Model.generate}. */
export interface GenerateChunk {
  /** The token chosen at this step. */
  token: number;
  /** Text this step makes final (may be empty: an unfinished character, or text held back while it could begin a stop string). */
  text: string;
  /** Present on the last chunk: why generation ended. */
  finishReason?: "eos" | "stop" | "length";
}

/** Options of {@link Model.hiddenStates}. */
export interface HiddenStatesOptions {
  /** Layer indices, 0 (embeddings) … layers (the last); default [layers]. */
  layers?: number[];
  /** "mean": one [hidden] vector per layer, averaged over tokens; "none": [tokens, hidden]. Default "mean". */
  pool?: "mean" | "none";
  /**
   * Apply the final norm to layer `layers` (default true), as Hugging Face's `hidden_states[-1]`
   * and `last_hidden_state` are; other layers are the residual stream as is.
   */
  finalNorm?: boolean;
}

/** What {@link Model.captureLinearInputs} returns. */
export interface LinearCapture {
  mode: "gram" | "raw";
  /** Per linear (`layers.i.{q,k,v,o,gate,up,down}`): gram → [in, in] f64 XᵀX; raw → [rows, in] f32 inputs. */
  tensors: Map<string, Tensor<"f64"> | Tensor<"f32">>;
  /** Rows (token positions) accumulated per linear. */
  rows: Map<string, number>;
}

/**
 * The scoring interface of @tersor/eval's `LanguageModelScorer`, implemented structurally:
 * @tersor/model does not depend on @tersor/eval (eval depends on models through this shape only),
 * so this object is passed straight to `evaluatePerplexity`.
 */
export interface ModelScorer {
  /** Token ids of a text, without special tokens. */
  encode(text: string): number[];
  /** lm-evaluation-harness's prefix token: BOS, else EOS. */
  readonly prefixToken: number;
  /** The model's context length. */
  readonly maxLength: number;
  /** Per window, Σ log p(continuation[i] | context ++ continuation[0..i)) in nats. */
  scoreWindows(windows: { context: number[]; continuation: number[] }[]): Promise<number[]>;
}

function toInt32(tokens: Tokens, vocab: number, what = "tokens"): Int32Array {
  const out = tokens instanceof Int32Array ? tokens : Int32Array.from(tokens);
  for (let i = 0; i < out.length; i++) {
    const t = out[i]!;
    if (t < 0 || t >= vocab || (!(tokens instanceof Int32Array) && t !== (tokens as readonly number[])[i])) {
      throw new TersorError("E_RANGE", `${what}[${i}] = ${String((tokens as ArrayLike<number>)[i])} is not a token id in [0, ${vocab})`);
    }
  }
  return out;
}

/** A causal language model in tersor's native runtime. Create with {@link loadModel}. */
export class Model {
  readonly architecture: ModelArchitecture;
  readonly tokenizer: Tokenizer;
  readonly source: ModelSource;
  /** Problems that did not stop loading (e.g. checkpoint tensors the model does not use). */
  readonly warnings: readonly string[];
  /** Token ids that end generation. */
  readonly eosTokenIds: readonly number[];
  /** The native runtime (for callers that need its full surface). */
  readonly runtime: NativeTransformer;
  private readonly parts: ModelParts;

  constructor(parts: ModelParts) {
    this.parts = parts;
    this.runtime = parts.runtime;
    this.architecture = parts.architecture;
    this.tokenizer = parts.tokenizer;
    this.source = parts.source;
    this.warnings = Object.freeze([...parts.warnings]);
    this.eosTokenIds = Object.freeze([...parts.eosTokenIds]);
  }

  /** The runtime configuration (dimensions, norm, RoPE, …). */
  get config(): TransformerConfig {
    return this.runtime.config;
  }

  /** Parameters (elements of all weights, tied ones once). */
  get parameterCount(): number {
    return this.runtime.parameterCount();
  }

  get vocabSize(): number {
    return this.config.vocabSize;
  }

  /** The longest sequence the model takes. */
  get maxLength(): number {
    return this.config.maxPositions;
  }

  /** lm-evaluation-harness's prefix token: the tokenizer's BOS, else the config's BOS, else EOS. */
  get prefixToken(): number {
    return this.tokenizer.bosId ?? this.parts.bosTokenId ?? this.tokenizer.eosId ?? this.eosTokenIds[0] ?? 0;
  }

  /** Token ids of `text` (no special tokens unless asked for). */
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[] {
    return this.tokenizer.encode(text, opts);
  }

  /** Text of token ids (special tokens skipped unless `skipSpecialTokens: false`). */
  decode(ids: ArrayLike<number>, opts?: { skipSpecialTokens?: boolean }): string {
    return this.tokenizer.decode(ids, opts);
  }

  private checkLength(n: number, what: string): void {
    if (n === 0) throw new TersorError("E_RANGE", `${what}: at least one token is needed`);
    if (n > this.maxLength) throw new TersorError("E_RANGE", `${what}: ${n} tokens exceed the model's maximum length ${this.maxLength}`);
  }

  /** Logits of every position: an f32 Tensor [tokens, vocab]. */
  async forward(tokens: Tokens): Promise<Tensor<"f32">> {
    const ids = toInt32(tokens, this.vocabSize);
    this.checkLength(ids.length, "forward");
    const r = await this.runtime.forward(ids, { logits: "all" });
    return new Tensor("f32", [ids.length, this.vocabSize], r.logits!);
  }

  /**
   * Log-probabilities (natural log) of each token given the ones before it: element i is
   * log p(tokens[i+1] | tokens[0..i]), so the result has tokens.length − 1 entries.
   */
  async logprobs(tokens: Tokens, options: KvScoringOptions = {}): Promise<Float64Array> {
    if (options.kv) {
      const ids = toInt32(tokens, this.vocabSize);
      this.checkLength(ids.length, "logprobs");
      return this.kvLogprobs(ids, parseKvOptions(options.kv), options.chunk ?? 16);
    }
    const logits = await this.forward(tokens);
    const V = this.vocabSize;
    const T = logits.shape[0]!;
    const out = new Float64Array(Math.max(0, T - 1));
    for (let t = 0; t + 1 < T; t++) {
      const row = logits.data.subarray(t * V, (t + 1) * V);
      let max = -Infinity;
      for (let i = 0; i < V; i++) if (row[i]! > max) max = row[i]!;
      let z = 0;
      for (let i = 0; i < V; i++) z += Math.exp(row[i]! - max);
      out[t] = row[tokens[t + 1]!]! - max - Math.log(z);
    }
    return out;
  }

  /**
   * Generates text after `prompt` (a string, encoded with the tokenizer's special tokens, or token
   * ids), streaming one chunk per new token. Prefills a KV cache with the prompt, then decodes one
   * token at a time. Greedy when temperature is 0; otherwise sampled with tersor's Rng under `seed`.
   * Ends at an EOS token (yielded as the last chunk), a stop string, or `maxTokens`.
   */
  async *generate(prompt: string | Tokens, options: GenerateOptions = {}): AsyncGenerator<GenerateChunk, void, undefined> {
    const maxTokens = options.maxTokens ?? 128;
    if (!Number.isInteger(maxTokens) || maxTokens < 0) throw new TersorError("E_RANGE", `maxTokens must be an integer ≥ 0, got ${maxTokens}`);
    const sampling: SamplingOptions = { temperature: options.temperature ?? 0 };
    if (options.topK !== undefined) sampling.topK = options.topK;
    if (options.topP !== undefined) sampling.topP = options.topP;
    checkSampling(sampling);
    if (options.seed !== undefined && (!Number.isSafeInteger(options.seed) || options.seed < 0)) throw new TersorError("E_RANGE", `seed must be a non-negative integer, got ${options.seed}`);
    const stops = (options.stop ?? []).filter((s) => s.length > 0);
    const eos = new Set(options.eosTokenIds ?? this.eosTokenIds);
    let promptIds = typeof prompt === "string" ? this.encode(prompt, { addSpecialTokens: true }) : Array.from(prompt);
    if (promptIds.length === 0) promptIds = [this.prefixToken];
    const ids = toInt32(promptIds, this.vocabSize, "prompt");
    this.checkLength(ids.length, "generate");
    if (maxTokens === 0) return;
    const rng = new Rng(options.seed ?? randomBytes(6).readUIntLE(0, 6));
    const capacity = Math.min(this.maxLength, ids.length + maxTokens);
    const cache = this.createKvCache(capacity, options.kv);
    const stream = new StreamDecoder(this.tokenizer, promptIds);
    let text = ""; // decoded, not yet emitted (held back for stop strings)
    let r = await this.runtime.forward(ids, { cache, logits: "last" });
    for (let n = 0; ; n++) {
      const token = sampleToken(r.logits!, sampling, rng);
      if (eos.has(token)) {
        yield { token, text: text + stream.flush(), finishReason: "eos" };
        return;
      }
      text += stream.push(token);
      const last = n + 1 >= maxTokens || cache.length + 1 > capacity;
      if (stops.length > 0) {
        let cut = -1;
        for (const s of stops) {
          const at = text.indexOf(s);
          if (at >= 0 && (cut < 0 || at < cut)) cut = at;
        }
        if (cut >= 0) {
          yield { token, text: text.slice(0, cut), finishReason: "stop" };
          return;
        }
      }
      if (last) {
        let rest = text + stream.flush();
        let reason: GenerateChunk["finishReason"] = "length";
        for (const s of stops) {
          const at = rest.indexOf(s);
          if (at >= 0) {
            rest = rest.slice(0, at);
            reason = "stop";
          }
        }
        yield { token, text: rest, finishReason: reason };
        return;
      }
      // Emit all but a tail that could still start a stop string.
      let hold = 0;
      for (const s of stops) for (let k = Math.min(s.length - 1, text.length); k > hold; k--) if (s.startsWith(text.slice(text.length - k))) hold = k;
      yield { token, text: text.slice(0, text.length - hold) };
      text = text.slice(text.length - hold);
      r = await this.runtime.forward(Int32Array.of(token), { cache, logits: "last" });
    }
  }

  /** Generates and returns the whole text (see {@link generate}). */
  async generateText(prompt: string | Tokens, options: GenerateOptions = {}): Promise<{ text: string; tokens: number[]; finishReason: GenerateChunk["finishReason"] }> {
    let text = "";
    const tokens: number[] = [];
    let finishReason: GenerateChunk["finishReason"];
    for await (const c of this.generate(prompt, options)) {
      text += c.text;
      tokens.push(c.token);
      finishReason = c.finishReason;
    }
    return { text, tokens, finishReason };
  }

  /**
   * Hidden states of `tokens` at the requested layers (0 = embeddings, `layers` = the last, with
   * the final norm by default): one f32 Tensor per layer, [hidden] when mean-pooled, else [tokens, hidden].
   */
  async hiddenStates(tokens: Tokens, options: HiddenStatesOptions = {}): Promise<Tensor<"f32">[]> {
    const L = this.config.layers;
    const layers = options.layers ?? [L];
    for (const l of layers) if (!Number.isInteger(l) || l < 0 || l > L) throw new TersorError("E_RANGE", `hidden-state layer ${l} is outside [0, ${L}]`);
    const ids = toInt32(tokens, this.vocabSize);
    this.checkLength(ids.length, "hiddenStates");
    const r = await this.runtime.forward(ids, { logits: "none", hiddenLayers: [...layers] });
    const C = this.config.hidden;
    const T = ids.length;
    return layers.map((l, i) => {
      let h = r.hidden![i]!;
      if (l === L && (options.finalNorm ?? true)) h = this.applyFinalNorm(h, T);
      if ((options.pool ?? "mean") === "none") return new Tensor("f32", [T, C], h);
      const m = new Float64Array(C);
      for (let t = 0; t < T; t++) for (let c = 0; c < C; c++) m[c]! += h[t * C + c]!;
      return new Tensor("f32", [C], Float32Array.from(m, (v) => v / T));
    });
  }

  private applyFinalNorm(h: Float32Array, T: number): Float32Array {
    const C = this.config.hidden;
    const eps = this.config.normEps;
    const { weight, bias } = this.parts.finalNorm;
    const out = new Float32Array(h.length);
    for (let t = 0; t < T; t++) {
      const o = t * C;
      let mean = 0;
      if (this.config.norm === "layernorm") {
        for (let c = 0; c < C; c++) mean += h[o + c]!;
        mean /= C;
      }
      let v = 0;
      for (let c = 0; c < C; c++) v += (h[o + c]! - mean) ** 2;
      const r = 1 / Math.sqrt(v / C + eps);
      for (let c = 0; c < C; c++) out[o + c] = (h[o + c]! - mean) * r * weight[c]! + (bias ? bias[c]! : 0);
    }
    return out;
  }

  /**
   * Inputs of every linear layer over one or more sequences (for GPTQ/AWQ-style calibration):
   * "gram" accumulates XᵀX in f64 per linear, "raw" keeps the input rows. `layers` restricts the
   * capture (default: all). q, k and v share one input.
   */
  async captureLinearInputs(tokens: Tokens | Tokens[], options: { layers?: number[]; accumulate?: "gram" | "raw" } = {}): Promise<LinearCapture> {
    const mode = options.accumulate ?? "gram";
    const L = this.config.layers;
    if (options.layers) for (const l of options.layers) if (!Number.isInteger(l) || l < 0 || l >= L) throw new TersorError("E_RANGE", `capture layer ${l} is outside [0, ${L})`);
    const seqs: Tokens[] = tokens.length > 0 && typeof tokens[0] !== "number" ? (tokens as Tokens[]) : [tokens as Tokens];
    const capture = this.runtime.createCapture(mode, options.layers ? [...options.layers] : undefined);
    for (const [i, s] of seqs.entries()) {
      const ids = toInt32(s, this.vocabSize, `sequence ${i}`);
      this.checkLength(ids.length, `captureLinearInputs sequence ${i}`);
      await this.runtime.forward(ids, { logits: "none", capture });
    }
    const tensors: LinearCapture["tensors"] = new Map();
    const rows = new Map<string, number>();
    for (const name of capture.names()) {
      const data = capture.get(name);
      const n = capture.rows(name);
      rows.set(name, n);
      if (mode === "gram") {
        const inF = Math.round(Math.sqrt(data.length));
        tensors.set(name, new Tensor("f64", [inF, inF], data as Float64Array));
      } else {
        tensors.set(name, new Tensor("f32", [n, n === 0 ? 0 : data.length / n], data as Float32Array));
      }
    }
    return { mode, tensors, rows };
  }

  /**
   * Scores windows for perplexity: for each, Σ log p(continuation[i] | context ++ continuation[0..i))
   * in nats, batched through the runtime's `scoreSequences`. The model reads
   * `context ++ continuation` without its last token, so that may be as long as `maxLength`.
   */
  async scoreWindows(windows: { context: number[]; continuation: number[] }[], options: KvScoringOptions = {}): Promise<number[]> {
    if (windows.length === 0) return [];
    if (options.kv) {
      const kv = parseKvOptions(options.kv);
      const out: number[] = [];
      for (const [i, w] of windows.entries()) {
        if (w.context.length === 0) throw new TersorError("E_RANGE", `window ${i}: the context must hold at least one token (the first token has nothing to be predicted from)`);
        const all = toInt32([...w.context, ...w.continuation], this.vocabSize, "window tokens");
        if (all.length - 1 > this.maxLength) throw new TersorError("E_RANGE", `window ${i}: ${all.length - 1} input tokens exceed the model's maximum length ${this.maxLength}`);
        const lp = all.length > 1 ? await this.kvLogprobs(all, kv, options.chunk ?? 16) : new Float64Array(0);
        let s = 0;
        for (let t = w.context.length - 1; t < lp.length; t++) s += lp[t]!;
        out.push(s);
      }
      return out;
    }
    let total = 0;
    for (const [i, w] of windows.entries()) {
      if (w.context.length === 0) throw new TersorError("E_RANGE", `window ${i}: the context must hold at least one token (the first token has nothing to be predicted from)`);
      const n = w.context.length + w.continuation.length;
      // The last token is only a target: the model reads n − 1 tokens.
      if (n - 1 > this.maxLength) throw new TersorError("E_RANGE", `window ${i}: ${n - 1} input tokens exceed the model's maximum length ${this.maxLength}`);
      total += n;
    }
    const tokens = new Int32Array(total);
    const offsets = new Int32Array(windows.length + 1);
    const scoreFrom = new Int32Array(windows.length);
    let p = 0;
    for (const [i, w] of windows.entries()) {
      offsets[i] = p;
      scoreFrom[i] = w.context.length;
      tokens.set(w.context, p);
      tokens.set(w.continuation, p + w.context.length);
      p += w.context.length + w.continuation.length;
    }
    offsets[windows.length] = p;
    toInt32(tokens, this.vocabSize, "window tokens");
    const r = await this.runtime.scoreSequences(tokens, offsets, scoreFrom);
    return Array.from(r.logprob);
  }

  /** This model as a perplexity scorer (@tersor/eval's `LanguageModelScorer`), optionally through a compressed KV cache. */
  scorer(options: KvScoringOptions = {}): ModelScorer {
    return asScorer(this, options);
  }

  /** A native cache: f32, or compressed with `kv` (validated with @tersor/kv's schema, then natively). */
  createKvCache(capacity: number, kv?: KvOptionsInput): NativeKvCache {
    if (!kv) return this.runtime.createCache(capacity);
    const o = parseKvOptions(kv);
    checkKvForContext(o, capacity);
    return this.runtime.createCache(capacity, o);
  }

  /** log p(tokens[i+1] | tokens[0..i]) reading `ids` in chunks through a compressed cache. */
  private async kvLogprobs(ids: Int32Array, kv: KvOptions, chunk: number): Promise<Float64Array> {
    if (!Number.isInteger(chunk) || chunk < 1) throw new TersorError("E_RANGE", `chunk must be a positive integer, got ${chunk}`);
    const n = ids.length - 1; // the last token is only a target
    const out = new Float64Array(Math.max(0, n));
    if (n <= 0) return out;
    const cache = this.createKvCache(n, kv);
    const V = this.vocabSize;
    for (let t0 = 0; t0 < n; t0 += chunk) {
      const m = Math.min(chunk, n - t0);
      const r = await this.runtime.forward(ids.subarray(t0, t0 + m), { cache, logits: "all" });
      const logits = r.logits!;
      for (let j = 0; j < m; j++) {
        const row = logits.subarray(j * V, (j + 1) * V);
        let max = -Infinity;
        for (let i = 0; i < V; i++) if (row[i]! > max) max = row[i]!;
        let z = 0;
        for (let i = 0; i < V; i++) z += Math.exp(row[i]! - max);
        out[t0 + j] = row[ids[t0 + j + 1]!]! - max - Math.log(z);
      }
    }
    return out;
  }
}

/**
 * A model as @tersor/eval's `LanguageModelScorer` (implemented structurally, so @tersor/model need
 * not import @tersor/eval): `encode` without special tokens, lm-eval's prefix token, the context
 * length, and batched window scoring.
 */
export function asScorer(model: Model, options: KvScoringOptions = {}): ModelScorer {
  return {
    encode: (text) => model.encode(text),
    prefixToken: model.prefixToken,
    maxLength: model.maxLength,
    scoreWindows: (windows) => model.scoreWindows(windows, options),
  };
}

