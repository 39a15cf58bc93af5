/**
 * An independent reference forward pass for tests: plain TypeScript, f64, written from the Hugging
 * Face transformers definitions (LlamaForCausalLM / MistralForCausalLM / Qwen2ForCausalLM /
 * GPT2LMHeadModel) and sharing no code with tersor's native runtime. Slow on purpose: clarity over speed.
 */

export type RopeScaling =
  | { rope_type: "linear"; factor: number }
  | { rope_type: "llama3"; factor: number; low_freq_factor: number; high_freq_factor: number; original_max_position_embeddings: number };

export interface LlamaLikeConfig {
  model_type: "llama" | "mistral" | "qwen2";
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim?: number;
  rms_norm_eps: number;
  rope_theta: number;
  rope_scaling?: RopeScaling | null;
  tie_word_embeddings: boolean;
  /** Qwen2 has q/k/v biases; Llama has `attention_bias` (false by default). */
  attention_bias?: boolean;
  sliding_window?: number | null;
  max_position_embeddings: number;
}

export interface Gpt2Config {
  model_type: "gpt2";
  vocab_size: number;
  n_embd: number;
  n_layer: number;
  n_head: number;
  n_positions: number;
  layer_norm_epsilon: number;
  n_inner?: number | null;
}

export type ReferenceConfig = LlamaLikeConfig | Gpt2Config;
/** Weights by Hugging Face tensor name, row-major values. */
export type Weights = Map<string, { shape: number[]; data: ArrayLike<number> }>;

function W(weights: Weights, name: string): { shape: number[]; data: ArrayLike<number> } {
  const w = weights.get(name);
  if (!w) throw new Error(`reference: missing weight ${name}`);
  return w;
}

/** y[t, o] = Σ_i x[t, i] · w[o, i] (+ b[o]): nn.Linear with weight [out, in]. */
function linear(x: Float64Array, T: number, inF: number, w: ArrayLike<number>, outF: number, b?: ArrayLike<number>): Float64Array {
  const y = new Float64Array(T * outF);
  for (let t = 0; t < T; t++)
    for (let o = 0; o < outF; o++) {
      let s = b ? b[o]! : 0;
      for (let i = 0; i < inF; i++) s += x[t * inF + i]! * w[o * inF + i]!;
      y[t * outF + o] = s;
    }
  return y;
}

/** y[t, o] = Σ_i x[t, i] · w[i, o] + b[o]: GPT-2's Conv1D with weight [in, out]. */
function conv1d(x: Float64Array, T: number, inF: number, w: ArrayLike<number>, outF: number, b: ArrayLike<number>): Float64Array {
  const y = new Float64Array(T * outF);
  for (let t = 0; t < T; t++)
    for (let o = 0; o < outF; o++) {
      let s = b[o]!;
      for (let i = 0; i < inF; i++) s += x[t * inF + i]! * w[i * outF + o]!;
      y[t * outF + o] = s;
    }
  return y;
}

function rmsNorm(x: Float64Array, T: number, C: number, w: ArrayLike<number>, eps: number): Float64Array {
  const y = new Float64Array(T * C);
  for (let t = 0; t < T; t++) {
    let ms = 0;
    for (let c = 0; c < C; c++) ms += x[t * C + c]! ** 2;
    const r = 1 / Math.sqrt(ms / C + eps);
    for (let c = 0; c < C; c++) y[t * C + c] = x[t * C + c]! * r * w[c]!;
  }
  return y;
}

function layerNorm(x: Float64Array, T: number, C: number, w: ArrayLike<number>, b: ArrayLike<number>, eps: number): Float64Array {
  const y = new Float64Array(T * C);
  for (let t = 0; t < T; t++) {
    let mean = 0;
    for (let c = 0; c < C; c++) mean += x[t * C + c]!;
    mean /= C;
    let v = 0;
    for (let c = 0; c < C; c++) v += (x[t * C + c]! - mean) ** 2;
    const r = 1 / Math.sqrt(v / C + eps);
    for (let c = 0; c < C; c++) y[t * C + c] = (x[t * C + c]! - mean) * r * w[c]! + b[c]!;
  }
  return y;
}

