/**
 * Kernel and matrix-based information measures with Gaussian kernels, computed natively in double
 * precision (pairwise distances streamed and parallel; eigenvalues by Eigen's SelfAdjointEigenSolver).
 *
 * Kernel: κ_σ(a, b) = exp(−|a − b|² / (2σ²)) (Euclidean |·|), unnormalised, so κ(a, a) = 1. The
 * bandwidth σ is a positive number or "median" (default): the median Euclidean distance between
 * samples, over all pairs of at most 500 evenly spaced rows (a zero median — constant data — is
 * E_RANGE: pass a bandwidth). Results in nats; `base: 2` gives bits. Every function accepts the
 * resampling options (`{ ci: 0.95, resamples, seed }`), subsampling by default; the bandwidth is fixed
 * from the full sample before resampling.
 *
 * Costs: O(n² d) time for the streamed measures (KDE entropy, Cauchy–Schwarz), plus O(n³) time and
 * 8n² bytes for the eigenvalue-based ones (matrix Rényi entropies): keep n to a few thousand there.
 * @module
 */
import { Tensor, TersorError } from "@tersor/core";
import { native } from "@tersor/native";
import { z } from "zod";

import { type InformationEstimate, ResampleOptionsSchema, makeEstimate, resampleInterval } from "./bootstrap.js";
import {
  type Bandwidth,
  BandwidthSchema,
  BaseSchema,
  type Matrix,
  type Samples,
  assertFinite,
  assertSameRows,
  medianOf,
  parseOptions,
  resolveBandwidth,
  takeRows,
  toMatrix,
} from "./input.js";

export { type Bandwidth, BandwidthSchema } from "./input.js";

const KernelCommonSchema = ResampleOptionsSchema.extend({
  /** Gaussian kernel bandwidth σ (default "median"). */
  bandwidth: BandwidthSchema.optional(),
  /** Logarithm base of the result (default e: nats; 2: bits). */
  base: BaseSchema.optional(),
});

function prepare(x: Samples, what: string): Matrix {
  const m = toMatrix(x, what);
  assertFinite(m, what);
  if (m.n === 0) throw new TersorError("E_RANGE", `${what} has no samples`);
  return m;
}

/**
 * The median Euclidean distance between rows of `x` over all pairs of at most `maxRows` (default 500)
 * evenly spaced rows: the usual "median heuristic" bandwidth. E_RANGE when it is 0 (constant data).
 */
export function medianHeuristicBandwidth(x: Samples, maxRows = 500): number {
  return medianOf(prepare(x, "x"), maxRows, "x");
}

/** Options of {@link kdeEntropy}. */
export const KdeEntropyOptionsSchema = KernelCommonSchema.strict();
export type KdeEntropyOptions = z.input<typeof KdeEntropyOptionsSchema>;

/**
 * Kernel-density entropy in the QUESTS form (Schwalbe-Koda, Hamel, Sadigh, Zhou & Lordi 2024, "Model-free
 * estimation of completeness, uncertainties, and outliers in atomistic machine learning using information
 * theory"):
 *
 *   H = −(1/N) Σ_i ln( (1/N) Σ_j κ_h(x_i, x_j) ),   κ_h(a, b) = exp(−|a − b|² / (2h²))
 *
 * (the kernel is not normalised to a density, so H = 0 for N identical points and ln N for points much
 * farther apart than h; H is the log of an effective number of distinct samples). Nats by default.
 * `bandwidth` is h (default "median", which fails on constant data: pass h explicitly there).
 */
export async function kdeEntropy(x: Samples, opts: KdeEntropyOptions = {}): Promise<InformationEstimate> {
  const o = parseOptions(KdeEntropyOptionsSchema, opts, "kdeEntropy");
  const m = prepare(x, "x");
  const h = resolveBandwidth(o.bandwidth, m, "x");
  const b = native();
  const run = (s: Matrix) => b.kdeEntropy(s.data, s.n, s.d, h);
  const value = await run(m);
  const ci = await resampleInterval([m.n], value, ([idx]) => run(takeRows(m, idx!)), o, { method: "subsample", minSize: 1 });
  return makeEstimate({ estimator: "kde-quests", nats: value, n: m.n, base: o.base ?? Math.E, ci, parameters: { bandwidth: h } });
}

/** Options of {@link gaussianGram}. */
export const GramOptionsSchema = z.object({ bandwidth: BandwidthSchema.optional() }).strict();
export type GramOptions = z.input<typeof GramOptionsSchema>;

