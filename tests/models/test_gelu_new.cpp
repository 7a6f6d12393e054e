// The fused gelu_new against NewGELUActivation's formula run op by op through ATen (the
// operations transformers runs): the same output bits, and gradients that agree with
// autograd's to float rounding.
#include "hftrain/models/gelu_new.h"

#include <ATen/Functions.h>
#include <catch2/catch.hpp>
#include <torch/csrc/autograd/autograd.h>

TEST_CASE("gelu_new's fused float32 path gives the formula's bits, and its gradient", "[models][unit]") {
  at::manual_seed(5);
  at::Tensor x = at::cat({at::randn({4099}).mul(3), at::tensor({0.0f, -0.0f, 20.0f, -20.0f, 1e-20f, -7.5f, 3.0e4f})});
  x = x.view({-1, 1}).repeat({1, 3}).t().contiguous().set_requires_grad(true);  // 2-D, 3 x 4106
  at::Tensor xr = x.detach().clone().set_requires_grad(true);
  at::Tensor y = hftrain::gelu_new(x), yr = hftrain::gelu_new_reference(xr);
  CHECK(at::equal(y, yr));
  at::Tensor g = at::randn_like(y);
  y.backward(g);
  yr.backward(g);
  CHECK(at::allclose(x.grad(), xr.grad(), 1e-5, 1e-6));
  CHECK_FALSE(at::equal(x.grad(), at::zeros_like(x)));
  // A strided input, and other dtypes, which take the op-by-op path.
  at::Tensor s = at::randn({8, 6}).t();
  CHECK(at::equal(hftrain::gelu_new(s), hftrain::gelu_new_reference(s)));
  at::Tensor d = at::randn({16}, at::kDouble);
  CHECK(at::equal(hftrain::gelu_new(d), hftrain::gelu_new_reference(d)));
}
