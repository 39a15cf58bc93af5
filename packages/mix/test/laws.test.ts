import { Rng } from "@tersor/core";
import { describe, expect, it } from "vitest";

import {
  bimixLoss,
  fitBiMixLaw,
  fitMixingLaw,
  fitMixingLaws,
  fitPowerLaw,
  lbfgs,
  minimizeOnSimplex,
  mixingLawLoss,
  nestedExtrapolation,
  optimizeBiMix,
  optimizeMixingLaws,
  powerLawLoss,
  sampleDirichlet,
} from "../src/index.js";

const relErr = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

describe("L-BFGS", () => {
  it("finds the Rosenbrock minimum at (1, 1)", () => {
    const r = lbfgs((x, g) => {
      const a = x[0]!, b = x[1]!;
      g[0] = -2 * (1 - a) - 400 * a * (b - a * a);
      g[1] = 200 * (b - a * a);
      return (1 - a) ** 2 + 100 * (b - a * a) ** 2;
    }, [-1.2, 1]);
    expect(r.converged).toBe(true);
    expect(r.x[0]).toBeCloseTo(1, 6);
    expect(r.x[1]).toBeCloseTo(1, 6);
  });

  it("minimises over the simplex: a quadratic's interior minimiser and a linear function's vertex", () => {
    const q = [0.1, 0.6, 0.3];
    const r = minimizeOnSimplex((w, g) => {
      let f = 0;
      w.forEach((v, i) => {
        f += (v - q[i]!) ** 2;
        g[i] = 2 * (v - q[i]!);
      });
      return f;
    }, 3);
    r.weights.forEach((v, i) => expect(v).toBeCloseTo(q[i]!, 5));
    const c = [3, 1, 2];
    const lin = minimizeOnSimplex((w, g) => {
      c.forEach((v, i) => (g[i] = v));
      return w.reduce((s, v, i) => s + v * c[i]!, 0);
    }, 3, { lower: 0.05 });
    expect(lin.weights[1]).toBeCloseTo(0.9, 4);
    expect(lin.weights[0]).toBeCloseTo(0.05, 4);
  });
});

describe("Data Mixing Laws", () => {
  const truth = { c: 2.1, k: 0.8, t: [-1.5, 0.6, 1.1, -0.2] };
  const centred = () => {
    const m = truth.t.reduce((a, b) => a + b, 0) / truth.t.length;
    return { c: truth.c, k: truth.k * Math.exp(m), t: truth.t.map((v) => v - m) };
  };
  const draw = (n: number, seed: number, noise: number) => {
    const rng = new Rng(seed);
    const R = Array.from({ length: n }, () => sampleDirichlet(rng, [1, 1, 1, 1]));
    const y = R.map((r) => mixingLawLoss(truth, r) * (1 + noise * rng.nextNormal()));
    return { R, y };
  };

  it("recovers the parameters of noisy synthetic data and predicts held-out mixtures within 1%", () => {
    const { R, y } = draw(48, 1, 0.002);
    const fit = fitMixingLaw(R, y, { seed: 3 });
    const ref = centred();
    expect(fit.c).toBeCloseTo(ref.c, 1);
    expect(relErr(fit.k, ref.k)).toBeLessThan(0.1);
    fit.t.forEach((v, j) => expect(Math.abs(v - ref.t[j]!)).toBeLessThan(0.1));
    const held = draw(30, 2, 0);
    held.R.forEach((r, i) => expect(relErr(mixingLawLoss(fit, r), held.y[i]!)).toBeLessThan(0.01));
  });

  it("the Huber loss resists an outlier that would pull least squares", () => {
    const { R, y } = draw(48, 4, 0.001);
    y[5] = y[5]! + 3; // a broken run
    const fit = fitMixingLaw(R, y, { seed: 1, huberDelta: 0.01 });
    const held = draw(20, 5, 0);
    held.R.forEach((r, i) => expect(relErr(mixingLawLoss(fit, r), held.y[i]!)).toBeLessThan(0.01));
  });

  it("the optimised mixture matches a brute-force search over a simplex grid", () => {
    const laws = [
      { c: 1.5, k: 1, t: [-2, 1, 1] },
      { c: 2, k: 0.5, t: [1, -2, 1] },
    ];
    const model = { domains: ["a", "b", "c"], targets: ["a", "b"], laws };
    const opt = optimizeMixingLaws(model);
    let best = Infinity;
    const steps = 200;
    for (let i = 0; i <= steps; i++)
      for (let j = 0; i + j <= steps; j++) {
        const r = [i / steps, j / steps, (steps - i - j) / steps];
        best = Math.min(best, (mixingLawLoss(laws[0]!, r) + mixingLawLoss(laws[1]!, r)) / 2);
      }
    expect(opt.predicted).toBeLessThanOrEqual(best + 1e-9);
    expect(opt.predicted).toBeGreaterThan(best - 1e-3);
  });

  it("fits one law per target column", () => {
    const { R, y } = draw(40, 7, 0);
    const m = fitMixingLaws(["a", "b", "c", "d"], ["x", "y"], R, y.map((v) => [v, 2 * v]));
    expect(m.laws).toHaveLength(2);
    expect(relErr(mixingLawLoss(m.laws[1]!, R[0]!), 2 * y[0]!)).toBeLessThan(1e-3);
  });
});

