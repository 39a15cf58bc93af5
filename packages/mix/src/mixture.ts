/**
 * Mixtures: named domains with proportions on the probability simplex, a token budget, and
 * per-domain repetition limits; RegMix's Dirichlet generator of candidate mixtures.
 */
import { Rng, TersorError } from "@tersor/core";
import { z } from "zod";

/** Tolerance on `|Σ w − 1|` for a mixture to count as on the simplex. */
export const SIMPLEX_TOLERANCE = 1e-6;

/** A data mixture: one proportion per named domain, on the simplex. */
export interface Mixture {
  /** Domain names, unique, in column order. */
  domains: string[];
  /** Proportions, `weights[i] ≥ 0`, summing to 1. */
  weights: number[];
  /** Total training tokens the mixture is meant for (optional). */
  tokenBudget?: number;
}

/** A domain of a data pool: its name, how many tokens it holds, how often it may be repeated. */
export interface DomainSpec {
  name: string;
  /** Tokens available in the domain (> 0). */
  tokens: number;
  /** Maximum epochs over the domain (default: unlimited). */
  maxEpochs?: number;
}

const domainNames = z
  .array(z.string().min(1, "a domain name must not be empty"))
  .min(1, "a mixture needs at least one domain")
  .refine((a) => new Set(a).size === a.length, "domain names must be unique");

function rangeError(msg: string): TersorError {
  return new TersorError("E_RANGE", msg);
}

/** Throws E_RANGE unless `domains` are non-empty, unique names. */
export function checkDomains(domains: readonly string[]): void {
  const r = domainNames.safeParse(domains);
  if (!r.success) throw rangeError(`invalid domains: ${r.error.issues.map((i) => i.message).join("; ")}`);
}

/**
 * Validates a mixture: unique domains, one finite non-negative weight per domain, summing to 1
 * within {@link SIMPLEX_TOLERANCE}. Throws E_SHAPE for a length mismatch, E_RANGE otherwise.
 */
export function checkMixture(m: Mixture): Mixture {
  checkDomains(m.domains);
  if (m.weights.length !== m.domains.length)
    throw new TersorError("E_SHAPE", `mixture has ${m.weights.length} weights for ${m.domains.length} domains`);
  checkSimplex(m.weights, "mixture");
  if (m.tokenBudget !== undefined && !(Number.isFinite(m.tokenBudget) && m.tokenBudget > 0))
    throw rangeError(`token budget must be a positive number, got ${m.tokenBudget}`);
  return m;
}

/** Throws E_RANGE unless `w` is a finite, non-negative vector summing to 1 (within `tol`). */
export function checkSimplex(w: ArrayLike<number>, what = "weights", tol = SIMPLEX_TOLERANCE): void {
  let s = 0;
  for (let i = 0; i < w.length; i++) {
    const v = w[i]!;
    if (!Number.isFinite(v)) throw rangeError(`${what}: entry ${i} is not a finite number (${v})`);
    if (v < 0) throw rangeError(`${what}: entry ${i} is negative (${v}); proportions must lie on the simplex`);
    s += v;
  }
  if (w.length === 0) throw rangeError(`${what}: empty`);
  if (Math.abs(s - 1) > tol) throw rangeError(`${what}: proportions sum to ${s}, not 1; they must lie on the simplex`);
}

/** `w / Σ w` for a finite, non-negative vector with a positive sum (E_RANGE otherwise). */
export function normalize(w: ArrayLike<number>, what = "weights"): number[] {
  let s = 0;
  for (let i = 0; i < w.length; i++) {
    const v = w[i]!;
    if (!Number.isFinite(v) || v < 0) throw rangeError(`${what}: entry ${i} must be a finite number ≥ 0, got ${v}`);
    s += v;
  }
  if (!(s > 0)) throw rangeError(`${what}: the entries sum to ${s}; need a positive total`);
  return Array.from(w, (v) => v / s);
}

/** Builds a validated mixture from a `{domain: weight}` record (weights normalised when `normalise`). */
export function mixtureFromRecord(rec: Record<string, number>, options: { normalise?: boolean; tokenBudget?: number } = {}): Mixture {
  const domains = Object.keys(rec);
  const raw = domains.map((d) => rec[d]!);
  const weights = options.normalise ? normalize(raw) : raw;
  return checkMixture({ domains, weights, ...(options.tokenBudget !== undefined ? { tokenBudget: options.tokenBudget } : {}) });
}

/** `{domain: weight}` of a mixture. */
export function mixtureToRecord(m: Mixture): Record<string, number> {
  return Object.fromEntries(m.domains.map((d, i) => [d, m.weights[i]!]));
}

/** Reorders a mixture to `domains` (E_RANGE when a name is unknown or missing). */
export function alignMixture(m: Mixture, domains: readonly string[]): Mixture {
  const idx = new Map(m.domains.map((d, i) => [d, i]));
  for (const d of domains) if (!idx.has(d)) throw rangeError(`unknown domain "${d}"; the mixture has ${m.domains.join(", ")}`);
  if (domains.length !== m.domains.length)
    throw rangeError(`the mixture has domains ${m.domains.filter((d) => !domains.includes(d)).join(", ")} not in ${domains.join(", ")}`);
  return { ...m, domains: [...domains], weights: domains.map((d) => m.weights[idx.get(d)!]!) };
}

/**
 * Epochs each domain is seen for under a mixture and token budget: `w_i · budget / tokens_i`.
 * Throws E_RANGE when a domain would be repeated beyond its `maxEpochs`.
 */
