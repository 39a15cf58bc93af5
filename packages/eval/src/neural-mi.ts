/**
 * Neural variational lower bounds on mutual information, with small MLP critics trained natively
 * (tersor's generic MLP + Adam in the addon). All values are in nats.
 *
 * Bounds (T is the critic, P the joint distribution, Q the product of the marginals):
 * - **MINE** (Belghazi et al., "Mutual Information Neural Estimation", ICML 2018): the
 *   Donsker–Varadhan bound `E_P[T] − log E_Q[e^T]`, trained with the paper's bias-corrected
 *   gradient: the denominator `E_Q[e^T]` of the gradient is replaced by an exponential moving
 *   average of its batch estimates (rate `emaRate`).
 * - **SMILE** (Song & Ermon, "Understanding the Limitations of Variational Mutual Information
 *   Estimators", ICLR 2020): the clipped DV `E_P[T] − log E_Q[clip(e^T, e^−τ, e^τ)]`; as in the
 *   authors' code, the critic is trained with the Jensen–Shannon objective (logistic regression of
 *   joint against marginal pairs, whose optimum is the log density ratio) and the clipped DV is the
 *   estimate.
 * - **InfoNCE** (van den Oord et al., "Representation Learning with Contrastive Predictive Coding",
 *   2018): `(1/N) Σ_i [T(x_i, y_i) − log (1/N) Σ_j e^{T(x_i, y_j)}]`.
 * - **NWJ** (Nguyen, Wainwright & Jordan 2010; f-GAN KL): `E_P[T] − E_Q[e^{T−1}]`.
 *
 * Known caveats:
 * - InfoNCE **can never exceed log N** (N = batch size): it saturates at log N however large the
 *   true MI is; use a batch with log N well above the MI you expect. Its variance is low.
 * - MINE and NWJ have **high variance** when the MI is large: the variance of the `e^T` term grows
 *   roughly like e^I (McAllester & Stratos 2020; Song & Ermon 2020), and NWJ more so; their
 *   estimates also drift as training goes on.
 * - SMILE trades that variance for **bias through τ**: clipping e^T to [e^−τ, e^τ] caps the
 *   variance, but moves the estimate away from DV whenever the log density ratio leaves
 *   [−τ, τ] (smaller τ: lower variance, more bias; τ → ∞ is DV again).
 * - All four are lower bounds only at the optimum of an infinitely flexible critic; a finite
 *   critic trained for finitely many steps underestimates, and an estimate on the training
 *   samples can overestimate slightly (use `holdout`).
 *
 * Critics: "concat" `T(x, y) = MLP([x, y])` or "separable" `T(x, y) = g(x)ᵀ h(y)`. InfoNCE and SMILE
 * train on all N × N pairs of a batch; MINE and NWJ on the N joint pairs against N pairs with y
 * shuffled (a seeded permutation). The estimate is computed after training on the evaluation
 * samples, in batches of N, on all N × N pairs of each batch.
 */
import { Tensor, TersorError } from "@tersor/core";
import { type NeuralMiBindingOptions, native } from "@tersor/native";

/** Samples: a Tensor (1-D = one column, 2-D = rows × columns), rows of numbers, or numbers (one column). */
export type SampleInput = Tensor | readonly ArrayLike<number>[] | ArrayLike<number>;

/** The neural estimators. */
export const NEURAL_MI_ESTIMATORS = ["mine", "smile", "infonce", "nwj"] as const;
export type NeuralMiEstimator = (typeof NEURAL_MI_ESTIMATORS)[number];

export interface NeuralMiOptions {
  /** The bound (default "smile"). */
  estimator?: NeuralMiEstimator;
  /** "concat" (default) or "separable". */
  critic?: "concat" | "separable";
  /** Hidden widths of each critic MLP (default [64, 64]). */
  hidden?: number[];
  /** Hidden activation (default "relu"). */
  activation?: "relu" | "elu" | "tanh";
  /** Separable critic: embedding size (default 32). */
  embedDim?: number;
  /** Batch size N (default 128; InfoNCE's ceiling is log N). */
  batchSize?: number;
  /** Adam steps (default 500). */
  steps?: number;
  /** Adam learning rate (default 5e-4). */
  learningRate?: number;
  /** SMILE's τ (default 5). */
  clip?: number;
  /** MINE's moving-average rate (default 0.01). */
  emaRate?: number;
  /** Fraction of samples held out of training for the estimate (default 0). */
  holdout?: number;
  /** z-score the columns of x and y first (default true; MI is invariant to it). */
  standardize?: boolean;
  /** Seed of initialisation, split, batches and shuffles (default 0). */
  seed?: number;
}

export interface NeuralMiResult {
  estimator: NeuralMiEstimator;
  /** The estimate in nats. */
  estimate: number;
  /** The estimate in bits. */
  bits: number;
  /** The bound on each evaluation batch. */
  batchEstimates: number[];
  /** Standard deviation of the batch estimates. */
  batchStd: number;
  /** The bound on each training batch, step by step. */
  history: number[];
  /** log N: InfoNCE's ceiling (for the other bounds, for reference). */
  logBatchSize: number;
  batchSize: number;
  trainSamples: number;
  evalSamples: number;
  criticParameters: number;
  /** InfoNCE only: true when the estimate is within 10% of log N (it may be capped). */
  saturated?: boolean;
}

