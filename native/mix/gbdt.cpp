// Histogram GBDT (tersor/gbdt.hpp): boosting loop, leaf-wise growth, histogram and exhaustive
// split finders, serialisation.
#include "tersor/gbdt.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

#include "tersor/error.hpp"
#include "tersor/parallel.hpp"
#include "tersor/rng.hpp"

namespace tersor::gbdt {

double Tree::predict(const double* x) const {
  int32_t k = 0;
  for (;;) {
    const Node& nd = nodes[static_cast<size_t>(k)];
    if (nd.feature < 0) return nd.value;
    k = x[nd.feature] <= nd.threshold ? nd.left : nd.right;
  }
}

double Model::predict(const double* x) const {
  double s = base_score;
  for (const Tree& t : trees) s += t.predict(x);
  return s;
}

std::vector<double> Model::predict(const double* x, size_t n) const {
  std::vector<double> out(n);
  const int nt = n >= 4096 ? num_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(nt)
  for (ptrdiff_t i = 0; i < static_cast<ptrdiff_t>(n); ++i) out[static_cast<size_t>(i)] = predict(x + static_cast<size_t>(i) * features);
  return out;
}

std::vector<double> Model::serialize() const {
  std::vector<double> out{kGbdtFormat, static_cast<double>(features), static_cast<double>(trees.size()), base_score};
  for (const Tree& t : trees) {
    out.push_back(static_cast<double>(t.nodes.size()));
    for (const Node& nd : t.nodes) {
      out.push_back(nd.feature);
      out.push_back(nd.threshold);
      out.push_back(nd.left);
      out.push_back(nd.right);
      out.push_back(nd.value);
    }
  }
  return out;
}

Model Model::deserialize(const double* data, size_t size) {
  auto bad = [](const std::string& why) { fail(ErrorCode::Format, "invalid GBDT model: " + why); };
  if (size < 4 || data[0] != kGbdtFormat) bad("missing header or unknown format version");
  auto as_count = [&](double v, const char* what) -> size_t {
    if (!(v >= 0) || v != std::floor(v) || v > 1e9) bad(std::string(what) + " is not a count");
    return static_cast<size_t>(v);
  };
  Model m;
  m.features = as_count(data[1], "feature count");
  if (m.features == 0) bad("zero features");
  const size_t trees = as_count(data[2], "tree count");
  m.base_score = data[3];
  if (!std::isfinite(m.base_score)) bad("base score is not finite");
  size_t p = 4;
  m.trees.resize(trees);
  for (size_t t = 0; t < trees; ++t) {
    if (p >= size) bad("truncated");
    const size_t nodes = as_count(data[p++], "node count");
    if (nodes == 0 || p + nodes * 5 > size) bad("truncated tree");
    Tree& tr = m.trees[t];
    tr.nodes.resize(nodes);
    for (size_t k = 0; k < nodes; ++k, p += 5) {
      Node& nd = tr.nodes[k];
      const double f = data[p], l = data[p + 2], r = data[p + 3];
      nd.threshold = data[p + 1];
      nd.value = data[p + 4];
      if (f == -1) {
        nd.feature = -1;
        if (!std::isfinite(nd.value)) bad("leaf value is not finite");
        continue;
      }
      if (!(f >= 0 && f < static_cast<double>(m.features) && f == std::floor(f))) bad("feature index out of range");
      // Children come after their parent, so every traversal terminates.
      if (!(l > static_cast<double>(k) && l < static_cast<double>(nodes) && l == std::floor(l)) ||
          !(r > static_cast<double>(k) && r < static_cast<double>(nodes) && r == std::floor(r)))
        bad("child index out of range");
      if (std::isnan(nd.threshold)) bad("threshold is NaN");
      nd.feature = static_cast<int32_t>(f);
      nd.left = static_cast<int32_t>(l);
      nd.right = static_cast<int32_t>(r);
    }
  }
  if (p != size) bad("trailing values");
  return m;
}

namespace {

struct Split {
  double gain = -std::numeric_limits<double>::infinity();
  int32_t feature = -1;
  double threshold = 0;
  uint32_t bin = 0;  // histogram finder: split after this bin
  bool valid() const { return feature >= 0; }
};

struct Leaf {
  std::vector<uint32_t> rows;
  size_t depth = 0;
  int32_t node = 0;
  double G = 0;
  Split split;
  std::vector<double> hist;  // histogram finder: (G, count) per bin of every feature
};

inline double score(double G, double H, double l2) { return G * G / (H + l2); }

void check_options(const Options& o) {
  auto need = [](bool ok, const std::string& m) { require(ok, ErrorCode::Range, m); };
  need(o.num_rounds >= 1 && o.num_rounds <= 1000000, "num_rounds must be in [1, 1e6]");
  need(o.learning_rate > 0 && o.learning_rate <= 1, "learning_rate must be in (0, 1]");
  need(o.num_leaves >= 2 && o.num_leaves <= 1 << 16, "num_leaves must be in [2, 65536]");
  need(o.max_depth <= 64, "max_depth must be at most 64 (0 = unlimited)");
  need(o.lambda_l2 >= 0 && std::isfinite(o.lambda_l2), "lambda_l2 must be a finite number >= 0");
  need(o.min_child_samples >= 1, "min_child_samples must be at least 1");
  need(o.min_gain >= 0 && std::isfinite(o.min_gain), "min_gain must be a finite number >= 0");
  need(o.subsample > 0 && o.subsample <= 1, "subsample must be in (0, 1]");
  need(o.colsample > 0 && o.colsample <= 1, "colsample must be in (0, 1]");
  need(o.max_bins >= 2 && o.max_bins <= 65535, "max_bins must be in [2, 65535]");
  need(o.valid_fraction >= 0 && o.valid_fraction < 0.9, "valid_fraction must be in [0, 0.9)");
}

/// Quantile bin boundaries of one feature over the training rows: midpoints between consecutive
/// distinct values when there are at most max_bins of them, else at (about) equal-count cut points.
std::vector<double> bin_boundaries(std::vector<double> v, size_t max_bins) {
  std::sort(v.begin(), v.end());
  std::vector<double> uniq;
  for (double a : v)
    if (uniq.empty() || a != uniq.back()) uniq.push_back(a);
  std::vector<double> b;
  if (uniq.size() <= max_bins) {
    for (size_t i = 0; i + 1 < uniq.size(); ++i) b.push_back(uniq[i] + (uniq[i + 1] - uniq[i]) / 2);
    return b;
  }
  const size_t n = v.size();
  for (size_t k = 1; k < max_bins; ++k) {
    const size_t idx = k * n / max_bins;  // first row of the k-th bin
    if (idx == 0 || idx >= n) continue;
    const double lo = v[idx - 1];
    // The next distinct value above lo.
    const auto it = std::upper_bound(uniq.begin(), uniq.end(), lo);
    if (it == uniq.end()) continue;
    const double cut = lo + (*it - lo) / 2;
    if (b.empty() || cut > b.back()) b.push_back(cut);
  }
  return b;
}

/// Everything both split finders share: data, options, gradients, and the boosting loop.
class Booster {
 public:
  Booster(const double* x, size_t n, size_t d, const double* y, const Options& o, bool exhaustive)
      : x_(x), n_(n), d_(d), y_(y), o_(o), exhaustive_(exhaustive) {
    require(n >= 2, ErrorCode::Shape, "GBDT needs at least 2 rows, got " + std::to_string(n));
    require(d >= 1, ErrorCode::Shape, "GBDT needs at least 1 feature");
    check_options(o);
    for (size_t i = 0; i < n * d; ++i)
      require(std::isfinite(x[i]), ErrorCode::Range, "feature value at row " + std::to_string(i / d) + " column " + std::to_string(i % d) + " is not finite");
    for (size_t i = 0; i < n; ++i)
      require(std::isfinite(y[i]), ErrorCode::Range, "target at row " + std::to_string(i) + " is not finite");
    Rng rng(o.seed);
    rng_ = rng;
    std::vector<uint32_t> all(n);
    std::iota(all.begin(), all.end(), 0u);
    size_t nv = static_cast<size_t>(std::floor(o.valid_fraction * static_cast<double>(n)));
    if (o.valid_fraction > 0 && nv == 0) nv = 1;
    if (nv > 0) {
      for (size_t i = n - 1; i > 0; --i) std::swap(all[i], all[rng_.next_below(static_cast<uint32_t>(i + 1))]);
      valid_.assign(all.begin(), all.begin() + static_cast<ptrdiff_t>(nv));
      train_.assign(all.begin() + static_cast<ptrdiff_t>(nv), all.end());
      std::sort(valid_.begin(), valid_.end());
      std::sort(train_.begin(), train_.end());
    } else {
      train_ = all;
    }
    require(train_.size() >= 2 * o.min_child_samples || train_.size() >= 2, ErrorCode::Shape, "too few training rows");
    if (!exhaustive_) build_bins();
  }

