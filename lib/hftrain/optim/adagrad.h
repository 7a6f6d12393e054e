// Adagrad as torch.optim.Adagrad (torch 1.13 _single_tensor_adagrad):
//   step += 1 (a float32 tensor in torch); g += wd p; clr = lr / (1 + (step - 1) lr_decay);
//   sum += g*g; p -= clr * g / (sqrt(sum) + eps).
// State {step: float32 0-d tensor, sum} exists for every parameter from construction on, as
// torch's constructor creates it.
#pragma once

#include "hftrain/optim/optimizer.h"
#include "hftrain/optim/optimizer_entry.h"

namespace hftrain {

struct AdagradOptions {
  double lr_decay = 0, initial_accumulator_value = 0, eps = 1e-10;
};

class Adagrad : public Optimizer {
 public:
  Adagrad(std::vector<ParamGroup> groups, AdagradOptions options);
  void step() override;
  c10::IValue state_dict() const override;
  void load_state_dict(const c10::IValue& state, const std::string& where) override;

 private:
  struct State {
    float step = 0;  // float32 like torch's step tensor, so it counts the same past 2^24
    at::Tensor sum;  // (param shape)
  };
  AdagradOptions options_;
  std::vector<std::vector<State>> state_;  // [group][param]
};

// optim "adagrad": torch.optim.Adagrad with optim_args lr_decay, initial_accumulator_value, eps.
OptimizerEntry adagrad_optimizer();

}  // namespace hftrain
