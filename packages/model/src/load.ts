/** loadModel: a Hugging Face model directory or a llama.cpp GGUF file into the native runtime. */
import { open, stat } from "node:fs/promises";
import { join } from "node:path";

import { type GgufFile, type GgufMetadata, type GgufValue, type ProgressMode, TersorError, openGguf, openSafetensorsDir } from "@tersor/core";
import { type NativeTransformer, type TransformerConfig, native } from "@tersor/native";

import { type ModelSpec, parseHfConfig } from "./config.js";
import { isFile, readJsonFile } from "./files.js";
import { Model, type ModelSource } from "./model.js";
import { resolveModelPath } from "./resolve.js";
import { BYTE_VOCAB_SIZE, type Tokenizer, byteTokenizer, byteTokenizerJson, loadTokenizer } from "./tokenizer.js";
import { type LoadWeightsResult, type QuantizedCheckpoint, type TensorSource, type WeightDType, ggufLlamaPlan, ggufSource, hfPlan, loadWeights, safetensorsSource } from "./weights.js";

export interface LoadModelOptions {
  /**
   * Precision the weights are rounded to on their way to the runtime: "f32", "f16" or "bf16".
   * Default: as stored (f64 checkpoints as f32). f16/bf16 weights reach the runtime as 16-bit
   * patterns, without an f32 copy in JavaScript.
   */
  dtype?: WeightDType;
  /** A tokenizer.json (or a directory holding one), or a tokenizer. Default: the model directory's tokenizer.json; GGUF files: the byte-level tokenizer (without a warning when the GGUF's own vocabulary is the byte-level one). */
  tokenizer?: string | Tokenizer;
  /** Progress of weight loading (default: a bar on a TTY). */
  progress?: ProgressMode;
  /** Builds the runtime for a config (default: the native addon's `createTransformer`); for alternative backends and tests. */
  createRuntime?: (config: TransformerConfig) => NativeTransformer;
}

function defaultRuntime(config: TransformerConfig): NativeTransformer {
  const b = native();
  if (typeof b.createTransformer !== "function") {
    throw new TersorError("E_NATIVE", "the native addon has no transformer runtime (createTransformer); rebuild it with `npm run build:native`");
  }
  return b.createTransformer(config);
}

async function isGgufFile(path: string): Promise<boolean> {
  const fh = await open(path, "r");
  try {
    const b = new Uint8Array(4);
    const { bytesRead } = await fh.read(b, 0, 4, 0);
    return bytesRead === 4 && b[0] === 0x47 && b[1] === 0x47 && b[2] === 0x55 && b[3] === 0x46;
  } finally {
    await fh.close();
  }
}

/**
 * Loads a model: `path` is a Hugging Face directory (config.json, model.safetensors or shards with
 * model.safetensors.index.json, tokenizer.json), a GGUF file of the llama architecture, or a name
 * a registered resolver knows (see {@link registerModelResolver}). Tensors are read one at a time
 * straight into the runtime.
 *
 * Errors: unsupported architecture or malformed config / checkpoint, or a missing tensor → `E_FORMAT`;
 * a tensor whose shape disagrees with the config → `E_SHAPE`; unreadable files → `E_IO`.
 * Checkpoint tensors the model does not use are listed in `model.warnings`.
 */
export async function loadModel(path: string, options: LoadModelOptions = {}): Promise<Model> {
  const resolved = await resolveModelPath(path);
  const st = await stat(resolved);
  if (st.isDirectory()) return await loadHfDir(resolved, options);
  if (await isGgufFile(resolved)) return await loadGguf(resolved, options);
  throw new TersorError(
    "E_FORMAT",
    `${resolved}: not a model: a model is a Hugging Face directory (config.json + safetensors weights) or a GGUF file`,
  );
}

async function loadInto(
  spec: { transformer: TransformerConfig },
  src: TensorSource,
  plan: Parameters<typeof loadWeights>[1],
  prefixes: string[],
  options: LoadModelOptions,
  quantization?: QuantizedCheckpoint,
): Promise<{ runtime: NativeTransformer } & LoadWeightsResult> {
  const runtime = (options.createRuntime ?? defaultRuntime)(spec.transformer);
  const r = await loadWeights(src, plan, runtime, {
    prefixes,
    ...(options.progress ? { progress: options.progress } : {}),
    ...(quantization ? { quantization } : {}),
  });
  return { runtime, ...r };
}

