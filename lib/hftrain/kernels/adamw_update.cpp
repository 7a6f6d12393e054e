#include "hftrain/kernels/adamw_update.h"

#include "hftrain/kernels/cpu_threads.h"

#include <algorithm>
#include <cmath>

namespace hftrain {

namespace {

constexpr int64_t kChunk = int64_t{1} << 16;  // elements a thread takes at a time

struct Scalars {
  float decay, b1, one_minus_b1, b2, one_minus_b2, eps;
};

// One chunk of one parameter. ATen casts each double scalar to float and computes in float;
// no fused multiply-add (fp-contract off), as its scalar path.
__attribute__((optimize("fp-contract=off"))) void update_range(const AdamWUpdate& u, const Scalars& s, int64_t begin,
                                                                int64_t end) {
  float* p = u.param.data_ptr<float>();
  const float* g = u.grad.data_ptr<float>();
  float* m = u.exp_avg.data_ptr<float>();
  float* v = u.exp_avg_sq.data_ptr<float>();
  const float step = static_cast<float>(-u.step_size), bc2 = static_cast<float>(u.bias_correction2_sqrt);
  for (int64_t i = begin; i < end; ++i) {
    const float gi = g[i];
    const float pi = p[i] * s.decay;                        // _foreach_mul_(params, 1 - lr wd)
    const float mi = m[i] * s.b1 + gi * s.one_minus_b1;     // _foreach_mul_, _foreach_add_(alpha)
    const float vi = v[i] * s.b2 + s.one_minus_b2 * gi * gi;  // _foreach_mul_, _foreach_addcmul_
    const float denom = std::sqrt(vi) / bc2 + s.eps;        // _foreach_sqrt, _foreach_div_, _foreach_add_
    p[i] = pi + step * mi / denom;                          // _foreach_addcdiv_(params, m, denom, -step_size)
    m[i] = mi;
    v[i] = vi;
  }
}

}  // namespace

bool adamw_update_applies(const at::Tensor& param, const at::Tensor& grad) {
  return param.device().is_cpu() && param.scalar_type() == at::kFloat && grad.scalar_type() == at::kFloat &&
         param.is_contiguous() && grad.is_contiguous() && grad.layout() == at::kStrided &&
         param.sizes() == grad.sizes();
}

void adamw_update(const std::vector<AdamWUpdate>& updates, double lr, double weight_decay, double beta1, double beta2,
                  double eps) {
  const Scalars s{static_cast<float>(1 - lr * weight_decay), static_cast<float>(beta1), static_cast<float>(1 - beta1),
                  static_cast<float>(beta2), static_cast<float>(1 - beta2), static_cast<float>(eps)};
  // The work as (update, begin) chunks, taken in turn by the threads (cpu_threads.h).
  std::vector<std::pair<size_t, int64_t>> chunks;
  for (size_t u = 0; u < updates.size(); ++u)
    for (int64_t b = 0; b < updates[u].param.numel(); b += kChunk) chunks.emplace_back(u, b);
  cpu_parallel_for(static_cast<int64_t>(chunks.size()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      const AdamWUpdate& u = updates[chunks[c].first];
      update_range(u, s, chunks[c].second, std::min(chunks[c].second + kChunk, u.param.numel()));
    }
  });
}

}  // namespace hftrain
