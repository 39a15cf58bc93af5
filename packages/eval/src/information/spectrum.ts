/**
 * Spectral measures of a representation Z (n samples × d features, one sample per row): von Neumann
 * entropy and effective rank of its second-moment spectrum, coding rate and MCR² rate reduction, and
 * diffusion spectral entropy / mutual information. Native, double precision (Eigen's
 * SelfAdjointEigenSolver and Cholesky log-determinants; the smaller of ZᵀZ and ZZᵀ is factorised).
 * Entropies in nats by default (`base: 2` for bits). Every function accepts the resampling options
 * (`{ ci: 0.95, resamples, seed }`), subsampling rows by default.
 * @module
 */
import { TersorError } from "@tersor/core";
import { native } from "@tersor/native";
import { z } from "zod";

import { type InformationEstimate, ResampleOptionsSchema, makeEstimate, resampleInterval } from "./bootstrap.js";
import {
  BandwidthSchema,
  BaseSchema,
  type Codes,
  type DiscreteSamples,
  type Matrix,
  type Samples,
  assertFinite,
  parseOptions,
  resolveBandwidth,
  takeCodes,
  takeRows,
  toCodes,
  toMatrix,
} from "./input.js";

function prepare(z: Samples, what: string): Matrix {
  const m = toMatrix(z, what);
  assertFinite(m, what);
  if (m.n === 0) throw new TersorError("E_RANGE", `${what} has no samples`);
  return m;
}

function entropyOfSpectrum(lambda: Float64Array): number {
  let total = 0;
  for (const v of lambda) total += v;
  if (!(total > 0)) {
    throw new TersorError("E_RANGE", "the representation's spectrum is all zeros (a zero-variance representation): its entropy is undefined");
  }
  let h = 0;
  for (const v of lambda) if (v > 0) h -= (v / total) * Math.log(v / total);
  return h;
}

/** Options of {@link vonNeumannEntropy}. */
export const VonNeumannOptionsSchema = ResampleOptionsSchema.extend({
  /**
   * Subtract the feature means first (the covariance) instead of using the raw second moment
   * (1/n) ZᵀZ (the autocorrelation of Kim et al. 2023's VNE; the default, false).
   */
  center: z.boolean().optional(),
  /** Logarithm base of the result (default e: nats; 2: bits). */
  base: BaseSchema.optional(),
}).strict();
export type VonNeumannOptions = z.input<typeof VonNeumannOptionsSchema>;

/**
 * Von Neumann entropy of a representation: with λ the eigenvalues of C = (1/n) ZᵀZ (Z centred when
 * `center`) and p = λ / Σλ,
 *
 *   VNE(Z) = −Σ_i p_i ln p_i
 *
 * (the entropy of the normalised spectrum; Kim, Lee, Kim & Chang 2023, "VNE: an effective method for
 * improving deep representation by manipulating eigenvalue distribution", CVPR). ln d for isotropic
 * features, 0 for rank one. `details.effectiveRank` = exp(VNE in nats). Nats by default.
 */
export async function vonNeumannEntropy(z: Samples, opts: VonNeumannOptions = {}): Promise<InformationEstimate> {
  const o = parseOptions(VonNeumannOptionsSchema, opts, "vonNeumannEntropy");
  const m = prepare(z, "z");
  const center = o.center ?? false;
  const b = native();
  const run = async (s: Matrix) => entropyOfSpectrum(await b.covarianceSpectrum(s.data, s.n, s.d, center));
  const value = await run(m);
  const ci = await resampleInterval([m.n], value, ([idx]) => run(takeRows(m, idx!)), o, { method: "subsample", minSize: 1 });
  const base = o.base ?? Math.E;
  const est = makeEstimate({ estimator: "von-neumann", nats: value, n: m.n, base, ci });
  est.details = { effectiveRank: Math.exp(value) };
  return est;
}

/** Options of {@link effectiveRank}. */
export const EffectiveRankOptionsSchema = ResampleOptionsSchema.extend({
  /**
   * "eigen" (default): exp of the entropy of the normalised eigenvalues of (1/n) ZᵀZ, i.e. exp(VNE);
   * "singular": Roy & Vetterli's definition on the singular values σ of Z itself, p = σ / Σσ.
   */
  spectrum: z.enum(["eigen", "singular"]).optional(),
  /** Centre the features first (default false). */
  center: z.boolean().optional(),
}).strict();
export type EffectiveRankOptions = z.input<typeof EffectiveRankOptionsSchema>;

