/** The Model API over the runtime: KV-cache decoding, generation, hidden states, capture, scoring. */
import type { ForwardOptions, ForwardResult, NativeCapture, NativeKvCache, NativeTransformer, TransformerConfig } from "@tersor/native";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { type Model, Model as ModelClass, argmax, asScorer, byteTokenizer, loadModel, logSoftmax } from "../src/index.js";
import { ARCHES, relError, runtimeOpts, tempDir, tokenSeq, writeArch } from "./helpers.js";
import { jsRuntime } from "./js-runtime.js";
import type { Weights } from "./reference.js";

const tmp = tempDir("api");
afterAll(() => tmp.cleanup());

const models = new Map<string, { model: Model; stored: Weights }>();
beforeAll(async () => {
  for (const arch of ARCHES) {
    const dir = `${tmp.dir}/${arch}`;
    const { stored } = writeArch(dir, arch, { seed: 11 });
    models.set(arch, { model: await loadModel(dir, runtimeOpts()), stored });
  }
});
const get = (arch: string) => models.get(arch)!;

describe.each(ARCHES)("%s", (arch) => {
  it("decoding with a KV cache gives the logits of a full recompute", async () => {
    const { model } = get(arch);
    const tokens = tokenSeq(12, 256, 5);
    const full = await model.forward(tokens);
    const V = model.vocabSize;
    const cache = model.runtime.createCache(tokens.length);
    const pre = 5;
    const first = await model.runtime.forward(Int32Array.from(tokens.slice(0, pre)), { cache, logits: "all" });
    expect(relError(first.logits!, full.data.subarray(0, pre * V))).toBeLessThan(1e-5);
    expect(cache.length).toBe(pre);
    for (let t = pre; t < tokens.length; t++) {
      const r = await model.runtime.forward(Int32Array.of(tokens[t]!), { cache, logits: "last" });
      expect(relError(r.logits!, full.data.subarray(t * V, (t + 1) * V))).toBeLessThan(1e-5);
    }
    expect(cache.length).toBe(tokens.length);
    // Rolling back and re-decoding gives the same logits again.
    cache.truncate(pre);
    const again = await model.runtime.forward(Int32Array.of(tokens[pre]!), { cache, logits: "last" });
    expect(relError(again.logits!, full.data.subarray(pre * V, (pre + 1) * V))).toBeLessThan(1e-5);
  });

  it("greedy generation equals the argmax of the full forward, step by step", async () => {
    const { model } = get(arch);
    const prompt = tokenSeq(4, 256, 9);
    const out: number[] = [];
    for await (const c of model.generate(prompt, { maxTokens: 10, temperature: 0, eosTokenIds: [] })) out.push(c.token);
    expect(out.length).toBe(10);
    const seq = [...prompt];
    for (const tok of out) {
      const logits = await model.forward(seq);
      const V = model.vocabSize;
      expect(tok).toBe(argmax(logits.data.subarray((seq.length - 1) * V)));
      seq.push(tok);
    }
  });

  it("sampling is deterministic under a seed", async () => {
    const { model } = get(arch);
    const run = async (seed: number, extra: object = {}) => (await model.generateText("Call me", { maxTokens: 12, temperature: 1.5, seed, eosTokenIds: [], ...extra })).tokens;
    const a = await run(42);
    expect(await run(42)).toEqual(a);
    const b = await run(43);
    expect(b).not.toEqual(a);
    const k = await run(7, { topK: 3, topP: 0.9 });
    expect(await run(7, { topK: 3, topP: 0.9 })).toEqual(k);
  });

  it("log-probabilities, window scores and the forward agree", async () => {
    const { model } = get(arch);
    const tokens = tokenSeq(9, 256, 13);
    const lp = await model.logprobs(tokens);
    expect(lp.length).toBe(tokens.length - 1);
    const logits = await model.forward(tokens);
    const V = model.vocabSize;
    for (let t = 0; t + 1 < tokens.length; t++) {
      const row = logSoftmax(logits.data.subarray(t * V, (t + 1) * V));
      expect(lp[t]).toBeCloseTo(row[tokens[t + 1]!]!, 5);
    }
    const [whole, tail] = await model.scoreWindows([
      { context: tokens.slice(0, 1), continuation: tokens.slice(1) },
      { context: tokens.slice(0, 4), continuation: tokens.slice(4) },
    ]);
    expect(whole).toBeCloseTo(lp.reduce((a, b) => a + b, 0), 4);
    expect(tail).toBeCloseTo(lp.slice(3).reduce((a, b) => a + b, 0), 4);
  });

  it("hidden states: layer 0 is the embedding, the last one (final-normed) times the head gives the logits, mean pooling averages", async () => {
    const { model, stored } = get(arch);
    const tokens = tokenSeq(7, 256, 17);
    const L = model.config.layers;
    const C = model.config.hidden;
    const V = model.vocabSize;
    const [h0, hL] = await model.hiddenStates(tokens, { layers: [0, L], pool: "none" });
    expect(h0!.shape).toEqual([tokens.length, C]);
    const gpt2 = arch === "gpt2";
    const emb = stored.get(gpt2 ? "transformer.wte.weight" : "model.embed_tokens.weight")!.data;
    const pos = gpt2 ? stored.get("transformer.wpe.weight")!.data : undefined;
    for (let t = 0; t < tokens.length; t++)
      for (let c = 0; c < C; c++) expect(h0!.data[t * C + c]).toBeCloseTo(emb[tokens[t]! * C + c]! + (pos ? pos[t * C + c]! : 0), 5);
    const head = model.config.tieEmbeddings ? emb : stored.get("lm_head.weight")!.data;
    const logits = await model.forward(tokens);
    const fromHidden = new Float64Array(tokens.length * V);
    for (let t = 0; t < tokens.length; t++)
      for (let v = 0; v < V; v++) {
        let s = 0;
        for (let c = 0; c < C; c++) s += hL!.data[t * C + c]! * head[v * C + c]!;
        fromHidden[t * V + v] = s;
      }
    expect(relError(logits.data, fromHidden)).toBeLessThan(1e-4);
    const [mean] = await model.hiddenStates(tokens);
    expect(mean!.shape).toEqual([C]);
    for (let c = 0; c < C; c++) {
      let s = 0;
      for (let t = 0; t < tokens.length; t++) s += hL!.data[t * C + c]!;
      expect(mean!.data[c]).toBeCloseTo(s / tokens.length, 5);
    }
    const [raw] = await model.hiddenStates(tokens, { pool: "none", finalNorm: false });
    expect(relError(raw!.data, hL!.data)).toBeGreaterThan(1e-3);
  });

  it("captures linear inputs: the Gram matrix is XᵀX of the raw rows, over several sequences", async () => {
    const { model } = get(arch);
    const seqs = [tokenSeq(5, 256, 1), tokenSeq(3, 256, 2)];
    const raw = await model.captureLinearInputs(seqs, { accumulate: "raw" });
    const gram = await model.captureLinearInputs(seqs, { accumulate: "gram" });
    const L = model.config.layers;
    const expected = [];
    for (let l = 0; l < L; l++) for (const p of model.config.gatedMlp ? ["q", "k", "v", "o", "gate", "up", "down"] : ["q", "k", "v", "o", "up", "down"]) expected.push(`layers.${l}.${p}`);
    expect([...raw.tensors.keys()].sort()).toEqual(expected.sort());
    expect([...gram.tensors.keys()].sort()).toEqual(expected.sort());
    for (const name of expected) {
      const X = raw.tensors.get(name)!;
      const G = gram.tensors.get(name)!;
      expect(raw.rows.get(name)).toBe(8);
      expect(gram.rows.get(name)).toBe(8);
      const [n, inF] = X.shape as [number, number];
      expect(n).toBe(8);
      expect(G.shape).toEqual([inF, inF]);
      const want = new Float64Array(inF * inF);
      for (let r = 0; r < n; r++) for (let i = 0; i < inF; i++) for (let j = 0; j < inF; j++) want[i * inF + j] += X.data[r * inF + i]! * X.data[r * inF + j]!;
      expect(relError(G.data, want)).toBeLessThan(1e-5);
    }
    const one = await model.captureLinearInputs(seqs[0]!, { layers: [L - 1] });
    expect([...one.tensors.keys()].every((k) => k.startsWith(`layers.${L - 1}.`))).toBe(true);
    expect(one.rows.get(`layers.${L - 1}.q`)).toBe(5);
  });
});

