import { Rng, Tensor } from "@tersor/core";
import { describe, expect, it } from "vitest";

import {
  binnedMutualInformation,
  codingRate,
  csDivergence,
  csQuadraticMutualInformation,
  diffusionSpectralEntropy,
  diffusionSpectralMutualInformation,
  discreteEntropy,
  discreteMutualInformation,
  effectiveRank,
  gaussianGram,
  kNearestNeighbors,
  kdeEntropy,
  klEntropy,
  knnKlDivergence,
  ksgConditionalMutualInformation,
  ksgMutualInformation,
  matrixRenyiEntropy,
  matrixRenyiMutualInformation,
  mixedMutualInformation,
  rateReduction,
  vonNeumannEntropy,
} from "../src/index.js";

const LN2 = Math.LN2;
const gaussianMi = (rho: number) => -0.5 * Math.log(1 - rho * rho);

function normals(n: number, seed: number): Float64Array {
  const r = new Rng(seed);
  return Float64Array.from({ length: n }, () => r.nextNormal());
}

/** (x, y) with corr(x, y) = rho, unit variances, from one seeded stream. */
function correlated(n: number, rho: number, seed: number): { x: Float64Array; y: Float64Array } {
  const r = new Rng(seed);
  const x = new Float64Array(n);
  const y = new Float64Array(n);
  const s = Math.sqrt(1 - rho * rho);
  for (let i = 0; i < n; i++) {
    const a = r.nextNormal();
    const b = r.nextNormal();
    x[i] = a;
    y[i] = rho * a + s * b;
  }
  return { x, y };
}

const rejects = (p: Promise<unknown>, code: string) => expect(p).rejects.toMatchObject({ name: "TersorError", code });

