/**
 * k-nearest-neighbour estimators of differential entropy, mutual information, conditional mutual
 * information and divergence, on tersor's native exact k-NN search (KD-tree in low dimension, AVX2
 * brute force otherwise, parallel over query points).
 *
 * Notation: n samples; ψ is the digamma function; `|·|` is the max-norm (Chebyshev) unless stated;
 * "the k-th neighbour" of sample i excludes i itself. Every estimator computes in nats; `base` (default
 * e) converts (2 gives bits). Every one accepts the resampling options of {@link ResampleOptions}
 * (`{ ci: 0.95, resamples, seed }`); their default scheme is subsampling without replacement (duplicated
 * rows would be read as zero distances).
 *
 * Bad input is a {@link TersorError}: `E_SHAPE` for paired samples of different lengths or rows of
 * different widths, `E_RANGE` for NaN/±Infinity, n < k + 1, invalid options, and, for the estimators
 * that assume continuous data (Kozachenko–Leonenko, KSG, conditional KSG), constant columns or a point
 * with k or more exact duplicates: those are rejected rather than jittered (NPEET adds 1e-10 noise;
 * tersor asks you to drop the zero-variance column, which carries no information, or to use
 * {@link mixedMutualInformation}, which handles ties).
 * @module
 */
import { TersorError } from "@tersor/core";
import { type KnnMetric, native } from "@tersor/native";
import { z } from "zod";

import { type InformationEstimate, ResampleOptionsSchema, makeEstimate, resampleInterval } from "./bootstrap.js";
import { BaseSchema, type Matrix, type Samples, assertFinite, assertSameRows, parseOptions, takeRows, toMatrix } from "./input.js";

const KSchema = z.number().int().min(1).max(1_000_000);
const MetricSchema = z.enum(["chebyshev", "euclidean"]);

const CommonSchema = ResampleOptionsSchema.extend({
  /** Neighbours k (default 3; 5 for the mixed estimator). */
  k: KSchema.optional(),
  /** Logarithm base of the result (default e: nats; 2: bits). */
  base: BaseSchema.optional(),
});

/** Options of {@link klEntropy}. */
export const KlEntropyOptionsSchema = CommonSchema.extend({
  /** Distance (default "chebyshev"); the unit-ball volume in the formula follows it. */
  metric: MetricSchema.optional(),
}).strict();
export type KlEntropyOptions = z.input<typeof KlEntropyOptionsSchema>;

/** Options of {@link ksgMutualInformation}. */
export const KsgOptionsSchema = CommonSchema.extend({
  /** KSG algorithm 1 (default) or 2. */
  algorithm: z.union([z.literal(1), z.literal(2)]).optional(),
}).strict();
export type KsgOptions = z.input<typeof KsgOptionsSchema>;

/** Options of {@link ksgConditionalMutualInformation} and {@link mixedMutualInformation}. */
export const KnnMiOptionsSchema = CommonSchema.strict();
export type KnnMiOptions = z.input<typeof KnnMiOptionsSchema>;

/** Options of {@link knnKlDivergence}. */
export const KnnDivergenceOptionsSchema = CommonSchema.extend({
  /** Distance (default "euclidean"; the estimator is consistent for any norm). */
  metric: MetricSchema.optional(),
}).strict();
export type KnnDivergenceOptions = z.input<typeof KnnDivergenceOptionsSchema>;

function prepare(x: Samples, what: string): Matrix {
  const m = toMatrix(x, what);
  assertFinite(m, what);
  return m;
}

function checkK(k: number, n: number, fn: string): void {
  if (n < k + 1) throw new TersorError("E_RANGE", `${fn} with k = ${k} needs at least k + 1 = ${k + 1} samples, got ${n}`);
}