  FitResult run() {
    FitResult res;
    Model& m = res.model;
    m.features = d_;
    double mean = 0;
    for (uint32_t r : train_) mean += y_[r];
    mean /= static_cast<double>(train_.size());
    m.base_score = mean;
    pred_.assign(n_, mean);
    grad_.assign(n_, 0);
    double best = std::numeric_limits<double>::infinity();
    size_t best_round = 0;
    const size_t bag = std::max<size_t>(2, static_cast<size_t>(std::llround(o_.subsample * static_cast<double>(train_.size()))));
    const size_t ncols = std::max<size_t>(1, static_cast<size_t>(std::llround(o_.colsample * static_cast<double>(d_))));
    std::vector<uint32_t> pool = train_;
    std::vector<uint32_t> cols(d_);
    for (size_t round = 0; round < o_.num_rounds; ++round) {
      for (uint32_t r : train_) grad_[r] = pred_[r] - y_[r];
      std::vector<uint32_t> rows;
      if (bag < train_.size()) {
        for (size_t i = 0; i < bag; ++i) std::swap(pool[i], pool[i + rng_.next_below(static_cast<uint32_t>(pool.size() - i))]);
        rows.assign(pool.begin(), pool.begin() + static_cast<ptrdiff_t>(bag));
        std::sort(rows.begin(), rows.end());
      } else {
        rows = train_;
      }
      std::iota(cols.begin(), cols.end(), 0u);
      if (ncols < d_)
        for (size_t i = 0; i < ncols; ++i) std::swap(cols[i], cols[i + rng_.next_below(static_cast<uint32_t>(d_ - i))]);
      active_.assign(cols.begin(), cols.begin() + static_cast<ptrdiff_t>(ncols));
      std::sort(active_.begin(), active_.end());
      Tree t = grow(std::move(rows));
      m.trees.push_back(std::move(t));
      const Tree& tr = m.trees.back();
      double tmse = 0;
      for (uint32_t r : train_) {
        pred_[r] += tr.predict(x_ + static_cast<size_t>(r) * d_);
        tmse += (pred_[r] - y_[r]) * (pred_[r] - y_[r]);
      }
      res.train_mse.push_back(tmse / static_cast<double>(train_.size()));
      res.rounds_run = round + 1;
      if (!valid_.empty()) {
        double vmse = 0;
        for (uint32_t r : valid_) {
          pred_[r] += tr.predict(x_ + static_cast<size_t>(r) * d_);
          vmse += (pred_[r] - y_[r]) * (pred_[r] - y_[r]);
        }
        vmse /= static_cast<double>(valid_.size());
        res.valid_mse.push_back(vmse);
        if (vmse < best) {
          best = vmse;
          best_round = round + 1;
        } else if (o_.early_stopping_rounds > 0 && round + 1 - best_round >= o_.early_stopping_rounds) {
          break;
        }
      } else {
        best_round = round + 1;
      }
    }
    m.trees.resize(best_round);
    res.best_round = best_round;
    return res;
  }