/**
 * True when a parsed tokenizer.json is tersor's byte-level tokenizer ({@link byteTokenizerJson}, as
 * `train()` writes it): a merge-less BPE over exactly the 256 byte tokens, no normalizer, ByteLevel
 * pre-tokenization and the added specials 256/257/258.
 */
export function isByteLevelTokenizerJson(json: unknown): boolean {
  if (typeof json !== "object" || json === null) return false;
  const j = json as Record<string, any>;
  const ref = byteTokenizerJson() as Record<string, any>;
  const specials = (a: unknown) => (Array.isArray(a) ? JSON.stringify(a.map((t: { id?: unknown; content?: unknown }) => [t?.id, t?.content])) : "");
  return (
    j["model"]?.type === "BPE" &&
    Array.isArray(j["model"]?.merges) &&
    j["model"].merges.length === 0 &&
    JSON.stringify(j["model"]?.vocab) === JSON.stringify(ref["model"].vocab) &&
    (j["normalizer"] ?? null) === null &&
    j["pre_tokenizer"]?.type === "ByteLevel" &&
    specials(j["added_tokens"]) === specials(ref["added_tokens"])
  );
}

/**
 * The byte-level tokenizer as a llama.cpp GGUF vocabulary (`tokenizer.ggml.model` "gpt2", a BPE
 * without merges): token b < 256 is GPT-2's byte-to-unicode character of byte b (as in
 * {@link byteTokenizerJson}), then `<|bos|>`, `<|eos|>`, `<|pad|>` (256, 257, 258). llama.cpp's
 * byte-level BPE maps every input byte to that character, and with no merges to apply each
 * character stays one token: exactly the byte tokenizer's ids.
 */
export function byteLevelGgufTokens(): string[] {
  const j = byteTokenizerJson() as { model: { vocab: Record<string, number> }; added_tokens: { id: number; content: string }[] };
  const out = new Array<string>(BYTE_VOCAB_SIZE);
  for (const [s, id] of Object.entries(j.model.vocab)) out[id] = s;
  for (const t of j.added_tokens) out[t.id] = t.content;
  return out;
}

/**
 * True when a GGUF's `tokenizer.ggml.*` metadata is the byte-level tokenizer: model "gpt2", the
 * tokens of {@link byteLevelGgufTokens} first (any further ones are vocabulary padding the byte
 * tokenizer never produces), and no merges.
 */
export function isByteLevelGgufTokenizer(md: GgufMetadata): boolean {
  if (md.get("tokenizer.ggml.model") !== "gpt2") return false;
  const tokens = md.get("tokenizer.ggml.tokens");
  if (typeof tokens !== "object" || tokens === null || tokens.itemType !== "string") return false;
  const vals = tokens.values as readonly string[];
  const ref = byteLevelGgufTokens();
  if (vals.length < ref.length || ref.some((t, i) => vals[i] !== t)) return false;
  const merges = md.get("tokenizer.ggml.merges");
  return merges === undefined || (typeof merges === "object" && merges.values.length === 0);
}

/** A tokenizer.json (or a directory holding one): the built-in byte-level tokenizer when it is one, else the Hugging Face tokenizer. */
async function loadTokenizerOrByte(path: string): Promise<Tokenizer> {
  const file = (await isFile(path)) ? path : join(path, "tokenizer.json");
  if (await isFile(file)) {
    try {
      if (isByteLevelTokenizerJson(await readJsonFile(file))) return byteTokenizer();
    } catch {
      // loadTokenizer reports unreadable or malformed files.
    }
  }
  return await loadTokenizer(path);
}

async function tokenizerFor(options: LoadModelOptions, fallbackDir: string | undefined): Promise<{ tokenizer: Tokenizer; warnings: string[] }> {
  if (typeof options.tokenizer === "object") return { tokenizer: options.tokenizer, warnings: [] };
  if (typeof options.tokenizer === "string") return { tokenizer: await loadTokenizerOrByte(options.tokenizer), warnings: [] };
  if (fallbackDir !== undefined && (await isFile(join(fallbackDir, "tokenizer.json")))) return { tokenizer: await loadTokenizerOrByte(fallbackDir), warnings: [] };
  const where = fallbackDir === undefined ? "" : ` (${fallbackDir} has no tokenizer.json)`;
  return { tokenizer: byteTokenizer(), warnings: [`no tokenizer given${where}: using the byte-level tokenizer`] };
}

