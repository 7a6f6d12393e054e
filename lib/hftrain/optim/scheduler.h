// LR schedules as transformers 4.48's get_scheduler builds them (optimization.py), with torch
// 1.13's numerics:
// - every type but reduce_lr_on_plateau is torch's LambdaLR with one of HF's lambdas:
//   lr_group = initial_lr * lambda(step). scheduler.pt holds LambdaLR.state_dict(): base_lrs,
//   last_epoch, verbose, _step_count, _get_lr_called_within_step, _last_lr, lr_lambdas ([{}] per
//   group: HF's lambdas are functools.partial objects with an empty __dict__).
// - reduce_lr_on_plateau is torch's ReduceLROnPlateau, stepped with the evaluation metric; its
//   state_dict is its __dict__ without the optimizer.
// get_scheduler's quirks are kept, because the numbers HF logs depend on them
// (golden/README.md, schedulers.json): see scheduler_quirk.
#pragma once

#include "hftrain/config/training_arguments.h"
#include "hftrain/optim/optimizer.h"

#include <nlohmann/json_fwd.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace hftrain {

// torch.optim.lr_scheduler.ReduceLROnPlateau's arguments and defaults (torch 1.13).
struct PlateauOptions {
  enum class Mode { kMin, kMax };
  enum class ThresholdMode { kRel, kAbs };
  Mode mode = Mode::kMin;
  double factor = 0.1;  // new_lr = lr * factor; must be < 1
  int64_t patience = 10;
  double threshold = 1e-4;
  ThresholdMode threshold_mode = ThresholdMode::kRel;
  int64_t cooldown = 0;
  double min_lr = 0.0;
  std::vector<double> min_lrs;  // torch's list form, one per group; when set it replaces min_lr
  double eps = 1e-8;
  bool verbose = false;  // prints torch's "Epoch 00003: reducing learning rate of group 0 to ..."
};

// What one schedule needs, typed; kwargs carry HF's defaults. Fields a type does not read are
// ignored by it.
struct SchedulerOptions {
  SchedulerType type = SchedulerType::kLinear;
  int64_t num_warmup_steps = 0;    // constant and reduce_lr_on_plateau ignore it (as HF 4.48)
  int64_t num_training_steps = 0;  // warmup_stable_decay ignores it: HF 4.48 does not pass it
  // cosine, cosine_with_min_lr, warmup_stable_decay: waves of the cosine (HF 0.5);
  // cosine_with_restarts: the number of hard restarts (HF int 1). Unset: that default.
  std::optional<double> num_cycles;
  double lr_end = 1e-7;  // polynomial
  double power = 1.0;    // polynomial
  // cosine_with_min_lr: exactly one of them. min_lr is divided by the optimizer's default lr.
  std::optional<double> min_lr, min_lr_rate;
  // inverse_sqrt: unset means num_warmup_steps, or 10000 when that is 0. HF 4.48's
  // get_scheduler never passes it, so scheduler_options_from_kwargs leaves it unset.
  std::optional<int64_t> timescale;
  int64_t num_stable_steps = 0, num_decay_steps = 0;  // warmup_stable_decay (HF: required)
  double min_lr_ratio = 0.0;                          // warmup_stable_decay
  PlateauOptions plateau;                             // reduce_lr_on_plateau

  double num_cycles_or_default() const;
};

// The kwargs that get_scheduler 4.48 hands to this type's schedule function, by HF name.
// Empty for constant, constant_with_warmup and inverse_sqrt: get_scheduler drops every kwarg
// of those (and linear's function takes none).
std::vector<std::string> scheduler_kwargs_keys(SchedulerType t);

// "" when HF 4.48 runs what the user set; otherwise one line saying what HF silently ignores:
// constant ignores num_warmup_steps and every kwarg; constant_with_warmup and inverse_sqrt get
// only num_warmup_steps (their kwargs, timescale among them, are dropped); reduce_lr_on_plateau
// ignores num_warmup_steps. `given_kwargs` are the keys of lr_scheduler_kwargs.
std::string scheduler_quirk(SchedulerType t, const std::vector<std::string>& given_kwargs, int64_t warmup);

