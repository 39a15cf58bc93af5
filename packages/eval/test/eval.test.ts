import { describe, expect, it } from "vitest";

import {
  type LanguageModelScorer,
  countWords,
  disjointWindow,
  emptyTotals,
  addDocument,
  evaluatePerplexity,
  perplexityMetrics,
  rollingTokenWindows,
  stridedWindows,
} from "../src/index.js";

const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);

describe("rolling windows (lm-evaluation-harness)", () => {
  it("reproduces get_rolling_token_windows on range(34), max_seq_len=10, context_len=1", () => {
    const w = [...rollingTokenWindows(range(0, 34), -100, 10, 1)];
    expect(w).toEqual([
      { context: [-100, ...range(0, 9)], continuation: range(0, 10) },
      { context: range(9, 19), continuation: range(10, 20) },
      { context: range(19, 29), continuation: range(20, 30) },
      { context: range(23, 33), continuation: [30, 31, 32, 33] },
    ]);
    expect(disjointWindow(w[3]!)).toEqual({ context: range(23, 30), continuation: [30, 31, 32, 33] });
    expect(disjointWindow(w[0]!)).toEqual({ context: [-100], continuation: range(0, 10) });
  });

  it("predicts every token exactly once, for any context length", () => {
    for (const ctx of [1, 2, 5, 10]) {
      const w = [...rollingTokenWindows(range(0, 57), -1, 10, ctx)];
      expect(w.flatMap((x) => x.continuation)).toEqual(range(0, 57));
      for (const x of w) expect(x.context.length).toBeLessThanOrEqual(10);
    }
    expect([...rollingTokenWindows([], -1, 10, 1)]).toEqual([]);
    expect(() => [...rollingTokenWindows([1], -1, 10, 11)]).toThrow(expect.objectContaining({ code: "E_RANGE" }));
  });

  it("strided windows score each token once with at least window − stride context", () => {
    const w = stridedWindows(100, 32, 8);
    const scored = w.flatMap((x) => range(x.scoreFrom, x.end));
    expect(scored).toEqual(range(1, 100));
    for (const x of w.slice(1)) expect(x.scoreFrom - x.begin).toBeGreaterThanOrEqual(32 - 8);
    expect(() => stridedWindows(10, 4, 5)).toThrow(expect.objectContaining({ code: "E_RANGE" }));
  });
});

describe("metrics", () => {
  it("counts words as Python's len(re.split(r'\\s+', doc))", () => {
    expect(countWords("a b  c")).toBe(3);
    expect(countWords(" a b")).toBe(3);
    expect(countWords("a b ")).toBe(3);
    expect(countWords("")).toBe(1);
    expect(countWords("a\x1cb")).toBe(2); // U+001C is whitespace to Python, not to JS's \s
    expect(countWords("a\ufeffb")).toBe(1); // and U+FEFF the other way round
  });

  it("has the harness's arithmetic: bits_per_byte = log2(byte_perplexity)", () => {
    const t = addDocument(emptyTotals(), "x".repeat(1234), -1000, 100);
    const m = perplexityMetrics(t);
    expect(m.bits_per_byte).toBeCloseTo(1.16912, 5);
    expect(m.bits_per_byte).toBeCloseTo(Math.log2(m.byte_perplexity), 12);
    expect(m.word_perplexity).toBeCloseTo(Math.exp(1000), -400);
    expect(m.token_perplexity).toBeCloseTo(Math.exp(10), 8);
    const u = addDocument(emptyTotals(), "héllo wörld", -20, 5);
    expect(u.bytes).toBe(13);
    expect(u.chars).toBe(11);
    expect(perplexityMetrics(u).bits_per_char).toBeCloseTo(20 / (11 * Math.LN2), 12);
    expect(() => addDocument(emptyTotals(), "a", Number.NaN, 1)).toThrow(expect.objectContaining({ code: "E_RANGE" }));
  });
});

/** A bigram model over bytes with known probabilities: p(b | a) = (1 + [b = (a+1) mod 256]·9) / (256 + 9). */
function bigramScorer(maxLength: number): LanguageModelScorer & { direct(text: string): number } {
  const logp = (a: number, b: number) => Math.log((1 + (b === (a + 1) % 256 ? 9 : 0)) / 265);
  return {
    prefixToken: 0,
    maxLength,
    encode: (text) => [...Buffer.from(text, "utf8")],
    async scoreWindows(windows) {
      return windows.map(({ context, continuation }) => {
        expect(context.length + continuation.length).toBeLessThanOrEqual(maxLength + 1);
        expect(context.length).toBeGreaterThan(0);
        let ll = 0;
        let prev = context[context.length - 1]!;
        for (const t of continuation) {
          ll += logp(prev, t);
          prev = t;
        }
        return ll;
      });
    },
    direct(text) {
      const ids = [0, ...Buffer.from(text, "utf8")];
      let ll = 0;
      for (let i = 1; i < ids.length; i++) ll += logp(ids[i - 1]!, ids[i]!);
      return ll;
    },
  };
}

describe("evaluatePerplexity", () => {
  const docs = [
    { text: "abcdefghijklmnopqrstuvwxyz abcdefghij", domain: "alpha" },
    { text: "The quick brown fox jumps over the lazy dog.", domain: "prose" },
    { text: "zyx", domain: "alpha" },
  ];

  it("gives the exact document likelihood of a bigram model with rolling and strided windows", async () => {
    const s = bigramScorer(8);
    const expected = docs.reduce((a, d) => a + s.direct(d.text), 0);
    const rolling = await evaluatePerplexity(s, docs, { progress: "silent" });
    expect(rolling.totals.loglikelihood).toBeCloseTo(expected, 9);
    const strided = await evaluatePerplexity(s, docs, { window: 8, stride: 3, progress: "silent" });
    expect(strided.totals.loglikelihood).toBeCloseTo(expected, 9);
    expect(rolling.bits_per_byte).toBeCloseTo(-expected / (rolling.totals.bytes * Math.LN2), 12);
    expect(Object.keys(rolling.domains)).toEqual(["alpha", "prose"]);
    expect(rolling.domains["alpha"]!.totals.documents).toBe(2);
  });

  it("rejects bad options", async () => {
    const s = bigramScorer(8);
    await expect(evaluatePerplexity(s, docs, { window: 16 })).rejects.toMatchObject({ code: "E_RANGE" });
    await expect(evaluatePerplexity(s, docs, { stride: 9 })).rejects.toMatchObject({ code: "E_RANGE" });
    await expect(evaluatePerplexity(s, [], {})).rejects.toMatchObject({ code: "E_RANGE" });
  });
});
