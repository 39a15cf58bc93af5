/**
 * `@tersor/kv`: KV-cache compression options (KIVI, KVQuant, GEAR, ZipCache quantization; H2O,
 * StreamingLLM and EMS eviction/merging), their exact byte accounting and memory planning. The
 * compressors themselves run natively (native/kv, see `tersor/kv.hpp`): a compressed cache is a
 * NativeKvCache made by `createCache(capacity, kv)`; `@tersor/model` takes `{ kv }` options.
 * @packageDocumentation
 */
import { TersorError } from "@tersor/core";
import { z } from "zod";

/** The cache methods. */
export const KV_METHODS = ["fp16", "kivi", "kvquant", "gear", "zipcache", "h2o", "streaming", "ems"] as const;
export type KvMethod = (typeof KV_METHODS)[number];

/** Options of a compressed cache (defaults filled by {@link parseKvOptions}). */
export const KvOptionsSchema = z
  .object({
    method: z.enum(KV_METHODS),
    /** Bits of the quantized entries (ZipCache: salient tokens), 1..8. */
    bits: z.number().int().min(1).max(8).default(4),
    /** ZipCache: bits of the other tokens, 1..bits. */
    lowBits: z.number().int().min(1).max(8).default(2),
    /** Tokens per compressed block (and channels per value group), multiple of 8 in 8..256. */
    group: z.number().int().min(8).max(256).multipleOf(8).default(32),
    /** Full-precision (f16) window of the most recent tokens. */
    residual: z.number().int().min(0).default(128),
    /** KVQuant / GEAR: fraction of entries kept exactly (sparse), [0, 0.5). Default 0.01 (KVQuant), 0.02 (GEAR). */
    outliers: z.number().min(0).lt(0.5).optional(),
    /** GEAR: rank of the low-rank residual term (0 = none), below group. */
    rank: z.number().int().min(0).default(4),
    powerIterations: z.number().int().min(1).max(64).default(3),
    /** ZipCache: fraction of salient tokens per block. */
    salient: z.number().min(0).max(1).default(0.4),
    /** ZipCache: probe queries per chunk. */
    probes: z.number().int().min(1).default(8),
    /** Eviction: in (0, 1) a fraction of the tokens seen, ≥ 1 a token count. */
    budget: z.number().positive().default(0.2),
    /** StreamingLLM / EMS attention sinks. */
    sinks: z.number().int().min(0).default(4),
    /** EMS: weight of the global score against the local one. */
    globalWeight: z.number().min(0).max(1).default(0.5),
    /** EMS: queries of the local score's window. */
    localWindow: z.number().int().min(1).default(16),
    /** KVQuant: Q-Norm of the centroids. */
    qNorm: z.boolean().default(true),
    /**
     * Decode attention over 4-bit blocks (KIVI, GEAR; head dimension a multiple of 64) with the
     * query and the probabilities rounded to bf16 in the dot products (AVX-512 BF16): faster per
     * query head, at a relative error below 2^-9 per product; the exact kernels where the CPU lacks
     * AVX-512 BF16. Off by default (the exact kernels match attention over the dequantized cache
     * within 1e-5).
     */
    bf16Dot: z.boolean().default(false),
    seed: z.number().int().min(0).default(0),
  })
  .strict()
  .superRefine((o, ctx) => {
    if (o.method === "zipcache" && o.lowBits > o.bits) ctx.addIssue({ code: "custom", path: ["lowBits"], message: `lowBits (${o.lowBits}) must not exceed bits (${o.bits})` });
    if (o.method === "gear" && o.rank >= o.group) ctx.addIssue({ code: "custom", path: ["rank"], message: `rank (${o.rank}) must be below group (${o.group})` });
    if (o.budget >= 1 && !Number.isInteger(o.budget)) ctx.addIssue({ code: "custom", path: ["budget"], message: "a budget ≥ 1 is a whole number of tokens" });
    if ((o.method === "streaming" || o.method === "ems") && o.budget >= 1 && o.budget <= o.sinks)
      ctx.addIssue({ code: "custom", path: ["budget"], message: `budget (${o.budget} tokens) must exceed sinks (${o.sinks})` });
  });

export type KvOptionsInput = z.input<typeof KvOptionsSchema>;
export type KvOptions = z.output<typeof KvOptionsSchema> & { outliers: number };

/** Validates kv options (E_RANGE naming the field) and fills the defaults. */
export function parseKvOptions(input: KvOptionsInput): KvOptions {
  const r = KvOptionsSchema.safeParse(input);
  if (!r.success) throw new TersorError("E_RANGE", `kv options: ${z.prettifyError(r.error)}`);
  return { ...r.data, outliers: r.data.outliers ?? (r.data.method === "gear" ? 0.02 : 0.01) };
}