describe("KSG mutual information", () => {
  it("matches −½ ln(1 − ρ²) on correlated Gaussians at N = 10,000, k = 3", async () => {
    // Truths: 0.143841, 0.830366, 1.958518 nats. Seeds fixed in advance (one per ρ).
    expect(gaussianMi(0.5)).toBeCloseTo(0.143841, 6);
    expect(gaussianMi(0.9)).toBeCloseTo(0.830366, 6);
    expect(gaussianMi(0.99)).toBeCloseTo(1.958518, 6);
    for (const [rho, tol] of [
      [0.5, 0.03],
      [0.9, 0.03],
      [0.99, 0.05],
    ] as const) {
      const { x, y } = correlated(10_000, rho, 100);
      const e = await ksgMutualInformation(x, y, { k: 3 });
      expect(e.unit).toBe("nats");
      expect(e.estimator).toBe("ksg1");
      expect(Math.abs(e.value - gaussianMi(rho))).toBeLessThan(tol);
      const e2 = await ksgMutualInformation(x, y, { k: 3, algorithm: 2 });
      expect(Math.abs(e2.value - gaussianMi(rho))).toBeLessThan(tol + 0.01);
    }
  });

  it("reports bits with base 2 and accepts rows, Float64Arrays and tensors alike", async () => {
    const { x, y } = correlated(3000, 0.7, 101);
    const nats = await ksgMutualInformation(x, y);
    const bits = await ksgMutualInformation(x, y, { base: 2 });
    expect(bits.unit).toBe("bits");
    expect(bits.value).toBeCloseTo(nats.value / LN2, 12);
    const rows = await ksgMutualInformation(
      Array.from(x, (v) => [v]),
      Array.from(y, (v) => [v]),
    );
    expect(rows.value).toBe(nats.value);
    const tens = await ksgMutualInformation(new Tensor("f64", [3000, 1], x), new Tensor("f64", [3000], y));
    expect(tens.value).toBe(nats.value);
  });

  it("is invariant under an invertible map, lower after a noisy channel, additive over independent copies", async () => {
    const n = 4000;
    const { x, y } = correlated(n, 0.8, 102);
    const base = (await ksgMutualInformation(x, y)).value;
    const cubed = (await ksgMutualInformation(x, y.map((v) => v ** 3))).value;
    expect(Math.abs(cubed - base)).toBeLessThan(0.05);
    const noise = normals(n, 103);
    const noisy = y.map((v, i) => v + noise[i]!);
    const processed = (await ksgMutualInformation(x, noisy)).value;
    expect(processed).toBeLessThan(base - 0.2);
    expect(Math.abs(processed - gaussianMi(0.8 / Math.SQRT2))).toBeLessThan(0.04);
    const c2 = correlated(n, 0.8, 104);
    const xx = Array.from({ length: n }, (_, i) => [x[i]!, c2.x[i]!]);
    const yy = Array.from({ length: n }, (_, i) => [y[i]!, c2.y[i]!]);
    const both = (await ksgMutualInformation(xx, yy)).value;
    expect(Math.abs(both - 2 * gaussianMi(0.8))).toBeLessThan(0.08);
  });

  it("conditional MI of a trivariate Gaussian reaches 0.514874 bits (I(x;y) = 0.596323 bits)", async () => {
    // Σ = [[4,3,1],[3,4,1],[1,1,2]] over (x, y, z), by its Cholesky factor.
    const l11 = Math.sqrt(4 - 2.25);
    const l21 = (1 - 0.5 * 1.5) / l11;
    const l22 = Math.sqrt(2 - 0.25 - l21 * l21);
    const n = 10_000;
    const r = new Rng(105);
    const x = new Float64Array(n);
    const y = new Float64Array(n);
    const z = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const a = r.nextNormal();
      const b = r.nextNormal();
      const c = r.nextNormal();
      x[i] = 2 * a;
      y[i] = 1.5 * a + l11 * b;
      z[i] = 0.5 * a + l21 * b + l22 * c;
    }
    const mi = await ksgMutualInformation(x, y, { base: 2 });
    const cmi = await ksgConditionalMutualInformation(x, y, z, { base: 2 });
    expect(Math.abs(mi.value - 0.596323)).toBeLessThan(0.03);
    expect(Math.abs(cmi.value - 0.514874)).toBeLessThan(0.03);
  });

  it("gives a subsampling interval that covers the truth at ρ = 0.9, deterministic under a seed", async () => {
    const { x, y } = correlated(2000, 0.9, 106);
    const opts = { ci: 0.95, resamples: 100, seed: 7 };
    const e = await ksgMutualInformation(x, y, opts);
    expect(e.ci).toBeDefined();
    const ci = e.ci!;
    expect(ci.method).toBe("subsample");
    expect(ci.subsampleSizes).toEqual([1000]);
    expect(ci.lower).toBeLessThan(e.value);
    expect(ci.upper).toBeGreaterThan(e.value);
    expect(ci.lower).toBeLessThan(gaussianMi(0.9));
    expect(ci.upper).toBeGreaterThan(gaussianMi(0.9));
    expect(ci.upper - ci.lower).toBeLessThan(0.2);
    const again = await ksgMutualInformation(x, y, opts);
    expect(again.ci).toEqual(ci);
    const other = await ksgMutualInformation(x, y, { ...opts, seed: 8 });
    expect(other.ci!.lower).not.toBe(ci.lower);
  });
});

describe("other k-NN estimators", () => {
  it("Kozachenko–Leonenko entropy of Gaussian and uniform samples", async () => {
    const n = 5000;
    const g = normals(n * 2, 110);
    const rows = Array.from({ length: n }, (_, i) => [g[2 * i]!, g[2 * i + 1]!]);
    const truth = Math.log(2 * Math.PI * Math.E); // ½ ln((2πe)² det I₂)
    for (const metric of ["chebyshev", "euclidean"] as const) {
      expect(Math.abs((await klEntropy(rows, { metric })).value - truth)).toBeLessThan(0.1);
    }
    const r = new Rng(111);
    const u = Float64Array.from({ length: n }, () => 3 * r.nextF64());
    expect(Math.abs((await klEntropy(u)).value - Math.log(3))).toBeLessThan(0.03);
  });

  it("k-NN KL divergence between two Gaussians matches the closed form", async () => {
    const p = normals(5000, 112);
    const q = normals(5000, 113).map((v) => 1 + 2 * v);
    const truth = Math.log(2) + (1 + 1) / 8 - 0.5; // D(N(0,1) ‖ N(1,4))
    const e = await knnKlDivergence(p, q);
    expect(Math.abs(e.value - truth)).toBeLessThan(0.04);
    expect(e.parameters).toEqual({ k: 3, m: 5000 });
  });

  it("mixed estimator on Gao et al.'s discrete–continuous example and on discrete data", async () => {
    const n = 6000;
    const r = new Rng(114);
    const x = new Float64Array(n);
    const y = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      x[i] = r.nextBelow(5);
      y[i] = x[i]! + 2 * r.nextF64(); // Y | X ~ U[X, X + 2]
    }
    const truth = Math.log(5) - (4 * LN2) / 5;
    expect(Math.abs((await mixedMutualInformation(x, y)).value - truth)).toBeLessThan(0.05);
    const d = Float64Array.from({ length: n }, () => r.nextBelow(4));
    expect(Math.abs((await mixedMutualInformation(d, d)).value - Math.log(4))).toBeLessThan(0.01);
  });

  it("finds exact neighbours", async () => {
    const r = await kNearestNeighbors([[0], [1], [3], [7]], { k: 2 });
    expect(Array.from(r.dist)).toEqual([1, 3, 1, 2, 2, 3, 4, 6]);
    expect(Array.from(r.idx)).toEqual([1, 2, 0, 2, 1, 0, 2, 1]);
    const q = await kNearestNeighbors([[0], [1], [3], [7]], { k: 1, queries: [[6]] });
    expect(Array.from(q.idx)).toEqual([3]);
  });
});

