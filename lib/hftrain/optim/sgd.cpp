#include "hftrain/optim/sgd.h"

#include <ATen/core/grad_mode.h>
#include <ATen/Functions.h>

#include "hftrain/core/error.h"
#include "hftrain/optim/state_dict_util.h"

namespace hftrain {

SGD::SGD(std::vector<ParamGroup> groups, SGDOptions options) : options_(options) {
  // torch.optim.SGD's checks and messages.
  HFT_CHECK(options.momentum >= 0, "Invalid momentum value: {} (SGD momentum must be >= 0)",
            options.momentum);
  HFT_CHECK(options.dampening >= 0, "Invalid dampening value: {} (SGD dampening must be >= 0)",
            options.dampening);
  HFT_CHECK(
      !options.nesterov || (options.momentum > 0 && options.dampening == 0),
      "Nesterov momentum requires a momentum and zero dampening (SGD nesterov with momentum {}, "
      "dampening {})",
      options.momentum, options.dampening);
  groups_ = std::move(groups);
  for (const auto& g : groups_) {
    HFT_CHECK(g.lr >= 0, "Invalid learning rate: {} (SGD lr must be >= 0)", g.lr);
    HFT_CHECK(g.weight_decay >= 0, "Invalid weight_decay value: {} (SGD weight_decay must be >= 0)",
              g.weight_decay);
    state_.emplace_back(g.params.size());
  }
}

void SGD::step() {
  at::NoGradGuard no_grad;
  const double momentum = options_.momentum;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    ParamGroup& g = groups_[gi];
    for (size_t i = 0; i < g.params.size(); ++i) {
      at::Tensor& p = g.params[i];
      if (!p.grad().defined()) continue;
      State& s = state_[gi][i];
      s.stepped = true;
      at::Tensor d = p.grad();
      if (g.weight_decay != 0) d = d.add(p, g.weight_decay);
      if (momentum != 0) {
        if (!s.momentum_buffer.defined()) {
          s.momentum_buffer = d.clone().detach();
        } else {
          s.momentum_buffer.mul_(momentum).add_(d, 1 - options_.dampening);
        }
        d = options_.nesterov ? d.add(s.momentum_buffer, momentum) : s.momentum_buffer;
      }
      p.add_(d, -g.lr);
    }
  }
}

c10::IValue SGD::state_dict() const {
  return optim_state::save_states(
      groups_, state_,
      [&](const State& s, optim_state::Dict& ps) {
        if (!s.stepped) return false;
        ps.insert("momentum_buffer",
                  s.momentum_buffer.defined() ? c10::IValue(s.momentum_buffer) : c10::IValue());
        return true;
      },
      [&](const ParamGroup& g, optim_state::Dict& pg) {
        pg.insert("lr", g.lr);
        pg.insert("momentum", options_.momentum);
        pg.insert("dampening", options_.dampening);
        pg.insert("nesterov", options_.nesterov);
        pg.insert("maximize", false);
        pg.insert("foreach", c10::IValue());
        pg.insert("differentiable", false);
      });
}

void SGD::load_state_dict(const c10::IValue& sd, const std::string& where) {
  state_ = optim_state::load_states<State>(
      sd, groups_, where, [&](const c10::IValue& ps, const at::Tensor& p, int64_t id, State& s) {
        s.stepped = true;
        s.momentum_buffer = optim_state::read_optional_tensor(ps, "momentum_buffer", p, id, where);
      });
}

OptimizerEntry sgd_optimizer() {
  OptimizerEntry e;
  e.name = "sgd";
  e.optim_args = {"momentum", "dampening", "nesterov"};
  e.create = [](const TrainingArguments&, std::vector<ParamGroup> groups, const OptimArgs& kw) -> std::unique_ptr<Optimizer> {
    return std::make_unique<SGD>(std::move(groups), SGDOptions{kw.number("momentum", 0), kw.number("dampening", 0),
                                                               kw.flag("nesterov", false)});
  };
  return e;
}

}  // namespace hftrain