/** Rows × columns f32 data of a sample input. */
export function sampleMatrix(x: SampleInput, what = "x"): { data: Float32Array; rows: number; cols: number } {
  if (x instanceof Tensor) {
    if (x.rank === 1) return { data: Float32Array.from(x.toFloat32Array()), rows: x.shape[0]!, cols: 1 };
    if (x.rank === 2) return { data: x.toFloat32Array(), rows: x.shape[0]!, cols: x.shape[1]! };
    throw new TersorError("E_SHAPE", `${what} must be 1-D or 2-D, got shape [${x.shape.join(", ")}]`);
  }
  const a = x as ArrayLike<unknown>;
  if (a.length > 0 && typeof a[0] === "object" && a[0] !== null) {
    const rows = x as readonly ArrayLike<number>[];
    const cols = rows[0]!.length;
    const data = new Float32Array(rows.length * cols);
    rows.forEach((r, i) => {
      if (r.length !== cols) throw new TersorError("E_SHAPE", `${what}: row ${i} has ${r.length} values, row 0 has ${cols}`);
      for (let j = 0; j < cols; j++) data[i * cols + j] = r[j]!;
    });
    return { data, rows: rows.length, cols };
  }
  const flat = x as ArrayLike<number>;
  return { data: Float32Array.from(flat), rows: flat.length, cols: 1 };
}

function checkFinite(m: { data: Float32Array; cols: number }, what: string): void {
  for (let i = 0; i < m.data.length; i++) {
    if (!Number.isFinite(m.data[i]!)) throw new TersorError("E_RANGE", `${what} has a non-finite value at row ${Math.floor(i / m.cols)}, column ${i % m.cols}`);
  }
}

/**
 * Estimates I(X; Y) with a neural variational bound (see the module notes for the bounds and their
 * caveats). Deterministic for a seed. Mismatched row counts → `E_SHAPE`; NaN/Inf → `E_RANGE`.
 */
export async function neuralMutualInformation(x: SampleInput, y: SampleInput, options: NeuralMiOptions = {}): Promise<NeuralMiResult> {
  const X = sampleMatrix(x, "x");
  const Y = sampleMatrix(y, "y");
  if (X.rows !== Y.rows) throw new TersorError("E_SHAPE", `x has ${X.rows} samples and y has ${Y.rows}: they must be paired`);
  if (X.cols === 0 || Y.cols === 0) throw new TersorError("E_SHAPE", "x and y need at least one column each");
  checkFinite(X, "x");
  checkFinite(Y, "y");
  const estimator = options.estimator ?? "smile";
  if (!NEURAL_MI_ESTIMATORS.includes(estimator)) throw new TersorError("E_RANGE", `unknown neural estimator "${estimator}"; known: ${NEURAL_MI_ESTIMATORS.join(", ")}`);
  if (options.seed !== undefined && !(Number.isSafeInteger(options.seed) && options.seed >= 0)) throw new TersorError("E_RANGE", `seed must be a non-negative integer, got ${options.seed}`);
  const o: NeuralMiBindingOptions = { bound: estimator };
  if (options.critic !== undefined) o.critic = options.critic;
  if (options.hidden !== undefined) o.hidden = options.hidden;
  if (options.activation !== undefined) o.activation = options.activation;
  if (options.embedDim !== undefined) o.embedDim = options.embedDim;
  if (options.batchSize !== undefined) o.batchSize = options.batchSize;
  if (options.steps !== undefined) o.steps = options.steps;
  if (options.learningRate !== undefined) o.lr = options.learningRate;
  if (options.clip !== undefined) o.clip = options.clip;
  if (options.emaRate !== undefined) o.emaRate = options.emaRate;
  if (options.holdout !== undefined) o.holdout = options.holdout;
  if (options.standardize !== undefined) o.standardize = options.standardize;
  if (options.seed !== undefined) o.seed = options.seed;
  const r = await native().neuralMi(X.data, Y.data, X.rows, X.cols, Y.cols, o);
  const be = Array.from(r.batchEstimates);
  const mean = be.reduce((s, v) => s + v, 0) / Math.max(1, be.length);
  const std = be.length > 1 ? Math.sqrt(be.reduce((s, v) => s + (v - mean) ** 2, 0) / (be.length - 1)) : 0;
  const out: NeuralMiResult = {
    estimator,
    estimate: r.estimate,
    bits: r.estimate / Math.LN2,
    batchEstimates: be,
    batchStd: std,
    history: Array.from(r.history),
    logBatchSize: r.logBatch,
    batchSize: r.evalBatch,
    trainSamples: r.trainSamples,
    evalSamples: r.evalSamples,
    criticParameters: r.paramCount,
  };
  if (estimator === "infonce") out.saturated = r.estimate >= 0.9 * r.logBatch;
  return out;
}