/** Checks options against a context length: the residual window must fit in it, a token budget too. */
export function checkKvForContext(o: KvOptions, context: number): void {
  const quant = o.method === "kivi" || o.method === "kvquant" || o.method === "gear" || o.method === "zipcache";
  if (quant && o.residual > context) throw new TersorError("E_RANGE", `kv.residual (${o.residual} tokens) exceeds the context of ${context} tokens`);
}

/**
 * A method spec as the CLI writes it: `fp16`, `kivi:2`, `kvquant:3`, `gear:4`, `zipcache:4/2`,
 * `h2o:0.2`, `streaming:256`, `ems:0.3` (the number after the colon is bits, high/low bits, or the
 * eviction budget), optionally followed by `,key=value` overrides is not supported: use the object form.
 */
export function parseKvSpec(spec: string, base: Partial<KvOptionsInput> = {}): KvOptions {
  const m = /^([a-z0-9]+)(?::(.+))?$/.exec(spec.trim());
  if (!m) throw new TersorError("E_RANGE", `kv method spec '${spec}' is not of the form method[:arg]`);
  const method = m[1] === "f16" ? "fp16" : m[1]!;
  if (!(KV_METHODS as readonly string[]).includes(method)) throw new TersorError("E_RANGE", `kv method '${m[1]}' is not one of ${KV_METHODS.join(", ")}`);
  const arg = m[2];
  const o: Record<string, unknown> = { ...base, method };
  const num = (s: string) => {
    const v = Number(s);
    if (!Number.isFinite(v)) throw new TersorError("E_RANGE", `kv method spec '${spec}': '${s}' is not a number`);
    return v;
  };
  if (arg !== undefined) {
    if (method === "fp16") throw new TersorError("E_RANGE", `kv method spec '${spec}': fp16 takes no argument`);
    if (method === "zipcache") {
      const [hi, lo] = arg.split("/");
      o.bits = num(hi!);
      if (lo !== undefined) o.lowBits = num(lo);
    } else if (method === "h2o" || method === "streaming" || method === "ems") {
      o.budget = num(arg);
    } else {
      o.bits = num(arg);
    }
  }
  return parseKvOptions(o as KvOptionsInput);
}

/** A spec string for options (inverse of {@link parseKvSpec} for the main parameter). */
export function kvSpecName(o: KvOptions): string {
  switch (o.method) {
    case "fp16": return "fp16";
    case "zipcache": return `zipcache:${o.bits}/${o.lowBits}`;
    case "h2o": case "streaming": case "ems": return `${o.method}:${o.budget}`;
    default: return `${o.method}:${o.bits}`;
  }
}

/** What the memory accounting needs of a model. */
export interface KvModelShape {
  layers: number;
  kvHeads: number;
  headDim: number;
}

/** Bytes of an f16 cache per token: 2 (K, V) · layers · kvHeads · headDim · 2. */
export function f16BytesPerToken(s: KvModelShape): number {
  return 4 * s.layers * s.kvHeads * s.headDim;
}

/**
 * Exact bytes of a compressed cache holding `tokens` tokens, with the native accounting
 * (tersor/kv.hpp): per (layer, kv head), full blocks of `group` tokens are flushed while the window
 * holds ≥ residual + group tokens; codes ⌈bits·D/8⌉ per token and part; f16 scale+zero per
 * channel per block (keys, KIVI/GEAR/KVQuant) or per token and channel group (values), ZipCache a
 * scale+zero per token, channel scales for keys and a precision bitmap; outliers 6 B each
 * (round(outliers·group·D) per part and block); GEAR low-rank (group + D)·rank·2 B per part; the
 * window in f16 (ZipCache + 8 B of score accumulators per window token); KVQuant codebooks 2^bits·2·2 B per layer (once a block exists); eviction: the kept
 * tokens in f16 + 4 B position + 4 B per score accumulator.
 */