describe("the runtime against the TypeScript stand-in written from the contract", () => {
  it.each(ARCHES)("%s: captured linear inputs and intermediate hidden states agree", async (arch) => {
    const { model } = get(arch);
    const js = await loadModel(`${tmp.dir}/${arch}`, { createRuntime: jsRuntime });
    const tokens = tokenSeq(6, 256, 23);
    const a = await model.captureLinearInputs(tokens, { accumulate: "raw" });
    const b = await js.captureLinearInputs(tokens, { accumulate: "raw" });
    expect([...a.tensors.keys()].sort()).toEqual([...b.tensors.keys()].sort());
    for (const [name, t] of a.tensors) {
      expect(t.shape).toEqual(b.tensors.get(name)!.shape);
      expect(relError(t.data, b.tensors.get(name)!.data)).toBeLessThan(1e-4);
    }
    const layers = [0, 1, model.config.layers];
    const ha = await model.hiddenStates(tokens, { layers, pool: "none", finalNorm: false });
    const hb = await js.hiddenStates(tokens, { layers, pool: "none", finalNorm: false });
    for (let i = 0; i < layers.length; i++) expect(relError(ha[i]!.data, hb[i]!.data)).toBeLessThan(1e-4);
  });
});

describe("window lengths", () => {
  it.each(["gpt2", "llama"])("%s: a window may hold maxLength inputs plus its final target, not more", async (arch) => {
    const { model } = get(arch);
    const n = model.maxLength;
    const toks = tokenSeq(n + 2, 256, 29);
    const [ll] = await model.scoreWindows([{ context: toks.slice(0, 1), continuation: toks.slice(1, n + 1) }]);
    expect(ll).toBeLessThan(0);
    await expect(model.scoreWindows([{ context: toks.slice(0, 1), continuation: toks.slice(1, n + 2) }])).rejects.toMatchObject({ code: "E_RANGE" });
    await expect(model.forward(toks.slice(0, n + 1))).rejects.toMatchObject({ code: "E_RANGE" });
  });
});

