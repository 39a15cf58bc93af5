// Generic MLP: batched forward/backward over sgemm, Xavier init from tersor::Rng, Adam.
#include "tersor/mlp.hpp"

#include <omp.h>

#include <cmath>
#include <limits>
#include <string>

#include "tersor/error.hpp"
#include "tersor/gemm.hpp"
#include "tersor/parallel.hpp"
#include "tersor/rng.hpp"

namespace tersor {
namespace {

// Element loops below this size run on one thread (thread start-up would cost more).
constexpr size_t kParallelElems = size_t{1} << 15;

void apply_activation(Activation a, float* z, size_t n) {
  if (a == Activation::Identity) return;
  const int nt = n >= kParallelElems ? num_threads() : 1;
  const std::ptrdiff_t N = static_cast<std::ptrdiff_t>(n);
  switch (a) {
    case Activation::ReLU:
#pragma omp parallel for num_threads(nt) schedule(static)
      for (std::ptrdiff_t i = 0; i < N; ++i) z[i] = z[i] > 0.0f ? z[i] : 0.0f;
      break;
    case Activation::ELU:
#pragma omp parallel for num_threads(nt) schedule(static)
      for (std::ptrdiff_t i = 0; i < N; ++i) z[i] = z[i] > 0.0f ? z[i] : std::expm1(z[i]);
      break;
    case Activation::Tanh:
#pragma omp parallel for num_threads(nt) schedule(static)
      for (std::ptrdiff_t i = 0; i < N; ++i) z[i] = std::tanh(z[i]);
      break;
    case Activation::Identity:
      break;
  }
}

/// dz = da * act'(z), with the derivative written in terms of the activation's output a.
void activation_backward(Activation act, const float* a, const float* da, float* dz, size_t n) {
  const int nt = n >= kParallelElems ? num_threads() : 1;
  const std::ptrdiff_t N = static_cast<std::ptrdiff_t>(n);
  switch (act) {
    case Activation::Identity:
#pragma omp parallel for num_threads(nt) schedule(static)
      for (std::ptrdiff_t i = 0; i < N; ++i) dz[i] = da[i];
      break;
    case Activation::ReLU:
#pragma omp parallel for num_threads(nt) schedule(static)
      for (std::ptrdiff_t i = 0; i < N; ++i) dz[i] = a[i] > 0.0f ? da[i] : 0.0f;
      break;
    case Activation::ELU:  // z > 0: 1; else exp(z) = a + 1
#pragma omp parallel for num_threads(nt) schedule(static)
      for (std::ptrdiff_t i = 0; i < N; ++i) dz[i] = a[i] > 0.0f ? da[i] : da[i] * (a[i] + 1.0f);
      break;
    case Activation::Tanh:
#pragma omp parallel for num_threads(nt) schedule(static)
      for (std::ptrdiff_t i = 0; i < N; ++i) dz[i] = da[i] * (1.0f - a[i] * a[i]);
      break;
  }
}

/// out[r, :] = bias for every row.
void broadcast_rows(const float* bias, size_t rows, size_t cols, float* out) {
  for (size_t r = 0; r < rows; ++r)
    for (size_t c = 0; c < cols; ++c) out[r * cols + c] = bias[c];
}

}  // namespace

Activation parse_activation(const std::string& name) {
  if (name == "identity" || name == "linear") return Activation::Identity;
  if (name == "relu") return Activation::ReLU;
  if (name == "elu") return Activation::ELU;
  if (name == "tanh") return Activation::Tanh;
  fail(ErrorCode::Range, "activation must be \"relu\", \"elu\", \"tanh\" or \"identity\", got \"" + name + "\"");
}

const char* activation_name(Activation a) {
  switch (a) {
    case Activation::Identity: return "identity";
    case Activation::ReLU: return "relu";
    case Activation::ELU: return "elu";
    case Activation::Tanh: return "tanh";
  }
  return "identity";
}

size_t MlpShape::param_count() const {
  size_t n = 0;
  for (size_t l = 0; l < layers(); ++l) n += sizes[l] * sizes[l + 1] + sizes[l + 1];
  return n;
}

size_t MlpShape::weight_offset(size_t l) const {
  size_t off = 0;
  for (size_t i = 0; i < l; ++i) off += sizes[i] * sizes[i + 1] + sizes[i + 1];
  return off;
}

size_t MlpShape::bias_offset(size_t l) const { return weight_offset(l) + sizes[l] * sizes[l + 1]; }

void MlpShape::validate() const {
  require(sizes.size() >= 2, ErrorCode::Range, "an MLP needs at least an input and an output size");
  require(sizes.size() <= 65, ErrorCode::Range, "an MLP may have at most 64 layers");
  double total = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    require(sizes[i] >= 1 && sizes[i] <= (size_t{1} << 24), ErrorCode::Range,
            "MLP size " + std::to_string(i) + " must be in [1, 2^24], got " + std::to_string(sizes[i]));
    if (i + 1 < sizes.size()) total += static_cast<double>(sizes[i]) * static_cast<double>(sizes[i + 1] + 1);
  }
  require(total <= static_cast<double>(size_t{1} << 31), ErrorCode::Range, "the MLP has more than 2^31 parameters");
}

