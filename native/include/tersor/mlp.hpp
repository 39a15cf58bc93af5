// A small, generic multilayer perceptron with batched forward and backward passes and an Adam
// optimiser: the critic networks of the neural mutual-information bounds (tersor/neural_mi.hpp), and
// anything else that needs a small trainable network.
//
// Layout. An MLP of `sizes = {in, h_1, ..., h_{L-1}, out}` has L dense layers; layer l maps
// sizes[l] -> sizes[l+1] as  z_l = a_{l-1} W_l + b_l,  a_l = act_l(z_l),  with a_{-1} = x. act_l is the
// hidden activation for l < L-1 and the output activation for the last layer. All parameters live in
// one flat f32 vector, layer by layer: W_0 (sizes[0] x sizes[1], row-major: W[i * out + j] is the
// weight from input i to output j), b_0 (sizes[1]), W_1, b_1, ... Batches are row-major
// (rows x features). Matrix products go through tersor::sgemm (f32 accumulation); bias gradients
// and the bound/loss sums of callers are accumulated in f64.
//
// Initialisation (mlp_init_xavier): Glorot/Xavier uniform, W ~ U(-a, a) with a = sqrt(6 / (in + out)),
// drawn from tersor::Rng(seed) layer by layer in storage order as (2 u - 1) a with u = next_f64();
// biases are zero. The same seed gives the same network on every machine.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace tersor {

/// Element-wise activations. ELU uses alpha = 1: x for x > 0, exp(x) - 1 otherwise.
enum class Activation : uint8_t { Identity, ReLU, ELU, Tanh };

/// "identity", "relu", "elu", "tanh"; anything else throws ErrorCode::Range.
Activation parse_activation(const std::string& name);
const char* activation_name(Activation a);

/// The architecture of an MLP (no parameters).
struct MlpShape {
  std::vector<size_t> sizes;  // {in, hidden..., out}: at least 2 entries, all >= 1
  Activation hidden = Activation::ReLU;
  Activation output = Activation::Identity;

  size_t layers() const { return sizes.size() < 2 ? 0 : sizes.size() - 1; }
  size_t input_dim() const { return sizes.empty() ? 0 : sizes.front(); }
  size_t output_dim() const { return sizes.empty() ? 0 : sizes.back(); }
  /// Total number of weights and biases.
  size_t param_count() const;
  /// Offsets of W_l and b_l in the flat parameter vector.
  size_t weight_offset(size_t l) const;
  size_t bias_offset(size_t l) const;
  /// Activation applied after layer l.
  Activation activation_of(size_t l) const { return l + 1 == layers() ? output : hidden; }
  /// Throws ErrorCode::Range when there are fewer than 2 sizes, a zero size, or too many parameters.
  void validate() const;
};

/// What a forward pass keeps for the backward pass: the activations a_l of every layer (the
/// derivatives of all four activations are functions of their outputs).
struct MlpTape {
  size_t rows = 0;
  std::vector<std::vector<float>> post;  // post[l]: rows x sizes[l+1]; post[L-1] is the output
};

/// Glorot-uniform weights and zero biases into `params` (shape.param_count() values).
void mlp_init_xavier(const MlpShape& shape, float* params, uint64_t seed);

/// out (rows x out_dim) = MLP(x) for x (rows x in_dim). With a tape, the activations are kept in it
/// (then `out` may be null: the output is tape->post.back()).
void mlp_forward(const MlpShape& shape, const float* params, const float* x, size_t rows, float* out,
                 MlpTape* tape = nullptr);

/// Backward pass of the forward that filled `tape` (same params and x): given dL/d(out)
/// (rows x out_dim), writes dL/d(params) into grad_params (or adds to it when `accumulate`) and,
/// when grad_x is non-null, dL/dx (rows x in_dim).
void mlp_backward(const MlpShape& shape, const float* params, const float* x, const MlpTape& tape,
                  const float* grad_out, float* grad_params, float* grad_x = nullptr, bool accumulate = false);

/// Adam (Kingma & Ba 2015) with bias correction; weight_decay > 0 gives decoupled decay (AdamW):
///   m = b1 m + (1 - b1) g,  v = b2 v + (1 - b2) g^2,  m^ = m / (1 - b1^t),  v^ = v / (1 - b2^t),
///   p -= lr (m^ / (sqrt(v^) + eps) + weight_decay p)
/// computed in f64 per element, stored in f32.
struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  /// Throws ErrorCode::Range unless lr > 0, 0 <= beta < 1, eps > 0, weight_decay >= 0 (all finite).
  void validate() const;
};

/// One Adam step on caller-held state: t is the 1-based number of this step.
void adam_step(size_t n, float* params, const float* grad, float* m, float* v, uint64_t t, const AdamOptions& o);

/// Adam with its own moment buffers.
class Adam {
 public:
  Adam(size_t n, AdamOptions o);
  void step(float* params, const float* grad);
  uint64_t steps() const { return t_; }
  const AdamOptions& options() const { return o_; }

 private:
  AdamOptions o_;
  std::vector<float> m_, v_;
  uint64_t t_ = 0;
};

/// An MLP that owns its parameters, gradient buffer and tape.
class Mlp {
 public:
  Mlp(MlpShape shape, uint64_t seed);
  const MlpShape& shape() const { return shape_; }
  std::vector<float>& params() { return params_; }
  const std::vector<float>& params() const { return params_; }
  std::vector<float>& grad() { return grad_; }
  /// Forward keeping the tape; returns the output (rows x out_dim), valid until the next forward.
  const float* forward(const float* x, size_t rows);
  /// Backward of the last forward (x must be the same array); adds to grad() when `accumulate`.
  void backward(const float* x, const float* grad_out, bool accumulate = false, float* grad_x = nullptr);

 private:
  MlpShape shape_;
  std::vector<float> params_, grad_;
  MlpTape tape_;
};

}  // namespace tersor
