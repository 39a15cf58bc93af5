// Kernel and matrix (spectral) information measures (formulas in tersor/stats.hpp): KDE entropy,
// Gaussian Gram matrices, matrix-based Renyi entropy, covariance spectra, coding rate and rate
// reduction, diffusion spectral entropy / MI, Cauchy-Schwarz divergence and quadratic MI.
// Pairwise squared distances are computed directly (sum_k (a_k - b_k)^2, never |a|^2 + |b|^2 - 2ab,
// so identical points are exactly at distance 0), one query row at a time against the points stored
// column by column; rows run in parallel and per-row results are reduced in row order, so results do
// not depend on the thread count. Eigenvalues: Eigen's SelfAdjointEigenSolver.
#include <omp.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "tersor/error.hpp"
#include "tersor/parallel.hpp"
#include "tersor/stats.hpp"

namespace tersor::stats {
namespace {

using MatrixRM = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// The points of an n x d sample stored column by column (d x n), for row-of-distances loops.
struct Columns {
  std::vector<double> t;
  size_t n = 0, d = 0;
  Columns(const double* x, size_t n_, size_t d_) : t(n_ * d_), n(n_), d(d_) {
    for (size_t i = 0; i < n; ++i)
      for (size_t k = 0; k < d; ++k) t[k * n + i] = x[i * d + k];
  }
  /// out[j] = |q - x_j|^2, j < n.
  void sqdist(const double* q, double* out) const {
    {
      const double v = q[0];
      const double* row = t.data();
      for (size_t j = 0; j < n; ++j) {
        const double u = row[j] - v;
        out[j] = u * u;
      }
    }
    for (size_t k = 1; k < d; ++k) {
      const double v = q[k];
      const double* row = t.data() + k * n;
      for (size_t j = 0; j < n; ++j) {
        const double u = row[j] - v;
        out[j] += u * u;
      }
    }
  }
};

void check_points(const double* x, size_t n, size_t d, const char* what, size_t min_n = 1) {
  require(d >= 1, ErrorCode::Shape, std::string(what) + " needs at least one column");
  require(n >= min_n, ErrorCode::Range,
          std::string(what) + " needs at least " + std::to_string(min_n) + " samples, got " + std::to_string(n));
  check_finite(x, n, d, what);
}

void check_bandwidth(double h, const char* what) {
  require(std::isfinite(h) && h > 0, ErrorCode::Range,
          std::string(what) + " must be a positive finite number, got " + std::to_string(h));
}

/// For each row i of x, f(i, sqdist row to every point of `cols`). Parallel over rows.
template <class F>
void for_each_row(const double* x, size_t n, size_t d, const Columns& cols, F&& f) {
  const int nt = num_threads();
#pragma omp parallel num_threads(nt)
  {
    std::vector<double> row(cols.n);
#pragma omp for schedule(dynamic, 16)
    for (ptrdiff_t ii = 0; ii < static_cast<ptrdiff_t>(n); ++ii) {
      const size_t i = static_cast<size_t>(ii);
      cols.sqdist(x + i * d, row.data());
      f(i, static_cast<const double*>(row.data()));
    }
  }
}

/// Sum over j of exp(-scale * sqdist(x_i, y_j)) for every row i of x; ordered sum.
std::vector<double> kernel_row_sums(const double* x, size_t n, const double* y, size_t m, size_t d, double sigma) {
  const Columns cols(y, m, d);
  const double scale = 1 / (2 * sigma * sigma);
  std::vector<double> sums(n);
  for_each_row(x, n, d, cols, [&](size_t i, const double* r) {
    double s = 0;
    for (size_t j = 0; j < m; ++j) s += std::exp(-scale * r[j]);
    sums[i] = s;
  });
  return sums;
}

double ordered_sum(const std::vector<double>& v) {
  double s = 0;
  for (double a : v) s += a;
  return s;
}

/// Eigenvalues of a symmetric matrix (lower triangle read).
Eigen::VectorXd sym_eigenvalues(const MatrixRM& a) {
  Eigen::SelfAdjointEigenSolver<MatrixRM> es(a, Eigen::EigenvaluesOnly);
  require(es.info() == Eigen::Success, ErrorCode::Native, "eigenvalue iteration did not converge");
  return es.eigenvalues();
}

/// S_alpha of the unit-trace spectrum of A = K / tr K (negatives clamped, renormalised).
double renyi_of_unit_trace(const MatrixRM& a, double alpha) {
  const Eigen::VectorXd w = sym_eigenvalues(a);
  // Eigenvalues within n * eps * max|lambda| of zero are round-off: counted as 0 (for alpha < 1 the
  // powers lambda^alpha would otherwise magnify them).
  const double cut = static_cast<double>(w.size()) * std::numeric_limits<double>::epsilon() * w.cwiseAbs().maxCoeff();
  std::vector<double> p(static_cast<size_t>(w.size()));
  double total = 0;
  for (Eigen::Index i = 0; i < w.size(); ++i) total += p[static_cast<size_t>(i)] = w[i] > cut ? w[i] : 0.0;
  require(total > 0, ErrorCode::Range, "the normalised Gram matrix has no positive eigenvalue");
  if (alpha == 1) {
    double h = 0;
    for (double v : p)
      if (v > 0) h -= (v / total) * std::log(v / total);
    return h;
  }
  double s = 0;
  for (double v : p)
    if (v > 0) s += std::pow(v / total, alpha);
  return std::log(s) / (1 - alpha);
}

void check_alpha(double alpha) {
  require(std::isfinite(alpha) && alpha > 0, ErrorCode::Range,
          "the Renyi order alpha must be a positive finite number, got " + std::to_string(alpha));
}

/// K / tr K after checking K is a usable Gram matrix.
MatrixRM unit_trace(const double* k, size_t n, const char* what) {
  require(n >= 1, ErrorCode::Shape, std::string(what) + " is empty");
  check_finite(k, n, n, what);
  double maxabs = 0, trace = 0;
  for (size_t i = 0; i < n * n; ++i) maxabs = std::max(maxabs, std::fabs(k[i]));
  for (size_t i = 0; i < n; ++i) {
    require(k[i * n + i] >= 0, ErrorCode::Range,
            std::string(what) + " has a negative diagonal entry at " + std::to_string(i) + ": not a Gram matrix");
    trace += k[i * n + i];
  }
  require(trace > 0, ErrorCode::Range, std::string(what) + " has zero trace (a zero-variance kernel): nothing to normalise");
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < i; ++j)
      require(std::fabs(k[i * n + j] - k[j * n + i]) <= 1e-9 * maxabs, ErrorCode::Range,
              std::string(what) + " is not symmetric at (" + std::to_string(i) + ", " + std::to_string(j) + ")");
  MatrixRM a = Eigen::Map<const MatrixRM>(k, static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(n));
  a /= trace;
  return a;
}

double spd_logdet(const MatrixRM& m) {
  Eigen::LLT<MatrixRM> llt(m);
  require(llt.info() == Eigen::Success, ErrorCode::Range, "coding rate: I + c Z^T Z is not positive definite (round-off)");
  double s = 0;
  const auto& l = llt.matrixLLT();
  for (Eigen::Index i = 0; i < l.rows(); ++i) s += std::log(l(i, i));
  return 2 * s;
}

/// ln det(I + c Z^T Z) through the smaller Gram (Sylvester's determinant identity).
double logdet_identity_plus(const double* z, size_t n, size_t d, double c) {
  Eigen::Map<const MatrixRM> zm(z, static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(d));
  MatrixRM g;
  if (d <= n) {
    g = MatrixRM::Zero(static_cast<Eigen::Index>(d), static_cast<Eigen::Index>(d));
    g.selfadjointView<Eigen::Lower>().rankUpdate(zm.transpose(), c);
  } else {
    g = MatrixRM::Zero(static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(n));
    g.selfadjointView<Eigen::Lower>().rankUpdate(zm, c);
  }
  g.diagonal().array() += 1.0;
  return spd_logdet(g);
}

std::vector<double> gather_rows(const double* z, size_t d, const std::vector<size_t>& rows) {
  std::vector<double> out(rows.size() * d);
  for (size_t r = 0; r < rows.size(); ++r) std::copy(z + rows[r] * d, z + rows[r] * d + d, &out[r * d]);
  return out;
}

std::vector<std::vector<size_t>> class_rows(const uint32_t* labels, size_t n, size_t classes) {
  require(classes >= 1, ErrorCode::Range, "at least one class is needed");
  std::vector<std::vector<size_t>> rows(classes);
  for (size_t i = 0; i < n; ++i) {
    require(labels[i] < classes, ErrorCode::Range,
            "label " + std::to_string(labels[i]) + " at row " + std::to_string(i) + " is not below the class count " +
                std::to_string(classes));
    rows[labels[i]].push_back(i);
  }
  return rows;
}

double dse_unchecked(const double* z, size_t n, size_t d, double sigma, double t) {
  if (n == 1) return 0;
  std::vector<double> k = gaussian_gram(z, n, d, sigma);
  std::vector<double> dinv(n);
  for (size_t i = 0; i < n; ++i) {
    double s = 0;
    for (size_t j = 0; j < n; ++j) s += k[i * n + j];
    dinv[i] = 1 / std::sqrt(s);  // s >= 1 (the diagonal)
  }
  MatrixRM a(static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(n));
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < n; ++j) a(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j)) = dinv[i] * k[i * n + j] * dinv[j];
  k.clear();
  k.shrink_to_fit();
  const Eigen::VectorXd w = sym_eigenvalues(a);
  std::vector<double> p(static_cast<size_t>(w.size()));
  double total = 0;
  for (Eigen::Index i = 0; i < w.size(); ++i) total += p[static_cast<size_t>(i)] = std::pow(std::fabs(w[i]), t);
  double h = 0;
  for (double v : p)
    if (v > 0) h -= (v / total) * std::log(v / total);
  return h;
}

}  // namespace

