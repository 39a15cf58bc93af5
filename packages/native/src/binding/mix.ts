/** Bindings of native/napi/mix.cpp: the histogram GBDT behind RegMix's regression (tersor/gbdt.hpp). */

/** Hyper-parameters of {@link MixBinding.gbdtFit}; every field is optional (defaults in brackets). */
export interface GbdtBindingOptions {
  /** Boosting rounds at most [1000]. */
  numRounds?: number;
  /** Shrinkage applied to every leaf value [0.05]. */
  learningRate?: number;
  /** Maximum tree depth; 0 = unlimited [6]. */
  maxDepth?: number;
  /** Maximum leaves per tree (leaf-wise growth) [31]. */
  numLeaves?: number;
  /** L2 regularisation of leaf values [1]. */
  lambdaL2?: number;
  /** Minimum rows in a child [5]. */
  minChildSamples?: number;
  /** Minimum gain to split [0]. */
  minGain?: number;
  /** Row fraction drawn (without replacement) per round [1]. */
  subsample?: number;
  /** Feature fraction drawn per tree [1]. */
  colsample?: number;
  /** Histogram bins per feature [255]. */
  maxBins?: number;
  /** Rows held out for early stopping, in [0, 0.9) [0]. */
  validFraction?: number;
  /** Stop after this many rounds without a better validation MSE; 0 = never [50]. */
  earlyStoppingRounds?: number;
  /** Seed of the validation split and the subsampling [0]. */
  seed?: number;
}

/** Result of {@link MixBinding.gbdtFit}. */
export interface GbdtBindingFit {
  /** The serialised model (flat doubles; see native/include/tersor/gbdt.hpp). */
  model: Float64Array;
  /** Rounds kept (the best validation round, or all rounds without validation). */
  bestRound: number;
  roundsRun: number;
  trainMse: Float64Array;
  /** Per round; empty without a validation split. */
  validMse: Float64Array;
}

export interface MixBinding {
  /** Fits gradient-boosted regression trees to a row-major `n × d` matrix and `n` targets. */
  gbdtFit(x: Float64Array, n: number, d: number, y: Float64Array, options?: GbdtBindingOptions): Promise<GbdtBindingFit>;
  /** Predictions of a serialised model for a row-major `n × d` matrix. */
  gbdtPredict(model: Float64Array, x: Float64Array, n: number, d: number): Promise<Float64Array>;
}
