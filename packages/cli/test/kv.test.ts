/** `tersor kv plan | eval` and compressed caches on the bundled reference model ref-small. */
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { corpus } from "@tersor/corpora";
import { evaluatePerplexity } from "@tersor/eval";
import { type Model, loadModel } from "@tersor/model";
import { referenceModelPath } from "@tersor/models";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { BIN, type CliResult, runCli } from "./helpers/run-cli.js";

const tersor = (...args: string[]): Promise<CliResult> => runCli(args, { silent: true });

let dir: string;
const REF = referenceModelPath("ref-small");
let model: Model | undefined;
let docs: { text: string }[] = [];
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "tersor-cli-kv-"));
  // LLaMA-7B (Touvron et al. 2023): 32 layers, 32 heads of 128, hidden 4096, no GQA.
  await writeFile(join(dir, "llama7b.json"), JSON.stringify({ model_type: "llama", num_hidden_layers: 32, num_attention_heads: 32, hidden_size: 4096, intermediate_size: 11008, vocab_size: 32000 }));
  if (REF) {
    model = await loadModel(REF);
    let bytes = 0;
    for await (const d of corpus("moby").docs({ split: "test" })) {
      const t = d.text.slice(0, 1200);
      docs.push({ text: t });
      bytes += t.length;
      if (bytes >= 2400) break;
    }
  }
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("tersor kv plan", () => {
  it("reproduces the LLaMA-7B KV arithmetic", async () => {
    if (!existsSync(BIN)) throw new Error(`${BIN} is missing: build first`);
    const f16 = await tersor("kv", "plan", "--model", join(dir, "llama7b.json"), "--context", "1048576", "--method", "fp16", "--memory", "80GB", "--json");
    expect(f16.code).toBe(0);
    const p16 = JSON.parse(f16.stdout);
    expect(p16.f16BytesPerToken).toBe(2 * 32 * 4096 * 2); // 512 KiB per token
    expect(p16.cacheBytes).toBe(2 ** 39); // 1M tokens: 512 GiB
    expect(p16.fits).toBe(false);
    const q3 = JSON.parse((await tersor("kv", "plan", "--model", join(dir, "llama7b.json"), "--context", "1048576", "--method", "kvquant:3", "--group", "128", "--memory", "80GB", "--json")).stdout);
    // 3 bits + 1% outliers (48 bits each) + f16 scale/zero per 128 values ≈ 3.73 bits per element
    expect(q3.bytesPerToken / (2 * 32 * 4096)).toBeGreaterThan(3.7 / 8);
    expect(q3.bytesPerToken / (2 * 32 * 4096)).toBeLessThan(3.76 / 8);
    expect(q3.ratio).toBeGreaterThan(4.2);
    expect(q3.maxContext * q3.bytesPerToken).toBeLessThanOrEqual(80e9 * 1.0001);
    const text = await tersor("kv", "plan", "--model", join(dir, "llama7b.json"), "--context", "1000000", "--method", "kvquant:2", "--memory", "80GB");
    expect(text.stdout).toMatch(/longest context\s+\d+ tokens/);
    const bad = await tersor("kv", "plan", "--model", join(dir, "llama7b.json"), "--context", "1000", "--method", "kivi:9");
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/bits/);
    const bad2 = await tersor("kv", "plan", "--model", join(dir, "llama7b.json"), "--context", "100", "--method", "kivi:2");
    expect(bad2.stderr).toMatch(/residual \(128 tokens\) exceeds the context of 100 tokens/);
  });
});