function checkVocab(tokenizer: Tokenizer, config: TransformerConfig): string[] {
  return tokenizer.vocabSize > config.vocabSize
    ? [`the tokenizer has ${tokenizer.vocabSize} tokens but the model only ${config.vocabSize}: ids ≥ ${config.vocabSize} will be rejected`]
    : [];
}

function finalNormOf(kept: Map<string, Float32Array>): { weight: Float32Array; bias?: Float32Array } {
  const weight = kept.get("finalNorm.weight")!;
  const bias = kept.get("finalNorm.bias");
  return bias ? { weight, bias } : { weight };
}

/** `quantization_config` of config.json: tersor's (see @tersor/quant formats.ts), or E_FORMAT for another method. */
function quantizedCheckpoint(metadata: unknown, cfgPath: string): QuantizedCheckpoint | undefined {
  const qc = (metadata as Record<string, unknown> | null)?.["quantization_config"];
  if (qc === undefined || qc === null) return undefined;
  const q = qc as Record<string, unknown>;
  if (typeof qc !== "object" || q["quant_method"] !== "tersor" || typeof q["scheme"] !== "string") {
    throw new TersorError("E_FORMAT", `${cfgPath}: quantization_config with quant_method ${JSON.stringify(q["quant_method"])} is not supported (tersor loads its own: quant_method "tersor" with a scheme)`);
  }
  const modules = q["modules"] as Record<string, { scheme: string }> | undefined;
  return { scheme: q["scheme"] as string, ...(modules && typeof modules === "object" ? { modules } : {}) };
}

async function loadHfDir(dir: string, options: LoadModelOptions): Promise<Model> {
  const cfgPath = join(dir, "config.json");
  if (!(await isFile(cfgPath))) throw new TersorError("E_FORMAT", `${dir}: no config.json: not a Hugging Face model directory`);
  const metadata = await readJsonFile(cfgPath);
  const spec: ModelSpec = parseHfConfig(metadata, cfgPath);
  const st = await openSafetensorsDir(dir);
  const src = safetensorsSource(st, dir, options.dtype);
  let loaded;
  try {
    const prefixes = spec.architecture === "gpt2" ? ["transformer.", "model."] : ["model.", "transformer."];
    loaded = await loadInto(spec, src, hfPlan(spec.architecture, spec.transformer), prefixes, options, quantizedCheckpoint(metadata, cfgPath));
  } finally {
    await src.close();
  }
  const { tokenizer, warnings: tw } = await tokenizerFor(options, dir);
  const source: ModelSource = { path: dir, format: "huggingface", metadata: metadata as Record<string, unknown> };
  return new Model({
    runtime: loaded.runtime,
    tokenizer,
    architecture: spec.architecture,
    source,
    eosTokenIds: spec.eosTokenIds.length > 0 ? spec.eosTokenIds : tokenizer.eosId !== undefined ? [tokenizer.eosId] : [],
    ...(spec.bosTokenId !== undefined ? { bosTokenId: spec.bosTokenId } : {}),
    finalNorm: finalNormOf(loaded.kept),
    warnings: [...loaded.warnings, ...tw, ...checkVocab(tokenizer, spec.transformer)],
  });
}

function num(v: GgufValue | undefined): number | undefined {
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  return undefined;
}