describe("discrete estimators", () => {
  it("Miller–Madow removes most of the plug-in bias on a known distribution", async () => {
    // Uniform over 20 symbols, N = 50: the plug-in is biased by about −(m − 1)/(2N) = −0.19 nats.
    const m = 20;
    const n = 50;
    const truth = Math.log(m);
    const r = new Rng(120);
    let plug = 0;
    let mm = 0;
    const reps = 200;
    for (let t = 0; t < reps; t++) {
      const x = Array.from({ length: n }, () => r.nextBelow(m));
      plug += (await discreteEntropy(x)).value / reps;
      mm += (await discreteEntropy(x, { correction: "miller-madow" })).value / reps;
    }
    expect(truth - plug).toBeGreaterThan(0.15);
    expect(Math.abs(mm - truth)).toBeLessThan(Math.abs(plug - truth) / 2);
  });

  it("plug-in MI of a deterministic relation is the entropy; bootstrap interval, strings and tuples", async () => {
    const x = ["a", "b", "c", "d", "a", "b", "c", "d"];
    const e = await discreteMutualInformation(x, [0, 1, 2, 3, 0, 1, 2, 3], { base: 2 });
    expect(e.value).toBeCloseTo(2, 12);
    expect(e.details).toMatchObject({ entropyX: 2, entropyY: 2 });
    expect((await discreteEntropy([[0, 1], [0, 1], [1, 0], [1, 0]], { base: 2 })).value).toBeCloseTo(1, 12);
    const r = new Rng(121);
    const xs = Array.from({ length: 500 }, () => r.nextBelow(4));
    const ci = (await discreteEntropy(xs, { ci: 0.9, resamples: 200, seed: 1 })).ci!;
    expect(ci.method).toBe("bootstrap");
    expect(ci.lower).toBeLessThan(Math.log(4));
    expect(ci.upper).toBeGreaterThan(ci.lower);
  });

  it("equal-mass binned MI of activations recovers the label entropy when the labels are a threshold", async () => {
    const n = 4000;
    const g = normals(n * 3, 122);
    const act = Array.from({ length: n }, (_, i) => [g[3 * i]!, g[3 * i + 1]!, g[3 * i + 2]!]);
    // Two equal-mass bins split unit 0 at its sample median (ties go up): labels that threshold there
    // are a function of the binned layer, so I(T; Y) = H(Y) = ln 2.
    const median = Float64Array.from(act, (row) => row[0]!).sort()[n / 2]!;
    const labels = act.map((row) => (row[0]! >= median ? 1 : 0));
    const e = await binnedMutualInformation(act, labels, { bins: 2, binning: "per-unit" });
    expect(e.value).toBeCloseTo(LN2, 12);
    expect(e.details!["entropy"]).toBeCloseTo(3 * LN2, 1); // 8 equally likely patterns
    const unrelated = await binnedMutualInformation(act, Array.from({ length: n }, (_, i) => i % 2), { bins: 4 });
    expect(unrelated.value).toBeLessThan(0.02);
  });
});

