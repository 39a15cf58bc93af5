/**
 * A dense row-major float matrix crossing into the linear algebra kernels: every function accepts
 * either precision and answers in the same one (the O(n³) work runs in that precision).
 */
export type LinalgArray = Float32Array | Float64Array;

/** `A = U · diag(s) · Vᵀ`; `s` descending and non-negative. */
export interface SvdArrays<A extends LinalgArray> {
  /** `m × ku` row-major. */
  u: A;
  /** `min(ku, kv)` singular values. */
  s: A;
  /** `kv × n` row-major. */
  vt: A;
}

/**
 * Linear algebra kernels (native/napi/linalg.cpp over native/include/tersor/linalg.hpp). Matrices are
 * row-major and dense; `rows`/`cols` (or `m`/`n`) must multiply to the array's length.
 *
 * Every function returns a Promise and runs off the main thread; inputs cross zero-copy and are kept
 * alive until it settles (do not modify them meanwhile). Every failure is a rejection with a
 * `TersorError`:
 * - `E_DTYPE`: `a` is not a Float32Array or Float64Array, or a second operand has the other precision;
 * - `E_SHAPE`: lengths that do not match the sizes, a non-square matrix where a square one is needed,
 *   operands that do not fit together, a Hadamard row length that is not a power of two;
 * - `E_RANGE`: NaN or ±Infinity anywhere (the message names the operand, row and column), `k` outside
 *   `[1, min(m, n)]`, an option out of range, a matrix that must be symmetric positive definite but is not
 *   (`matrix is not positive definite (pivot j = … is …)`), a non-symmetric matrix where a symmetric one
 *   is needed (symmetry is checked to `sqrt(eps) · max|A|`, then the lower triangle is used), a singular
 *   matrix given to `solve`;
 * - `E_NATIVE`: an Eigen iteration that did not converge, out of memory.
 */
export interface LinalgBinding {
  /**
   * SVD by Eigen's divide-and-conquer BDCSVD. Thin: `u` is `m × r`, `vt` `r × n`, `r = min(m, n)`.
   * Full: `u` is `m × m`, `vt` `n × n`.
   */
  svd<A extends LinalgArray>(a: A, m: number, n: number, full: boolean): Promise<SvdArrays<A>>;
  /**
   * The top-`k` singular triplets to a tolerance (thick-restart block Lanczos with full
   * re-orthogonalisation and Rayleigh–Ritz extraction): stops once every `‖Aᵀuᵢ − sᵢvᵢ‖ ≤ tol · s₁`
   * (`A vᵢ = sᵢ uᵢ` holds by construction), after `maxIter` restarts, or after 10 restarts without a 10%
   * gain in the residual (then `converged` is false). `tol` 0 = 1e-5 (f32) / 1e-12
   * (f64); `maxIter` 0 = 300. The seed (two 32-bit halves) draws the start block.
   */
  truncatedSvd<A extends LinalgArray>(
    a: A,
    m: number,
    n: number,
    k: number,
    tol: number,
    maxIter: number,
    seedHi: number,
    seedLo: number,
  ): Promise<SvdArrays<A> & { iterations: number; residual: number; converged: boolean }>;
  /**
   * Randomized SVD (Halko, Martinsson & Tropp 2011, Alg. 4.4 + 5.1) of rank `k` with `oversample`
   * extra sketch columns and `powerIters` QR-re-orthonormalised subspace iterations. The Gaussian test
   * matrix (`n × (k + oversample)`, filled row by row) is `Rng(seed).nextNormal()`.
   */
  randomizedSvd<A extends LinalgArray>(
    a: A,
    m: number,
    n: number,
    k: number,
    oversample: number,
    powerIters: number,
    seedHi: number,
    seedLo: number,
  ): Promise<SvdArrays<A>>;
  /** Symmetric eigendecomposition `A = V diag(w) Vᵀ`: `w` ascending, eigenvector `j` in column `j` of `v` (`n × n`). */
  eigh<A extends LinalgArray>(a: A, rows: number, cols: number): Promise<{ w: A; v: A }>;
  /** Lower Cholesky factor `L` of `A + damping · mean(diag A) · I` (zeros above the diagonal). */
  cholesky<A extends LinalgArray>(a: A, rows: number, cols: number, damping: number): Promise<A>;
  /** Upper `U` with `(A + damping · mean(diag A) · I)⁻¹ = Uᵀ U` (GPTQ's inverse-Hessian factor). */
  choleskyInverse<A extends LinalgArray>(a: A, rows: number, cols: number, damping: number): Promise<A>;
  /** `(A + damping · mean(diag A) · I)⁻¹` of an SPD matrix through its Cholesky factor; exactly symmetric. */
  inverseSpd<A extends LinalgArray>(a: A, rows: number, cols: number, damping: number): Promise<A>;
  /** Householder QR, thin: `q` is `m × r` with orthonormal columns, `r` is `r × n` upper triangular, `r = min(m, n)`. */
  qr<A extends LinalgArray>(a: A, m: number, n: number): Promise<{ q: A; r: A }>;
  /**
   * Solves `A X = B` (`A` `n × n`, `B` `n × bCols`, same array type): LU with partial pivoting, or
   * Cholesky when `spd`. Returns `X` (`n × bCols`).
   */
  solve<A extends LinalgArray>(a: A, rows: number, cols: number, b: A, bRows: number, bCols: number, spd: boolean): Promise<A>;
  /** Moore–Penrose pseudo-inverse (`n × m`) via the SVD; singular values `≤ rcond · s₁` count as zero; `rcond < 0` = `max(m, n) · eps`. */
  pinv<A extends LinalgArray>(a: A, m: number, n: number, rcond: number): Promise<A>;
  /** `log|det A|` and the sign of `det A` (LU; Cholesky when `spd`). A singular matrix gives sign 0 and `-Infinity`. */
  logdet(a: LinalgArray, rows: number, cols: number, spd: boolean): Promise<{ sign: number; logabsdet: number }>;
  /** The symmetric PSD square root `S` (`S S = A`) via `eigh`; eigenvalues in `[-n·eps·max|w|, 0)` are clamped to 0. */
  sqrtmSpd<A extends LinalgArray>(a: A, rows: number, cols: number): Promise<A>;
  /**
   * Fast Walsh–Hadamard transform of each row of `x` (`rows × n`, `n` a power of two), IN PLACE:
   * row `x` becomes `x · diag(sign) · H_n` (Sylvester `H_n`), times `1/√n` when `normalize`. With
   * `randomSigns`, `sign_j = (rng.nextU32() & 1) ? -1 : +1` for `j = 0..n-1` from one `Rng(seed)`, the same
   * for every row; otherwise all +1.
   */
  hadamardInPlace(
    x: LinalgArray,
    rows: number,
    n: number,
    normalize: boolean,
    randomSigns: boolean,
    seedHi: number,
    seedLo: number,
  ): Promise<void>;
}