 private:
  // ---- histogram finder ----
  void build_bins() {
    bounds_.resize(d_);
    offset_.assign(d_ + 1, 0);
    bins_.assign(d_ * n_, 0);
    std::vector<double> v(train_.size());
    for (size_t f = 0; f < d_; ++f) {
      for (size_t i = 0; i < train_.size(); ++i) v[i] = x_[static_cast<size_t>(train_[i]) * d_ + f];
      bounds_[f] = bin_boundaries(v, o_.max_bins);
      offset_[f + 1] = offset_[f] + bounds_[f].size() + 1;
      for (size_t r = 0; r < n_; ++r) {
        const double a = x_[r * d_ + f];
        bins_[f * n_ + r] = static_cast<uint16_t>(std::lower_bound(bounds_[f].begin(), bounds_[f].end(), a) - bounds_[f].begin());
      }
    }
  }

  void histogram(Leaf& leaf) const {
    leaf.hist.assign(offset_[d_] * 2, 0.0);
    // Parallel only when a leaf is large: below ~64k row-features the threads cost more than they save.
    const int nt = leaf.rows.size() * active_.size() >= (1u << 16) ? num_threads() : 1;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (ptrdiff_t a = 0; a < static_cast<ptrdiff_t>(active_.size()); ++a) {
      const size_t f = active_[static_cast<size_t>(a)];
      double* h = leaf.hist.data() + offset_[f] * 2;
      const uint16_t* b = bins_.data() + f * n_;
      for (uint32_t r : leaf.rows) {
        h[2 * b[r]] += grad_[r];
        h[2 * b[r] + 1] += 1.0;
      }
    }
  }