std::vector<double> gaussian_gram(const double* x, size_t n, size_t d, double sigma) {
  check_points(x, n, d, "x");
  check_bandwidth(sigma, "the kernel bandwidth sigma");
  const Columns cols(x, n, d);
  const double scale = 1 / (2 * sigma * sigma);
  std::vector<double> k(n * n);
  for_each_row(x, n, d, cols, [&](size_t i, const double* r) {
    double* out = &k[i * n];
    for (size_t j = 0; j < n; ++j) out[j] = std::exp(-scale * r[j]);
  });
  return k;
}

double kde_entropy(const double* x, size_t n, size_t d, double h) {
  check_points(x, n, d, "x");
  check_bandwidth(h, "the KDE bandwidth h");
  const std::vector<double> sums = kernel_row_sums(x, n, x, n, d, h);
  const double nd = static_cast<double>(n);
  double s = 0;
  for (double v : sums) s += std::log(v / nd);
  return -s / nd + 0.0;  // + 0.0: n identical points give +0, not -0
}

double matrix_renyi_entropy(const double* k, size_t n, double alpha) {
  check_alpha(alpha);
  return renyi_of_unit_trace(unit_trace(k, n, "the Gram matrix"), alpha);
}

double matrix_renyi_joint_entropy(const double* ka, const double* kb, size_t n, double alpha) {
  check_alpha(alpha);
  const MatrixRM a = unit_trace(ka, n, "the first Gram matrix");
  const MatrixRM b = unit_trace(kb, n, "the second Gram matrix");
  MatrixRM h = a.cwiseProduct(b);
  const double tr = h.trace();
  require(tr > 0, ErrorCode::Range, "the Hadamard product of the Gram matrices has zero trace");
  h /= tr;
  return renyi_of_unit_trace(h, alpha);
}

