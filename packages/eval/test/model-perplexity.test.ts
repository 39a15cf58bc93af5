/** @tersor/eval's perplexity over a real @tersor/model model (eval depends on model, not the reverse). */
import { asScorer, loadModel } from "@tersor/model";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { evaluatePerplexity } from "../src/index.js";
import { runtimeOpts, tempDir, writeArch } from "../../model/test/helpers.js";

const tmp = tempDir("eval-ppl");
afterAll(() => tmp.cleanup());
let model: Awaited<ReturnType<typeof loadModel>>;
beforeAll(async () => {
  writeArch(`${tmp.dir}/qwen2`, "qwen2", { seed: 11 });
  model = await loadModel(`${tmp.dir}/qwen2`, runtimeOpts());
});

describe("perplexity of a model", () => {
  it("a random byte-level model has about log2(vocab) bits per byte; rolling and strided windows agree in scale", async () => {
    const docs = [
      { text: "It is a way I have of driving off the spleen and regulating the circulation.", domain: "moby" },
      { text: "Whenever I find myself growing grim about the mouth.", domain: "moby" },
    ];
    const r = await evaluatePerplexity(asScorer(model), docs, { window: 32, progress: "silent" });
    expect(r.totals.tokens).toBe(docs.reduce((s, d) => s + Buffer.byteLength(d.text), 0));
    expect(r.bits_per_byte).toBeGreaterThan(Math.log2(300) - 1);
    expect(r.bits_per_byte).toBeLessThan(Math.log2(300) + 1);
    const strided = await evaluatePerplexity(model.scorer(), docs, { window: 32, stride: 16, progress: "silent" });
    expect(Math.abs(strided.bits_per_byte - r.bits_per_byte)).toBeLessThan(0.5);
  });
});
