// Adafactor as transformers.optimization.Adafactor (4.48), after Shazeer & Stern 2018
// (https://arxiv.org/abs/1804.04235). Per parameter p (float32 math for fp16/bf16):
//   t += 1;  RMS = ||p|| / sqrt(numel);  beta2t = 1 - t^decay_rate
//   lr = rel * (scale_parameter ? max(eps2, RMS) : 1), rel = relative_step ?
//        min(warmup_init ? 1e-6 t : 1e-2, 1/sqrt(t)) : group lr
//   u = g^2 + eps1
//   p of >= 2 dims (..., R, C): row (..., R) and col (..., C) running means of u over the last
//     and the second-to-last dim; u = rsqrt(row / mean(row)) (x) rsqrt(col) * g
//   otherwise: v = beta2t v + (1 - beta2t) u;  u = rsqrt(v) * g
//   u /= max(1, RMS(u) / clip_threshold);  u *= lr;  beta1: m = beta1 m + (1 - beta1) u, u = m
//   p -= wd lr p;  p -= u
// State {step: int, [exp_avg], exp_avg_sq_row + exp_avg_sq_col | exp_avg_sq, RMS: 0-d float32}.
#pragma once

#include "hftrain/optim/optimizer.h"
#include "hftrain/optim/optimizer_entry.h"

#include <optional>

namespace hftrain {

struct AdafactorOptions {
  std::optional<double> lr;  // HF's `lr` argument, only checked: the lr used is ParamGroup::lr
  double eps1 = 1e-30, eps2 = 1e-3, clip_threshold = 1.0, decay_rate = -0.8;
  std::optional<double> beta1;
  bool scale_parameter = true, relative_step = true, warmup_init = false;
};

class Adafactor : public Optimizer {
 public:
  Adafactor(std::vector<ParamGroup> groups, AdafactorOptions options);
  void step() override;
  c10::IValue state_dict() const override;
  void load_state_dict(const c10::IValue& state, const std::string& where) override;
  // The lr the group's first parameter last stepped with, as HF's AdafactorSchedule reports
  // it; 0 before that parameter's first step (AdafactorSchedule's default initial_lr).
  double last_lr(size_t group) const;

 private:
  struct State {
    int64_t step = 0;
    at::Tensor rms;  // 0-d float32: RMS of the parameter before its last update
    at::Tensor exp_avg, exp_avg_sq_row, exp_avg_sq_col, exp_avg_sq;
  };
  // HF's _get_lr: a 0-d float32 tensor when scale_parameter (it is RMS times a number),
  // otherwise a plain number.
  struct Lr {
    double value = 0;
    at::Tensor tensor;
  };
  Lr lr_of(const ParamGroup& g, const State& s) const;
  AdafactorOptions options_;
  std::vector<std::vector<State>> state_;  // [group][param]
};

// optim "adafactor": HF's Adafactor(lr, scale_parameter=False, relative_step=False), the
// Trainer's choice, with optim_args scale_parameter, relative_step, warmup_init,
// clip_threshold, decay_rate, beta1, eps1, eps2.
OptimizerEntry adafactor_optimizer();

}  // namespace hftrain
