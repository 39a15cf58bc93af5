import { Rng, Tensor, TersorError, setNumThreads } from "@tersor/core";
import { native } from "@tersor/native";
import { beforeAll, describe, expect, it } from "vitest";

import { type NeuralMiOptions, neuralMutualInformation } from "../src/index.js";

// Small critics on a busy machine: one thread keeps timings steady (results do not depend on it).
beforeAll(() => {
  setNumThreads(1);
});

/** n samples of d independent pairs (x_k, y_k) with correlation rho: I = −(d/2) log(1 − ρ²) nats. */
function gaussian(n: number, rho: number, seed: number, d = 1): { x: Tensor<"f32">; y: Tensor<"f32">; truth: number } {
  const r = new Rng(seed);
  const x = new Float32Array(n * d);
  const y = new Float32Array(n * d);
  for (let i = 0; i < n * d; i++) {
    const a = r.nextNormal();
    x[i] = a;
    y[i] = rho * a + Math.sqrt(1 - rho * rho) * r.nextNormal();
  }
  return { x: new Tensor("f32", [n, d], x), y: new Tensor("f32", [n, d], y), truth: -0.5 * d * Math.log(1 - rho * rho) };
}

const variance = (a: number[]) => {
  const m = a.reduce((s, v) => s + v, 0) / a.length;
  return a.reduce((s, v) => s + (v - m) ** 2, 0) / (a.length - 1);
};

const small: NeuralMiOptions = { hidden: [64, 64], steps: 300, learningRate: 1e-3 };

describe("neural MI bounds", () => {
  it("MINE and SMILE estimate a ρ = 0.9 Gaussian (0.830366 nats) within 15%", async () => {
    const { x, y, truth } = gaussian(4000, 0.9, 1);
    expect(truth).toBeCloseTo(0.830366, 6);
    const mine = await neuralMutualInformation(x, y, { ...small, estimator: "mine", batchSize: 128, seed: 1 });
    const smile = await neuralMutualInformation(x, y, { ...small, estimator: "smile", batchSize: 64, seed: 1 });
    console.log(`ρ = 0.9 (truth ${truth.toFixed(4)}): MINE ${mine.estimate.toFixed(4)}, SMILE ${smile.estimate.toFixed(4)}`);
    expect(Math.abs(mine.estimate - truth) / truth).toBeLessThan(0.15);
    expect(Math.abs(smile.estimate - truth) / truth).toBeLessThan(0.15);
    expect(mine.history).toHaveLength(300);
    expect(mine.bits).toBeCloseTo(mine.estimate / Math.LN2, 12);
    expect(smile.batchEstimates).toHaveLength(Math.floor(4000 / 64));
    expect(smile.criticParameters).toBe(2 * 64 + 64 + 64 * 64 + 64 + 64 + 1);
  });

  it("SMILE's per-batch estimates vary less than MINE's at high MI (ρ = 0.99, three seeds)", async () => {
    const mineVar: number[] = [];
    const smileVar: number[] = [];
    for (const seed of [1, 2, 3]) {
      const { x, y } = gaussian(3000, 0.99, 10 + seed);
      const o = { ...small, batchSize: 64, seed };
      const m = await neuralMutualInformation(x, y, { ...o, estimator: "mine" });
      const s = await neuralMutualInformation(x, y, { ...o, estimator: "smile" });
      // The bound on each of the last 100 training batches, once the critic has settled.
      mineVar.push(variance(m.history.slice(-100)));
      smileVar.push(variance(s.history.slice(-100)));
    }
    const mv = mineVar.reduce((a, b) => a + b) / 3;
    const sv = smileVar.reduce((a, b) => a + b) / 3;
    console.log(`ρ = 0.99: mean per-batch variance MINE ${mv.toFixed(4)}, SMILE ${sv.toFixed(4)}`);
    expect(sv).toBeLessThan(mv);
  });

  it("InfoNCE never exceeds log(batch size) and saturates near it at high MI", async () => {
    const { x, y, truth } = gaussian(2048, 0.99, 5, 4); // I ≈ 7.8 nats ≫ log 32 ≈ 3.47
    const r = await neuralMutualInformation(x, y, { ...small, estimator: "infonce", batchSize: 32, seed: 2 });
    console.log(`InfoNCE, truth ${truth.toFixed(3)}, batch 32: ${r.estimate.toFixed(4)} ≤ log 32 = ${Math.log(32).toFixed(4)}`);
    expect(r.logBatchSize).toBeCloseTo(Math.log(32), 12);
    expect(r.estimate).toBeLessThanOrEqual(Math.log(32));
    for (const b of r.batchEstimates) expect(b).toBeLessThanOrEqual(Math.log(32) + 1e-9);
    for (const h of r.history) expect(h).toBeLessThanOrEqual(Math.log(32) + 1e-5);
    expect(r.estimate).toBeGreaterThan(0.8 * Math.log(32));
    expect(r.saturated).toBe(true);
  });

  it("NWJ and a separable critic give sensible estimates; independent samples give about 0", async () => {
    const { x, y, truth } = gaussian(3000, 0.9, 3);
    const nwj = await neuralMutualInformation(x, y, { ...small, estimator: "nwj", batchSize: 128, seed: 4 });
    expect(Math.abs(nwj.estimate - truth) / truth).toBeLessThan(0.25);
    const sep = await neuralMutualInformation(x, y, { estimator: "smile", critic: "separable", hidden: [32], embedDim: 16, batchSize: 64, steps: 300, learningRate: 2e-3, seed: 4 });
    expect(Math.abs(sep.estimate - truth) / truth).toBeLessThan(0.2);
    const ind = gaussian(3000, 0, 8);
    const zero = await neuralMutualInformation(ind.x, ind.y, { ...small, estimator: "mine", batchSize: 128, seed: 4, holdout: 0.3 });
    expect(zero.evalSamples).toBe(900);
    expect(Math.abs(zero.estimate)).toBeLessThan(0.08);
  });

  it("is deterministic for a seed and accepts number rows as input", async () => {
    const { x, y } = gaussian(400, 0.8, 6);
    const rows = (t: Tensor<"f32">) => Array.from(t.data, (v) => [v]);
    const o: NeuralMiOptions = { estimator: "mine", steps: 50, batchSize: 64, seed: 9, hidden: [16] };
    const a = await neuralMutualInformation(x, y, o);
    const b = await neuralMutualInformation(rows(x), rows(y), o);
    expect(b.estimate).toBe(a.estimate);
    const c = await neuralMutualInformation(x, y, { ...o, seed: 10 });
    expect(c.estimate).not.toBe(a.estimate);
  });

  it("rejects bad inputs with TersorError codes", async () => {
    const { x, y } = gaussian(100, 0.5, 1);
    await expect(neuralMutualInformation(x, [1, 2, 3])).rejects.toMatchObject({ code: "E_SHAPE" });
    const bad = Float32Array.from(y.data);
    bad[7] = Number.NaN;
    await expect(neuralMutualInformation(x, bad)).rejects.toMatchObject({ code: "E_RANGE" });
    await expect(neuralMutualInformation(x, y, { estimator: "dv" as never })).rejects.toMatchObject({ code: "E_RANGE" });
    await expect(neuralMutualInformation(x, y, { batchSize: 1 })).rejects.toMatchObject({ code: "E_RANGE" });
    await expect(neuralMutualInformation(x, y, { clip: 0 })).rejects.toMatchObject({ code: "E_RANGE" });
    await expect(neuralMutualInformation(x, y, { holdout: 1 })).rejects.toMatchObject({ code: "E_RANGE" });
    await expect(neuralMutualInformation(x, y, { learningRate: -1 })).rejects.toBeInstanceOf(TersorError);
  });
});

