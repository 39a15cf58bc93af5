// Dense linear algebra: the decompositions every later module builds on (GPTQ, EoRA, low-rank
// factorisations, KV-cache compression, information measures), and the fast Walsh-Hadamard transform.
//
// Conventions:
//  * every matrix is row-major and contiguous: element (i, j) of an r x c matrix is at [i * c + j];
//  * every routine exists for float and double (explicit instantiations in native/linalg/); results
//    are in the precision of the input, and the O(n^3) dense work runs in that precision (Eigen 3.4,
//    plus tersor::sgemm for the large products in float);
//  * inputs are checked before any work: shapes (ErrorCode::Shape, with the numbers), NaN/Inf anywhere
//    (ErrorCode::Range, naming the operand, row and column), ranks/options out of range
//    (ErrorCode::Range), matrices that must be symmetric positive definite but are not (ErrorCode::Range,
//    "matrix is not positive definite (pivot j = ...)");
//  * routines that need a symmetric matrix read its lower triangle, after checking that A and A^T agree
//    to sqrt(machine epsilon) * max|A| (else ErrorCode::Range).
// No N-API here: native/napi/linalg.cpp binds these for JavaScript.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "tersor/gemm.hpp"

namespace tersor {

/// A = U diag(s) V^T. `u` is m x ku, `s` has min(ku, kv) entries sorted descending and non-negative,
/// `vt` is kv x n. Thin: ku = kv = min(m, n). Full: ku = m, kv = n. Truncated/randomized: ku = kv = k.
template <class T>
struct Svd {
  std::vector<T> u, s, vt;
  size_t m = 0, n = 0, ku = 0, kv = 0;
};

/// Singular value decomposition by Eigen's divide-and-conquer BDCSVD, thin (default) or full.
template <class T>
Svd<T> svd(const T* a, size_t m, size_t n, bool full = false);

struct TruncatedSvdOptions {
  /// Convergence: every one of the k residuals ||A^T u_i - s_i v_i|| (A v_i = s_i u_i holds by
  /// construction) is at most tol * s_1. 0 = default: 1e-5 for float, 1e-11 for double (about the
  /// floor a cluster of equal singular values wider than the block reaches).
  double tol = 0;
  /// Maximum number of restarts (each costs about 2 * depth products with A). 0 = default: 300.
  size_t max_iter = 0;
  /// Seed of the Gaussian start block (tersor::Rng).
  uint64_t seed = 0;
};

struct TruncatedSvdInfo {
  size_t iterations = 0;   // restarts performed (0 when the dense path was taken)
  double residual = 0;     // max_i<k ||A^T u_i - s_i v_i|| / s_1 at exit
  bool converged = false;  // residual <= tol
  bool dense = false;      // k was too large a fraction of min(m, n): full BDCSVD, truncated
};

/// The top-k singular triplets to a tolerance: a thick-restart block Lanczos (block Krylov) method
/// with full re-orthogonalisation and Rayleigh-Ritz extraction (Golub & Kahan 1965; Baglama &
/// Reichel 2005 "Augmented implicitly restarted Lanczos bidiagonalization methods"; Musco & Musco 2015
/// "Randomized block Krylov methods for stronger and faster approximate SVD"). Runs until the residual
/// test above passes, max_iter restarts, or 10 restarts in a row without a 10% gain in the residual (a
/// tolerance below what the precision allows); `info` reports which. Falls back to dense BDCSVD when k is
/// too large a fraction of min(m, n) for a Krylov method to pay. 1 <= k <= min(m, n) (else Range).
template <class T>
Svd<T> truncated_svd(const T* a, size_t m, size_t n, size_t k, const TruncatedSvdOptions& opt = {},
                     TruncatedSvdInfo* info = nullptr);

/// A GEMM with tersor::sgemm's signature, so that benchmarks can swap the product kernel.
using SgemmFn = void (*)(Trans, Trans, size_t, size_t, size_t, float, const float*, size_t, const float*, size_t,
                         float, float*, size_t);

struct RandomizedSvdOptions {
  size_t oversample = 10;   // p: the sketch has l = min(k + p, min(m, n)) columns
  size_t power_iters = 2;   // q: subspace iterations, QR re-orthonormalisation after every product
  uint64_t seed = 0;        // Gaussian test matrix: Rng(seed).next_normal(), n x l filled row by row
  SgemmFn sgemm = nullptr;  // float products; nullptr = tersor::sgemm (double uses Eigen, OpenMP rows)
};

/// Randomized SVD (Halko, Martinsson & Tropp 2011, "Finding structure with randomness", Alg. 4.4
/// randomized subspace iteration + Alg. 5.1 direct SVD): Y = A Omega, then q times
/// Q = qr(Y), Y~ = A^T Q, Q~ = qr(Y~), Y = A Q~; Q = qr(Y); B = Q^T A; B = U~ S V^T; U = Q U~.
/// Returns the leading k triplets. 1 <= k <= min(m, n) (else Range).
template <class T>
Svd<T> randomized_svd(const T* a, size_t m, size_t n, size_t k, const RandomizedSvdOptions& opt = {});

/// Symmetric eigendecomposition A = V diag(w) V^T (Eigen SelfAdjointEigenSolver): `w` ascending,
/// `v` n x n with eigenvector j in column j.
template <class T>
struct Eigh {
  std::vector<T> w, v;
  size_t n = 0;
};
template <class T>
Eigh<T> eigh(const T* a, size_t rows, size_t cols);

/// Lower Cholesky factor L (zeros above the diagonal) of A + damping * mean(diag(A)) * I, the damping
/// GPTQ applies to its Hessian (Frantar et al. 2023, "GPTQ", Sec. 4). damping >= 0. Blocked
/// right-looking (128-wide panels): Eigen's unblocked LLT on diagonal blocks, panel solves in parallel,
/// trailing updates through tersor::sgemm (float) or the OpenMP-split Eigen product (double).
template <class T>
std::vector<T> cholesky(const T* a, size_t rows, size_t cols, double damping = 0);

/// Upper Cholesky factor U of (A + damping * mean(diag(A)) * I)^-1, i.e. A^-1 = U^T U with U upper
/// triangular, positive diagonal: what GPTQ computes as cholesky(cholesky_inverse(cholesky(H)),
/// upper=True). Computed as J inv(chol(J A J)) J (J = the exchange matrix): one factorisation and one
/// triangular inverse (recursive halving, two gemms per level), no explicit A^-1.
template <class T>
std::vector<T> cholesky_inverse(const T* a, size_t rows, size_t cols, double damping = 0);

/// (A + damping * mean(diag(A)) * I)^-1 for SPD A, through its Cholesky factor; exactly symmetric.
template <class T>
std::vector<T> inverse_spd(const T* a, size_t rows, size_t cols, double damping = 0);

/// Householder QR, thin: A (m x n) = Q R with Q m x r orthonormal columns, R r x n upper
/// triangular (trapezoidal when m < n), r = min(m, n).
template <class T>
struct Qr {
  std::vector<T> q, r;
  size_t m = 0, n = 0, k = 0;
};
template <class T>
Qr<T> qr(const T* a, size_t m, size_t n);

enum class Assume : uint8_t { General, Spd };

/// Solves A X = B. A is n x n; B is n x nrhs. General: LU with partial pivoting (Range when a pivot is
/// exactly zero, i.e. A is singular); Spd: Cholesky (Range when not positive definite).
template <class T>
std::vector<T> solve(const T* a, size_t a_rows, size_t a_cols, const T* b, size_t b_rows, size_t b_cols,
                     Assume assume = Assume::General);

/// Moore-Penrose pseudo-inverse (n x m) via the SVD: singular values <= rcond * s_1 count as zero.
/// rcond < 0 = default max(m, n) * machine epsilon.
template <class T>
std::vector<T> pinv(const T* a, size_t m, size_t n, double rcond = -1);

/// log|det A| and the sign of det A (sign 0 and logabsdet -inf for singular A). General: LU with partial
/// pivoting; Spd: Cholesky, sign +1 (Range when A is not positive definite).
struct LogDet {
  double sign = 0;
  double logabsdet = 0;
};
template <class T>
LogDet logdet(const T* a, size_t rows, size_t cols, Assume assume = Assume::General);

/// The symmetric positive semi-definite square root S (S S = A) via eigh: S = V diag(sqrt(w)) V^T.
/// Eigenvalues in [-n * eps * max|w|, 0) are round-off and clamped to 0; a more negative one is Range.
template <class T>
std::vector<T> sqrtm_spd(const T* a, size_t rows, size_t cols);

/// The first `count` draws of Rng(seed).next_normal(), bit for bit, with the Box-Muller transforms run in
/// parallel (the Gaussian test matrices here; random test data elsewhere).
template <class T>
void fill_normal(uint64_t seed, T* out, size_t count);

// ---- Walsh-Hadamard ----------------------------------------------------------------------------

struct HadamardOptions {
  /// Multiply by 1/sqrt(n), making the transform orthogonal (and its own inverse).
  bool normalize = false;
  /// Randomised Hadamard transform (QuaRot, Ashkboos et al. 2024; QuIP#, Tseng et al. 2024): before the
  /// transform, x_j *= sign_j with sign_j = (rng.next_u32() & 1) ? -1 : +1 for j = 0..n-1, drawn in
  /// order from one tersor::Rng(seed); the same signs for every row. Row x becomes x diag(sign) H.
  bool random_signs = false;
  uint64_t seed = 0;
};

/// The sign vector of the randomised transform (see HadamardOptions::random_signs).
std::vector<int8_t> hadamard_signs(size_t n, uint64_t seed);

/// In-place fast Walsh-Hadamard transform of each row of a row-major rows x n matrix, n a power of two
/// (any, including 1; else Shape). Sylvester ordering: H_1 = [1], H_2n = [[H_n, H_n], [H_n, -H_n]];
/// row x becomes x H_n (H_n symmetric, H_n H_n = n I). AVX2 butterflies; bit-identical to the scalar
/// reference below (the same additions in the same order). Rows run in parallel.
template <class T>
void fwht_rows(T* x, size_t rows, size_t n, const HadamardOptions& opt = {});

/// Scalar reference of fwht_rows (radix-2, stage h = 1, 2, 4, ...), for tests.
template <class T>
void fwht_rows_reference(T* x, size_t rows, size_t n, const HadamardOptions& opt = {});

}  // namespace tersor
