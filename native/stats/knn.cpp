// Exact k-nearest-neighbour search and fixed-radius counting (see tersor/stats.hpp).
//
// Three backends behind one class:
//  * Sorted1D: d = 1, the values sorted once; k-NN by expanding two pointers, counts by two binary
//    searches on |v_j - v_i| (monotone on each side of i in floating point, so the counts are exact);
//  * KdTree: median splits on the widest bounding-box side, leaves of <= 16 points stored
//    contiguously; branch-and-bound with exact box distances (min/max over the box of the same
//    per-coordinate expressions the point distances use, so pruning never changes a comparison);
//  * Brute: the points transposed (d x n) and scanned 16 at a time in AVX2 registers with an early
//    exit once all 16 partial distances exceed the current threshold (the k-th best so far, or the
//    radius); 8 queries share each 1024-point block while it is in L2.
// Distances are "reduced" internally: max_k |t_k| (Chebyshev) or sum_k t_k^2 (Euclidean, summed in
// order k = 0..d-1); the true Euclidean distance is the square root. Queries run in parallel.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

#include "tersor/error.hpp"
#include "tersor/parallel.hpp"
#include "tersor/stats.hpp"

namespace tersor::stats {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr size_t kLeafSize = 16;

template <Metric M>
inline double first_term(double t) {
  if constexpr (M == Metric::Chebyshev) return std::fabs(t);
  else return t * t;
}
template <Metric M>
inline double accumulate(double acc, double t) {
  if constexpr (M == Metric::Chebyshev) return std::max(acc, std::fabs(t));
  else return acc + t * t;
}
template <Metric M>
inline double rdist(const double* a, const double* b, size_t d) {
  double acc = first_term<M>(a[0] - b[0]);
  for (size_t k = 1; k < d; ++k) acc = accumulate<M>(acc, a[k] - b[k]);
  return acc;
}
/// The threshold T on reduced distances with  rd <= T  <=>  dist < r (strict) or dist <= r, where
/// dist = rd (Chebyshev) or sqrt(rd) (Euclidean): the square root is monotone, so the qualifying
/// reduced distances form a down-set; T is found from r^2 by stepping one ulp at a time.
double reduced_threshold(Metric m, double r, bool strict) {
  const double none = -1;  // below every reduced distance
  if (std::isnan(r) || r < 0 || (strict && r == 0)) return none;
  if (m == Metric::Chebyshev) return strict ? std::nextafter(r, -kInf) : r;
  if (r == kInf) return kInf;
  auto ok = [&](double v) {
    const double s = std::sqrt(v);
    return strict ? s < r : s <= r;
  };
  double c = r * r;
  if (ok(c)) {
    for (double nx = std::nextafter(c, kInf); ok(nx); nx = std::nextafter(c, kInf)) c = nx;
  } else {
    while (c >= 0 && !ok(c)) c = std::nextafter(c, -kInf);
  }
  return c;
}

/// The k best (smallest reduced distance) candidates of one query, ascending, in caller storage.
struct KBest {
  double* rd;
  uint32_t* id;
  size_t k;
  size_t size = 0;
  double worst() const { return size < k ? kInf : rd[k - 1]; }
  void push(double r, uint32_t j) {
    size_t p = size < k ? size++ : k - 1;
    while (p > 0 && rd[p - 1] > r) {
      rd[p] = rd[p - 1];
      id[p] = id[p - 1];
      --p;
    }
    rd[p] = r;
    id[p] = j;
  }
};

struct KdNode {
  uint32_t begin, end;
  int32_t left, right;  // -1 for a leaf
};

}  // namespace