describe("scorer", () => {
  it("model.scorer() has LanguageModelScorer's shape and scores windows as the sum of token log-probabilities", async () => {
    const { model } = get("qwen2");
    const scorer = model.scorer();
    expect(scorer.prefixToken).toBe(256);
    expect(scorer.maxLength).toBe(128);
    const ids = await scorer.encode("Call me Ishmael.");
    const [ll] = await scorer.scoreWindows([{ context: [256], continuation: ids }]);
    const lp = await model.logprobs([256, ...ids]);
    const sum = Array.from(lp).reduce((a, b) => a + b, 0);
    expect(relError([ll!], [sum])).toBeLessThan(1e-4);
  });
});

/**
 * A runtime whose next token follows a script: the logits put all mass on script[position].
 * Tests generation control (EOS, stop strings, lengths) without a model's randomness.
 */
class ScriptedRuntime implements NativeTransformer {
  constructor(
    readonly config: TransformerConfig,
    private readonly script: number[],
  ) {}
  setWeight(): void {}
  missingWeights(): string[] {
    return [];
  }
  parameterCount(): number {
    return 0;
  }
  createCache(capacity: number): NativeKvCache {
    return { length: 0, capacity, bytes: () => 0, truncate(n: number) { this.length = Math.min(this.length, n); }, clear() { this.length = 0; } };
  }
  createCapture(): NativeCapture {
    throw new Error("not scripted");
  }
  async forward(tokens: Int32Array, o: ForwardOptions = {}): Promise<ForwardResult> {
    const c = o.cache as { length: number } | undefined;
    const start = c ? c.length : 0;
    if (c) c.length += tokens.length;
    const V = this.config.vocabSize;
    const logits = new Float32Array(V);
    logits[this.script[start + tokens.length - 1] ?? 0] = 10;
    return { logits };
  }
  async scoreSequences(): Promise<{ logprob: Float64Array; count: Int32Array }> {
    throw new Error("not scripted");
  }
}

