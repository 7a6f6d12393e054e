// The tanh-approximated GELU of GPT-2 ("gelu_new") and Gemma/Phi ("gelu_pytorch_tanh"; the same
// formula), 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), forward and backward, each in one
// pass over memory on every core (cpu_threads.h), float32.
//
// The tanh is hftrain's own, vectorized (AVX-512 / AVX2 / baseline clones picked at run time):
// Debian's LibTorch computes tanh one element at a time through libm (13 ns an element on a
// Zen 5, a quarter of a small GPT-2's step). It is within 2 ulp of the exact tanh, so the GELU
// agrees with ATen's op-by-op formula within float rounding (tests/kernels/test_gelu_tanh.cpp),
// though not bit for bit; that is why it is a fusion (`fused: {gelu: false}` gives ATen's).
// No floating-point contraction: every CPU gets the same bits.
#pragma once

#include <cstdint>

namespace hftrain {

// The float constants the formula multiplies by (as ATen casts the doubles 0.044715 and sqrt(2/pi)).
inline constexpr float kGeluCube = static_cast<float>(0.044715);
inline constexpr float kGeluScale = static_cast<float>(0.79788456080286535588);

float tanh_vectorizable(float u);  // one element, for tests

// y = gelu(x); n elements.
void gelu_tanh_forward(const float* x, float* y, int64_t n);
// dx = g * gelu'(x); the forward's tanh is recomputed, not stored.
void gelu_tanh_backward(const float* x, const float* g, float* dx, int64_t n);

}  // namespace hftrain