/** The runtime config of a llama.cpp GGUF of the `llama` architecture, from its `llama.*` metadata. */
export function ggufLlamaConfig(g: GgufFile): TransformerConfig {
  const md = g.metadata;
  const arch = md.get("general.architecture");
  if (arch !== "llama") {
    throw new TersorError("E_FORMAT", `${g.path}: GGUF architecture ${arch === undefined ? "(none)" : `"${String(arch)}"`} is not supported; supported: llama`);
  }
  const need = (key: string): number => {
    const v = num(md.get(key));
    if (v === undefined || !Number.isFinite(v) || v <= 0) throw new TersorError("E_FORMAT", `${g.path}: metadata "${key}" is missing or not a positive number`);
    return v;
  };
  const opt = (key: string): number | undefined => num(md.get(key));
  const hidden = need("llama.embedding_length");
  const heads = need("llama.attention.head_count");
  const kvHeads = opt("llama.attention.head_count_kv") ?? heads;
  const headDim = opt("llama.attention.key_length") ?? hidden / heads;
  const emb = g.get("token_embd.weight");
  const vocabSize = opt("llama.vocab_size") ?? emb?.shape[0];
  if (vocabSize === undefined) throw new TersorError("E_FORMAT", `${g.path}: no llama.vocab_size and no token_embd.weight tensor`);
  if (!Number.isInteger(headDim)) throw new TersorError("E_FORMAT", `${g.path}: embedding_length ${hidden} is not divisible by head_count ${heads}`);
  const maxPositions = need("llama.context_length");
  let scaling: "none" | "linear" = "none";
  let factor = 1;
  const scaleType = md.get("llama.rope.scaling.type");
  if (scaleType === "linear") {
    scaling = "linear";
    factor = need("llama.rope.scaling.factor");
  } else if (scaleType !== undefined && scaleType !== "none") {
    throw new TersorError("E_FORMAT", `${g.path}: rope scaling type "${String(scaleType)}" is not supported (supported: none, linear)`);
  } else if (opt("llama.rope.scale_linear") !== undefined && opt("llama.rope.scale_linear") !== 1) {
    scaling = "linear";
    factor = opt("llama.rope.scale_linear")!;
  }
  if (g.get("rope_freqs.weight") !== undefined) {
    throw new TersorError("E_FORMAT", `${g.path}: per-dimension RoPE frequency factors (rope_freqs.weight, Llama 3 rope scaling) are not supported in GGUF files yet`);
  }
  return {
    norm: "rmsnorm",
    normEps: opt("llama.attention.layer_norm_rms_epsilon") ?? 1e-5,
    vocabSize,
    hidden,
    intermediate: need("llama.feed_forward_length"),
    layers: need("llama.block_count"),
    heads,
    kvHeads,
    headDim,
    activation: "silu",
    gatedMlp: true,
    qkvBias: g.get("blk.0.attn_q.bias") !== undefined,
    outBias: false,
    tieEmbeddings: g.get("output.weight") === undefined,
    learnedPositions: false,
    maxPositions,
    // llama.cpp's converter permutes the Q/K rows for its interleaved (GPT-J style) rotation.
    rope: {
      theta: opt("llama.rope.freq_base") ?? 10000,
      style: "interleaved",
      rotaryDim: opt("llama.rope.dimension_count") ?? headDim,
      scaling,
      factor,
      lowFreqFactor: 1,
      highFreqFactor: 1,
      originalMaxPosition: maxPositions,
    },
    slidingWindow: 0,
  };
}

async function loadGguf(path: string, options: LoadModelOptions): Promise<Model> {
  const g = await openGguf(path);
  let loaded;
  let config: TransformerConfig;
  const metadata: Record<string, unknown> = {};
  const src = ggufSource(g, options.dtype);
  try {
    config = ggufLlamaConfig(g);
    for (const [k, e] of g.metadata) if (!k.startsWith("tokenizer.ggml.") || e.type !== "array") metadata[k] = e.value;
    loaded = await loadInto({ transformer: config }, src, ggufLlamaPlan(config), [], options);
  } finally {
    await src.close();
  }
  // A GGUF holding the byte-level vocabulary (as @tersor/quant's GGUF export writes it) gets the byte tokenizer.
  const byteVocab = options.tokenizer === undefined && isByteLevelGgufTokenizer(g.metadata);
  const { tokenizer, warnings: tw } = byteVocab ? { tokenizer: byteTokenizer() as Tokenizer, warnings: [] } : await tokenizerFor(options, undefined);
  // The GGUF's own special-token ids index its own vocabulary: meaningless for the byte-level fallback.
  const own = tokenizer.kind !== "byte" || byteVocab;
  const eos = own ? num(g.metadata.get("tokenizer.ggml.eos_token_id")) : undefined;
  const bos = own ? num(g.metadata.get("tokenizer.ggml.bos_token_id")) : undefined;
  const eosIds = eos !== undefined ? [eos] : tokenizer.eosId !== undefined ? [tokenizer.eosId] : [];
  return new Model({
    runtime: loaded.runtime,
    tokenizer,
    architecture: "llama",
    source: { path, format: "gguf", metadata },
    eosTokenIds: eosIds,
    ...(bos !== undefined ? { bosTokenId: bos } : {}),
    finalNorm: finalNormOf(loaded.kept),
    warnings: [...loaded.warnings, ...tw, ...checkVocab(tokenizer, config)],
  });
}
