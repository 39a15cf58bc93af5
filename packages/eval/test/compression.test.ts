import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { Rng, Tensor, TersorError, writeSafetensors } from "@tersor/core";
import { type Model, loadModel, saveByteTokenizer } from "@tersor/model";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import {
  type EvalDocument,
  type LanguageModelScorer,
  type LogitsModel,
  compressionIdentifiedExemplars,
  compressionStudy,
  entropyGap,
  evaluatePerplexity,
  fitCompressionToScores,
  linearFit,
} from "../src/index.js";

/** A tiny Llama-shaped model with the byte tokenizer, written as a Hugging Face directory. */
async function writeTinyLlama(dir: string, seed: number): Promise<void> {
  const cfg = {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    vocab_size: 259,
    hidden_size: 32,
    intermediate_size: 64,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    max_position_embeddings: 64,
    tie_word_embeddings: true,
    bos_token_id: 256,
    eos_token_id: 257,
  };
  const rng = new Rng(seed);
  const C = cfg.hidden_size;
  const F = cfg.intermediate_size;
  const kv = (cfg.num_key_value_heads * C) / cfg.num_attention_heads;
  const t: [string, Tensor][] = [];
  const mat = (name: string, r: number, c: number, std = 0.15) => t.push([name, new Tensor("f32", [r, c], rng.fillNormal(new Float32Array(r * c), 0, std))]);
  const ones = (name: string) => t.push([name, new Tensor("f32", [C], new Float32Array(C).fill(1))]);
  mat("model.embed_tokens.weight", cfg.vocab_size, C, 0.5);
  for (let l = 0; l < cfg.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    ones(p + "input_layernorm.weight");
    mat(p + "self_attn.q_proj.weight", C, C);
    mat(p + "self_attn.k_proj.weight", kv, C);
    mat(p + "self_attn.v_proj.weight", kv, C);
    mat(p + "self_attn.o_proj.weight", C, C);
    ones(p + "post_attention_layernorm.weight");
    mat(p + "mlp.gate_proj.weight", F, C);
    mat(p + "mlp.up_proj.weight", F, C);
    mat(p + "mlp.down_proj.weight", C, F);
  }
  ones("model.norm.weight");
  await writeFile(join(dir, "config.json"), JSON.stringify(cfg));
  await writeSafetensors(join(dir, "model.safetensors"), t, { format: "pt" });
  await saveByteTokenizer(dir);
}

let dir: string;
let model: Model;
let compressed: Model;
const DOCS: EvalDocument[] = [
  { text: "The quick brown fox jumps over the lazy dog.", domain: "a" },
  { text: "Compression represents intelligence linearly, they say; bits per character fall as scores rise. ".repeat(2), domain: "a" },
  { text: "", domain: "b" },
  { text: "Ünïcödé text: naïve café, 東京, and emoji 🙂 take more bytes than characters.", domain: "b" },
  { text: "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", domain: "b" },
];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "tersor-compression-"));
  await writeTinyLlama(dir, 3);
  model = await loadModel(dir, { progress: "silent" });
  compressed = await loadModel(dir, { progress: "silent", dtype: "bf16" });
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A scorer over UTF-8 bytes in which every token has log-probability `lp` (`lpOf` per document overrides). */
function constantScorer(lp: number, lpOf?: (text: string) => number): LanguageModelScorer {
  return {
    encode: (text) => Array.from(Buffer.from(text, "utf8")),
    prefixToken: 256,
    maxLength: 16,
    scoreWindows: async (ws) =>
      ws.map((w) => {
        const rate = lpOf ? lpOf(w.continuation.map((b) => String.fromCharCode(b)).join("")) : lp;
        return rate * w.continuation.length;
      }),
  };
}

