#include "hftrain/kernels/vec_dot.h"

#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")

namespace hftrain {

__attribute__((target_clones("avx512f", "avx2", "default"))) float dot_product(const float* a, const float* b,
                                                                              int64_t n) {
  constexpr int kLanes = 16;
  float lane[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) lane[j] += a[i + j] * b[i + j];
  float sum = 0.0f;
  for (; i < n; ++i) sum += a[i] * b[i];
  for (float l : lane) sum += l;
  return sum;
}

}  // namespace hftrain

#pragma GCC pop_options
