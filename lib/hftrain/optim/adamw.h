// AdamW as torch.optim.AdamW (torch 1.13 _single_tensor_adamw / _multi_tensor_adamw,
// which compute the same numbers): decoupled weight decay p *= 1 - lr*wd, then
// m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps).
#pragma once

#include "hftrain/optim/optimizer.h"
#include "hftrain/optim/optimizer_entry.h"

namespace hftrain {

struct AdamWOptions {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  bool amsgrad = false;
  // torch's fused kernel (optim adamw_torch_fused): the same update in one kernel per group,
  // rounded as the kernel rounds it; LibTorch 2.4 and later.
  bool fused = false;
};

// A user error when `fused` is asked for and this LibTorch has no fused kernel.
void adamw_check_fused(bool fused);

class AdamW : public Optimizer {
 public:
  AdamW(std::vector<ParamGroup> groups, AdamWOptions options);
  void step() override;
  c10::IValue state_dict() const override;
  void load_state_dict(const c10::IValue& state, const std::string& where) override;

 private:
  struct State {
    int64_t step = 0;  // torch keeps a float32 0-d tensor; it is written as one
    at::Tensor step_t;  // fused: that tensor, on the parameter's device, which the kernel reads
    at::Tensor exp_avg, exp_avg_sq, max_exp_avg_sq;
  };
  void init_state(State& s, const at::Tensor& p) const;
  void fused_step(ParamGroup& g, std::vector<State>& state);
  bool one_pass_step(const ParamGroup& g, const std::vector<at::Tensor>& params, const std::vector<at::Tensor>& grads,
                     const std::vector<at::Tensor>& m, const std::vector<at::Tensor>& v,
                     const std::vector<at::Scalar>& step_size, const std::vector<at::Scalar>& bc2_sqrt) const;
  AdamWOptions options_;
  std::vector<std::vector<State>> state_;  // [group][param]
};

// optim "adamw_torch": AdamW(lr, betas=(adam_beta1, adam_beta2), eps=adam_epsilon);
// "adamw_torch_fused": the same through torch's fused kernel (LibTorch 2.4 or newer).
OptimizerEntry adamw_torch_optimizer();
OptimizerEntry adamw_torch_fused_optimizer();

}  // namespace hftrain
