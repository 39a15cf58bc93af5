import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { type CliResult, runCli } from "./helpers/run-cli.js";

const REGMIX = process.env["TERSOR_REGMIX_DIR"] ?? resolve(fileURLToPath(new URL(".", import.meta.url)), "../../../../shared/data/regmix");
const HAVE_REGMIX = existsSync(join(REGMIX, "train_mixture_1m.csv"));

const tersor = (...args: string[]): Promise<CliResult> => runCli(args, { threads: 1 });

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "tersor-cli-mix-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("tersor mix fit", () => {
  it.skipIf(!HAVE_REGMIX)("fits RegMix's published runs: one JSON object per model, ρ on the hold-out, a report", async () => {
    const r = await tersor(
      "mix", "fit", "--method", "regmix",
      "--runs", join(REGMIX, "train_mixture_1m.csv"), "--losses", join(REGMIX, "train_pile_loss_1m.csv"),
      "--holdout-runs", join(REGMIX, "test_mixture_1m.csv"), "--holdout-losses", join(REGMIX, "test_pile_loss_1m.csv"),
      "--target", "metric/the_pile_pile_cc_val_loss", "--samples", "20000", "--json", "--report", join(dir, "report"),
    );
    expect(r.code, r.stderr).toBe(0);
    const objs = r.stdout.trim().split("\n").map((l) => JSON.parse(l) as { method: string; model: string; spearman: number; mixture: Record<string, number> });
    expect(objs.map((o) => o.model)).toEqual(["linear", "loglinear", "gbdt"]);
    for (const o of objs) {
      expect(o.method).toBe("regmix");
      expect(o.spearman).toBeGreaterThanOrEqual(0.9);
      expect(Object.values(o.mixture).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 9);
    }
    expect(objs[2]!.spearman).toBeGreaterThanOrEqual(0.97);
    const rep = JSON.parse(await readFile(join(dir, "report", "report.json"), "utf8")) as { reports: unknown[]; stratified: Record<string, number> };
    expect(rep.reports).toHaveLength(3);
    expect(Object.keys(rep.stratified)).toHaveLength(17);
    expect(await readFile(join(dir, "report", "report.md"), "utf8")).toMatch(/\| the_pile_pile_cc \|/);
    const png = await readFile(join(dir, "report", "scatter-regmix-gbdt.png"));
    expect([...png.subarray(0, 4)]).toEqual([0x89, 0x50, 0x4e, 0x47]);
  }, 120_000);

  it("reports bad tables and options clearly", async () => {
    await writeFile(join(dir, "m.csv"), "index,train_a,train_b\n1,0.5,0.5\n2,0.2,0.8\n");
    await writeFile(join(dir, "bad-l.csv"), "run,metric/a_val_loss\n1,3\n");
    await writeFile(join(dir, "nan-l.csv"), "index,metric/a_val_loss\n1,NaN\n");
    await writeFile(join(dir, "off.csv"), "index,train_a,train_b\n1,0.5,0.9\n");
    const a = await tersor("mix", "fit", "--method", "regmix", "--runs", join(dir, "m.csv"), "--losses", join(dir, "bad-l.csv"));
    expect(a.code).not.toBe(0);
    expect(a.stderr).toMatch(/missing the "index" column/);
    const b = await tersor("mix", "fit", "--method", "regmix", "--runs", join(dir, "m.csv"), "--losses", join(dir, "nan-l.csv"));
    expect(b.stderr).toMatch(/not a finite number/);
    const c = await tersor("mix", "fit", "--method", "regmix", "--runs", join(dir, "off.csv"), "--losses", join(dir, "nan-l.csv"));
    expect(c.stderr).toMatch(/off the simplex/);
    const d = await tersor("mix", "fit", "--method", "magic", "--runs", join(dir, "m.csv"), "--losses", join(dir, "nan-l.csv"));
    expect(d.stderr).toMatch(/--method must be one of regmix, mixlaw, bimix/);
    const e = await tersor("mix", "swarm", "--domains", "corpus:sotu,corpus:atlantis", "--out", join(dir, "sw0"));
    expect(e.stderr).toMatch(/unknown domain "corpus:atlantis"/);
  });
});

describe("tersor mix swarm and eval", () => {
  it("runs a tiny swarm, resumes it without duplicates, fits it and evaluates against stratified", async () => {
    const out = join(dir, "sw");
    const common = ["mix", "swarm", "--domains", "corpus:sotu,corpus:wordnet", "--out", out, "--tokens", "4k", "--batch-tokens", "512", "--eval-tokens", "1024", "--json"];
    const first = await tersor(...common, "--runs", "2");
    expect(first.code, first.stderr).toBe(0);
    const again = await tersor(...common, "--runs", "5");
    expect(again.code, again.stderr).toBe(0);
    const s = JSON.parse(again.stdout) as { trained: number; skipped: number; completed: number; runsPerHour: number };
    expect(s).toMatchObject({ trained: 3, skipped: 2, completed: 5 });
    expect(s.runsPerHour).toBeGreaterThan(0);
    const ids = (await readFile(join(out, "losses.csv"), "utf8")).trim().split("\n").slice(1).map((l) => l.split(",")[0]);
    expect(ids).toEqual(["1", "2", "3", "4", "5"]);
    const fit = await tersor("mix", "fit", "--method", "mixlaw", "--runs", join(out, "mixtures.csv"), "--losses", join(out, "losses.csv"), "--target", "avg", "--json");
    expect(fit.code, fit.stderr).toBe(0);
    const mix = JSON.parse(fit.stdout.trim().split("\n")[0]!) as { method: string; model: string; mixture: Record<string, number> };
    expect(mix).toMatchObject({ method: "mixlaw", model: "mixing-law" });
    await writeFile(join(dir, "fit.json"), fit.stdout);
    const ev = await tersor("mix", "eval", "--domains", "corpus:sotu,corpus:wordnet", "--mixture", join(dir, "fit.json"), "--proxy", "ref-tiny-shape", "--tokens", "4k", "--batch-tokens", "512", "--eval-tokens", "1024", "--json");
    expect(ev.code, ev.stderr).toBe(0);
    const res = JSON.parse(ev.stdout) as { proposed: { average: number; perDomain: Record<string, number> }; stratified: { average: number; mixture: Record<string, number> } };
    expect(Object.keys(res.proposed.perDomain)).toEqual(["sotu", "wordnet"]);
    expect(res.stratified.mixture).toEqual({ sotu: 0.5, wordnet: 0.5 });
    expect(Number.isFinite(res.proposed.average)).toBe(true);
    const bad = await tersor("mix", "eval", "--domains", "corpus:sotu,corpus:wordnet", "--mixture", '{"sotu":0.5,"moby":0.5}', "--tokens", "1k");
    expect(bad.stderr).toMatch(/unknown domain|not in/);
  }, 240_000);
});
