import { describe, expect, it } from "vitest";

import { fitMixture, lossCsv, mixtureCsv, parseCsv, parseRunTables, targetValues } from "../src/index.js";

const M = "index,train_a,train_b\n1,0.25,0.75\n2,0.5,0.5\n";
const L = "index,metric/a_val_loss,metric/b_val_loss\n2,3.5,4.5\n1,3.0,4.0\n";

describe("RegMix CSV tables", () => {
  it("parses quoted fields and CRLF, and joins on index in loss-file order", () => {
    expect(parseCsv('a,"b,""c"""\r\n1,2\r\n').rows).toEqual([["1", "2"]]);
    expect(parseCsv('a,"b,""c"""\r\n1,2\r\n').header).toEqual(["a", 'b,"c"']);
    const t = parseRunTables(M, L);
    expect(t.ids).toEqual(["2", "1"]);
    expect(t.domains).toEqual(["a", "b"]);
    expect(t.mixtures).toEqual([[0.5, 0.5], [0.25, 0.75]]);
    expect(targetValues(t, "a").values).toEqual([3.5, 3.0]);
    expect(targetValues(t, "avg").values).toEqual([4, 3.5]);
    expect(() => targetValues(t, "zzz")).toThrow(/unknown target "zzz"/);
  });

  it("writes tables it reads back", () => {
    const m = mixtureCsv(["a", "b"], [{ id: 1, weights: [0.25, 0.75] }]);
    const l = lossCsv(["metric/a_val_loss", "metric/b_val_loss"], [{ id: 1, losses: [3, 4] }]);
    expect(parseRunTables(m, l).losses).toEqual([[3, 4]]);
  });

  it("rejects missing columns, NaN, ragged rows, off-simplex mixtures and unmatched runs", () => {
    const fmt = expect.objectContaining({ code: "E_FORMAT" });
    expect(() => parseRunTables("id,train_a\n1,1\n", L)).toThrow(/missing the "index" column/);
    expect(() => parseRunTables("index,a,b\n1,0.5,0.5\n", L)).toThrow(/no mixture columns/);
    expect(() => parseRunTables(M, "index\n1\n")).toThrow(/no loss columns/);
    expect(() => parseRunTables(M, "index,metric/a_val_loss\n1,NaN\n")).toThrow(fmt);
    expect(() => parseRunTables(M, "index,metric/a_val_loss\n1,\n")).toThrow(/line 2, column "metric\/a_val_loss" is not a finite number/);
    expect(() => parseRunTables("index,train_a,train_b\n1,0.5\n", L)).toThrow(/line 2 has 2 fields/);
    expect(() => parseRunTables("index,train_a,train_b\n1,0.5,0.9\n2,0.5,0.5\n", L)).toThrow(/off the simplex/);
    expect(() => parseRunTables("index,train_a,train_b\n1,-0.5,1.5\n2,0.5,0.5\n", L)).toThrow(/negative proportion/);
    expect(() => parseRunTables("index,train_a,train_b\n1,0.5,0.5\n", L)).toThrow(/run "2" has no row/);
    expect(() => parseRunTables(M + "1,0.5,0.5\n", L)).toThrow(/duplicate run index "1"/);
    expect(() => parseCsv("")).toThrow(/empty file/);
  });

  it("fitMixture rejects unknown methods and mismatched hold-outs", async () => {
    const t = parseRunTables(M, L);
    await expect(fitMixture("nope" as "regmix", t, "avg")).rejects.toThrow(/unknown method/);
    const other = parseRunTables("index,train_a,train_c\n1,0.5,0.5\n", "index,metric/a_val_loss\n1,3\n");
    await expect(fitMixture("regmix", t, "avg", { holdout: other })).rejects.toThrow(/hold-out runs have domains/);
  });
});

describe("too few runs", () => {
  it("a mixing law refuses fewer runs than parameters", async () => {
    const t = parseRunTables(M, L);
    await expect(fitMixture("mixlaw", t, "avg")).rejects.toThrow(/needs at least 4 runs, got 2/);
  });
});
