/**
 * `@tersor/quant`: ggml/GGUF block formats, NF4, FP8/FP4, RTN, GPTQ, AWQ, HQQ, Hadamard rotation, LoRD/LoRC/EoRA.
 * @packageDocumentation
 */
export {
  QuantizationConfigSchema,
  QuantizeOptionsSchema,
  SchemeSchema,
  bitsPerWeight,
  dequantizeTensor,
  dequantizeToTensor,
  parseScheme,
  quantMatmul,
  quantizeTensor,
  rowBytes,
  type QuantSchemeInfo,
  type QuantizationConfig,
  type QuantizeOptions,
} from "./formats.js";
export {
  GptqOptionsSchema,
  HqqOptionsSchema,
  awqSearch,
  difference,
  eora,
  gptq,
  hqq,
  lorc,
  lord,
  lowRankProduct,
  outputError,
  rtn,
  type GptqOptions,
  type HqqOptions,
  type LowRankFactors,
  type QuantizedWeight,
} from "./methods.js";
export {
  QuantizeModelOptionsSchema,
  quantizeModel,
  reportMarkdown,
  type LinearReport,
  type QuantizeModelOptions,
  type QuantizeModelReport,
} from "./driver.js";
export {
  RotationOptionsSchema,
  copyTokenizer,
  hadamardRotation,
  openRotatedCheckpoint,
  rotateModel,
  rotateOutputs,
  rotateRows,
  rotationMatrix,
  type HadamardRotation,
  type RotatedCheckpoint,
  type RotationOptions,
} from "./rotate.js";
export {
  GGUF_FILE_TYPES,
  GGUF_SCHEMES,
  GGUF_TOKEN_TYPE,
  GgufExportOptionsSchema,
  checkGgufScheme,
  exportGguf,
  ggufExportReport,
  isGgufScheme,
  llamaGgufMetadata,
  permuteRopeRows,
  type GgufExportOptions,
  type GgufExportReport,
  type GgufExportTensor,
  type GgufScheme,
} from "./gguf-export.js";
