/**
 * Dense linear algebra over 2-D `f32` and `f64` tensors: the decompositions that GPTQ, EoRA, low-rank
 * factorisations, KV-cache compression and information measures build on, and the (randomised)
 * Walsh–Hadamard transform of QuaRot/QuIP#.
 *
 * Every function runs in native code (Eigen 3.4 and tersor's own kernels, native/linalg/) off the main
 * thread and returns a Promise of new tensors in the input's dtype; inputs are never modified. The
 * O(n³) work runs in the input's precision: pass `f64` tensors for ill-conditioned problems.
 *
 * Failures are {@link TersorError}s (as rejected promises):
 * - `E_DTYPE`: not a tensor, a dtype other than `f32`/`f64`, operands of different dtypes;
 * - `E_SHAPE`: wrong rank, a non-square matrix where a square one is needed, operands that do not fit,
 *   a Hadamard length that is not a power of two;
 * - `E_RANGE`: invalid options, NaN/±Infinity in an input (the message names the operand, row and
 *   column), `k` outside `[1, min(m, n)]`, a matrix that is not symmetric positive definite where one is
 *   needed (`matrix is not positive definite (pivot j = …)`), a non-symmetric matrix where a symmetric
 *   one is needed (checked to `sqrt(eps)·max|A|`, then the lower triangle is used), a singular system;
 * - `E_NATIVE`: an iteration inside Eigen that did not converge.
 */
import { type LinalgArray, TersorError, native } from "@tersor/native";
import { z } from "zod";

import { Tensor } from "./tensor.js";

/** The dtypes the linear algebra functions work in. */
export type LinalgDType = "f32" | "f64";

/** `A = U · diag(s) · Vᵀ`: `s` descending and non-negative, `u` and `vt` with orthonormal columns/rows. */
export interface SvdResult<D extends LinalgDType = LinalgDType> {
  /** `m × ku` left singular vectors (columns). */
  u: Tensor<D>;
  /** The singular values, descending. */
  s: Tensor<D>;
  /** `kv × n` right singular vectors (rows). */
  vt: Tensor<D>;
}

/** {@link truncatedSvd}'s result: the triplets plus how the iteration ended. */
export interface TruncatedSvdResult<D extends LinalgDType = LinalgDType> extends SvdResult<D> {
  /** Restarts performed (0 when `k` was a large enough fraction of `min(m, n)` that a dense SVD was used). */
  iterations: number;
  /** `max_i ‖Aᵀuᵢ − sᵢvᵢ‖ / s₁` at exit. */
  residual: number;
  /** `residual ≤ tol`. When false (`maxIter` reached, or the residual stalled for 10 restarts because `tol` is below what the precision allows), the result is the last iterate. */
  converged: boolean;
}

/** A seed of tersor's RNG: a non-negative integer below 2^64. */
export const SeedSchema = z.union([
  z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  z.bigint().nonnegative().max(2n ** 64n - 1n),
]);

/** Options of {@link svd}. */
export const SvdOptionsSchema = z
  .object({
    /** Full factors (`u` `m × m`, `vt` `n × n`) instead of thin ones (`r = min(m, n)` columns/rows). */
    full: z.boolean().optional(),
  })
  .strict();
export type SvdOptions = z.infer<typeof SvdOptionsSchema>;

/** Options of {@link truncatedSvd}. */
export const TruncatedSvdOptionsSchema = z
  .object({
    /** Stop when every `‖Aᵀuᵢ − sᵢvᵢ‖ ≤ tol · s₁` (i < k). Default 1e-5 (f32), 1e-11 (f64). */
    tol: z.number().positive().lt(1).optional(),
    /** Maximum restarts. Default 300. */
    maxIter: z.number().int().positive().max(1_000_000).optional(),
    /** Seed of the Gaussian start block. Default 0. */
    seed: SeedSchema.optional(),
  })
  .strict();
export type TruncatedSvdOptions = z.infer<typeof TruncatedSvdOptionsSchema>;

