import { Rng } from "@tersor/core";
import { describe, expect, it } from "vitest";

import { condense, herdingCoreset, kmeansRepresentatives, medianHeuristic, mmd2, randomSubset } from "../src/index.js";

/** 5 well-separated 2-D Gaussian clusters of unequal sizes (200, 100, 50, 30, 20 points). */
function mixture() {
  const sizes = [200, 100, 50, 30, 20];
  const centres = [[0, 0], [10, 0], [0, 10], [10, 10], [5, 20]];
  const rng = new Rng(42);
  const n = sizes.reduce((a, b) => a + b, 0);
  const data = new Float64Array(n * 2);
  const label = new Int32Array(n);
  let i = 0;
  sizes.forEach((s, c) => {
    for (let k = 0; k < s; k++, i++) {
      data[i * 2] = centres[c]![0]! + rng.nextNormal();
      data[i * 2 + 1] = centres[c]![1]! + rng.nextNormal();
      label[i] = c;
    }
  });
  return { e: { data, n, d: 2 }, label };
}

describe("dataset condensation", () => {
  const { e, label } = mixture();

  it("MMD² follows its definition: zero for the whole corpus, brute force on a small case", () => {
    expect(mmd2(e, Array.from({ length: e.n }, (_, i) => i))).toBeCloseTo(0, 10);
    const small = { data: Float64Array.from([0, 0, 1, 0, 0, 2]), n: 3, d: 2 };
    const g = 0.7;
    const k = (a: number[], b: number[]) => Math.exp(-g * ((a[0]! - b[0]!) ** 2 + (a[1]! - b[1]!) ** 2));
    const pts = [[0, 0], [1, 0], [0, 2]];
    let pp = 0;
    for (const a of pts) for (const b of pts) pp += k(a, b);
    const q = pts[1]!;
    const pq = pts.reduce((s, a) => s + k(a, q), 0);
    expect(mmd2(small, [1], g)).toBeCloseTo(pp / 9 + 1 - (2 * pq) / 3, 12);
  });

  it("k-means representatives cover every cluster; herding matches the distribution better than a random subset", () => {
    const m = 10;
    const km = kmeansRepresentatives(e, m, { seed: 1 });
    expect(new Set(km).size).toBe(m);
    expect(new Set(km.map((i) => label[i]))).toEqual(new Set([0, 1, 2, 3, 4]));
    const hd = herdingCoreset(e, m);
    expect(new Set(hd).size).toBe(m);
    const r = condense(e, m, { seed: 3 });
    expect(r.herding.indices).toEqual(hd);
    // Averaged over several random subsets, random is worse than herding (herding is deterministic).
    const gamma = medianHeuristic(e);
    let randomMean = 0;
    for (let s = 0; s < 10; s++) randomMean += mmd2(e, randomSubset(e.n, m, s), gamma) / 10;
    expect(r.herding.mmd2).toBeLessThan(randomMean);
    // Herding's cluster shares follow the corpus's (200:100:50:30:20 of 400 → 5:2.5:1.25:0.75:0.5 of 10).
    const share = [0, 0, 0, 0, 0];
    for (const i of hd) share[label[i]!]!++;
    expect(share[0]).toBeGreaterThanOrEqual(4);
  });

  it("bad input", () => {
    expect(() => kmeansRepresentatives(e, 0)).toThrow(/subset size/);
    expect(() => herdingCoreset(e, e.n + 1)).toThrow(/subset size/);
    expect(() => herdingCoreset({ data: new Float64Array(5), n: 3, d: 2 }, 1)).toThrow(/embeddings/);
    expect(() => herdingCoreset({ data: Float64Array.from([0, NaN]), n: 1, d: 2 }, 1)).toThrow(/not finite/);
  });
});
