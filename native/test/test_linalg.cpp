// Tests of tersor/linalg.hpp against the DEFINITIONS of each decomposition (reconstruction,
// orthonormality, triangularity, residuals, Moore-Penrose conditions), on random, ill-conditioned
// (singular values down to 1e-6, Hilbert) and rank-deficient matrices, in float and double.
#include <doctest/doctest.h>

#include <Eigen/Dense>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "tersor/error.hpp"
#include "tersor/gemm.hpp"
#include "tersor/linalg.hpp"
#include "tersor/rng.hpp"

using namespace tersor;

namespace {

using MatD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using VecD = Eigen::VectorXd;

MatD gaussian(Rng& rng, size_t m, size_t n) {
  MatD a(m, n);
  for (size_t i = 0; i < m; ++i)
    for (size_t j = 0; j < n; ++j) a(i, j) = rng.next_normal();
  return a;
}

MatD orthonormal(Rng& rng, size_t m, size_t k) {
  Eigen::MatrixXd g = gaussian(rng, m, k);
  Eigen::HouseholderQR<Eigen::MatrixXd> qr(g);
  return qr.householderQ() * Eigen::MatrixXd::Identity(m, k);
}

/// U diag(s) V^T with Haar-ish random orthonormal U (m x r) and V (n x r).
MatD with_spectrum(Rng& rng, size_t m, size_t n, const std::vector<double>& s) {
  const size_t r = s.size();
  MatD u = orthonormal(rng, m, r), v = orthonormal(rng, n, r);
  return u * Eigen::Map<const VecD>(s.data(), r).asDiagonal() * v.transpose();
}

std::vector<double> logspace(double hi, double lo, size_t n) {
  std::vector<double> s(n);
  for (size_t i = 0; i < n; ++i) s[i] = hi * std::pow(lo / hi, n == 1 ? 0.0 : static_cast<double>(i) / (n - 1));
  return s;
}

MatD hilbert(size_t n) {
  MatD h(n, n);
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < n; ++j) h(i, j) = 1.0 / static_cast<double>(i + j + 1);
  return h;
}

MatD spd(Rng& rng, size_t n, double shift = 1.0) {
  MatD g = gaussian(rng, n, n);
  MatD a = g * g.transpose() / static_cast<double>(n);
  a.diagonal().array() += shift;
  return a;
}

template <class T>
std::vector<T> flat(const MatD& a) {
  std::vector<T> v(a.size());
  for (Eigen::Index i = 0; i < a.rows(); ++i)
    for (Eigen::Index j = 0; j < a.cols(); ++j) v[i * a.cols() + j] = static_cast<T>(a(i, j));
  return v;
}

template <class T>
MatD mat(const std::vector<T>& v, size_t r, size_t c) {
  REQUIRE(v.size() == r * c);
  MatD a(r, c);
  for (size_t i = 0; i < r; ++i)
    for (size_t j = 0; j < c; ++j) a(i, j) = static_cast<double>(v[i * c + j]);
  return a;
}

/// The matrix the routine actually sees: the input rounded to T.
template <class T>
MatD rounded(const MatD& a) {
  return mat(flat<T>(a), a.rows(), a.cols());
}

double rel(const MatD& x, const MatD& ref) { return (x - ref).norm() / std::max(ref.norm(), 1e-300); }
double orth_err(const MatD& q) { return (q.transpose() * q - MatD::Identity(q.cols(), q.cols())).cwiseAbs().maxCoeff(); }

template <class T> constexpr double tight() { return std::is_same_v<T, float> ? 2e-5 : 1e-12; }

template <class F>
void check_error(F&& f, ErrorCode code, const std::string& contains) {
  bool thrown = false;
  try {
    f();
  } catch (const Error& e) {
    thrown = true;
    CHECK(error_code_name(e.code()) == std::string(error_code_name(code)));
    INFO("message: " << e.what());
    CHECK(std::string(e.what()).find(contains) != std::string::npos);
  }
  CHECK(thrown);
}

template <class T>
void check_svd(const MatD& a, bool full) {
  const size_t m = a.rows(), n = a.cols(), r = std::min(m, n);
  const MatD at = rounded<T>(a);
  const auto x = flat<T>(a);
  Svd<T> s = svd(x.data(), m, n, full);
  REQUIRE(s.ku == (full ? m : r));
  REQUIRE(s.kv == (full ? n : r));
  REQUIRE(s.s.size() == r);
  MatD u = mat(s.u, m, s.ku), vt = mat(s.vt, s.kv, n);
  MatD sig = MatD::Zero(s.ku, s.kv);
  for (size_t i = 0; i < r; ++i) sig(i, i) = s.s[i];
  CHECK(rel(u * sig * vt, at) < tight<T>());
  CHECK(orth_err(u) < tight<T>());
  CHECK(orth_err(vt.transpose()) < tight<T>());
  for (size_t i = 0; i < r; ++i) {
    CHECK(s.s[i] >= T(0));
    if (i) CHECK(s.s[i] <= s.s[i - 1]);
  }
}

}  // namespace

TEST_CASE("linalg svd: U S Vt = A with orthonormal factors (random, tall, wide, full; f32 and f64)") {
  Rng rng(1);
  for (auto [m, n] : {std::pair<size_t, size_t>{40, 25}, {25, 40}, {33, 33}, {1, 7}, {7, 1}}) {
    MatD a = gaussian(rng, m, n);
    for (bool full : {false, true}) {
      check_svd<double>(a, full);
      check_svd<float>(a, full);
    }
  }
}