/** The Gaussian Gram matrix K_ij = exp(−|x_i − x_j|² / (2σ²)) as an f64 tensor [n, n]. */
export async function gaussianGram(x: Samples, opts: GramOptions = {}): Promise<Tensor<"f64">> {
  const o = parseOptions(GramOptionsSchema, opts, "gaussianGram");
  const m = prepare(x, "x");
  const sigma = resolveBandwidth(o.bandwidth, m, "x");
  const k = await native().gaussianGram(m.data, m.n, m.d, sigma);
  return new Tensor("f64", [m.n, m.n], k);
}

/** A precomputed Gram (kernel) matrix, n × n, symmetric with a positive trace. */
export interface GramMatrix {
  gram: Tensor | Float64Array | readonly ArrayLike<number>[];
}

function isGram(x: Samples | GramMatrix): x is GramMatrix {
  return typeof x === "object" && x !== null && !(x instanceof Tensor) && !Array.isArray(x) && !ArrayBuffer.isView(x) && "gram" in x;
}

/** A Gram matrix source: either a given matrix or samples with a bandwidth. */
interface GramSource {
  n: number;
  /** The Gram matrix of the rows idx (all rows when null). */
  gram(idx: Uint32Array | null): Promise<Float64Array>;
  bandwidth?: number;
}

function gramSource(x: Samples | GramMatrix, bw: Bandwidth | undefined, what: string): GramSource {
  if (isGram(x)) {
    let g: Matrix;
    if (x.gram instanceof Float64Array) {
      const n = Math.round(Math.sqrt(x.gram.length));
      if (n * n !== x.gram.length) throw new TersorError("E_SHAPE", `${what}: a flat Gram matrix needs n² values, got ${x.gram.length}`);
      g = { data: x.gram, n, d: n };
    } else g = toMatrix(x.gram as Samples, `${what} Gram matrix`);
    if (g.n !== g.d) throw new TersorError("E_SHAPE", `${what}: a Gram matrix must be square, got ${g.n} × ${g.d}`);
    assertFinite(g, `${what} Gram matrix`);
    const n = g.n;
    return {
      n,
      gram: async (idx) => {
        if (!idx) return g.data;
        const out = new Float64Array(idx.length * idx.length);
        for (let a = 0; a < idx.length; a++) for (let b = 0; b < idx.length; b++) out[a * idx.length + b] = g.data[idx[a]! * n + idx[b]!]!;
        return out;
      },
    };
  }
  const m = prepare(x, what);
  const sigma = resolveBandwidth(bw, m, what);
  const b = native();
  return { n: m.n, bandwidth: sigma, gram: (idx) => (idx ? b.gaussianGram(takeRows(m, idx).data, idx.length, m.d, sigma) : b.gaussianGram(m.data, m.n, m.d, sigma)) };
}

function withBandwidth(p: Record<string, number>, bw: number | undefined): Record<string, number> {
  return bw === undefined ? p : { ...p, bandwidth: bw };
}

function pairParameters(alpha: number, sx: GramSource, sy: GramSource): Record<string, number> {
  const p: Record<string, number> = { alpha };
  if (sx.bandwidth !== undefined) p["bandwidth"] = sx.bandwidth;
  if (sy.bandwidth !== undefined) p["bandwidthY"] = sy.bandwidth;
  return p;
}

/** Options of the matrix-based Rényi functions. */
export const MatrixRenyiOptionsSchema = KernelCommonSchema.extend({
  /** The order α > 0 (default 1.01, near Shannon, as in Yu et al.'s information-plane studies; α = 1 is von Neumann). */
  alpha: z.number().positive().finite().optional(),
  /** Bandwidth for the second variable (default: "median" of its own samples). */
  bandwidthY: BandwidthSchema.optional(),
}).strict();
export type MatrixRenyiOptions = z.input<typeof MatrixRenyiOptionsSchema>;

/**
 * Matrix-based Rényi α-entropy (Sanchez Giraldo, Rao & Principe 2015, "Measures of entropy from data
 * using infinitely divisible kernels", IEEE Trans. Inf. Theory 61(1)):
 *
 *   S_α(A) = 1/(1 − α) · log( Σ_i λ_i(A)^α ),   A = K / tr K,
 *
 * with K the Gaussian Gram matrix of the samples (or a given `{ gram }`); α = 1 is the von Neumann limit
 * −Σ λ_i log λ_i. The paper uses log₂ (bits): pass `base: 2` to match it; the default here is nats like
 * every estimator. S_α(I_n) = log n, S_α(all-ones) = 0.
 */
