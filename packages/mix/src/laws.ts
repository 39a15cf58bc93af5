/**
 * Scaling-law mixers.
 *
 * - Data Mixing Laws (Ye et al., "Data Mixing Laws: Optimizing Data Mixtures by Predicting Language
 *   Modeling Performance", ICLR 2025): per validation domain i, `L_i(r) = c_i + k_i·exp(Σ_j t_ij r_j)`,
 *   fitted with a Huber loss by multi-start L-BFGS; the nested pipeline extrapolates each proxy's
 *   training curve with the step law `L(S) = E + B/S^β`, then across model sizes with the size law
 *   `L(N) = E + A/N^α`, and fits the mixing law to the extrapolated losses; the mixture minimising the
 *   (weighted) predicted loss is found over the simplex.
 * - BiMix (Ge et al., "BiMix: A Bivariate Data Mixing Law for Language Model Pretraining", 2024):
 *   `L_i(r_i, s) = A_i / r_i^{α_i} · (B_i / s^{β_i} + C_i)` in a domain's own proportion and the
 *   training steps. Only the products `A_i·B_i` and `A_i·C_i` are identifiable, so fits report
 *   `A_i = 1`.
 */
import { Rng, TersorError } from "@tersor/core";

import { type Objective, huber, lbfgs, minimizeOnSimplex } from "./lbfgs.js";
import { checkSimplex } from "./mixture.js";
import { leastSquares } from "./stats.js";

/** Options shared by the law fits. */
export interface LawFitOptions {
  /** Huber threshold on residuals (loss units) [0.01]. */
  huberDelta?: number;
  /** L-BFGS restarts [16]. */
  starts?: number;
  seed?: number;
  maxIterations?: number;
}

function checkData(X: readonly (readonly number[])[], y: readonly number[], what: string): number {
  if (X.length === 0 || X.length !== y.length) throw new TersorError("E_SHAPE", `${what}: ${X.length} inputs and ${y.length} losses`);
  const d = X[0]!.length;
  X.forEach((r, i) => {
    if (r.length !== d) throw new TersorError("E_SHAPE", `${what}: row ${i} has ${r.length} values, expected ${d}`);
    if (!r.every(Number.isFinite)) throw new TersorError("E_RANGE", `${what}: row ${i} has a non-finite value`);
  });
  y.forEach((v, i) => {
    if (!Number.isFinite(v)) throw new TersorError("E_RANGE", `${what}: loss ${i} is not finite`);
  });
  return d;
}

function bestOf(starts: number, seed: number, init: (rng: Rng, s: number) => Float64Array, obj: Objective, maxIterations: number): { x: Float64Array; f: number } {
  const rng = new Rng(seed);
  let best: { x: Float64Array; f: number } | undefined;
  for (let s = 0; s < starts; s++) {
    const x0 = init(rng, s);
    const g = new Float64Array(x0.length);
    if (!Number.isFinite(obj(x0, g))) continue;
    const r = lbfgs(obj, x0, { maxIterations, gradientTolerance: 1e-12 });
    if (!best || r.f < best.f) best = { x: r.x, f: r.f };
  }
  if (!best) throw new TersorError("E_RANGE", "no starting point gave a finite objective");
  return best;
}

// ---- Data Mixing Laws ------------------------------------------------------------------------------

/** One domain's mixing law `L(r) = c + k·exp(t·r)`, with `t` centred (Σ t_j = 0; a shift of t is absorbed in k on the simplex). */
export interface MixingLaw {
  c: number;
  k: number;
  t: number[];
}

/** `c + k·exp(Σ t_j r_j)`. */
export function mixingLawLoss(law: MixingLaw, r: readonly number[]): number {
  let e = 0;
  for (let j = 0; j < law.t.length; j++) e += law.t[j]! * r[j]!;
  return law.c + law.k * Math.exp(e);
}