TEST_CASE("linalg svd: ill-conditioned (1e-6..1), Hilbert and rank-deficient inputs") {
  Rng rng(2);
  const MatD ill = with_spectrum(rng, 60, 40, logspace(1, 1e-6, 40));
  const MatD rd = gaussian(rng, 50, 5) * gaussian(rng, 5, 30);
  for (const MatD* a : {&ill, &rd}) {
    check_svd<double>(*a, false);
    check_svd<float>(*a, false);
  }
  check_svd<double>(hilbert(12), true);
  check_svd<float>(hilbert(12), true);
  // The singular values themselves, where the spectrum is known.
  const auto x = flat<double>(ill);
  Svd<double> s = svd(x.data(), 60, 40);
  const auto want = logspace(1, 1e-6, 40);
  for (size_t i = 0; i < 40; ++i) CHECK(std::abs(s.s[i] - want[i]) < 1e-14);
  const auto y = flat<double>(rd);
  Svd<double> t = svd(y.data(), 50, 30);
  for (size_t i = 5; i < 30; ++i) CHECK(t.s[i] < 1e-13 * t.s[0]);
}

namespace {
template <class T>
void check_truncated(const MatD& a, size_t k, double value_tol, double floor = 0, TruncatedSvdOptions opt = {}) {
  const size_t m = a.rows(), n = a.cols();
  const auto x = flat<T>(a);
  const MatD at = mat(x, m, n);
  TruncatedSvdInfo info;
  Svd<T> t = truncated_svd(x.data(), m, n, k, opt, &info);
  REQUIRE(t.ku == k);
  REQUIRE(t.kv == k);
  CHECK(info.converged);
  // The reference: BDCSVD in double of exactly the matrix the routine saw, and BDCSVD in T.
  Eigen::BDCSVD<Eigen::MatrixXd> ref(at, Eigen::ComputeThinU | Eigen::ComputeThinV);
  Svd<T> same = svd(x.data(), m, n);
  MatD u = mat(t.u, m, k), v = mat(t.vt, k, n).transpose();
  CHECK(orth_err(u) < tight<T>());
  CHECK(orth_err(v) < tight<T>());
  const double s1 = ref.singularValues()[0];
  for (size_t i = 0; i < k; ++i) {
    const double si = ref.singularValues()[i];
    INFO("i = " << i << " ours " << t.s[i] << " BDCSVD " << si);
    CHECK(std::abs(t.s[i] - si) <= value_tol * std::max(si, 1e-3 * s1) + floor * s1);
    CHECK(std::abs(t.s[i] - same.s[i]) <= value_tol * std::max(si, 1e-3 * s1) + floor * s1 + 4 * tight<T>() * s1);
    if (i) CHECK(t.s[i] <= t.s[i - 1]);
    // Residuals of the triplet, both sides.
    CHECK((at * v.col(i) - t.s[i] * u.col(i)).norm() <= 10 * tight<T>() * s1);
    CHECK((at.transpose() * u.col(i) - t.s[i] * v.col(i)).norm() <= 10 * tight<T>() * s1 + 10 * info.residual * s1);
  }
}
}  // namespace

TEST_CASE("linalg truncatedSvd: top-k values and vectors match BDCSVD (f64 1e-10, f32 1e-5)") {
  Rng rng(3);
  const MatD g = gaussian(rng, 300, 200);  // flat Marchenko-Pastur spectrum: small gaps
  check_truncated<double>(g, 10, 1e-10);
  check_truncated<float>(g, 10, 1e-5);
  const MatD decay = with_spectrum(rng, 400, 250, logspace(1, 1e-3, 250));
  check_truncated<double>(decay, 20, 1e-10);
  check_truncated<float>(decay, 20, 1e-5);
  const MatD lowrank = with_spectrum(rng, 256, 256, logspace(1, 1e-2, 30)) + 1e-5 * gaussian(rng, 256, 256);
  check_truncated<double>(lowrank, 30, 1e-10);
  check_truncated<float>(lowrank, 30, 1e-5);
  // A cluster of 30 equal singular values with k = 10 inside it (the block is smaller than the cluster).
  std::vector<double> cl(200);
  for (size_t i = 0; i < cl.size(); ++i) cl[i] = i < 30 ? 1.0 : 0.5 * std::pow(0.97, double(i));
  const MatD cluster = with_spectrum(rng, 300, 200, cl);
  check_truncated<double>(cluster, 10, 1e-10);
  check_truncated<float>(cluster, 10, 1e-5);
  // Hilbert: singular values decaying faster than geometrically.
  check_truncated<double>(hilbert(200), 6, 1e-10);
  check_truncated<float>(hilbert(200), 6, 1e-5);
}