struct NeighborIndex::Impl {
  size_t n = 0, d = 0;
  Metric metric = Metric::Chebyshev;
  KnnBackend backend = KnnBackend::Brute;
  // Sorted1D: sorted values, sorted position -> original index, original index -> sorted position.
  std::vector<double> sv;
  std::vector<uint32_t> sperm, srank;
  // KdTree: points in tree order (n x d), tree position -> original, original -> tree position.
  std::vector<double> pts;
  std::vector<uint32_t> perm, pos;
  std::vector<KdNode> nodes;
  std::vector<double> lo, hi;  // bounding box of node t at [t * d, t * d + d)
  // Brute: the points row-major (self queries) and transposed (d x stride, stride = n rounded up to
  // 16, the padding +infinity so that it never qualifies).
  std::vector<double> x, xt;
  size_t stride = 0;

  // ---- KD-tree ----
  int32_t build(const double* src, uint32_t begin, uint32_t end) {
    const int32_t id = static_cast<int32_t>(nodes.size());
    nodes.push_back({begin, end, -1, -1});
    lo.resize(lo.size() + d);
    hi.resize(hi.size() + d);
    double* l = &lo[static_cast<size_t>(id) * d];
    double* h = &hi[static_cast<size_t>(id) * d];
    for (size_t k = 0; k < d; ++k) l[k] = h[k] = src[static_cast<size_t>(perm[begin]) * d + k];
    for (uint32_t p = begin + 1; p < end; ++p) {
      const double* v = src + static_cast<size_t>(perm[p]) * d;
      for (size_t k = 0; k < d; ++k) {
        l[k] = std::min(l[k], v[k]);
        h[k] = std::max(h[k], v[k]);
      }
    }
    if (end - begin <= kLeafSize) return id;
    size_t split = 0;
    double widest = -1;
    for (size_t k = 0; k < d; ++k) {
      const double w = h[k] - l[k];
      if (w > widest) {
        widest = w;
        split = k;
      }
    }
    if (!(widest > 0)) return id;  // all points identical: keep them in one leaf
    const uint32_t mid = begin + (end - begin) / 2;
    std::nth_element(perm.begin() + begin, perm.begin() + mid, perm.begin() + end,
                     [&](uint32_t a, uint32_t b) { return src[static_cast<size_t>(a) * d + split] < src[static_cast<size_t>(b) * d + split]; });
    const int32_t left = build(src, begin, mid);
    const int32_t right = build(src, mid, end);
    nodes[static_cast<size_t>(id)].left = left;
    nodes[static_cast<size_t>(id)].right = right;
    return id;
  }

  template <Metric M>
  double box_min(int32_t node, const double* q) const {
    const double* l = &lo[static_cast<size_t>(node) * d];
    const double* h = &hi[static_cast<size_t>(node) * d];
    double acc = 0;
    for (size_t k = 0; k < d; ++k) {
      double t = 0;
      if (q[k] < l[k]) t = l[k] - q[k];
      else if (q[k] > h[k]) t = q[k] - h[k];
      acc = accumulate<M>(acc, t);
    }
    return acc;
  }
  template <Metric M>
  double box_max(int32_t node, const double* q) const {
    const double* l = &lo[static_cast<size_t>(node) * d];
    const double* h = &hi[static_cast<size_t>(node) * d];
    double acc = 0;
    for (size_t k = 0; k < d; ++k) acc = accumulate<M>(acc, std::max(std::fabs(q[k] - l[k]), std::fabs(q[k] - h[k])));
    return acc;
  }

  template <Metric M>
  void kd_knn(int32_t node, const double* q, uint32_t exclude, KBest& kb) const {
    const KdNode& nd = nodes[static_cast<size_t>(node)];
    if (nd.left < 0) {
      for (uint32_t p = nd.begin; p < nd.end; ++p) {
        if (p == exclude) continue;
        const double r = rdist<M>(q, &pts[static_cast<size_t>(p) * d], d);
        if (r < kb.worst()) kb.push(r, p);
      }
      return;
    }
    const double dl = box_min<M>(nd.left, q), dr = box_min<M>(nd.right, q);
    const bool left_first = dl <= dr;
    const int32_t a = left_first ? nd.left : nd.right, b = left_first ? nd.right : nd.left;
    const double da = left_first ? dl : dr, db = left_first ? dr : dl;
    if (da < kb.worst()) kd_knn<M>(a, q, exclude, kb);
    if (db < kb.worst()) kd_knn<M>(b, q, exclude, kb);
  }