/**
 * Effective rank (Roy & Vetterli 2007, "The effective rank: a measure of effective dimensionality",
 * EUSIPCO): erank = exp(−Σ_i p_i ln p_i) with p the normalised spectrum: p = λ/Σλ of the eigenvalues of
 * (1/n) ZᵀZ ("eigen", default: exp of the von Neumann entropy) or p = σ/Σσ of the singular values of Z
 * ("singular", the paper's own definition; σ_i = sqrt(n λ_i)). Between 1 and min(n, d): n for I_n, 1 for
 * a rank-one matrix. Unit "dimensions".
 */
export async function effectiveRank(z: Samples, opts: EffectiveRankOptions = {}): Promise<InformationEstimate> {
  const o = parseOptions(EffectiveRankOptionsSchema, opts, "effectiveRank");
  const m = prepare(z, "z");
  const center = o.center ?? false;
  const singular = (o.spectrum ?? "eigen") === "singular";
  const b = native();
  const run = async (s: Matrix) => {
    const lambda = await b.covarianceSpectrum(s.data, s.n, s.d, center);
    return Math.exp(entropyOfSpectrum(singular ? lambda.map((v) => Math.sqrt(v)) : lambda));
  };
  const value = await run(m);
  const ci = await resampleInterval([m.n], value, ([idx]) => run(takeRows(m, idx!)), o, { method: "subsample", minSize: 1 });
  return makeEstimate({ estimator: singular ? "effective-rank-singular" : "effective-rank", nats: value, n: m.n, base: undefined, ci, unit: "dimensions" });
}

/** Options of {@link codingRate} and {@link rateReduction}. */
export const CodingRateOptionsSchema = ResampleOptionsSchema.extend({
  /** The distortion ε² (default 0.5, as in Yu et al. 2020's experiments). */
  epsilonSquared: z.number().positive().finite().optional(),
  /** Logarithm base of the result (default e: nats; 2: bits). */
  base: BaseSchema.optional(),
}).strict();
export type CodingRateOptions = z.input<typeof CodingRateOptionsSchema>;

/**
 * Coding rate (Ma, Derksen, Hong & Wright 2007, "Segmentation of multivariate mixed data via lossy data
 * coding and compression", TPAMI; Yu, Chan, You, Song & Ma 2020, "Learning diverse and discriminative
 * representations via the principle of maximal coding rate reduction", NeurIPS), samples as rows:
 *
 *   R(Z) = ½ ln det(I + d/(n ε²) ZᵀZ)
 *
 * (the same as ½ ln det(I + d/(n ε²) ZZᵀ) by Sylvester's identity; MCR² writes Z with samples as columns
 * and normalises them to the unit sphere: normalise rows first to match). Orthogonal features score
 * higher than collinear ones. Nats by default.
 */
export async function codingRate(z: Samples, opts: CodingRateOptions = {}): Promise<InformationEstimate> {
  const o = parseOptions(CodingRateOptionsSchema, opts, "codingRate");
  const eps2 = o.epsilonSquared ?? 0.5;
  const m = prepare(z, "z");
  const b = native();
  const run = (s: Matrix) => b.codingRate(s.data, s.n, s.d, eps2);
  const value = await run(m);
  const ci = await resampleInterval([m.n], value, ([idx]) => run(takeRows(m, idx!)), o, { method: "subsample", minSize: 1 });
  return makeEstimate({ estimator: "coding-rate", nats: value, n: m.n, base: o.base ?? Math.E, ci, parameters: { epsilonSquared: eps2 } });
}

/**
 * MCR² rate reduction (Yu et al. 2020):
 *
 *   ΔR(Z, Π) = R(Z) − Σ_j (n_j / 2n) ln det(I + d/(n_j ε²) Z_jᵀ Z_j)
 *
 * with Z_j the n_j rows of class j. `value` is ΔR; `details` holds `rate` R(Z) and `classRate` (the sum).
 * Nats by default.
 */
export async function rateReduction(z: Samples, labels: DiscreteSamples, opts: CodingRateOptions = {}): Promise<InformationEstimate> {
  const o = parseOptions(CodingRateOptionsSchema, opts, "rateReduction");
  const eps2 = o.epsilonSquared ?? 0.5;
  const m = prepare(z, "z");
  const c = toCodes(labels, "labels");
  if (c.codes.length !== m.n) throw new TersorError("E_SHAPE", `z has ${m.n} rows but labels has ${c.codes.length} entries: one label per row is needed`);
  const b = native();
  const run = (s: Matrix, l: Codes) => b.rateReduction(s.data, s.n, s.d, l.codes, l.classes, eps2);
  const r = await run(m, c);
  const ci = await resampleInterval(
    [m.n],
    r.reduction,
    async ([idx]) => (await run(takeRows(m, idx!), takeCodes(c, idx!))).reduction,
    o,
    { method: "subsample", minSize: 1 },
  );
  return makeEstimate({
    estimator: "rate-reduction",
    nats: r.reduction,
    n: m.n,
    base: o.base ?? Math.E,
    ci,
    details: { rate: r.rate, classRate: r.classRate },
    parameters: { epsilonSquared: eps2, classes: c.classes },
  });
}

