// Histogram-based gradient-boosted regression trees (squared loss), as RegMix fits mixture -> loss
// with LightGBM (Liu et al., "RegMix: Data Mixture as Regression for Language Model Pre-training",
// ICLR 2025; Ke et al., "LightGBM: A Highly Efficient Gradient Boosting Decision Tree", NeurIPS 2017).
//
// Algorithm (one round): gradients g_i = F(x_i) - y_i, hessians h_i = 1 (squared loss); a row
// subsample (bagging, `subsample` fraction, drawn without replacement from the seeded tersor::Rng)
// and a feature subsample (`colsample`); the tree is grown leaf-wise (best-first, LightGBM's
// strategy): the leaf whose best split has the largest gain is split next, until `num_leaves`
// leaves, `max_depth` or no split with gain > `min_gain` remains. Split search over per-feature
// histograms of quantile bins (at most `max_bins`, boundaries at midpoints between distinct values),
// with the histogram subtraction trick (the larger child's histogram = parent - smaller child's).
// Gain of a split: G_L^2/(H_L + l2) + G_R^2/(H_R + l2) - G^2/(H + l2) (XGBoost's structure score,
// the factor 1/2 dropped); a child needs `min_child_samples` rows; leaf value -lr * G/(H + l2).
// The initial score is the mean target. Early stopping: `valid_fraction` of the rows (a seeded
// shuffle) are held out; when the validation MSE has not improved for `early_stopping_rounds`
// rounds, training stops and the model keeps the best round's trees.
//
// Deterministic: the result depends only on the data, the options and the seed (histograms are
// summed per feature in row order, so the thread count does not change any sum).
//
// Serialised model (flat doubles, so it crosses to JS and JSON as one array):
//   [kGbdtFormat, features, trees, base_score,  then per tree: nodes, then per node
//    feature (-1 for a leaf), threshold (go left when x <= threshold), left, right, value]
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace tersor::gbdt {

inline constexpr double kGbdtFormat = 1.0;

struct Options {
  size_t num_rounds = 1000;
  double learning_rate = 0.05;
  size_t max_depth = 6;          // 0 = unlimited
  size_t num_leaves = 31;
  double lambda_l2 = 1.0;
  size_t min_child_samples = 5;
  double min_gain = 0.0;
  double subsample = 1.0;        // row fraction per round, (0, 1]
  double colsample = 1.0;        // feature fraction per tree, (0, 1]
  size_t max_bins = 255;
  double valid_fraction = 0.0;   // [0, 0.9); 0 = no early stopping
  size_t early_stopping_rounds = 50;  // 0 = never stop early (still keeps the best round when validating)
  uint64_t seed = 0;
};

struct Node {
  int32_t feature = -1;  // -1: leaf
  double threshold = 0;
  int32_t left = -1, right = -1;
  double value = 0;
};

struct Tree {
  std::vector<Node> nodes;  // nodes[0] is the root
  double predict(const double* x) const;
};

struct Model {
  size_t features = 0;
  double base_score = 0;
  std::vector<Tree> trees;
  double predict(const double* x) const;
  /// Predictions for n rows of a row-major n x features matrix (OpenMP over rows).
  std::vector<double> predict(const double* x, size_t n) const;
  std::vector<double> serialize() const;
  static Model deserialize(const double* data, size_t size);
};

struct FitResult {
  Model model;
  size_t best_round = 0;               // rounds kept (trees in the model)
  size_t rounds_run = 0;
  std::vector<double> train_mse;       // per round, on the rows used for fitting
  std::vector<double> valid_mse;       // per round, empty without a validation split
};

/// Fits a model to a row-major n x d matrix `x` and targets `y` (finite values; E_RANGE / E_SHAPE otherwise).
FitResult fit(const double* x, size_t n, size_t d, const double* y, const Options& options);

/// The reference implementation for benchmarks and tests: the same boosting, leaf-wise growth and
/// gains, but exhaustive split search over every distinct value of every feature (rows sorted per
/// feature, no bins, no histogram subtraction). With max_bins >= the number of distinct values per
/// feature both find the same splits.
FitResult fit_exhaustive(const double* x, size_t n, size_t d, const double* y, const Options& options);

}  // namespace tersor::gbdt