  Split best_from_hist(const Leaf& leaf) const {
    const double G = leaf.G, N = static_cast<double>(leaf.rows.size());
    const double parent = score(G, N, o_.lambda_l2);
    Split best;
    for (uint32_t f : active_) {
      const double* h = leaf.hist.data() + offset_[f] * 2;
      const size_t nb = bounds_[f].size() + 1;
      double gl = 0, nl = 0;
      for (size_t b = 0; b + 1 < nb; ++b) {
        gl += h[2 * b];
        nl += h[2 * b + 1];
        const double nr = N - nl;
        if (nl < static_cast<double>(o_.min_child_samples)) continue;
        if (nr < static_cast<double>(o_.min_child_samples)) break;
        const double gain = score(gl, nl, o_.lambda_l2) + score(G - gl, nr, o_.lambda_l2) - parent;
        if (gain > best.gain) {
          best.gain = gain;
          best.feature = static_cast<int32_t>(f);
          best.bin = static_cast<uint32_t>(b);
          best.threshold = bounds_[f][b];
        }
      }
    }
    return best;
  }

  // ---- exhaustive finder ----
  Split best_exhaustive(const Leaf& leaf) const {
    const double G = leaf.G, N = static_cast<double>(leaf.rows.size());
    const double parent = score(G, N, o_.lambda_l2);
    Split best;
    std::vector<std::pair<double, uint32_t>> s(leaf.rows.size());
    for (uint32_t f : active_) {
      for (size_t i = 0; i < leaf.rows.size(); ++i) s[i] = {x_[static_cast<size_t>(leaf.rows[i]) * d_ + f], leaf.rows[i]};
      std::sort(s.begin(), s.end());
      double gl = 0, nl = 0;
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        gl += grad_[s[i].second];
        nl += 1;
        if (s[i].first == s[i + 1].first) continue;
        const double nr = N - nl;
        if (nl < static_cast<double>(o_.min_child_samples)) continue;
        if (nr < static_cast<double>(o_.min_child_samples)) break;
        const double gain = score(gl, nl, o_.lambda_l2) + score(G - gl, nr, o_.lambda_l2) - parent;
        if (gain > best.gain) {
          best.gain = gain;
          best.feature = static_cast<int32_t>(f);
          best.threshold = s[i].first + (s[i + 1].first - s[i].first) / 2;
        }
      }
    }
    return best;
  }

