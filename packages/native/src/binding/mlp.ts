/**
 * A small generic MLP with Adam, and the neural mutual-information bounds trained on it
 * (native/napi/mlp.cpp over native/include/tersor/mlp.hpp and neural_mi.hpp), CPU, f32 with f64 sums.
 *
 * Parameters live in one caller-held Float32Array, layer by layer: `W_0` (`sizes[0] × sizes[1]`,
 * row-major: `W[i * out + j]` is the weight from input `i` to output `j`), `b_0` (`sizes[1]`),
 * `W_1`, `b_1`, … Layer `l` computes `a_l = act(a_{l-1} W_l + b_l)`, with the hidden activation
 * on every layer but the last and the output activation on the last. Batches are row-major.
 * Failures: `E_SHAPE` for inconsistent lengths, `E_RANGE` for bad values or options, `E_DTYPE` for
 * a wrong array type (Promise functions reject, the others throw).
 */
export interface MlpBinding {
  /**
   * Glorot/Xavier-uniform weights (`U(−a, a)`, `a = √(6 / (in + out))`, drawn from tersor's Rng
   * under `seed` in storage order) and zero biases for an MLP of `sizes = [in, hidden…, out]`.
   */
  mlpInit(sizes: number[], seed: number): Float32Array;
  /** The outputs (`rows × out`) of the MLP on `x` (`rows × in`). */
  mlpForward(params: Float32Array, spec: MlpSpec, x: Float32Array, rows: number): Promise<Float32Array>;
  /**
   * A forward pass and the backward pass of `gradOut = dL/d(output)` (`rows × out`): the output,
   * `dL/d(params)` (summed over the rows) and `dL/dx` (`rows × in`).
   */
  mlpBackward(
    params: Float32Array,
    spec: MlpSpec,
    x: Float32Array,
    rows: number,
    gradOut: Float32Array,
  ): Promise<{ output: Float32Array; gradParams: Float32Array; gradInput: Float32Array }>;
  /**
   * One Adam step (Kingma & Ba 2015, bias-corrected; `weightDecay` is decoupled, AdamW) on
   * `params`, updating `params`, the first moments `m` and the second moments `v` in place
   * (all the same length; `m`, `v` start at zero). `step` is this step's 1-based number.
   * Synchronous: it costs O(parameters).
   */
  adamStep(params: Float32Array, grad: Float32Array, m: Float32Array, v: Float32Array, step: number, options?: AdamStepOptions): void;
  /**
   * Trains a critic on paired samples `x` (`rows × dx`) and `y` (`rows × dy`) and estimates a
   * variational lower bound on I(X; Y) in nats. See {@link NeuralMiBindingOptions} for the bounds;
   * deterministic for a seed.
   */
  neuralMi(x: Float32Array, y: Float32Array, rows: number, dx: number, dy: number, options?: NeuralMiBindingOptions): Promise<NeuralMiBindingResult>;
}

/** Activations: ReLU, ELU (α = 1), tanh, or none. */
export type MlpActivation = "relu" | "elu" | "tanh" | "identity";

/** The architecture of an MLP. */
export interface MlpSpec {
  /** `[in, hidden…, out]`, each in [1, 2^24]. */
  sizes: number[];
  /** Hidden-layer activation (default "relu"). */
  activation?: MlpActivation;
  /** Activation of the last layer (default "identity"). */
  outputActivation?: MlpActivation;
}

export interface AdamStepOptions {
  /** Learning rate (default 1e-3). */
  lr?: number;
  /** Default 0.9. */
  beta1?: number;
  /** Default 0.999. */
  beta2?: number;
  /** Default 1e-8. */
  eps?: number;
  /** Decoupled weight decay (default 0). */
  weightDecay?: number;
}

/**
 * Options of {@link MlpBinding.neuralMi}. Bounds:
 * - `"mine"`: Donsker–Varadhan `E_P[T] − log E_Q[e^T]`, trained with MINE's moving-average
 *   bias-corrected gradient (Belghazi et al. 2018);
 * - `"smile"`: clipped DV `E_P[T] − log E_Q[clip(e^T, e^−τ, e^τ)]` with the critic trained by the
 *   Jensen–Shannon objective (Song & Ermon 2020);
 * - `"infonce"`: `(1/N) Σ_i [T(x_i, y_i) − log (1/N) Σ_j e^{T(x_i, y_j)}]` (van den Oord et al.
 *   2018), never above log N;
 * - `"nwj"`: `E_P[T] − E_Q[e^{T−1}]` (Nguyen, Wainwright & Jordan 2010).
 */
export interface NeuralMiBindingOptions {
  /** Default "smile". */
  bound?: "mine" | "smile" | "infonce" | "nwj";
  /** "concat": `T = MLP([x, y])`; "separable": `T = g(x)ᵀ h(y)`. Default "concat". */
  critic?: "concat" | "separable";
  /** Hidden widths of each MLP (default [64, 64]). */
  hidden?: number[];
  /** Hidden activation (default "relu"). */
  activation?: MlpActivation;
  /** Separable critic: the embedding size of g and h (default 32). */
  embedDim?: number;
  /** Samples per batch N (default 128). */
  batchSize?: number;
  /** Adam steps (default 500). */
  steps?: number;
  /** Adam learning rate (default 5e-4). */
  lr?: number;
  /** SMILE's τ (default 5). */
  clip?: number;
  /** MINE's moving-average rate α: `ma ← (1 − α) ma + α · mean e^T` (default 0.01). */
  emaRate?: number;
  /** Fraction of samples kept out of training and used for the estimate (default 0: all samples). */
  holdout?: number;
  /** z-score each column of x and y first (default true). */
  standardize?: boolean;
  /** Seed of the initialisation, the split, the batches and the shuffles (default 0). */
  seed?: number;
}

export interface NeuralMiBindingResult {
  /** The bound on the evaluation samples (nats). */
  estimate: number;
  /** The bound on each evaluation batch (N × N pairs each). */
  batchEstimates: Float64Array;
  /** The bound on each training batch, step by step. */
  history: Float32Array;
  /** log of the evaluation batch size: InfoNCE's ceiling. */
  logBatch: number;
  evalBatch: number;
  trainSamples: number;
  evalSamples: number;
  /** Parameters of the critic. */
  paramCount: number;
}