TEST_CASE("linalg truncatedSvd: wide input, k above the rank, dense fallback, k out of range") {
  Rng rng(4);
  const MatD wide = gaussian(rng, 150, 320);
  check_truncated<double>(wide, 8, 1e-10);
  check_truncated<float>(wide, 8, 1e-5);
  // Exactly rank 6 with k = 12: six zero singular values (to the tolerance, tol * s_1, that the
  // residual test guarantees), still orthonormal factors.
  const MatD rd = gaussian(rng, 200, 6) * gaussian(rng, 6, 180);
  check_truncated<double>(rd, 12, 1e-10, 1e-12);
  check_truncated<float>(rd, 12, 1e-5, 1e-5);
  // k a large fraction of min(m, n): dense BDCSVD path.
  const MatD small = gaussian(rng, 30, 20);
  TruncatedSvdInfo info;
  const auto x = flat<double>(small);
  Svd<double> t = truncated_svd(x.data(), 30, 20, 15, {}, &info);
  CHECK(info.dense);
  check_truncated<double>(small, 15, 1e-12);
  check_error([&] { truncated_svd(x.data(), 30, 20, 21); }, ErrorCode::Range, "k = 21 is out of range");
  check_error([&] { truncated_svd(x.data(), 30, 20, 2, {-1.0}); }, ErrorCode::Range, "tol");
  // The zero matrix: zero singular values, orthonormal factors, converged at once.
  const std::vector<float> zero(120 * 90, 0.f);
  Svd<float> z = truncated_svd(zero.data(), 120, 90, 4, {}, &info);
  CHECK(info.converged);
  for (float v : z.s) CHECK(v == 0.f);
  CHECK(orth_err(mat(z.u, 120, 4)) < 1e-6);
  CHECK(orth_err(mat(z.vt, 4, 90).transpose()) < 1e-6);
  Svd<float> zr = randomized_svd(zero.data(), 120, 90, 4);
  for (float v : zr.s) CHECK(v == 0.f);
  // Too few restarts, or a tolerance below f32 precision: reported, not hidden.
  const auto gf = flat<float>(gaussian(rng, 300, 200));
  TruncatedSvdOptions o1;
  o1.max_iter = 1;
  truncated_svd(gf.data(), 300, 200, 10, o1, &info);
  CHECK(info.iterations == 1);
  CHECK_FALSE(info.converged);
  TruncatedSvdOptions o2;
  o2.tol = 1e-12;
  truncated_svd(gf.data(), 300, 200, 10, o2, &info);
  CHECK_FALSE(info.converged);
  CHECK(info.iterations < 300);  // stopped on stagnation
  CHECK(info.residual < 1e-5);
  check_error([&] { truncated_svd(x.data(), 30, 20, 0); }, ErrorCode::Range, "k = 0");
}

TEST_CASE("linalg randomizedSvd: near-optimal error on a fast-decaying spectrum, exact on rank k") {
  Rng rng(5);
  const size_t m = 300, n = 200, k = 10;
  std::vector<double> s(n);
  for (size_t i = 0; i < n; ++i) s[i] = std::pow(0.5, static_cast<double>(i));
  const MatD a = with_spectrum(rng, m, n, s);
  auto spectral = [](const MatD& e) { return Eigen::BDCSVD<Eigen::MatrixXd>(e).singularValues()[0]; };
  {
    const auto x = flat<double>(a);
    Svd<double> r = randomized_svd(x.data(), m, n, k);
    MatD approx = mat(r.u, m, k) * Eigen::Map<const VecD>(r.s.data(), k).asDiagonal() * mat(r.vt, k, n);
    const double err = spectral(a - approx);
    CHECK(err <= 1.01 * s[k]);  // optimal is sigma_{k+1} = s[k] (Eckart-Young)
    CHECK(err >= 0.999 * s[k]);
    for (size_t i = 0; i < k; ++i) CHECK(std::abs(r.s[i] - s[i]) < 1e-9);
    CHECK(orth_err(mat(r.u, m, k)) < 1e-12);
    CHECK(orth_err(mat(r.vt, k, n).transpose()) < 1e-12);
  }
  {
    const auto x = flat<float>(a);
    Svd<float> r = randomized_svd(x.data(), m, n, k);
    MatD approx = mat(r.u, m, k) * mat(std::vector<float>(r.s), k, 1).col(0).asDiagonal() * mat(r.vt, k, n);
    CHECK(spectral(rounded<float>(a) - approx) <= 1.01 * s[k] + 1e-5);
  }
  // Exactly rank k: exact up to rounding.
  const MatD lr = gaussian(rng, m, k) * gaussian(rng, k, n);
  const auto x = flat<double>(lr);
  Svd<double> r = randomized_svd(x.data(), m, n, k, {0, 0, 9});  // no oversampling, no power iterations
  MatD approx = mat(r.u, m, k) * Eigen::Map<const VecD>(r.s.data(), k).asDiagonal() * mat(r.vt, k, n);
  CHECK(rel(approx, lr) < 1e-12);
  const auto xf = flat<float>(lr);
  Svd<float> rf = randomized_svd(xf.data(), m, k + 5 > n ? n : n, k);
  MatD approxf = mat(rf.u, m, k) * mat(std::vector<float>(rf.s), k, 1).col(0).asDiagonal() * mat(rf.vt, k, n);
  CHECK(rel(approxf, rounded<float>(lr)) < 1e-5);
  // Wide input.
  const MatD w = with_spectrum(rng, 120, 260, std::vector<double>(s.begin(), s.begin() + 120));
  const auto xw = flat<double>(w);
  Svd<double> rw = randomized_svd(xw.data(), 120, 260, k);
  MatD aw = mat(rw.u, 120, k) * Eigen::Map<const VecD>(rw.s.data(), k).asDiagonal() * mat(rw.vt, k, 260);
  CHECK(spectral(w - aw) <= 1.01 * s[k]);
}

