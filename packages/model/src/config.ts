/**
 * Hugging Face `config.json` → the native runtime's {@link TransformerConfig}, for the
 * architectures tersor runs: Llama, Mistral, Qwen2 and GPT-2.
 */
import { TersorError } from "@tersor/core";
import type { TransformerConfig } from "@tersor/native";
import { z } from "zod";

/** The `model_type`s {@link parseHfConfig} understands. */
export const SUPPORTED_MODEL_TYPES = ["llama", "mistral", "qwen2", "gpt2"] as const;
export type ModelArchitecture = (typeof SUPPORTED_MODEL_TYPES)[number];

/** `architectures[0]` → model_type, for configs without a `model_type`. */
const ARCHITECTURE_CLASSES: Record<string, ModelArchitecture> = {
  LlamaForCausalLM: "llama",
  LlamaModel: "llama",
  MistralForCausalLM: "mistral",
  MistralModel: "mistral",
  Qwen2ForCausalLM: "qwen2",
  Qwen2Model: "qwen2",
  GPT2LMHeadModel: "gpt2",
  GPT2Model: "gpt2",
};

const posInt = z.number().int().positive();
const tokenIds = z.union([z.number().int().nonnegative(), z.array(z.number().int().nonnegative())]).nullish();

const ropeFields = {
  rope_type: z.string().optional(),
  type: z.string().optional(),
  factor: z.number().positive().optional(),
  low_freq_factor: z.number().positive().optional(),
  high_freq_factor: z.number().positive().optional(),
  original_max_position_embeddings: posInt.optional(),
};

/** `rope_scaling` (the legacy `type` key is accepted for `rope_type`). */
export const RopeScalingSchema = z.looseObject(ropeFields).nullish();

/** The fields tersor reads from a Llama, Mistral or Qwen2 config.json (others pass through). */
export const LlamaLikeConfigSchema = z.looseObject({
  model_type: z.enum(["llama", "mistral", "qwen2"]),
  vocab_size: posInt,
  hidden_size: posInt,
  intermediate_size: posInt,
  num_hidden_layers: posInt,
  num_attention_heads: posInt,
  num_key_value_heads: posInt.nullish(),
  head_dim: posInt.nullish(),
  hidden_act: z.string().default("silu"),
  rms_norm_eps: z.number().positive().default(1e-6),
  rope_theta: z.number().positive().optional(),
  rope_scaling: RopeScalingSchema,
  /** transformers ≥ 5 folds rope_theta and rope_scaling into this object. */
  rope_parameters: z.looseObject({ ...ropeFields, rope_theta: z.number().positive().optional() }).nullish(),
  tie_word_embeddings: z.boolean().default(false),
  attention_bias: z.boolean().default(false),
  mlp_bias: z.boolean().default(false),
  max_position_embeddings: posInt.optional(),
  sliding_window: z.number().int().nonnegative().nullish(),
  use_sliding_window: z.boolean().optional(),
  max_window_layers: z.number().int().nonnegative().optional(),
  bos_token_id: tokenIds,
  eos_token_id: tokenIds,
  pad_token_id: tokenIds,
});

/** The fields tersor reads from a GPT-2 config.json. */
export const Gpt2ConfigSchema = z.looseObject({
  model_type: z.literal("gpt2"),
  vocab_size: posInt,
  n_embd: posInt,
  n_layer: posInt,
  n_head: posInt,
  n_positions: posInt,
  n_inner: posInt.nullish(),
  layer_norm_epsilon: z.number().positive().default(1e-5),
  activation_function: z.string().default("gelu_new"),
  tie_word_embeddings: z.boolean().default(true),
  scale_attn_weights: z.boolean().default(true),
  scale_attn_by_inverse_layer_idx: z.boolean().default(false),
  bos_token_id: tokenIds,
  eos_token_id: tokenIds,
  pad_token_id: tokenIds,
});

/** What a config.json describes: the architecture, the runtime config and the special token ids it names. */
export interface ModelSpec {
  architecture: ModelArchitecture;
  transformer: TransformerConfig;
  /** `bos_token_id`, when the config names one. */
  bosTokenId?: number;
  /** `eos_token_id` (one or several). */
  eosTokenIds: number[];
  padTokenId?: number;
}

function unsupported(where: string, what: string): never {
  throw new TersorError("E_FORMAT", `${where}: ${what} is not supported`);
}

