/** Bindings of native/napi/kv.cpp. Compressed caches are made by NativeTransformer.createCache(capacity, kv). */
export interface KvBinding {
  /** The cache methods the native compressor knows. */
  kvMethods(): string[];
  /** Whether this CPU runs the bf16 dot-product kernels that the bf16Dot option asks for (AVX-512 BF16). */
  kvBf16DotSupported(): boolean;
}

/**
 * Options of a compressed KV cache (native kv::KvConfig; validated again natively). @tersor/kv's
 * `KvOptionsSchema` documents and checks them.
 */
export interface NativeKvOptions {
  method: "fp16" | "kivi" | "kvquant" | "gear" | "zipcache" | "h2o" | "streaming" | "ems";
  bits?: number;
  lowBits?: number;
  group?: number;
  residual?: number;
  outliers?: number;
  rank?: number;
  powerIterations?: number;
  salient?: number;
  probes?: number;
  budget?: number;
  sinks?: number;
  globalWeight?: number;
  localWindow?: number;
  qNorm?: boolean;
  bf16Dot?: boolean;
  seed?: number;
}

/** Byte accounting of a compressed cache. */
export interface NativeKvStats {
  method: string;
  tokens: number;
  bytes: number;
  f16Bytes: number;
  ratio: number;
  codes: number;
  scales: number;
  outliers: number;
  lowRank: number;
  window: number;
  index: number;
}
