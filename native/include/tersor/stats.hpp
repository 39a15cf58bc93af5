// Information measures: exact k-nearest-neighbour search and the estimators built on it, kernel and
// matrix (spectral) estimators. Everything is double precision; results are in nats (natural log).
//
// Conventions:
//  * samples are row-major and contiguous: point i of an n x d sample is x[i * d .. i * d + d);
//  * paired samples (X, Y[, Z]) share the row count n and are passed as separate arrays;
//  * inputs are checked before any work: sizes (ErrorCode::Shape), NaN/Inf (ErrorCode::Range, naming
//    the operand, row and column), k, bandwidths and options (ErrorCode::Range), degenerate samples
//    that an estimator cannot handle (ErrorCode::Range, saying what to do instead);
//  * loops over query points run in parallel on tersor::num_threads() OpenMP threads; results do not
//    depend on the thread count.
// No N-API here: native/napi/stats.cpp binds these for JavaScript.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace tersor::stats {

// ---- k-nearest neighbours --------------------------------------------------------------------

/// Chebyshev: max_k |a_k - b_k| (the max-norm of KSG); Euclidean: sqrt(sum_k (a_k - b_k)^2).
enum class Metric : uint8_t { Chebyshev, Euclidean };

/// Search structure; Auto chooses by n and d (see auto_backend).
enum class KnnBackend : uint8_t { Auto, Sorted1D, KdTree, Brute };

/// Exact k-nearest-neighbour and fixed-radius counting queries over n points in d dimensions.
/// The index copies the points (the caller's array may go away). Neighbours of an indexed point
/// exclude the point itself by index (duplicates of it count, at distance 0). Distances are exact for
/// the metric: every backend computes max_k |a_k - b_k| (Chebyshev) or sum_k (a_k - b_k)^2 in the
/// order k = 0..d-1 (Euclidean, then sqrt), and bounding-box pruning never changes a comparison, so
/// all backends give the same counts and the same k-th distances (neighbour order among exact ties
/// may differ). n < 2^32, d >= 1.
class NeighborIndex {
 public:
  NeighborIndex(const double* x, size_t n, size_t d, Metric metric, KnnBackend backend = KnnBackend::Auto);
  ~NeighborIndex();
  NeighborIndex(NeighborIndex&&) noexcept;
  NeighborIndex& operator=(NeighborIndex&&) noexcept;

  size_t size() const;
  size_t dim() const;
  Metric metric() const;
  /// The backend in use (never Auto).
  KnnBackend backend() const;

