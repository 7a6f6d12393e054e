#include "hftrain/optim/grad_clip.h"

#include <ATen/core/grad_mode.h>
#include <ATen/Functions.h>

#include <numeric>

namespace hftrain {

namespace {
at::Tensor full_norm(const at::Tensor& t) {  // torch.norm(t, 2.0): _VF.norm over every dim
  std::vector<int64_t> dims(t.dim());
  std::iota(dims.begin(), dims.end(), 0);
  return at::norm(t, at::Scalar(2.0), dims, false);
}
}  // namespace

at::Tensor clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> grads, norms;
  for (const auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return at::zeros({});
  for (const auto& g : grads) norms.push_back(full_norm(g));
  at::Tensor total = full_norm(at::stack(norms));
  // Python's `max_norm / (total + 1e-6)` is Tensor.__rtruediv__: reciprocal() * max_norm.
  at::Tensor coef = at::clamp_max(total.add(1e-6).reciprocal().mul(max_norm), 1.0);
  for (auto& g : grads) g.mul_(coef);
  return total;
}

}  // namespace hftrain
