// HF's lambdas (transformers 4.48 optimization.py) and torch 1.13's LambdaLR.
#include "hftrain/optim/scheduler.h"

#include "hftrain/core/error.h"
#include "hftrain/optim/state_dict_util.h"

#include <ATen/core/Dict.h>
#include <ATen/core/List.h>

#include <algorithm>
#include <cmath>

namespace hftrain {

double SchedulerOptions::num_cycles_or_default() const {
  return num_cycles.value_or(type == SchedulerType::kCosineWithRestarts ? 1.0 : 0.5);
}

namespace {

// Each lambda below is HF's, operation for operation, so that the doubles agree with Python's.
// Python's int / int is the correctly rounded quotient, which is double(a) / double(b) for
// step counts (exact in a double).

double warmup_factor(int64_t step, int64_t warmup) {
  return static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup));
}

double cosine_progress(int64_t step, int64_t warmup, int64_t total) {
  return static_cast<double>(step - warmup) / static_cast<double>(std::max<int64_t>(1, total - warmup));
}

// _get_cosine_schedule_with_warmup_lr_lambda; 4.48 redefines it with min_lr_rate (default 0)
// for cosine_with_min_lr, and factor * (1 - 0) + 0 is factor exactly, so one function serves both.
double cosine_lambda(int64_t step, int64_t warmup, int64_t total, double num_cycles, double min_lr_rate) {
  if (step < warmup) return warmup_factor(step, warmup);
  const double progress = cosine_progress(step, warmup, total);
  double factor = 0.5 * (1.0 + std::cos(M_PI * num_cycles * 2.0 * progress));
  factor = factor * (1.0 - min_lr_rate) + min_lr_rate;
  return std::max(0.0, factor);
}

// _get_cosine_with_hard_restarts_schedule_with_warmup_lr_lambda. Python's % on a non-negative
// float is fmod.
double restarts_lambda(int64_t step, int64_t warmup, int64_t total, double num_cycles) {
  if (step < warmup) return warmup_factor(step, warmup);
  const double progress = cosine_progress(step, warmup, total);
  if (progress >= 1.0) return 0.0;
  return std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * std::fmod(num_cycles * progress, 1.0))));
}

// _get_polynomial_decay_schedule_with_warmup_lr_lambda: lr_init is optimizer.defaults["lr"],
// and after num_training_steps the lr is lr_end (not 0).
double polynomial_lambda(int64_t step, int64_t warmup, int64_t total, double lr_end, double power,
                         double lr_init) {
  if (step < warmup) return warmup_factor(step, warmup);
  if (step > total) return lr_end / lr_init;
  const double lr_range = lr_init - lr_end;
  const int64_t decay_steps = total - warmup;
  const double pct_remaining = 1.0 - static_cast<double>(step - warmup) / static_cast<double>(decay_steps);
  const double decay = lr_range * std::pow(pct_remaining, power) + lr_end;
  return decay / lr_init;
}

// _get_inverse_sqrt_schedule_lr_lambda with get_inverse_sqrt_schedule's default timescale.
double inverse_sqrt_lambda(int64_t step, int64_t warmup, std::optional<int64_t> timescale) {
  const int64_t ts = timescale.value_or(warmup != 0 ? warmup : 10000);
  if (step < warmup) return warmup_factor(step, warmup);
  const int64_t shift = ts - warmup;
  return 1.0 / std::sqrt(static_cast<double>(step + shift) / static_cast<double>(ts));
}

// 4.48's _get_wsd_scheduler_lambda: linear warmup from 0, stable, cosine decay to
// min_lr_ratio, then min_lr_ratio for good.
double wsd_lambda(int64_t step, int64_t warmup, int64_t stable, int64_t decay, double num_cycles,
                  double min_lr_ratio) {
  if (step < warmup) return warmup_factor(step, warmup);
  if (step < warmup + stable) return 1.0;
  if (step < warmup + stable + decay) {
    const double progress =
        static_cast<double>(step - warmup - stable) / static_cast<double>(std::max<int64_t>(1, decay));
    const double value = std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * num_cycles * 2.0 * progress)));
    return (1.0 - min_lr_ratio) * value + min_lr_ratio;
  }
  return min_lr_ratio;
}

// cosine_with_min_lr: min_lr_rate = min_lr / optimizer.defaults["lr"] when min_lr is given.
double min_lr_rate_of(const SchedulerOptions& o, double default_lr) {
  return o.min_lr ? *o.min_lr / default_lr : o.min_lr_rate.value_or(0.0);
}

}  // namespace

double lr_lambda(const SchedulerOptions& o, double default_lr, int64_t step) {
  const int64_t w = o.num_warmup_steps, t = o.num_training_steps;
  switch (o.type) {
    case SchedulerType::kLinear:
      if (step < w) return warmup_factor(step, w);
      return std::max(0.0, static_cast<double>(t - step) / static_cast<double>(std::max<int64_t>(1, t - w)));
    case SchedulerType::kCosine:
      return cosine_lambda(step, w, t, o.num_cycles_or_default(), 0.0);
    case SchedulerType::kCosineWithRestarts:
      return restarts_lambda(step, w, t, o.num_cycles_or_default());
    case SchedulerType::kPolynomial:
      return polynomial_lambda(step, w, t, o.lr_end, o.power, default_lr);
    case SchedulerType::kConstant:
      return 1.0;
    case SchedulerType::kConstantWithWarmup:
      // HF divides by max(1.0, warmup) here and by max(1, warmup) elsewhere: the same double.
      return step < w ? warmup_factor(step, w) : 1.0;
    case SchedulerType::kInverseSqrt:
      return inverse_sqrt_lambda(step, w, o.timescale);
    case SchedulerType::kCosineWithMinLr:
      return cosine_lambda(step, w, t, o.num_cycles_or_default(), min_lr_rate_of(o, default_lr));
    case SchedulerType::kWarmupStableDecay:
      return wsd_lambda(step, w, o.num_stable_steps, o.num_decay_steps, o.num_cycles_or_default(), o.min_lr_ratio);
    case SchedulerType::kReduceLrOnPlateau:
      break;
  }
  fail_runtime("lr_lambda: {} is not a LambdaLR schedule", to_string(o.type));
}

