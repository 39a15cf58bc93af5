import { Rng } from "@tersor/core";
import { describe, expect, it } from "vitest";

import {
  alignMixture,
  checkMixture,
  checkSimplex,
  entropyOfCounts,
  epochsPerDomain,
  generateMixtures,
  logGamma,
  normalize,
  proportionalMixture,
  sampleDirichlet,
  temperatureMixture,
  uniformMixture,
} from "../src/index.js";

describe("mixture representation", () => {
  it("accepts a simplex mixture and rejects bad ones with codes", () => {
    expect(checkMixture({ domains: ["a", "b"], weights: [0.25, 0.75], tokenBudget: 1000 }).weights).toEqual([0.25, 0.75]);
    expect(() => checkMixture({ domains: ["a", "b"], weights: [0.5, 0.6] })).toThrow(/simplex/);
    expect(() => checkMixture({ domains: ["a", "b"], weights: [1.5, -0.5] })).toThrow(/negative/);
    expect(() => checkMixture({ domains: ["a", "a"], weights: [0.5, 0.5] })).toThrow(/unique/);
    expect(() => checkMixture({ domains: ["a", "b"], weights: [1] })).toThrow(expect.objectContaining({ code: "E_SHAPE" }));
    expect(() => checkSimplex([0.5, NaN])).toThrow(expect.objectContaining({ code: "E_RANGE" }));
    expect(() => normalize([0, 0])).toThrow(/positive total/);
  });

  it("aligns by name and rejects unknown domains", () => {
    const m = { domains: ["a", "b", "c"], weights: [0.2, 0.3, 0.5] };
    expect(alignMixture(m, ["c", "a", "b"]).weights).toEqual([0.5, 0.2, 0.3]);
    expect(() => alignMixture(m, ["a", "b", "zzz"])).toThrow(/unknown domain "zzz"/);
  });

  it("counts epochs from the budget and enforces repetition limits", () => {
    const pool = [{ name: "a", tokens: 100 }, { name: "b", tokens: 1000, maxEpochs: 2 }];
    expect(epochsPerDomain({ domains: ["a", "b"], weights: [0.5, 0.5] }, pool, 1000)).toEqual([5, 0.5]);
    expect(() => epochsPerDomain({ domains: ["a", "b"], weights: [0.1, 0.9] }, pool, 4000)).toThrow(/3\.600 times.*2 epochs/);
  });
});

describe("Dirichlet sampling", () => {
  it("gamma variates have mean and variance equal to the shape", () => {
    for (const a of [0.3, 1, 4.5]) {
      const rng = new Rng(7);
      const n = 40000;
      let s = 0, s2 = 0;
      for (let i = 0; i < n; i++) {
        const g = Math.exp(logGamma(rng, a));
        s += g;
        s2 += g * g;
      }
      const mean = s / n;
      const v = s2 / n - mean * mean;
      expect(Math.abs(mean - a)).toBeLessThan(5 * Math.sqrt(a / n));
      expect(Math.abs(v - a) / a).toBeLessThan(0.08);
    }
  });

  it("Dirichlet draws have the closed-form means alpha_i / alpha_0", () => {
    const alpha = [0.5, 1, 2.5];
    const rng = new Rng(3);
    const m = [0, 0, 0];
    const n = 20000;
    for (let i = 0; i < n; i++) sampleDirichlet(rng, alpha).forEach((w, j) => (m[j]! += w / n));
    alpha.forEach((a, j) => expect(m[j]!).toBeCloseTo(a / 4, 2));
  });

  it("tiny concentrations stay finite and on the simplex", () => {
    const w = sampleDirichlet(new Rng(1), [1e-4, 1e-4, 1e-4]);
    expect(w.every(Number.isFinite)).toBe(true);
    expect(w.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
  });

  it("RegMix's generator is seeded, honours min weight, temperature and epoch limits", () => {
    const opts = { count: 300, prior: [1000, 100, 10], temperature: 0.5, minWeight: 0.01, seed: 5 };
    const a = generateMixtures(opts);
    expect(generateMixtures(opts)).toEqual(a);
    expect(generateMixtures({ ...opts, seed: 6 })).not.toEqual(a);
    for (const w of a) {
      checkSimplex(w);
      for (const v of w) expect(v === 0 || v >= 0.01 - 1e-12).toBe(true);
    }
    // With temperature 0.5 the prior is ∝ sqrt(counts); the sample mean follows it.
    const mean = [0, 1, 2].map((j) => a.reduce((s, w) => s + w[j]!, 0) / a.length);
    const p = normalize([1000, 100, 10].map(Math.sqrt));
    expect(mean[0]!).toBeGreaterThan(mean[1]!);
    expect(mean[1]!).toBeGreaterThan(mean[2]!);
    expect(Math.abs(mean[0]! - p[0]!)).toBeLessThan(0.08);
    const pool = [{ name: "a", tokens: 100, maxEpochs: 1 }, { name: "b", tokens: 1000 }, { name: "c", tokens: 1000 }];
    for (const w of generateMixtures({ count: 100, prior: [1, 1, 1], pool, budget: 400, seed: 1 })) expect(w[0]! * 400).toBeLessThanOrEqual(100);
    expect(() => generateMixtures({ count: 10, prior: [1, 1], minConcentration: 5, maxConcentration: 1 })).toThrow(/exceeds/);
    expect(() => generateMixtures({ count: 10, prior: [1, -1] })).toThrow(expect.objectContaining({ code: "E_RANGE" }));
  });
});

describe("training-free mixers", () => {
  it("proportional, uniform and temperature follow their definitions", () => {
    expect(proportionalMixture(["a", "b"], [300, 100]).weights).toEqual([0.75, 0.25]);
    expect(uniformMixture(["a", "b", "c", "d"]).weights).toEqual([0.25, 0.25, 0.25, 0.25]);
    const t = temperatureMixture(["a", "b"], [900, 100], 2).weights; // sqrt: 30 : 10
    expect(t[0]).toBeCloseTo(0.75, 12);
    expect(temperatureMixture(["a", "b"], [900, 100], 1).weights[0]).toBeCloseTo(0.9, 12);
    expect(() => temperatureMixture(["a"], [1], 0)).toThrow(/temperature/);
    expect(() => proportionalMixture(["a", "b"], [1])).toThrow(expect.objectContaining({ code: "E_SHAPE" }));
  });

  it("entropy of counts matches closed forms", () => {
    expect(entropyOfCounts([1, 1, 1, 1])).toBeCloseTo(2, 12);
    expect(entropyOfCounts([5])).toBe(0);
    expect(entropyOfCounts([1, 3])).toBeCloseTo(-(0.25 * Math.log2(0.25) + 0.75 * Math.log2(0.75)), 12);
  });
});
