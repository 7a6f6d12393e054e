// The linear layer whose backward runs its two products side by side, against ATen's linear
// and addmm (what nn.Linear and transformers' Conv1D compute): the same output, the same
// gradients within float rounding, and only the gradients asked for.
#include "hftrain/builtins.h"
#include "hftrain/core/torch_compat.h"
#include "hftrain/kernels/fusions.h"
#include "hftrain/kernels/linear.h"
#include "compare.h"
#include "test_util.h"

#include <ATen/Functions.h>
#include <catch2/catch.hpp>

using hftrain::test::check_fusion_in_training;
using hftrain::test::grad_close;

TEST_CASE("the side-by-side linear layer gives ATen's output and gradients, stored either way, with or without bias",
          "[unit][kernels]") {
  at::manual_seed(11);
  const at::Tensor x0 = at::randn({3, 7, 24}), g = at::randn({3, 7, 40});
  const at::Tensor w_out_in = at::randn({40, 24}), b0 = at::randn({40});
  for (bool in_out : {false, true})
    for (bool with_bias : {false, true}) {
      INFO((in_out ? "Conv1D [in, out]" : "Linear [out, in]") << (with_bias ? ", bias" : ", no bias"));
      const at::Tensor w0 = in_out ? w_out_in.t().contiguous() : w_out_in;
      at::Tensor x = x0.clone().requires_grad_(), w = w0.clone().requires_grad_(), b = b0.clone().requires_grad_();
      const at::Tensor ref = in_out ? at::addmm(with_bias ? b : at::zeros({40}), x.reshape({-1, 24}), w).view({3, 7, 40})
                                    : at::linear(x, w, with_bias ? b : at::Tensor());
      ref.backward(g);
      at::Tensor xf = x0.clone().requires_grad_(), wf = w0.clone().requires_grad_(), bf = b0.clone().requires_grad_();
      const at::Tensor out = hftrain::linear_side_by_side(xf, wf, with_bias ? bf : at::Tensor(), in_out);
      CHECK(out.sizes() == ref.sizes());
      CHECK(at::allclose(out, ref, 1e-6, 1e-6));
      out.backward(g);
      CHECK(grad_close(xf.grad(), x.grad()));
      CHECK(grad_close(wf.grad(), w.grad()));
      if (with_bias) CHECK(grad_close(bf.grad(), b.grad()));
      if (!with_bias) CHECK(!bf.grad().defined());
    }
}

TEST_CASE("the side-by-side linear layer makes only the gradients asked for (a frozen weight, a constant input)",
          "[unit][kernels]") {
  at::manual_seed(12);
  const at::Tensor x0 = at::randn({5, 8}), w0 = at::randn({6, 8}), b0 = at::randn({6}), g = at::randn({5, 6});
  SECTION("frozen weight and bias: the input's gradient alone") {
    at::Tensor x = x0.clone().requires_grad_();
    hftrain::linear_side_by_side(x, w0, b0, false).backward(g);
    CHECK(grad_close(x.grad(), at::mm(g, w0)));
  }
  SECTION("an input without gradient: the weight's and the bias's") {
    at::Tensor w = w0.clone().requires_grad_(), b = b0.clone().requires_grad_();
    hftrain::linear_side_by_side(x0, w, b, false).backward(g);
    CHECK(grad_close(w.grad(), at::mm(g.t(), x0)));
    CHECK(grad_close(b.grad(), g.sum(0)));
  }
}

TEST_CASE("in training, the side-by-side linear layers give GPT-2 and Llama the plain loss and parameter gradients",
          "[unit][kernels][models]") {
  hftrain::register_builtins();
  check_fusion_in_training({"gpt2-clm", "llama-clm"}, &hftrain::Fusions::linear);
}

TEST_CASE("under bf16 autocast a linear layer is autocast's, fused or not", "[unit][kernels]") {
  at::manual_seed(13);
  const at::Tensor x0 = at::randn({4, 16}), w0 = at::randn({8, 16}), b0 = at::randn({8});
  at::Tensor x = x0.clone().requires_grad_(), w = w0.clone().requires_grad_(), b = b0.clone().requires_grad_();
  at::Tensor ref;
  {
    hftrain::compat::AutocastGuard autocast(c10::DeviceType::CPU, at::kBFloat16);
    ref = at::linear(x0, w0, b0);
    hftrain::LossOnlyScope training;
    const at::Tensor out = hftrain::linear_layer(x, w, b, false);
    CHECK(out.scalar_type() == at::kBFloat16);
    CHECK(at::equal(out, ref));
    out.sum().backward();
  }
  CHECK(w.grad().scalar_type() == at::kFloat);
  CHECK(x.grad().defined());
}