export function kvCacheBytes(s: KvModelShape, o: KvOptions, tokens: number): number {
  const D = s.headDim, heads = s.layers * s.kvHeads;
  if (!Number.isInteger(D / 8)) throw new TersorError("E_SHAPE", `compressed caches need headDim a multiple of 8, got ${D}`);
  const win = (n: number) => n * D * 2 * 2;
  switch (o.method) {
    case "fp16":
      return heads * win(tokens);
    case "h2o": case "streaming": case "ems": {
      const budget = o.budget < 1 ? Math.max(Math.ceil(o.budget * tokens), o.method === "h2o" ? 1 : o.sinks + 1) : Math.max(o.budget, o.method === "h2o" ? 1 : o.sinks + 1);
      const kept = Math.min(tokens, budget);
      const acc = o.method === "h2o" ? 1 : o.method === "ems" ? 3 : 0;
      return heads * kept * (D * 4 + 4 + 4 * acc);
    }
    default: {
      const G = o.group;
      if (G < D && D % G !== 0) throw new TersorError("E_RANGE", `kv.group (${G}) must divide headDim (${D}) when smaller`);
      const blocks = tokens >= o.residual + G ? Math.floor((tokens - o.residual) / G) : 0;
      const window = tokens - blocks * G;
      const cg = Math.min(G, D);
      const codes = (b: number) => Math.ceil((b * D) / 8);
      let block = 0;
      if (o.method === "zipcache") {
        const ns = Math.round(o.salient * G);
        const perPart = ns * codes(o.bits) + (G - ns) * codes(o.lowBits) + G * 2 * 2 + Math.ceil(G / 8);
        block = 2 * perPart + D * 2;
      } else {
        block = 2 * G * codes(o.bits) + D * 2 * 2 + G * (D / cg) * 2 * 2;
        if (o.method === "kvquant" || o.method === "gear") block += 2 * 6 * Math.round(o.outliers * G * D);
        if (o.method === "gear" && o.rank > 0) block += 2 * (G + D) * o.rank * 2;
      }
      const codebooks = o.method === "kvquant" && blocks > 0 ? s.layers * 2 * 2 ** o.bits * 2 : 0;
      // ZipCache keeps two score accumulators (f32) per window token for saliency
      const scores = o.method === "zipcache" ? window * 8 : 0;
      return heads * (blocks * block + win(window) + scores) + codebooks;
    }
  }
}

/** Parses a memory size: "80GB", "80 GiB", "512MB", or bytes. GB = 1e9, GiB = 2^30. */
export function parseMemory(s: string | number): number {
  if (typeof s === "number") return s;
  const m = /^\s*([0-9]+(?:\.[0-9]+)?)\s*([kKmMgGtT]i?[bB]?|[bB])?\s*$/.exec(s);
  if (!m) throw new TersorError("E_RANGE", `memory '${s}' is not a size such as 80GB or 24GiB`);
  const v = Number(m[1]);
  const u = (m[2] ?? "B").toUpperCase().replace(/B$/, "");
  const pow: Record<string, number> = { "": 1, K: 1e3, M: 1e6, G: 1e9, T: 1e12, KI: 2 ** 10, MI: 2 ** 20, GI: 2 ** 30, TI: 2 ** 40 };
  const f = pow[u];
  if (f === undefined) throw new TersorError("E_RANGE", `memory '${s}': unknown unit`);
  return v * f;
}

export interface KvPlan {
  method: string;
  context: number;
  /** Cache bytes at `context` tokens. */
  cacheBytes: number;
  /** cacheBytes / context. */
  bytesPerToken: number;
  f16BytesPerToken: number;
  /** f16 bytes / compressed bytes at `context`. */
  ratio: number;
  memory?: number;
  /** Whether the cache of `context` tokens fits in `memory`. */
  fits?: boolean;
  /** The longest context whose cache fits in `memory` (for eviction with a fixed budget: unbounded → Infinity). */
  maxContext?: number;
}

/** KV memory plan: bytes per token of a method at a context, and the longest context fitting `memory` bytes. */
export function planKv(shape: KvModelShape, o: KvOptions, context: number, memory?: number): KvPlan {
  if (!Number.isInteger(context) || context < 1) throw new TersorError("E_RANGE", `context must be a positive integer, got ${context}`);
  checkKvForContext(o, context);
  const cacheBytes = kvCacheBytes(shape, o, context);
  const plan: KvPlan = {
    method: kvSpecName(o),
    context,
    cacheBytes,
    bytesPerToken: cacheBytes / context,
    f16BytesPerToken: f16BytesPerToken(shape),
    ratio: (f16BytesPerToken(shape) * context) / cacheBytes,
  };
  if (memory !== undefined) {
    if (!(memory > 0)) throw new TersorError("E_RANGE", `memory must be positive, got ${memory}`);
    plan.memory = memory;
    plan.fits = cacheBytes <= memory;
    // bytes are non-decreasing in tokens: exponential then binary search
    if (kvCacheBytes(shape, o, 2 ** 52) <= memory) plan.maxContext = Infinity;
    else {
      let lo = 0, hi = 1;
      while (kvCacheBytes(shape, o, hi) <= memory) hi *= 2;
      while (hi - lo > 1) {
        const mid = Math.floor((lo + hi) / 2);
        if (kvCacheBytes(shape, o, mid) <= memory) lo = mid; else hi = mid;
      }
      plan.maxContext = lo;
    }
  }
  return plan;
}

/** Compression statistics of a native compressed cache (NativeKvCache.kvStats()). */
export interface KvStats {
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