void mlp_init_xavier(const MlpShape& shape, float* params, uint64_t seed) {
  shape.validate();
  Rng rng(seed);
  for (size_t l = 0; l < shape.layers(); ++l) {
    const size_t in = shape.sizes[l], out = shape.sizes[l + 1];
    const double a = std::sqrt(6.0 / static_cast<double>(in + out));
    float* w = params + shape.weight_offset(l);
    for (size_t i = 0; i < in * out; ++i) w[i] = static_cast<float>((2.0 * rng.next_f64() - 1.0) * a);
    float* b = params + shape.bias_offset(l);
    for (size_t j = 0; j < out; ++j) b[j] = 0.0f;
  }
}

void mlp_forward(const MlpShape& shape, const float* params, const float* x, size_t rows, float* out, MlpTape* tape) {
  const size_t L = shape.layers();
  require(L >= 1, ErrorCode::Range, "an MLP needs at least one layer");
  MlpTape local;
  MlpTape& t = tape ? *tape : local;
  t.rows = rows;
  t.post.resize(L);
  const float* a = x;
  for (size_t l = 0; l < L; ++l) {
    const size_t in = shape.sizes[l], o = shape.sizes[l + 1];
    std::vector<float>& z = t.post[l];
    z.resize(rows * o);
    if (rows > 0) {
      broadcast_rows(params + shape.bias_offset(l), rows, o, z.data());
      sgemm(Trans::No, Trans::No, rows, o, in, 1.0f, a, in, params + shape.weight_offset(l), o, 1.0f, z.data(), o);
      apply_activation(shape.activation_of(l), z.data(), z.size());
    }
    a = z.data();
    // Without a tape only the previous activation is needed: free the older one.
    if (!tape && l >= 1) std::vector<float>().swap(t.post[l - 1]);
  }
  if (out) {
    const std::vector<float>& y = t.post[L - 1];
    for (size_t i = 0; i < y.size(); ++i) out[i] = y[i];
  }
}

