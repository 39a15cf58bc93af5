import { Rng } from "@tersor/core";
import { corpus } from "@tersor/corpora";
import { describe, expect, it } from "vitest";

import { bigramEntropy, conditionalEntropy, domainEntropy, entropyMixture, gzipRatio, modelBitsPerByte, unigramEntropy } from "../src/index.js";

describe("BiMix entropy measures", () => {
  it("unigram, bigram and conditional entropies follow their definitions on a known sequence", () => {
    // "abab...": unigram H = 1 bit; pairs ab, ba equally often: H(X,Y) = 1; H(Y|X) = 0.
    const s = [Array.from("ababababababa")]; // 12 pairs: ab and ba 6 times each
    expect(unigramEntropy([Array.from("abababababab")])).toBeCloseTo(1, 12);
    expect(bigramEntropy(s)).toBeCloseTo(1, 12);
    expect(conditionalEntropy(s)).toBeCloseTo(0, 12);
    // "aabb" repeated: pairs aa, ab, bb, ba uniform -> H(X,Y) = 2, H(first) = 1, H(Y|X) = 1.
    const t = [Array.from("aabbaabbaabbaabba")];
    expect(bigramEntropy(t)).toBeCloseTo(2, 12);
    expect(conditionalEntropy(t)).toBeCloseTo(1, 12);
  });

  it("gzip ratio separates repetitive from varied text", () => {
    const rep = ["the cat sat on the mat. ".repeat(200)];
    const rng = new Rng(9);
    const varied = [Array.from({ length: 4800 }, () => String.fromCharCode(97 + rng.nextBelow(26))).join("")];
    expect(gzipRatio(rep)).toBeLessThan(0.1);
    expect(gzipRatio(varied)).toBeGreaterThan(0.55);
    expect(() => gzipRatio([""])).toThrow(expect.objectContaining({ code: "E_RANGE" }));
  });

  it("entropy-driven mixture on the bundled corpora is normalised and ordered by the measure", async () => {
    const texts: Record<string, string[]> = {};
    for (const name of ["wordnet", "moby"] as const) {
      const docs: string[] = [];
      for await (const d of corpus(name).docs({ split: "train" })) {
        docs.push(d.text);
        if (docs.join("").length > 60000) break;
      }
      texts[name] = docs;
    }
    for (const measure of ["unigram", "conditional", "gzip"] as const) {
      const m = await entropyMixture(texts, { measure });
      expect(m.weights.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
      expect(m.weights[0]! / m.weights[1]!).toBeCloseTo(m.entropies[0]! / m.entropies[1]!, 10);
    }
    const byModel = await entropyMixture(texts, { measure: "model", modelEntropy: (d) => (d === "moby" ? 3 : 1) });
    expect(byModel.weights).toEqual([0.25, 0.75]);
    await expect(domainEntropy("x", ["a"], { measure: "model" })).rejects.toThrow(/modelEntropy/);
    await expect(domainEntropy("x", [])).rejects.toThrow(/no texts/);
  });
});

describe("model-based entropy", () => {
  it("a uniform byte model scores exactly 8 bits per byte, over window boundaries", async () => {
    const calls: number[] = [];
    const scorer = {
      encode: (t: string) => Array.from(Buffer.from(t, "utf8")),
      prefixToken: 256,
      maxLength: 5,
      scoreWindows: async (ws: { context: number[]; continuation: number[] }[]) => {
        calls.push(ws.length);
        for (const w of ws) expect(w.context.length + w.continuation.length - 1).toBeLessThanOrEqual(5);
        return ws.map((w) => -w.continuation.length * Math.log(256));
      },
    };
    expect(await modelBitsPerByte(scorer, ["hello world", "é"])).toBeCloseTo(8, 12);
    expect(calls).toEqual([3, 1]); // 11 tokens in windows of 4; 2 bytes in one
    const m = await entropyMixture({ a: ["abc"], b: ["abcdef"] }, { measure: "model", modelEntropy: (_d, t) => modelBitsPerByte(scorer, t) });
    expect(m.weights).toEqual([0.5, 0.5]);
  });
});