  /// #{points in the subtree with rd <= t}.
  template <Metric M>
  size_t kd_count(int32_t node, const double* q, double t) const {
    if (!(box_min<M>(node, q) <= t)) return 0;
    const KdNode& nd = nodes[static_cast<size_t>(node)];
    if (box_max<M>(node, q) <= t) return nd.end - nd.begin;
    if (nd.left < 0) {
      size_t c = 0;
      for (uint32_t p = nd.begin; p < nd.end; ++p) c += rdist<M>(q, &pts[static_cast<size_t>(p) * d], d) <= t;
      return c;
    }
    return kd_count<M>(nd.left, q, t) + kd_count<M>(nd.right, q, t);
  }

  // ---- Sorted1D ----
  template <Metric M>
  void sorted_knn(double v, size_t p_start, bool has_self, size_t self, size_t k, KBest& kb) const {
    // Candidates left of L (inclusive, going down) and from R (going up).
    ptrdiff_t L = static_cast<ptrdiff_t>(p_start) - 1;
    size_t R = has_self ? self + 1 : p_start;
    for (size_t m = 0; m < k; ++m) {
      const double dl = L >= 0 ? first_term<M>(v - sv[static_cast<size_t>(L)]) : kInf;
      const double dr = R < n ? first_term<M>(sv[R] - v) : kInf;
      if (dl <= dr) {
        kb.push(dl, static_cast<uint32_t>(L));
        --L;
      } else {
        kb.push(dr, static_cast<uint32_t>(R));
        ++R;
      }
    }
  }

  /// #{j != p : rd(sv_j, sv_p) <= t}.
  template <Metric M>
  size_t sorted_count(size_t p, double t) const {
    const double v = sv[p];
    auto within = [&](double u) { return first_term<M>(u - v) <= t; };
    // Left side [0, p): "within" is false then true; right side (p, n): true then false.
    const auto lb = std::partition_point(sv.begin(), sv.begin() + static_cast<ptrdiff_t>(p), [&](double u) { return !within(u); });
    const auto rb = std::partition_point(sv.begin() + static_cast<ptrdiff_t>(p) + 1, sv.end(), within);
    return static_cast<size_t>((sv.begin() + static_cast<ptrdiff_t>(p)) - lb) +
           static_cast<size_t>(rb - (sv.begin() + static_cast<ptrdiff_t>(p) + 1));
  }

  // ---- Brute ----
  static constexpr size_t kQB = 8;     // queries sharing one data block
  static constexpr size_t kJB = 1024;  // points per data block (a multiple of 16)

  /// Calls hit(i, j, rd) for every query i and point j with rd <= thr(i), where thr(i) is re-read
  /// after every group of 16 points (k-NN lowers it as candidates arrive). 16 points are processed
  /// at once in four AVX2 registers, one coordinate at a time; every 4 coordinates the group is
  /// dropped as soon as all 16 partial distances exceed the threshold (partial distances only grow),
  /// which in high dimension skips most of the work.
  /// With `local_first` (self queries, which are in the same stored order as the points), the scan of
  /// each query block starts at the data block holding the queries and wraps around: the nearest
  /// candidates come first, so a k-NN threshold is tight from the start.
  template <Metric M, class Thr, class Hit>
  void brute_scan(const double* q, size_t nq, bool local_first, Thr&& thr, Hit&& hit) const {
    const ptrdiff_t nblocks = static_cast<ptrdiff_t>((nq + kQB - 1) / kQB);
    const int nt = num_threads();
    const size_t np = stride;
    const size_t jblocks = (np + kJB - 1) / kJB;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (ptrdiff_t b = 0; b < nblocks; ++b) {
      const size_t i0 = static_cast<size_t>(b) * kQB, i1 = std::min(nq, i0 + kQB);
      alignas(32) double lanes[16];
      const size_t start = local_first ? std::min(i0 / kJB, jblocks - 1) : 0;
      for (size_t jb = 0; jb < jblocks; ++jb) {
        const size_t j0 = ((start + jb) % jblocks) * kJB;
        const size_t j1 = std::min(np, j0 + kJB);
        for (size_t i = i0; i < i1; ++i) {
          const double* qi = q + i * d;
          double t = thr(i);
          for (size_t j = j0; j < j1; j += 16) {
            if (!scan16<M>(qi, j, np, t, lanes)) continue;
            for (size_t l = 0; l < 16 && j + l < n; ++l)
              if (lanes[l] <= t) {
                hit(i, j + l, lanes[l]);
                t = thr(i);
              }
          }
        }
      }
    }
  }