/** Options of {@link randomizedSvd}. */
export const RandomizedSvdOptionsSchema = z
  .object({
    /** Extra sketch columns p (the sketch has `min(k + p, min(m, n))`). Default 10. */
    oversample: z.number().int().nonnegative().max(2 ** 20).optional(),
    /** Subspace (power) iterations q, each followed by QR re-orthonormalisation. Default 2. */
    powerIters: z.number().int().nonnegative().max(1000).optional(),
    /** Seed of the Gaussian test matrix. Default 0. */
    seed: SeedSchema.optional(),
  })
  .strict();
export type RandomizedSvdOptions = z.infer<typeof RandomizedSvdOptionsSchema>;

/** Options of {@link cholesky}, {@link choleskyInverse} and {@link inverseSpd}. */
export const CholeskyOptionsSchema = z
  .object({
    /**
     * λ ≥ 0: factor `A + λ · mean(diag A) · I`, the damping GPTQ applies to its Hessian (GPTQ's
     * `percdamp`, typically 0.01). Default 0.
     */
    damping: z.number().nonnegative().optional(),
  })
  .strict();
export type CholeskyOptions = z.infer<typeof CholeskyOptionsSchema>;

/** What a square system is known to be: `"general"` (LU with partial pivoting) or `"spd"` (Cholesky). */
export const AssumeSchema = z.enum(["general", "spd"]);

/** Options of {@link solve}. */
export const SolveOptionsSchema = z.object({ assume: AssumeSchema.optional() }).strict();
export type SolveOptions = z.infer<typeof SolveOptionsSchema>;

/** Options of {@link logdet}. */
export const LogdetOptionsSchema = z.object({ assume: AssumeSchema.optional() }).strict();
export type LogdetOptions = z.infer<typeof LogdetOptionsSchema>;

/** Options of {@link pinv}. */
export const PinvOptionsSchema = z
  .object({
    /** Singular values `≤ rcond · s₁` count as zero. Default `max(m, n) · eps` of the dtype. */
    rcond: z.number().nonnegative().optional(),
  })
  .strict();
export type PinvOptions = z.infer<typeof PinvOptionsSchema>;

/** Options of {@link hadamardTransform}. */
export const HadamardOptionsSchema = z
  .object({
    /** Scale by `1/√n`: the transform becomes orthogonal and its own inverse. Default false. */
    normalize: z.boolean().optional(),
    /**
     * Randomised Hadamard transform: multiply element `j` by `sign_j` before the transform, with
     * `sign_j = (rng.nextU32() & 1) ? -1 : +1` for `j = 0..n-1` drawn in order from `new Rng(seed)`, the
     * same signs for every row. Default: no signs.
     */
    seed: SeedSchema.optional(),
  })
  .strict();
export type HadamardOptions = z.infer<typeof HadamardOptionsSchema>;

// ---- helpers ---------------------------------------------------------------------------------------