/** Fits one domain's mixing law to proxy runs (mixtures on the simplex → that domain's loss). */
export function fitMixingLaw(R: readonly (readonly number[])[], y: readonly number[], options: LawFitOptions = {}): MixingLaw & { objective: number } {
  const M = checkData(R, y, "mixing law");
  R.forEach((r, i) => checkSimplex(r, `mixing law: mixture ${i}`, 1e-3));
  if (y.length < M + 2) throw new TersorError("E_RANGE", `a mixing law over ${M} domains has ${M + 2} parameters; it needs at least ${M + 2} runs, got ${y.length}`);
  const delta = options.huberDelta ?? 0.01;
  const n = y.length;
  // Parameters [c, k, t_1..t_M].
  const obj: Objective = (p, g) => {
    g.fill(0);
    let f = 0;
    const c = p[0]!, k = p[1]!;
    for (let i = 0; i < n; i++) {
      const r = R[i]!;
      let e = 0;
      for (let j = 0; j < M; j++) e += p[2 + j]! * r[j]!;
      const ex = Math.exp(e);
      const h = huber(c + k * ex - y[i]!, delta);
      f += h.value;
      g[0] = g[0]! + h.grad;
      g[1] = g[1]! + h.grad * ex;
      for (let j = 0; j < M; j++) g[2 + j] = g[2 + j]! + h.grad * k * ex * r[j]!;
    }
    return f / n;
  };
  const scaled: Objective = (p, g) => {
    const f = obj(p, g);
    for (let i = 0; i < g.length; i++) g[i] = g[i]! / n;
    return f;
  };
  // Start: random t, then (c, k) by least squares on exp(t·r) (the law is linear in c and k).
  const init = (rng: Rng): Float64Array => {
    const p = new Float64Array(M + 2);
    for (let j = 0; j < M; j++) p[2 + j] = rng.nextNormal();
    const feat = R.map((r) => [Math.exp(r.reduce((s, v, j) => s + v * p[2 + j]!, 0))]);
    const [c, k] = leastSquares(feat, y, 1e-10);
    p[0] = c!;
    p[1] = k!;
    return p;
  };
  const best = bestOf(options.starts ?? 16, options.seed ?? 0, init, scaled, options.maxIterations ?? 2000);
  const t = Array.from(best.x.subarray(2));
  const mean = t.reduce((a, b) => a + b, 0) / M;
  return { c: best.x[0]!, k: best.x[1]! * Math.exp(mean), t: t.map((v) => v - mean), objective: best.f };
}

/** Mixing laws for several validation domains, and the mixture minimising their weighted sum. */
export interface MixingLawModel {
  domains: string[];
  /** One law per target (loss column). */
  targets: string[];
  laws: MixingLaw[];
}

/** Fits one mixing law per loss column. */
export function fitMixingLaws(domains: readonly string[], targets: readonly string[], R: readonly (readonly number[])[], losses: readonly (readonly number[])[], options: LawFitOptions = {}): MixingLawModel {
  if (losses.length !== R.length) throw new TersorError("E_SHAPE", `${R.length} mixtures and ${losses.length} loss rows`);
  const laws = targets.map((_, i) => {
    const { objective: _o, ...law } = fitMixingLaw(R, losses.map((row) => row[i]!), options);
    return law;
  });
  return { domains: [...domains], targets: [...targets], laws };
}

/**
 * The mixture minimising `Σ_i w_i L_i(r)` over the simplex (`targetWeights` default: equal weights,
 * the average loss), with an optional floor per proportion.
 */
export function optimizeMixingLaws(model: MixingLawModel, options: { targetWeights?: readonly number[]; lower?: number; seed?: number } = {}): { weights: number[]; predicted: number } {
  const w = options.targetWeights ?? model.laws.map(() => 1 / model.laws.length);
  if (w.length !== model.laws.length) throw new TersorError("E_SHAPE", `${w.length} target weights for ${model.laws.length} laws`);
  const K = model.domains.length;
  const res = minimizeOnSimplex(
    (r, g) => {
      let f = 0;
      model.laws.forEach((law, i) => {
        const ex = law.k * Math.exp(law.t.reduce((s, v, j) => s + v * r[j]!, 0));
        f += w[i]! * (law.c + ex);
        for (let j = 0; j < K; j++) g[j] = g[j]! + w[i]! * ex * law.t[j]!;
      });
      return f;
    },
    K,
    { ...(options.lower !== undefined ? { lower: options.lower } : {}), seed: options.seed ?? 0 },
  );
  return { weights: res.weights, predicted: res.value };
}

// ---- step and size laws ----------------------------------------------------------------------------

/** A power law with an irreducible term: `L(x) = E + B / x^β`. */
export interface PowerLaw {
  E: number;
  B: number;
  beta: number;
}

export function powerLawLoss(law: PowerLaw, x: number): number {
  return law.E + law.B / Math.pow(x, law.beta);
}

