#include "hftrain/kernels/linear.h"

#include "hftrain/core/torch_compat.h"
#include "hftrain/kernels/blas.h"
#include "hftrain/kernels/cpu_threads.h"
#include "hftrain/kernels/fusions.h"

#include <ATen/Functions.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/custom_function.h>

namespace hftrain {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// x2 (N, in) against weight as stored: the (N, out) product, with the bias when it has one.
at::Tensor project(const at::Tensor& x2, const at::Tensor& weight, const at::Tensor& bias, bool in_out) {
  const at::Tensor w = in_out ? weight : weight.t();  // (in, out)
  return bias.defined() && bias.numel() ? at::addmm(bias, x2, w) : at::mm(x2, w);
}

class SideBySideLinearFn : public torch::autograd::Function<SideBySideLinearFn> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const at::Tensor& bias, bool in_out) {
    const at::Tensor x2 = x.reshape({-1, x.size(-1)});
    std::vector<int64_t> size_out = x.sizes().vec();
    size_out.back() = weight.size(in_out ? 1 : 0);
    ctx->save_for_backward({x2, weight});
    ctx->saved_data["in_out"] = in_out;
    ctx->saved_data["bias"] = bias.numel() != 0;
    ctx->saved_data["x_sizes"] = x.sizes().vec();
    return project(x2, weight, bias, in_out).view(size_out);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &x2 = saved[0], &weight = saved[1];
    const bool in_out = ctx->saved_data["in_out"].toBool(), has_bias = ctx->saved_data["bias"].toBool();
    const at::Tensor g = grads[0].reshape({x2.size(0), -1});  // (N, out)
    const bool want_x = ctx->needs_input_grad(0), want_w = ctx->needs_input_grad(1),
               want_b = has_bias && ctx->needs_input_grad(2);
    // The results are allocated here, on the calling thread, so that they come from its malloc
    // arena rather than a worker's (each arena keeps its own freed memory).
    const auto opts = g.options();
    at::Tensor dx = want_x ? at::empty({x2.size(0), x2.size(1)}, opts) : at::Tensor();
    at::Tensor dw = want_w ? at::empty(weight.sizes(), opts) : at::Tensor();
    at::Tensor db = want_b ? at::empty({g.size(1)}, opts) : at::Tensor();
    // Grad mode is per thread: a worker's is on, and out= products refuse to run under it.
    const auto input_grad = [&] {
      at::NoGradGuard no_grad;
      at::mm_out(dx, g, in_out ? weight.t() : weight);
    };
    const auto weight_grads = [&] {
      at::NoGradGuard no_grad;
      if (want_w) in_out ? at::mm_out(dw, x2.t(), g) : at::mm_out(dw, g.t(), x2);
      if (want_b) at::sum_out(db, g, {0});
    };
    if (want_x && (want_w || want_b)) {
      BlasOnOneThread one;
      if (one.ok()) {
        cpu_parallel_for(2, 1, [&](int64_t begin, int64_t) { begin == 0 ? input_grad() : weight_grads(); });
      } else {
        input_grad();
        weight_grads();
      }
    } else {
      if (want_x) input_grad();
      weight_grads();
    }
    if (want_x) dx = dx.view(ctx->saved_data["x_sizes"].toIntVector());
    return {dx, dw, db, at::Tensor()};
  }
};

}  // namespace

at::Tensor linear_side_by_side(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                               bool weight_in_out) {
  // An empty tensor stands for no bias: autograd functions take defined tensors only.
  return SideBySideLinearFn::apply(x, weight, bias.defined() ? bias : at::empty({0}, weight.options()),
                                   weight_in_out);
}

at::Tensor linear_layer(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, bool weight_in_out) {
  const bool fused = fusions().linear && loss_only() && cpu_threads() == 2 && !compat::cpu_autocast_enabled() &&
                     x.device().is_cpu() &&
                     x.scalar_type() == at::kFloat && weight.scalar_type() == at::kFloat && weight.requires_grad() &&
                     (!bias.defined() || bias.scalar_type() == at::kFloat);
  if (fused) return linear_side_by_side(x, weight, bias, weight_in_out);
  if (!weight_in_out) return at::linear(x, weight, bias);
  std::vector<int64_t> size_out = x.sizes().vec();
  size_out.back() = weight.size(1);
  return project(x.reshape({-1, x.size(-1)}), weight, bias, true).view(size_out);
}

}  // namespace hftrain