function firstId(v: number | number[] | null | undefined): number | undefined {
  return Array.isArray(v) ? v[0] : (v ?? undefined);
}
function idList(v: number | number[] | null | undefined): number[] {
  return Array.isArray(v) ? [...v] : v === null || v === undefined ? [] : [v];
}

/** HF `hidden_act` / `activation_function` → the runtime's activation. */
function activation(name: string, where: string): TransformerConfig["activation"] {
  switch (name) {
    case "silu":
    case "swish":
      return "silu";
    case "gelu_new":
    case "gelu_pytorch_tanh":
    case "gelu_fast":
      return "gelu_tanh";
    case "gelu":
      return "gelu";
    default:
      return unsupported(where, `activation "${name}" (supported: silu, gelu_new, gelu_pytorch_tanh, gelu)`);
  }
}

/** The model_type of a config.json: `model_type`, else the class named by `architectures[0]`. */
export function modelTypeOf(json: Record<string, unknown>): string | undefined {
  if (typeof json["model_type"] === "string") return json["model_type"];
  const arch = json["architectures"];
  if (Array.isArray(arch)) {
    for (const a of arch) if (typeof a === "string" && ARCHITECTURE_CLASSES[a]) return ARCHITECTURE_CLASSES[a];
    if (typeof arch[0] === "string") return arch[0];
  }
  return undefined;
}

function parseOrThrow<S extends z.ZodType>(schema: S, json: unknown, where: string): z.output<S> {
  const r = schema.safeParse(json);
  if (!r.success) throw new TersorError("E_FORMAT", `${where}: invalid config: ${z.prettifyError(r.error)}`);
  return r.data;
}

type RopeScaling = z.output<typeof RopeScalingSchema>;


function ropeOf(c: z.output<typeof LlamaLikeConfigSchema>, headDim: number, maxPositions: number, where: string): NonNullable<TransformerConfig["rope"]> {
  const params = c.rope_parameters ?? undefined;
  const theta = c.rope_theta ?? params?.rope_theta ?? 10000;
  const scaling: RopeScaling = c.rope_scaling ?? params ?? null;
  const rope: NonNullable<TransformerConfig["rope"]> = {
    theta,
    style: "neox",
    rotaryDim: headDim,
    scaling: "none",
    factor: 1,
    lowFreqFactor: 1,
    highFreqFactor: 1,
    originalMaxPosition: maxPositions,
  };
  if (!scaling) return rope;
  const type = scaling.rope_type ?? scaling.type ?? "default";
  if (type === "default") return rope;
  if (type === "linear") {
    if (scaling.factor === undefined) throw new TersorError("E_FORMAT", `${where}: rope_scaling of type linear needs a "factor"`);
    return { ...rope, scaling: "linear", factor: scaling.factor };
  }
  if (type === "llama3") {
    const { factor, low_freq_factor: lo, high_freq_factor: hi, original_max_position_embeddings: old } = scaling;
    if (factor === undefined || lo === undefined || hi === undefined || old === undefined) {
      throw new TersorError("E_FORMAT", `${where}: rope_scaling of type llama3 needs factor, low_freq_factor, high_freq_factor and original_max_position_embeddings`);
    }
    if (!(hi > lo)) throw new TersorError("E_FORMAT", `${where}: rope_scaling high_freq_factor (${hi}) must exceed low_freq_factor (${lo})`);
    return { ...rope, scaling: "llama3", factor, lowFreqFactor: lo, highFreqFactor: hi, originalMaxPosition: old };
  }
  return unsupported(where, `rope_scaling type "${type}" (supported: linear, llama3)`);
}

/** Default context length per model_type when config.json has no max_position_embeddings (HF's defaults). */
const DEFAULT_MAX_POSITIONS: Record<"llama" | "mistral" | "qwen2", number> = { llama: 2048, mistral: 131072, qwen2: 32768 };

/**
 * Maps a parsed config.json to the runtime config. `where` names the file in error messages.
 * Unsupported model types → `E_FORMAT` naming the type and listing the supported ones; invalid or
 * unsupported fields → `E_FORMAT` naming the field.
 */
