// The fused RMSNorm against transformers' formula op by op (LlamaRMSNorm, Gemma2RMSNorm):
// output within float rounding, gradients within 1e-5 relative, through whole models too.
#include "hftrain/builtins.h"
#include "hftrain/kernels/fusions.h"
#include "hftrain/kernels/rms_norm.h"
#include "compare.h"
#include "test_util.h"

#include <ATen/Functions.h>
#include <catch2/catch.hpp>

using hftrain::test::check_fusion_in_training;
using hftrain::test::grad_close;
using hftrain::test::rel_diff;

TEST_CASE("the fused RMSNorm gives transformers' output and gradients, Llama's weight and Gemma 2's 1 + weight",
          "[unit][kernels]") {
  at::manual_seed(21);
  // 150 rows: more than two blocks of rows, the last one partial; 37 wide: not a multiple of the lanes.
  const at::Tensor x0 = at::randn({3, 50, 37}).mul(3.0), w0 = at::randn({37}), g = at::randn({3, 50, 37});
  const double eps = 1e-6;
  for (double offset : {0.0, 1.0}) {
    INFO("weight offset " << offset);
    at::Tensor x = x0.clone().requires_grad_(), w = w0.clone().requires_grad_();
    const at::Tensor ref = x.mul(at::rsqrt(x.pow(2).mean(-1, true).add(eps))).mul(w.add(offset));
    ref.backward(g);
    at::Tensor xf = x0.clone().requires_grad_(), wf = w0.clone().requires_grad_();
    const at::Tensor out = hftrain::rms_norm_fused(xf, wf, eps, offset);
    CHECK(rel_diff(out, ref) <= 1e-6);
    out.backward(g);
    CHECK(grad_close(xf.grad(), x.grad()));
    CHECK(grad_close(wf.grad(), w.grad()));
  }
}

TEST_CASE("in training, the fused RMSNorm gives the Llama family and Gemma 2 the unfused loss and parameter gradients",
          "[unit][kernels][models]") {
  hftrain::register_builtins();
  check_fusion_in_training({"llama-clm", "qwen2-clm", "gemma2-clm"}, &hftrain::Fusions::norm);
}
