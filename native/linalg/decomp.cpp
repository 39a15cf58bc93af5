// Dense decompositions over Eigen 3.4 (see tersor/linalg.hpp for the contracts), plus tersor's own
// truncated SVD (thick-restart block Lanczos), randomized SVD (Halko, Martinsson & Tropp 2011), blocked
// Cholesky and triangular inverse. Large products go through tersor::sgemm in float and an
// OpenMP-split Eigen product in double.
#include <omp.h>

#include <Eigen/Cholesky>
#include <Eigen/Dense>
#include <Eigen/Eigenvalues>
#include <Eigen/LU>
#include <Eigen/QR>
#include <Eigen/SVD>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "tersor/error.hpp"
#include "tersor/linalg.hpp"
#include "tersor/parallel.hpp"
#include "tersor/rng.hpp"

namespace tersor {
namespace {

template <class T> using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T> using ColMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;
template <class T> using Vec = Eigen::Matrix<T, Eigen::Dynamic, 1>;
using Stride = Eigen::OuterStride<>;
template <class T> using CMap = Eigen::Map<const RowMat<T>, 0, Stride>;
template <class T> using MMap = Eigen::Map<RowMat<T>, 0, Stride>;

template <class T> constexpr double eps_of() { return std::numeric_limits<T>::epsilon(); }

std::string num(double x) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.6g", x);
  return buf;
}
std::string dims(size_t r, size_t c) { return std::to_string(r) + " x " + std::to_string(c); }

template <class T>
CMap<T> cmap(const T* p, size_t rows, size_t cols, size_t ld) {
  return CMap<T>(p, static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols), Stride(static_cast<Eigen::Index>(ld)));
}
template <class T>
MMap<T> mmap(T* p, size_t rows, size_t cols, size_t ld) {
  return MMap<T>(p, static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols), Stride(static_cast<Eigen::Index>(ld)));
}
/// A column-major copy of a row-major matrix.
template <class T>
ColMat<T> to_col(const T* p, size_t rows, size_t cols) {
  if (rows == 0 || cols == 0) return ColMat<T>(rows, cols);
  return cmap(p, rows, cols, cols);
}
/// A row-major vector holding an Eigen expression.
template <class T, class E>
std::vector<T> to_vec(const Eigen::MatrixBase<E>& m) {
  std::vector<T> out(static_cast<size_t>(m.rows() * m.cols()));
  if (!out.empty()) mmap(out.data(), m.rows(), m.cols(), m.cols()) = m.template cast<T>();
  return out;
}

// ---- input checks ------------------------------------------------------------------------------

template <class T>
void check_finite(const char* fn, const T* a, size_t rows, size_t cols, const char* what) {
  const size_t n = rows * cols;
  if (n == 0) return;
  // x - x is NaN exactly when x is NaN or +-Inf; NaN survives any summation order.
  T acc = 0;
  if (n >= (size_t{1} << 20)) {
#pragma omp parallel for reduction(+ : acc) schedule(static)
    for (size_t i = 0; i < n; ++i) acc += a[i] - a[i];
  } else {
#pragma omp simd reduction(+ : acc)
    for (size_t i = 0; i < n; ++i) acc += a[i] - a[i];
  }
  if (acc == acc) return;
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(a[i])) {
      const char* kind = std::isnan(a[i]) ? "NaN" : (a[i] > 0 ? "+Inf" : "-Inf");
      fail(ErrorCode::Range, std::string(fn) + ": " + what + " contains " + kind + " at row " + std::to_string(i / cols) +
                                 ", column " + std::to_string(i % cols) + " (every element must be finite)");
    }
  }
}

void check_square(const char* fn, size_t rows, size_t cols, const char* what = "a") {
  require(rows == cols, ErrorCode::Shape,
          std::string(fn) + ": " + what + " must be a square matrix, got " + dims(rows, cols));
}

/// Symmetry to sqrt(eps) * max|A| (routines then read the lower triangle). Tiled, so that the transposed
/// reads stay in cache.
template <class T>
void check_symmetric(const char* fn, const T* a, size_t n) {
  T maxabs = 0;
  for (size_t i = 0; i < n * n; ++i) maxabs = std::max(maxabs, std::abs(a[i]));
  const double tol = std::sqrt(eps_of<T>()) * static_cast<double>(maxabs);
  constexpr size_t tile = 64;
  for (size_t i0 = 0; i0 < n; i0 += tile)
    for (size_t j0 = 0; j0 <= i0; j0 += tile)
      for (size_t i = i0; i < std::min(n, i0 + tile); ++i)
        for (size_t j = j0; j < std::min(i, j0 + tile); ++j) {
          const double x = a[i * n + j], y = a[j * n + i];
          if (std::abs(x - y) > tol)
            fail(ErrorCode::Range, std::string(fn) + ": matrix is not symmetric: a[" + std::to_string(i) + "][" +
                                       std::to_string(j) + "] = " + num(x) + " but a[" + std::to_string(j) + "][" +
                                       std::to_string(i) + "] = " + num(y) + " (tolerance " + num(tol) + ")");
        }
}

void check_damping(const char* fn, double damping) {
  require(std::isfinite(damping) && damping >= 0, ErrorCode::Range,
          std::string(fn) + ": damping must be a finite number >= 0, got " + num(damping));
}

// ---- products -----------------------------------------------------------------------------------