/**
 * Kozachenko–Leonenko differential entropy (Kozachenko & Leonenko 1987; Kraskov, Stögbauer & Grassberger
 * 2004, eq. 20):
 *
 *   Ĥ(X) = ψ(n) − ψ(k) + ln V_d + (d/n) Σ_i ln r_i
 *
 * with r_i the distance from x_i to its k-th neighbour and V_d the volume of the unit ball of the metric:
 * 2^d for "chebyshev" (default), π^{d/2} / Γ(d/2 + 1) for "euclidean". Nats by default. For a Gaussian
 * the truth is ½ ln((2πe)^d det Σ); for U[a, b]^d it is d ln(b − a).
 */
export async function klEntropy(x: Samples, opts: KlEntropyOptions = {}): Promise<InformationEstimate> {
  const o = parseOptions(KlEntropyOptionsSchema, opts, "klEntropy");
  const k = o.k ?? 3;
  const metric: KnnMetric = o.metric ?? "chebyshev";
  const m = prepare(x, "x");
  checkK(k, m.n, "Kozachenko–Leonenko entropy");
  const b = native();
  const run = (s: Matrix) => b.klEntropy(s.data, s.n, s.d, k, metric);
  const value = await run(m);
  const ci = await resampleInterval([m.n], value, ([idx]) => run(takeRows(m, idx!)), o, { method: "subsample", minSize: k + 1 });
  return makeEstimate({ estimator: "kozachenko-leonenko", nats: value, n: m.n, base: o.base ?? Math.E, ci, parameters: { k } });
}

/**
 * KSG mutual information I(X; Y) of continuous X (n × dx) and Y (n × dy) (Kraskov, Stögbauer &
 * Grassberger 2004, "Estimating mutual information", Phys. Rev. E 69, 066138), max-norm in every space:
 *
 * - algorithm 1 (default): Î = ψ(k) + ψ(n) − ⟨ψ(n_x + 1) + ψ(n_y + 1)⟩, where ε_i is the distance from
 *   (x_i, y_i) to its k-th neighbour in the joint space and n_x(i) = #{j ≠ i : |x_j − x_i| < ε_i}
 *   (n_y likewise);
 * - algorithm 2: Î = ψ(k) − 1/k + ψ(n) − ⟨ψ(n_x) + ψ(n_y)⟩, where ε_x(i) is the largest x-distance among
 *   the k joint neighbours and n_x(i) = #{j ≠ i : |x_j − x_i| ≤ ε_x(i)} (n_y likewise).
 *
 * ⟨·⟩ averages over i. Nats by default. Correlated Gaussians: I = −½ ln(1 − ρ²) (0.143841 nats at
 * ρ = 0.5); n = 10,000, k = 3 lands within ~0.03 nats. Constant columns and ties (discrete data) are
 * rejected with E_RANGE; use {@link mixedMutualInformation} for those.
 */
export async function ksgMutualInformation(x: Samples, y: Samples, opts: KsgOptions = {}): Promise<InformationEstimate> {
  const o = parseOptions(KsgOptionsSchema, opts, "ksgMutualInformation");
  const k = o.k ?? 3;
  const alg = o.algorithm ?? 1;
  const mx = prepare(x, "x");
  const my = prepare(y, "y");
  assertSameRows(mx, my, "x", "y");
  checkK(k, mx.n, "KSG mutual information");
  const b = native();
  const run = (a: Matrix, c: Matrix) => b.ksgMutualInformation(a.data, c.data, a.n, a.d, c.d, k, alg);
  const value = await run(mx, my);
  const ci = await resampleInterval([mx.n], value, ([idx]) => run(takeRows(mx, idx!), takeRows(my, idx!)), o, {
    method: "subsample",
    minSize: k + 1,
  });
  return makeEstimate({ estimator: `ksg${alg}`, nats: value, n: mx.n, base: o.base ?? Math.E, ci, parameters: { k } });
}

/**
 * Conditional mutual information I(X; Y | Z) by the KSG-style estimator of Frenzel & Pompe 2007
 * ("Partial mutual information for coupling analysis of multivariate time series", PRL 99, 204101):
 *
 *   Î = ψ(k) − ⟨ψ(n_xz + 1) + ψ(n_yz + 1) − ψ(n_z + 1)⟩
 *
 * with ε_i the max-norm distance to the k-th neighbour in the joint (x, y, z) space and n_xz, n_yz, n_z
 * the numbers of j ≠ i strictly within ε_i in those subspaces. Nats by default. Same input rules as
 * {@link ksgMutualInformation}.
 */
