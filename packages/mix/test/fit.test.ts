import { Rng } from "@tersor/core";
import { describe, expect, it } from "vitest";

import { bimixLoss, fitMixture, lossColumn, lossCsv, mixingLawLoss, mixtureCsv, parseRunTables, sampleDirichlet } from "../src/index.js";

// Synthetic proxy runs whose losses follow a mixing law per domain (domain i's loss falls with r_i).
const domains = ["a", "b", "c"];
const laws = domains.map((_, i) => ({ c: 2 + 0.3 * i, k: 1.5, t: domains.map((_, j) => (j === i ? -2 : 0.5)) }));
function table(n: number, seed: number) {
  const rng = new Rng(seed);
  const R = Array.from({ length: n }, () => sampleDirichlet(rng, [1, 1, 1]));
  const rows = R.map((r, k) => ({ id: k + 1, weights: r, losses: laws.map((l) => mixingLawLoss(l, r) * (1 + 0.001 * rng.nextNormal())) }));
  return parseRunTables(mixtureCsv(domains, rows), lossCsv(domains.map(lossColumn), rows));
}

describe("fitMixture", () => {
  const train = table(40, 1);
  const held = table(20, 2);

  it("mixing laws rank held-out runs and propose the law's optimum", async () => {
    const [r] = await fitMixture("mixlaw", train, "avg", { holdout: held });
    expect(r!.spearman!).toBeGreaterThan(0.95);
    // The laws are symmetric up to c, so the optimum of the average is the uniform mixture.
    for (const d of domains) expect(r!.mixture[d]!).toBeCloseTo(1 / 3, 2);
    const [one] = await fitMixture("mixlaw", train, "a");
    expect(one!.mixture["a"]!).toBeGreaterThan(0.5);
  });

  it("RegMix returns one report per regressor with the method, model, ρ and mixture", async () => {
    const reps = await fitMixture("regmix", train, "a", { holdout: held, samples: 5000, topK: 20, gbdt: { minChildSamples: 3, validFraction: 0 , numRounds: 200} });
    expect(reps.map((r) => r.model)).toEqual(["linear", "loglinear", "gbdt"]);
    for (const r of reps) {
      expect(r.method).toBe("regmix");
      expect(r.spearman!).toBeGreaterThan(0.8);
      expect(Math.max(...Object.values(r.mixture))).toBe(r.mixture["a"]);
    }
  });

  it("BiMix fits a law per domain in its own proportion", async () => {
    // Losses from BiMix laws with a shared step count.
    const rng = new Rng(4);
    const R = Array.from({ length: 30 }, () => sampleDirichlet(rng, [2, 2, 2]));
    const bl = [0.1, 0.2, 0.3].map((alpha, i) => ({ A: 1, alpha, B: 1, beta: 0.5, C: 2 + i }));
    const rows = R.map((r, k) => ({ id: k + 1, weights: r, losses: bl.map((l, i) => bimixLoss(l, r[i]!, 1)) }));
    const t = parseRunTables(mixtureCsv(domains, rows), lossCsv(domains.map(lossColumn), rows));
    const [r] = await fitMixture("bimix", t, "avg", { holdout: t });
    expect(r!.spearman!).toBeGreaterThan(0.99);
    // The domain with the steepest law (largest α·K) gets the most weight.
    expect(Math.max(...Object.values(r!.mixture))).toBe(r!.mixture["c"]);
  });
});
