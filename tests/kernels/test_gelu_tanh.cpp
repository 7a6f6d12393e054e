// The fused tanh GELU against the exact tanh (double precision) and the op-by-op formula it
// replaces: its tanh within 2 ulp, its output within float rounding of ATen's, its gradient
// within 1e-5 of autograd's, and through GPT-2 and Gemma 2 in training.
#include "hftrain/builtins.h"
#include "hftrain/kernels/fusions.h"
#include "hftrain/kernels/gelu_tanh.h"
#include "hftrain/models/gelu_new.h"
#include "compare.h"
#include "test_util.h"

#include <ATen/Functions.h>
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

using hftrain::test::check_fusion_in_training;
using hftrain::test::grad_close;

namespace {

// Floats in order as integers: the distance is the number of floats between a and b.
int64_t ordered(float f) {
  int32_t i;
  std::memcpy(&i, &f, sizeof i);
  return i < 0 ? -static_cast<int64_t>(i & 0x7fffffff) : i;
}
int64_t ulp_distance(float a, float b) { return std::llabs(ordered(a) - ordered(b)); }

}  // namespace

TEST_CASE("the vectorized tanh is within 2 ulp of the exact tanh over the whole float range", "[unit][kernels]") {
  int64_t worst = 0;
  float worst_at = 0;
  // Every 97th float from 1e-38 up to where tanh is 1, both signs, and the points around the
  // switch from the series to the exponential (0.625).
  std::vector<float> points = {0.0f, 0.625f, std::nextafter(0.625f, 0.0f), std::nextafter(0.625f, 1.0f), 9.0f,
                               10.0f, 11.0f, 1e30f};
  for (int32_t bits = 0x00800000; bits < 0x41400000; bits += 97) {
    float f;
    std::memcpy(&f, &bits, sizeof f);
    points.push_back(f);
  }
  for (float p : points)
    for (float u : {p, -p}) {
      const float exact = static_cast<float>(std::tanh(static_cast<double>(u)));
      const float got = hftrain::tanh_vectorizable(u);
      const int64_t d = ulp_distance(got, exact);
      if (d > worst) worst = d, worst_at = u;
      if (std::signbit(got) != std::signbit(exact)) FAIL("sign of tanh(" << u << ")");
    }
  INFO("worst at " << worst_at);
  CHECK(worst <= 2);
  CHECK(hftrain::tanh_vectorizable(std::numeric_limits<float>::infinity()) == 1.0f);
  CHECK(hftrain::tanh_vectorizable(-std::numeric_limits<float>::infinity()) == -1.0f);
  CHECK(std::isnan(hftrain::tanh_vectorizable(std::numeric_limits<float>::quiet_NaN())));
  CHECK(std::signbit(hftrain::tanh_vectorizable(-0.0f)));
}

TEST_CASE("the fused tanh GELU equals ATen's formula within float rounding, forward and backward",
          "[unit][kernels]") {
  at::manual_seed(11);
  // Activations at several scales, a size that leaves a partial chunk per thread, and the tails.
  at::Tensor x = at::cat({at::randn({70001}) * 3, at::randn({1000}) * 1e-3, at::randn({1000}) * 30,
                          at::tensor({0.0f, -0.0f, 1e-30f, -1e-30f, 0.7f, -0.7f, 100.0f, -100.0f})});
  const at::Tensor reference = hftrain::gelu_new_reference(x);
  const at::Tensor aten_tanh = at::gelu(x, "tanh");
  const at::Tensor fused = hftrain::gelu_tanh_fused(x);
  // Where y is near 0 for negative x, (1 + tanh) cancels: the error is bounded by |x| times
  // tanh's rounding, for ATen's formula as for this one.
  const at::Tensor bound = x.abs() * 3e-7 + 1e-38;
  CHECK(((fused - reference).abs() <= bound).all().item<bool>());
  CHECK(((fused - aten_tanh).abs() <= bound).all().item<bool>());

  const at::Tensor g = at::randn_like(x);
  at::Tensor a = x.clone().requires_grad_(true), b = x.clone().requires_grad_(true);
  (hftrain::gelu_tanh_fused(a) * g).sum().backward();
  (hftrain::gelu_new_reference(b) * g).sum().backward();
  CHECK(grad_close(a.grad(), b.grad()));
}

TEST_CASE("in training, the fused GELU gives GPT-2 and Gemma 2 the unfused loss and parameter gradients",
          "[unit][kernels][models]") {
  hftrain::register_builtins();
  check_fusion_in_training({"gpt2-clm", "gemma2-clm"}, &hftrain::Fusions::gelu);
}