void mlp_backward(const MlpShape& shape, const float* params, const float* x, const MlpTape& tape,
                  const float* grad_out, float* grad_params, float* grad_x, bool accumulate) {
  const size_t L = shape.layers();
  const size_t rows = tape.rows;
  require(tape.post.size() == L, ErrorCode::Shape, "mlp_backward: the tape is not from this MLP's forward pass");
  for (size_t l = 0; l < L; ++l)
    require(tape.post[l].size() == rows * shape.sizes[l + 1], ErrorCode::Shape,
            "mlp_backward: the tape is not from this MLP's forward pass");
  if (!accumulate)
    for (size_t i = 0, n = shape.param_count(); i < n; ++i) grad_params[i] = 0.0f;
  if (rows == 0) return;
  std::vector<float> dz, da(grad_out, grad_out + rows * shape.output_dim());
  for (size_t l = L; l-- > 0;) {
    const size_t in = shape.sizes[l], o = shape.sizes[l + 1];
    dz.resize(rows * o);
    activation_backward(shape.activation_of(l), tape.post[l].data(), da.data(), dz.data(), rows * o);
    const float* a_prev = l == 0 ? x : tape.post[l - 1].data();
    // dW += a_prevᵀ dz ; db += Σ_rows dz
    sgemm(Trans::Yes, Trans::No, in, o, rows, 1.0f, a_prev, in, dz.data(), o, 1.0f, grad_params + shape.weight_offset(l), o);
    float* db = grad_params + shape.bias_offset(l);
    std::vector<double> acc(o, 0.0);
    for (size_t r = 0; r < rows; ++r)
      for (size_t j = 0; j < o; ++j) acc[j] += dz[r * o + j];
    for (size_t j = 0; j < o; ++j) db[j] += static_cast<float>(acc[j]);
    // da_prev = dz Wᵀ
    if (l > 0 || grad_x) {
      float* dst;
      if (l > 0) {
        da.assign(rows * in, 0.0f);
        dst = da.data();
      } else {
        dst = grad_x;
      }
      sgemm(Trans::No, Trans::Yes, rows, in, o, 1.0f, dz.data(), o, params + shape.weight_offset(l), o, 0.0f, dst, in);
    }
  }
}

void AdamOptions::validate() const {
  require(std::isfinite(lr) && lr > 0, ErrorCode::Range, "Adam: the learning rate must be finite and > 0");
  require(std::isfinite(beta1) && beta1 >= 0 && beta1 < 1, ErrorCode::Range, "Adam: beta1 must be in [0, 1)");
  require(std::isfinite(beta2) && beta2 >= 0 && beta2 < 1, ErrorCode::Range, "Adam: beta2 must be in [0, 1)");
  require(std::isfinite(eps) && eps > 0, ErrorCode::Range, "Adam: eps must be finite and > 0");
  require(std::isfinite(weight_decay) && weight_decay >= 0, ErrorCode::Range, "Adam: weight decay must be finite and >= 0");
}

void adam_step(size_t n, float* params, const float* grad, float* m, float* v, uint64_t t, const AdamOptions& o) {
  require(t >= 1, ErrorCode::Range, "Adam: the step number is 1-based");
  const double c1 = 1.0 - std::pow(o.beta1, static_cast<double>(t));
  const double c2 = 1.0 - std::pow(o.beta2, static_cast<double>(t));
  const int nt = n >= kParallelElems ? num_threads() : 1;
  const std::ptrdiff_t N = static_cast<std::ptrdiff_t>(n);
#pragma omp parallel for num_threads(nt) schedule(static)
  for (std::ptrdiff_t i = 0; i < N; ++i) {
    const double g = grad[i];
    const double mi = o.beta1 * m[i] + (1.0 - o.beta1) * g;
    const double vi = o.beta2 * v[i] + (1.0 - o.beta2) * g * g;
    m[i] = static_cast<float>(mi);
    v[i] = static_cast<float>(vi);
    const double p = params[i];
    params[i] = static_cast<float>(p - o.lr * ((mi / c1) / (std::sqrt(vi / c2) + o.eps) + o.weight_decay * p));
  }
}

Adam::Adam(size_t n, AdamOptions o) : o_(o), m_(n, 0.0f), v_(n, 0.0f) { o_.validate(); }

void Adam::step(float* params, const float* grad) {
  ++t_;
  adam_step(m_.size(), params, grad, m_.data(), v_.data(), t_, o_);
}

Mlp::Mlp(MlpShape shape, uint64_t seed) : shape_(std::move(shape)) {
  shape_.validate();
  params_.resize(shape_.param_count());
  grad_.assign(params_.size(), 0.0f);
  mlp_init_xavier(shape_, params_.data(), seed);
}

const float* Mlp::forward(const float* x, size_t rows) {
  mlp_forward(shape_, params_.data(), x, rows, nullptr, &tape_);
  return tape_.post.back().data();
}

void Mlp::backward(const float* x, const float* grad_out, bool accumulate, float* grad_x) {
  mlp_backward(shape_, params_.data(), x, tape_, grad_out, grad_.data(), grad_x, accumulate);
}

}  // namespace tersor
