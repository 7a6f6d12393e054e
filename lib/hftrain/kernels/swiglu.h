// SwiGLU's gate, silu(a) * b (the Llama family's MLP: silu(gate_proj(x)) * up_proj(x)), in one
// pass forward and one backward on every core (cpu_threads.h), float32.
//
// As ATen ops it is silu then mul, and autograd keeps silu(a) for the product's backward: a
// (tokens x intermediate) tensor per layer, on SmolLM2-360M 21 MB a layer at 2048 tokens. Here
// only a and b are kept, and silu(a) is made again in backward. The sigmoid uses hftrain's own
// vectorized exp (kernels/vec_exp.h), so results agree with ATen's silu within float rounding.
#pragma once

#include <ATen/core/Tensor.h>

namespace hftrain {

// silu(a) * b for a and b of the same shape, (..., I), each row's I elements side by side (the
// two halves of a packed gate_up projection are fine); the fused kernel where it applies (the
// `swiglu` fusion on, a training forward, float32 CPU tensors, no autocast), else ATen's ops.
at::Tensor swiglu(const at::Tensor& a, const at::Tensor& b);

// The fused kernel itself, whatever the switches (for tests).
at::Tensor swiglu_fused(const at::Tensor& a, const at::Tensor& b);

}  // namespace hftrain
