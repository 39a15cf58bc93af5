/** Model and data file formats: safetensors, GGUF, JSON Lines, Parquet. */
export {
  SAFETENSORS_INDEX_FILE,
  SAFETENSORS_MAX_HEADER_BYTES,
  dtypeToSafetensors,
  isSafetensorsDType,
  openSafetensors,
  openSafetensorsDir,
  safetensorsToDType,
  writeSafetensors,
  type NamedTensors,
  type SafetensorsDType,
  type SafetensorsDir,
  type SafetensorsFile,
  type SafetensorsSource,
  type SafetensorsTensorInfo,
} from "./safetensors.js";
export {
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAX_VALUE_BYTES,
  GGUF_READ_CHUNK,
  GGUF_VALUE_TYPES,
  GgufMetadata,
  ggufValueTypeId,
  openGguf,
  writeGguf,
  type GgufArray,
  type GgufArrayInput,
  type GgufArrayValues,
  type GgufEntry,
  type GgufFile,
  type GgufTensorInfo,
  type GgufValue,
  type GgufValueType,
  type GgufWriteInput,
} from "./gguf.js";
export {
  readJsonl,
  writeJsonl,
  type BadLinePolicy,
  type JsonlReader,
  type JsonlStats,
  type ReadJsonlOptions,
  type WriteJsonlOptions,
} from "./jsonl.js";
export {
  parquetMetadata,
  readParquet,
  type ParquetColumnInfo,
  type ParquetInfo,
  type ParquetRowGroupInfo,
  type ReadParquetOptions,
} from "./parquet.js";
export { writeParquet, WriteParquetOptionsSchema, type ParquetColumnSpec, type WriteParquetOptions } from "./parquet-write.js";
export { encodeNpy, parseNpy, parseNpyHeader, readNpy, type NpyDType, type NpyHeader } from "./npy.js";
