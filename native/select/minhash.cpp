// MinHash signatures (Broder 1997) with the permutations of datasketch / datatrove, LSH banding and
// the (b, r) optimiser of datasketch, union-find for duplicate clusters, greedy set cover.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "tersor/error.hpp"
#include "tersor/select.hpp"

namespace tersor::select {

// ---- numpy's legacy MT19937 -------------------------------------------------------------------
NumpyMt19937::NumpyMt19937(uint32_t seed) {
  mt_[0] = seed;
  for (int i = 1; i < 624; ++i) mt_[i] = 1812433253u * (mt_[i - 1] ^ (mt_[i - 1] >> 30)) + static_cast<uint32_t>(i);
  index_ = 624;
}

uint32_t NumpyMt19937::next_u32() {
  if (index_ >= 624) {
    for (int i = 0; i < 624; ++i) {
      const uint32_t y = (mt_[i] & 0x80000000u) | (mt_[(i + 1) % 624] & 0x7fffffffu);
      mt_[i] = mt_[(i + 397) % 624] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
    }
    index_ = 0;
  }
  uint32_t y = mt_[index_++];
  y ^= y >> 11;
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= y >> 18;
  return y;
}

uint64_t NumpyMt19937::randint_u64(uint64_t low, uint64_t high) {
  require(high > low && high - low - 1 > 0xFFFFFFFFull, ErrorCode::Range, "randint_u64: range must exceed 2^32");
  const uint64_t rng = high - 1 - low;
  uint64_t mask = rng;
  mask |= mask >> 1; mask |= mask >> 2; mask |= mask >> 4; mask |= mask >> 8; mask |= mask >> 16; mask |= mask >> 32;
  uint64_t v;
  while ((v = next_u64() & mask) > rng) {
  }
  return low + v;
}

MinHashParams minhash_permutations(size_t num_perm, uint32_t seed, PermutationLayout layout) {
  require(num_perm >= 1 && num_perm <= 65536, ErrorCode::Range, "num_perm must be in [1, 65536], got " + std::to_string(num_perm));
  NumpyMt19937 g(seed);
  MinHashParams p;
  p.a.resize(num_perm);
  p.b.resize(num_perm);
  if (layout == PermutationLayout::Datatrove) {
    for (auto& a : p.a) a = g.randint_u64(1, kMersennePrime);
    for (auto& b : p.b) b = g.randint_u64(0, kMersennePrime);
  } else {
    for (size_t k = 0; k < num_perm; ++k) {
      p.a[k] = g.randint_u64(1, kMersennePrime);
      p.b[k] = g.randint_u64(0, kMersennePrime);
    }
  }
  return p;
}

// ---- shingles and signatures ------------------------------------------------------------------
void word_shingles(std::string_view text, size_t n, std::vector<uint64_t>& out) {
  require(n >= 1, ErrorCode::Range, "shingle size must be >= 1");
  thread_local std::string norm;
  thread_local std::vector<uint32_t> starts, ends;
  datatrove_words(text, norm, starts, ends);
  out.clear();
  const size_t w = starts.size();
  if (w < n) return;
  out.reserve(w - n + 1);
  for (size_t i = 0; i + n <= w; ++i) out.push_back(xxhash64(norm.data() + starts[i], ends[i + n - 1] - starts[i], 0));
}

namespace {
/// (x mod 2^61-1) for any uint64 x.
inline uint64_t mod_mersenne(uint64_t x) {
  uint64_t r = (x & kMersennePrime) + (x >> 61);
  return r >= kMersennePrime ? r - kMersennePrime : r;
}
}  // namespace

void minhash_signature(const uint64_t* shingles, size_t count, const MinHashParams& p, uint32_t* sig) {
  const size_t k = p.a.size();
  const uint64_t* a = p.a.data();
  const uint64_t* b = p.b.data();
  // Accumulate in blocks of 16 permutations so the minima stay in registers across shingles.
  constexpr size_t B = 16;
  for (size_t k0 = 0; k0 < k; k0 += B) {
    const size_t kb = std::min(B, k - k0);
    uint32_t m[B];
    for (size_t j = 0; j < B; ++j) m[j] = 0xFFFFFFFFu;
    if (kb == B) {
      for (size_t s = 0; s < count; ++s) {
        const uint64_t h = shingles[s];
#pragma GCC unroll 16
        for (size_t j = 0; j < B; ++j) {
          const uint32_t v = static_cast<uint32_t>(mod_mersenne(a[k0 + j] * h + b[k0 + j]));
          m[j] = v < m[j] ? v : m[j];
        }
      }
    } else {
      for (size_t s = 0; s < count; ++s) {
        const uint64_t h = shingles[s];
        for (size_t j = 0; j < kb; ++j) {
          const uint32_t v = static_cast<uint32_t>(mod_mersenne(a[k0 + j] * h + b[k0 + j]));
          m[j] = v < m[j] ? v : m[j];
        }
      }
    }
    for (size_t j = 0; j < kb; ++j) sig[k0 + j] = m[j];
  }
}

void minhash_batch(const TextBatch& batch, size_t ngram, const MinHashParams& p, uint32_t* sigs) {
  const size_t k = p.a.size();
  const auto n = static_cast<std::ptrdiff_t>(batch.count);
#pragma omp parallel
  {
    std::vector<uint64_t> sh;
#pragma omp for schedule(dynamic, 16)
    for (std::ptrdiff_t i = 0; i < n; ++i) {
      word_shingles(batch.doc(static_cast<size_t>(i)), ngram, sh);
      minhash_signature(sh.data(), sh.size(), p, sigs + static_cast<size_t>(i) * k);
    }
  }
}

namespace {
void exact_ngrams(std::string_view text, size_t n, std::vector<uint64_t>& out) {
  thread_local std::string norm;
  thread_local std::vector<uint32_t> starts, ends;
  simplified_words(text, norm, starts, ends);
  out.clear();
  for (size_t i = 0; i + n <= starts.size(); ++i) out.push_back(xxhash64(norm.data() + starts[i], ends[i + n - 1] - starts[i], 0));
}
}  // namespace

void ngram_overlap_counts(const TextBatch& docs, const TextBatch& targets, size_t n, uint32_t* out) {
  require(n >= 1 && n <= 64, ErrorCode::Range, "decontamination n-gram size must be in [1, 64], got " + std::to_string(n));
  std::vector<uint64_t> all, sh;
  for (size_t j = 0; j < targets.count; ++j) {
    exact_ngrams(targets.doc(j), n, sh);
    all.insert(all.end(), sh.begin(), sh.end());
  }
  std::sort(all.begin(), all.end());
  all.erase(std::unique(all.begin(), all.end()), all.end());
  const auto nd = static_cast<std::ptrdiff_t>(docs.count);
#pragma omp parallel
  {
    std::vector<uint64_t> local;
#pragma omp for schedule(dynamic, 16)
    for (std::ptrdiff_t i = 0; i < nd; ++i) {
      exact_ngrams(docs.doc(static_cast<size_t>(i)), n, local);
      uint32_t c = 0;
      for (uint64_t h : local) c += std::binary_search(all.begin(), all.end(), h) ? 1u : 0u;
      out[i] = c;
    }
  }
}

double minhash_jaccard(const uint32_t* a, const uint32_t* b, size_t k) {
  size_t eq = 0;
  for (size_t i = 0; i < k; ++i) eq += a[i] == b[i];
  return k ? static_cast<double>(eq) / static_cast<double>(k) : 0.0;
}

// ---- LSH --------------------------------------------------------------------------------------
void lsh_band_keys(const uint32_t* sigs, size_t n, size_t num_perm, size_t bands, size_t rows, uint64_t* keys) {
  require(bands >= 1 && rows >= 1 && bands * rows <= num_perm, ErrorCode::Range,
          "bands x rows (" + std::to_string(bands) + " x " + std::to_string(rows) + ") must be at least 1 x 1 and at most num_perm = " +
              std::to_string(num_perm));
  for (size_t i = 0; i < n; ++i)
    for (size_t bnd = 0; bnd < bands; ++bnd)
      keys[i * bands + bnd] = xxhash64(sigs + i * num_perm + bnd * rows, rows * sizeof(uint32_t), bnd);
}

std::vector<std::pair<uint32_t, uint32_t>> lsh_candidate_pairs(const uint64_t* keys, size_t n, size_t bands) {
  require(n < 0xFFFFFFFFull, ErrorCode::Range, "too many documents for one LSH pass");
  std::vector<std::pair<uint32_t, uint32_t>> pairs;
  std::vector<std::pair<uint64_t, uint32_t>> col(n);
  for (size_t bnd = 0; bnd < bands; ++bnd) {
    for (size_t i = 0; i < n; ++i) col[i] = {keys[i * bands + bnd], static_cast<uint32_t>(i)};
    std::sort(col.begin(), col.end());
    for (size_t i = 0; i < n;) {
      size_t j = i + 1;
      while (j < n && col[j].first == col[i].first) {
        pairs.emplace_back(col[j].second, col[i].second);
        ++j;
      }
      i = j;
    }
  }
  std::sort(pairs.begin(), pairs.end());
  pairs.erase(std::unique(pairs.begin(), pairs.end()), pairs.end());
  return pairs;
}

bool signature_is_empty(const uint32_t* sig, size_t num_perm) {
  for (size_t k = 0; k < num_perm; ++k)
    if (sig[k] != 0xFFFFFFFFu) return false;
  return true;
}

std::vector<std::pair<uint32_t, uint32_t>> lsh_candidate_pairs_from_signatures(const uint32_t* sigs, size_t n, size_t num_perm,
                                                                              size_t bands, size_t rows) {
  require(bands >= 1 && rows >= 1 && bands * rows <= num_perm, ErrorCode::Range, "bands x rows must be >= 1 and <= num_perm");
  require(n < 0xFFFFFFFFull, ErrorCode::Range, "too many documents for one LSH pass");
  std::vector<std::pair<uint32_t, uint32_t>> pairs;
  std::vector<std::pair<uint64_t, uint32_t>> col(n);
  for (size_t bnd = 0; bnd < bands; ++bnd) {
    col.clear();
    for (size_t i = 0; i < n; ++i)
      if (!signature_is_empty(sigs + i * num_perm, num_perm))
        col.emplace_back(xxhash64(sigs + i * num_perm + bnd * rows, rows * sizeof(uint32_t), bnd), static_cast<uint32_t>(i));
    std::sort(col.begin(), col.end());
    const size_t m = col.size();
    for (size_t i = 0; i < m;) {
      size_t j = i + 1;
      while (j < m && col[j].first == col[i].first) pairs.emplace_back(col[j++].second, col[i].second);
      i = j;
    }
    // Keep the pair list compact as bands accumulate.
    std::sort(pairs.begin(), pairs.end());
    pairs.erase(std::unique(pairs.begin(), pairs.end()), pairs.end());
  }
  return pairs;
}

namespace {
/// Adaptive Gauss-Kronrod (7-15) integration, as scipy's quad (QUADPACK qags) to ~1e-12.
template <class F>
double gk15(F&& f, double a, double b, double& err) {
  static const double xk[8] = {0.991455371120812639206854697526329, 0.949107912342758524526189684047851,
                               0.864864423359769072789712788640926, 0.741531185599394439863864773280788,
                               0.586087235467691130294144845693013, 0.405845151377397166906606412076961,
                               0.207784955007898467600689403773245, 0.000000000000000000000000000000000};
  static const double wk[8] = {0.022935322010529224963732008058970, 0.063092092629978553290700663189204,
                               0.104790010322250183839876322541518, 0.140653259715525918745189590510238,
                               0.169004726639267902826583426598550, 0.190350578064785409913256402421014,
                               0.204432940075298892414161999234649, 0.209482141084727828012999174891714};
  static const double wg[4] = {0.129484966168869693270611432679082, 0.279705391489276667901467771423780,
                               0.381830050505118944950369775488975, 0.417959183673469387755102040816327};
  const double c = 0.5 * (a + b), h = 0.5 * (b - a);
  const double fc = f(c);
  double rk = fc * wk[7], rg = fc * wg[3];
  for (int j = 0; j < 7; ++j) {
    const double x = h * xk[j];
    const double f1 = f(c - x), f2 = f(c + x);
    rk += wk[j] * (f1 + f2);
    if (j % 2 == 1) rg += wg[j / 2] * (f1 + f2);
  }
  err = std::fabs((rk - rg) * h);
  return rk * h;
}
template <class F>
double integrate(F&& f, double a, double b, int depth = 0) {
  double err;
  const double whole = gk15(f, a, b, err);
  if (err < 1e-13 || depth > 40) return whole;
  const double m = 0.5 * (a + b);
  return integrate(f, a, m, depth + 1) + integrate(f, m, b, depth + 1);
}
}  // namespace

double lsh_false_positive_area(double t, size_t b, size_t r) {
  const double bd = static_cast<double>(b), rd = static_cast<double>(r);
  return integrate([&](double s) { return 1.0 - std::pow(1.0 - std::pow(s, rd), bd); }, 0.0, t);
}
double lsh_false_negative_area(double t, size_t b, size_t r) {
  const double bd = static_cast<double>(b), rd = static_cast<double>(r);
  return integrate([&](double s) { return std::pow(1.0 - std::pow(s, rd), bd); }, t, 1.0);
}

LshParams lsh_optimal_params(double threshold, size_t num_perm, double fp_weight, double fn_weight) {
  require(threshold > 0 && threshold < 1, ErrorCode::Range, "threshold must be in (0, 1), got " + std::to_string(threshold));
  require(num_perm >= 2 && num_perm <= 4096, ErrorCode::Range, "num_perm must be in [2, 4096]");
  require(fp_weight >= 0 && fn_weight >= 0 && fp_weight + fn_weight > 0, ErrorCode::Range, "weights must be >= 0, not both 0");
  double best = INFINITY;
  LshParams opt;
  for (size_t b = 1; b <= num_perm; ++b) {
    for (size_t r = 1; r <= num_perm / b; ++r) {
      const double e = fp_weight * lsh_false_positive_area(threshold, b, r) + fn_weight * lsh_false_negative_area(threshold, b, r);
      if (e < best) {
        best = e;
        opt = {b, r};
      }
    }
  }
  return opt;
}

UnionFind::UnionFind(size_t n) : parent_(n) { std::iota(parent_.begin(), parent_.end(), 0u); }
uint32_t UnionFind::find(uint32_t x) {
  while (parent_[x] != x) {
    parent_[x] = parent_[parent_[x]];
    x = parent_[x];
  }
  return x;
}
void UnionFind::unite(uint32_t a, uint32_t b) {
  a = find(a);
  b = find(b);
  if (a == b) return;
  if (a < b) parent_[b] = a;
  else parent_[a] = b;
}

// ---- greedy set cover -------------------------------------------------------------------------
std::vector<uint32_t> greedy_set_cover(const uint32_t* elems, const uint32_t* offsets, size_t num_sets, size_t max_sets) {
  uint32_t universe = 0;
  for (size_t i = 0; i < offsets[num_sets]; ++i) universe = std::max(universe, elems[i] + 1);
  std::vector<uint8_t> covered(universe, 0), used(num_sets, 0);
  // Only elements that appear in some set can be covered.
  size_t remaining = 0;
  {
    std::vector<uint8_t> seen(universe, 0);
    for (size_t i = 0; i < offsets[num_sets]; ++i) remaining += !seen[elems[i]]++ ? 1 : 0;
  }
  // Lazy greedy: stale gains are upper bounds (coverage is submodular), re-evaluated on top.
  std::vector<std::pair<int64_t, int64_t>> heap;  // (gain, -index)
  for (size_t s = 0; s < num_sets; ++s) {
    std::vector<uint32_t> v(elems + offsets[s], elems + offsets[s + 1]);
    std::sort(v.begin(), v.end());
    const auto g = static_cast<int64_t>(std::unique(v.begin(), v.end()) - v.begin());
    heap.emplace_back(g, -static_cast<int64_t>(s));
  }
  std::make_heap(heap.begin(), heap.end());
  std::vector<uint32_t> picked;
  auto gain_of = [&](size_t s) {
    int64_t g = 0;
    std::vector<uint32_t> v(elems + offsets[s], elems + offsets[s + 1]);
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    for (uint32_t e : v) g += !covered[e];
    return g;
  };
  while (remaining > 0 && picked.size() < max_sets && !heap.empty()) {
    std::pop_heap(heap.begin(), heap.end());
    const int64_t negs = heap.back().second;
    heap.pop_back();
    const auto s = static_cast<size_t>(-negs);
    const int64_t fresh = gain_of(s);
    if (fresh <= 0) continue;
    if (!heap.empty() && fresh < heap.front().first) {
      heap.emplace_back(fresh, negs);
      std::push_heap(heap.begin(), heap.end());
      continue;
    }
    // Ties: a fresh gain equal to the top's bound; the heap order (gain, -index) already puts the
    // lower index first among equal bounds, and a lower-index set with an equal stale bound may
    // still have that gain, so re-check it first.
    if (!heap.empty() && fresh == heap.front().first && -heap.front().second < static_cast<int64_t>(s)) {
      heap.emplace_back(fresh, negs);
      std::push_heap(heap.begin(), heap.end());
      continue;
    }
    picked.push_back(static_cast<uint32_t>(s));
    used[s] = 1;
    for (size_t i = offsets[s]; i < offsets[s + 1]; ++i) {
      if (!covered[elems[i]]) {
        covered[elems[i]] = 1;
        --remaining;
      }
    }
  }
  return picked;
}

}  // namespace tersor::select
