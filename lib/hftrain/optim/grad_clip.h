// torch.nn.utils.clip_grad_norm_ (torch 1.13): total = norm(stack([norm(g) for g])),
// coef = clamp(max_norm * reciprocal(total + 1e-6), max=1), g *= coef. The total norm
// stays a device tensor: the host reads it only when it logs.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

namespace hftrain {

at::Tensor clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm);

}  // namespace hftrain