export function parseHfConfig(json: unknown, where = "config.json"): ModelSpec {
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw new TersorError("E_FORMAT", `${where}: must be a JSON object`);
  const obj = json as Record<string, unknown>;
  const type = modelTypeOf(obj);
  if (type === undefined || !(SUPPORTED_MODEL_TYPES as readonly string[]).includes(type)) {
    const arch = Array.isArray(obj["architectures"]) ? ` (architectures: ${(obj["architectures"] as unknown[]).map(String).join(", ")})` : "";
    const named = type === undefined ? `names no model_type or known architecture${arch}` : `model_type "${type}"${arch} is not supported`;
    throw new TersorError("E_FORMAT", `${where}: ${named}; supported model types: ${SUPPORTED_MODEL_TYPES.join(", ")}`);
  }
  const withType = { ...obj, model_type: type };
  if (type === "gpt2") {
    const c = parseOrThrow(Gpt2ConfigSchema, withType, where);
    if (c.n_embd % c.n_head !== 0) throw new TersorError("E_FORMAT", `${where}: n_embd ${c.n_embd} is not divisible by n_head ${c.n_head}`);
    if (!c.scale_attn_weights) unsupported(where, "scale_attn_weights = false");
    if (c.scale_attn_by_inverse_layer_idx) unsupported(where, "scale_attn_by_inverse_layer_idx = true");
    const transformer: TransformerConfig = {
      norm: "layernorm",
      normEps: c.layer_norm_epsilon,
      vocabSize: c.vocab_size,
      hidden: c.n_embd,
      intermediate: c.n_inner ?? 4 * c.n_embd,
      layers: c.n_layer,
      heads: c.n_head,
      kvHeads: c.n_head,
      headDim: c.n_embd / c.n_head,
      activation: activation(c.activation_function, where),
      gatedMlp: false,
      qkvBias: true,
      outBias: true,
      tieEmbeddings: c.tie_word_embeddings,
      learnedPositions: true,
      maxPositions: c.n_positions,
      slidingWindow: 0,
    };
    const spec: ModelSpec = { architecture: "gpt2", transformer, eosTokenIds: idList(c.eos_token_id) };
    const bos = firstId(c.bos_token_id);
    const pad = firstId(c.pad_token_id);
    if (bos !== undefined) spec.bosTokenId = bos;
    if (pad !== undefined) spec.padTokenId = pad;
    return spec;
  }
  const c = parseOrThrow(LlamaLikeConfigSchema, withType, where);
  const arch = c.model_type;
  const heads = c.num_attention_heads;
  const kvHeads = c.num_key_value_heads ?? heads;
  if (heads % kvHeads !== 0) throw new TersorError("E_FORMAT", `${where}: num_attention_heads ${heads} is not a multiple of num_key_value_heads ${kvHeads}`);
  if (c.head_dim == null && c.hidden_size % heads !== 0) {
    throw new TersorError("E_FORMAT", `${where}: hidden_size ${c.hidden_size} is not divisible by num_attention_heads ${heads} (and no head_dim is given)`);
  }
  const headDim = c.head_dim ?? c.hidden_size / heads;
  if (headDim % 2 !== 0) throw new TersorError("E_FORMAT", `${where}: head_dim ${headDim} must be even for rotary embeddings`);
  if (c.mlp_bias) unsupported(where, "mlp_bias = true");
  const maxPositions = c.max_position_embeddings ?? DEFAULT_MAX_POSITIONS[arch];
  let slidingWindow = 0;
  if (arch === "mistral") slidingWindow = c.sliding_window ?? 0;
  else if (arch === "qwen2" && c.use_sliding_window === true && c.sliding_window) {
    const from = c.max_window_layers ?? 0;
    if (from === 0) slidingWindow = c.sliding_window;
    else if (from < c.num_hidden_layers) unsupported(where, `sliding-window attention on only some layers (max_window_layers ${from} of ${c.num_hidden_layers})`);
  }
  const transformer: TransformerConfig = {
    norm: "rmsnorm",
    normEps: c.rms_norm_eps,
    vocabSize: c.vocab_size,
    hidden: c.hidden_size,
    intermediate: c.intermediate_size,
    layers: c.num_hidden_layers,
    heads,
    kvHeads,
    headDim,
    activation: activation(c.hidden_act, where),
    gatedMlp: true,
    qkvBias: arch === "qwen2" || c.attention_bias,
    outBias: false,
    tieEmbeddings: c.tie_word_embeddings,
    learnedPositions: false,
    maxPositions,
    rope: ropeOf(c, headDim, maxPositions, where),
    slidingWindow,
  };
  const spec: ModelSpec = { architecture: arch, transformer, eosTokenIds: idList(c.eos_token_id) };
  const bos = firstId(c.bos_token_id);
  const pad = firstId(c.pad_token_id);
  if (bos !== undefined) spec.bosTokenId = bos;
  if (pad !== undefined) spec.padTokenId = pad;
  return spec;
}
