// A linear layer whose backward runs its two products side by side, one per core.
//
// Backward of y = x W^T + b makes dX = dY W and dW = dY^T X (and db = the column sums of dY):
// two independent products. Through autograd they run one after the other, each split by
// OpenBLAS across the cores, and on two cores a product of a training step's shapes (2048 rows,
// 256 to 1024 wide) reaches 175-195 GFLOP/s that way, against 102-106 for one core alone
// (bench_step's machine). Here each product runs whole on a core of its own, both at once, on
// cpu_threads(). The products are the same sgemm calls over the same operands, each on one
// thread, so the results are those of the sequential path.
//
// Applies on exactly two cores (cpu_threads() == 2) with OpenBLAS, float32 CPU tensors, in
// training forwards (LossOnlyScope) with the `linear` fusion on, without autocast (bf16), and when both gradients are
// wanted (a frozen weight, as under LoRA, leaves one product); elsewhere the plain ATen ops.
// With more cores, one product split across all of them does better than two on one each.
#pragma once

#include <ATen/core/Tensor.h>

namespace hftrain {

// x (..., in) -> (..., out). weight [out, in] (nn.Linear) or, with weight_in_out, [in, out]
// (transformers' Conv1D); bias (out) or undefined.
at::Tensor linear_layer(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, bool weight_in_out);

// The fused function itself, whatever the switches and the core count (for tests).
at::Tensor linear_side_by_side(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                               bool weight_in_out);

}  // namespace hftrain
