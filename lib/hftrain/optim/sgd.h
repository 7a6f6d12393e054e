// SGD as torch.optim.SGD (torch 1.13 _single_tensor_sgd):
//   d = g + wd p;  buf = d on the first step, else buf = momentum buf + (1 - dampening) d;
//   d = nesterov ? d + momentum buf : buf  (when momentum != 0);  p -= lr d.
// State per stepped parameter: {momentum_buffer}, None when momentum is 0.
#pragma once

#include "hftrain/optim/optimizer.h"
#include "hftrain/optim/optimizer_entry.h"

namespace hftrain {

struct SGDOptions {
  double momentum = 0, dampening = 0;
  bool nesterov = false;
};

class SGD : public Optimizer {
 public:
  SGD(std::vector<ParamGroup> groups, SGDOptions options);
  void step() override;
  c10::IValue state_dict() const override;
  void load_state_dict(const c10::IValue& state, const std::string& where) override;

 private:
  struct State {
    bool stepped = false;     // torch keeps an entry for every parameter that had a gradient
    at::Tensor momentum_buffer;  // (param shape); undefined = None
  };
  SGDOptions options_;
  std::vector<std::vector<State>> state_;  // [group][param]
};

// optim "sgd": torch.optim.SGD(lr, weight decay by group) with optim_args momentum, dampening,
// nesterov.
OptimizerEntry sgd_optimizer();

}  // namespace hftrain