function shapeText(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

function parseOptions<T>(fn: string, schema: z.ZodType<T>, opts: unknown): T {
  const r = schema.safeParse(opts ?? {});
  if (!r.success) {
    const issues = r.error.issues.map((i) => `${i.path.length > 0 ? i.path.join(".") : "options"}: ${i.message}`);
    throw new TersorError("E_RANGE", `${fn}: invalid options: ${issues.join("; ")}`);
  }
  return r.data;
}

type FloatTensor = Tensor<"f32"> | Tensor<"f64">;

/** Checks that `t` is an f32/f64 tensor of rank 2 (or one of `ranks`), square when asked. */
function checkFloat(fn: string, name: string, t: unknown, opts: { ranks?: readonly number[]; square?: boolean } = {}): FloatTensor {
  if (!(t instanceof Tensor)) {
    throw new TersorError("E_DTYPE", `${fn}: ${name} must be a Tensor, got ${t === null ? "null" : typeof t}`);
  }
  const ranks = opts.ranks ?? [2];
  if (!ranks.includes(t.rank)) {
    const want = ranks.length === 1 ? `a ${ranks[0]}-D tensor${ranks[0] === 2 ? " (a matrix)" : ""}` : `a ${ranks.join("-D or ")}-D tensor`;
    throw new TersorError("E_SHAPE", `${fn}: ${name} must be ${want}, got shape ${shapeText(t.shape)} (rank ${t.rank})`);
  }
  if (t.dtype !== "f32" && t.dtype !== "f64") {
    throw new TersorError("E_DTYPE", `${fn}: ${name} is ${t.dtype}; linear algebra works on f32 and f64 tensors (convert with .to("f32") or .to("f64"))`);
  }
  if (opts.square && t.shape[0] !== t.shape[1]) {
    throw new TersorError("E_SHAPE", `${fn}: ${name} must be a square matrix, got shape ${shapeText(t.shape)}`);
  }
  return t as FloatTensor;
}

function dims(t: Tensor): [number, number] {
  return [t.shape[0]!, t.shape[1]!];
}

function wrap<D extends LinalgDType>(dtype: D, shape: readonly number[], data: LinalgArray): Tensor<D> {
  return new Tensor(dtype, shape, data) as Tensor<D>;
}

function seedHalves(seed: number | bigint | undefined): [number, number] {
  const s = BigInt.asUintN(64, BigInt(seed ?? 0));
  return [Number(s >> 32n), Number(s & 0xffffffffn)];
}

function svdResult<D extends LinalgDType>(dtype: D, m: number, n: number, ku: number, kv: number, r: { u: LinalgArray; s: LinalgArray; vt: LinalgArray }): SvdResult<D> {
  return {
    u: wrap(dtype, [m, ku], r.u),
    s: wrap(dtype, [Math.min(ku, kv)], r.s),
    vt: wrap(dtype, [kv, n], r.vt),
  };
}

function checkK(fn: string, k: unknown): number {
  if (typeof k !== "number" || !Number.isSafeInteger(k) || k < 0) {
    throw new TersorError("E_RANGE", `${fn}: k must be a positive integer, got ${String(k)}`);
  }
  return k;
}

// ---- decompositions ---------------------------------------------------------------------------------

/**
 * Singular value decomposition `A = U · diag(s) · Vᵀ` by Eigen's divide-and-conquer BDCSVD (Gu &
 * Eisenstat 1995, "A divide-and-conquer algorithm for the bidiagonal SVD"). Thin by default (`u`
 * `m × r`, `vt` `r × n`, `r = min(m, n)`); `{ full: true }` gives `u` `m × m` and `vt` `n × n`.
 */
export async function svd<D extends LinalgDType>(a: Tensor<D>, opts: SvdOptions = {}): Promise<SvdResult<D>> {
  const o = parseOptions("svd", SvdOptionsSchema, opts);
  const t = checkFloat("svd", "a", a);
  const [m, n] = dims(t);
  const full = o.full ?? false;
  const r = await native().svd(t.data as LinalgArray, m, n, full);
  const rr = Math.min(m, n);
  return svdResult(a.dtype, m, n, full ? m : rr, full ? n : rr, r);
}

/**
 * The top-`k` singular triplets, exact to a tolerance: a thick-restart block Lanczos (block Krylov)
 * method with full re-orthogonalisation and Rayleigh–Ritz extraction (Golub & Kahan 1965; Baglama &
 * Reichel 2005, "Augmented implicitly restarted Lanczos bidiagonalization methods"; Musco & Musco 2015,
 * "Randomized block Krylov methods for stronger and faster approximate singular value decomposition").
 * It stops when every residual `‖Aᵀuᵢ − sᵢvᵢ‖ ≤ tol · s₁` (`A vᵢ = sᵢ uᵢ` holds by construction), so the
 * singular values agree with a dense SVD's to about `tol` (much better where the spectrum has gaps) —
 * check `converged`. Much faster than {@link svd} when `k ≪ min(m, n)`; when `k` is a large fraction of
 * `min(m, n)` the dense SVD is used (`iterations` 0). `1 ≤ k ≤ min(m, n)` (else `E_RANGE`).
 */
export async function truncatedSvd<D extends LinalgDType>(a: Tensor<D>, k: number, opts: TruncatedSvdOptions = {}): Promise<TruncatedSvdResult<D>> {
  const fn = "truncatedSvd";
  const o = parseOptions(fn, TruncatedSvdOptionsSchema, opts);
  const t = checkFloat(fn, "a", a);
  const kk = checkK(fn, k);
  const [m, n] = dims(t);
  const [hi, lo] = seedHalves(o.seed);
  const r = await native().truncatedSvd(t.data as LinalgArray, m, n, kk, o.tol ?? 0, o.maxIter ?? 0, hi, lo);
  return { ...svdResult(a.dtype, m, n, kk, kk, r), iterations: r.iterations, residual: r.residual, converged: r.converged };
}

/**
 * Randomized SVD of rank `k` (Halko, Martinsson & Tropp 2011, "Finding structure with randomness:
 * probabilistic algorithms for constructing approximate matrix decompositions", SIAM Review 53(2),
 * Alg. 4.4 randomized subspace iteration + Alg. 5.1 direct SVD): with `l = k + oversample` Gaussian
 * columns `Ω` (from `new Rng(seed).nextNormal()`, `n × l` filled row by row), `Y = AΩ`, then `powerIters`
 * times `Q = qr(Y)`, `Q̃ = qr(AᵀQ)`, `Y = AQ̃`; finally `Q = qr(Y)`, `B = QᵀA = Ũ S Vᵀ`, `U = QŨ`.
 * Approximate: `‖A − U diag(s) Vᵀ‖` is close to the optimal `σ_{k+1}` when the spectrum decays, and
 * exact when `rank A ≤ k`. Deterministic for a seed. `1 ≤ k ≤ min(m, n)` (else `E_RANGE`).
 */
export async function randomizedSvd<D extends LinalgDType>(a: Tensor<D>, k: number, opts: RandomizedSvdOptions = {}): Promise<SvdResult<D>> {
  const fn = "randomizedSvd";
  const o = parseOptions(fn, RandomizedSvdOptionsSchema, opts);
  const t = checkFloat(fn, "a", a);
  const kk = checkK(fn, k);
  const [m, n] = dims(t);
  const [hi, lo] = seedHalves(o.seed);
  const r = await native().randomizedSvd(t.data as LinalgArray, m, n, kk, o.oversample ?? 10, o.powerIters ?? 2, hi, lo);
  return svdResult(a.dtype, m, n, kk, kk, r);
}

/**
 * Symmetric eigendecomposition `A = V · diag(values) · Vᵀ` (Eigen's SelfAdjointEigenSolver:
 * Householder tridiagonalisation + implicit symmetric QR, Golub & Van Loan, "Matrix Computations",
 * §8.3). `values` ascending; `vectors` `n × n` orthonormal with the eigenvector of `values[j]` in column `j`.
 * Reads the lower triangle of a symmetric `a` (`E_RANGE` when `a` is not symmetric).
 */
export async function eigh<D extends LinalgDType>(a: Tensor<D>): Promise<{ values: Tensor<D>; vectors: Tensor<D> }> {
  const t = checkFloat("eigh", "a", a, { square: true });
  const [n] = dims(t);
  const r = await native().eigh(t.data as LinalgArray, n, n);
  return { values: wrap(a.dtype, [n], r.w), vectors: wrap(a.dtype, [n, n], r.v) };
}

/**
 * Lower Cholesky factor `L` (`L Lᵀ = A + λ · mean(diag A) · I`, zeros above the diagonal) of a symmetric
 * positive definite matrix, with the optional damping λ that GPTQ (Frantar, Ashkboos, Hoefler & Alistarh
 * 2023, "GPTQ: Accurate post-training quantization for generative pre-trained transformers", §4 "Cholesky
 * reformulation") adds to its Hessian. `E_RANGE` "matrix is not positive definite (pivot j = …)" otherwise.
 */
export async function cholesky<D extends LinalgDType>(a: Tensor<D>, opts: CholeskyOptions = {}): Promise<Tensor<D>> {
  const o = parseOptions("cholesky", CholeskyOptionsSchema, opts);
  const t = checkFloat("cholesky", "a", a, { square: true });
  const [n] = dims(t);
  return wrap(a.dtype, [n, n], await native().cholesky(t.data as LinalgArray, n, n, o.damping ?? 0));
}

/**
 * The upper Cholesky factor `U` of the inverse: `(A + λ · mean(diag A) · I)⁻¹ = Uᵀ U`, `U` upper
 * triangular with a positive diagonal — exactly the matrix GPTQ (Frantar et al. 2023, Alg. 1) computes
 * as `cholesky(cholesky_inverse(cholesky(H)), upper=True)` and reads row by row. Computed without
 * forming `A⁻¹`: with `J` the exchange matrix, `J A J = L Lᵀ` gives `U = J L⁻¹ J`.
 */
export async function choleskyInverse<D extends LinalgDType>(a: Tensor<D>, opts: CholeskyOptions = {}): Promise<Tensor<D>> {
  const o = parseOptions("choleskyInverse", CholeskyOptionsSchema, opts);
  const t = checkFloat("choleskyInverse", "a", a, { square: true });
  const [n] = dims(t);
  return wrap(a.dtype, [n, n], await native().choleskyInverse(t.data as LinalgArray, n, n, o.damping ?? 0));
}

/** `(A + λ · mean(diag A) · I)⁻¹` of a symmetric positive definite matrix through its Cholesky factor (`L⁻ᵀ L⁻¹`); exactly symmetric. */
export async function inverseSpd<D extends LinalgDType>(a: Tensor<D>, opts: CholeskyOptions = {}): Promise<Tensor<D>> {
  const o = parseOptions("inverseSpd", CholeskyOptionsSchema, opts);
  const t = checkFloat("inverseSpd", "a", a, { square: true });
  const [n] = dims(t);
  return wrap(a.dtype, [n, n], await native().inverseSpd(t.data as LinalgArray, n, n, o.damping ?? 0));
}

/**
 * Householder QR (Golub & Van Loan, §5.2), thin: `A = Q R` with `q` `m × r` having orthonormal columns
 * and `r` `r × n` upper triangular (trapezoidal when `m < n`), `r = min(m, n)`. The signs of R's
 * diagonal are not normalised.
 */
export async function qr<D extends LinalgDType>(a: Tensor<D>): Promise<{ q: Tensor<D>; r: Tensor<D> }> {
  const t = checkFloat("qr", "a", a);
  const [m, n] = dims(t);
  const k = Math.min(m, n);
  const res = await native().qr(t.data as LinalgArray, m, n);
  return { q: wrap(a.dtype, [m, k], res.q), r: wrap(a.dtype, [k, n], res.r) };
}

/**
 * Solves `A X = B` for square `A` (`n × n`) and `B` of shape `[n]` or `[n, r]` (the result has B's
 * shape): LU with partial pivoting (`assume: "general"`, the default; `E_RANGE` when a pivot is exactly
 * zero) or Cholesky (`assume: "spd"`; `E_RANGE` when `A` is not positive definite). Both backward stable.
 */
export async function solve<D extends LinalgDType>(a: Tensor<D>, b: Tensor<D>, opts: SolveOptions = {}): Promise<Tensor<D>> {
  const fn = "solve";
  const o = parseOptions(fn, SolveOptionsSchema, opts);
  const ta = checkFloat(fn, "a", a, { square: true });
  const tb = checkFloat(fn, "b", b, { ranks: [1, 2] });
  if ((ta.dtype as string) !== tb.dtype) {
    throw new TersorError("E_DTYPE", `${fn}: a is ${ta.dtype} but b is ${tb.dtype}; both must have the same dtype (convert one with .to("${ta.dtype}"))`);
  }
  const [n] = dims(ta);
  const bRows = tb.shape[0]!;
  const bCols = tb.rank === 1 ? 1 : tb.shape[1]!;
  if (bRows !== n) {
    throw new TersorError("E_SHAPE", `${fn}: a is ${shapeText(a.shape)} but b is ${shapeText(b.shape)}; b must have ${n} rows`);
  }
  const x = await native().solve(ta.data as LinalgArray, n, n, tb.data as LinalgArray, bRows, bCols, o.assume === "spd");
  return wrap(a.dtype, b.shape, x);
}

/**
 * Moore–Penrose pseudo-inverse (`n × m`) via the SVD (Golub & Van Loan, §5.5.2): `V diag(1/sᵢ) Uᵀ` over
 * the singular values `sᵢ > rcond · s₁` (default `rcond = max(m, n) · eps` of the dtype).
 */
export async function pinv<D extends LinalgDType>(a: Tensor<D>, opts: PinvOptions = {}): Promise<Tensor<D>> {
  const o = parseOptions("pinv", PinvOptionsSchema, opts);
  const t = checkFloat("pinv", "a", a);
  const [m, n] = dims(t);
  return wrap(a.dtype, [n, m], await native().pinv(t.data as LinalgArray, m, n, o.rcond ?? -1));
}

/**
 * `log|det A|` and the sign of `det A` for square `A`, without overflow: LU with partial pivoting
 * (`assume: "general"`, the default; a singular matrix gives `{ sign: 0, logabsdet: -Infinity }`) or, for
 * symmetric positive definite `A`, Cholesky (`assume: "spd"`: `2 Σ log Lᵢᵢ`, sign 1; `E_RANGE` when not
 * positive definite). Accumulated in f64 for both dtypes.
 */
export async function logdet(a: Tensor<LinalgDType>, opts: LogdetOptions = {}): Promise<{ sign: number; logabsdet: number }> {
  const o = parseOptions("logdet", LogdetOptionsSchema, opts);
  const t = checkFloat("logdet", "a", a, { square: true });
  const [n] = dims(t);
  return await native().logdet(t.data as LinalgArray, n, n, o.assume === "spd");
}

/**
 * The principal square root `S` of a symmetric positive semi-definite matrix (`S S = A`, `S`
 * symmetric PSD) via the eigendecomposition, `S = V diag(√w) Vᵀ` (Higham 2008, "Functions of
 * Matrices", §6.1). Eigenvalues in `[-n · eps · max|w|, 0)` are round-off and clamped to 0; a more
 * negative one is `E_RANGE`.
 */
export async function sqrtmSpd<D extends LinalgDType>(a: Tensor<D>): Promise<Tensor<D>> {
  const t = checkFloat("sqrtmSpd", "a", a, { square: true });
  const [n] = dims(t);
  return wrap(a.dtype, [n, n], await native().sqrtmSpd(t.data as LinalgArray, n, n));
}

/**
 * Fast Walsh–Hadamard transform of each row of a 2-D tensor (or of a 1-D tensor): row `x` becomes
 * `x · H_n` with the Sylvester–Hadamard matrix (`H_1 = [1]`, `H_2n = [[H_n, H_n], [H_n, −H_n]]`, so
 * `H_n H_n = n I`), scaled by `1/√n` with `normalize`. With `seed`, the randomised Hadamard transform of
 * QuaRot (Ashkboos et al. 2024, "QuaRot: Outlier-free 4-bit inference in rotated LLMs") and QuIP# (Tseng
 * et al. 2024, "QuIP#: Even better LLM quantization with Hadamard incoherence and lattice codebooks"):
 * `x · diag(sign) · H_n` with `sign_j = (rng.nextU32() & 1) ? -1 : +1`, `j = 0..n-1`, from `new Rng(seed)`,
 * the same signs for every row; normalised, that is an orthogonal rotation. The row length `n` must be a
 * power of two (1 included; else `E_SHAPE`). O(n log n) per row with AVX2 butterflies.
 *
 * NOT in place: returns a new tensor; `x` is unchanged.
 */
export async function hadamardTransform<D extends LinalgDType>(x: Tensor<D>, opts: HadamardOptions = {}): Promise<Tensor<D>> {
  const fn = "hadamardTransform";
  const o = parseOptions(fn, HadamardOptionsSchema, opts);
  const t = checkFloat(fn, "x", x, { ranks: [1, 2] });
  const n = t.rank === 1 ? t.shape[0]! : t.shape[1]!;
  const rows = t.rank === 1 ? 1 : t.shape[0]!;
  if (n === 0 || (n & (n - 1)) !== 0 || n > 2 ** 30) {
    throw new TersorError("E_SHAPE", `${fn}: the row length ${n} of x (shape ${shapeText(x.shape)}) is not a power of two (1, 2, 4, 8, ...)`);
  }
  const out = (t.data as LinalgArray).slice();
  const [hi, lo] = seedHalves(o.seed);
  await native().hadamardInPlace(out, rows, n, o.normalize ?? false, o.seed !== undefined, hi, lo);
  return wrap(x.dtype, x.shape, out);
}
