// LR schedules as transformers' get_scheduler builds them: torch's LambdaLR with HF's
// lambdas (optimization.py), lr_group = initial_lr * lambda(step). scheduler.pt holds
// LambdaLR.state_dict(): base_lrs, last_epoch, verbose, _step_count,
// _get_lr_called_within_step, _last_lr, lr_lambdas ([{}] per group: HF's lambdas are
// functools.partial objects with an empty __dict__).
#pragma once

#include "hftrain/config/training_arguments.h"
#include "hftrain/optim/optimizer.h"

namespace hftrain {

// HF's multiplier at `step` (optimization.py: _get_linear_schedule_with_warmup_lr_lambda,
// _get_cosine_schedule_with_warmup_lr_lambda with num_cycles 0.5,
// _get_constant_schedule_with_warmup_lr_lambda), in double as Python computes it.
double lr_lambda(SchedulerType type, int64_t step, int64_t num_warmup_steps, int64_t num_training_steps,
                 double num_cycles = 0.5);

class LambdaLR {
 public:
  // Sets each group's initial_lr (when unset) and takes torch's initial step: lr = base * lambda(0).
  LambdaLR(Optimizer& optimizer, SchedulerType type, int64_t num_warmup_steps, int64_t num_training_steps,
           double num_cycles = 0.5);
  void step();  // after optimizer.step(): last_epoch += 1 and every group's lr is updated
  int64_t last_epoch() const { return last_epoch_; }
  std::vector<double> last_lr() const { return last_lr_; }

  c10::IValue state_dict() const;
  void load_state_dict(const c10::IValue& state, const std::string& where);

 private:
  void apply();
  Optimizer& optimizer_;
  SchedulerType type_;
  int64_t warmup_, total_;
  double num_cycles_;
  std::vector<double> base_lrs_, last_lr_;
  int64_t last_epoch_ = -1, step_count_ = 0;
};

}  // namespace hftrain