export async function matrixRenyiEntropy(x: Samples | GramMatrix, opts: MatrixRenyiOptions = {}): Promise<InformationEstimate> {
  const o = parseOptions(MatrixRenyiOptionsSchema, opts, "matrixRenyiEntropy");
  const alpha = o.alpha ?? 1.01;
  const src = gramSource(x, o.bandwidth, "x");
  const b = native();
  const run = async (idx: Uint32Array | null) => {
    const g = await src.gram(idx);
    return b.matrixRenyiEntropy(g, idx ? idx.length : src.n, alpha, null);
  };
  const value = await run(null);
  const ci = await resampleInterval([src.n], value, ([idx]) => run(idx!), o, { method: "subsample", minSize: 2 });
  return makeEstimate({ estimator: "matrix-renyi", nats: value, n: src.n, base: o.base ?? Math.E, ci, parameters: withBandwidth({ alpha }, src.bandwidth) });
}

async function renyiTriple(
  sx: GramSource,
  sy: GramSource,
  alpha: number,
  idx: Uint32Array | null,
): Promise<{ hx: number; hy: number; hxy: number }> {
  const b = native();
  const n = idx ? idx.length : sx.n;
  const [gx, gy] = [await sx.gram(idx), await sy.gram(idx)];
  const hx = await b.matrixRenyiEntropy(gx, n, alpha, null);
  const hy = await b.matrixRenyiEntropy(gy, n, alpha, null);
  const hxy = await b.matrixRenyiEntropy(gx, n, alpha, gy);
  return { hx, hy, hxy };
}

function pairedSources(x: Samples | GramMatrix, y: Samples | GramMatrix, o: { bandwidth?: Bandwidth | undefined; bandwidthY?: Bandwidth | undefined }) {
  const sx = gramSource(x, o.bandwidth, "x");
  const sy = gramSource(y, o.bandwidthY, "y");
  if (sx.n !== sy.n) throw new TersorError("E_SHAPE", `x has ${sx.n} samples but y has ${sy.n}: paired samples need the same count`);
  return { sx, sy };
}

/**
 * Matrix-based joint Rényi entropy S_α(A, B) = S_α( (A ∘ B) / tr(A ∘ B) ) (Hadamard product of the
 * normalised Grams; Yu, Sanchez Giraldo, Jenssen & Principe 2019, "Multivariate extension of matrix-based
 * Rényi's α-order entropy functional"). Nats by default.
 */
export async function matrixRenyiJointEntropy(
  x: Samples | GramMatrix,
  y: Samples | GramMatrix,
  opts: MatrixRenyiOptions = {},
): Promise<InformationEstimate> {
  const o = parseOptions(MatrixRenyiOptionsSchema, opts, "matrixRenyiJointEntropy");
  const alpha = o.alpha ?? 1.01;
  const { sx, sy } = pairedSources(x, y, o);
  const b = native();
  const run = async (idx: Uint32Array | null) => {
    const n = idx ? idx.length : sx.n;
    return b.matrixRenyiEntropy(await sx.gram(idx), n, alpha, await sy.gram(idx));
  };
  const value = await run(null);
  const ci = await resampleInterval([sx.n], value, ([idx]) => run(idx!), o, { method: "subsample", minSize: 2 });
  return makeEstimate({ estimator: "matrix-renyi-joint", nats: value, n: sx.n, base: o.base ?? Math.E, ci, parameters: pairParameters(alpha, sx, sy) });
}

/**
 * Matrix-based Rényi mutual information I_α(X; Y) = S_α(A) + S_α(B) − S_α(A, B) (Sanchez Giraldo et al.
 * 2015; Yu et al. 2019). `details` holds the three entropies. Nats by default.
 */
export async function matrixRenyiMutualInformation(
  x: Samples | GramMatrix,
  y: Samples | GramMatrix,
  opts: MatrixRenyiOptions = {},
): Promise<InformationEstimate> {
  const o = parseOptions(MatrixRenyiOptionsSchema, opts, "matrixRenyiMutualInformation");
  const alpha = o.alpha ?? 1.01;
  const { sx, sy } = pairedSources(x, y, o);
  const full = await renyiTriple(sx, sy, alpha, null);
  const value = full.hx + full.hy - full.hxy;
  const ci = await resampleInterval(
    [sx.n],
    value,
    async ([idx]) => {
      const r = await renyiTriple(sx, sy, alpha, idx!);
      return r.hx + r.hy - r.hxy;
    },
    o,
    { method: "subsample", minSize: 2 },
  );
  return makeEstimate({ estimator: "matrix-renyi-mi", nats: value, n: sx.n, base: o.base ?? Math.E, ci, details: { entropyX: full.hx, entropyY: full.hy, jointEntropy: full.hxy }, parameters: pairParameters(alpha, sx, sy) });
}