/// Double GEMM with tersor::sgemm's contract: Eigen's product on row (or column) slices of C, one
/// per thread (Eigen itself is built single-threaded here).
void dgemm(Trans ta, Trans tb, size_t m, size_t n, size_t k, double alpha, const double* a, size_t lda,
           const double* b, size_t ldb, double beta, double* c, size_t ldc) {
  if (m == 0 || n == 0) return;
  const bool by_rows = m >= n;
  const size_t len = by_rows ? m : n;
  const double work = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(std::max<size_t>(k, 1));
  int nt = std::max(1, std::min(num_threads(), static_cast<int>(work / 2e6)));
  nt = static_cast<int>(std::min<size_t>(static_cast<size_t>(nt), len));
#pragma omp parallel for num_threads(nt) schedule(static, 1)
  for (int t = 0; t < nt; ++t) {
    const size_t lo = len * static_cast<size_t>(t) / static_cast<size_t>(nt);
    const size_t hi = len * static_cast<size_t>(t + 1) / static_cast<size_t>(nt);
    if (lo == hi) continue;
    const size_t r0 = by_rows ? lo : 0, r1 = by_rows ? hi : m;
    const size_t c0 = by_rows ? 0 : lo, c1 = by_rows ? n : hi;
    auto C = mmap(c + r0 * ldc + c0, r1 - r0, c1 - c0, ldc);
    if (beta == 0) C.setZero();
    else if (beta != 1) C *= beta;
    if (k == 0) continue;
    const size_t rr = r1 - r0, cc = c1 - c0;
    if (ta == Trans::No && tb == Trans::No)
      C.noalias() += alpha * cmap(a + r0 * lda, rr, k, lda) * cmap(b + c0, k, cc, ldb);
    else if (ta == Trans::Yes && tb == Trans::No)
      C.noalias() += alpha * cmap(a + r0, k, rr, lda).transpose() * cmap(b + c0, k, cc, ldb);
    else if (ta == Trans::No)
      C.noalias() += alpha * cmap(a + r0 * lda, rr, k, lda) * cmap(b + c0 * ldb, cc, k, ldb).transpose();
    else
      C.noalias() += alpha * cmap(a + r0, k, rr, lda).transpose() * cmap(b + c0 * ldb, cc, k, ldb).transpose();
  }
}

