#include "hftrain/kernels/gelu_tanh.h"

#include "hftrain/kernels/cpu_threads.h"
#include "hftrain/kernels/vec_exp.h"

#include <algorithm>
#include <cmath>

// Every function here is compiled without contraction into fused multiply-adds, so that the
// clones for different instruction sets give the same results.
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")

namespace hftrain {

namespace {

constexpr int64_t kGeluGrain = 16384;  // elements a thread takes at a time (64 KiB of each array)

// tanh: below |u| = 0.625 its Taylor series to u^23 (truncation < 3e-10 relative); above,
// 1 - 2 / (e^{2|u|} + 1) with the sign of u, where tanh >= 0.55 so the subtraction loses
// nothing. |u| is clamped at 10, past which tanh is 1 in float; NaN stays NaN.
__attribute__((always_inline)) inline float tanh_inline(float u) {
  const float a = __builtin_fabsf(u);
  const float z = u * u;
  float p = -3.927832388331683e-05f;  // the coefficients of u^23, u^21, ..., u^3
  p = p * z + 9.691537956929451e-05f;
  p = p * z + -2.3912911424355248e-04f;
  p = p * z + 5.90027440945586e-04f;
  p = p * z + -1.4558343870513183e-03f;
  p = p * z + 3.592128036572481e-03f;
  p = p * z + -8.863235529902197e-03f;
  p = p * z + 2.1869488536155203e-02f;
  p = p * z + -5.396825396825397e-02f;
  p = p * z + 1.3333333333333333e-01f;
  p = p * z + -3.333333333333333e-01f;
  const float small = __builtin_copysignf(u + u * (z * p), u);  // keeps -0's sign
  const float e = exp_in_range(2.0f * (a > 10.0f ? 10.0f : a));
  const float large = __builtin_copysignf(1.0f - 2.0f / (e + 1.0f), u);
  return a < 0.625f ? small : large;
}

// u = sqrt(2/pi) (x + 0.044715 x^3), in ATen's order of operations (pow as x*x*x, mul, add, mul).
__attribute__((always_inline)) inline float gelu_inner(float v) { return (v + (v * v * v) * kGeluCube) * kGeluScale; }

__attribute__((target_clones("avx512f", "avx2", "default"))) void forward_range(const float* __restrict x,
                                                                                 float* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    y[i] = (v * 0.5f) * (tanh_inline(gelu_inner(v)) + 1.0f);
  }
}

// d/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2), t = tanh(u)
__attribute__((target_clones("avx512f", "avx2", "default"))) void backward_range(const float* __restrict x,
                                                                                  const float* __restrict g,
                                                                                  float* __restrict dx, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    const float t = tanh_inline(gelu_inner(v));
    const float du = kGeluScale * (1.0f + 3.0f * kGeluCube * v * v);
    dx[i] = g[i] * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * du);
  }
}

}  // namespace

float tanh_vectorizable(float u) { return tanh_inline(u); }

void gelu_tanh_forward(const float* x, float* y, int64_t n) {
  cpu_parallel_for(n, kGeluGrain, [&](int64_t b, int64_t e) { forward_range(x + b, y + b, e - b); });
}

void gelu_tanh_backward(const float* x, const float* g, float* dx, int64_t n) {
  cpu_parallel_for(n, kGeluGrain, [&](int64_t b, int64_t e) { backward_range(x + b, g + b, dx + b, e - b); });
}

}  // namespace hftrain

#pragma GCC pop_options
