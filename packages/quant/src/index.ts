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