/** HF `_compute_default_rope_parameters` + the `linear` and `llama3` rope types. */
export function ropeInvFreq(headDim: number, theta: number, scaling?: RopeScaling | null): Float64Array {
  const half = headDim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / theta ** ((2 * i) / headDim);
  if (scaling?.rope_type === "llama3") {
    const { factor, low_freq_factor: lo, high_freq_factor: hi, original_max_position_embeddings: old } = scaling;
    const lowWavelen = old / lo;
    const highWavelen = old / hi;
    for (let i = 0; i < half; i++) {
      const wavelen = (2 * Math.PI) / inv[i]!;
      if (wavelen > lowWavelen) inv[i] = inv[i]! / factor;
      else if (wavelen >= highWavelen) {
        const smooth = (old / wavelen - lo) / (hi - lo);
        inv[i] = (1 - smooth) * (inv[i]! / factor) + smooth * inv[i]!;
      }
    }
  }
  return inv;
}

/** Rotates [T, H, d] in place: x·cos + rotate_half(x)·sin, rotate_half(x) = [−x2, x1]. */
function applyRope(x: Float64Array, T: number, H: number, d: number, positions: number[], inv: Float64Array, posScale: number): void {
  const half = d / 2;
  for (let t = 0; t < T; t++) {
    const p = positions[t]! / posScale;
    for (let h = 0; h < H; h++) {
      const o = (t * H + h) * d;
      for (let i = 0; i < half; i++) {
        const a = p * inv[i]!;
        const c = Math.cos(a);
        const s = Math.sin(a);
        const x1 = x[o + i]!;
        const x2 = x[o + i + half]!;
        x[o + i] = x1 * c - x2 * s;
        x[o + i + half] = x2 * c + x1 * s;
      }
    }
  }
}

/** Causal softmax attention; q [T, H, d], k and v [T, Hkv, d]; optional sliding window. */
function attention(q: Float64Array, k: Float64Array, v: Float64Array, T: number, H: number, Hkv: number, d: number, window?: number | null): Float64Array {
  const out = new Float64Array(T * H * d);
  const group = H / Hkv;
  const scale = 1 / Math.sqrt(d);
  for (let h = 0; h < H; h++) {
    const kh = Math.floor(h / group);
    for (let t = 0; t < T; t++) {
      const lo = window ? Math.max(0, t - window + 1) : 0;
      const scores: number[] = [];
      let max = -Infinity;
      for (let s = lo; s <= t; s++) {
        let dot = 0;
        for (let i = 0; i < d; i++) dot += q[(t * H + h) * d + i]! * k[(s * Hkv + kh) * d + i]!;
        scores.push(dot * scale);
        max = Math.max(max, dot * scale);
      }
      let z = 0;
      for (let j = 0; j < scores.length; j++) z += (scores[j] = Math.exp(scores[j]! - max));
      for (let j = 0; j < scores.length; j++) {
        const p = scores[j]! / z;
        const s = lo + j;
        for (let i = 0; i < d; i++) out[(t * H + h) * d + i] += p * v[(s * Hkv + kh) * d + i]!;
      }
    }
  }
  return out;
}

const silu = (x: number) => x / (1 + Math.exp(-x));
const geluTanh = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));

