/**
 * Confidence intervals for any estimator by resampling, deterministic under a seed (tersor's `Rng`).
 *
 * Two schemes, both reported with the percentile method:
 * - **bootstrap** (Efron 1979): B resamples of the n observations drawn with replacement
 *   (`rng.nextBelow(n)`, n draws per resample); interval `[q_{α/2}, q_{1−α/2}]` of the B estimates
 *   (quantiles by linear interpolation, "type 7"). The right scheme for plug-in (discrete) estimators.
 * - **subsample** (half-sampling / m-out-of-n without replacement; Politis & Romano 1994): B subsamples
 *   of m = round(f · n) distinct observations (a partial Fisher–Yates shuffle). Resampling with
 *   replacement would create exact duplicates, which k-NN estimators read as zero distances and kernel
 *   estimators as extra mass, so this is the default for every k-NN and kernel estimator. A subsample
 *   estimate varies more than the full-sample one (for a mean-like statistic, Var_m = σ²(n − m)/(m n)
 *   against σ²/n), so the percentile interval of the subsample estimates is centred on their mean and
 *   scaled by `s = sqrt(m / (n − m))` (= 1 at the default f = ½), then placed on the full-sample estimate:
 *   `[θ̂ + s (q_{α/2} − θ̄*), θ̂ + s (q_{1−α/2} − θ̄*)]`. Centring on θ̄* removes the estimator's
 *   sample-size dependent bias from the spread (k-NN estimates at m and n differ in bias).
 * Two-sample estimators (divergences) resample each sample independently with the same scheme.
 * @module
 */
import { Rng, TersorError } from "@tersor/core";
import { z } from "zod";

import { unitOf } from "./input.js";

/** A seed of tersor's RNG: a non-negative integer below 2^64. */
const SeedSchema = z.union([z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER), z.bigint().nonnegative().max(2n ** 64n - 1n)]);

/** The resampling options every estimator accepts. No `ci`: no interval (and no extra work). */
export const ResampleOptionsSchema = z.object({
  /** Confidence level of the interval, in (0, 1), e.g. 0.95. */
  ci: z.number().gt(0).lt(1).optional(),
  /** Number of resamples B (default 200). */
  resamples: z.number().int().min(2).max(1_000_000).optional(),
  /** Seed of the resampling stream (default 0). */
  seed: SeedSchema.optional(),
  /** "bootstrap" or "subsample"; the default depends on the estimator (see each one). */
  ciMethod: z.enum(["bootstrap", "subsample"]).optional(),
  /** Subsample size as a fraction f of n (default 0.5). */
  subsampleFraction: z.number().gt(0).lt(1).optional(),
});
export type ResampleOptions = z.infer<typeof ResampleOptionsSchema>;

/** A resampling confidence interval. */
export interface ConfidenceInterval {
  /** The confidence level, e.g. 0.95. */
  level: number;
  lower: number;
  upper: number;
  method: "bootstrap" | "subsample";
  resamples: number;
  /** The standard deviation of the resample estimates (scaled by `s` for subsampling). */
  standardError: number;
  /** Subsample sizes per sample (subsampling only). */
  subsampleSizes?: number[];
}

/** An estimate with its unit and, when asked for, a confidence interval. */
export interface InformationEstimate {
  /** The estimate, in `unit`. */
  value: number;
  /** "nats", "bits", "hartleys", … (or a non-logarithmic unit such as "dimensions"). */
  unit: string;
  /** The logarithm base of `unit` (absent for non-logarithmic quantities). */
  base?: number;
  /** Which estimator produced it. */
  estimator: string;
  /** The number of samples (of the first sample for two-sample measures). */
  n: number;
  /** Components of the estimate in the same unit (e.g. the entropies an MI is made of). */
  details?: Record<string, number>;
  /** The estimator's parameters as used (k, bandwidth, α, …), so a result documents itself. */
  parameters?: Record<string, number>;
  ci?: ConfidenceInterval;
}

/** Linear-interpolation quantile ("type 7") of sorted values. */
export function quantileSorted(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) throw new TersorError("E_RANGE", "quantile of no values");
  const h = (n - 1) * p;
  const lo = Math.floor(h);
  const hi = Math.min(n - 1, lo + 1);
  return sorted[lo]! + (h - lo) * (sorted[hi]! - sorted[lo]!);
}