/// C = alpha op(A) op(B) + beta C in T: tersor::sgemm (or the given kernel) for float, dgemm for double.
template <class T>
void gemm(SgemmFn f, Trans ta, Trans tb, size_t m, size_t n, size_t k, T alpha, const T* a, size_t lda, const T* b,
          size_t ldb, T beta, T* c, size_t ldc) {
  if (m == 0 || n == 0) return;
  if constexpr (std::is_same_v<T, float>) {
    if (k == 0) {
      for (size_t i = 0; i < m; ++i)
        for (size_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0 ? 0.f : beta * c[i * ldc + j];
      return;
    }
    (f ? f : &sgemm)(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  } else {
    dgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
}

// ---- QR helpers ---------------------------------------------------------------------------------

/// Overwrites the rows x cols block X (row-major, leading dimension ld, rows >= cols) with the thin Q
/// of a Householder QR; `R` (cols x cols, upper triangular) receives the triangular factor when given.
/// Tall blocks are factored as a TSQR (Demmel, Grigori, Hoemmen & Langou 2012, "Communication-optimal
/// parallel and sequential QR and LU factorizations"): one Householder QR per row slice, in parallel,
/// then one of the stacked R factors; as stable as a single Householder QR.
template <class T>
void orthonormalize(T* x, size_t rows, size_t cols, size_t ld, ColMat<double>* R = nullptr) {
  if (cols == 0) return;
  size_t p = static_cast<size_t>(std::max(1, num_threads()));
  p = std::min(p, rows / std::max<size_t>(4 * cols, 256));
  if (p < 2 || rows * cols < (size_t{1} << 16)) {
    ColMat<T> X = cmap(x, rows, cols, ld);
    Eigen::HouseholderQR<Eigen::Ref<ColMat<T>>> qr(X);
    if (R) *R = qr.matrixQR().topRows(cols).template cast<double>().template triangularView<Eigen::Upper>();
    ColMat<T> Q = ColMat<T>::Identity(rows, cols);
    Q.applyOnTheLeft(qr.householderQ());
    mmap(x, rows, cols, ld) = Q;
    return;
  }
  std::vector<ColMat<T>> Qi(p);
  ColMat<T> Rs = ColMat<T>::Zero(p * cols, cols);
  auto lo = [&](size_t t) { return rows * t / p; };
#pragma omp parallel for num_threads(static_cast<int>(p)) schedule(static, 1)
  for (long long t = 0; t < static_cast<long long>(p); ++t) {
    const size_t r0 = lo(t), r1 = lo(t + 1);
    ColMat<T> X = cmap(x + r0 * ld, r1 - r0, cols, ld);
    Eigen::HouseholderQR<Eigen::Ref<ColMat<T>>> qr(X);
    Rs.block(t * cols, 0, cols, cols) = qr.matrixQR().topRows(cols).template triangularView<Eigen::Upper>();
    Qi[t] = ColMat<T>::Identity(r1 - r0, cols);
    Qi[t].applyOnTheLeft(qr.householderQ());
  }
  Eigen::HouseholderQR<Eigen::Ref<ColMat<T>>> qs(Rs);
  if (R) *R = qs.matrixQR().topRows(cols).template cast<double>().template triangularView<Eigen::Upper>();
  ColMat<T> Qs = ColMat<T>::Identity(p * cols, cols);
  Qs.applyOnTheLeft(qs.householderQ());
#pragma omp parallel for num_threads(static_cast<int>(p)) schedule(static, 1)
  for (long long t = 0; t < static_cast<long long>(p); ++t) {
    const size_t r0 = lo(t), r1 = lo(t + 1);
    mmap(x + r0 * ld, r1 - r0, cols, ld).noalias() = Qi[t] * Qs.block(t * cols, 0, cols, cols);
  }
}

template <class T>
void fill_gaussian(Rng& rng, T* x, size_t rows, size_t cols, size_t ld) {
  for (size_t i = 0; i < rows; ++i)
    for (size_t j = 0; j < cols; ++j) x[i * ld + j] = static_cast<T>(rng.next_normal());
}

/// Makes the block X = W[:, s : s + b] (row-major, leading dimension ldw) orthonormal and orthogonal to
/// W[:, 0 : s] (already orthonormal): two passes of block classical Gram-Schmidt, Householder QR, then
/// one more projection and QR ("twice is enough", Giraud et al. 2005). A column that the last
/// projection leaves with less than half its (unit) norm lay in span(W) numerically (a deficient
/// Krylov block); it is replaced by a Gaussian vector and the block is redone. A column's norm before
/// projection does not matter: a small remainder is still a meaningful new direction.
template <class T>
void orth_block(SgemmFn f, T* W, size_t ldw, size_t s, size_t N, size_t b, Rng& rng) {
  T* X = W + s;
  std::vector<T> C(std::max<size_t>(s, 1) * b);
  auto project = [&] {
    if (s == 0) return;
    gemm<T>(f, Trans::Yes, Trans::No, s, b, N, T(1), W, ldw, X, ldw, T(0), C.data(), b);
    gemm<T>(f, Trans::No, Trans::No, N, b, s, T(-1), W, ldw, C.data(), b, T(1), X, ldw);
  };
  ColMat<double> R;
  for (int attempt = 0;; ++attempt) {
    project();
    project();
    orthonormalize(X, N, b, ldw);
    if (s == 0) return;
    project();
    orthonormalize(X, N, b, ldw, &R);
    bool redo = false;
    for (size_t j = 0; j < b; ++j)
      if (!(std::abs(R(j, j)) > 0.5) && attempt < 4) {
        redo = true;
        for (size_t i = 0; i < N; ++i) X[i * ldw + j] = static_cast<T>(rng.next_normal());
      }
    if (!redo) return;
  }
}

template <class T>
Svd<T> truncate_svd(const Svd<T>& full, size_t k) {
  Svd<T> out;
  out.m = full.m;
  out.n = full.n;
  out.ku = out.kv = k;
  out.u.resize(full.m * k);
  out.vt.assign(full.vt.begin(), full.vt.begin() + static_cast<std::ptrdiff_t>(k * full.n));
  out.s.assign(full.s.begin(), full.s.begin() + static_cast<std::ptrdiff_t>(k));
  for (size_t i = 0; i < full.m; ++i)
    std::copy_n(full.u.begin() + static_cast<std::ptrdiff_t>(i * full.ku), k, out.u.begin() + static_cast<std::ptrdiff_t>(i * k));
  return out;
}

void check_k(const char* fn, size_t m, size_t n, size_t k) {
  const size_t r = std::min(m, n);
  require(k >= 1 && k <= r, ErrorCode::Range,
          std::string(fn) + ": k = " + std::to_string(k) + " is out of range for a " + dims(m, n) +
              " matrix; it must be in [1, min(m, n) = " + std::to_string(r) + "]");
}

/// Blocked right-looking Cholesky in place on the row-major n x n matrix `a` (Golub & Van Loan, Alg.
/// 4.2.4): the lower triangle is read and overwritten by L, the strict upper triangle zeroed. Diagonal
/// blocks by Eigen's unblocked LLT, panel solves A21 <- A21 L11^-T in parallel row slices, trailing
/// updates A22 -= A21 A21^T (lower part, in row panels) through the parallel gemm. Returns -1, or the
/// index of the first failing pivot with its value (the Schur complement's diagonal) in *pivot.
template <class T>
long long chol_blocked(T* a, size_t n, double* pivot) {
  constexpr size_t nb = 256;
  for (size_t k = 0; k < n; k += nb) {
    const size_t bs = std::min(nb, n - k);
    auto A11 = mmap(a + k * n + k, bs, bs, n);
    const Eigen::Index ret = Eigen::internal::llt_inplace<T, Eigen::Lower>::unblocked(A11);
    if (ret >= 0) {
      // A11(ret, ret) still holds the updated diagonal; row ret left of it holds final L entries.
      double x = static_cast<double>(A11(ret, ret));
      for (Eigen::Index c = 0; c < ret; ++c) x -= static_cast<double>(A11(ret, c)) * static_cast<double>(A11(ret, c));
      *pivot = x;
      return static_cast<long long>(k) + ret;
    }
    const size_t r = n - k - bs;
    if (r == 0) break;
    T* a21 = a + (k + bs) * n + k;
    const int nt = static_cast<int>(std::max<size_t>(1, std::min<size_t>(static_cast<size_t>(num_threads()), r / 64)));
#pragma omp parallel for num_threads(nt) schedule(static, 1)
    for (int t = 0; t < nt; ++t) {
      const size_t r0 = r * static_cast<size_t>(t) / static_cast<size_t>(nt);
      const size_t r1 = r * static_cast<size_t>(t + 1) / static_cast<size_t>(nt);
      if (r0 == r1) continue;
      auto panel = mmap(a21 + r0 * n, r1 - r0, bs, n);
      A11.transpose().template triangularView<Eigen::Upper>().template solveInPlace<Eigen::OnTheRight>(panel);
    }
    T* a22 = a + (k + bs) * n + (k + bs);
    const size_t P = std::clamp<size_t>(r / 256, 1, 8);
    for (size_t p = 0; p < P; ++p) {
      const size_t i0 = r * p / P, i1 = r * (p + 1) / P;
      if (i0 < i1)
        gemm<T>(nullptr, Trans::No, Trans::Yes, i1 - i0, i1, bs, T(-1), a21 + i0 * n, n, a21, n, T(1), a22 + i0 * n, n);
    }
  }
  for (size_t i = 0; i < n; ++i) std::fill(a + i * n + i + 1, a + (i + 1) * n, T(0));
  return -1;
}

/// Row-major lower Cholesky factor of the (damped) n x n matrix; Range with the failing pivot otherwise.
template <class T>
std::vector<T> chol_rows(const char* fn, std::vector<T> a, size_t n, double damping) {
  if (damping > 0 && n > 0) {
    double mean = 0;
    for (size_t i = 0; i < n; ++i) mean += static_cast<double>(a[i * n + i]);
    const T add = static_cast<T>(damping * mean / static_cast<double>(n));
    for (size_t i = 0; i < n; ++i) a[i * n + i] += add;
  }
  double pivot = 0;
  const long long j = chol_blocked(a.data(), n, &pivot);
  if (j >= 0)
    fail(ErrorCode::Range, std::string(fn) + ": matrix is not positive definite (pivot j = " + std::to_string(j) +
                               " is " + num(pivot) + (damping > 0 ? " after damping" : "") + ")");
  return a;
}

/// C (m x n) = B (m x n) T with T lower triangular n x n, all row-major: recursive on T's halves so only
/// blocks of at most kTrmmBase multiply their zero upper triangles (a plain gemm would do twice the work).
constexpr size_t kTrmmBase = 192;

template <class T>
void trmm_right_lower(const T* b, size_t ldb, size_t m, const T* t, size_t ldt, size_t n, T* c, size_t ldc) {
  if (n <= kTrmmBase) {
    gemm<T>(nullptr, Trans::No, Trans::No, m, n, n, T(1), b, ldb, t, ldt, T(0), c, ldc);
    return;
  }
  const size_t n1 = (n / 2 + 63) / 64 * 64, n2 = n - n1;
  // [C1 C2] = [B1 B2] [T11 0; T21 T22]: C1 = B1 T11 + B2 T21, C2 = B2 T22.
  trmm_right_lower(b, ldb, m, t, ldt, n1, c, ldc);
  trmm_right_lower(b + n1, ldb, m, t + n1 * ldt + n1, ldt, n2, c + n1, ldc);
  gemm<T>(nullptr, Trans::No, Trans::No, m, n1, n2, T(1), b + n1, ldb, t + n1 * ldt, ldt, T(1), c, ldc);
}

/// C (m x n) = alpha T B with T lower triangular m x m (the left-hand counterpart of trmm_right_lower).
template <class T>
void trmm_left_lower(T alpha, const T* t, size_t ldt, size_t m, const T* b, size_t ldb, size_t n, T* c, size_t ldc) {
  if (m <= kTrmmBase) {
    gemm<T>(nullptr, Trans::No, Trans::No, m, n, m, alpha, t, ldt, b, ldb, T(0), c, ldc);
    return;
  }
  const size_t m1 = (m / 2 + 63) / 64 * 64, m2 = m - m1;
  // [C1; C2] = alpha [T11 0; T21 T22] [B1; B2]: C1 = alpha T11 B1, C2 = alpha (T21 B1 + T22 B2).
  trmm_left_lower(alpha, t, ldt, m1, b, ldb, n, c, ldc);
  trmm_left_lower(alpha, t + m1 * ldt + m1, ldt, m2, b + m1 * ldb, ldb, n, c + m1 * ldc, ldc);
  gemm<T>(nullptr, Trans::No, Trans::No, m2, n, m1, alpha, t + m1 * ldt, ldt, b, ldb, T(1), c + m1 * ldc, ldc);
}

/// In-place inverse of the row-major lower-triangular n x n matrix L (leading dimension ld; the strict
/// upper triangle must be zero) by recursive halving: with L = [L11 0; L21 L22],
/// L^-1 = [L11^-1 0; -L22^-1 L21 L11^-1 L22^-1] (as LAPACK's trtri), so nearly all the work is two
/// triangular multiplies per level, themselves gemms on halves; `tmp` holds L21 L11^-1. Blocks of at most 128 are solved directly (forward substitution
/// leaves exact zeros above the diagonal).
template <class T>
void lower_inverse_rec(T* L, size_t n, size_t ld, std::vector<T>& tmp) {
  if (n <= 128) {
    ColMat<T> Xb = ColMat<T>::Identity(n, n);
    cmap(L, n, n, ld).template triangularView<Eigen::Lower>().solveInPlace(Xb);
    mmap(L, n, n, ld) = Xb;
    return;
  }
  size_t n1 = (n / 2 + 63) / 64 * 64;
  if (n1 >= n) n1 = n / 2;
  const size_t n2 = n - n1;
  lower_inverse_rec(L, n1, ld, tmp);                     // L11 <- L11^-1
  lower_inverse_rec(L + n1 * ld + n1, n2, ld, tmp);      // L22 <- L22^-1
  tmp.resize(std::max(tmp.size(), n2 * n1));
  trmm_right_lower(L + n1 * ld, ld, n2, L, ld, n1, tmp.data(), n1);                 // tmp = L21 L11^-1
  trmm_left_lower(T(-1), L + n1 * ld + n1, ld, n2, tmp.data(), n1, n1, L + n1 * ld, ld);  // L21 <- -L22^-1 tmp
}

template <class T>
void lower_inverse_inplace(std::vector<T>& L, size_t n) {
  std::vector<T> tmp;
  if (n > 0) lower_inverse_rec(L.data(), n, n, tmp);
}

/// The checks every SPD routine starts with.
template <class T>
void spd_check(const char* fn, const T* a, size_t rows, size_t cols, double damping) {
  check_square(fn, rows, cols);
  check_damping(fn, damping);
  check_finite(fn, a, rows, cols, "a");
  check_symmetric(fn, a, rows);
}

/// B = op(A), M x N with M >= N: the tall orientation of A (op = transpose when A is wide).
template <class T>
struct TallOp {
  const T* a;
  size_t m, n;
  bool tr;
  SgemmFn f;
  size_t M() const { return tr ? n : m; }
  size_t N() const { return tr ? m : n; }
  /// Y (M x c) = B X (X is N x c).
  void mul(const T* X, size_t ldx, size_t c, T* Y, size_t ldy) const {
    if (!tr) gemm<T>(f, Trans::No, Trans::No, m, c, n, T(1), a, n, X, ldx, T(0), Y, ldy);
    else gemm<T>(f, Trans::Yes, Trans::No, n, c, m, T(1), a, n, X, ldx, T(0), Y, ldy);
  }
  /// Y (N x c) = B^T X (X is M x c).
  void mul_t(const T* X, size_t ldx, size_t c, T* Y, size_t ldy) const {
    if (!tr) gemm<T>(f, Trans::Yes, Trans::No, n, c, m, T(1), a, n, X, ldx, T(0), Y, ldy);
    else gemm<T>(f, Trans::No, Trans::No, m, c, n, T(1), a, n, X, ldx, T(0), Y, ldy);
  }
};

}  // namespace

template <class T>
void fill_normal(uint64_t seed, T* out, size_t count) {
  Rng rng(seed);
  if (count < 16384) {
    for (size_t i = 0; i < count; ++i) out[i] = static_cast<T>(rng.next_normal());
    return;
  }
  // The stream is sequential; the transcendental part of Rng::next_normal is not. Draw the words in
  // order, then transform them in parallel with exactly next_f64's and next_normal's arithmetic.
  std::vector<uint32_t> w(4 * count);
  for (auto& v : w) v = rng.next_u32();
  const long long cnt = static_cast<long long>(count);
#pragma omp parallel for schedule(static)
  for (long long i = 0; i < cnt; ++i) {
    const uint32_t* q = w.data() + 4 * i;
    const double u1 = (static_cast<double>(q[0] >> 5) * 67108864.0 + static_cast<double>(q[1] >> 6)) *
                      (1.0 / 9007199254740992.0);
    const double u2 = (static_cast<double>(q[2] >> 5) * 67108864.0 + static_cast<double>(q[3] >> 6)) *
                      (1.0 / 9007199254740992.0);
    out[i] = static_cast<T>(std::sqrt(-2.0 * std::log(1.0 - u1)) * std::cos(6.283185307179586 * u2));
  }
}

// ---- SVD ------------------------------------------------------------------------------------------

template <class T>
Svd<T> svd(const T* a, size_t m, size_t n, bool full) {
  check_finite("svd", a, m, n, "a");
  const size_t r = std::min(m, n);
  Svd<T> out;
  out.m = m;
  out.n = n;
  out.ku = full ? m : r;
  out.kv = full ? n : r;
  if (r == 0) {
    out.u.assign(m * out.ku, T(0));
    out.vt.assign(out.kv * n, T(0));
    for (size_t i = 0; i < out.ku && full; ++i) out.u[i * out.ku + i] = 1;
    for (size_t i = 0; i < out.kv && full; ++i) out.vt[i * n + i] = 1;
    return out;
  }
  ColMat<T> A = to_col(a, m, n);
  Eigen::BDCSVD<ColMat<T>> sv(A, full ? (Eigen::ComputeFullU | Eigen::ComputeFullV)
                                      : (Eigen::ComputeThinU | Eigen::ComputeThinV));
  require(sv.info() == Eigen::Success, ErrorCode::Native, "svd: BDCSVD did not converge");
  out.u = to_vec<T>(sv.matrixU());
  out.s = to_vec<T>(sv.singularValues());
  out.vt = to_vec<T>(sv.matrixV().transpose());
  return out;
}

template <class T>
Svd<T> truncated_svd(const T* a, size_t m, size_t n, size_t k, const TruncatedSvdOptions& opt, TruncatedSvdInfo* info) {
  const char* fn = "truncatedSvd";
  check_k(fn, m, n, k);
  require(std::isfinite(opt.tol) && opt.tol >= 0 && opt.tol < 1, ErrorCode::Range,
          std::string(fn) + ": tol must be in [0, 1) (0 = default), got " + num(opt.tol));
  check_finite(fn, a, m, n, "a");
  const double tol = opt.tol > 0 ? opt.tol : (std::is_same_v<T, float> ? 1e-5 : 1e-11);
  const size_t max_iter = opt.max_iter > 0 ? opt.max_iter : 300;
  TruncatedSvdInfo inf;
  const size_t r = std::min(m, n);
  // Block size b = k + p; a basis of `depth` blocks per restart.
  const size_t b = k + std::max<size_t>(8, (k + 3) / 4);
  if (4 * b > r) {
    // A Krylov space would be most of the space: the dense SVD is exact and no slower.
    Svd<T> out = truncate_svd(svd(a, m, n, false), k);
    inf.dense = inf.converged = true;
    if (info) *info = inf;
    return out;
  }
  // Krylov depth per restart: 4 blocks, up to 6 while the basis stays under ~160 vectors (deeper spaces
  // need fewer products on flat spectra; the Rayleigh-Ritz step costs O(max(m, n) * (depth * b)^2)).
  const size_t depth = std::min<size_t>(std::clamp<size_t>((160 + b - 1) / b, 4, 6), r / b);
  const size_t smax = depth * b;
  const TallOp<T> B{a, m, n, m < n, nullptr};
  const size_t M = B.M(), N = B.N();

  std::vector<T> W(N * smax), Z(M * smax), G(N * b), Yr(smax * b), Uritz(M * b), Vritz(N * b);
  std::vector<double> sigma(b);
  Rng rng(opt.seed);
  fill_gaussian(rng, W.data(), N, b, smax);
  orth_block<T>(nullptr, W.data(), smax, 0, N, b, rng);
  B.mul(W.data(), smax, b, Z.data(), smax);
  size_t s = b;
  bool have_next = false;  // G holds B^T U_ritz, the next Krylov block after a restart
  double best = std::numeric_limits<double>::infinity();
  size_t stalled = 0;
  for (size_t iter = 1;; ++iter) {
    while (s < smax) {
      if (have_next) {
        mmap(W.data() + s, N, b, smax) = cmap(G.data(), N, b, b);
        have_next = false;
      } else {
        B.mul_t(Z.data() + (s - b), smax, b, W.data() + s, smax);
      }
      orth_block<T>(nullptr, W.data(), smax, s, N, b, rng);
      B.mul(W.data() + s, smax, b, Z.data() + s, smax);
      s += b;
    }
    // Rayleigh-Ritz: Z = B W = Q R, R = Ur diag(sigma) Yr^T (SVD in double); Ritz pairs U = Q Ur, V = W Yr.
    ColMat<T> Zc = cmap(Z.data(), M, smax, smax);
    Eigen::HouseholderQR<Eigen::Ref<ColMat<T>>> qr(Zc);
    ColMat<double> R = qr.matrixQR().topRows(smax).template cast<double>().template triangularView<Eigen::Upper>();
    // One-sided Jacobi, not BDCSVD: on a cluster of equal singular values wider than the block, BDCSVD's
    // singular vectors of R lose orthogonality (A v = s u then fails at ~1e-10); Jacobi keeps them accurate
    // and costs O(smax^3) per restart, small next to the products with A.
    Eigen::JacobiSVD<ColMat<double>> sv(R, Eigen::ComputeFullU | Eigen::ComputeFullV);
    require(sv.info() == Eigen::Success, ErrorCode::Native, "truncatedSvd: SVD of the projection did not converge");
    for (size_t i = 0; i < b; ++i) sigma[i] = sv.singularValues()[static_cast<Eigen::Index>(i)];
    ColMat<T> Ub = ColMat<T>::Zero(M, b);
    Ub.topRows(smax) = sv.matrixU().leftCols(b).template cast<T>();
    Ub.applyOnTheLeft(qr.householderQ());
    mmap(Uritz.data(), M, b, b) = Ub;
    mmap(Yr.data(), smax, b, b) = sv.matrixV().leftCols(b).template cast<T>();
    gemm<T>(nullptr, Trans::No, Trans::No, N, b, smax, T(1), W.data(), smax, Yr.data(), b, T(0), Vritz.data(), b);
    // Residuals: B v_i = sigma_i u_i holds by construction; test B^T u_i - sigma_i v_i.
    B.mul_t(Uritz.data(), b, b, G.data(), b);
    double worst = 0;
    for (size_t j = 0; j < k; ++j) {
      double acc = 0;
      for (size_t i = 0; i < N; ++i) {
        const double d = static_cast<double>(G[i * b + j]) - sigma[j] * static_cast<double>(Vritz[i * b + j]);
        acc += d * d;
      }
      worst = std::max(worst, std::sqrt(acc));
    }
    inf.iterations = iter;
    inf.residual = sigma[0] > 0 ? worst / sigma[0] : 0.0;
    if (inf.residual <= tol) {
      inf.converged = true;
      break;
    }
    if (iter >= max_iter) break;
    // Stagnation (a tolerance below what the precision allows): stop after 10 restarts without a 10% gain.
    if (inf.residual < 0.9 * best) {
      best = inf.residual;
      stalled = 0;
    } else if (++stalled >= 10) {
      break;
    }
    // Thick restart: keep the b Ritz vectors (B W = U diag(sigma)), continue the Krylov space with G.
    mmap(W.data(), N, b, smax) = cmap(Vritz.data(), N, b, b);
    for (size_t i = 0; i < M; ++i)
      for (size_t j = 0; j < b; ++j) Z[i * smax + j] = static_cast<T>(Uritz[i * b + j] * sigma[j]);
    s = b;
    have_next = true;
  }
  if (info) *info = inf;

  // Leading k triplets of B, mapped back to A (B = A^T swaps the singular vectors).
  Svd<T> out;
  out.m = m;
  out.n = n;
  out.ku = out.kv = k;
  out.s.resize(k);
  for (size_t j = 0; j < k; ++j) out.s[j] = static_cast<T>(sigma[j]);
  const std::vector<T>& left = B.tr ? Vritz : Uritz;   // m x b
  const std::vector<T>& right = B.tr ? Uritz : Vritz;  // n x b
  out.u.resize(m * k);
  out.vt.resize(k * n);
  for (size_t i = 0; i < m; ++i)
    for (size_t j = 0; j < k; ++j) out.u[i * k + j] = left[i * b + j];
  for (size_t j = 0; j < k; ++j)
    for (size_t i = 0; i < n; ++i) out.vt[j * n + i] = right[i * b + j];
  return out;
}

template <class T>
Svd<T> randomized_svd(const T* a, size_t m, size_t n, size_t k, const RandomizedSvdOptions& opt) {
  const char* fn = "randomizedSvd";
  check_k(fn, m, n, k);
  require(opt.oversample <= (size_t{1} << 20) && opt.power_iters <= 1000, ErrorCode::Range,
          std::string(fn) + ": oversample must be <= 2^20 and powerIters <= 1000");
  check_finite(fn, a, m, n, "a");
  const size_t r = std::min(m, n);
  const size_t l = std::min(k + opt.oversample, r);
  const SgemmFn f = opt.sgemm;
  std::vector<T> omega(n * l), Y(m * l), Yt(n * l);
  fill_normal(opt.seed, omega.data(), n * l);
  // Y = A Omega; Q = qr(Y); then q times: Q~ = qr(A^T Q), Q = qr(A Q~).
  gemm<T>(f, Trans::No, Trans::No, m, l, n, T(1), a, n, omega.data(), l, T(0), Y.data(), l);
  orthonormalize(Y.data(), m, l, l);
  for (size_t it = 0; it < opt.power_iters; ++it) {
    gemm<T>(f, Trans::Yes, Trans::No, n, l, m, T(1), a, n, Y.data(), l, T(0), Yt.data(), l);
    orthonormalize(Yt.data(), n, l, l);
    gemm<T>(f, Trans::No, Trans::No, m, l, n, T(1), a, n, Yt.data(), l, T(0), Y.data(), l);
    orthonormalize(Y.data(), m, l, l);
  }
  // B = Q^T A (l x n), held as B^T = A^T Q = Qb Rb; B = Rb^T Qb^T and Rb^T = Us S Ws^T (double), so
  // B = Us S (Qb Ws)^T and A ~ (Q Us) S (Qb Ws)^T.
  gemm<T>(f, Trans::Yes, Trans::No, n, l, m, T(1), a, n, Y.data(), l, T(0), Yt.data(), l);
  ColMat<double> Rb;
  orthonormalize(Yt.data(), n, l, l, &Rb);  // Yt = Qb
  ColMat<double> Rt = Rb.transpose();
  Eigen::BDCSVD<ColMat<double>> sv(Rt, Eigen::ComputeFullU | Eigen::ComputeFullV);
  require(sv.info() == Eigen::Success, ErrorCode::Native, "randomizedSvd: BDCSVD of the sketch did not converge");
  Svd<T> out;
  out.m = m;
  out.n = n;
  out.ku = out.kv = k;
  out.s.resize(k);
  for (size_t j = 0; j < k; ++j) out.s[j] = static_cast<T>(sv.singularValues()[static_cast<Eigen::Index>(j)]);
  const std::vector<T> us = to_vec<T>(sv.matrixU().leftCols(k));  // l x k
  const std::vector<T> ws = to_vec<T>(sv.matrixV().leftCols(k));  // l x k
  out.u.resize(m * k);
  gemm<T>(f, Trans::No, Trans::No, m, k, l, T(1), Y.data(), l, us.data(), k, T(0), out.u.data(), k);
  std::vector<T> v(n * k);
  gemm<T>(f, Trans::No, Trans::No, n, k, l, T(1), Yt.data(), l, ws.data(), k, T(0), v.data(), k);
  out.vt = to_vec<T>(cmap(v.data(), n, k, k).transpose());
  return out;
}

// ---- symmetric and SPD ------------------------------------------------------------------------------

template <class T>
Eigh<T> eigh(const T* a, size_t rows, size_t cols) {
  const char* fn = "eigh";
  check_square(fn, rows, cols);
  check_finite(fn, a, rows, cols, "a");
  check_symmetric(fn, a, rows);
  Eigh<T> out;
  out.n = rows;
  if (rows == 0) return out;
  Eigen::SelfAdjointEigenSolver<ColMat<T>> es(to_col(a, rows, cols), Eigen::ComputeEigenvectors);
  require(es.info() == Eigen::Success, ErrorCode::Native, "eigh: the eigensolver did not converge");
  out.w = to_vec<T>(es.eigenvalues());
  out.v = to_vec<T>(es.eigenvectors());
  return out;
}

template <class T>
std::vector<T> cholesky(const T* a, size_t rows, size_t cols, double damping) {
  const char* fn = "cholesky";
  spd_check(fn, a, rows, cols, damping);
  return chol_rows(fn, std::vector<T>(a, a + rows * cols), rows, damping);
}

template <class T>
std::vector<T> cholesky_inverse(const T* a, size_t rows, size_t cols, double damping) {
  const char* fn = "choleskyInverse";
  spd_check(fn, a, rows, cols, damping);
  const size_t n = rows;
  // J A J = Lr Lr^T  =>  A = (J Lr J)(J Lr J)^T with J Lr J upper  =>  A^-1 = U^T U, U = J Lr^-1 J.
  // Row-major, J X J is the flat array reversed.
  std::vector<T> U;
  try {
    U = chol_rows(fn, std::vector<T>(std::reverse_iterator<const T*>(a + n * n), std::reverse_iterator<const T*>(a)), n,
                  damping);
  } catch (const Error&) {
    chol_rows(fn, std::vector<T>(a, a + n * n), n, damping);  // report the pivot in the natural order
    throw;
  }
  lower_inverse_inplace(U, n);
  std::reverse(U.begin(), U.end());
  return U;
}

template <class T>
std::vector<T> inverse_spd(const T* a, size_t rows, size_t cols, double damping) {
  const char* fn = "inverseSpd";
  spd_check(fn, a, rows, cols, damping);
  const size_t n = rows;
  std::vector<T> Linv = chol_rows(fn, std::vector<T>(a, a + n * n), n, damping);
  lower_inverse_inplace(Linv, n);
  // Lower triangle of Linv^T Linv in row panels [i0, i1): only rows k >= i0 of Linv contribute.
  std::vector<T> X(n * n);
  const size_t P = std::clamp<size_t>(n / 256, 1, 8);
  for (size_t p = 0; p < P; ++p) {
    const size_t i0 = n * p / P, i1 = n * (p + 1) / P;
    if (i0 < i1)
      gemm<T>(nullptr, Trans::Yes, Trans::No, i1 - i0, i1, n - i0, T(1), Linv.data() + i0 * n + i0, n,
              Linv.data() + i0 * n, n, T(0), X.data() + i0 * n, n);
  }
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < i; ++j) X[j * n + i] = X[i * n + j];
  return X;
}

template <class T>
Qr<T> qr(const T* a, size_t m, size_t n) {
  check_finite("qr", a, m, n, "a");
  Qr<T> out;
  out.m = m;
  out.n = n;
  out.k = std::min(m, n);
  if (out.k == 0) {
    out.q.assign(m * out.k, T(0));
    out.r.assign(out.k * n, T(0));
    return out;
  }
  ColMat<T> A = to_col(a, m, n);
  Eigen::HouseholderQR<Eigen::Ref<ColMat<T>>> h(A);
  ColMat<T> Q = ColMat<T>::Identity(m, out.k);
  Q.applyOnTheLeft(h.householderQ());
  ColMat<T> R = h.matrixQR().topRows(out.k).template triangularView<Eigen::Upper>();
  out.q = to_vec<T>(Q);
  out.r = to_vec<T>(R);
  return out;
}

template <class T>
std::vector<T> solve(const T* a, size_t a_rows, size_t a_cols, const T* b, size_t b_rows, size_t b_cols, Assume assume) {
  const char* fn = "solve";
  check_square(fn, a_rows, a_cols);
  require(b_rows == a_rows, ErrorCode::Shape,
          std::string(fn) + ": A is " + dims(a_rows, a_cols) + " but B is " + dims(b_rows, b_cols) +
              "; B must have " + std::to_string(a_rows) + " rows");
  check_finite(fn, a, a_rows, a_cols, "a");
  check_finite(fn, b, b_rows, b_cols, "b");
  if (a_rows == 0 || b_cols == 0) return std::vector<T>(b_rows * b_cols, T(0));
  ColMat<T> X = to_col(b, b_rows, b_cols);
  if (assume == Assume::Spd) {
    check_symmetric(fn, a, a_rows);
    const size_t n = a_rows;
    const std::vector<T> L = chol_rows(fn, std::vector<T>(a, a + n * n), n, 0);
    const auto Lm = cmap(L.data(), n, n, n);
    // Right-hand sides are independent: column slices in parallel.
    const int nt = static_cast<int>(std::max<size_t>(1, std::min<size_t>(static_cast<size_t>(num_threads()), b_cols / 16)));
#pragma omp parallel for num_threads(nt) schedule(static, 1)
    for (int t = 0; t < nt; ++t) {
      const Eigen::Index c0 = static_cast<Eigen::Index>(b_cols * static_cast<size_t>(t) / static_cast<size_t>(nt));
      const Eigen::Index c1 = static_cast<Eigen::Index>(b_cols * static_cast<size_t>(t + 1) / static_cast<size_t>(nt));
      auto Xs = X.middleCols(c0, c1 - c0);
      Lm.template triangularView<Eigen::Lower>().solveInPlace(Xs);
      Lm.transpose().template triangularView<Eigen::Upper>().solveInPlace(Xs);
    }
  } else {
    ColMat<T> A = to_col(a, a_rows, a_cols);
    Eigen::PartialPivLU<ColMat<T>> lu(A);
    const auto& d = lu.matrixLU().diagonal();
    for (Eigen::Index j = 0; j < d.size(); ++j)
      if (d[j] == T(0))
        fail(ErrorCode::Range, std::string(fn) + ": matrix is singular (LU pivot " + std::to_string(j) + " is zero)");
    X = lu.solve(X);
  }
  return to_vec<T>(X);
}

template <class T>
std::vector<T> pinv(const T* a, size_t m, size_t n, double rcond) {
  const char* fn = "pinv";
  require(!std::isnan(rcond), ErrorCode::Range, std::string(fn) + ": rcond must be a number");
  check_finite(fn, a, m, n, "a");
  if (m == 0 || n == 0) return std::vector<T>(n * m, T(0));
  const double rc = rcond < 0 ? static_cast<double>(std::max(m, n)) * eps_of<T>() : rcond;
  ColMat<T> A = to_col(a, m, n);
  Eigen::BDCSVD<ColMat<T>> sv(A, Eigen::ComputeThinU | Eigen::ComputeThinV);
  require(sv.info() == Eigen::Success, ErrorCode::Native, "pinv: BDCSVD did not converge");
  const auto& s = sv.singularValues();
  const double cutoff = rc * static_cast<double>(s.size() ? s[0] : T(0));
  Vec<T> sinv(s.size());
  for (Eigen::Index i = 0; i < s.size(); ++i)
    sinv[i] = (s[i] > 0 && static_cast<double>(s[i]) > cutoff) ? T(1) / s[i] : T(0);
  ColMat<T> P = sv.matrixV() * sinv.asDiagonal() * sv.matrixU().transpose();
  return to_vec<T>(P);
}

template <class T>
LogDet logdet(const T* a, size_t rows, size_t cols, Assume assume) {
  const char* fn = "logdet";
  check_square(fn, rows, cols);
  check_finite(fn, a, rows, cols, "a");
  LogDet out{1.0, 0.0};
  if (rows == 0) return out;
  if (assume == Assume::Spd) {
    check_symmetric(fn, a, rows);
    const size_t n = rows;
    const std::vector<T> L = chol_rows(fn, std::vector<T>(a, a + n * n), n, 0);
    double acc = 0;
    for (size_t i = 0; i < n; ++i) acc += std::log(static_cast<double>(L[i * n + i]));
    out.logabsdet = 2 * acc;
    return out;
  }
  ColMat<T> A = to_col(a, rows, cols);
  Eigen::PartialPivLU<ColMat<T>> lu(A);
  double sign = static_cast<double>(lu.permutationP().determinant());
  double acc = 0;
  for (Eigen::Index i = 0; i < lu.matrixLU().rows(); ++i) {
    const double d = static_cast<double>(lu.matrixLU()(i, i));
    if (d == 0) return LogDet{0.0, -std::numeric_limits<double>::infinity()};
    if (d < 0) sign = -sign;
    acc += std::log(std::abs(d));
  }
  out.sign = sign;
  out.logabsdet = acc;
  return out;
}

template <class T>
std::vector<T> sqrtm_spd(const T* a, size_t rows, size_t cols) {
  const char* fn = "sqrtmSpd";
  check_square(fn, rows, cols);
  check_finite(fn, a, rows, cols, "a");
  check_symmetric(fn, a, rows);
  if (rows == 0) return {};
  Eigen::SelfAdjointEigenSolver<ColMat<T>> es(to_col(a, rows, cols), Eigen::ComputeEigenvectors);
  require(es.info() == Eigen::Success, ErrorCode::Native, "sqrtmSpd: the eigensolver did not converge");
  Vec<T> w = es.eigenvalues();
  const double wmax = std::max(std::abs(static_cast<double>(w[0])), std::abs(static_cast<double>(w[w.size() - 1])));
  const double tol = static_cast<double>(rows) * eps_of<T>() * wmax;
  if (static_cast<double>(w[0]) < -tol)
    fail(ErrorCode::Range, std::string(fn) + ": matrix is not positive semi-definite (smallest eigenvalue " +
                               num(static_cast<double>(w[0])) + " is below -n * eps * max|eigenvalue| = " + num(-tol) +
                               ")");
  for (Eigen::Index i = 0; i < w.size(); ++i) w[i] = w[i] > 0 ? std::sqrt(w[i]) : T(0);
  const ColMat<T>& V = es.eigenvectors();
  ColMat<T> S = V * w.asDiagonal() * V.transpose();
  ColMat<T> Ssym = (S + S.transpose()) * T(0.5);
  return to_vec<T>(Ssym);
}

// ---- explicit instantiations ---------------------------------------------------------------------

#define TERSOR_LINALG_INSTANTIATE(T)                                                                         \
  template Svd<T> svd<T>(const T*, size_t, size_t, bool);                                                   \
  template Svd<T> truncated_svd<T>(const T*, size_t, size_t, size_t, const TruncatedSvdOptions&,            \
                                   TruncatedSvdInfo*);                                                      \
  template Svd<T> randomized_svd<T>(const T*, size_t, size_t, size_t, const RandomizedSvdOptions&);         \
  template Eigh<T> eigh<T>(const T*, size_t, size_t);                                                       \
  template std::vector<T> cholesky<T>(const T*, size_t, size_t, double);                                    \
  template std::vector<T> cholesky_inverse<T>(const T*, size_t, size_t, double);                            \
  template std::vector<T> inverse_spd<T>(const T*, size_t, size_t, double);                                 \
  template Qr<T> qr<T>(const T*, size_t, size_t);                                                           \
  template std::vector<T> solve<T>(const T*, size_t, size_t, const T*, size_t, size_t, Assume);             \
  template std::vector<T> pinv<T>(const T*, size_t, size_t, double);                                        \
  template LogDet logdet<T>(const T*, size_t, size_t, Assume);                                              \
  template std::vector<T> sqrtm_spd<T>(const T*, size_t, size_t);

TERSOR_LINALG_INSTANTIATE(float)
template void fill_normal<float>(uint64_t, float*, size_t);
template void fill_normal<double>(uint64_t, double*, size_t);
TERSOR_LINALG_INSTANTIATE(double)

}  // namespace tersor