void LRScheduler::step_metric(double) {
  fail_runtime("this learning-rate schedule is stepped after each optimizer step, not with a metric");
}

// ---------------------------------------------------------------------------------------------
// LambdaLR

LambdaLR::LambdaLR(Optimizer& optimizer, const SchedulerOptions& options) : optimizer_(optimizer), options_(options) {
  HFT_CHECK(options_.type != SchedulerType::kReduceLrOnPlateau,
            "reduce_lr_on_plateau is not a LambdaLR schedule: use scheduler_create");
  auto& groups = optimizer_.param_groups();
  HFT_CHECK(!groups.empty(), "a learning-rate schedule needs at least one parameter group");
  for (auto& g : groups) {
    if (g.initial_lr < 0) g.initial_lr = g.lr;
    base_lrs_.push_back(g.initial_lr);
  }
  default_lr_ = groups[0].initial_lr;
  // get_scheduler's own checks, at the same point (construction).
  if (options_.type == SchedulerType::kPolynomial) {
    HFT_CHECK(default_lr_ > options_.lr_end, "lr_scheduler_kwargs.lr_end ({}) must be smaller than initial lr ({})",
              options_.lr_end, default_lr_);
    // HF divides by num_training_steps - num_warmup_steps at that step: ZeroDivisionError.
    HFT_CHECK(options_.num_warmup_steps != options_.num_training_steps,
              "polynomial needs num_training_steps ({}) != num_warmup_steps ({}): HF divides by their difference",
              options_.num_training_steps, options_.num_warmup_steps);
  }
  if (options_.type == SchedulerType::kCosineWithMinLr) {
    HFT_CHECK(!(options_.min_lr && options_.min_lr_rate), "Only one of min_lr or min_lr_rate should be set");
    HFT_CHECK(options_.min_lr || options_.min_lr_rate,
              "One of min_lr or min_lr_rate should be set through the `lr_scheduler_kwargs`");
  }
  step();
}

LambdaLR::LambdaLR(Optimizer& optimizer, SchedulerType type, int64_t warmup, int64_t total, double num_cycles)
    : LambdaLR(optimizer, [&] {
        SchedulerOptions o;
        o.type = type;
        o.num_warmup_steps = warmup;
        o.num_training_steps = total;
        if (type == SchedulerType::kCosine) o.num_cycles = num_cycles;
        return o;
      }()) {}

void LambdaLR::step() {
  ++step_count_;
  ++last_epoch_;
  apply();
}

void LambdaLR::apply() {
  last_lr_.clear();
  auto& groups = optimizer_.param_groups();
  const double factor = lr_lambda(options_, default_lr_, last_epoch_);
  for (size_t i = 0; i < groups.size(); ++i) {
    groups[i].lr = base_lrs_[i] * factor;
    last_lr_.push_back(groups[i].lr);
  }
}

c10::IValue LambdaLR::state_dict() const {
  c10::impl::GenericList base(c10::FloatType::get()), last(c10::FloatType::get()), lambdas(c10::AnyType::get());
  for (double v : base_lrs_) base.push_back(v);
  for (double v : last_lr_) last.push_back(v);
  for (size_t i = 0; i < base_lrs_.size(); ++i) lambdas.push_back(optim_state::new_dict());
  auto d = optim_state::new_dict();
  d.insert("base_lrs", base);
  d.insert("last_epoch", last_epoch_);
  d.insert("verbose", false);
  d.insert("_step_count", step_count_);
  d.insert("_get_lr_called_within_step", false);
  d.insert("_last_lr", last);
  d.insert("lr_lambdas", lambdas);
  return d;
}

void LambdaLR::load_state_dict(const c10::IValue& state, const std::string& where) {
  HFT_CHECK(state.isGenericDict(), "{}: expected LambdaLR's state_dict (a dict)", where);
  auto base_v = optim_state::dict_get(state, "base_lrs", where);
  auto epoch_v = optim_state::dict_get(state, "last_epoch", where);
  auto count_v = optim_state::dict_get(state, "_step_count", where);
  HFT_CHECK(base_v.isList(), "{}: base_lrs must be a list (is this ReduceLROnPlateau's state?)", where);
  HFT_CHECK(epoch_v.isInt() && count_v.isInt(), "{}: last_epoch and _step_count must be integers", where);
  auto base = base_v.toList();
  HFT_CHECK(base.size() == base_lrs_.size(), "{}: {} base_lrs, the optimizer has {} groups", where, base.size(),
            base_lrs_.size());
  for (size_t i = 0; i < base.size(); ++i) base_lrs_[i] = optim_state::as_double(base.get(i), "base_lrs", where);
  last_epoch_ = epoch_v.toInt();
  step_count_ = count_v.toInt();
  apply();
}

std::unique_ptr<LRScheduler> scheduler_create(Optimizer& optimizer, const SchedulerOptions& options) {
  if (options.type == SchedulerType::kReduceLrOnPlateau)
    return std::make_unique<ReduceLROnPlateau>(optimizer, options.plateau);
  return std::make_unique<LambdaLR>(optimizer, options);
}

}  // namespace hftrain
