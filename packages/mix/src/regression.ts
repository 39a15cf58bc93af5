/**
 * RegMix (Liu et al., "RegMix: Data Mixture as Regression for Language Model Pre-training", ICLR 2025):
 * fit a regression from mixture proportions to a target loss on small proxy runs, predict the loss of
 * many Dirichlet-sampled candidate mixtures, and propose the mean of the top-k predicted mixtures.
 * Regressors: linear (OLS), log-linear (`ln L = b0 + Σ b_j r_j`) and the native histogram GBDT
 * (LightGBM's algorithm; native/include/tersor/gbdt.hpp).
 */
import { TersorError } from "@tersor/core";
import { type GbdtBindingOptions, native } from "@tersor/native";
import { z } from "zod";

import { type DomainSpec, generateMixtures } from "./mixture.js";
import { leastSquares, spearman } from "./stats.js";

/** The regressors RegMix can use. */
export const REGRESSION_MODELS = ["linear", "loglinear", "gbdt"] as const;
export type RegressionModelKind = (typeof REGRESSION_MODELS)[number];

/** GBDT hyper-parameters (see {@link GbdtBindingOptions}). */
export type GbdtOptions = GbdtBindingOptions;

/** RegMix's GBDT defaults: LightGBM-like, with early stopping on a 20% validation split. */
export const REGMIX_GBDT_DEFAULTS: Required<GbdtOptions> = {
  numRounds: 1000,
  learningRate: 0.05,
  maxDepth: 0,
  numLeaves: 31,
  lambdaL2: 1,
  minChildSamples: 5,
  minGain: 0,
  subsample: 1,
  colsample: 1,
  maxBins: 255,
  validFraction: 0.2,
  earlyStoppingRounds: 50,
  seed: 0,
};

/** A fitted regressor: serialisable (`toJSON`) and able to predict a batch of mixtures. */
export interface RegressionModel {
  readonly kind: RegressionModelKind;
  readonly features: number;
  predict(x: readonly (readonly number[])[]): Promise<number[]>;
  /** A JSON-able description (coefficients, or the GBDT's flat model and rounds). */
  toJSON(): Record<string, unknown>;
}

function checkXY(X: readonly (readonly number[])[], y: readonly number[]): number {
  if (X.length < 2) throw new TersorError("E_SHAPE", `need at least 2 runs to fit, got ${X.length}`);
  if (X.length !== y.length) throw new TersorError("E_SHAPE", `${X.length} mixtures but ${y.length} targets`);
  const d = X[0]!.length;
  X.forEach((r, i) => {
    if (r.length !== d) throw new TersorError("E_SHAPE", `mixture ${i} has ${r.length} proportions, expected ${d}`);
    r.forEach((v, j) => {
      if (!Number.isFinite(v)) throw new TersorError("E_RANGE", `mixture ${i} proportion ${j} is not finite`);
    });
  });
  y.forEach((v, i) => {
    if (!Number.isFinite(v)) throw new TersorError("E_RANGE", `target ${i} is not finite`);
  });
  return d;
}

function flatten(X: readonly (readonly number[])[], d: number): Float64Array {
  const out = new Float64Array(X.length * d);
  X.forEach((r, i) => {
    if (r.length !== d) throw new TersorError("E_SHAPE", `mixture ${i} has ${r.length} proportions, the model expects ${d}`);
    out.set(r, i * d);
  });
  return out;
}

class LinearModel implements RegressionModel {
  constructor(readonly kind: "linear" | "loglinear", readonly coef: number[]) {}
  get features(): number {
    return this.coef.length - 1;
  }
  predictOne(x: readonly number[]): number {
    let s = this.coef[0]!;
    for (let j = 0; j < x.length; j++) s += this.coef[j + 1]! * x[j]!;
    return this.kind === "loglinear" ? Math.exp(s) : s;
  }
  async predict(x: readonly (readonly number[])[]): Promise<number[]> {
    return x.map((r) => {
      if (r.length !== this.features) throw new TersorError("E_SHAPE", `mixture has ${r.length} proportions, the model expects ${this.features}`);
      return this.predictOne(r);
    });
  }
  toJSON(): Record<string, unknown> {
    return { kind: this.kind, intercept: this.coef[0], coefficients: this.coef.slice(1) };
  }
}

class GbdtModel implements RegressionModel {
  readonly kind = "gbdt" as const;
  constructor(
    readonly features: number,
    readonly model: Float64Array,
    readonly info: { bestRound: number; roundsRun: number; options: GbdtOptions },
  ) {}
  async predict(x: readonly (readonly number[])[]): Promise<number[]> {
    return Array.from(await native().gbdtPredict(this.model, flatten(x, this.features), x.length, this.features));
  }
  toJSON(): Record<string, unknown> {
    return { kind: "gbdt", features: this.features, bestRound: this.info.bestRound, roundsRun: this.info.roundsRun, options: this.info.options, model: Array.from(this.model) };
  }
}

/** Options of {@link fitRegression}. */
export interface FitRegressionOptions {
  /** Ridge on the linear coefficients (relative to the mean feature variance) [1e-8]. */
  ridge?: number;
  /** GBDT hyper-parameters (merged over {@link REGMIX_GBDT_DEFAULTS}). */
  gbdt?: GbdtOptions;
}

