/** The distance of the k-NN kernels: `max_k |a_k − b_k|` (KSG's max-norm) or `sqrt(Σ_k (a_k − b_k)²)`. */
export type KnnMetric = "chebyshev" | "euclidean";

/**
 * Information-measure kernels (native/napi/stats.cpp over native/include/tersor/stats.hpp), all in
 * double precision; results in nats. Samples are row-major `Float64Array`s with their sizes (`n` rows of
 * `d` columns; paired samples share `n`).
 *
 * Every function returns a Promise and runs off the main thread; inputs cross zero-copy and are kept
 * alive until it settles (do not modify them meanwhile). Every failure is a rejection with a
 * `TersorError`:
 * - `E_DTYPE`: a sample that is not a Float64Array (labels: not a Uint32Array);
 * - `E_SHAPE`: lengths that do not match the sizes, zero columns;
 * - `E_RANGE`: NaN or ±Infinity (the message names the operand, row and column), `n < k + 1`, a bandwidth,
 *   `alpha`, `eps2` or `t` out of range, constant columns or repeated points where an estimator needs
 *   continuous data (KSG family, Kozachenko–Leonenko), a label not below `classes`, a Gram matrix that is
 *   not symmetric or has zero trace, an unknown metric;
 * - `E_NATIVE`: an eigenvalue iteration that did not converge, out of memory.
 */
export interface StatsBinding {
  /**
   * Exact k nearest neighbours (KD-tree for low dimension, AVX2 brute force otherwise): for each of the
   * `n` points (self excluded by index) or, when `queries` is given, each of the `nq` query rows.
   * `dist` and `idx` are `rows × k`, distances ascending.
   */
  knnSearch(
    x: Float64Array,
    n: number,
    d: number,
    k: number,
    metric: KnnMetric,
    queries: Float64Array | null,
    nq: number,
  ): Promise<{ dist: Float64Array; idx: Uint32Array }>;
  /** `counts[i] = #{j ≠ i : dist(x_i, x_j) < radii[i]}` (`strict`) or `≤ radii[i]`. */
  knnCountWithin(x: Float64Array, n: number, d: number, radii: Float64Array, metric: KnnMetric, strict: boolean): Promise<Uint32Array>;
  /** Kozachenko–Leonenko entropy `ψ(n) − ψ(k) + ln V_d + (d/n) Σ ln r_i`. */
  klEntropy(x: Float64Array, n: number, d: number, k: number, metric: KnnMetric): Promise<number>;
  /** KSG mutual information, algorithm 1 or 2 (Kraskov, Stögbauer & Grassberger 2004). */
  ksgMutualInformation(x: Float64Array, y: Float64Array, n: number, dx: number, dy: number, k: number, algorithm: 1 | 2): Promise<number>;
  /** Conditional MI `I(X;Y|Z)` by the Frenzel–Pompe KSG-style estimator. */
  ksgConditionalMutualInformation(
    x: Float64Array,
    y: Float64Array,
    z: Float64Array,
    n: number,
    dx: number,
    dy: number,
    dz: number,
    k: number,
  ): Promise<number>;
  /** Mixed discrete/continuous MI (Gao, Kannan, Oh & Viswanath 2017). */
  mixedMutualInformation(x: Float64Array, y: Float64Array, n: number, dx: number, dy: number, k: number): Promise<number>;
  /** k-NN divergence `D(P‖Q)` from `x ~ P` (`n × d`) and `y ~ Q` (`m × d`) (Wang, Kulkarni & Verdú 2009). */
  knnKlDivergence(x: Float64Array, n: number, y: Float64Array, m: number, d: number, k: number, metric: KnnMetric): Promise<number>;
  /** `K_ij = exp(−|x_i − x_j|² / (2σ²))`, `n × n` row-major. */
  gaussianGram(x: Float64Array, n: number, d: number, sigma: number): Promise<Float64Array>;
  /** QUESTS kernel-density entropy `−(1/n) Σ_i ln((1/n) Σ_j exp(−|x_i − x_j|² / (2h²)))`. */
  kdeEntropy(x: Float64Array, n: number, d: number, h: number): Promise<number>;
  /**
   * Matrix-based Rényi α-entropy of `A = K / tr K` (nats), or with `kb` the joint entropy of
   * `(K_a ∘ K_b) / tr(K_a ∘ K_b)`. `gram` (and `kb`) are `n × n`.
   */
  matrixRenyiEntropy(gram: Float64Array, n: number, alpha: number, kb: Float64Array | null): Promise<number>;
  /** Eigenvalues of `ZᵀZ / n` (Z centred first when `center`), descending, `min(n, d)` of them. */
  covarianceSpectrum(z: Float64Array, n: number, d: number, center: boolean): Promise<Float64Array>;
  /** Coding rate `½ ln det(I + d/(n ε²) ZᵀZ)`; `eps2` is `ε²`. */
  codingRate(z: Float64Array, n: number, d: number, eps2: number): Promise<number>;
  /** MCR² rate reduction over classes `labels[i] < classes`. */
  rateReduction(
    z: Float64Array,
    n: number,
    d: number,
    labels: Uint32Array,
    classes: number,
    eps2: number,
  ): Promise<{ rate: number; classRate: number; reduction: number; classSizes: Uint32Array }>;
  /** Diffusion spectral entropy (Liao et al. 2023) with Gaussian bandwidth `sigma` and diffusion time `t`. */
  diffusionSpectralEntropy(z: Float64Array, n: number, d: number, sigma: number, t: number): Promise<number>;
  /** Diffusion spectral MI between `z` and class labels. */
  diffusionSpectralMutualInformation(
    z: Float64Array,
    n: number,
    d: number,
    labels: Uint32Array,
    classes: number,
    sigma: number,
    t: number,
  ): Promise<{ entropy: number; conditionalEntropy: number; mi: number }>;
  /** Cauchy–Schwarz divergence between the Parzen densities of `x` and `y` (Gram kernel width `sigma`). */
  csDivergence(x: Float64Array, n: number, y: Float64Array, m: number, d: number, sigma: number): Promise<number>;
  /** Cauchy–Schwarz quadratic mutual information from Gaussian Grams of widths `sigmaX`, `sigmaY`. */
  csQuadraticMutualInformation(
    x: Float64Array,
    y: Float64Array,
    n: number,
    dx: number,
    dy: number,
    sigmaX: number,
    sigmaY: number,
  ): Promise<number>;
}
