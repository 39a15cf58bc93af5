/**
 * `@tersor/model`: causal language models in tersor's native runtime. Loads Hugging Face
 * checkpoints (Llama, Mistral, Qwen2, GPT-2; safetensors, sharded or not, f32/f16/bf16) and
 * llama.cpp GGUF files of the llama architecture, with their tokenizers; runs forward passes,
 * per-token log-probabilities, streamed generation with a KV cache, hidden-state embeddings and
 * linear-input capture for calibration; and scores text for @tersor/eval's perplexity (through a
 * structural `LanguageModelScorer`, so this package does not depend on @tersor/eval).
 * @packageDocumentation
 */
export {
  SUPPORTED_MODEL_TYPES,
  Gpt2ConfigSchema,
  LlamaLikeConfigSchema,
  RopeScalingSchema,
  modelTypeOf,
  parseHfConfig,
  type ModelArchitecture,
  type ModelSpec,
} from "./config.js";
export { loadModel, byteLevelGgufTokens, ggufLlamaConfig, isByteLevelGgufTokenizer, isByteLevelTokenizerJson, type LoadModelOptions } from "./load.js";
export {
  Model,
  asScorer,
  type GenerateChunk,
  type GenerateOptions,
  type KvScoringOptions,
  type HiddenStatesOptions,
  type LinearCapture,
  type ModelParts,
  type ModelScorer,
  type ModelSource,
  type Tokens,
} from "./model.js";
export { registerModelResolver, resolveModelPath, modelResolvers, type ModelResolver } from "./resolve.js";
export { argmax, checkSampling, logSoftmax, sampleToken, type SamplingOptions } from "./sampling.js";
export {
  BYTE_BOS,
  BYTE_EOS,
  BYTE_PAD,
  BYTE_VOCAB_SIZE,
  ByteTokenizer,
  HfTokenizer,
  StreamDecoder,
  byteTokenizer,
  byteTokenizerConfigJson,
  byteTokenizerJson,
  loadTokenizer,
  saveByteTokenizer,
  type Tokenizer,
} from "./tokenizer.js";
export {
  asLoaded,
  ggufLlamaPlan,
  ggufSource,
  hfPlan,
  loadWeights,
  safetensorsSource,
  transpose2d,
  type LoadWeightsResult,
  type LoadedTensor,
  type PlanEntry,
  type QuantizedCheckpoint,
  type TensorSource,
  type WeightDType,
  type WeightSink,
} from "./weights.js";
export * from "./train/index.js";