  /// Reduced distances from q to points j..j+15 into out; false when all 16 exceed t (out undefined).
  template <Metric M>
  bool scan16(const double* qv, size_t j, size_t np, double t, double* out) const {
    const __m256d sign = _mm256_set1_pd(-0.0);
    const double* base = xt.data() + j;
    __m256d a0, a1, a2, a3;
    auto term = [&](__m256d v, __m256d qk) {
      const __m256d diff = _mm256_sub_pd(v, qk);
      if constexpr (M == Metric::Chebyshev) return _mm256_andnot_pd(sign, diff);
      else return _mm256_mul_pd(diff, diff);
    };
    auto acc = [&](__m256d s, __m256d v) {
      if constexpr (M == Metric::Chebyshev) return _mm256_max_pd(s, v);
      else return _mm256_add_pd(s, v);
    };
    {
      const __m256d qk = _mm256_set1_pd(qv[0]);
      a0 = term(_mm256_loadu_pd(base), qk);
      a1 = term(_mm256_loadu_pd(base + 4), qk);
      a2 = term(_mm256_loadu_pd(base + 8), qk);
      a3 = term(_mm256_loadu_pd(base + 12), qk);
    }
    const __m256d tv = _mm256_set1_pd(t);
    for (size_t k = 1; k < d; ++k) {
      const double* row = base + k * np;
      const __m256d qk = _mm256_set1_pd(qv[k]);
      a0 = acc(a0, term(_mm256_loadu_pd(row), qk));
      a1 = acc(a1, term(_mm256_loadu_pd(row + 4), qk));
      a2 = acc(a2, term(_mm256_loadu_pd(row + 8), qk));
      a3 = acc(a3, term(_mm256_loadu_pd(row + 12), qk));
      if ((k & 3) == 3) {
        const __m256d le = _mm256_or_pd(_mm256_or_pd(_mm256_cmp_pd(a0, tv, _CMP_LE_OQ), _mm256_cmp_pd(a1, tv, _CMP_LE_OQ)),
                                        _mm256_or_pd(_mm256_cmp_pd(a2, tv, _CMP_LE_OQ), _mm256_cmp_pd(a3, tv, _CMP_LE_OQ)));
        if (_mm256_movemask_pd(le) == 0) return false;
      }
    }
    const __m256d le = _mm256_or_pd(_mm256_or_pd(_mm256_cmp_pd(a0, tv, _CMP_LE_OQ), _mm256_cmp_pd(a1, tv, _CMP_LE_OQ)),
                                    _mm256_or_pd(_mm256_cmp_pd(a2, tv, _CMP_LE_OQ), _mm256_cmp_pd(a3, tv, _CMP_LE_OQ)));
    if (_mm256_movemask_pd(le) == 0) return false;
    _mm256_store_pd(out, a0);
    _mm256_store_pd(out + 4, a1);
    _mm256_store_pd(out + 8, a2);
    _mm256_store_pd(out + 12, a3);
    return true;
  }