describe("the generic MLP binding", () => {
  it("forward, backward and Adam steps from JavaScript", async () => {
    const b = native();
    const spec = { sizes: [2, 3, 1], activation: "tanh" as const };
    const p = b.mlpInit(spec.sizes, 5);
    expect(p.length).toBe(2 * 3 + 3 + 3 + 1);
    expect(Array.from(b.mlpInit(spec.sizes, 5))).toEqual(Array.from(p));
    const x = Float32Array.from([0.5, -1, 2, 0.25]);
    const y = await b.mlpForward(p, spec, x, 2);
    // By hand: tanh(x W0 + b0) W1 + b1, biases zero after init.
    for (let r = 0; r < 2; r++) {
      let out = 0;
      for (let j = 0; j < 3; j++) out += Math.tanh(x[2 * r]! * p[j]! + x[2 * r + 1]! * p[3 + j]!) * p[9 + j]!;
      expect(y[r]).toBeCloseTo(out, 5);
    }
    const g = await b.mlpBackward(p, spec, x, 2, Float32Array.from([1, 1]));
    expect(Array.from(g.output)).toEqual(Array.from(y));
    // d(Σ out)/d b1 = rows = 2.
    expect(g.gradParams[12]).toBeCloseTo(2, 6);
    expect(g.gradInput).toHaveLength(4);
    const m = new Float32Array(p.length);
    const v = new Float32Array(p.length);
    const before = Float32Array.from(p);
    b.adamStep(p, g.gradParams, m, v, 1, { lr: 0.01 });
    // First step: lr · g / (|g| + eps) ≈ lr · sign(g).
    expect(p[12]).toBeCloseTo(before[12]! - 0.01, 6);
    expect(() => b.adamStep(p, g.gradParams, m, v, 0)).toThrow(TersorError);
    await expect(b.mlpForward(p, { sizes: [2, 4, 1] }, x, 2)).rejects.toMatchObject({ code: "E_SHAPE" });
    await expect(b.mlpForward(p, { ...spec, activation: "gelu" as never }, x, 2)).rejects.toMatchObject({ code: "E_RANGE" });
  });
});
