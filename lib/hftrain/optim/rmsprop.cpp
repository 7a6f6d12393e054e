#include "hftrain/optim/rmsprop.h"

#include <ATen/core/grad_mode.h>
#include <ATen/Functions.h>

#include "hftrain/core/error.h"
#include "hftrain/optim/state_dict_util.h"

namespace hftrain {

RMSprop::RMSprop(std::vector<ParamGroup> groups, RMSpropOptions options) : options_(options) {
  // torch.optim.RMSprop's checks and messages.
  HFT_CHECK(options.eps >= 0, "Invalid epsilon value: {} (RMSprop eps must be >= 0)", options.eps);
  HFT_CHECK(options.momentum >= 0, "Invalid momentum value: {} (RMSprop momentum must be >= 0)",
            options.momentum);
  HFT_CHECK(options.alpha >= 0, "Invalid alpha value: {} (RMSprop alpha must be >= 0)",
            options.alpha);
  groups_ = std::move(groups);
  for (const auto& g : groups_) {
    HFT_CHECK(g.lr >= 0, "Invalid learning rate: {} (RMSprop lr must be >= 0)", g.lr);
    HFT_CHECK(g.weight_decay >= 0,
              "Invalid weight_decay value: {} (RMSprop weight_decay must be >= 0)", g.weight_decay);
    state_.emplace_back(g.params.size());
  }
}

void RMSprop::step() {
  at::NoGradGuard no_grad;
  const double alpha = options_.alpha, momentum = options_.momentum;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    ParamGroup& g = groups_[gi];
    for (size_t i = 0; i < g.params.size(); ++i) {
      at::Tensor& p = g.params[i];
      if (!p.grad().defined()) continue;
      State& s = state_[gi][i];
      if (!s.square_avg.defined()) {
        s.square_avg = at::zeros_like(p, at::MemoryFormat::Preserve);
        if (momentum > 0) s.momentum_buffer = at::zeros_like(p, at::MemoryFormat::Preserve);
        if (options_.centered) s.grad_avg = at::zeros_like(p, at::MemoryFormat::Preserve);
      }
      s.step += 1;
      at::Tensor grad = p.grad();
      if (g.weight_decay != 0) grad = grad.add(p, g.weight_decay);
      s.square_avg.mul_(alpha).addcmul_(grad, grad, 1 - alpha);
      at::Tensor avg;
      if (options_.centered) {
        s.grad_avg.mul_(alpha).add_(grad, 1 - alpha);
        avg = s.square_avg.addcmul(s.grad_avg, s.grad_avg, -1).sqrt_();
      } else {
        avg = s.square_avg.sqrt();
      }
      avg.add_(options_.eps);
      if (momentum > 0) {
        s.momentum_buffer.mul_(momentum).addcdiv_(grad, avg);
        p.add_(s.momentum_buffer, -g.lr);
      } else {
        p.addcdiv_(grad, avg, -g.lr);
      }
    }
  }
}

c10::IValue RMSprop::state_dict() const {
  return optim_state::save_states(
      groups_, state_,
      [&](const State& s, optim_state::Dict& ps) {
        if (!s.square_avg.defined()) return false;  // torch omits parameters never stepped
        ps.insert("step", s.step);
        ps.insert("square_avg", s.square_avg);
        if (options_.momentum > 0) ps.insert("momentum_buffer", s.momentum_buffer);
        if (options_.centered) ps.insert("grad_avg", s.grad_avg);
        return true;
      },
      [&](const ParamGroup& g, optim_state::Dict& pg) {
        pg.insert("lr", g.lr);
        pg.insert("momentum", options_.momentum);
        pg.insert("alpha", options_.alpha);
        pg.insert("eps", options_.eps);
        pg.insert("centered", options_.centered);
        pg.insert("foreach", c10::IValue());
        pg.insert("maximize", false);
        pg.insert("differentiable", false);
      });
}

void RMSprop::load_state_dict(const c10::IValue& sd, const std::string& where) {
  state_ = optim_state::load_states<State>(
      sd, groups_, where, [&](const c10::IValue& ps, const at::Tensor& p, int64_t id, State& s) {
        s.step = static_cast<int64_t>(optim_state::read_step(ps, where));
        s.square_avg =
            optim_state::read_tensor(ps, "square_avg", p.sizes(), p.options(), id, where);
        if (options_.momentum > 0)
          s.momentum_buffer =
              optim_state::read_tensor(ps, "momentum_buffer", p.sizes(), p.options(), id, where);
        if (options_.centered)
          s.grad_avg = optim_state::read_tensor(ps, "grad_avg", p.sizes(), p.options(), id, where);
      });
}

OptimizerEntry rmsprop_optimizer() {
  OptimizerEntry e;
  e.name = "rmsprop";
  e.optim_args = {"alpha", "eps", "momentum", "centered"};
  e.create = [](const TrainingArguments&, std::vector<ParamGroup> groups, const OptimArgs& kw) -> std::unique_ptr<Optimizer> {
    return std::make_unique<RMSprop>(std::move(groups),
                                     RMSpropOptions{kw.number("alpha", 0.99), kw.number("eps", 1e-8),
                                                    kw.number("momentum", 0), kw.flag("centered", false)});
  };
  return e;
}

}  // namespace hftrain
