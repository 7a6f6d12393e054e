#include "hftrain/models/gelu_new.h"

#include "hftrain/kernels/fusions.h"
#include "hftrain/kernels/gelu_tanh.h"

#include <ATen/Functions.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>

namespace hftrain {

namespace {

constexpr int64_t kGrain = 32768;

// u = sqrt(2/pi) * (x + 0.044715 * x^3), as ATen's pow (x*x*x), mul, add, mul compute it.
at::Tensor inner(const at::Tensor& x) {
  at::Tensor u = at::empty_like(x);
  const float* px = x.data_ptr<float>();
  float* pu = u.data_ptr<float>();
  at::parallel_for(0, x.numel(), kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const float v = px[i];
      const float cube = v * v * v;
      pu[i] = (v + cube * kGeluCube) * kGeluScale;
    }
  });
  return u;
}

class GeluNewFn : public torch::autograd::Function<GeluNewFn> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& input) {
    at::Tensor x = input.contiguous();
    at::Tensor t = at::tanh(inner(x));
    at::Tensor y = at::empty_like(x);
    const float *px = x.data_ptr<float>(), *pt = t.data_ptr<float>();
    float* py = y.data_ptr<float>();
    at::parallel_for(0, x.numel(), kGrain, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) py[i] = (px[i] * 0.5f) * (pt[i] + 1.0f);
    });
    ctx->save_for_backward({x, t});
    return y;
  }

  // dy/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::Tensor& t = saved[1];
    at::Tensor g = grads[0].contiguous();
    at::Tensor dx = at::empty_like(x);
    const float *px = x.data_ptr<float>(), *pt = t.data_ptr<float>(), *pg = g.data_ptr<float>();
    float* pdx = dx.data_ptr<float>();
    at::parallel_for(0, x.numel(), kGrain, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const float v = px[i], th = pt[i];
        const float du = kGeluScale * (1.0f + 3.0f * kGeluCube * v * v);
        pdx[i] = pg[i] * (0.5f * (1.0f + th) + 0.5f * v * (1.0f - th * th) * du);
      }
    });
    return {dx};
  }
};

// The fused kernel (kernels/gelu_tanh.h): one pass each way on every core, keeping only the
// input for backward.
class GeluTanhFusedFn : public torch::autograd::Function<GeluTanhFusedFn> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& input) {
    at::Tensor x = input.contiguous();
    at::Tensor y = at::empty_like(x);
    gelu_tanh_forward(x.data_ptr<float>(), y.data_ptr<float>(), x.numel());
    ctx->save_for_backward({x});
    return y;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const at::Tensor x = ctx->get_saved_variables()[0];
    at::Tensor g = grads[0].contiguous();
    at::Tensor dx = at::empty_like(x);
    gelu_tanh_backward(x.data_ptr<float>(), g.data_ptr<float>(), dx.data_ptr<float>(), x.numel());
    return {dx};
  }
};

// In the Trainer's training forwards (as the other fusions), float32 on the CPU.
bool fused_applies(const at::Tensor& x) {
  return fusions().gelu && loss_only() && x.device().is_cpu() && x.scalar_type() == at::kFloat;
}

}  // namespace

at::Tensor gelu_tanh_fused(const at::Tensor& x) { return GeluTanhFusedFn::apply(x); }

at::Tensor gelu_pytorch_tanh(const at::Tensor& x) {
  return fused_applies(x) ? GeluTanhFusedFn::apply(x) : at::gelu(x, "tanh");
}

at::Tensor gelu_new_reference(const at::Tensor& x) {
  return x.mul(0.5).mul(at::tanh(x.add(at::pow(x, 3.0).mul(0.044715)).mul(std::sqrt(2.0 / M_PI))).add(1.0));
}

at::Tensor gelu_new(const at::Tensor& x) {
  if (fused_applies(x)) return GeluTanhFusedFn::apply(x);
  if (!x.device().is_cpu() || x.scalar_type() != at::kFloat) return gelu_new_reference(x);
  return GeluNewFn::apply(x);
}

}  // namespace hftrain