/**
 * A percentile confidence interval for `estimate` by resampling. `sizes` are the sample sizes: one entry
 * for paired data (the same row indices are applied to every paired array), two for two-sample measures.
 * `estimate(indices)` receives one index array per sample and returns the estimate on those rows;
 * resamples run one after another (each native call already uses every core). `minSize` is the smallest
 * subsample an estimator accepts (e.g. k + 1). Returns undefined when `opts.ci` is not set.
 */
export async function resampleInterval(
  sizes: readonly number[],
  point: number,
  estimate: (indices: Uint32Array[]) => Promise<number>,
  opts: ResampleOptions,
  defaults: { method: "bootstrap" | "subsample"; minSize?: number },
): Promise<ConfidenceInterval | undefined> {
  if (opts.ci === undefined) return undefined;
  const method = opts.ciMethod ?? defaults.method;
  const B = opts.resamples ?? 200;
  const f = opts.subsampleFraction ?? 0.5;
  const rng = new Rng(opts.seed ?? 0);
  const m = sizes.map((n) => (method === "subsample" ? Math.round(f * n) : n));
  const minSize = defaults.minSize ?? 2;
  m.forEach((mi, s) => {
    if (mi < minSize) {
      throw new TersorError(
        "E_RANGE",
        `${method === "subsample" ? "a subsample" : "a resample"} of ${mi} rows (of ${sizes[s]}) is too small for this estimator (needs ${minSize}); ` +
          `use more samples${method === "subsample" ? " or a larger subsampleFraction" : ""}`,
      );
    }
  });
  // Draw every index set first, in order, so the stream does not depend on the estimator.
  const draws: Uint32Array[][] = [];
  for (let b = 0; b < B; b++) {
    draws.push(
      sizes.map((n, s) => {
        const idx = new Uint32Array(m[s]!);
        if (method === "bootstrap") {
          for (let i = 0; i < n; i++) idx[i] = rng.nextBelow(n);
        } else {
          const perm = new Uint32Array(n);
          for (let i = 0; i < n; i++) perm[i] = i;
          for (let i = 0; i < m[s]!; i++) {
            const j = i + rng.nextBelow(n - i);
            const t = perm[i]!;
            perm[i] = perm[j]!;
            perm[j] = t;
          }
          idx.set(perm.subarray(0, m[s]!));
        }
        return idx;
      }),
    );
  }
  const values = new Float64Array(B);
  for (let b = 0; b < B; b++) values[b] = await estimate(draws[b]!);
  const sorted = Float64Array.from(values).sort();
  const alpha = 1 - opts.ci;
  let mean = 0;
  for (const v of values) mean += v / B;
  let varSum = 0;
  for (const v of values) varSum += (v - mean) ** 2;
  const sd = Math.sqrt(varSum / (B - 1));
  if (method === "bootstrap") {
    return {
      level: opts.ci,
      lower: quantileSorted(sorted, alpha / 2),
      upper: quantileSorted(sorted, 1 - alpha / 2),
      method,
      resamples: B,
      standardError: sd,
    };
  }
  // Scale s = sqrt(m / (n - m)) of the first sample (the fraction is the same for every sample).
  const s = Math.sqrt(m[0]! / Math.max(1, sizes[0]! - m[0]!));
  return {
    level: opts.ci,
    lower: point + s * (quantileSorted(sorted, alpha / 2) - mean),
    upper: point + s * (quantileSorted(sorted, 1 - alpha / 2) - mean),
    method,
    resamples: B,
    standardError: s * sd,
    subsampleSizes: m,
  };
}

/**
 * Builds the result of an estimator computed in nats: divides the value, the interval and the details
 * by ln(base) (`base` undefined: the quantity is not logarithmic and `unit` names it).
 */
export function makeEstimate(r: {
  estimator: string;
  nats: number;
  n: number;
  base: number | undefined;
  ci: ConfidenceInterval | undefined;
  details?: Record<string, number>;
  parameters?: Record<string, number>;
  unit?: string;
}): InformationEstimate {
  const scale = r.base === undefined ? 1 : 1 / Math.log(r.base);
  const out: InformationEstimate = {
    value: r.nats * scale,
    unit: r.unit ?? (r.base === undefined ? "" : unitOf(r.base)),
    estimator: r.estimator,
    n: r.n,
  };
  if (r.base !== undefined) out.base = r.base;
  if (r.details) out.details = Object.fromEntries(Object.entries(r.details).map(([k, v]) => [k, v * scale]));
  if (r.parameters) out.parameters = r.parameters;
  if (r.ci) out.ci = { ...r.ci, lower: r.ci.lower * scale, upper: r.ci.upper * scale, standardError: r.ci.standardError * scale };
  return out;
}