  /// For each indexed point i, its k nearest other points: dist[i * k + m] ascending (true metric
  /// distances) and, when idx is non-null, their indices idx[i * k + m]. 1 <= k <= n - 1.
  void knn_self(size_t k, double* dist, uint32_t* idx) const;
  /// The same for nq external query points q (nq x d); nothing is excluded. 1 <= k <= n.
  void knn(const double* q, size_t nq, size_t k, double* dist, uint32_t* idx) const;
  /// counts[i] = #{ j != i : dist(x_i, x_j) < r[i] } (strict) or <= r[i] (not strict).
  void count_self(const double* r, bool strict, uint32_t* counts) const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

/// The backend Auto picks for n points in d dimensions: Sorted1D for d = 1; for k-NN a KD-tree up to
/// d = 8 (and up to 12 when n >= 16 * 2^d), brute force above; for an index used only for radius
/// counts (`counting`) a KD-tree up to d = 4, or up to 8 when n >= 32768, brute force otherwise.
KnnBackend auto_backend(size_t n, size_t d, bool counting = false);

// ---- k-NN estimators (entropy.cpp) -------------------------------------------------------------

/// The digamma function psi(x) = d/dx ln Gamma(x), x > 0 (recurrence up to 6, then the asymptotic
/// series; absolute error below 1e-13).
double digamma(double x);

/// Kozachenko-Leonenko differential entropy (Kozachenko & Leonenko 1987; Kraskov et al. 2004 eq. 20):
///   H = psi(n) - psi(k) + ln V_d + (d / n) sum_i ln r_i
/// r_i = distance from x_i to its k-th nearest neighbour, V_d = volume of the unit ball of the metric
/// (2^d for Chebyshev, pi^(d/2) / Gamma(d/2 + 1) for Euclidean). Nats. Needs n >= k + 1, no constant
/// column, and r_i > 0 (no point with k or more duplicates) — else Range.
double kl_entropy(const double* x, size_t n, size_t d, size_t k, Metric metric = Metric::Chebyshev);

/// KSG mutual information (Kraskov, Stoegbauer & Grassberger 2004), max-norm in every space:
///   algorithm 1: I = psi(k) + psi(n) - < psi(n_x + 1) + psi(n_y + 1) >,
///     eps_i = distance to the k-th neighbour in the joint space, n_x = #{j != i : |x_i - x_j| < eps_i}
///   algorithm 2: I = psi(k) - 1/k + psi(n) - < psi(n_x) + psi(n_y) >,
///     eps_x,i = max over the k joint neighbours of |x_i - x_j|, n_x = #{j != i : |x_i - x_j| <= eps_x,i}
/// Nats. n >= k + 1; constant columns (zero variance) and any eps_i = 0 (more than k coinciding
/// points: discrete data — use mixed_mi) are Range errors.
double ksg_mi(const double* x, size_t dx, const double* y, size_t dy, size_t n, size_t k, int algorithm = 1);

/// Conditional mutual information I(X;Y|Z) by the KSG-style estimator of Frenzel & Pompe 2007:
///   I = psi(k) - < psi(n_xz + 1) + psi(n_yz + 1) - psi(n_z + 1) >
/// eps_i = max-norm distance to the k-th neighbour in the joint (x, y, z) space; n_xz, n_yz, n_z
/// count j != i strictly within eps_i in those subspaces. Nats. Same input rules as ksg_mi.
double ksg_cmi(const double* x, size_t dx, const double* y, size_t dy, const double* z, size_t dz, size_t n,
               size_t k);

/// Mutual information of mixed discrete/continuous data (Gao, Kannan, Oh & Viswanath 2017, "Estimating
/// mutual information for discrete-continuous mixtures", Alg. 1), in the form of the authors' reference
/// implementation (github.com/wgao9/mixed_KSG: digamma of strict counts where the paper writes logs of
/// non-strict ones, which removes a small-k bias of the paper's form, e.g. -0.19 nats at k = 5 on the
/// paper's X ~ U{0..4}, Y | X ~ U[X, X + 2] example):
///   rho_i = max-norm distance to the k-th neighbour in the joint space;
///   rho_i > 0:  xi_i = psi(k) + ln n - psi(n_x,i + 1) - psi(n_y,i + 1),
///               n_x,i = #{j != i : |x_i - x_j| < rho_i} (n_y,i likewise);
///   rho_i = 0:  xi_i = psi(t_i + 1) + ln n - psi(m_x,i + 1) - psi(m_y,i + 1),
///               t_i = #{j != i : (x_j, y_j) = (x_i, y_i)}, m_x,i = #{j != i : x_j = x_i} (m_y,i likewise);
///   I = (1/n) sum_i xi_i.
/// On continuous data this is KSG algorithm 1 (with ln n for psi(n)); on discrete data it is the
/// plug-in estimate with digamma counts. Nats. n >= k + 1; ties and constant columns are allowed.
double mixed_mi(const double* x, size_t dx, const double* y, size_t dy, size_t n, size_t k);

/// k-NN estimate of the Kullback-Leibler divergence D(P || Q) from x ~ P (n x d) and y ~ Q (m x d)
/// (Wang, Kulkarni & Verdu 2009, eq. 5):
///   D = (d / n) sum_i ln(nu_k(i) / rho_k(i)) + ln(m / (n - 1))
/// rho_k(i) = distance from x_i to its k-th neighbour among the other x, nu_k(i) = to its k-th
/// neighbour among the y. Nats. n >= k + 1, m >= k; rho or nu = 0 (duplicates) is a Range error.
double knn_kl_divergence(const double* x, size_t n, const double* y, size_t m, size_t d, size_t k,
                         Metric metric = Metric::Euclidean);

// ---- kernel and matrix estimators (kernel.cpp) -------------------------------------------------

/// K_ij = exp(-|x_i - x_j|^2 / (2 sigma^2)), n x n row-major. sigma > 0.
std::vector<double> gaussian_gram(const double* x, size_t n, size_t d, double sigma);

/// Kernel-density entropy in the QUESTS form (Schwalbe-Koda et al. 2024):
///   H = -(1/n) sum_i ln( (1/n) sum_j exp(-|x_i - x_j|^2 / (2 h^2)) )
/// (unnormalised Gaussian kernel: 0 for n identical points, ln n for points far apart). Nats. h > 0.
double kde_entropy(const double* x, size_t n, size_t d, double h);

/// Matrix-based Renyi alpha-entropy (Sanchez Giraldo, Rao & Principe 2015):
///   S_alpha(A) = ln( sum_i lambda_i(A)^alpha ) / (1 - alpha),  A = K / tr K,
/// and the von Neumann limit -sum_i lambda_i ln lambda_i at alpha = 1. Nats (divide by ln 2 for the
/// paper's bits). K: n x n symmetric (to 1e-9 relative), positive trace, non-negative diagonal.
/// Eigenvalues by Eigen's SelfAdjointEigenSolver; negative round-off eigenvalues count as 0.
double matrix_renyi_entropy(const double* k, size_t n, double alpha);
/// The joint entropy S_alpha(A, B) = S_alpha( (A o B) / tr(A o B) ) (Hadamard product of the Grams).
double matrix_renyi_joint_entropy(const double* ka, const double* kb, size_t n, double alpha);

/// The eigenvalues of C = (1/n) Z^T Z (Z centred first when `center`), descending, min(n, d) of them
/// (computed from the smaller of Z^T Z and Z Z^T); eigenvalues within min(n, d) * eps * max|lambda| of
/// zero are round-off and set to 0.
std::vector<double> covariance_spectrum(const double* z, size_t n, size_t d, bool center);

/// Shannon entropy -sum p_i ln p_i of p = lambda / sum(lambda) (von Neumann entropy of a spectrum).
/// lambda >= 0 with a positive sum.
double spectrum_entropy(const std::vector<double>& lambda);

/// Coding rate (Ma, Derksen, Hong & Wright 2007; Yu et al. 2020 "MCR^2"), samples as rows of Z:
///   R(Z) = 1/2 ln det(I + d / (n eps2) Z^T Z)      (nats; eps2 = epsilon^2 > 0)
double coding_rate(const double* z, size_t n, size_t d, double eps2);

struct RateReduction {
  double rate = 0;          // R(Z)
  double class_rate = 0;    // Rc(Z | Pi) = sum_j n_j / (2n) ln det(I + d / (n_j eps2) Z_j^T Z_j)
  double reduction = 0;     // Delta R = R - Rc
  std::vector<uint32_t> class_sizes;
};
/// Rate reduction over the classes given by labels[i] in [0, classes). Empty classes are skipped.
RateReduction rate_reduction(const double* z, size_t n, size_t d, const uint32_t* labels, size_t classes,
                             double eps2);

/// Diffusion spectral entropy (Liao et al. 2023): K_ij = exp(-|z_i - z_j|^2 / (2 sigma^2)), the
/// diffusion operator P = D^-1 K (D = diag of row sums), whose eigenvalues are those of the
/// symmetric D^-1/2 K D^-1/2; with p_i = |lambda_i|^t / sum_j |lambda_j|^t,
///   DSE = -sum_i p_i ln p_i   (nats). sigma > 0, t >= 1 (integer or not).
double diffusion_spectral_entropy(const double* z, size_t n, size_t d, double sigma, double t);

struct DiffusionSpectralMi {
  double entropy = 0;              // DSE(Z)
  double conditional_entropy = 0;  // sum_c (n_c / n) DSE(Z_c)
  double mi = 0;                   // DSMI = DSE(Z) - sum_c (n_c / n) DSE(Z_c)
};
/// Diffusion spectral mutual information between Z and class labels in [0, classes).
DiffusionSpectralMi diffusion_spectral_mi(const double* z, size_t n, size_t d, const uint32_t* labels,
                                          size_t classes, double sigma, double t);

/// Cauchy-Schwarz divergence between the Parzen densities of x (n x d) and y (m x d) (Principe 2010,
/// "Information Theoretic Learning", ch. 2), with the Gram kernel kappa = exp(-|a - b|^2 / (2 sigma^2)):
///   D_CS = ln V_xx + ln V_yy - 2 ln V_xy,  V_ab = mean over all pairs (i, j) of kappa(a_i, b_j).
/// Nats, >= 0, and 0 when x and y are the same sample. Streams, O((n + m)^2 d) time, O(n + m) memory.
double cs_divergence(const double* x, size_t n, const double* y, size_t m, size_t d, double sigma);

/// Cauchy-Schwarz quadratic mutual information (Principe 2010) from Gaussian Grams Kx (sigma_x), Ky:
///   V_J = (1/n^2) sum_ij Kx_ij Ky_ij,  V_M = (1/n^2 sum_ij Kx_ij)(1/n^2 sum_ij Ky_ij),
///   V_C = (1/n) sum_i (1/n sum_j Kx_ij)(1/n sum_j Ky_ij),   I_CS = ln V_J + ln V_M - 2 ln V_C.
/// Nats, >= 0. Streams (no n x n matrix).
double cs_qmi(const double* x, size_t dx, const double* y, size_t dy, size_t n, double sigma_x, double sigma_y);

// ---- input checks shared with the bindings -----------------------------------------------------

/// Range error naming `what`, row and column at the first NaN/Inf.
void check_finite(const double* x, size_t n, size_t d, const char* what);
/// Range error naming the first column of `what` with zero variance (all values equal).
void check_no_constant_column(const double* x, size_t n, size_t d, const char* what, const char* advice);

}  // namespace tersor::stats