export async function ksgConditionalMutualInformation(
  x: Samples,
  y: Samples,
  z: Samples,
  opts: KnnMiOptions = {},
): Promise<InformationEstimate> {
  const o = parseOptions(KnnMiOptionsSchema, opts, "ksgConditionalMutualInformation");
  const k = o.k ?? 3;
  const mx = prepare(x, "x");
  const my = prepare(y, "y");
  const mz = prepare(z, "z");
  assertSameRows(mx, my, "x", "y");
  assertSameRows(mx, mz, "x", "z");
  checkK(k, mx.n, "KSG conditional mutual information");
  const b = native();
  const run = (a: Matrix, c: Matrix, e: Matrix) => b.ksgConditionalMutualInformation(a.data, c.data, e.data, a.n, a.d, c.d, e.d, k);
  const value = await run(mx, my, mz);
  const ci = await resampleInterval(
    [mx.n],
    value,
    ([idx]) => run(takeRows(mx, idx!), takeRows(my, idx!), takeRows(mz, idx!)),
    o,
    { method: "subsample", minSize: k + 1 },
  );
  return makeEstimate({ estimator: "frenzel-pompe", nats: value, n: mx.n, base: o.base ?? Math.E, ci, parameters: { k } });
}

/**
 * Mutual information of discrete, continuous or mixed X and Y (Gao, Kannan, Oh & Viswanath 2017,
 * "Estimating mutual information for discrete-continuous mixtures", NeurIPS), in the form of the authors'
 * reference implementation (digamma of strict counts where the paper writes logarithms of non-strict
 * counts; the paper's form is biased by about −0.19 nats at k = 5 on its own X ~ U{0..4},
 * Y | X ~ U[X, X + 2] example, whose truth is ln 5 − 0.8 ln 2):
 *
 * - ρ_i = max-norm distance from (x_i, y_i) to its k-th neighbour in the joint space;
 * - ρ_i > 0: ξ_i = ψ(k) + ln n − ψ(n_x + 1) − ψ(n_y + 1), n_x(i) = #{j ≠ i : |x_j − x_i| < ρ_i};
 * - ρ_i = 0 (at least k exact copies): ξ_i = ψ(t_i + 1) + ln n − ψ(m_x + 1) − ψ(m_y + 1), with t_i the
 *   copies of (x_i, y_i) and m_x(i) the copies of x_i (m_y likewise);
 * - Î = (1/n) Σ_i ξ_i.
 *
 * On continuous data it is KSG algorithm 1; on discrete data a digamma plug-in. Ties and constant columns
 * are allowed. k defaults to 5 (the authors' choice). Nats by default.
 */
export async function mixedMutualInformation(x: Samples, y: Samples, opts: KnnMiOptions = {}): Promise<InformationEstimate> {
  const o = parseOptions(KnnMiOptionsSchema, opts, "mixedMutualInformation");
  const k = o.k ?? 5;
  const mx = prepare(x, "x");
  const my = prepare(y, "y");
  assertSameRows(mx, my, "x", "y");
  checkK(k, mx.n, "mixed mutual information");
  const b = native();
  const run = (a: Matrix, c: Matrix) => b.mixedMutualInformation(a.data, c.data, a.n, a.d, c.d, k);
  const value = await run(mx, my);
  const ci = await resampleInterval([mx.n], value, ([idx]) => run(takeRows(mx, idx!), takeRows(my, idx!)), o, {
    method: "subsample",
    minSize: k + 1,
  });
  return makeEstimate({ estimator: "gao-mixed", nats: value, n: mx.n, base: o.base ?? Math.E, ci, parameters: { k } });
}