namespace {
size_t g_gemm_calls = 0;
void counting_sgemm(Trans ta, Trans tb, size_t m, size_t n, size_t k, float alpha, const float* a, size_t lda,
                    const float* b, size_t ldb, float beta, float* c, size_t ldc) {
  ++g_gemm_calls;
  sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
}  // namespace

TEST_CASE("linalg randomizedSvd: the same seed gives the same result and the gemm kernel can be swapped") {
  Rng rng(6);
  const MatD a = gaussian(rng, 80, 60);
  const auto x = flat<float>(a);
  RandomizedSvdOptions o;
  o.seed = 77;
  Svd<float> r1 = randomized_svd(x.data(), 80, 60, 5, o);
  Svd<float> r2 = randomized_svd(x.data(), 80, 60, 5, o);
  CHECK(r1.s == r2.s);
  CHECK(r1.u == r2.u);
  o.sgemm = &counting_sgemm;
  g_gemm_calls = 0;
  Svd<float> r3 = randomized_svd(x.data(), 80, 60, 5, o);
  CHECK(g_gemm_calls == 2 * o.power_iters + 4);  // A Omega, 2q power products, A^T Q, Q U~, Qb W~
  for (size_t i = 0; i < 5; ++i) CHECK(std::abs(r3.s[i] - r1.s[i]) <= 1e-5f * r1.s[0]);
}

TEST_CASE("linalg eigh: A v = lambda v with orthonormal V and ascending eigenvalues") {
  Rng rng(7);
  MatD g = gaussian(rng, 60, 60);
  const MatD sym = (g + g.transpose()) / 2;
  for (const MatD& a : {sym, hilbert(10), MatD(with_spectrum(rng, 50, 50, logspace(1, 1e-6, 50)))}) {
    const MatD as = (a + a.transpose()) / 2;
    const size_t n = as.rows();
    {
      const auto x = flat<double>(as);
      Eigh<double> e = eigh(x.data(), n, n);
      MatD v = mat(e.v, n, n);
      CHECK((as * v - v * Eigen::Map<const VecD>(e.w.data(), n).asDiagonal()).norm() < 1e-12 * as.norm());
      CHECK(orth_err(v) < 1e-12);
      for (size_t i = 1; i < n; ++i) CHECK(e.w[i] >= e.w[i - 1]);
    }
    {
      const auto x = flat<float>(as);
      const MatD af = mat(x, n, n);
      Eigh<float> e = eigh(x.data(), n, n);
      MatD v = mat(e.v, n, n);
      MatD w = mat(e.w, n, 1);
      CHECK((af * v - v * w.col(0).asDiagonal()).norm() < 2e-5 * af.norm());
      CHECK(orth_err(v) < 2e-5);
      for (size_t i = 1; i < n; ++i) CHECK(e.w[i] >= e.w[i - 1]);
    }
  }
  const std::vector<double> nonsym = {1, 2, 3, 4};
  check_error([&] { eigh(nonsym.data(), 2, 2); }, ErrorCode::Range, "not symmetric");
  check_error([&] { eigh(nonsym.data(), 1, 4); }, ErrorCode::Shape, "1 x 4");
}

TEST_CASE("linalg cholesky: L L^T = A, GPTQ damping, non-SPD and NaN errors") {
  Rng rng(8);
  for (const MatD& a : {spd(rng, 70), hilbert(8)}) {
    const size_t n = a.rows();
    const auto x = flat<double>(a);
    MatD l = mat(cholesky(x.data(), n, n), n, n);
    CHECK(rel(l * l.transpose(), a) < 1e-14);
    for (size_t i = 0; i < n; ++i) {
      CHECK(l(i, i) > 0);
      for (size_t j = i + 1; j < n; ++j) CHECK(l(i, j) == 0);
    }
  }
  {
    const MatD a = spd(rng, 50);
    const auto x = flat<float>(a);
    MatD l = mat(cholesky(x.data(), 50, 50), 50, 50);
    CHECK(rel(l * l.transpose(), mat(x, 50, 50)) < 1e-6);
  }
  // Damping: A + lambda * mean(diag(A)) * I.
  const std::vector<double> indef = {1, 2, 2, 1};
  check_error([&] { cholesky(indef.data(), 2, 2); }, ErrorCode::Range, "matrix is not positive definite (pivot j = 1 is -3");
  MatD l = mat(cholesky(indef.data(), 2, 2, 2.0), 2, 2);
  MatD want(2, 2);
  want << 3, 2, 2, 3;
  CHECK(rel(l * l.transpose(), want) < 1e-15);
  const MatD big = spd(rng, 100);
  const auto xb = flat<double>(big);
  MatD lb = mat(cholesky(xb.data(), 100, 100, 0.01), 100, 100);
  MatD damped = big;
  damped.diagonal().array() += 0.01 * big.diagonal().mean();
  CHECK(rel(lb * lb.transpose(), damped) < 1e-14);
  // Errors.
  std::vector<double> nan = flat<double>(spd(rng, 4));
  nan[2 * 4 + 1] = std::numeric_limits<double>::quiet_NaN();
  check_error([&] { cholesky(nan.data(), 4, 4); }, ErrorCode::Range, "a contains NaN at row 2, column 1");
  nan[2 * 4 + 1] = -std::numeric_limits<double>::infinity();
  check_error([&] { cholesky(nan.data(), 4, 4); }, ErrorCode::Range, "-Inf at row 2, column 1");
  check_error([&] { cholesky(indef.data(), 1, 4); }, ErrorCode::Shape, "square");
  check_error([&] { cholesky(indef.data(), 2, 2, -1); }, ErrorCode::Range, "damping");
  const std::vector<float> negdiag = {1, 0, 0, 0, -2, 0, 0, 0, 3};
  check_error([&] { cholesky(negdiag.data(), 3, 3); }, ErrorCode::Range, "pivot j = 1 is -2");
}

TEST_CASE("linalg choleskyInverse gives the upper factor of the inverse as GPTQ uses; inverseSpd") {
  Rng rng(9);
  for (size_t n : {1, 5, 64, 130}) {
    const MatD a = spd(rng, n);
    const auto x = flat<double>(a);
    MatD u = mat(cholesky_inverse(x.data(), n, n), n, n);
    for (size_t i = 0; i < n; ++i) {
      CHECK(u(i, i) > 0);
      for (size_t j = 0; j < i; ++j) CHECK(u(i, j) == 0);
    }
    CHECK((u.transpose() * u * a - MatD::Identity(n, n)).norm() < 1e-12 * std::sqrt(double(n)));
    // The GPTQ route: cholesky(inverse(A)), upper.
    Eigen::MatrixXd inv = a.inverse();
    Eigen::LLT<Eigen::MatrixXd> llt(inv);
    CHECK(rel(u, llt.matrixU().toDenseMatrix()) < 1e-12);
    MatD ainv = mat(inverse_spd(x.data(), n, n), n, n);
    CHECK((ainv * a - MatD::Identity(n, n)).norm() < 1e-12 * std::sqrt(double(n)));
    CHECK(ainv == ainv.transpose());
    // float
    const auto xf = flat<float>(a);
    MatD uf = mat(cholesky_inverse(xf.data(), n, n), n, n);
    CHECK((uf.transpose() * uf * mat(xf, n, n) - MatD::Identity(n, n)).norm() < 1e-5 * std::sqrt(double(n)));
  }
  // With damping.
  const MatD a = spd(rng, 40);
  const auto x = flat<double>(a);
  MatD u = mat(cholesky_inverse(x.data(), 40, 40, 0.1), 40, 40);
  MatD damped = a;
  damped.diagonal().array() += 0.1 * a.diagonal().mean();
  CHECK((u.transpose() * u * damped - MatD::Identity(40, 40)).norm() < 1e-12);
  const std::vector<double> indef = {1, 2, 2, 1};
  check_error([&] { cholesky_inverse(indef.data(), 2, 2); }, ErrorCode::Range, "pivot j = 1");
  check_error([&] { inverse_spd(indef.data(), 2, 2); }, ErrorCode::Range, "not positive definite");
}

TEST_CASE("linalg blocked Cholesky: several blocks and panels, parallel inverse and solves, late pivot failure") {
  Rng rng(18);
  const size_t n = 600;
  const MatD a = spd(rng, n);
  const auto x = flat<double>(a);
  MatD l = mat(cholesky(x.data(), n, n), n, n);
  CHECK(rel(l * l.transpose(), a) < 1e-14);
  CHECK(l.triangularView<Eigen::StrictlyUpper>().toDenseMatrix().cwiseAbs().maxCoeff() == 0);
  Eigen::LLT<Eigen::MatrixXd> ref(a);
  CHECK(rel(l, ref.matrixL().toDenseMatrix()) < 1e-13);
  MatD u = mat(cholesky_inverse(x.data(), n, n, 0.01), n, n);
  MatD damped = a;
  damped.diagonal().array() += 0.01 * a.diagonal().mean();
  CHECK((u.transpose() * u * damped - MatD::Identity(n, n)).norm() < 1e-11);
  CHECK(u.triangularView<Eigen::StrictlyLower>().toDenseMatrix().cwiseAbs().maxCoeff() == 0);
  MatD inv = mat(inverse_spd(x.data(), n, n), n, n);
  CHECK((inv * a - MatD::Identity(n, n)).norm() < 1e-11);
  CHECK(inv == inv.transpose());
  const MatD b = gaussian(rng, n, 70);
  const auto y = flat<double>(b);
  MatD sol = mat(solve(x.data(), n, n, y.data(), n, 70, Assume::Spd), n, 70);
  CHECK((a * sol - b).norm() < 1e-13 * a.norm() * sol.norm());
  const double want = ref.matrixL().toDenseMatrix().diagonal().array().log().sum() * 2;
  CHECK(std::abs(logdet(x.data(), n, n, Assume::Spd).logabsdet - want) < 1e-10);
  {
    const auto xf = flat<float>(a);
    MatD lf = mat(cholesky(xf.data(), n, n), n, n);
    CHECK(rel(lf * lf.transpose(), mat(xf, n, n)) < 1e-6);
    MatD uf = mat(cholesky_inverse(xf.data(), n, n), n, n);
    CHECK((uf.transpose() * uf * mat(xf, n, n) - MatD::Identity(n, n)).norm() < 1e-4);
  }
  // Make the Schur complement at j = 300 equal -0.5: the error names that pivot and its value.
  const double l300 = ref.matrixL()(300, 300);
  MatD bad = a;
  bad(300, 300) -= l300 * l300 + 0.5;
  const auto xb = flat<double>(bad);
  check_error([&] { cholesky(xb.data(), n, n); }, ErrorCode::Range, "matrix is not positive definite (pivot j = 300 is -0.5)");
  check_error([&] { cholesky_inverse(xb.data(), n, n); }, ErrorCode::Range, "pivot j = 300 is -0.5");
  check_error([&] { solve(xb.data(), n, n, y.data(), n, 70, Assume::Spd); }, ErrorCode::Range, "pivot j = 300");
}

TEST_CASE("linalg qr: Q R = A with orthonormal Q and upper-triangular R (tall and wide)") {
  Rng rng(10);
  for (const MatD& a : {gaussian(rng, 50, 30), gaussian(rng, 30, 50), hilbert(10),
                        MatD(gaussian(rng, 40, 4) * gaussian(rng, 4, 20))}) {
    const size_t m = a.rows(), n = a.cols(), k = std::min(m, n);
    {
      const auto x = flat<double>(a);
      Qr<double> f = qr(x.data(), m, n);
      MatD q = mat(f.q, m, k), r = mat(f.r, k, n);
      CHECK(rel(q * r, a) < 1e-14);
      CHECK(orth_err(q) < 1e-14);
      for (size_t i = 0; i < k; ++i)
        for (size_t j = 0; j < std::min(i, n); ++j) CHECK(r(i, j) == 0);
    }
    {
      const auto x = flat<float>(a);
      Qr<float> f = qr(x.data(), m, n);
      MatD q = mat(f.q, m, k), r = mat(f.r, k, n);
      CHECK(rel(q * r, mat(x, m, n)) < 1e-6);
      CHECK(orth_err(q) < 1e-6);
    }
  }
}

TEST_CASE("linalg solve: general and SPD residuals, shape and singular errors") {
  Rng rng(11);
  const MatD a = gaussian(rng, 40, 40), b = gaussian(rng, 40, 3), s = spd(rng, 40);
  for (auto [m, assume] : {std::pair<const MatD*, Assume>{&a, Assume::General}, {&s, Assume::Spd}, {&s, Assume::General}}) {
    const auto x = flat<double>(*m);
    const auto y = flat<double>(b);
    MatD sol = mat(solve(x.data(), 40, 40, y.data(), 40, 3, assume), 40, 3);
    CHECK((*m * sol - b).norm() < 1e-13 * m->norm() * sol.norm());
    const auto xf = flat<float>(*m);
    const auto yf = flat<float>(b);
    MatD solf = mat(solve(xf.data(), 40, 40, yf.data(), 40, 3, assume), 40, 3);
    CHECK((mat(xf, 40, 40) * solf - mat(yf, 40, 3)).norm() < 1e-5 * m->norm() * solf.norm());
  }
  // Hilbert: backward stable, tiny residual despite cond ~ 1e16.
  const MatD h = hilbert(12);
  const auto xh = flat<double>(h);
  const auto yh = flat<double>(MatD(gaussian(rng, 12, 1)));
  MatD solh = mat(solve(xh.data(), 12, 12, yh.data(), 12, 1), 12, 1);
  CHECK((h * solh - mat(yh, 12, 1)).norm() < 1e-14 * h.norm() * solh.norm());
  const auto x = flat<double>(a);
  const auto y = flat<double>(b);
  check_error([&] { solve(x.data(), 40, 40, y.data(), 39, 3); }, ErrorCode::Shape, "B must have 40 rows");
  check_error([&] { solve(x.data(), 20, 80, y.data(), 20, 6); }, ErrorCode::Shape, "square");
  const std::vector<double> sing = {1, 2, 2, 4}, rhs = {1, 1};
  check_error([&] { solve(sing.data(), 2, 2, rhs.data(), 2, 1); }, ErrorCode::Range, "singular");
  check_error([&] { solve(sing.data(), 2, 2, rhs.data(), 2, 1, Assume::Spd); }, ErrorCode::Range, "not positive definite");
  std::vector<double> ynan = y;
  ynan[5] = std::numeric_limits<double>::quiet_NaN();
  check_error([&] { solve(x.data(), 40, 40, ynan.data(), 40, 3); }, ErrorCode::Range, "b contains NaN at row 1, column 2");
}

TEST_CASE("linalg pinv: Moore-Penrose conditions on full-rank and rank-deficient matrices") {
  Rng rng(12);
  auto penrose = [](const MatD& a, const MatD& x, double tol) {
    CHECK(rel(a * x * a, a) < tol);
    CHECK(rel(x * a * x, x) < tol);
    CHECK(rel((a * x).transpose(), a * x) < tol);
    CHECK(rel((x * a).transpose(), x * a) < tol);
  };
  const MatD full = gaussian(rng, 30, 20);
  const MatD rd = gaussian(rng, 25, 5) * gaussian(rng, 5, 18);
  {
    const auto x = flat<double>(full);
    MatD p = mat(pinv(x.data(), 30, 20), 20, 30);
    penrose(full, p, 1e-13);
    MatD normal = (full.transpose() * full).inverse() * full.transpose();
    CHECK(rel(p, normal) < 1e-12);
  }
  {
    const auto x = flat<double>(rd);
    MatD p = mat(pinv(x.data(), 25, 18, 1e-10), 18, 25);
    penrose(rd, p, 1e-12);
    const auto xf = flat<float>(rd);
    MatD pf = mat(pinv(xf.data(), 25, 18, 1e-4), 18, 25);
    penrose(mat(xf, 25, 18), pf, 1e-4);
  }
  {
    // rcond decides which singular values count: 1e-6..1 with rcond 1e-3 keeps those >= 1e-3 only.
    const auto sv = logspace(1, 1e-6, 10);
    const MatD a = with_spectrum(rng, 10, 10, sv);
    const auto x = flat<double>(a);
    MatD p = mat(pinv(x.data(), 10, 10, 1e-3), 10, 10);
    Eigen::BDCSVD<Eigen::MatrixXd> ps(p);
    size_t nonzero = 0;
    for (Eigen::Index i = 0; i < ps.singularValues().size(); ++i) nonzero += ps.singularValues()[i] > 1e-8;
    size_t kept = 0;
    for (double v : sv) kept += v > 1e-3;
    CHECK(nonzero == kept);
    CHECK(std::abs(ps.singularValues()[0] - 1 / sv[kept - 1]) < 1e-8 / sv[kept - 1]);
  }
}

TEST_CASE("linalg logdet: SPD against the eigenvalues, general against LU, sign and singular") {
  Rng rng(13);
  const MatD s = spd(rng, 30);
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(s);
  const double want = es.eigenvalues().array().log().sum();
  const auto x = flat<double>(s);
  for (Assume as : {Assume::Spd, Assume::General}) {
    LogDet d = logdet(x.data(), 30, 30, as);
    CHECK(d.sign == 1);
    CHECK(std::abs(d.logabsdet - want) < 1e-12 * std::abs(want) + 1e-12);
  }
  const auto xf = flat<float>(s);
  CHECK(std::abs(logdet(xf.data(), 30, 30, Assume::Spd).logabsdet - want) < 1e-4);
  // General: compare with det() on a small matrix, both signs.
  for (int trial = 0; trial < 6; ++trial) {
    const MatD g = gaussian(rng, 7, 7);
    const double det = Eigen::MatrixXd(g).fullPivLu().determinant();
    const auto y = flat<double>(g);
    LogDet d = logdet(y.data(), 7, 7);
    CHECK(d.sign == (det > 0 ? 1 : -1));
    CHECK(std::abs(d.logabsdet - std::log(std::abs(det))) < 1e-12);
  }
  // Hilbert(8), cond ~ 1.5e10: the reference is the sum of log eigenvalues of the same (double) matrix computed
  // in long double, since double eigenvalues of that matrix are only good to ~1e-3 at the small end.
  const MatD h = hilbert(8);
  using MatL = Eigen::Matrix<long double, Eigen::Dynamic, Eigen::Dynamic>;
  Eigen::SelfAdjointEigenSolver<MatL> eh(h.cast<long double>());
  const double hwant = static_cast<double>(eh.eigenvalues().array().log().sum());
  const auto xh = flat<double>(h);
  // Perturbation bound for log det: n * eps * cond ~ 3e-5; typical error is far smaller.
  CHECK(std::abs(logdet(xh.data(), 8, 8, Assume::Spd).logabsdet - hwant) < 1e-6);
  CHECK(std::abs(logdet(xh.data(), 8, 8).logabsdet - hwant) < 1e-6);
  const std::vector<double> sing = {1, 2, 2, 4};
  LogDet d0 = logdet(sing.data(), 2, 2);
  CHECK(d0.sign == 0);
  CHECK(std::isinf(d0.logabsdet));
  CHECK(d0.logabsdet < 0);
  check_error([&] { logdet(sing.data(), 2, 2, Assume::Spd); }, ErrorCode::Range, "not positive definite");
}

TEST_CASE("linalg sqrtmSpd: S S = A with S symmetric; round-off clamped, negative eigenvalues rejected") {
  Rng rng(14);
  const MatD a = spd(rng, 40);
  const auto x = flat<double>(a);
  MatD sq = mat(sqrtm_spd(x.data(), 40, 40), 40, 40);
  CHECK(rel(sq * sq, a) < 1e-13);
  CHECK(sq == sq.transpose());
  CHECK(Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd>(sq).eigenvalues().minCoeff() > 0);
  // PSD of rank 5: eigenvalues ~ +-1e-16 are clamped.
  const MatD g = gaussian(rng, 30, 5);
  const MatD psd = g * g.transpose();
  const auto y = flat<double>(psd);
  MatD sp = mat(sqrtm_spd(y.data(), 30, 30), 30, 30);
  CHECK(rel(sp * sp, psd) < 1e-7);  // sqrt of the round-off-level eigenvalues ~ 1e-8 relative
  const auto yf = flat<float>(a);
  MatD sf = mat(sqrtm_spd(yf.data(), 40, 40), 40, 40);
  CHECK(rel(sf * sf, mat(yf, 40, 40)) < 1e-5);
  const std::vector<double> neg = {1, 0, 0, -1e-3};
  check_error([&] { sqrtm_spd(neg.data(), 2, 2); }, ErrorCode::Range, "not positive semi-definite");
}

TEST_CASE("linalg input checks: NaN and Inf located by operand, row and column") {
  std::vector<float> a(12, 1.0f);
  a[7] = std::numeric_limits<float>::infinity();
  check_error([&] { svd(a.data(), 3, 4); }, ErrorCode::Range, "svd: a contains +Inf at row 1, column 3");
  check_error([&] { randomized_svd(a.data(), 3, 4, 2); }, ErrorCode::Range, "row 1, column 3");
  check_error([&] { truncated_svd(a.data(), 3, 4, 2); }, ErrorCode::Range, "row 1, column 3");
  check_error([&] { qr(a.data(), 4, 3); }, ErrorCode::Range, "row 2, column 1");
  check_error([&] { pinv(a.data(), 3, 4); }, ErrorCode::Range, "pinv: a contains +Inf");
  a[7] = std::numeric_limits<float>::quiet_NaN();
  check_error([&] { pinv(a.data(), 3, 4); }, ErrorCode::Range, "a contains NaN");
  check_error([&] { randomized_svd(a.data(), 3, 4, 4); }, ErrorCode::Range, "min(m, n) = 3");
  check_error([&] { logdet(a.data(), 3, 4); }, ErrorCode::Shape, "3 x 4");
  check_error([&] { sqrtm_spd(a.data(), 4, 3); }, ErrorCode::Shape, "4 x 3");
}

// ---- Walsh-Hadamard ------------------------------------------------------------------------------

namespace {
MatD sylvester(size_t n) {
  MatD h = MatD::Ones(1, 1);
  while (static_cast<size_t>(h.rows()) < n) {
    const Eigen::Index k = h.rows();
    MatD g(2 * k, 2 * k);
    g << h, h, h, -h;
    h = g;
  }
  return h;
}
template <class T>
std::vector<T> random_rows(Rng& rng, size_t rows, size_t n) {
  std::vector<T> x(rows * n);
  for (auto& v : x) v = static_cast<T>(rng.next_normal());
  return x;
}
}  // namespace

TEST_CASE("hadamard: AVX2 transform equals the scalar reference bit for bit (f32 and f64; n = 1 .. 2^14)") {
  Rng rng(15);
  for (size_t n = 1; n <= (1u << 14); n <<= 1) {
    const size_t rows = n >= 4096 ? 3 : 17;
    for (bool normalize : {false, true})
      for (bool signs : {false, true}) {
        HadamardOptions o{normalize, signs, 1234};
        auto xf = random_rows<float>(rng, rows, n);
        auto rf = xf;
        fwht_rows(xf.data(), rows, n, o);
        fwht_rows_reference(rf.data(), rows, n, o);
        INFO("f32 n = " << n);
        CHECK(xf == rf);
        auto xd = random_rows<double>(rng, rows, n);
        auto rd = xd;
        fwht_rows(xd.data(), rows, n, o);
        fwht_rows_reference(rd.data(), rows, n, o);
        INFO("f64 n = " << n);
        CHECK(xd == rd);
      }
  }
  // Many rows: the parallel path.
  auto x = random_rows<float>(rng, 512, 256);
  auto r = x;
  fwht_rows(x.data(), 512, 256);
  fwht_rows_reference(r.data(), 512, 256);
  CHECK(x == r);
}

TEST_CASE("hadamard: matches the explicit Sylvester matrix; H H = n I; normalised it is orthogonal") {
  Rng rng(16);
  for (size_t n = 1; n <= 256; n <<= 1) {
    const MatD h = sylvester(n);
    CHECK(h * h == static_cast<double>(n) * MatD::Identity(n, n));
    const size_t rows = 5;
    // Integer inputs: every sum is exact, so the comparisons are exact.
    std::vector<double> x(rows * n);
    for (auto& v : x) v = static_cast<double>(static_cast<int>(rng.next_below(201)) - 100);
    std::vector<double> y = x;
    fwht_rows(y.data(), rows, n);
    CHECK(mat(y, rows, n) == mat(x, rows, n) * h);
    fwht_rows(y.data(), rows, n);
    CHECK(mat(y, rows, n) == static_cast<double>(n) * mat(x, rows, n));
    std::vector<float> xf(x.begin(), x.end()), yf = xf;
    fwht_rows(yf.data(), rows, n);
    CHECK(mat(yf, rows, n) == mat(x, rows, n) * h);
    // Normalised: norms preserved, applying twice is the identity.
    auto z = random_rows<double>(rng, rows, n);
    auto w = z;
    HadamardOptions o{true, false, 0};
    fwht_rows(w.data(), rows, n, o);
    for (size_t i = 0; i < rows; ++i)
      CHECK(std::abs(mat(w, rows, n).row(i).norm() - mat(z, rows, n).row(i).norm()) < 1e-13 * std::sqrt(double(n)));
    fwht_rows(w.data(), rows, n, o);
    CHECK(rel(mat(w, rows, n), mat(z, rows, n)) < 1e-14);
  }
}

TEST_CASE("hadamard: random signs follow the documented convention and repeat for a seed") {
  const size_t n = 64, rows = 3;
  Rng rng(17);
  auto x = random_rows<double>(rng, rows, n);
  // sign_j = (next_u32() & 1) ? -1 : +1 for j = 0..n-1 from Rng(seed), applied before the transform.
  Rng srng(99);
  std::vector<double> s(n);
  for (size_t j = 0; j < n; ++j) s[j] = (srng.next_u32() & 1) ? -1.0 : 1.0;
  const auto hs = hadamard_signs(n, 99);
  for (size_t j = 0; j < n; ++j) CHECK(hs[j] == s[j]);
  auto signed_x = x;
  for (size_t i = 0; i < rows; ++i)
    for (size_t j = 0; j < n; ++j) signed_x[i * n + j] *= s[j];
  auto a = x, b = x, c = x;
  HadamardOptions o{true, true, 99};
  fwht_rows(a.data(), rows, n, o);
  fwht_rows(b.data(), rows, n, o);
  CHECK(a == b);
  fwht_rows(signed_x.data(), rows, n, HadamardOptions{true, false, 0});
  CHECK(a == signed_x);
  o.seed = 100;
  fwht_rows(c.data(), rows, n, o);
  CHECK(a != c);
  // Randomised and normalised: still orthogonal.
  CHECK(std::abs(mat(a, rows, n).norm() - mat(x, rows, n).norm()) < 1e-12);
}

TEST_CASE("hadamard: a row length that is not a power of two is E_SHAPE") {
  std::vector<float> x(12);
  for (size_t n : {0, 3, 6, 12}) check_error([&] { fwht_rows(x.data(), n ? 12 / n : 1, n); }, ErrorCode::Shape, "not a power of two");
  std::vector<float> one = {3.5f};
  fwht_rows(one.data(), 1, 1, HadamardOptions{true, false, 0});
  CHECK(one[0] == 3.5f);
}

TEST_CASE("linalg fill_normal: the first draws of Rng(seed).next_normal, bit for bit, small and parallel") {
  for (size_t count : {size_t{5}, size_t{100000}}) {
    std::vector<double> d(count);
    std::vector<float> f(count);
    fill_normal<double>(321, d.data(), count);
    fill_normal<float>(321, f.data(), count);
    Rng rng(321);
    size_t bad_d = 0, bad_f = 0;
    for (size_t i = 0; i < count; ++i) {
      const double z = rng.next_normal();
      bad_d += d[i] != z;
      bad_f += f[i] != static_cast<float>(z);
    }
    CHECK(bad_d == 0);
    CHECK(bad_f == 0);
  }
}
