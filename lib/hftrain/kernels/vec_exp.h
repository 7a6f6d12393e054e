// e^x for the fused kernels' loops: plain float arithmetic that the compiler vectorizes (Debian's
// LibTorch has no vectorized exp or tanh callable from outside ATen's kernels). Compiled without
// floating-point contraction, so every instruction set gives the same bits.
#pragma once

#include <cstdint>
#include <cstring>

#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")

namespace hftrain {

// e^x for x in [-87.3, 88.7] (the caller clamps): x = n ln2 + r, |r| <= ln2/2; e^r by its
// Taylor series to r^7 (truncation < 1.2e-8 relative), times 2^n built in the exponent bits.
__attribute__((always_inline)) inline float exp_in_range(float x) {
  const float kLog2e = 1.44269504088896341f;
  const float kRound = 12582912.0f;  // 1.5 * 2^23: adding and subtracting it rounds to an integer
  const float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;  // ln 2 = hi + lo, hi exact in 9 bits
  const float n = (x * kLog2e + kRound) - kRound;
  const float r = (x - n * kLn2Hi) - n * kLn2Lo;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// e^x for x <= 0 (softmax's shifted scores): 0 below -87 (e^-87 is 1.6e-38, at the edge of
// float's normal range), exact 1 at 0; NaN stays NaN.
__attribute__((always_inline)) inline float exp_nonpositive(float x) {
  const float e = exp_in_range(x < -87.0f ? -87.0f : x);
  return x < -87.0f ? 0.0f : e;
}

}  // namespace hftrain

#pragma GCC pop_options
