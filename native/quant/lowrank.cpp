// Low-rank factorisations for compression and error compensation: LoRD, LoRC, EoRA;
// see tersor/quant_methods.hpp.
#include <algorithm>
#include <cmath>
#include <string>

#include <Eigen/Dense>

#include "tersor/error.hpp"
#include "tersor/linalg.hpp"
#include "tersor/quant_methods.hpp"

namespace tersor {
namespace {

using MatD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

void check_input(const float* m, size_t rows, size_t cols, size_t rank, const char* what) {
  require(rows > 0 && cols > 0, ErrorCode::Shape, std::string(what) + ": empty matrix");
  require(rank >= 1 && rank <= std::min(rows, cols), ErrorCode::Range,
          std::string(what) + ": rank " + std::to_string(rank) + " is outside [1, " + std::to_string(std::min(rows, cols)) + "]");
  for (size_t i = 0; i < rows * cols; ++i)
    if (!std::isfinite(m[i])) fail(ErrorCode::Range, std::string(what) + ": the matrix holds a non-finite value at element " + std::to_string(i));
}

/// B = U_k S_k, A = V_k^T from a thin SVD in double.
LowRank from_svd(const Svd<double>& s, size_t rows, size_t cols, size_t rank) {
  LowRank r;
  r.rows = rows;
  r.cols = cols;
  r.rank = rank;
  r.b.resize(rows * rank);
  r.a.resize(rank * cols);
  for (size_t i = 0; i < rows; ++i)
    for (size_t k = 0; k < rank; ++k) r.b[i * rank + k] = static_cast<float>(s.u[i * s.ku + k] * s.s[k]);
  for (size_t k = 0; k < rank; ++k)
    for (size_t j = 0; j < cols; ++j) r.a[k * cols + j] = static_cast<float>(s.vt[k * cols + j]);
  r.singular_values.assign(s.s.begin(), s.s.end());
  return r;
}

}  // namespace

size_t rank_for_energy(const std::vector<float>& s, double energy) {
  require(energy > 0 && energy <= 1, ErrorCode::Range, "energy must be in (0, 1]");
  require(!s.empty(), ErrorCode::Shape, "no singular values");
  double total = 0;
  for (float v : s) total += static_cast<double>(v) * v;
  if (total == 0) return 1;
  double acc = 0;
  for (size_t k = 0; k < s.size(); ++k) {
    acc += static_cast<double>(s[k]) * s[k];
    if (acc >= energy * total * (1 - 1e-12)) return k + 1;
  }
  return s.size();
}

LowRank lord(const float* w, size_t rows, size_t cols, size_t rank, double energy) {
  check_input(w, rows, cols, std::max<size_t>(rank, 1), "lord");
  std::vector<double> d(w, w + rows * cols);
  Svd<double> s = svd<double>(d.data(), rows, cols);
  if (rank == 0) {
    std::vector<float> sv(s.s.begin(), s.s.end());
    rank = rank_for_energy(sv, energy);
  }
  return from_svd(s, rows, cols, rank);
}

LowRank lorc(const float* e, size_t rows, size_t cols, size_t rank) {
  check_input(e, rows, cols, rank, "lorc");
  std::vector<double> d(e, e + rows * cols);
  return from_svd(svd<double>(d.data(), rows, cols), rows, cols, rank);
}

LowRank eora(const float* e, size_t rows, size_t cols, const double* gram, size_t rank) {
  check_input(e, rows, cols, rank, "eora");
  for (size_t i = 0; i < cols * cols; ++i)
    if (!std::isfinite(gram[i])) fail(ErrorCode::Range, "eora: the Gram matrix holds a non-finite value at element " + std::to_string(i));
  Eigh<double> eg = eigh<double>(gram, cols, cols);
  double wmax = 0;
  for (double v : eg.w) wmax = std::max(wmax, v);
  require(wmax > 0, ErrorCode::Range, "eora: the Gram matrix is zero (no calibration activations)");
  // Keep the directions that carry activation.
  std::vector<size_t> keep;
  for (size_t j = 0; j < cols; ++j)
    if (eg.w[j] > 1e-10 * wmax) keep.push_back(j);
  const size_t m = keep.size();
  MatD q(cols, m);
  std::vector<double> sq(m);
  for (size_t t = 0; t < m; ++t) {
    sq[t] = std::sqrt(eg.w[keep[t]]);
    for (size_t i = 0; i < cols; ++i) q(i, t) = eg.v[i * cols + keep[t]];
  }
  MatD em(rows, cols);
  for (size_t i = 0; i < rows * cols; ++i) em.data()[i] = e[i];
  MatD ep = em * q;  // rows x m
  for (size_t t = 0; t < m; ++t) ep.col(t) *= sq[t];
  const size_t k = std::min(rank, std::min(rows, m));
  Svd<double> s = svd<double>(ep.data(), rows, m);
  LowRank r;
  r.rows = rows;
  r.cols = cols;
  r.rank = rank;
  r.b.assign(rows * rank, 0.f);
  r.a.assign(rank * cols, 0.f);
  r.singular_values.assign(s.s.begin(), s.s.end());
  for (size_t i = 0; i < rows; ++i)
    for (size_t c = 0; c < k; ++c) r.b[i * rank + c] = static_cast<float>(s.u[i * s.ku + c] * s.s[c]);
  // A = V_k^T Lambda^-1/2 Q^T
  MatD vt(k, m);
  for (size_t c = 0; c < k; ++c)
    for (size_t t = 0; t < m; ++t) vt(c, t) = s.vt[c * m + t] / sq[t];
  MatD a = vt * q.transpose();
  for (size_t c = 0; c < k; ++c)
    for (size_t j = 0; j < cols; ++j) r.a[c * cols + j] = static_cast<float>(a(c, j));
  return r;
}

}  // namespace tersor
