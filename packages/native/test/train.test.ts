import { describe, expect, it } from "vitest";

import { type NativeTrainable, type TrainTargets, type TransformerConfig, TersorError, native } from "../src/index.js";

const config: TransformerConfig = {
  norm: "rmsnorm",
  normEps: 1e-5,
  vocabSize: 17,
  hidden: 16,
  intermediate: 32,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  headDim: 4,
  activation: "silu",
  gatedMlp: true,
  qkvBias: false,
  outBias: false,
  tieEmbeddings: true,
  learnedPositions: false,
  maxPositions: 32,
  rope: { theta: 10000, style: "neox", rotaryDim: 0, scaling: "none", factor: 1, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPosition: 8192 },
  slidingWindow: 0,
};

const adam = { lr: 1e-2, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0, step: 1, maxGradNorm: 1 };

function batch(): { tokens: Int32Array; targets: Extract<TrainTargets, { kind: "hard" }> } {
  const tokens = new Int32Array(2 * 8);
  const ids = new Int32Array(2 * 8);
  for (let i = 0; i < tokens.length; i++) {
    tokens[i] = (i * 5 + 3) % config.vocabSize;
    ids[i] = (i * 7 + 1) % config.vocabSize;
  }
  return { tokens, targets: { kind: "hard", ids } };
}

function create(seed = 1): NativeTrainable {
  return new (native().TrainableTransformer)(config, { seed });
}

