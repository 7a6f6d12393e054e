// How the fused kernels' tests compare a result with the unfused path's.
#pragma once

#include <ATen/Functions.h>
#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>

#include <algorithm>

namespace hftrain::test {

// max |a - b| / max |b|: the largest difference relative to the reference's scale.
inline double rel_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>() / std::max(b.abs().max().item<double>(), 1e-30);
}

// Gradients: within 1e-5 of the reference's scale, or 1e-8 absolute where the true gradient is
// zero and both are rounding (a key bias: softmax ignores what shifts a whole row of scores).
inline bool grad_close(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>() <= 1e-5 * b.abs().max().item<double>() + 1e-8;
}

}  // namespace hftrain::test