function llamaForward(cfg: LlamaLikeConfig, w: Weights, tokens: number[]): Float64Array {
  const T = tokens.length;
  const C = cfg.hidden_size;
  const H = cfg.num_attention_heads;
  const Hkv = cfg.num_key_value_heads;
  const d = cfg.head_dim ?? C / H;
  const F = cfg.intermediate_size;
  const V = cfg.vocab_size;
  const emb = W(w, "model.embed_tokens.weight").data;
  let x = new Float64Array(T * C);
  for (let t = 0; t < T; t++) for (let c = 0; c < C; c++) x[t * C + c] = emb[tokens[t]! * C + c]!;
  const positions = tokens.map((_, i) => i);
  const inv = ropeInvFreq(d, cfg.rope_theta, cfg.rope_scaling);
  const posScale = cfg.rope_scaling?.rope_type === "linear" ? cfg.rope_scaling.factor : 1;
  const bias = cfg.model_type === "qwen2" || cfg.attention_bias === true;
  for (let l = 0; l < cfg.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    const h = rmsNorm(x, T, C, W(w, p + "input_layernorm.weight").data, cfg.rms_norm_eps);
    const q = linear(h, T, C, W(w, p + "self_attn.q_proj.weight").data, H * d, bias ? W(w, p + "self_attn.q_proj.bias").data : undefined);
    const k = linear(h, T, C, W(w, p + "self_attn.k_proj.weight").data, Hkv * d, bias ? W(w, p + "self_attn.k_proj.bias").data : undefined);
    const v = linear(h, T, C, W(w, p + "self_attn.v_proj.weight").data, Hkv * d, bias ? W(w, p + "self_attn.v_proj.bias").data : undefined);
    applyRope(q, T, H, d, positions, inv, posScale);
    applyRope(k, T, Hkv, d, positions, inv, posScale);
    const a = attention(q, k, v, T, H, Hkv, d, cfg.model_type === "mistral" ? cfg.sliding_window : null);
    const o = linear(a, T, H * d, W(w, p + "self_attn.o_proj.weight").data, C);
    for (let i = 0; i < x.length; i++) x[i] += o[i]!;
    const h2 = rmsNorm(x, T, C, W(w, p + "post_attention_layernorm.weight").data, cfg.rms_norm_eps);
    const g = linear(h2, T, C, W(w, p + "mlp.gate_proj.weight").data, F);
    const u = linear(h2, T, C, W(w, p + "mlp.up_proj.weight").data, F);
    for (let i = 0; i < g.length; i++) g[i] = silu(g[i]!) * u[i]!;
    const m = linear(g, T, F, W(w, p + "mlp.down_proj.weight").data, C);
    for (let i = 0; i < x.length; i++) x[i] += m[i]!;
  }
  x = rmsNorm(x, T, C, W(w, "model.norm.weight").data, cfg.rms_norm_eps);
  const head = cfg.tie_word_embeddings ? emb : W(w, "lm_head.weight").data;
  return linear(x, T, C, head, V);
}

function gpt2Forward(cfg: Gpt2Config, w: Weights, tokens: number[]): Float64Array {
  const T = tokens.length;
  const C = cfg.n_embd;
  const H = cfg.n_head;
  const d = C / H;
  const F = cfg.n_inner ?? 4 * C;
  const eps = cfg.layer_norm_epsilon;
  const wte = W(w, "transformer.wte.weight").data;
  const wpe = W(w, "transformer.wpe.weight").data;
  let x = new Float64Array(T * C);
  for (let t = 0; t < T; t++) for (let c = 0; c < C; c++) x[t * C + c] = wte[tokens[t]! * C + c]! + wpe[t * C + c]!;
  for (let l = 0; l < cfg.n_layer; l++) {
    const p = `transformer.h.${l}.`;
    const h = layerNorm(x, T, C, W(w, p + "ln_1.weight").data, W(w, p + "ln_1.bias").data, eps);
    const qkv = conv1d(h, T, C, W(w, p + "attn.c_attn.weight").data, 3 * C, W(w, p + "attn.c_attn.bias").data);
    const q = new Float64Array(T * C);
    const k = new Float64Array(T * C);
    const v = new Float64Array(T * C);
    for (let t = 0; t < T; t++)
      for (let c = 0; c < C; c++) {
        q[t * C + c] = qkv[t * 3 * C + c]!;
        k[t * C + c] = qkv[t * 3 * C + C + c]!;
        v[t * C + c] = qkv[t * 3 * C + 2 * C + c]!;
      }
    const a = attention(q, k, v, T, H, H, d);
    const o = conv1d(a, T, C, W(w, p + "attn.c_proj.weight").data, C, W(w, p + "attn.c_proj.bias").data);
    for (let i = 0; i < x.length; i++) x[i] += o[i]!;
    const h2 = layerNorm(x, T, C, W(w, p + "ln_2.weight").data, W(w, p + "ln_2.bias").data, eps);
    const f = conv1d(h2, T, C, W(w, p + "mlp.c_fc.weight").data, F, W(w, p + "mlp.c_fc.bias").data);
    for (let i = 0; i < f.length; i++) f[i] = geluTanh(f[i]!);
    const m = conv1d(f, T, F, W(w, p + "mlp.c_proj.weight").data, C, W(w, p + "mlp.c_proj.bias").data);
    for (let i = 0; i < x.length; i++) x[i] += m[i]!;
  }
  x = layerNorm(x, T, C, W(w, "transformer.ln_f.weight").data, W(w, "transformer.ln_f.bias").data, eps);
  return linear(x, T, C, wte, cfg.vocab_size);
}