describe("linear fit", () => {
  it("recovers slope, intercept and r of exact and noisy lines", () => {
    const x = [0.6, 0.7, 0.8, 0.9, 1.1];
    const exact = linearFit(x, x.map((v) => 80 - 12.5 * v));
    expect(exact.slope).toBeCloseTo(-12.5, 10);
    expect(exact.intercept).toBeCloseTo(80, 10);
    expect(exact.r).toBeCloseTo(-1, 12);
    expect(exact.residualStd).toBeCloseTo(0, 10);
    const rng = new Rng(4);
    const xs = Array.from({ length: 200 }, () => rng.nextF64() * 2);
    const ys = xs.map((v) => 3 * v - 1 + 0.1 * rng.nextNormal());
    const f = linearFit(xs, ys);
    expect(f.slope).toBeCloseTo(3, 1);
    expect(f.intercept).toBeCloseTo(-1, 1);
    // Pearson's r from its definition with the sample statistics.
    const m = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;
    const mx = m(xs);
    const my = m(ys);
    const cov = xs.reduce((s, v, i) => s + (v - mx) * (ys[i]! - my), 0);
    const r = cov / Math.sqrt(xs.reduce((s, v) => s + (v - mx) ** 2, 0) * ys.reduce((s, v) => s + (v - my) ** 2, 0));
    expect(f.r).toBeCloseTo(r, 12);
    expect(f.r).toBeGreaterThan(0.99);
    expect(f.r2).toBeCloseTo(r * r, 12);
  });

  it("rejects bad inputs", () => {
    expect(() => linearFit([1, 2], [1])).toThrow(expect.objectContaining({ code: "E_SHAPE" }));
    expect(() => linearFit([1], [1])).toThrow(expect.objectContaining({ code: "E_RANGE" }));
    expect(() => linearFit([1, 1, 1], [1, 2, 3])).toThrow(expect.objectContaining({ code: "E_RANGE" }));
    expect(() => linearFit([1, Number.NaN], [1, 2])).toThrow(TersorError);
    expect(() => fitCompressionToScores([{ name: "a", bits_per_char: 1, bits_per_byte: 1, score: 3 }])).toThrow(expect.objectContaining({ code: "E_RANGE" }));
  });
});

describe("compression vs benchmark scores", () => {
  it("measures BPC of several models on the same documents and fits scores against it", async () => {
    const docs = [{ text: "abcdefghij".repeat(5) }, { text: "hello world, hello tersor" }];
    const models = [1.0, 1.5, 2.0, 2.5].map((a, i) => ({ name: `m${i}`, model: constantScorer(-a) }));
    const scores: Record<string, number> = {};
    // ASCII: tokens = bytes = characters, so BPC = a / ln 2; scores on an exact line.
    [1.0, 1.5, 2.0, 2.5].forEach((a, i) => (scores[`m${i}`] = 70 - 10 * (a / Math.LN2)));
    const study = await compressionStudy(models, docs, { scores, window: 16 });
    study.models.forEach((m, i) => expect(m.bits_per_char).toBeCloseTo([1.0, 1.5, 2.0, 2.5][i]! / Math.LN2, 10));
    expect(study.fit!.metric).toBe("bits_per_char");
    expect(study.fit!.slope).toBeCloseTo(-10, 8);
    expect(study.fit!.intercept).toBeCloseTo(70, 8);
    expect(study.fit!.r).toBeCloseTo(-1, 10);
    await expect(compressionStudy(models, docs, { scores: { nope: 1 } })).rejects.toMatchObject({ code: "E_RANGE" });
    const one = await compressionStudy(models.slice(0, 1), docs, { window: 16 });
    expect(one.fit).toBeUndefined();
  });

  it("works on real models: the bf16-rounded model's BPC is close to the f32 model's", async () => {
    const study = await compressionStudy(
      [
        { name: "f32", model },
        { name: "bf16", model: compressed },
      ],
      DOCS,
      { scores: { f32: 50, bf16: 49 }, window: 64 },
    );
    expect(study.models[0]!.bits_per_char).toBeGreaterThan(0);
    expect(Math.abs(study.models[1]!.bits_per_byte - study.models[0]!.bits_per_byte)).toBeLessThan(0.05 * study.models[0]!.bits_per_byte);
    expect(study.fit!.n).toBe(2);
  });
});