/**
 * k-NN estimate of the Kullback–Leibler divergence D(P ‖ Q) from x ~ P (n × d) and y ~ Q (m × d)
 * (Wang, Kulkarni & Verdú 2009, "Divergence estimation for multidimensional densities via k-nearest-
 * neighbor distances", IEEE Trans. Inf. Theory 55(5), eq. 5):
 *
 *   D̂ = (d/n) Σ_i ln(ν_k(i) / ρ_k(i)) + ln(m / (n − 1))
 *
 * with ρ_k(i) the distance from x_i to its k-th neighbour among the other x and ν_k(i) to its k-th
 * neighbour among the y. Euclidean distance by default. Nats by default. Two Gaussians:
 * D(N(μ₁, σ₁²) ‖ N(μ₂, σ₂²)) = ln(σ₂/σ₁) + (σ₁² + (μ₁ − μ₂)²)/(2σ₂²) − ½. Needs n ≥ k + 1, m ≥ k; a point
 * of x with k duplicates in x or in y is E_RANGE. Intervals resample x and y independently.
 */
export async function knnKlDivergence(p: Samples, q: Samples, opts: KnnDivergenceOptions = {}): Promise<InformationEstimate> {
  const o = parseOptions(KnnDivergenceOptionsSchema, opts, "knnKlDivergence");
  const k = o.k ?? 3;
  const metric: KnnMetric = o.metric ?? "euclidean";
  const mp = prepare(p, "p");
  const mq = prepare(q, "q");
  if (mp.d !== mq.d) throw new TersorError("E_SHAPE", `p has ${mp.d} columns but q has ${mq.d}: both samples must live in the same space`);
  checkK(k, mp.n, "the k-NN divergence");
  if (mq.n < k) throw new TersorError("E_RANGE", `the k-NN divergence with k = ${k} needs at least k samples of q, got ${mq.n}`);
  const b = native();
  const run = (a: Matrix, c: Matrix) => b.knnKlDivergence(a.data, a.n, c.data, c.n, a.d, k, metric);
  const value = await run(mp, mq);
  const ci = await resampleInterval([mp.n, mq.n], value, ([ip, iq]) => run(takeRows(mp, ip!), takeRows(mq, iq!)), o, {
    method: "subsample",
    minSize: k + 1,
  });
  return makeEstimate({ estimator: "wang-kulkarni-verdu", nats: value, n: mp.n, base: o.base ?? Math.E, ci, parameters: { k, m: mq.n } });
}

/** Options of {@link kNearestNeighbors}. */
export const KNearestOptionsSchema = z
  .object({
    k: KSchema.optional(),
    metric: MetricSchema.optional(),
    /** Query points (rows in x's space); default: every sample of x against the others. */
    queries: z.custom<Samples>().optional(),
  })
  .strict();
export type KNearestOptions = z.input<typeof KNearestOptionsSchema>;

/**
 * Exact k nearest neighbours of every sample (itself excluded) or of query points: `dist` and `idx` are
 * `rows × k` row-major, distances ascending ("chebyshev" by default, or "euclidean").
 */
export async function kNearestNeighbors(
  x: Samples,
  opts: KNearestOptions = {},
): Promise<{ dist: Float64Array; idx: Uint32Array; k: number; rows: number }> {
  const o = parseOptions(KNearestOptionsSchema, opts, "kNearestNeighbors");
  const k = o.k ?? 3;
  const m = prepare(x, "x");
  const metric: KnnMetric = o.metric ?? "chebyshev";
  if (o.queries === undefined) {
    checkK(k, m.n, "k nearest neighbours");
    const r = await native().knnSearch(m.data, m.n, m.d, k, metric, null, 0);
    return { ...r, k, rows: m.n };
  }
  const q = prepare(o.queries, "queries");
  if (q.d !== m.d) throw new TersorError("E_SHAPE", `queries have ${q.d} columns but x has ${m.d}`);
  if (m.n < k) throw new TersorError("E_RANGE", `k = ${k} nearest neighbours need at least k points, got ${m.n}`);
  const r = await native().knnSearch(m.data, m.n, m.d, k, metric, q.data, q.n);
  return { ...r, k, rows: q.n };
}
