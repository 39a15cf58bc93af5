/**
 * `@tersor/quant`: ggml/GGUF block formats, NF4, FP8/FP4, RTN, GPTQ, AWQ, HQQ, Hadamard rotation, LoRD/LoRC/EoRA.
 * @packageDocumentation
 */
export {};
