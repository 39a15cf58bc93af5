/**
 * `@tersor/core`: tensors and dtypes, linear algebra over the native addon, model and data file
 * formats (safetensors, GGUF, JSONL, Parquet), atomic output, progress reporting and the seeded RNG.
 * @packageDocumentation
 */
export { TersorError, isTersorError, setNumThreads, type TersorErrorCode } from "@tersor/native";

export * from "./dtype.js";
export * from "./ggml.js";
export * from "./tensor.js";
export { Rng } from "./rng.js";
export { openAtomic, writeAtomic, writeFileAtomic, type AtomicWriter } from "./atomic.js";
export { pathExists } from "./paths.js";
export { progress, defaultProgressMode, type Progress, type ProgressMode, type ProgressOptions } from "./progress.js";
export * from "./matmul.js";
export * from "./linalg.js";
// linalg exports
export * from "./formats/index.js";
export { openGgufWriter, type GgufStreamWriter, type GgufTensorDecl } from "./formats/gguf-write.js";