/** Fits one regressor from mixtures (rows on the simplex) to target losses. */
export async function fitRegression(kind: RegressionModelKind, X: readonly (readonly number[])[], y: readonly number[], options: FitRegressionOptions = {}): Promise<RegressionModel> {
  const d = checkXY(X, y);
  switch (kind) {
    case "linear":
      return new LinearModel("linear", leastSquares(X, y, options.ridge ?? 1e-8));
    case "loglinear": {
      y.forEach((v, i) => {
        if (!(v > 0)) throw new TersorError("E_RANGE", `the log-linear model needs positive targets; target ${i} is ${v}`);
      });
      return new LinearModel("loglinear", leastSquares(X, y.map(Math.log), options.ridge ?? 1e-8));
    }
    case "gbdt": {
      const o = { ...REGMIX_GBDT_DEFAULTS, ...(options.gbdt ?? {}) };
      const r = await native().gbdtFit(flatten(X, d), X.length, d, Float64Array.from(y), o);
      return new GbdtModel(d, r.model, { bestRound: r.bestRound, roundsRun: r.roundsRun, options: o });
    }
    default:
      throw new TersorError("E_RANGE", `unknown regression model "${String(kind)}"; expected ${REGRESSION_MODELS.join(", ")}`);
  }
}

/** Rebuilds a model from its `toJSON()` form. */
export function regressionModelFromJSON(j: Record<string, unknown>): RegressionModel {
  if (j["kind"] === "linear" || j["kind"] === "loglinear") {
    const p = z.object({ intercept: z.number(), coefficients: z.array(z.number()).min(1) }).safeParse(j);
    if (!p.success) throw new TersorError("E_FORMAT", `invalid ${String(j["kind"])} model: ${p.error.message}`);
    return new LinearModel(j["kind"], [p.data.intercept, ...p.data.coefficients]);
  }
  if (j["kind"] === "gbdt") {
    const p = z.object({ features: z.number().int().min(1), bestRound: z.number(), roundsRun: z.number(), model: z.array(z.number()).min(4) }).safeParse(j);
    if (!p.success) throw new TersorError("E_FORMAT", `invalid gbdt model: ${p.error.message}`);
    return new GbdtModel(p.data.features, Float64Array.from(p.data.model), { bestRound: p.data.bestRound, roundsRun: p.data.roundsRun, options: (j["options"] ?? {}) as GbdtOptions });
  }
  throw new TersorError("E_FORMAT", `unknown regression model kind ${JSON.stringify(j["kind"])}`);
}

/** Options of {@link proposeMixture}. */
export interface ProposeOptions {
  /** Candidate mixtures to score (RegMix: ≥ 100k) [100000]. */
  samples?: number;
  /** How many of the best candidates to average [100]. */
  topK?: number;
  /** Prior of the candidate generator (token counts); default: the mean of the training mixtures. */
  prior?: readonly number[];
  temperature?: number;
  minConcentration?: number;
  maxConcentration?: number;
  minWeight?: number;
  pool?: readonly DomainSpec[];
  budget?: number;
  seed?: number;
}

/**
 * RegMix's proposal: draw candidate mixtures with {@link generateMixtures}, predict their loss with
 * the fitted model, and return the mean of the `topK` mixtures with the lowest predicted loss.
 */
export async function proposeMixture(model: RegressionModel, options: ProposeOptions & { prior: readonly number[] }): Promise<{ weights: number[]; predicted: number; bestPredicted: number }> {
  const samples = options.samples ?? 100_000;
  const topK = options.topK ?? 100;
  if (!(Number.isInteger(topK) && topK >= 1 && topK <= samples)) throw new TersorError("E_RANGE", `topK must be an integer in [1, samples], got ${topK}`);
  const cands = generateMixtures({
    count: samples,
    prior: options.prior.map((v) => Math.max(v, 1e-12)),
    ...(options.temperature !== undefined ? { temperature: options.temperature } : {}),
    ...(options.minConcentration !== undefined ? { minConcentration: options.minConcentration } : {}),
    ...(options.maxConcentration !== undefined ? { maxConcentration: options.maxConcentration } : {}),
    ...(options.minWeight !== undefined ? { minWeight: options.minWeight } : {}),
    ...(options.pool ? { pool: options.pool } : {}),
    ...(options.budget !== undefined ? { budget: options.budget } : {}),
    seed: options.seed ?? 0,
  });
  const pred = await model.predict(cands);
  const order = pred.map((_, i) => i).sort((a, b) => pred[a]! - pred[b]! || a - b);
  const d = model.features;
  const mean = new Array<number>(d).fill(0);
  for (let k = 0; k < topK; k++) {
    const w = cands[order[k]!]!;
    for (let j = 0; j < d; j++) mean[j] = mean[j]! + w[j]! / topK;
  }
  const s = mean.reduce((a, b) => a + b, 0);
  const weights = mean.map((v) => v / s);
  const [predicted] = await model.predict([weights]);
  return { weights, predicted: predicted!, bestPredicted: pred[order[0]!]! };
}

/** Spearman's ρ between a model's predictions and observed losses. */
export async function heldOutSpearman(model: RegressionModel, X: readonly (readonly number[])[], y: readonly number[]): Promise<{ spearman: number; predicted: number[] }> {
  checkXY(X, y);
  const predicted = await model.predict(X);
  return { spearman: spearman(predicted, y), predicted };
}

/** The column means of a set of mixtures (RegMix's default candidate prior). */
export function meanMixture(X: readonly (readonly number[])[]): number[] {
  if (X.length === 0) throw new TersorError("E_SHAPE", "no mixtures");
  const d = X[0]!.length;
  const m = new Array<number>(d).fill(0);
  for (const r of X) for (let j = 0; j < d; j++) m[j] = m[j]! + r[j]! / X.length;
  return m;
}
