#include "hftrain/optim/scheduler.h"

#include "hftrain/core/error.h"

#include <ATen/core/Dict.h>

#include <algorithm>
#include <cmath>

namespace hftrain {

double lr_lambda(SchedulerType type, int64_t step, int64_t warmup, int64_t total, double num_cycles) {
  const double s = static_cast<double>(step);
  if (step < warmup) {
    // constant_with_warmup divides by max(1.0, warmup) and the others by max(1, warmup): equal.
    return s / static_cast<double>(std::max<int64_t>(1, warmup));
  }
  switch (type) {
    case SchedulerType::kLinear:
      return std::max(0.0, static_cast<double>(total - step) / static_cast<double>(std::max<int64_t>(1, total - warmup)));
    case SchedulerType::kCosine: {
      double progress = static_cast<double>(step - warmup) / static_cast<double>(std::max<int64_t>(1, total - warmup));
      return std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * num_cycles * 2.0 * progress)));
    }
    case SchedulerType::kConstantWithWarmup:
      return 1.0;
  }
  return 1.0;
}

LambdaLR::LambdaLR(Optimizer& optimizer, SchedulerType type, int64_t warmup, int64_t total, double num_cycles)
    : optimizer_(optimizer), type_(type), warmup_(warmup), total_(total), num_cycles_(num_cycles) {
  for (auto& g : optimizer_.param_groups()) {
    if (g.initial_lr < 0) g.initial_lr = g.lr;
    base_lrs_.push_back(g.initial_lr);
  }
  step();
}

void LambdaLR::step() {
  ++step_count_;
  ++last_epoch_;
  apply();
}

void LambdaLR::apply() {
  last_lr_.clear();
  auto& groups = optimizer_.param_groups();
  for (size_t i = 0; i < groups.size(); ++i) {
    groups[i].lr = base_lrs_[i] * lr_lambda(type_, last_epoch_, warmup_, total_, num_cycles_);
    last_lr_.push_back(groups[i].lr);
  }
}

c10::IValue LambdaLR::state_dict() const {
  c10::impl::GenericList base(c10::FloatType::get()), last(c10::FloatType::get()), lambdas(c10::AnyType::get());
  for (double v : base_lrs_) base.push_back(v);
  for (double v : last_lr_) last.push_back(v);
  for (size_t i = 0; i < base_lrs_.size(); ++i)
    lambdas.push_back(c10::impl::GenericDict(c10::StringType::get(), c10::AnyType::get()));
  c10::impl::GenericDict d(c10::StringType::get(), c10::AnyType::get());
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
  auto d = state.toGenericDict();
  for (const char* key : {"base_lrs", "last_epoch", "_step_count"})
    HFT_CHECK(d.contains(key), "{}: missing key \"{}\"", where, key);
  auto base = d.at("base_lrs").toList();
  HFT_CHECK(base.size() == base_lrs_.size(), "{}: {} base_lrs, the optimizer has {} groups", where, base.size(),
            base_lrs_.size());
  for (size_t i = 0; i < base.size(); ++i) base_lrs_[i] = base.get(i).toDouble();
  last_epoch_ = d.at("last_epoch").toInt();
  step_count_ = d.at("_step_count").toInt();
  apply();
}

}  // namespace hftrain