/** Logits [T, vocab] of a causal LM for one sequence. */
export function referenceForward(cfg: ReferenceConfig, weights: Weights, tokens: number[]): Float64Array {
  return cfg.model_type === "gpt2" ? gpt2Forward(cfg, weights, tokens) : llamaForward(cfg, weights, tokens);
}

/** Deterministic small random weights (a simple LCG; independent of tersor's Rng) for a config, by HF name. */
export function randomWeights(cfg: ReferenceConfig, seed = 1, std = 0.08): Weights {
  let s = seed >>> 0 || 1;
  const rnd = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32 - 0.5) * 2 * std * Math.sqrt(3);
  };
  const w: Weights = new Map();
  const add = (name: string, shape: number[], fill?: number) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float64Array(n);
    for (let i = 0; i < n; i++) data[i] = fill === undefined ? rnd() : fill + rnd() * 0.5;
    w.set(name, { shape, data });
  };
  if (cfg.model_type === "gpt2") {
    const C = cfg.n_embd;
    const F = cfg.n_inner ?? 4 * C;
    add("transformer.wte.weight", [cfg.vocab_size, C]);
    add("transformer.wpe.weight", [cfg.n_positions, C]);
    for (let l = 0; l < cfg.n_layer; l++) {
      const p = `transformer.h.${l}.`;
      add(p + "ln_1.weight", [C], 1);
      add(p + "ln_1.bias", [C], 0);
      add(p + "attn.c_attn.weight", [C, 3 * C]);
      add(p + "attn.c_attn.bias", [3 * C], 0);
      add(p + "attn.c_proj.weight", [C, C]);
      add(p + "attn.c_proj.bias", [C], 0);
      add(p + "ln_2.weight", [C], 1);
      add(p + "ln_2.bias", [C], 0);
      add(p + "mlp.c_fc.weight", [C, F]);
      add(p + "mlp.c_fc.bias", [F], 0);
      add(p + "mlp.c_proj.weight", [F, C]);
      add(p + "mlp.c_proj.bias", [C], 0);
    }
    add("transformer.ln_f.weight", [C], 1);
    add("transformer.ln_f.bias", [C], 0);
    return w;
  }
  const C = cfg.hidden_size;
  const H = cfg.num_attention_heads;
  const d = cfg.head_dim ?? C / H;
  const Hkv = cfg.num_key_value_heads;
  const F = cfg.intermediate_size;
  const bias = cfg.model_type === "qwen2" || cfg.attention_bias === true;
  add("model.embed_tokens.weight", [cfg.vocab_size, C]);
  for (let l = 0; l < cfg.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    add(p + "input_layernorm.weight", [C], 1);
    add(p + "self_attn.q_proj.weight", [H * d, C]);
    add(p + "self_attn.k_proj.weight", [Hkv * d, C]);
    add(p + "self_attn.v_proj.weight", [Hkv * d, C]);
    if (bias) {
      add(p + "self_attn.q_proj.bias", [H * d], 0);
      add(p + "self_attn.k_proj.bias", [Hkv * d], 0);
      add(p + "self_attn.v_proj.bias", [Hkv * d], 0);
    }
    add(p + "self_attn.o_proj.weight", [C, H * d]);
    add(p + "post_attention_layernorm.weight", [C], 1);
    add(p + "mlp.gate_proj.weight", [F, C]);
    add(p + "mlp.up_proj.weight", [F, C]);
    add(p + "mlp.down_proj.weight", [C, F]);
  }
  add("model.norm.weight", [C], 1);
  if (!cfg.tie_word_embeddings) add("lm_head.weight", [cfg.vocab_size, C]);
  return w;
}
