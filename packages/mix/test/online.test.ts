import { Rng } from "@tersor/core";
import { describe, expect, it } from "vitest";

import {
  AioliController,
  DoReMi,
  Exp3Flad,
  OnlineDataMixing,
  Ucb1,
  aioliMixer,
  aioliPerturbations,
  aioliStep,
  doremiMixer,
  estimateMixingMatrix,
  exp3Exploration,
  gradientAlignment,
  onlineWeightsCallback,
} from "../src/index.js";

describe("DoReMi", () => {
  it("fixed loss sequence gives the hand-computed weights", () => {
    // ref [1, 1], η = 1, ε = 0.1. Step 1: losses [2, 1] → λ = [1, 0] → α' = [e, 1]/(1 + e),
    // α = 0.9 α' + 0.05 = [0.70795272, 0.29204728]. Step 2: losses [1, 3] → λ = [0, 2]:
    // α' ∝ [0.70795272, 0.29204728 e²] → α = [0.27232318, 0.72767682].
    const d = new DoReMi([1, 1], { eta: 1, smoothing: 0.1 });
    const a1 = d.update([2, 1]);
    expect(a1[0]).toBeCloseTo(0.7079527207670044, 12);
    expect(a1[1]).toBeCloseTo(0.2920472792329956, 12);
    const a2 = d.update([1, 3]);
    expect(a2[0]).toBeCloseTo(0.2723231845428436, 12);
    expect(a2[1]).toBeCloseTo(0.7276768154571565, 12);
    expect(d.averageWeights()[0]).toBeCloseTo((0.7079527207670044 + 0.2723231845428436) / 2, 12);
    // Losses under the reference give no excess: weights only relax towards uniform.
    const e = new DoReMi([5, 5], { smoothing: 0.5, initial: [0.9, 0.1] });
    expect(e.update([1, 2])).toEqual([0.9 * 0.5 + 0.25, 0.1 * 0.5 + 0.25]);
  });

  it("weights stay on the simplex with the ε floor under arbitrary losses", () => {
    const eps = 0.05, K = 5;
    const d = new DoReMi([2, 2, 2, 2, 2], { eta: 3, smoothing: eps });
    const rng = new Rng(1);
    for (let t = 0; t < 200; t++) {
      const a = d.update(Array.from({ length: K }, (_, i) => 2 + (i === 0 ? 5 : 1) * rng.nextF64()));
      expect(a.reduce((s, v) => s + v, 0)).toBeCloseTo(1, 12);
      for (const v of a) expect(v).toBeGreaterThanOrEqual(eps / K - 1e-15);
    }
    expect(() => d.update([1, 2])).toThrow(expect.objectContaining({ code: "E_SHAPE" }));
    expect(() => d.update([1, 2, NaN, 1, 1])).toThrow(expect.objectContaining({ code: "E_RANGE" }));
  });
});