/** Fits `E + B/x^β` (B, β > 0 through log parameters) with a Huber loss and multi-start L-BFGS. */
export function fitPowerLaw(x: readonly number[], y: readonly number[], options: LawFitOptions = {}): PowerLaw {
  if (x.length < 3 || x.length !== y.length) throw new TersorError("E_SHAPE", `a power law needs at least 3 points, got ${x.length} and ${y.length} values`);
  x.forEach((v) => {
    if (!(v > 0 && Number.isFinite(v))) throw new TersorError("E_RANGE", `power-law inputs must be positive, got ${v}`);
  });
  y.forEach((v) => {
    if (!Number.isFinite(v)) throw new TersorError("E_RANGE", "power-law losses must be finite");
  });
  const delta = options.huberDelta ?? 0.01;
  const lx = x.map(Math.log);
  const n = x.length;
  // Parameters [E, ln B, ln β].
  const obj: Objective = (p, g) => {
    g.fill(0);
    const E = p[0]!, B = Math.exp(p[1]!), beta = Math.exp(p[2]!);
    let f = 0;
    for (let i = 0; i < n; i++) {
      const term = B * Math.exp(-beta * lx[i]!);
      const h = huber(E + term - y[i]!, delta);
      f += h.value / n;
      g[0] = g[0]! + h.grad / n;
      g[1] = g[1]! + (h.grad * term) / n;
      g[2] = g[2]! + (h.grad * term * -lx[i]! * beta) / n;
    }
    return f;
  };
  const ymin = Math.min(...y);
  const ymax = Math.max(...y);
  const xmin = Math.min(...x);
  const init = (rng: Rng, s: number): Float64Array => {
    const beta = s === 0 ? 0.5 : Math.exp(Math.log(0.05) + rng.nextF64() * Math.log(40));
    const E = ymin - (s === 0 ? 0.1 : rng.nextF64()) * Math.max(ymax - ymin, 1e-3);
    const B = Math.max((ymax - E) * Math.pow(xmin, beta), 1e-12);
    return Float64Array.from([E, Math.log(B), Math.log(beta)]);
  };
  const best = bestOf(options.starts ?? 16, options.seed ?? 0, init, obj, options.maxIterations ?? 2000);
  return { E: best.x[0]!, B: Math.exp(best.x[1]!), beta: Math.exp(best.x[2]!) };
}

/** One proxy run's training curve: a mixture, the model size, and per-target losses at steps. */
export interface CurveRun {
  /** Identifies the mixture (runs of different sizes on one mixture share it). */
  mixtureId: string;
  mixture: readonly number[];
  /** Model size (parameters). */
  size: number;
  steps: readonly number[];
  /** losses[t][s]: target t at steps[s]. */
  losses: readonly (readonly number[])[];
}

/**
 * Data Mixing Laws' nested extrapolation: for every run and target, the step law fitted to its curve
 * predicts the loss at `targetSteps`; for every mixture with runs at ≥ 3 sizes, the size law fitted
 * to those predictions gives the loss at `targetSize` (with fewer sizes the largest size's step
 * prediction is used). Returns one row per mixture, ready for {@link fitMixingLaws}.
 */
export function nestedExtrapolation(runs: readonly CurveRun[], options: { targetSteps: number; targetSize?: number } & LawFitOptions): { mixtureIds: string[]; mixtures: number[][]; losses: number[][] } {
  if (runs.length === 0) throw new TersorError("E_SHAPE", "no runs to extrapolate");
  const byMix = new Map<string, CurveRun[]>();
  for (const r of runs) {
    if (r.losses.some((l) => l.length !== r.steps.length)) throw new TersorError("E_SHAPE", `run of mixture ${r.mixtureId}: a loss curve does not match its steps`);
    const list = byMix.get(r.mixtureId) ?? [];
    list.push(r);
    byMix.set(r.mixtureId, list);
  }
  const T = runs[0]!.losses.length;
  const mixtureIds: string[] = [];
  const mixtures: number[][] = [];
  const losses: number[][] = [];
  for (const [id, list] of byMix) {
    const stepPred = list.map((r) => r.losses.map((curve) => powerLawLoss(fitPowerLaw(r.steps, curve, options), options.targetSteps)));
    const sizes = list.map((r) => r.size);
    const row: number[] = [];
    for (let t = 0; t < T; t++) {
      if (new Set(sizes).size >= 3 && options.targetSize !== undefined) {
        row.push(powerLawLoss(fitPowerLaw(sizes, stepPred.map((p) => p[t]!), options), options.targetSize));
      } else {
        const big = sizes.indexOf(Math.max(...sizes));
        row.push(stepPred[big]![t]!);
      }
    }
    mixtureIds.push(id);
    mixtures.push([...list[0]!.mixture]);
    losses.push(row);
  }
  return { mixtureIds, mixtures, losses };
}