std::vector<double> covariance_spectrum(const double* z, size_t n, size_t d, bool center) {
  check_points(z, n, d, "z");
  MatrixRM zm = Eigen::Map<const MatrixRM>(z, static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(d));
  if (center) zm.rowwise() -= zm.colwise().mean();
  const double c = 1 / static_cast<double>(n);
  MatrixRM g;
  if (d <= n) {
    g = MatrixRM::Zero(static_cast<Eigen::Index>(d), static_cast<Eigen::Index>(d));
    g.selfadjointView<Eigen::Lower>().rankUpdate(zm.transpose(), c);
  } else {
    g = MatrixRM::Zero(static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(n));
    g.selfadjointView<Eigen::Lower>().rankUpdate(zm, c);
  }
  const Eigen::VectorXd w = sym_eigenvalues(g);
  // Eigenvalues within min(n, d) * eps * max|lambda| of zero are round-off: set to 0 (their square
  // roots, the singular values, would otherwise be far above round-off).
  const double cut = static_cast<double>(w.size()) * std::numeric_limits<double>::epsilon() * w.cwiseAbs().maxCoeff();
  std::vector<double> out(static_cast<size_t>(w.size()));
  for (Eigen::Index i = 0; i < w.size(); ++i) out[static_cast<size_t>(w.size() - 1 - i)] = w[i] > cut ? w[i] : 0.0;
  return out;
}