export function epochsPerDomain(m: Mixture, pool: readonly DomainSpec[], budget = m.tokenBudget): number[] {
  if (budget === undefined) throw rangeError("a token budget is needed to count epochs");
  const aligned = alignMixture(m, pool.map((p) => p.name));
  return pool.map((p, i) => {
    const e = (aligned.weights[i]! * budget) / p.tokens;
    if (p.maxEpochs !== undefined && e > p.maxEpochs + 1e-12)
      throw rangeError(`domain "${p.name}" would be repeated ${e.toFixed(3)} times, above its limit of ${p.maxEpochs} epochs`);
    return e;
  });
}

// ---- sampling -----------------------------------------------------------------------------------

/**
 * log of a Gamma(a, 1) variate by Marsaglia & Tsang (2000), with the boost
 * `G(a) = G(a + 1) · U^{1/a}` for a < 1 computed in log space (no underflow for tiny shapes).
 */
export function logGamma(rng: Rng, a: number): number {
  if (!(a > 0 && Number.isFinite(a))) throw rangeError(`gamma shape must be a positive number, got ${a}`);
  if (a < 1) {
    const u = 1 - rng.nextF64(); // (0, 1]
    return logGamma(rng, a + 1) + Math.log(u) / a;
  }
  const d = a - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = rng.nextNormal();
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = 1 - rng.nextF64();
    if (Math.log(u) < 0.5 * x * x + d - d * v + d * Math.log(v)) return Math.log(d) + Math.log(v);
  }
}

/** One draw from Dirichlet(alpha) (normalised Gamma variates, in log space). */
export function sampleDirichlet(rng: Rng, alpha: readonly number[]): number[] {
  const lg = alpha.map((a) => logGamma(rng, a));
  const m = Math.max(...lg);
  const e = lg.map((l) => Math.exp(l - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

/** Options of RegMix's mixture generator ({@link generateMixtures}). */
export interface DirichletGeneratorOptions {
  /** How many mixtures to return. */
  count: number;
  /** Token counts (or any positive sizes) of the domains: the prior is `counts^temperature`, normalised. */
  prior: readonly number[];
  /** Exponent on the prior (RegMix: 0.5 flattens, 1 keeps the token distribution) [1]. */
  temperature?: number;
  /** Smallest and largest Dirichlet concentration (strength) [0.1, 5.0]. */
  minConcentration?: number;
  maxConcentration?: number;
  /** Weights below this are set to 0 and the rest renormalised [0]. */
  minWeight?: number;
  /** With `budget`, rejects mixtures that repeat any domain more than its `maxEpochs`. */
  pool?: readonly DomainSpec[];
  budget?: number;
  seed?: number;
  /** Draws allowed per returned mixture before giving up (E_RANGE) [100]. */
  maxAttemptsPerSample?: number;
}

/**
 * Candidate mixtures as RegMix draws them (Liu et al. 2025, §3 and `mixture_config/synthesize_mixture.py`):
 * a prior `p ∝ tokens^τ`; for each sample a concentration strength `s`, log-uniform in
 * [min, max] (0.1–5.0, so samples range from nearly one-hot to close to the prior); weights
 * `~ Dirichlet(s·K·p)`; entries below `minWeight` zeroed and renormalised; samples that would repeat
 * a domain beyond its epoch limit rejected. Deterministic under `seed`.
 */
export function generateMixtures(options: DirichletGeneratorOptions): number[][] {
  const o = z
    .object({
      count: z.number().int().min(1).max(100_000_000),
      prior: z.array(z.number().finite().positive()).min(1),
      temperature: z.number().finite().min(0).default(1),
      minConcentration: z.number().finite().positive().default(0.1),
      maxConcentration: z.number().finite().positive().default(5.0),
      minWeight: z.number().min(0).lt(1).default(0),
      budget: z.number().positive().optional(),
      seed: z.number().int().min(0).default(0),
      maxAttemptsPerSample: z.number().int().min(1).default(100),
    })
    .safeParse(options);
  if (!o.success) throw rangeError(`invalid mixture generator options: ${o.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  const { count, temperature, minConcentration, maxConcentration, minWeight, seed, maxAttemptsPerSample } = o.data;
  if (minConcentration > maxConcentration) throw rangeError(`minConcentration ${minConcentration} exceeds maxConcentration ${maxConcentration}`);
  const K = o.data.prior.length;
  const p = normalize(o.data.prior.map((v) => Math.pow(v, temperature)), "prior");
  const pool = options.pool;
  if (pool && pool.length !== K) throw new TersorError("E_SHAPE", `pool has ${pool.length} domains, the prior ${K}`);
  const rng = new Rng(seed);
  const lo = Math.log(minConcentration);
  const hi = Math.log(maxConcentration);
  const out: number[][] = [];
  let attempts = 0;
  while (out.length < count) {
    if (++attempts > count * maxAttemptsPerSample)
      throw rangeError(`could not draw ${count} mixtures within the epoch limits after ${attempts - 1} attempts; relax maxEpochs or the budget`);
    const s = Math.exp(lo + (hi - lo) * rng.nextF64());
    let w = sampleDirichlet(rng, p.map((pi) => Math.max(s * K * pi, 1e-300)));
    if (minWeight > 0) {
      const cut = w.map((v) => (v < minWeight ? 0 : v));
      if (cut.some((v) => v > 0)) w = normalize(cut);
      else continue;
    }
    if (pool && o.data.budget !== undefined) {
      const ok = pool.every((d, i) => d.maxEpochs === undefined || (w[i]! * o.data.budget!) / d.tokens <= d.maxEpochs);
      if (!ok) continue;
    }
    out.push(w);
  }
  return out;
}