describe("log-perplexity minus entropy", () => {
  it("is exact on a model with known distributions", async () => {
    // Every position predicts p = [0.7, 0.1, 0.1, 0.1]; the text is token 0, then token 1 every time.
    const logits = [Math.log(0.7), Math.log(0.1), Math.log(0.1), Math.log(0.1)];
    const toy: LogitsModel = {
      encode: (text: string) => Array.from(text, (c) => (c === "a" ? 0 : 1)),
      prefixToken: 3,
      maxLength: 4,
      vocabSize: 4,
      forward: async (tokens) => new Tensor("f32", [tokens.length, 4], Float32Array.from({ length: tokens.length * 4 }, (_, i) => logits[i % 4]!)),
    };
    const r = await entropyGap(toy, [{ text: "abbbbbbbbb" }], { window: 4 });
    const H = -(0.7 * Math.log(0.7) + 3 * 0.1 * Math.log(0.1));
    const nll = (-Math.log(0.7) - 9 * Math.log(0.1)) / 10;
    expect(r.tokens).toBe(10);
    expect(r.meanEntropy).toBeCloseTo(H, 6);
    expect(r.meanNll).toBeCloseTo(nll, 6);
    expect(r.gap).toBeCloseTo(nll - H, 6);
    expect(r.gapBits).toBeCloseTo((nll - H) / Math.LN2, 6);
    await expect(entropyGap(toy, [{ text: "" }], { window: 4 })).rejects.toMatchObject({ code: "E_RANGE" });
    await expect(entropyGap(toy, [{ text: "ab" }], { window: 5 })).rejects.toMatchObject({ code: "E_RANGE" });
  });

  it("on a real model, the mean NLL equals perplexity evaluation's and the entropy is at most log V", async () => {
    const docs = DOCS.filter((d) => d.text.length > 0);
    const r = await entropyGap(model, docs, { window: 32 });
    const ppl = await evaluatePerplexity(model.scorer(), docs, { window: 32, progress: "silent" });
    expect(r.tokens).toBe(ppl.totals.tokens);
    expect(r.meanNll).toBeCloseTo(-ppl.totals.loglikelihood / ppl.totals.tokens, 4);
    expect(r.meanEntropy).toBeGreaterThan(0);
    expect(r.meanEntropy).toBeLessThanOrEqual(Math.log(259) + 1e-9);
  });
});

describe("Compression-Identified Exemplars", () => {
  it("ranks documents by the compressed model's per-byte loss increase", async () => {
    const original = constantScorer(-1);
    // The "compressed" model is worse on text containing "z", better on text containing "q".
    const worse = constantScorer(-1, (t) => (t.includes("z") ? -3 : t.includes("q") ? -0.5 : -1));
    const docs = [{ text: "plain words" }, { text: "zebra zone" }, { text: "" }, { text: "quiet quay" }, { text: "fizz" }];
    const r = await compressionIdentifiedExemplars(original, worse, docs, { k: 2, window: 16 });
    expect(r.documents).toBe(4);
    expect(r.top.map((e) => e.index)).toEqual([1, 4]);
    const bytes = 10;
    expect(r.top[0]!.score).toBeCloseTo(((-1 * bytes) - (-3 * bytes)) / (bytes * Math.LN2), 10);
    expect(r.top[0]!.bpbCompressed - r.top[0]!.bpbOriginal).toBeCloseTo(r.top[0]!.score, 12);
    const abs = await compressionIdentifiedExemplars(original, worse, docs, { k: 3, window: 16, rank: "absolute" });
    expect(abs.top.map((e) => e.index)).toEqual([1, 4, 3]);
    expect(abs.top[2]!.score).toBeLessThan(0);
    await expect(compressionIdentifiedExemplars(original, worse, docs, { k: 0 })).rejects.toMatchObject({ code: "E_RANGE" });
  });

  it("finds the documents a bf16-rounded model scores most differently", async () => {
    const r = await compressionIdentifiedExemplars(model, compressed, DOCS, { k: 3, window: 64 });
    expect(r.documents).toBe(4);
    expect(r.top).toHaveLength(3);
    for (let i = 1; i < r.top.length; i++) expect(r.top[i - 1]!.score).toBeGreaterThanOrEqual(r.top[i]!.score);
    for (const e of r.top) {
      expect(e.score).toBeCloseTo(e.bpbCompressed - e.bpbOriginal, 12);
      expect(Math.abs(e.score)).toBeLessThan(0.1);
      expect(e.domain).toBeDefined();
    }
  });
});