// ---- BiMix -----------------------------------------------------------------------------------------

/** One domain's BiMix law `L(r, s) = A / r^α · (B / s^β + C)`. */
export interface BiMixLaw {
  A: number;
  alpha: number;
  B: number;
  beta: number;
  C: number;
}

export function bimixLoss(law: BiMixLaw, r: number, s: number): number {
  return (law.A / Math.pow(r, law.alpha)) * (law.B / Math.pow(s, law.beta) + law.C);
}

/**
 * Fits a domain's BiMix law to (own proportion r > 0, steps s > 0, loss) observations; parameters
 * `ln(AB), ln(AC), α, β` by multi-start L-BFGS on a Huber loss. Reports A = 1.
 */
export function fitBiMixLaw(r: readonly number[], s: readonly number[], y: readonly number[], options: LawFitOptions = {}): BiMixLaw {
  if (r.length < 4 || r.length !== s.length || r.length !== y.length) throw new TersorError("E_SHAPE", `BiMix needs at least 4 matching observations, got ${r.length}, ${s.length}, ${y.length}`);
  for (let i = 0; i < r.length; i++) {
    if (!(r[i]! > 0 && r[i]! <= 1)) throw new TersorError("E_RANGE", `BiMix: proportion ${i} must be in (0, 1], got ${r[i]}`);
    if (!(s[i]! > 0 && Number.isFinite(s[i]!))) throw new TersorError("E_RANGE", `BiMix: steps ${i} must be positive, got ${s[i]}`);
    if (!Number.isFinite(y[i]!)) throw new TersorError("E_RANGE", `BiMix: loss ${i} is not finite`);
  }
  const delta = options.huberDelta ?? 0.01;
  const n = r.length;
  const lr = r.map(Math.log);
  const ls = s.map(Math.log);
  const obj: Objective = (p, g) => {
    g.fill(0);
    const [lab, lac, alpha, beta] = [p[0]!, p[1]!, p[2]!, p[3]!];
    let f = 0;
    for (let i = 0; i < n; i++) {
      const ra = Math.exp(-alpha * lr[i]!);
      const sb = Math.exp(lab - beta * ls[i]!);
      const c = Math.exp(lac);
      const pred = ra * (sb + c);
      const h = huber(pred - y[i]!, delta);
      f += h.value / n;
      const gr = h.grad / n;
      g[0] = g[0]! + gr * ra * sb;
      g[1] = g[1]! + gr * ra * c;
      g[2] = g[2]! + gr * pred * -lr[i]!;
      g[3] = g[3]! + gr * ra * sb * -ls[i]!;
    }
    return f;
  };
  const ymin = Math.min(...y);
  const init = (rng: Rng, k: number): Float64Array => {
    const alpha = k === 0 ? 0.05 : 0.3 * rng.nextF64();
    const beta = k === 0 ? 0.5 : 0.05 + rng.nextF64();
    const C = Math.max(ymin * (0.5 + 0.5 * rng.nextF64()), 1e-6);
    const B = Math.max(ymin, 1e-6) * Math.pow(Math.min(...s), beta) * (0.1 + rng.nextF64());
    return Float64Array.from([Math.log(B), Math.log(C), alpha, beta]);
  };
  const best = bestOf(options.starts ?? 16, options.seed ?? 0, init, obj, options.maxIterations ?? 3000);
  return { A: 1, B: Math.exp(best.x[0]!), C: Math.exp(best.x[1]!), alpha: best.x[2]!, beta: best.x[3]! };
}

/** The mixture minimising `Σ_i w_i L_i(r_i, steps)` under BiMix laws (a floor keeps every r_i > 0). */
export function optimizeBiMix(laws: readonly BiMixLaw[], steps: number, options: { targetWeights?: readonly number[]; lower?: number; seed?: number } = {}): { weights: number[]; predicted: number } {
  const K = laws.length;
  const w = options.targetWeights ?? laws.map(() => 1 / K);
  if (w.length !== K) throw new TersorError("E_SHAPE", `${w.length} target weights for ${K} laws`);
  const res = minimizeOnSimplex(
    (r, g) => {
      let f = 0;
      laws.forEach((law, i) => {
        const L = bimixLoss(law, r[i]!, steps);
        f += w[i]! * L;
        g[i] = g[i]! + (w[i]! * -law.alpha * L) / r[i]!;
      });
      return f;
    },
    K,
    { lower: options.lower ?? 1e-4, seed: options.seed ?? 0 },
  );
  return { weights: res.weights, predicted: res.value };
}