describe("kernel and spectral estimators", () => {
  it("matrix Rényi entropy: log₂ n for I_n, 0 for the all-ones matrix", async () => {
    const n = 16;
    const eye = Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? 1 : 0)));
    const ones = Array.from({ length: n }, () => new Array<number>(n).fill(1));
    for (const alpha of [0.5, 1, 1.01, 2]) {
      expect((await matrixRenyiEntropy({ gram: eye }, { alpha, base: 2 })).value).toBeCloseTo(4, 9);
      expect(Math.abs((await matrixRenyiEntropy({ gram: ones }, { alpha, base: 2 })).value)).toBeLessThan(1e-9);
    }
    // From samples: MI of a variable with itself is its entropy; of independent ones near 0.
    const a = normals(200, 130);
    const b = normals(200, 131);
    // The joint entropy is at least each marginal one (Yu et al. 2019), so I ≤ min(S(A), S(B)).
    const self = await matrixRenyiMutualInformation(a, a, { alpha: 2 });
    expect(self.value).toBeLessThanOrEqual(self.details!["entropyX"]! + 1e-12);
    const indep = await matrixRenyiMutualInformation(a, b, { alpha: 2 });
    expect(indep.value).toBeGreaterThanOrEqual(-1e-12);
    expect(indep.value).toBeLessThan(self.value / 4);
    const k = await gaussianGram(a, { bandwidth: 0.5 });
    expect(k.shape).toEqual([200, 200]);
    expect(k.data[0]).toBe(1);
  });

  it("effective rank n for I_n and 1 for rank one; von Neumann entropy ln n", async () => {
    const n = 8;
    const eye = Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? 1 : 0)));
    expect((await effectiveRank(eye)).value).toBeCloseTo(n, 9);
    expect((await effectiveRank(eye, { spectrum: "singular" })).value).toBeCloseTo(n, 9);
    expect((await vonNeumannEntropy(eye)).value).toBeCloseTo(Math.log(n), 9);
    const rank1 = Array.from({ length: 20 }, (_, i) => Array.from({ length: 6 }, (_, k) => (i + 1) * (k + 1)));
    expect((await effectiveRank(rank1)).value).toBeCloseTo(1, 9);
    expect((await effectiveRank(rank1, { spectrum: "singular" })).value).toBeCloseTo(1, 9);
  });

  it("coding rate orders orthogonal above collinear features; rate reduction is positive for separated classes", async () => {
    const n = 64;
    const d = 8;
    const orth = Array.from({ length: n }, (_, i) => Array.from({ length: d }, (_, k) => (k === i % d ? 1 : 0)));
    const coll = Array.from({ length: n }, () => Array.from({ length: d }, (_, k) => (k === 0 ? 1 : 0)));
    const ro = (await codingRate(orth)).value;
    const rc = (await codingRate(coll)).value;
    expect(ro).toBeCloseTo((d / 2) * Math.log(3), 10);
    expect(rc).toBeCloseTo(0.5 * Math.log(1 + d / 0.5), 10);
    expect(ro).toBeGreaterThan(rc);
    const labels = orth.map((_, i) => (i % d < d / 2 ? "a" : "b"));
    const rr = await rateReduction(orth, labels);
    expect(rr.value).toBeGreaterThan(0);
    expect(rr.details!["rate"]).toBeCloseTo(ro, 10);
  });

  it("KDE entropy: 0 for identical points, ln N for far-apart points", async () => {
    const same = Array.from({ length: 50 }, () => [3.25, -1]);
    expect((await kdeEntropy(same, { bandwidth: 0.1 })).value).toBe(0);
    const far = Array.from({ length: 50 }, (_, i) => [100 * i, 0]);
    expect((await kdeEntropy(far, { bandwidth: 0.1 })).value).toBeCloseTo(Math.log(50), 12);
  });

  it("diffusion spectral entropy and MI on separated clusters", async () => {
    const r = new Rng(140);
    const z = Array.from({ length: 20 }, (_, i) => [100 * (i % 2) + 1e-4 * r.nextNormal()]);
    const labels = z.map((_, i) => i % 2);
    expect((await diffusionSpectralEntropy(z, { bandwidth: 1 })).value).toBeCloseTo(LN2, 5);
    const mi = await diffusionSpectralMutualInformation(z, labels, { bandwidth: 1, base: 2 });
    expect(mi.value).toBeCloseTo(1, 5);
  });

  it("Cauchy–Schwarz divergence and quadratic MI", async () => {
    const a = normals(1500, 150);
    const b = normals(1500, 151);
    const shifted = normals(1500, 152).map((v) => v + 2);
    expect((await csDivergence(a, a, { bandwidth: 0.5 })).value).toBeCloseTo(0, 10);
    const near = (await csDivergence(a, b, { bandwidth: 0.5 })).value;
    const far = (await csDivergence(a, shifted, { bandwidth: 0.5 })).value;
    expect(near).toBeLessThan(0.02);
    expect(Math.abs(far - 4 / 2.25) / (4 / 2.25)).toBeLessThan(0.05); // μ² / (σ² + 2)
    const { x, y } = correlated(1500, 0.9, 153);
    expect((await csQuadraticMutualInformation(x, y, { bandwidth: 0.5, bandwidthY: 0.5 })).value).toBeGreaterThan(0.1);
    expect((await csQuadraticMutualInformation(a, b, { bandwidth: 0.5, bandwidthY: 0.5 })).value).toBeLessThan(0.01);
  });
});

