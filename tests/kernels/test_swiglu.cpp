// The fused SwiGLU gate against ATen's silu(a) * b: output within float rounding, gradients
// within 1e-5 relative, for separate projections and the halves of a packed one (Phi-3), and
// through whole models in training.
#include "hftrain/builtins.h"
#include "hftrain/kernels/fusions.h"
#include "hftrain/kernels/swiglu.h"
#include "compare.h"
#include "test_util.h"

#include <ATen/Functions.h>
#include <catch2/catch.hpp>

using hftrain::test::check_fusion_in_training;
using hftrain::test::grad_close;
using hftrain::test::rel_diff;

TEST_CASE("the fused SwiGLU gate gives ATen's silu(a) * b and its gradients, separate or packed", "[unit][kernels]") {
  at::manual_seed(31);
  // Gates from -100 to 100 (the sigmoid's both tails), 37 wide (not a multiple of the lanes).
  const at::Tensor gu0 = at::cat({at::linspace(-100, 100, 3 * 11 * 37).view({3, 11, 37}), at::randn({3, 11, 37})}, -1);
  const at::Tensor g = at::randn({3, 11, 37});
  for (bool packed : {false, true}) {
    INFO((packed ? "halves of one packed tensor" : "separate tensors"));
    at::Tensor ref_in = gu0.clone().requires_grad_(), in = gu0.clone().requires_grad_();
    const auto halves = [&](const at::Tensor& t) -> std::pair<at::Tensor, at::Tensor> {
      if (packed) return {t.slice(-1, 0, 37), t.slice(-1, 37)};
      return {t.slice(-1, 0, 37).contiguous(), t.slice(-1, 37).contiguous()};
    };
    const auto [ra, rb] = halves(ref_in);
    const at::Tensor ref = at::silu(ra).mul(rb);
    ref.backward(g);
    const auto [a, b] = halves(in);
    const at::Tensor out = hftrain::swiglu_fused(a, b);
    CHECK(out.sizes() == ref.sizes());
    CHECK(rel_diff(out, ref) <= 1e-6);
    out.backward(g);
    CHECK(grad_close(in.grad(), ref_in.grad()));
  }
}

TEST_CASE("in training, the fused SwiGLU gate gives the Llama family the unfused loss and parameter gradients",
          "[unit][kernels][models]") {
  hftrain::register_builtins();
  check_fusion_in_training({"llama-clm", "phi3-clm", "qwen2-clm"}, &hftrain::Fusions::swiglu);
}
