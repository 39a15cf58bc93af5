/**
 * `@tersor/distill`: fused KD losses, sparse teacher-logit caches, student training, dataset condensation, vocabulary trimming.
 * @packageDocumentation
 */
export { KdLossOptionsSchema, checkVocab, kdLoss, parseLossSpec, type KdLossOptions, type KdLossResult, type LossSpec } from "./losses.js";
export {
  TeacherCache,
  WriteCacheOptionsSchema,
  parseCacheMode,
  writeTeacherCache,
  type CacheDocuments,
  type CacheManifest,
  type CacheSlice,
  type CacheSummary,
  type CacheTeacher,
  type WriteCacheOptions,
} from "./cache.js";
export { CACHE_FORMAT_VERSION, type CacheCompression, type CacheMode } from "./cache-format.js";
export {
  DistillSpecSchema,
  byteStream,
  dataFingerprint,
  distillTrain,
  evaluateLm,
  studentConfig,
  type DistillSpec,
  type DistillTrainOptions,
  type LmEvaluation,
} from "./train.js";
export {
  condense,
  herdingCoreset,
  kmeansRepresentatives,
  medianHeuristic,
  mmd2,
  randomSubset,
  type CondenseMethod,
  type Embeddings,
} from "./condense.js";
export { chooseVocabulary, remapTokens, restrictLogits, sliceRows, tokenCounts, trimCheckpoint, type VocabTrim } from "./vocab.js";