describe("bad input", () => {
  const { x, y } = correlated(100, 0.5, 160);

  it("rejects too few samples, mismatched lengths, NaN/Inf and constant columns", async () => {
    await rejects(ksgMutualInformation(x.subarray(0, 3), y.subarray(0, 3), { k: 3 }), "E_RANGE");
    await rejects(ksgMutualInformation(x, y.subarray(0, 99)), "E_SHAPE");
    await rejects(ksgConditionalMutualInformation(x, y, y.subarray(0, 50)), "E_SHAPE");
    const bad = Float64Array.from(x);
    bad[17] = Number.NaN;
    await rejects(ksgMutualInformation(bad, y), "E_RANGE");
    bad[17] = Number.POSITIVE_INFINITY;
    await rejects(klEntropy(bad), "E_RANGE");
    const constant = new Float64Array(100).fill(2);
    await expect(ksgMutualInformation(x, constant)).rejects.toThrow(/constant/);
    await rejects(ksgConditionalMutualInformation(x, y, constant), "E_RANGE");
    await rejects(klEntropy(constant), "E_RANGE");
    await rejects(ksgMutualInformation([[1, 2], [3]], [[1], [2]]), "E_SHAPE");
    await rejects(knnKlDivergence(x, [[1, 2]]), "E_SHAPE");
    await rejects(discreteMutualInformation([1, 2, 3], [1, 2]), "E_SHAPE");
    await rejects(binnedMutualInformation([[1], [2]], [0]), "E_SHAPE");
    await rejects(rateReduction([[1], [2]], [0]), "E_SHAPE");
  });

  it("rejects zero-variance kernels, bad bandwidths and bad options", async () => {
    await rejects(kdeEntropy(x, { bandwidth: 0 }), "E_RANGE");
    await rejects(kdeEntropy(x, { bandwidth: -1 }), "E_RANGE");
    await rejects(kdeEntropy(new Float64Array(10).fill(1)), "E_RANGE"); // median distance 0
    await rejects(csQuadraticMutualInformation(x, y, { bandwidthY: Number.NaN }), "E_RANGE");
    await rejects(matrixRenyiEntropy({ gram: [[0, 0], [0, 0]] }), "E_RANGE");
    await rejects(matrixRenyiEntropy({ gram: [[1, 0.5], [0, 1]] }), "E_RANGE");
    await rejects(matrixRenyiEntropy({ gram: [[1, 0, 0], [0, 1, 0]] }), "E_SHAPE");
    await rejects(matrixRenyiEntropy(x, { alpha: 0 }), "E_RANGE");
    await rejects(ksgMutualInformation(x, y, { k: 0 }), "E_RANGE");
    await rejects(ksgMutualInformation(x, y, { algorithm: 3 as 1 }), "E_RANGE");
    await rejects(ksgMutualInformation(x, y, { base: 1 }), "E_RANGE");
    await rejects(ksgMutualInformation(x, y, { ci: 1.5 }), "E_RANGE");
    await rejects(ksgMutualInformation(x, y, { unknown: 1 } as never), "E_RANGE");
    await rejects(ksgMutualInformation(x.subarray(0, 6), y.subarray(0, 6), { ci: 0.9 }), "E_RANGE"); // subsample of 3 < k + 1
    await rejects(codingRate(x, { epsilonSquared: 0 }), "E_RANGE");
    await rejects(diffusionSpectralEntropy(x, { t: 0.5 }), "E_RANGE");
    await rejects(discreteEntropy([]), "E_RANGE");
  });
});