  template <Metric M>
  void knn_impl(const double* q, size_t nq, size_t k, bool self, double* dist, uint32_t* idx) const {
    std::vector<uint32_t> tmp;
    if (!idx) {
      tmp.resize(nq * k);
      idx = tmp.data();
    }
    const int nt = num_threads();
    if (backend == KnnBackend::Brute) {
      // Self queries run in stored (leaf) order, so neighbouring queries share thresholds' scale;
      // results are written to the original order at the end.
      std::vector<uint32_t> sizes(nq, 0);
      std::vector<double> bd(nq * k);
      std::vector<uint32_t> bi(nq * k);
      brute_scan<M>(
          self ? x.data() : q, nq, self,
          [&](size_t i) { return sizes[i] < k ? kInf : bd[i * k + k - 1]; },
          [&](size_t i, size_t j, double rd) {
            if (self && j == i) return;
            KBest kb{&bd[i * k], &bi[i * k], k, sizes[i]};
            if (rd < kb.worst()) {
              kb.push(rd, static_cast<uint32_t>(j));
              sizes[i] = static_cast<uint32_t>(kb.size);
            }
          });
      for (size_t i = 0; i < nq; ++i) {
        const size_t o = self ? perm[i] : i;
        for (size_t m = 0; m < k; ++m) {
          dist[o * k + m] = bd[i * k + m];
          idx[o * k + m] = perm[bi[i * k + m]];
        }
      }
    } else if (backend == KnnBackend::KdTree) {
#pragma omp parallel for num_threads(nt) schedule(dynamic, 256)
      for (ptrdiff_t ii = 0; ii < static_cast<ptrdiff_t>(nq); ++ii) {
        const size_t i = static_cast<size_t>(ii);
        KBest kb{dist + i * k, idx + i * k, k};
        const uint32_t exclude = self ? pos[i] : std::numeric_limits<uint32_t>::max();
        const double* qi = self ? &pts[static_cast<size_t>(pos[i]) * d] : q + i * d;
        kd_knn<M>(0, qi, exclude, kb);
        for (size_t m = 0; m < k; ++m) kb.id[m] = perm[kb.id[m]];
      }
    } else {  // Sorted1D
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1024)
      for (ptrdiff_t ii = 0; ii < static_cast<ptrdiff_t>(nq); ++ii) {
        const size_t i = static_cast<size_t>(ii);
        KBest kb{dist + i * k, idx + i * k, k};
        if (self) {
          const size_t p = srank[i];
          sorted_knn<M>(sv[p], p, true, p, k, kb);
        } else {
          const double v = q[i];
          const size_t p = static_cast<size_t>(std::lower_bound(sv.begin(), sv.end(), v) - sv.begin());
          sorted_knn<M>(v, p, false, 0, k, kb);
        }
        for (size_t m = 0; m < k; ++m) kb.id[m] = sperm[kb.id[m]];
      }
    }
    if (M == Metric::Euclidean)
      for (size_t t = 0; t < nq * k; ++t) dist[t] = std::sqrt(dist[t]);
  }

  template <Metric M>
  void count_impl(const double* r, bool strict, uint32_t* counts) const {
    const int nt = num_threads();
    std::vector<double> thr(n);
    for (size_t i = 0; i < n; ++i) thr[i] = reduced_threshold(M, r[i], strict);
    if (backend == KnnBackend::Brute) {
      // In stored order (position p holds original point perm[p]).
      std::vector<double> tp(n);
      for (size_t p = 0; p < n; ++p) tp[p] = thr[perm[p]];
      std::vector<uint32_t> c(n, 0);
      brute_scan<M>(
          x.data(), n, false, [&](size_t p) { return tp[p]; }, [&](size_t p, size_t, double) { ++c[p]; });
      for (size_t p = 0; p < n; ++p) counts[perm[p]] = c[p] - (0 <= tp[p] ? 1 : 0);  // minus the point itself
    } else if (backend == KnnBackend::KdTree) {
#pragma omp parallel for num_threads(nt) schedule(dynamic, 256)
      for (ptrdiff_t ii = 0; ii < static_cast<ptrdiff_t>(n); ++ii) {
        const size_t i = static_cast<size_t>(ii);
        size_t c = kd_count<M>(0, &pts[static_cast<size_t>(pos[i]) * d], thr[i]);
        if (0 <= thr[i]) --c;
        counts[i] = static_cast<uint32_t>(c);
      }
    } else {
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1024)
      for (ptrdiff_t ii = 0; ii < static_cast<ptrdiff_t>(n); ++ii) {
        const size_t i = static_cast<size_t>(ii);
        counts[i] = static_cast<uint32_t>(sorted_count<M>(srank[i], thr[i]));
      }
    }
  }
};