describe.skipIf(!REF)("compressed caches on ref-small", () => {
  const bpb = async (kv?: Parameters<Model["scorer"]>[0]) => (await evaluatePerplexity(model!.scorer(kv), docs, { window: 256, progress: "silent" })).bits_per_byte;
  it("4-bit KIVI and KVQuant-3 change test bits per byte by less than 2%; 8-bit logits stay close", async () => {
    const m = model!;
    const base = await bpb();
    const kivi4 = await bpb({ kv: { method: "kivi", bits: 4, group: 32, residual: 32 } });
    const kvq3 = await bpb({ kv: { method: "kvquant", bits: 3, group: 32, residual: 32 } });
    expect(Math.abs(kivi4 - base) / base).toBeLessThan(0.02);
    expect(Math.abs(kvq3 - base) / base).toBeLessThan(0.02);
    // 8-bit cache: per-token log-probabilities within a tight tolerance of the exact ones
    const ids = m.encode(docs[0]!.text).slice(0, 200);
    const exact = await m.logprobs(ids);
    const k8 = await m.logprobs(ids, { kv: { method: "kivi", bits: 8, group: 32, residual: 16 }, chunk: 8 });
    const f16 = await m.logprobs(ids, { kv: { method: "fp16" }, chunk: 8 });
    let d8 = 0, d16 = 0;
    for (let i = 0; i < exact.length; i++) {
      d8 = Math.max(d8, Math.abs(k8[i]! - exact[i]!));
      d16 = Math.max(d16, Math.abs(f16[i]! - exact[i]!));
    }
    // (f16 rounding of K/V alone moves a log-probability by a few 1e-3 nats)
    expect(d16).toBeLessThan(1e-2);
    expect(d8).toBeLessThan(3e-2);
  });
  it("eviction degrades monotonically with the budget", async () => {
    const one = [docs[0]!];
    const at = async (kv: Parameters<Model["scorer"]>[0]) => (await evaluatePerplexity(model!.scorer(kv), one, { window: 256, progress: "silent" })).bits_per_byte;
    // budgets of 12 and 48 tokens, and 256 (the whole window: nothing evicted)
    const r = [];
    for (const budget of [12, 48, 256]) r.push(await at({ kv: { method: "h2o", budget }, chunk: 16 }));
    const s = [];
    for (const budget of [12, 48, 256]) s.push(await at({ kv: { method: "streaming", budget, sinks: 4 }, chunk: 16 }));
    // ref-small uses little long-range context: budgets of 48 and 256 tokens differ by ~0.03%
    // either way, so monotonicity is checked up to 0.1%; the smallest budget is clearly worst.
    const tol = 1e-3;
    for (const x of [r, s]) {
      expect(x[0]! * (1 + tol)).toBeGreaterThanOrEqual(x[1]!);
      expect(x[1]! * (1 + tol)).toBeGreaterThanOrEqual(x[2]!);
      expect(x[0]! - x[2]!).toBeGreaterThan(2 * tol * x[2]!);
    }
  });
  it("generate with a compressed cache; cache bytes and ratio", async () => {
    const m = model!;
    const plain = await m.generateText("Call me Ishmael.", { maxTokens: 24 });
    const f16 = await m.generateText("Call me Ishmael.", { maxTokens: 24, kv: { method: "fp16" } });
    expect(f16.tokens).toEqual(plain.tokens);
    const k2 = await m.generateText("Call me Ishmael.", { maxTokens: 24, kv: { method: "kivi", bits: 2, group: 32, residual: 8 } });
    expect(k2.tokens.length).toBeGreaterThan(0);
    const cache = m.createKvCache(128, { method: "kivi", bits: 2, group: 32, residual: 32 });
    await m.runtime.forward(Int32Array.from(m.encode(docs[0]!.text).slice(0, 100)), { cache, logits: "none" });
    const st = cache.kvStats()!;
    expect(st.ratio).toBeGreaterThan(1.5);
    expect(cache.bytes()).toBe(st.bytes);
    expect(() => m.createKvCache(64, { method: "kivi", bits: 2, residual: 128 })).toThrow(/residual/);
    expect(() => m.createKvCache(64, { method: "h2o", budget: 0 })).toThrow(/budget/);
  });
  it("tersor kv eval prints JSON for every method", async () => {
    const r = await tersor("kv", "eval", REF!, "--methods", "fp16,kivi:4,h2o:0.5", "--context", "128", "--max-docs", "1", "--max-bytes", "600", "--json");
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.methods.map((x: { method: string }) => x.method)).toEqual(["fp16", "kivi:4", "h2o:0.5"]);
    for (const x of j.methods) {
      expect(x.bitsPerByte).toBeGreaterThan(0);
      expect(x.decodeTokensPerSecond).toBeGreaterThan(0);
    }
    expect(j.methods[0].ratio).toBe(1);
  });
});
