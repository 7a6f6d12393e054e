#include "hftrain/optim/adagrad.h"

#include <ATen/core/grad_mode.h>
#include <ATen/Functions.h>

#include "hftrain/core/error.h"
#include "hftrain/optim/state_dict_util.h"

namespace hftrain {

Adagrad::Adagrad(std::vector<ParamGroup> groups, AdagradOptions options) : options_(options) {
  // torch.optim.Adagrad's checks and messages.
  HFT_CHECK(options.lr_decay >= 0, "Invalid lr_decay value: {} (Adagrad lr_decay must be >= 0)",
            options.lr_decay);
  HFT_CHECK(options.initial_accumulator_value >= 0,
            "Invalid initial_accumulator_value value: {} (Adagrad initial_accumulator_value must "
            "be >= 0)",
            options.initial_accumulator_value);
  HFT_CHECK(options.eps >= 0, "Invalid epsilon value: {} (Adagrad eps must be >= 0)", options.eps);
  groups_ = std::move(groups);
  for (const auto& g : groups_) {
    HFT_CHECK(g.lr >= 0, "Invalid learning rate: {} (Adagrad lr must be >= 0)", g.lr);
    HFT_CHECK(g.weight_decay >= 0,
              "Invalid weight_decay value: {} (Adagrad weight_decay must be >= 0)", g.weight_decay);
    auto& states = state_.emplace_back(g.params.size());
    for (size_t i = 0; i < g.params.size(); ++i)
      states[i].sum =
          at::full_like(g.params[i], options.initial_accumulator_value, at::MemoryFormat::Preserve);
  }
}

void Adagrad::step() {
  at::NoGradGuard no_grad;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    ParamGroup& g = groups_[gi];
    for (size_t i = 0; i < g.params.size(); ++i) {
      at::Tensor& p = g.params[i];
      if (!p.grad().defined()) continue;
      State& s = state_[gi][i];
      s.step = s.step + 1.0f;
      at::Tensor grad = p.grad();
      if (g.weight_decay != 0) grad = grad.add(p, g.weight_decay);
      // Python computes clr in double from step_t.item().
      const double clr = g.lr / (1 + (static_cast<double>(s.step) - 1) * options_.lr_decay);
      s.sum.addcmul_(grad, grad, 1);
      at::Tensor denom = s.sum.sqrt().add_(options_.eps);
      p.addcdiv_(grad, denom, -clr);
    }
  }
}

c10::IValue Adagrad::state_dict() const {
  return optim_state::save_states(
      groups_, state_,
      [&](const State& s, optim_state::Dict& ps) {
        ps.insert("step", at::scalar_tensor(static_cast<double>(s.step), at::kFloat));
        ps.insert("sum", s.sum);
        return true;
      },
      [&](const ParamGroup& g, optim_state::Dict& pg) {
        pg.insert("lr", g.lr);
        pg.insert("lr_decay", options_.lr_decay);
        pg.insert("eps", options_.eps);
        pg.insert("initial_accumulator_value", options_.initial_accumulator_value);
        pg.insert("foreach", c10::IValue());
        pg.insert("maximize", false);
      });
}

void Adagrad::load_state_dict(const c10::IValue& sd, const std::string& where) {
  state_ = optim_state::load_states<State>(
      sd, groups_, where,
      [&](const c10::IValue& ps, const at::Tensor& p, int64_t id, State& s) {
        s.step = static_cast<float>(optim_state::read_step(ps, where));
        s.sum = optim_state::read_tensor(ps, "sum", p.sizes(), p.options(), id, where);
      },
      [&](const at::Tensor& p, State& s) {
        // As torch: the constructor's fresh state stays.
        s.sum = at::full_like(p, options_.initial_accumulator_value, at::MemoryFormat::Preserve);
      });
}

OptimizerEntry adagrad_optimizer() {
  OptimizerEntry e;
  e.name = "adagrad";
  e.optim_args = {"lr_decay", "initial_accumulator_value", "eps"};
  e.create = [](const TrainingArguments&, std::vector<ParamGroup> groups, const OptimArgs& kw) -> std::unique_ptr<Optimizer> {
    return std::make_unique<Adagrad>(std::move(groups),
                                     AdagradOptions{kw.number("lr_decay", 0), kw.number("initial_accumulator_value", 0),
                                                    kw.number("eps", 1e-10)});
  };
  return e;
}

}  // namespace hftrain