double spectrum_entropy(const std::vector<double>& lambda) {
  double total = 0;
  for (double v : lambda) {
    require(v >= 0 && std::isfinite(v), ErrorCode::Range, "spectrum entries must be non-negative and finite");
    total += v;
  }
  require(total > 0, ErrorCode::Range, "the spectrum is all zeros (zero-variance representation): entropy undefined");
  double h = 0;
  for (double v : lambda)
    if (v > 0) h -= (v / total) * std::log(v / total);
  return h;
}

double coding_rate(const double* z, size_t n, size_t d, double eps2) {
  check_points(z, n, d, "z");
  check_bandwidth(eps2, "the distortion epsilon^2");
  return 0.5 * logdet_identity_plus(z, n, d, static_cast<double>(d) / (static_cast<double>(n) * eps2));
}

RateReduction rate_reduction(const double* z, size_t n, size_t d, const uint32_t* labels, size_t classes, double eps2) {
  check_points(z, n, d, "z");
  check_bandwidth(eps2, "the distortion epsilon^2");
  const auto rows = class_rows(labels, n, classes);
  RateReduction out;
  out.rate = 0.5 * logdet_identity_plus(z, n, d, static_cast<double>(d) / (static_cast<double>(n) * eps2));
  out.class_sizes.resize(classes);
  for (size_t c = 0; c < classes; ++c) {
    const size_t nc = rows[c].size();
    out.class_sizes[c] = static_cast<uint32_t>(nc);
    if (nc == 0) continue;
    const std::vector<double> zc = gather_rows(z, d, rows[c]);
    const double ld = logdet_identity_plus(zc.data(), nc, d, static_cast<double>(d) / (static_cast<double>(nc) * eps2));
    out.class_rate += static_cast<double>(nc) / (2 * static_cast<double>(n)) * ld;
  }
  out.reduction = out.rate - out.class_rate;
  return out;
}

double diffusion_spectral_entropy(const double* z, size_t n, size_t d, double sigma, double t) {
  check_points(z, n, d, "z");
  check_bandwidth(sigma, "the kernel bandwidth sigma");
  require(std::isfinite(t) && t >= 1, ErrorCode::Range, "the diffusion time t must be >= 1, got " + std::to_string(t));
  return dse_unchecked(z, n, d, sigma, t);
}