// lr_scheduler_kwargs -> options, as get_scheduler 4.48 passes them: each key this type takes is
// type-checked (a user error names lr_scheduler_kwargs.<key> and `where`); a key it does not
// take is a user error listing the known ones. For the types whose kwargs HF drops
// (constant, constant_with_warmup, inverse_sqrt) every key is accepted and ignored, so the
// schedule is the one HF runs; report scheduler_quirk to the user.
SchedulerOptions scheduler_options_from_kwargs(SchedulerType type, int64_t num_warmup_steps,
                                               int64_t num_training_steps, const nlohmann::json& kwargs,
                                               const std::string& where);

// HF's multiplier at `step`, in double as Python computes it. `default_lr` is what HF reads as
// optimizer.defaults["lr"] (polynomial, cosine_with_min_lr with min_lr): in hftrain the first
// group's initial lr. Not defined for reduce_lr_on_plateau.
double lr_lambda(const SchedulerOptions& o, double default_lr, int64_t step);

class LRScheduler {
 public:
  virtual ~LRScheduler() = default;
  // After each optimizer step. ReduceLROnPlateau: nothing (it moves on step_metric).
  virtual void step() = 0;
  // After each evaluation, with the metric; only for schedulers where steps_on_metric().
  virtual void step_metric(double metric);
  virtual bool steps_on_metric() const { return false; }
  // Every group's lr as of the last step (the Trainer logs [0] as learning_rate).
  std::vector<double> last_lr() const { return last_lr_; }

  virtual c10::IValue state_dict() const = 0;
  // A structure that does not fit this scheduler is a user error naming `where` (the file).
  virtual void load_state_dict(const c10::IValue& state, const std::string& where) = 0;

 protected:
  std::vector<double> last_lr_;
};

// torch.optim.lr_scheduler.LambdaLR with HF's lambda for options.type.
class LambdaLR : public LRScheduler {
 public:
  // Sets each group's initial_lr (when unset) and takes torch's initial step: lr = base * lambda(0).
  // HF's construction-time checks are user errors (polynomial: lr_end < default lr;
  // cosine_with_min_lr: exactly one of min_lr, min_lr_rate).
  LambdaLR(Optimizer& optimizer, const SchedulerOptions& options);
  // The form trainer.cpp used before SchedulerOptions: num_cycles is read by cosine only.
  LambdaLR(Optimizer& optimizer, SchedulerType type, int64_t num_warmup_steps, int64_t num_training_steps,
           double num_cycles = 0.5);
  void step() override;  // last_epoch += 1 and every group's lr is updated
  int64_t last_epoch() const { return last_epoch_; }
  const SchedulerOptions& options() const { return options_; }

  c10::IValue state_dict() const override;
  void load_state_dict(const c10::IValue& state, const std::string& where) override;

 private:
  void apply();
  Optimizer& optimizer_;
  SchedulerOptions options_;
  double default_lr_;  // HF's optimizer.defaults["lr"]
  std::vector<double> base_lrs_;
  int64_t last_epoch_ = -1, step_count_ = 0;
};

// torch 1.13's ReduceLROnPlateau. It does not set initial_lr, and its state_dict has
// "_last_lr" only once it has stepped, as torch's.
class ReduceLROnPlateau : public LRScheduler {
 public:
  ReduceLROnPlateau(Optimizer& optimizer, const PlateauOptions& options);
  void step() override {}
  void step_metric(double metric) override;
  bool steps_on_metric() const override { return true; }
  const PlateauOptions& options() const { return o_; }  // after load_state_dict: the loaded ones

  c10::IValue state_dict() const override;
  void load_state_dict(const c10::IValue& state, const std::string& where) override;

 private:
  bool is_better(double a, double best) const;
  Optimizer& optimizer_;
  PlateauOptions o_;
  std::vector<double> min_lrs_;
  double best_, mode_worse_;
  int64_t num_bad_epochs_ = 0, cooldown_counter_ = 0, last_epoch_ = 0;
  bool stepped_ = false;  // torch sets _last_lr on the first step only
};

// get_scheduler: LambdaLR, or ReduceLROnPlateau for reduce_lr_on_plateau.
std::unique_ptr<LRScheduler> scheduler_create(Optimizer& optimizer, const SchedulerOptions& options);

}  // namespace hftrain
