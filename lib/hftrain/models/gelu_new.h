// transformers' NewGELUActivation (GPT-2's "gelu_new"):
//   0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))
// On float32 CPU tensors it runs as two fused passes around ATen's tanh, with the same float
// operations in the same order as the eight separate ops, so the output is bit for bit
// transformers'; backward is one pass over the saved input and tanh instead of autograd's
// chain of about fifteen ops (the gradient agrees to float rounding). Other dtypes and
// devices run the formula op by op. In the Trainer's training forwards (loss_only()) the fused
// kernel (kernels/gelu_tanh.h, `fused: {gelu: ...}`) runs instead.
#pragma once

#include <ATen/core/Tensor.h>

namespace hftrain {

at::Tensor gelu_new(const at::Tensor& x);
at::Tensor gelu_new_reference(const at::Tensor& x);  // the formula, op by op
// transformers' "gelu_pytorch_tanh" (torch's gelu(approximate="tanh"), the same formula):
// ATen's, or the fused kernel in training forwards as gelu_new.
at::Tensor gelu_pytorch_tanh(const at::Tensor& x);
// The fused kernel itself (float32 CPU tensors), for tests.
at::Tensor gelu_tanh_fused(const at::Tensor& x);

}  // namespace hftrain
