// AdamW's update in one pass over each parameter, its gradient and its two moments (torch's
// foreach AdamW makes ten passes: the decay, the moments' scalings and additions, the square
// root, the bias correction, eps and the update each read and write whole tensors), on the
// host's cores: no matmul runs during the optimizer step, so its threads take no core from
// OpenBLAS's. The arithmetic is torch 1.13's _multi_tensor_adamw in its order, in float32,
// without fused multiply-adds: equal to ATen's scalar path; ATen's vectorised add uses one
// fused multiply-add for m + (1 - beta1) g, so results differ from it by float32 rounding.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

namespace hftrain {

struct AdamWUpdate {
  at::Tensor param, grad, exp_avg, exp_avg_sq;  // float32, contiguous, CPU, the same size
  double step_size;                             // lr / (1 - beta1^t)
  double bias_correction2_sqrt;                 // sqrt(1 - beta2^t)
};

// Applies each update: p *= 1 - lr wd; m = beta1 m + (1 - beta1) g; v = beta2 v + (1 - beta2) g g;
// p -= step_size m / (sqrt(v) / bias_correction2_sqrt + eps).
void adamw_update(const std::vector<AdamWUpdate>& updates, double lr, double weight_decay, double beta1, double beta2,
                  double eps);

// Whether a parameter can take the one-pass update (float32, contiguous, on the CPU).
bool adamw_update_applies(const at::Tensor& param, const at::Tensor& grad);

}  // namespace hftrain
