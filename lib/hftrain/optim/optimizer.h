// Optimizers with torch.optim's numerics and torch.optim's state_dict layout, so that
// optimizer.pt opens in Python and torch.optim.<Class>.load_state_dict accepts it.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>

#include <string>
#include <vector>

namespace hftrain {

struct ParamGroup {
  std::vector<at::Tensor> params;
  double lr = 1e-3;
  double weight_decay = 0.0;
  double initial_lr = -1;  // set by the scheduler (torch's "initial_lr"); < 0: unset
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  virtual void step() = 0;  // reads p.grad(); parameters without a gradient are skipped
  // Gradients become undefined (torch's set_to_none): backward then writes, not adds.
  void zero_grad();
  std::vector<ParamGroup>& param_groups() { return groups_; }
  const std::vector<ParamGroup>& param_groups() const { return groups_; }

  // {"state": {index: {...}}, "param_groups": [{..., "params": [indices]}]}
  virtual c10::IValue state_dict() const = 0;
  // Checks the structure against this optimizer's groups and parameters; a mismatch is a
  // user error naming `where` (the file).
  virtual void load_state_dict(const c10::IValue& state, const std::string& where) = 0;

 protected:
  std::vector<ParamGroup> groups_;
};

}  // namespace hftrain
