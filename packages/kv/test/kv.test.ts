/** @tersor/kv: options, spec strings, exact byte accounting (vs the native cache), the memory planner. */
import { native } from "@tersor/native";
import type { NativeTransformer } from "@tersor/native";
import { describe, expect, it } from "vitest";

import { type KvModelShape, f16BytesPerToken, kvCacheBytes, parseKvOptions, parseKvSpec, parseMemory, planKv } from "../src/index.js";

/** A random Llama-style runtime (2 layers, GQA 4:2, head_dim 16). */
function runtime(seed = 1): NativeTransformer {
  const nat = native();
  const cfg = {
    norm: "rmsnorm" as const, normEps: 1e-5, vocabSize: 50, hidden: 32, intermediate: 64, layers: 2, heads: 4, kvHeads: 2,
    headDim: 16, activation: "silu" as const, gatedMlp: true, qkvBias: false, outBias: false, tieEmbeddings: true,
    learnedPositions: false, maxPositions: 512,
    rope: { theta: 10000, style: "neox" as const, rotaryDim: 16, scaling: "none" as const, factor: 1, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPosition: 8192 },
    slidingWindow: 0,
  };
  const t = nat.createTransformer(cfg);
  let s = seed >>> 0;
  const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32 - 0.5) * 0.5;
  for (const name of t.missingWeights()) {
    const shape = name === "embed" ? [50, 32] : name.endsWith("Norm.weight") ? [32] : name.endsWith(".q.weight") ? [64, 32] : name.endsWith(".k.weight") || name.endsWith(".v.weight") ? [32, 32] : name.endsWith(".o.weight") ? [32, 64] : name.endsWith(".down.weight") ? [32, 64] : [64, 32];
    const n = shape.reduce((a, b) => a * b, 1);
    const data = Float32Array.from({ length: n }, () => (name.endsWith("Norm.weight") ? 1 : rnd()));
    t.setWeight(name, data, "f32", shape);
  }
  return t;
}

const small: KvModelShape = { layers: 2, kvHeads: 2, headDim: 16 };

describe("kv options", () => {
  it("parses method specs with defaults", () => {
    expect(parseKvSpec("kivi:2")).toMatchObject({ method: "kivi", bits: 2, group: 32, residual: 128 });
    expect(parseKvSpec("zipcache:4/2")).toMatchObject({ method: "zipcache", bits: 4, lowBits: 2 });
    expect(parseKvSpec("h2o:0.2")).toMatchObject({ method: "h2o", budget: 0.2 });
    expect(parseKvSpec("streaming:256")).toMatchObject({ method: "streaming", budget: 256 });
    expect(parseKvSpec("kvquant:3").outliers).toBe(0.01);
    expect(parseKvSpec("gear:4").outliers).toBe(0.02);
    expect(parseKvSpec("fp16").method).toBe("fp16");
  });
  it("rejects bad configurations with clear errors", () => {
    expect(() => parseKvSpec("kivi:9")).toThrow(/bits/);
    expect(() => parseKvSpec("kivi:0")).toThrow(/bits/);
    expect(() => parseKvSpec("h2o:0")).toThrow(/budget/);
    expect(() => parseKvSpec("h2o:-3")).toThrow(/budget/);
    expect(() => parseKvSpec("streaming:4")).toThrow(/sinks/);
    expect(() => parseKvSpec("nope:1")).toThrow(/not one of/);
    expect(() => parseKvOptions({ method: "kivi", group: 12 })).toThrow(/group/);
    expect(() => planKv(small, parseKvSpec("kivi:2"), 64)).toThrow(/residual \(128 tokens\) exceeds the context of 64/);
    expect(() => planKv({ layers: 1, kvHeads: 1, headDim: 64 }, parseKvSpec("kivi:2", { group: 24 }), 1024)).toThrow(/group \(24\) must divide headDim \(64\)/);
    const t = runtime();
    expect(() => t.createCache(64, { method: "kivi", residual: 100 })).toThrow(/residual/);
    expect(() => t.createCache(64, { method: "kivi", bits: 9 })).toThrow(/bits/);
    expect(() => t.createCache(64, { method: "h2o", budget: 0 })).toThrow(/budget must be positive/);
    expect(parseKvSpec("kivi:4").bf16Dot).toBe(false);
    expect(() => parseKvOptions({ method: "kivi", bf16Dot: "yes" as unknown as boolean })).toThrow(/bf16Dot/);
    expect(() => t.createCache(64, { method: "kivi", bf16Dot: 1 as unknown as boolean })).toThrow(/bf16Dot must be a boolean/);
    expect(typeof native().kvBf16DotSupported()).toBe("boolean");
  });
});