describe("native TrainableTransformer", () => {
  it("lays out its parameters in the inference runtime's names with views over them", () => {
    const m = create();
    const ps = m.parameters();
    expect(ps[0]).toMatchObject({ name: "embed", shape: [17, 16], offset: 0, size: 17 * 16, decay: false });
    const q = ps.find((p) => p.name === "layers.0.q.weight");
    expect(q).toMatchObject({ shape: [16, 16], decay: true });
    expect(ps.find((p) => p.name === "layers.1.mlpNorm.weight")?.decay).toBe(false);
    const total = ps.reduce((s, p) => s + p.size, 0);
    expect(m.parameterCount).toBe(total);
    const w = m.params();
    expect(w.length).toBe(total);
    expect(m.grads().length).toBe(total);
    // norms start at 1, and writes through the view reach the model
    const norm = ps.find((p) => p.name === "finalNorm.weight")!;
    expect(Array.from(w.subarray(norm.offset, norm.offset + norm.size))).toEqual(new Array(16).fill(1));
    // same seed -> same init; another seed -> another
    expect(Array.from(create(1).params())).toEqual(Array.from(w));
    expect(Array.from(create(2).params())).not.toEqual(Array.from(w));
  });

  it("steps, accumulates gradients and lowers the loss on a repeated batch with adamw", async () => {
    const m = create();
    const { tokens, targets } = batch();
    const first = await m.evaluate(tokens, 2, 8, targets);
    expect(first.count).toBe(16);
    expect(first.loss / 16).toBeCloseTo(Math.log(17), 1);
    let last = first.loss;
    for (let step = 1; step <= 30; step++) {
      m.zeroGrad();
      const l = await m.step(tokens, 2, 8, targets, { lossScale: 1 / 16 });
      expect(l.count).toBe(16);
      const r = m.adamw({ ...adam, step });
      expect(r.gradNorm).toBeGreaterThan(0);
      last = l.loss;
    }
    const after = await m.evaluate(tokens, 2, 8, targets);
    expect(after.loss).toBeLessThan(first.loss * 0.5);
    expect(last).toBeLessThan(first.loss);
    // forwardLogits + backwardLogits with the cross-entropy gradient equals step's gradient
    m.zeroGrad();
    await m.step(tokens, 2, 8, targets);
    const g = Float32Array.from(m.grads());
    m.zeroGrad();
    const logits = await m.forwardLogits(tokens, 2, 8);
    expect(logits.length).toBe(16 * 17);
    const d = new Float32Array(logits.length);
    for (let r = 0; r < 16; r++) {
      const row = logits.subarray(r * 17, (r + 1) * 17);
      const mx = Math.max(...row);
      let s = 0;
      for (const z of row) s += Math.exp(z - mx);
      for (let j = 0; j < 17; j++) d[r * 17 + j] = Math.exp(row[j]! - mx) / s - (j === targets.ids[r] ? 1 : 0);
    }
    await m.backwardLogits(d);
    const g2 = m.grads();
    let maxDiff = 0;
    let maxAbs = 0;
    for (let i = 0; i < g.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(g[i]! - g2[i]!));
      maxAbs = Math.max(maxAbs, Math.abs(g[i]!));
    }
    expect(maxDiff).toBeLessThan(1e-4 * maxAbs);
  });

  it("takes dense and sparse soft targets", async () => {
    const m = create();
    const { tokens, targets } = batch();
    const probs = new Float32Array(16 * 17);
    const sparseIds = new Int32Array(16 * 2).fill(-1);
    const weights = new Float32Array(16 * 2);
    for (let r = 0; r < 16; r++) {
      probs[r * 17 + targets.ids[r]!] = 1;
      sparseIds[r * 2] = targets.ids[r]!;
      weights[r * 2] = 1;
    }
    const hard = await m.evaluate(tokens, 2, 8, targets);
    const dense = await m.evaluate(tokens, 2, 8, { kind: "dense", probs });
    const sparse = await m.evaluate(tokens, 2, 8, { kind: "sparse", k: 2, ids: sparseIds, weights });
    expect(dense.loss).toBeCloseTo(hard.loss, 4);
    expect(sparse.loss).toBeCloseTo(hard.loss, 4);
    expect(dense.count).toBe(16);
  });

  it("rejects bad input with TersorError codes", async () => {
    const m = create();
    const { tokens, targets } = batch();
    await expect(m.step(tokens.subarray(1), 2, 8, targets)).rejects.toMatchObject({ code: "E_SHAPE" });
    await expect(m.step(tokens, 2, 8, { kind: "hard", ids: new Int32Array(3) })).rejects.toMatchObject({ code: "E_SHAPE" });
    await expect(m.evaluate(tokens, 2, 8, { kind: "dense", probs: new Float32Array(5) })).rejects.toMatchObject({ code: "E_SHAPE" });
    const bad = Int32Array.from(tokens);
    bad[3] = 99;
    await expect(m.step(bad, 2, 8, targets)).rejects.toMatchObject({ code: "E_RANGE" });
    await expect(m.step(tokens as unknown as Int32Array, 2, 8, { kind: "hard", ids: new Float32Array(16) as unknown as Int32Array })).rejects.toBeInstanceOf(TersorError);
    await expect(m.backwardLogits(new Float32Array(4))).rejects.toMatchObject({ code: "E_RANGE" });
    expect(() => m.adamw({ ...adam, beta1: 1 })).toThrow(TersorError);
    expect(() => new (native().TrainableTransformer)({ ...config, kvHeads: 3 })).toThrow(TersorError);
  });

  it("rejects a call while another is running on the same model", async () => {
    const m = create();
    const { tokens, targets } = batch();
    const first = m.step(tokens, 2, 8, targets);
    await expect(m.step(tokens, 2, 8, targets)).rejects.toMatchObject({ code: "E_RANGE" });
    await expect(m.forwardLogits(tokens, 2, 8)).rejects.toMatchObject({ code: "E_RANGE" });
    expect(() => m.zeroGrad()).toThrow(/busy/);
    expect(() => m.adamw(adam)).toThrow(/busy/);
    await expect(first).resolves.toMatchObject({ count: 16 });
    // free again once settled
    await expect(m.evaluate(tokens, 2, 8, targets)).resolves.toMatchObject({ count: 16 });
  });
});