KnnBackend auto_backend(size_t n, size_t d, bool counting) {
  if (d == 1) return KnnBackend::Sorted1D;
  if (counting) {
    // Radius counts at KSG radii visit many partly covered boxes: the tree pays only in low dimension
    // or for large n (measured crossovers on Gaussian data: d = 6-8 at n ~ 30k).
    if (d <= 4 || (d <= 8 && n >= 32768)) return KnnBackend::KdTree;
    return KnnBackend::Brute;
  }
  if (d <= 8) return KnnBackend::KdTree;
  // A KD-tree still prunes in moderate dimension when n is large against 2^d.
  if (d <= 12 && n >= (size_t{1} << d) * 16) return KnnBackend::KdTree;
  return KnnBackend::Brute;
}

NeighborIndex::NeighborIndex(const double* x, size_t n, size_t d, Metric metric, KnnBackend backend)
    : impl_(std::make_unique<Impl>()) {
  require(d >= 1, ErrorCode::Shape, "k-NN index: points need at least one dimension");
  require(n >= 1, ErrorCode::Shape, "k-NN index: no points");
  require(n < (size_t{1} << 32) - 1, ErrorCode::Range, "k-NN index: at most 2^32 - 2 points");
  check_finite(x, n, d, "points");
  Impl& m = *impl_;
  m.n = n;
  m.d = d;
  m.metric = metric;
  if (backend == KnnBackend::Auto) backend = auto_backend(n, d);
  require(backend != KnnBackend::Sorted1D || d == 1, ErrorCode::Range, "k-NN index: the sorted backend needs d = 1");
  m.backend = backend;
  if (backend == KnnBackend::Sorted1D) {
    m.sperm.resize(n);
    std::iota(m.sperm.begin(), m.sperm.end(), 0u);
    std::sort(m.sperm.begin(), m.sperm.end(), [&](uint32_t a, uint32_t b) { return x[a] < x[b] || (x[a] == x[b] && a < b); });
    m.sv.resize(n);
    m.srank.resize(n);
    for (size_t p = 0; p < n; ++p) {
      m.sv[p] = x[m.sperm[p]];
      m.srank[m.sperm[p]] = static_cast<uint32_t>(p);
    }
  } else if (backend == KnnBackend::KdTree) {
    m.perm.resize(n);
    std::iota(m.perm.begin(), m.perm.end(), 0u);
    m.nodes.reserve(2 * (n / kLeafSize + 1));
    m.build(x, 0, static_cast<uint32_t>(n));
    m.pts.resize(n * d);
    m.pos.resize(n);
    for (size_t p = 0; p < n; ++p) {
      std::copy(x + static_cast<size_t>(m.perm[p]) * d, x + static_cast<size_t>(m.perm[p]) * d + d, &m.pts[p * d]);
      m.pos[m.perm[p]] = static_cast<uint32_t>(p);
    }
  } else {
    // Points in KD-tree leaf order: each group of 16 scanned together is spatially coherent, so its
    // partial distances exceed the threshold together and the early exit comes sooner.
    m.perm.resize(n);
    std::iota(m.perm.begin(), m.perm.end(), 0u);
    m.nodes.reserve(2 * (n / kLeafSize + 1));
    m.build(x, 0, static_cast<uint32_t>(n));
    m.nodes = {};
    m.lo = {};
    m.hi = {};
    m.x.resize(n * d);
    m.pos.resize(n);
    m.stride = (n + 15) / 16 * 16;
    m.xt.assign(m.stride * d, kInf);
    for (size_t p = 0; p < n; ++p) {
      const double* src = x + static_cast<size_t>(m.perm[p]) * d;
      std::copy(src, src + d, &m.x[p * d]);
      for (size_t k = 0; k < d; ++k) m.xt[k * m.stride + p] = src[k];
      m.pos[m.perm[p]] = static_cast<uint32_t>(p);
    }
  }
}