function scripted(continuation: string | number[], promptLen: number): Model {
  const tok = byteTokenizer();
  const cont = typeof continuation === "string" ? tok.encode(continuation) : continuation;
  const script = [...new Array<number>(promptLen - 1).fill(0), ...cont];
  const config = { vocabSize: 259, maxPositions: 1000, layers: 1, hidden: 4 } as TransformerConfig;
  return new ModelClass({
    runtime: new ScriptedRuntime(config, script),
    tokenizer: tok,
    architecture: "llama",
    source: { path: "(scripted)", format: "huggingface", metadata: {} },
    eosTokenIds: [257],
    finalNorm: { weight: new Float32Array(4) },
    warnings: [],
  });
}

describe("generation control", () => {
  it("ends at EOS, yielding it last", async () => {
    const m = scripted([...byteTokenizer().encode("ab"), 257, 99], 3);
    const chunks = [];
    for await (const c of m.generate("xyz", { maxTokens: 10 })) chunks.push(c);
    expect(chunks.map((c) => c.token)).toEqual([97, 98, 257]);
    expect(chunks.map((c) => c.text).join("")).toBe("ab");
    expect(chunks.at(-1)!.finishReason).toBe("eos");
  });

  it("ends at a stop string, which is not emitted, holding back text that may begin one", async () => {
    const m = scripted("Hello wor|d. END here", 3);
    const chunks = [];
    for await (const c of m.generate("xyz", { maxTokens: 50, stop: ["END", "|x"] })) chunks.push(c);
    expect(chunks.map((c) => c.text).join("")).toBe("Hello wor|d. ");
    expect(chunks.at(-1)!.finishReason).toBe("stop");
    // "|" could begin "|x": held back until "d" rules it out.
    const bar = chunks.findIndex((c) => c.token === "|".charCodeAt(0));
    expect(chunks[bar]!.text).toBe("");
    expect(chunks[bar + 1]!.text).toBe("|d");
  });

  it("stops after maxTokens and streams multi-byte characters whole", async () => {
    const m = scripted("日本語 text", 3);
    const chunks = [];
    for await (const c of m.generate("xyz", { maxTokens: 7 })) chunks.push(c);
    expect(chunks.length).toBe(7);
    expect(chunks.map((c) => c.text)).toEqual(["", "", "日", "", "", "本", "�"]);
    expect(chunks.at(-1)!.finishReason).toBe("length");
  });

  it("rejects bad options and out-of-range tokens", async () => {
    const m = scripted("a", 1);
    await expect(m.generate("x", { temperature: -1 }).next()).rejects.toMatchObject({ code: "E_RANGE" });
    await expect(m.generate("x", { topP: 0 }).next()).rejects.toMatchObject({ code: "E_RANGE" });
    await expect(m.generate([300]).next()).rejects.toMatchObject({ code: "E_RANGE" });
    await expect(m.forward([1.5])).rejects.toMatchObject({ code: "E_RANGE" });
  });
});
