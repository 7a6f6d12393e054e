// The dot product of two float rows, vectorized (AVX-512 / AVX2 / baseline clones picked at run
// time) through 16 partial sums added in a fixed order, without floating-point contraction:
// every instruction set gives the same bits.
#pragma once

#include <cstdint>

namespace hftrain {

float dot_product(const float* a, const float* b, int64_t n);

}  // namespace hftrain