describe("step, size and nested laws", () => {
  it("fits E + B/x^β with noise and extrapolates within 1%", () => {
    const law = { E: 2.0, B: 6, beta: 0.45 };
    const rng = new Rng(2);
    const xs = [100, 200, 400, 800, 1600, 3200, 6400];
    const ys = xs.map((x) => powerLawLoss(law, x) * (1 + 0.001 * rng.nextNormal()));
    const fit = fitPowerLaw(xs, ys);
    expect(relErr(powerLawLoss(fit, 50000), powerLawLoss(law, 50000))).toBeLessThan(0.01);
    expect(() => fitPowerLaw([1, 2], [1, 2])).toThrow(expect.objectContaining({ code: "E_SHAPE" }));
  });

  it("nested extrapolation feeds a mixing law that predicts the large-scale losses", () => {
    // Truth: at (steps S, size N) and mixture r, L = mix(r) + 40/S^0.5 + 30/N^0.3.
    const mixLaw = { c: 1.8, k: 0.6, t: [-1, 0.5, 0.5] };
    const rng = new Rng(8);
    const steps = [250, 500, 1000, 2000, 4000];
    const sizes = [1e5, 4e5, 1.6e6];
    const runs = [];
    const mixtures = Array.from({ length: 24 }, () => sampleDirichlet(rng, [1, 1, 1]));
    for (const [m, r] of mixtures.entries())
      for (const N of sizes)
        runs.push({
          mixtureId: String(m),
          mixture: r,
          size: N,
          steps,
          losses: [steps.map((S) => mixingLawLoss(mixLaw, r) + 40 / Math.sqrt(S) + 30 / Math.pow(N, 0.3))],
        });
    const ex = nestedExtrapolation(runs, { targetSteps: 20000, targetSize: 1e7 });
    expect(ex.mixtures).toHaveLength(24);
    const fit = fitMixingLaw(ex.mixtures, ex.losses.map((l) => l[0]!));
    const r = [0.2, 0.5, 0.3];
    const truth = mixingLawLoss(mixLaw, r) + 40 / Math.sqrt(20000) + 30 / Math.pow(1e7, 0.3);
    expect(relErr(mixingLawLoss(fit, r), truth)).toBeLessThan(0.01);
  });
});

describe("BiMix", () => {
  it("recovers α, β and the identifiable products from noisy data and predicts held-out points within 1%", () => {
    const law = { A: 1.3, alpha: 0.12, B: 9, beta: 0.4, C: 2.2 };
    const rng = new Rng(5);
    const rs: number[] = [], ss: number[] = [], ys: number[] = [];
    for (const r of [0.05, 0.1, 0.2, 0.35, 0.5, 0.8])
      for (const s of [200, 500, 1000, 2000, 5000]) {
        rs.push(r);
        ss.push(s);
        ys.push(bimixLoss(law, r, s) * (1 + 0.001 * rng.nextNormal()));
      }
    const fit = fitBiMixLaw(rs, ss, ys);
    expect(fit.alpha).toBeCloseTo(law.alpha, 2);
    expect(Math.abs(fit.beta - law.beta)).toBeLessThan(0.03);
    expect(relErr(fit.A * fit.C, law.A * law.C)).toBeLessThan(0.03);
    expect(relErr(fit.A * fit.B, law.A * law.B)).toBeLessThan(0.15);
    for (const [r, s] of [[0.15, 800], [0.6, 3000], [0.3, 10000]] as const) expect(relErr(bimixLoss(fit, r, s), bimixLoss(law, r, s))).toBeLessThan(0.01);
    expect(() => fitBiMixLaw([0, 0.1, 0.2, 0.3], [1, 2, 3, 4], [1, 1, 1, 1])).toThrow(/proportion 0/);
  });

  it("optimal BiMix mixture matches the closed form r_i ∝ K_i^{1/(1+α)} for a shared α", () => {
    // L_i = K_i r_i^{-α} with K_i = A_i (B_i/s^β + C_i); Lagrange: r_i ∝ K_i^{1/(1+α)}.
    const alpha = 0.3;
    const laws = [1, 2, 4].map((A) => ({ A, alpha, B: 1, beta: 0.5, C: 1 }));
    const s = 100;
    const K = laws.map((l) => l.A * (l.B / Math.pow(s, l.beta) + l.C));
    const raw = K.map((k) => Math.pow(k, 1 / (1 + alpha)));
    const tot = raw.reduce((a, b) => a + b, 0);
    const opt = optimizeBiMix(laws, s, { targetWeights: [1, 1, 1] });
    opt.weights.forEach((w, i) => expect(w).toBeCloseTo(raw[i]! / tot, 4));
  });
});