DiffusionSpectralMi diffusion_spectral_mi(const double* z, size_t n, size_t d, const uint32_t* labels, size_t classes,
                                          double sigma, double t) {
  check_points(z, n, d, "z");
  check_bandwidth(sigma, "the kernel bandwidth sigma");
  require(std::isfinite(t) && t >= 1, ErrorCode::Range, "the diffusion time t must be >= 1, got " + std::to_string(t));
  const auto rows = class_rows(labels, n, classes);
  DiffusionSpectralMi out;
  out.entropy = dse_unchecked(z, n, d, sigma, t);
  for (size_t c = 0; c < classes; ++c) {
    if (rows[c].empty()) continue;
    const std::vector<double> zc = gather_rows(z, d, rows[c]);
    out.conditional_entropy +=
        static_cast<double>(rows[c].size()) / static_cast<double>(n) * dse_unchecked(zc.data(), rows[c].size(), d, sigma, t);
  }
  out.mi = out.entropy - out.conditional_entropy;
  return out;
}

double cs_divergence(const double* x, size_t n, const double* y, size_t m, size_t d, double sigma) {
  check_points(x, n, d, "x");
  check_points(y, m, d, "y");
  check_bandwidth(sigma, "the kernel bandwidth sigma");
  const double vxx = ordered_sum(kernel_row_sums(x, n, x, n, d, sigma)) / (static_cast<double>(n) * static_cast<double>(n));
  const double vyy = ordered_sum(kernel_row_sums(y, m, y, m, d, sigma)) / (static_cast<double>(m) * static_cast<double>(m));
  const double vxy = ordered_sum(kernel_row_sums(x, n, y, m, d, sigma)) / (static_cast<double>(n) * static_cast<double>(m));
  require(vxy > 0, ErrorCode::Range,
          "Cauchy-Schwarz divergence: the cross information potential underflowed to 0 (the samples are too far "
          "apart for sigma = " + std::to_string(sigma) + "); use a larger bandwidth");
  return std::max(0.0, std::log(vxx) + std::log(vyy) - 2 * std::log(vxy));
}

double cs_qmi(const double* x, size_t dx, const double* y, size_t dy, size_t n, double sigma_x, double sigma_y) {
  check_points(x, n, dx, "x");
  check_points(y, n, dy, "y");
  check_bandwidth(sigma_x, "the kernel bandwidth sigma_x");
  check_bandwidth(sigma_y, "the kernel bandwidth sigma_y");
  const Columns cx(x, n, dx), cy(y, n, dy);
  const double sx = 1 / (2 * sigma_x * sigma_x), sy = 1 / (2 * sigma_y * sigma_y);
  std::vector<double> joint(n), rx(n), ry(n);
  const int nt = num_threads();
#pragma omp parallel num_threads(nt)
  {
    std::vector<double> ax(n), ay(n);
#pragma omp for schedule(dynamic, 16)
    for (ptrdiff_t ii = 0; ii < static_cast<ptrdiff_t>(n); ++ii) {
      const size_t i = static_cast<size_t>(ii);
      cx.sqdist(x + i * dx, ax.data());
      cy.sqdist(y + i * dy, ay.data());
      double sj = 0, sxx = 0, syy = 0;
      for (size_t j = 0; j < n; ++j) {
        const double kx = std::exp(-sx * ax[j]), ky = std::exp(-sy * ay[j]);
        sj += kx * ky;
        sxx += kx;
        syy += ky;
      }
      joint[i] = sj;
      rx[i] = sxx;
      ry[i] = syy;
    }
  }
  const double nd = static_cast<double>(n), n2 = nd * nd;
  const double vj = ordered_sum(joint) / n2;
  const double vm = (ordered_sum(rx) / n2) * (ordered_sum(ry) / n2);
  double vc = 0;
  for (size_t i = 0; i < n; ++i) vc += (rx[i] / nd) * (ry[i] / nd);
  vc /= nd;
  return std::max(0.0, std::log(vj) + std::log(vm) - 2 * std::log(vc));
}

}  // namespace tersor::stats
