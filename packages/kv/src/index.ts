/**
 * `@tersor/kv`: KIVI, KVQuant, GEAR, ZipCache quantization; H2O, StreamingLLM and merging; memory planning.
 * @packageDocumentation
 */
export {};