describe("byte accounting", () => {
  it("the closed form equals the native cache's bytes for every method", async () => {
    const t = runtime(3);
    const tokens = Int32Array.from({ length: 150 }, (_, i) => (i * 7) % 50);
    for (const spec of ["fp16", "kivi:2", "kivi:4", "kvquant:3", "gear:4", "zipcache:4/2", "h2o:40", "streaming:64", "ems:48"]) {
      const o = parseKvSpec(spec, { residual: 32, group: 16 });
      const cache = t.createCache(200, o);
      for (let i = 0; i < tokens.length; i += 10) await t.forward(tokens.subarray(i, i + 10), { cache, logits: "none" });
      const st = cache.kvStats()!;
      expect(st.tokens).toBe(150);
      expect(st.f16Bytes).toBe(150 * f16BytesPerToken(small));
      if (spec !== "ems:48") expect([spec, cache.bytes()]).toEqual([spec, kvCacheBytes(small, o, 150)]);
      else expect(cache.bytes()).toBeLessThanOrEqual(kvCacheBytes(small, o, 150));
      expect(st.ratio).toBeCloseTo(st.f16Bytes / st.bytes, 10);
    }
    expect(t.createCache(10).kvStats()).toBeNull();
  });
  it("hand count: KIVI 2-bit, D 16, group 16, residual 0, 40 tokens", () => {
    const o = parseKvOptions({ method: "kivi", bits: 2, group: 16, residual: 0 });
    // per (layer, head): 2 blocks of 16 tokens: codes 2 * 16 * 4 B; key scale+zero 16 ch * 4 B; value scale+zero 16 tok * 4 B
    const block = 2 * 16 * 4 + 16 * 4 + 16 * 4;
    const window = 8 * 16 * 2 * 2;
    expect(kvCacheBytes(small, o, 40)).toBe(4 * (2 * block + window));
  });
});

describe("memory planner", () => {
  // LLaMA-7B: 32 layers, 32 heads (no GQA), head_dim 128.
  const llama7b: KvModelShape = { layers: 32, kvHeads: 32, headDim: 128 };
  it("reproduces the f16 arithmetic: 512 KiB per token, 1M tokens = 512 GiB", () => {
    expect(f16BytesPerToken(llama7b)).toBe(2 * 32 * 4096 * 2);
    const p = planKv(llama7b, parseKvSpec("fp16"), 2 ** 20, parseMemory("80GB"));
    expect(p.cacheBytes).toBe(2 ** 39);
    expect(p.fits).toBe(false);
    expect(p.maxContext).toBe(Math.floor(80e9 / 2 ** 19));
  });
  it("KVQuant at 1M tokens: bits per element from the accounting, longest context in 80 GB", () => {
    for (const bits of [2, 3, 4]) {
      const o = parseKvSpec(`kvquant:${bits}`, { group: 128, residual: 128 });
      const p = planKv(llama7b, o, 2 ** 20, parseMemory("80GB"));
      // bits per cached element: b + outliers (1% of 48 bits) + scales (key: 32 bits per channel per 128 tokens; value: 32 per token-group of 128)
      const perElement = bits + 0.01 * 48 + 32 / 128 / 2 + 32 / 128 / 2;
      // (the window of 128 f16 tokens, round(1% of a block) outliers and the codebooks add < 0.2%)
      expect(Math.abs(p.bytesPerToken / ((2 * 32 * 4096 * perElement) / 8) - 1)).toBeLessThan(2e-3);
      expect(Math.abs(p.ratio / (16 / perElement) - 1)).toBeLessThan(2e-3);
      expect(p.fits).toBe(p.cacheBytes <= 80e9);
      expect(p.maxContext! * p.bytesPerToken).toBeLessThanOrEqual(80e9 * 1.0001);
    }
    // 2-bit with the KVQuant paper's outlier budget: 1M tokens need 2.73 bits/element = 89.6 GB.
    const two = planKv(llama7b, parseKvSpec("kvquant:2", { group: 128 }), 2 ** 20, 80e9);
    expect(two.cacheBytes / 1e9).toBeGreaterThan(80);
    // without outliers 2-bit KVQuant fits 1M tokens in one 80 GB accelerator; 3-bit does not
    const twoDense = planKv(llama7b, parseKvOptions({ method: "kvquant", bits: 2, group: 128, outliers: 0 }), 2 ** 20, 80e9);
    expect(twoDense.fits).toBe(true);
    const threeDense = planKv(llama7b, parseKvOptions({ method: "kvquant", bits: 3, group: 128, outliers: 0 }), 2 ** 20, 80e9);
    expect(threeDense.fits).toBe(false);
    expect(threeDense.maxContext).toBeGreaterThan(700_000);
  });
  it("parses memory sizes", () => {
    expect(parseMemory("80GB")).toBe(80e9);
    expect(parseMemory("24GiB")).toBe(24 * 2 ** 30);
    expect(() => parseMemory("lots")).toThrow(/memory/);
  });
});