NeighborIndex::~NeighborIndex() = default;
NeighborIndex::NeighborIndex(NeighborIndex&&) noexcept = default;
NeighborIndex& NeighborIndex::operator=(NeighborIndex&&) noexcept = default;

size_t NeighborIndex::size() const { return impl_->n; }
size_t NeighborIndex::dim() const { return impl_->d; }
Metric NeighborIndex::metric() const { return impl_->metric; }
KnnBackend NeighborIndex::backend() const { return impl_->backend; }

void NeighborIndex::knn_self(size_t k, double* dist, uint32_t* idx) const {
  const Impl& m = *impl_;
  require(k >= 1 && k + 1 <= m.n, ErrorCode::Range,
          "k = " + std::to_string(k) + " nearest neighbours need at least k + 1 = " + std::to_string(k + 1) +
              " points, got " + std::to_string(m.n));
  if (m.metric == Metric::Chebyshev) m.knn_impl<Metric::Chebyshev>(nullptr, m.n, k, true, dist, idx);
  else m.knn_impl<Metric::Euclidean>(nullptr, m.n, k, true, dist, idx);
}

void NeighborIndex::knn(const double* q, size_t nq, size_t k, double* dist, uint32_t* idx) const {
  const Impl& m = *impl_;
  require(k >= 1 && k <= m.n, ErrorCode::Range,
          "k = " + std::to_string(k) + " nearest neighbours need at least k points, got " + std::to_string(m.n));
  check_finite(q, nq, m.d, "queries");
  if (m.metric == Metric::Chebyshev) m.knn_impl<Metric::Chebyshev>(q, nq, k, false, dist, idx);
  else m.knn_impl<Metric::Euclidean>(q, nq, k, false, dist, idx);
}

void NeighborIndex::count_self(const double* r, bool strict, uint32_t* counts) const {
  const Impl& m = *impl_;
  for (size_t i = 0; i < m.n; ++i)
    require(!std::isnan(r[i]), ErrorCode::Range, "radius " + std::to_string(i) + " is NaN");
  if (m.metric == Metric::Chebyshev) m.count_impl<Metric::Chebyshev>(r, strict, counts);
  else m.count_impl<Metric::Euclidean>(r, strict, counts);
}

// ---- shared input checks -----------------------------------------------------------------------

void check_finite(const double* x, size_t n, size_t d, const char* what) {
  const size_t total = n * d;
  size_t bad = total;
  for (size_t t = 0; t < total; ++t)
    if (!std::isfinite(x[t])) {
      bad = t;
      break;
    }
  if (bad < total)
    fail(ErrorCode::Range, std::string(what) + " contains a non-finite value (" + std::to_string(x[bad]) + ") at row " +
                               std::to_string(bad / d) + ", column " + std::to_string(bad % d));
}

void check_no_constant_column(const double* x, size_t n, size_t d, const char* what, const char* advice) {
  if (n < 2) return;
  for (size_t k = 0; k < d; ++k) {
    bool constant = true;
    const double v0 = x[k];
    for (size_t i = 1; i < n && constant; ++i) constant = x[i * d + k] == v0;
    if (constant)
      fail(ErrorCode::Range, std::string(what) + " column " + std::to_string(k) + " is constant (every value is " +
                                 std::to_string(v0) + "): " + advice);
  }
}

}  // namespace tersor::stats