/** Options of {@link diffusionSpectralEntropy} and {@link diffusionSpectralMutualInformation}. */
export const DiffusionOptionsSchema = ResampleOptionsSchema.extend({
  /** Gaussian kernel bandwidth σ (default "median"). */
  bandwidth: BandwidthSchema.optional(),
  /** Diffusion time t ≥ 1 (default 1). */
  t: z.number().min(1).finite().optional(),
  /** Logarithm base of the result (default e: nats; 2: bits). */
  base: BaseSchema.optional(),
}).strict();
export type DiffusionOptions = z.input<typeof DiffusionOptionsSchema>;

/**
 * Diffusion spectral entropy (Liao, Liu, Xu, Huang, Wolf & Krishnaswamy 2023, "Assessing neural network
 * representations during training using noise-resilient diffusion spectral entropy"): the Gaussian
 * kernel K_ij = exp(−|z_i − z_j|² / (2σ²)), the diffusion operator P = D⁻¹K (D the diagonal of row sums;
 * its eigenvalues are those of the symmetric D^{−½} K D^{−½}), powered t times; with
 * p_i = |λ_i|^t / Σ_j |λ_j|^t,
 *
 *   DSE(Z) = −Σ_i p_i ln p_i.
 *
 * ln n for points far apart at the kernel's scale, 0 for identical points; larger t suppresses the
 * small (noise) eigenvalues. O(n³). Nats by default.
 */
export async function diffusionSpectralEntropy(z: Samples, opts: DiffusionOptions = {}): Promise<InformationEstimate> {
  const o = parseOptions(DiffusionOptionsSchema, opts, "diffusionSpectralEntropy");
  const m = prepare(z, "z");
  const sigma = resolveBandwidth(o.bandwidth, m, "z");
  const t = o.t ?? 1;
  const b = native();
  const run = (s: Matrix) => b.diffusionSpectralEntropy(s.data, s.n, s.d, sigma, t);
  const value = await run(m);
  const ci = await resampleInterval([m.n], value, ([idx]) => run(takeRows(m, idx!)), o, { method: "subsample", minSize: 1 });
  return makeEstimate({ estimator: "diffusion-spectral-entropy", nats: value, n: m.n, base: o.base ?? Math.E, ci, parameters: { bandwidth: sigma, t } });
}

/**
 * Diffusion spectral mutual information between a representation and class labels (Liao et al. 2023):
 *
 *   DSMI(Z; Y) = DSE(Z) − Σ_c (n_c / n) DSE(Z_c)
 *
 * with Z_c the rows of class c and the same σ and t throughout. `details` holds `entropy` DSE(Z) and
 * `conditionalEntropy`. Nats by default.
 */
export async function diffusionSpectralMutualInformation(
  z: Samples,
  labels: DiscreteSamples,
  opts: DiffusionOptions = {},
): Promise<InformationEstimate> {
  const o = parseOptions(DiffusionOptionsSchema, opts, "diffusionSpectralMutualInformation");
  const m = prepare(z, "z");
  const c = toCodes(labels, "labels");
  if (c.codes.length !== m.n) throw new TersorError("E_SHAPE", `z has ${m.n} rows but labels has ${c.codes.length} entries: one label per row is needed`);
  const sigma = resolveBandwidth(o.bandwidth, m, "z");
  const t = o.t ?? 1;
  const b = native();
  const run = (s: Matrix, l: Codes) => b.diffusionSpectralMutualInformation(s.data, s.n, s.d, l.codes, l.classes, sigma, t);
  const r = await run(m, c);
  const ci = await resampleInterval([m.n], r.mi, async ([idx]) => (await run(takeRows(m, idx!), takeCodes(c, idx!))).mi, o, {
    method: "subsample",
    minSize: 1,
  });
  return makeEstimate({
    estimator: "diffusion-spectral-mi",
    nats: r.mi,
    n: m.n,
    base: o.base ?? Math.E,
    ci,
    details: { entropy: r.entropy, conditionalEntropy: r.conditionalEntropy },
    parameters: { bandwidth: sigma, t, classes: c.classes },
  });
}