  void evaluate(Leaf& leaf) const {
    leaf.split = Split{};
    if (o_.max_depth > 0 && leaf.depth >= o_.max_depth) return;
    if (leaf.rows.size() < 2 * o_.min_child_samples) return;
    const Split s = exhaustive_ ? best_exhaustive(leaf) : best_from_hist(leaf);
    if (s.valid() && s.gain > o_.min_gain) leaf.split = s;
  }

  Tree grow(std::vector<uint32_t> rows) {
    Tree tree;
    tree.nodes.emplace_back();
    std::vector<Leaf> leaves(1);
    Leaf& root = leaves[0];
    root.rows = std::move(rows);
    for (uint32_t r : root.rows) root.G += grad_[r];
    if (!exhaustive_) histogram(root);
    evaluate(root);
    while (leaves.size() < o_.num_leaves) {
      size_t pick = leaves.size();
      for (size_t i = 0; i < leaves.size(); ++i)
        if (leaves[i].split.valid() && (pick == leaves.size() || leaves[i].split.gain > leaves[pick].split.gain)) pick = i;
      if (pick == leaves.size()) break;
      Leaf parent = std::move(leaves[pick]);
      const Split sp = parent.split;
      Leaf left, right;
      for (uint32_t r : parent.rows) {
        const double a = x_[static_cast<size_t>(r) * d_ + static_cast<size_t>(sp.feature)];
        if (a <= sp.threshold) {
          left.rows.push_back(r);
          left.G += grad_[r];
        } else {
          right.rows.push_back(r);
          right.G += grad_[r];
        }
      }
      left.depth = right.depth = parent.depth + 1;
      const int32_t li = static_cast<int32_t>(tree.nodes.size());
      tree.nodes.emplace_back();
      tree.nodes.emplace_back();
      Node& pn = tree.nodes[static_cast<size_t>(parent.node)];
      pn.feature = sp.feature;
      pn.threshold = sp.threshold;
      pn.left = li;
      pn.right = li + 1;
      left.node = li;
      right.node = li + 1;
      if (!exhaustive_) {
        Leaf& small = left.rows.size() <= right.rows.size() ? left : right;
        Leaf& large = left.rows.size() <= right.rows.size() ? right : left;
        histogram(small);
        large.hist = std::move(parent.hist);
        for (size_t i = 0; i < large.hist.size(); ++i) large.hist[i] -= small.hist[i];
      }
      evaluate(left);
      evaluate(right);
      leaves[pick] = std::move(left);
      leaves.push_back(std::move(right));
    }
    for (const Leaf& l : leaves) {
      Node& nd = tree.nodes[static_cast<size_t>(l.node)];
      nd.feature = -1;
      nd.value = -o_.learning_rate * l.G / (static_cast<double>(l.rows.size()) + o_.lambda_l2);
    }
    return tree;
  }

  const double* x_;
  size_t n_, d_;
  const double* y_;
  Options o_;
  bool exhaustive_;
  Rng rng_{0};
  std::vector<uint32_t> train_, valid_, active_;
  std::vector<double> pred_, grad_;
  std::vector<std::vector<double>> bounds_;
  std::vector<size_t> offset_;
  std::vector<uint16_t> bins_;  // feature-major: bins_[f * n + row]
};

}  // namespace

FitResult fit(const double* x, size_t n, size_t d, const double* y, const Options& options) {
  return Booster(x, n, d, y, options, false).run();
}

FitResult fit_exhaustive(const double* x, size_t n, size_t d, const double* y, const Options& options) {
  return Booster(x, n, d, y, options, true).run();
}

}  // namespace tersor::gbdt
