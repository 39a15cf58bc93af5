/**
 * One entry point over the proxy-run mixers: RegMix (linear, log-linear, GBDT regressions + top-k
 * proposal), Data Mixing Laws and BiMix, fitted to a {@link RunTable} for a target (a loss column
 * or `avg`), each reporting its proposed mixture and, with held-out runs, Spearman's ρ.
 */
import { TersorError } from "@tersor/core";

import { type RunTable, targetValues } from "./csv.js";
import { type BiMixLaw, type MixingLaw, bimixLoss, fitBiMixLaw, fitMixingLaw, mixingLawLoss, optimizeBiMix, optimizeMixingLaws } from "./laws.js";
import { type GbdtOptions, type RegressionModelKind, fitRegression, meanMixture, proposeMixture } from "./regression.js";
import { spearman } from "./stats.js";

export const FIT_METHODS = ["regmix", "mixlaw", "bimix"] as const;
export type FitMethod = (typeof FIT_METHODS)[number];

/** One fitted model's report. */
export interface FitReport {
  method: FitMethod;
  /** The regressor or law family (`linear`, `loglinear`, `gbdt`, `mixing-law`, `bimix`). */
  model: string;
  target: string;
  /** Spearman's ρ on the held-out runs (when given). */
  spearman?: number;
  /** The proposed mixture. */
  mixture: Record<string, number>;
  /** The model's predicted target loss at the proposed mixture. */
  predicted: number;
  /** Held-out (or, without hold-out, training) predictions next to the observed values. */
  points: { predicted: number; observed: number; heldOut: boolean }[];
  /** The fitted parameters (JSON). */
  parameters: unknown;
}

export interface FitOptions {
  holdout?: RunTable;
  seed?: number;
  /** RegMix: candidates and top-k [100000, 100]. */
  samples?: number;
  topK?: number;
  /** RegMix's regressors [linear, loglinear, gbdt]. */
  models?: RegressionModelKind[];
  gbdt?: GbdtOptions;
  /** BiMix: the smallest proportion a domain gets, and the floor used when predicting a zero proportion [1e-3]. */
  floor?: number;
}

function sameDomains(a: RunTable, b: RunTable): void {
  if (JSON.stringify(a.domains) !== JSON.stringify(b.domains))
    throw new TersorError("E_RANGE", `the hold-out runs have domains ${b.domains.join(",")}, the training runs ${a.domains.join(",")}`);
}

/** Index of the loss column of each domain (`metric/<domain>_val_loss` or containing the domain name), or -1. */
function columnOfDomain(t: RunTable, domain: string): number {
  const exact = t.lossColumns.indexOf(`metric/${domain}_val_loss`);
  if (exact >= 0) return exact;
  return t.lossColumns.findIndex((c) => c.includes(domain));
}

