import { Rng } from "@tersor/core";
import { native } from "@tersor/native";
import { describe, expect, it } from "vitest";

import { fitRegression } from "../src/index.js";

describe("GBDT binding", () => {
  it("fits and predicts a smooth function, deterministically under a seed", async () => {
    const rng = new Rng(1);
    const n = 400;
    const X = Array.from({ length: n }, () => [rng.nextF64(), rng.nextF64(), rng.nextF64()]);
    const y = X.map((r) => Math.sin(3 * r[0]!) + r[1]! * r[1]!);
    const opts = { gbdt: { subsample: 0.8, colsample: 0.7, seed: 5, numRounds: 200 } };
    const m = await fitRegression("gbdt", X, y, opts);
    const p = await m.predict(X);
    const mse = p.reduce((s, v, i) => s + (v - y[i]!) ** 2, 0) / n;
    expect(mse).toBeLessThan(0.01);
    expect((await fitRegression("gbdt", X, y, opts)).toJSON()).toEqual(m.toJSON());
  });

  it("rejects bad shapes, non-finite values, bad options and corrupt models with codes", async () => {
    const b = native();
    await expect(b.gbdtFit(new Float64Array(6), 3, 3, new Float64Array(3))).rejects.toMatchObject({ code: "E_SHAPE" });
    await expect(b.gbdtFit(new Float64Array(6), 3, 2, new Float64Array(2))).rejects.toMatchObject({ code: "E_SHAPE" });
    await expect(b.gbdtFit(Float64Array.from([1, NaN, 2, 3, 4, 5]), 3, 2, new Float64Array(3))).rejects.toMatchObject({ code: "E_RANGE" });
    await expect(b.gbdtFit(new Float64Array(6), 3, 2, new Float64Array(3), { learningRate: 2 })).rejects.toMatchObject({ code: "E_RANGE" });
    await expect(b.gbdtPredict(Float64Array.from([9, 1, 0, 0]), new Float64Array(2), 1, 2)).rejects.toMatchObject({ code: "E_FORMAT" });
    const fit = await b.gbdtFit(Float64Array.from([0, 1, 2, 3, 4, 5, 6, 7]), 4, 2, Float64Array.from([0, 1, 2, 3]), { numRounds: 3, minChildSamples: 1 });
    await expect(b.gbdtPredict(fit.model, new Float64Array(3), 1, 3)).rejects.toMatchObject({ code: "E_SHAPE" });
    await expect(fitRegression("loglinear", [[1], [0]], [1, -1])).rejects.toThrow(/positive targets/);
  });
});