/** Options of {@link csDivergence}. */
export const CsDivergenceOptionsSchema = KernelCommonSchema.strict();
export type CsDivergenceOptions = z.input<typeof CsDivergenceOptionsSchema>;

/**
 * Cauchy–Schwarz divergence between the Parzen densities of p (n × d) and q (m × d) (Principe 2010,
 * "Information Theoretic Learning", ch. 2; Jenssen et al. 2006):
 *
 *   D_CS(p, q) = −ln( (∫p q)² / (∫p² ∫q²) ) ≈ ln V_pp + ln V_qq − 2 ln V_pq,
 *   V_ab = (1/(|a||b|)) Σ_i Σ_j κ_σ(a_i, b_j)
 *
 * (the information potentials; the Parzen kernel of width σ/√2 convolves to κ_σ and the normalising
 * constants cancel). ≥ 0, = 0 for identical samples; for N(0, 1) against N(μ, 1) it tends to
 * μ² / (σ² + 2). Bandwidth "median" uses the pooled samples. Nats by default.
 */
export async function csDivergence(p: Samples, q: Samples, opts: CsDivergenceOptions = {}): Promise<InformationEstimate> {
  const o = parseOptions(CsDivergenceOptionsSchema, opts, "csDivergence");
  const mp = prepare(p, "p");
  const mq = prepare(q, "q");
  if (mp.d !== mq.d) throw new TersorError("E_SHAPE", `p has ${mp.d} columns but q has ${mq.d}: both samples must live in the same space`);
  const pooled: Matrix = { data: new Float64Array(mp.data.length + mq.data.length), n: mp.n + mq.n, d: mp.d };
  pooled.data.set(mp.data);
  pooled.data.set(mq.data, mp.data.length);
  const sigma = resolveBandwidth(o.bandwidth, pooled, "p and q");
  const b = native();
  const run = (a: Matrix, c: Matrix) => b.csDivergence(a.data, a.n, c.data, c.n, a.d, sigma);
  const value = await run(mp, mq);
  const ci = await resampleInterval([mp.n, mq.n], value, ([ip, iq]) => run(takeRows(mp, ip!), takeRows(mq, iq!)), o, {
    method: "subsample",
    minSize: 1,
  });
  return makeEstimate({ estimator: "cauchy-schwarz", nats: value, n: mp.n, base: o.base ?? Math.E, ci, parameters: { bandwidth: sigma, m: mq.n } });
}

/** Options of {@link csQuadraticMutualInformation}. */
export const CsQmiOptionsSchema = KernelCommonSchema.extend({
  /** Bandwidth for y (default "median" of y). */
  bandwidthY: BandwidthSchema.optional(),
}).strict();
export type CsQmiOptions = z.input<typeof CsQmiOptionsSchema>;

/**
 * Cauchy–Schwarz quadratic mutual information (Principe 2010, ch. 2) from the Gaussian Grams Kx, Ky:
 *
 *   V_J = (1/n²) Σ_ij Kx_ij Ky_ij,  V_M = ((1/n²) Σ_ij Kx_ij)((1/n²) Σ_ij Ky_ij),
 *   V_C = (1/n) Σ_i ((1/n) Σ_j Kx_ij)((1/n) Σ_j Ky_ij),   I_CS = ln V_J + ln V_M − 2 ln V_C,
 *
 * the CS divergence between the joint Parzen density and the product of the marginals. ≥ 0, near 0 for
 * independent samples. Streamed (no n × n matrix). Nats by default.
 */
export async function csQuadraticMutualInformation(x: Samples, y: Samples, opts: CsQmiOptions = {}): Promise<InformationEstimate> {
  const o = parseOptions(CsQmiOptionsSchema, opts, "csQuadraticMutualInformation");
  const mx = prepare(x, "x");
  const my = prepare(y, "y");
  assertSameRows(mx, my, "x", "y");
  const sx = resolveBandwidth(o.bandwidth, mx, "x");
  const sy = resolveBandwidth(o.bandwidthY, my, "y");
  const b = native();
  const run = (a: Matrix, c: Matrix) => b.csQuadraticMutualInformation(a.data, c.data, a.n, a.d, c.d, sx, sy);
  const value = await run(mx, my);
  const ci = await resampleInterval([mx.n], value, ([idx]) => run(takeRows(mx, idx!), takeRows(my, idx!)), o, {
    method: "subsample",
    minSize: 1,
  });
  return makeEstimate({ estimator: "cauchy-schwarz-qmi", nats: value, n: mx.n, base: o.base ?? Math.E, ci, parameters: { bandwidth: sx, bandwidthY: sy } });
}
