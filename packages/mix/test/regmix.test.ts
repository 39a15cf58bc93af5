// RegMix on its published proxy runs (../shared/data/regmix: 512 training runs of 1M-parameter
// models over 17 Pile domains, 256 held-out runs). Skipped with a message when the data is absent.
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { describe, expect, it } from "vitest";

import { type RunTable, fitRegression, heldOutSpearman, meanMixture, proposeMixture, readRunTables, regressionModelFromJSON, spearman, targetValues } from "../src/index.js";

const DIR = process.env["TERSOR_REGMIX_DIR"] ?? resolve(fileURLToPath(new URL(".", import.meta.url)), "../../../../shared/data/regmix");
const HAVE = existsSync(join(DIR, "train_mixture_1m.csv"));
if (!HAVE) console.warn(`RegMix data not found in ${DIR}; skipping the RegMix tests`);
const TARGET = "metric/the_pile_pile_cc_val_loss";

describe("spearman", () => {
  it("matches the closed form 1 - 6 Σd²/(n(n²-1)) without ties and averages tied ranks", () => {
    const x = [1, 2, 3, 4, 5], y = [2, 1, 4, 3, 5];
    expect(spearman(x, y)).toBeCloseTo(1 - (6 * 4) / (5 * 24), 12);
    expect(spearman([1, 2, 2, 3], [1, 2, 2, 3])).toBeCloseTo(1, 12);
    expect(spearman([1, 2, 3], [3, 2, 1])).toBeCloseTo(-1, 12);
  });
});

describe.skipIf(!HAVE)("RegMix regression on the published 1M proxy runs", () => {
  let train: RunTable, test: RunTable, y: number[], yt: number[];
  const load = async () => {
    train ??= await readRunTables(join(DIR, "train_mixture_1m.csv"), join(DIR, "train_pile_loss_1m.csv"));
    test ??= await readRunTables(join(DIR, "test_mixture_1m.csv"), join(DIR, "test_pile_loss_1m.csv"));
    y = targetValues(train, TARGET).values;
    yt = targetValues(test, TARGET).values;
  };

  it("reads 512 training and 256 held-out runs over 17 domains", async () => {
    await load();
    expect(train.ids.length).toBe(512);
    expect(test.ids.length).toBe(256);
    expect(train.domains.length).toBe(17);
    expect(train.domains).toContain("the_pile_pile_cc");
  });

  it("linear and log-linear models reach Spearman ρ ≥ 0.90 on the held-out runs", async () => {
    await load();
    const lin = await fitRegression("linear", train.mixtures, y);
    const r = await heldOutSpearman(lin, test.mixtures, yt);
    expect(r.spearman).toBeGreaterThanOrEqual(0.9);
    const log = await fitRegression("loglinear", train.mixtures, y);
    expect((await heldOutSpearman(log, test.mixtures, yt)).spearman).toBeGreaterThanOrEqual(0.9);
    // The model round-trips through JSON.
    const back = regressionModelFromJSON(JSON.parse(JSON.stringify(lin.toJSON())));
    expect(await back.predict(test.mixtures.slice(0, 3))).toEqual(await lin.predict(test.mixtures.slice(0, 3)));
  });

  it("the native GBDT reaches ρ ≥ 0.97, is deterministic, and its top-k mixture favours Pile-CC", async () => {
    await load();
    const gbdt = await fitRegression("gbdt", train.mixtures, y, { gbdt: { seed: 1 } });
    const r = await heldOutSpearman(gbdt, test.mixtures, yt);
    expect(r.spearman).toBeGreaterThanOrEqual(0.97);
    const again = await fitRegression("gbdt", train.mixtures, y, { gbdt: { seed: 1 } });
    expect(again.toJSON()).toEqual(gbdt.toJSON());
    const back = regressionModelFromJSON(JSON.parse(JSON.stringify(gbdt.toJSON())));
    expect(await back.predict(test.mixtures)).toEqual(r.predicted);
    const p = await proposeMixture(gbdt, { prior: meanMixture(train.mixtures), samples: 100_000, topK: 100, seed: 0 });
    const cc = train.domains.indexOf("the_pile_pile_cc");
    expect(p.weights.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 9);
    expect(Math.max(...p.weights)).toBe(p.weights[cc]);
    expect(p.weights[cc]!).toBeGreaterThan(0.5);
    // The proposal is predicted to beat 90% of the training runs.
    expect(p.predicted).toBeLessThan([...y].sort((a, b) => a - b)[Math.floor(0.1 * y.length)]!);
  }, 120_000);
});