/** Fits `method` to the runs and proposes a mixture for `target`. */
export async function fitMixture(method: FitMethod, runs: RunTable, target: string, options: FitOptions = {}): Promise<FitReport[]> {
  if (!(FIT_METHODS as readonly string[]).includes(method)) throw new TersorError("E_RANGE", `unknown method "${method}"; expected ${FIT_METHODS.join(", ")}`);
  const tv = targetValues(runs, target);
  const ho = options.holdout;
  if (ho) sameDomains(runs, ho);
  const hoY = ho ? targetValues(ho, tv.name === "avg" ? "avg" : tv.name).values : undefined;
  const record = (w: number[]) => Object.fromEntries(runs.domains.map((d, i) => [d, w[i]!]));
  const evalPoints = async (predict: (X: number[][]) => Promise<number[]> | number[]) => {
    if (ho && hoY) {
      const p = await predict(ho.mixtures);
      return { spearman: spearman(p, hoY), points: p.map((v, i) => ({ predicted: v, observed: hoY[i]!, heldOut: true })) };
    }
    const p = await predict(runs.mixtures);
    return { points: p.map((v, i) => ({ predicted: v, observed: tv.values[i]!, heldOut: false })) };
  };
  const seed = options.seed ?? 0;

  if (method === "regmix") {
    const out: FitReport[] = [];
    for (const kind of options.models ?? (["linear", "loglinear", "gbdt"] as const)) {
      const m = await fitRegression(kind, runs.mixtures, tv.values, { gbdt: { seed, ...(options.gbdt ?? {}) } });
      const ev = await evalPoints((X) => m.predict(X));
      const p = await proposeMixture(m, { prior: meanMixture(runs.mixtures), samples: options.samples ?? 100_000, topK: options.topK ?? 100, seed });
      out.push({ method, model: kind, target: tv.name, ...(ev.spearman !== undefined ? { spearman: ev.spearman } : {}), mixture: record(p.weights), predicted: p.predicted, points: ev.points, parameters: m.toJSON() });
    }
    return out;
  }

  if (method === "mixlaw") {
    const cols = tv.name === "avg" ? runs.lossColumns.map((_, j) => j) : [runs.lossColumns.indexOf(tv.name)];
    const laws: MixingLaw[] = cols.map((j) => {
      const { objective: _o, ...law } = fitMixingLaw(runs.mixtures, runs.losses.map((r) => r[j]!), { seed });
      return law;
    });
    const predict = (X: number[][]) => X.map((r) => laws.reduce((s, l) => s + mixingLawLoss(l, r), 0) / laws.length);
    const ev = await evalPoints(predict);
    const opt = optimizeMixingLaws({ domains: runs.domains, targets: cols.map((j) => runs.lossColumns[j]!), laws }, { seed });
    return [{ method, model: "mixing-law", target: tv.name, ...(ev.spearman !== undefined ? { spearman: ev.spearman } : {}), mixture: record(opt.weights), predicted: opt.predicted, points: ev.points, parameters: { targets: cols.map((j) => runs.lossColumns[j]!), laws } }];
  }

  // BiMix: one law per domain in its own proportion; the swarm's runs share one step count (s = 1).
  const floor = options.floor ?? 1e-3;
  const cols = runs.domains.map((d) => columnOfDomain(runs, d));
  const usable = runs.domains.map((d, i) => ({ d, i, col: cols[i]! })).filter((x) => x.col >= 0);
  if (usable.length === 0) throw new TersorError("E_RANGE", "BiMix needs a loss column per domain (metric/<domain>_val_loss); none matched");
  const laws = new Map<number, BiMixLaw>();
  for (const { i, col } of usable) {
    const rows = runs.mixtures.map((m, k) => ({ r: m[i]!, y: runs.losses[k]![col]! })).filter((x) => x.r > 0);
    if (rows.length < 4) throw new TersorError("E_RANGE", `BiMix: domain "${runs.domains[i]}" has fewer than 4 runs with a positive proportion`);
    laws.set(i, fitBiMixLaw(rows.map((x) => x.r), rows.map((x) => 1), rows.map((x) => x.y), { seed }));
  }
  let targetIdx: number[];
  if (tv.name === "avg") targetIdx = usable.map((u) => u.i);
  else {
    const u = usable.find((x) => runs.lossColumns[x.col] === tv.name);
    if (!u) throw new TersorError("E_RANGE", `BiMix: target "${tv.name}" is not the loss of one of the mixture's domains`);
    targetIdx = [u.i];
  }
  const predict = (X: number[][]) => X.map((r) => targetIdx.reduce((s, i) => s + bimixLoss(laws.get(i)!, Math.max(r[i]!, floor), 1), 0) / targetIdx.length);
  const ev = await evalPoints(predict);
  // Optimise over the domains with laws; the others get the floor.
  const K = runs.domains.length;
  const lawList = runs.domains.map((_, i) => laws.get(i) ?? { A: 0, alpha: 0, B: 0, beta: 0, C: 0 });
  const tw = runs.domains.map((_, i) => (targetIdx.includes(i) ? 1 / targetIdx.length : 0));
  const opt = optimizeBiMix(lawList, 1, { targetWeights: tw, lower: Math.min(floor, 0.5 / K), seed });
  return [{ method, model: "bimix", target: tv.name, ...(ev.spearman !== undefined ? { spearman: ev.spearman } : {}), mixture: record(opt.weights), predicted: opt.predicted, points: ev.points, parameters: { laws: Object.fromEntries([...laws].map(([i, l]) => [runs.domains[i]!, l])) } }];
}
