// torch 1.13's ReduceLROnPlateau (torch/optim/lr_scheduler.py), step for step, and its
// state_dict: the object's __dict__ without the optimizer, in attribute order.
#include "hftrain/core/error.h"
#include "hftrain/optim/scheduler.h"
#include "hftrain/optim/state_dict_util.h"

#include <ATen/core/Dict.h>
#include <ATen/core/List.h>
#include <fmt/format.h>

#include <algorithm>
#include <limits>

namespace hftrain {

namespace {

const char* mode_name(PlateauOptions::Mode m) { return m == PlateauOptions::Mode::kMin ? "min" : "max"; }
const char* threshold_mode_name(PlateauOptions::ThresholdMode m) {
  return m == PlateauOptions::ThresholdMode::kRel ? "rel" : "abs";
}

}  // namespace

ReduceLROnPlateau::ReduceLROnPlateau(Optimizer& optimizer, const PlateauOptions& options)
    : optimizer_(optimizer), o_(options) {
  HFT_CHECK(o_.factor < 1.0, "lr_scheduler_kwargs.factor must be < 1.0, got {}", o_.factor);
  const size_t n = optimizer_.param_groups().size();
  if (o_.min_lrs.empty()) {
    min_lrs_.assign(n, o_.min_lr);
  } else {
    HFT_CHECK(o_.min_lrs.size() == n,
              "lr_scheduler_kwargs.min_lr: expected {} min_lrs (one per parameter group), got {}", n,
              o_.min_lrs.size());
    min_lrs_ = o_.min_lrs;
  }
  mode_worse_ = o_.mode == PlateauOptions::Mode::kMin ? std::numeric_limits<double>::infinity()
                                                       : -std::numeric_limits<double>::infinity();
  best_ = mode_worse_;
  for (const auto& g : optimizer_.param_groups()) last_lr_.push_back(g.lr);
}

bool ReduceLROnPlateau::is_better(double a, double best) const {
  const bool rel = o_.threshold_mode == PlateauOptions::ThresholdMode::kRel;
  if (o_.mode == PlateauOptions::Mode::kMin) return rel ? a < best * (1. - o_.threshold) : a < best - o_.threshold;
  return rel ? a > best * (o_.threshold + 1.) : a > best + o_.threshold;
}

void ReduceLROnPlateau::step_metric(double current) {
  last_epoch_ += 1;
  if (is_better(current, best_)) {
    best_ = current;
    num_bad_epochs_ = 0;
  } else {
    num_bad_epochs_ += 1;
  }
  if (cooldown_counter_ > 0) {
    cooldown_counter_ -= 1;
    num_bad_epochs_ = 0;  // bad epochs in cooldown do not count
  }
  auto& groups = optimizer_.param_groups();
  if (num_bad_epochs_ > o_.patience) {
    for (size_t i = 0; i < groups.size(); ++i) {
      const double old_lr = groups[i].lr;
      const double new_lr = std::max(old_lr * o_.factor, min_lrs_[i]);
      if (old_lr - new_lr > o_.eps) {
        groups[i].lr = new_lr;
        if (o_.verbose)
          fmt::print("Epoch {:05d}: reducing learning rate of group {} to {:.4e}.\n", last_epoch_, i, new_lr);
      }
    }
    cooldown_counter_ = o_.cooldown;
    num_bad_epochs_ = 0;
  }
  last_lr_.clear();
  for (const auto& g : groups) last_lr_.push_back(g.lr);
  stepped_ = true;
}

c10::IValue ReduceLROnPlateau::state_dict() const {
  c10::impl::GenericList min_lrs(c10::FloatType::get()), last(c10::FloatType::get());
  for (double v : min_lrs_) min_lrs.push_back(v);
  for (double v : last_lr_) last.push_back(v);
  auto d = optim_state::new_dict();
  d.insert("factor", o_.factor);
  d.insert("min_lrs", min_lrs);
  d.insert("patience", o_.patience);
  d.insert("verbose", o_.verbose);
  d.insert("cooldown", o_.cooldown);
  d.insert("cooldown_counter", cooldown_counter_);
  d.insert("mode", std::string(mode_name(o_.mode)));
  d.insert("threshold", o_.threshold);
  d.insert("threshold_mode", std::string(threshold_mode_name(o_.threshold_mode)));
  d.insert("best", best_);
  d.insert("num_bad_epochs", num_bad_epochs_);
  d.insert("mode_worse", mode_worse_);
  d.insert("eps", o_.eps);
  d.insert("last_epoch", last_epoch_);
  if (stepped_) d.insert("_last_lr", last);
  return d;
}

// torch: self.__dict__.update(state_dict), then the modes are checked again. The settings saved
// in the file replace the constructor's, as in torch; the groups' lr come from optimizer.pt.
void ReduceLROnPlateau::load_state_dict(const c10::IValue& state, const std::string& where) {
  using optim_state::as_double;
  using optim_state::dict_get;
  HFT_CHECK(state.isGenericDict(), "{}: expected ReduceLROnPlateau's state_dict (a dict)", where);
  auto as_int = [&](const char* key) {
    c10::IValue v = dict_get(state, key, where);
    HFT_CHECK(v.isInt(), "{}: {} must be an integer", where, key);
    return v.toInt();
  };
  auto as_string = [&](const char* key) {
    c10::IValue v = dict_get(state, key, where);
    HFT_CHECK(v.isString(), "{}: {} must be a string", where, key);
    return v.toStringRef();
  };
  PlateauOptions o = o_;
  const std::string mode = as_string("mode"), threshold_mode = as_string("threshold_mode");
  HFT_CHECK(mode == "min" || mode == "max", "{}: mode {} is unknown!", where, mode);
  HFT_CHECK(threshold_mode == "rel" || threshold_mode == "abs", "{}: threshold mode {} is unknown!", where,
            threshold_mode);
  o.mode = mode == "min" ? PlateauOptions::Mode::kMin : PlateauOptions::Mode::kMax;
  o.threshold_mode =
      threshold_mode == "rel" ? PlateauOptions::ThresholdMode::kRel : PlateauOptions::ThresholdMode::kAbs;
  o.factor = as_double(dict_get(state, "factor", where), "factor", where);
  o.patience = as_int("patience");
  o.cooldown = as_int("cooldown");
  o.threshold = as_double(dict_get(state, "threshold", where), "threshold", where);
  o.eps = as_double(dict_get(state, "eps", where), "eps", where);
  c10::IValue verbose = dict_get(state, "verbose", where);
  HFT_CHECK(verbose.isBool(), "{}: verbose must be a bool", where);
  o.verbose = verbose.toBool();
  c10::IValue min_lrs_v = dict_get(state, "min_lrs", where);
  HFT_CHECK(min_lrs_v.isList(), "{}: min_lrs must be a list", where);
  auto min_lrs = min_lrs_v.toList();
  HFT_CHECK(min_lrs.size() == min_lrs_.size(), "{}: {} min_lrs, the optimizer has {} groups", where, min_lrs.size(),
            min_lrs_.size());
  std::vector<double> loaded_min_lrs;
  for (size_t i = 0; i < min_lrs.size(); ++i) loaded_min_lrs.push_back(as_double(min_lrs.get(i), "min_lrs", where));
  const double best = as_double(dict_get(state, "best", where), "best", where);
  const int64_t num_bad = as_int("num_bad_epochs"), cooldown_counter = as_int("cooldown_counter");
  const int64_t last_epoch = as_int("last_epoch");

  o.min_lrs = loaded_min_lrs;
  o_ = o;
  min_lrs_ = loaded_min_lrs;
  best_ = best;
  num_bad_epochs_ = num_bad;
  cooldown_counter_ = cooldown_counter;
  last_epoch_ = last_epoch;
  mode_worse_ = o_.mode == PlateauOptions::Mode::kMin ? std::numeric_limits<double>::infinity()
                                                       : -std::numeric_limits<double>::infinity();
  auto d = state.toGenericDict();
  stepped_ = d.contains("_last_lr");
  if (stepped_) {
    c10::IValue last_v = d.at("_last_lr");
    HFT_CHECK(last_v.isList(), "{}: _last_lr must be a list", where);
    auto last = last_v.toList();
    last_lr_.clear();
    for (size_t i = 0; i < last.size(); ++i) last_lr_.push_back(as_double(last.get(i), "_last_lr", where));
  }
}

}  // namespace hftrain
