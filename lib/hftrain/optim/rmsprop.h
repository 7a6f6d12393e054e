// RMSprop as torch.optim.RMSprop (torch 1.13 _single_tensor_rmsprop):
//   g += wd p;  v = alpha v + (1 - alpha) g^2;
//   centered: m = alpha m + (1 - alpha) g, avg = sqrt(v - m^2) + eps; else avg = sqrt(v) + eps;
//   momentum > 0: buf = momentum buf + g / avg, p -= lr buf;  else p -= lr g / avg.
// State {step: Python int, square_avg, momentum_buffer if momentum > 0, grad_avg if centered}.
#pragma once

#include "hftrain/optim/optimizer.h"
#include "hftrain/optim/optimizer_entry.h"

namespace hftrain {

struct RMSpropOptions {
  double alpha = 0.99, eps = 1e-8, momentum = 0;
  bool centered = false;
};

class RMSprop : public Optimizer {
 public:
  RMSprop(std::vector<ParamGroup> groups, RMSpropOptions options);
  void step() override;
  c10::IValue state_dict() const override;
  void load_state_dict(const c10::IValue& state, const std::string& where) override;

 private:
  struct State {
    int64_t step = 0;
    at::Tensor square_avg, momentum_buffer, grad_avg;  // each (param shape)
  };
  RMSpropOptions options_;
  std::vector<std::vector<State>> state_;  // [group][param]
};

// optim "rmsprop": torch.optim.RMSprop with optim_args alpha, eps, momentum, centered.
OptimizerEntry rmsprop_optimizer();

}  // namespace hftrain