describe("Online Data Mixing (EXP3)", () => {
  it("exploration rate and the second policy match hand computation", () => {
    expect(exp3Exploration(4, 1)).toBe(0.25);
    expect(exp3Exploration(2, 2)).toBeCloseTo(0.41627730557884884, 14);
    const o = new OnlineDataMixing(2, { seed: 0 });
    expect(o.policy()).toEqual([0.5, 0.5]);
    const arm = o.sample();
    o.update(arm, 2); // R̂_arm = 0.1 · 2 / 0.5 = 0.4
    expect(o.rewards[arm]).toBeCloseTo(0.4, 14);
    // π_2(arm) = (1 − 2ε_2) softmax(ε_1 R̂)_arm + ε_2 with ε_1 = 0.5, ε_2 = 0.41627731.
    expect(o.policy()[arm]).toBeCloseTo(0.5083444730575541, 12);
  });

  it("explores every arm and prefers the high-loss domain", () => {
    const K = 8;
    const o = new OnlineDataMixing(K, { seed: 3 });
    for (let t = 0; t < 400; t++) o.step([5, 1, 1, 1, 1, 1, 1, 1]);
    for (const n of o.pulls) expect(n).toBeGreaterThan(0);
    const p = o.policy();
    expect(p.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    expect(Math.max(...p)).toBe(p[0]);
    const eps = exp3Exploration(K, o.t);
    for (const v of p) expect(v).toBeGreaterThanOrEqual(eps - 1e-15);
  });

  it("is deterministic under a seed", () => {
    const run = (seed: number) => {
      const o = new OnlineDataMixing(3, { seed });
      return Array.from({ length: 50 }, (_, t) => o.step([1 + (t % 3), 2, 3]).arm);
    };
    expect(run(7)).toEqual(run(7));
  });
});

describe("EXP3-FLAD and UCB1-FLAD", () => {
  it("gradient alignment is the cosine similarity", () => {
    expect(gradientAlignment([1, 0], [0, 1])).toBe(0);
    expect(gradientAlignment([1, 2], [2, 4])).toBeCloseTo(1, 14);
    expect(gradientAlignment([1, 1], [-1, 0])).toBeCloseTo(-Math.SQRT1_2, 14);
    expect(gradientAlignment([0, 0], [1, 1])).toBe(0);
  });

  it("EXP3-FLAD shifts probability to the aligned auxiliary domain", () => {
    const target = [1, 0, 0];
    const aux = [[1, 0.1, 0], [0, 1, 0], [-1, 0, 0.2]];
    const b = new Exp3Flad(3, { seed: 2 });
    for (let t = 0; t < 300; t++) {
      const a = b.sample();
      b.updateGradients(a, aux[a]!, target);
    }
    const p = b.policy();
    expect(Math.max(...p)).toBe(p[0]);
  });

  it("UCB1 plays every arm once, then the best by mean plus bonus", () => {
    const u = new Ucb1(3, 0);
    const rewards = [0.2, 0.9, 0.5];
    const first = [u.select()];
    u.update(first[0]!, rewards[first[0]!]!);
    for (let i = 0; i < 2; i++) {
      const a = u.select();
      first.push(a);
      u.update(a, rewards[a]!);
    }
    expect(first).toEqual([0, 1, 2]);
    // t = 3, every arm once: the bonus is equal, so the highest mean wins.
    expect(u.select()).toBe(1);
    expect(u.weights()).toEqual([0, 1, 0]);
  });
});

describe("Aioli", () => {
  it("recovers the mixing matrix from sweeps and takes the EG step", () => {
    const A = [[0.3, 0.05, 0.0], [0.02, 0.1, 0.01], [0.0, 0.04, 0.2]];
    const p = [0.2, 0.3, 0.5];
    const sweeps = aioliPerturbations(p, 0.5).map((m) => {
      const before = [4, 4, 4];
      return { mixture: m, lossBefore: before, lossAfter: before.map((l, i) => l - A[i]!.reduce((s, a, j) => s + a * m[j]!, 0)) };
    });
    const est = estimateMixingMatrix(sweeps);
    est.forEach((row, i) => row.forEach((v, j) => expect(v).toBeCloseTo(A[i]![j]!, 10)));
    // p_j ∝ p_j exp(η Σ_i A_ij): column sums [0.32, 0.19, 0.21].
    const q = aioliStep(p, est, 2);
    const raw = [0.2 * Math.exp(0.64), 0.3 * Math.exp(0.38), 0.5 * Math.exp(0.42)];
    const s = raw.reduce((a, b) => a + b, 0);
    q.forEach((v, j) => expect(v).toBeCloseTo(raw[j]! / s, 10));
    expect(() => estimateMixingMatrix(sweeps.slice(0, 2))).toThrow(/at least 3 sweeps/);
  });

  it("the controller under linear loss dynamics moves weight to the most useful domain", () => {
    const A = [[0.02, 0, 0], [0, 0.1, 0], [0, 0, 0.02]];
    const c = new AioliController(3, { eta: 5, sweepSteps: 1, exploitSteps: 2 });
    const mixer = aioliMixer(c);
    let L = [5, 5, 5];
    let w = mixer.next(undefined, 0);
    for (let step = 0; step < 60; step++) {
      L = L.map((l, i) => l - A[i]!.reduce((s, a, j) => s + a * w[j]!, 0));
      w = mixer.next(L, step + 1);
      expect(w.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    }
    expect(c.rounds).toBeGreaterThan(3);
    expect(c.p[1]!).toBeGreaterThan(0.6);
  });
});

describe("trainer glue", () => {
  it("feeds each evaluation once, in domain order, and rejects missing domains", () => {
    const d = new DoReMi([1, 1], { smoothing: 0 });
    const { callback, history } = onlineWeightsCallback(["a", "b"], doremiMixer(d));
    expect(callback(0, undefined)).toEqual({ a: 0.5, b: 0.5 });
    const rec = { b: 1, a: 2 };
    const w1 = callback(1, rec);
    expect(w1["a"]).toBeCloseTo(Math.E / (1 + Math.E), 12);
    expect(callback(2, rec)).toEqual(w1); // same evaluation: no second update
    expect(d.steps).toBe(1);
    expect(history.map((h) => h.step)).toEqual([0, 1, 2]);
    expect(() => callback(3, { a: 1 })).toThrow(/no validation loss for domain "b"/);
  });
});
