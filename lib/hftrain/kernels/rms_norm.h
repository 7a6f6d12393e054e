// RMSNorm (LlamaRMSNorm, and Gemma2RMSNorm with its 1 + weight) in one pass forward and one
// backward over memory, on every core (cpu_threads.h), float32.
//
// transformers computes it as six ATen ops forward (pow, mean, add, rsqrt, mul, mul), each a
// pass over the activations on LibTorch's one thread here, and autograd's backward as about a
// dozen more. Forward here keeps the input and each row's 1 / rms; backward makes
//   dx = rstd (gw - x^ mean(gw x^)), gw = g (w + offset), x^ = x rstd, dw = sum over rows g x^
// with the weight's gradient summed per fixed block of rows and then over the blocks in order,
// so the result does not depend on the thread count. The sums run in another order than
// ATen's, so results agree with the op-by-op formula within float rounding.
#pragma once

#include <ATen/core/Tensor.h>

namespace hftrain {

// x (..., C) float32, weight (C): x * rsqrt(mean(x^2) + eps) * (weight + weight_offset)
// (offset 0: Llama's; 1: Gemma 2's), by the fused kernel where it applies (the `norm` fusion on,
// a training forward, float32 CPU tensors, no autocast); elsewhere an undefined tensor, and the
// caller computes transformers' op-by-op formula.
at::Tensor rms_norm_fused_or_undefined(const at::Tensor& x, const at::Tensor& weight, double eps,
                                       double weight_offset);

// The fused kernel itself, whatever the switches (for tests).
at::Tensor rms_norm_fused(const at::Tensor& x, const at::Tensor& weight, double eps, double weight_offset);

}  // namespace hftrain
