#include "hftrain/config/training_arguments.h"

#include <cmath>

namespace hftrain {

int64_t TrainingArguments::get_warmup_steps(int64_t num_training_steps) const {
  if (warmup_steps >= 1) return static_cast<int64_t>(warmup_steps);
  const double ratio = warmup_steps > 0 ? warmup_steps : warmup_ratio;
  return static_cast<int64_t>(std::ceil(num_training_steps * ratio));
}

const NameTable<SchedulerType>& scheduler_type_names() {
  static const NameTable<SchedulerType> t = {{"linear", SchedulerType::kLinear},
                                             {"cosine", SchedulerType::kCosine},
                                             {"cosine_with_restarts", SchedulerType::kCosineWithRestarts},
                                             {"polynomial", SchedulerType::kPolynomial},
                                             {"constant", SchedulerType::kConstant},
                                             {"constant_with_warmup", SchedulerType::kConstantWithWarmup},
                                             {"inverse_sqrt", SchedulerType::kInverseSqrt},
                                             {"reduce_lr_on_plateau", SchedulerType::kReduceLrOnPlateau},
                                             {"cosine_with_min_lr", SchedulerType::kCosineWithMinLr},
                                             {"warmup_stable_decay", SchedulerType::kWarmupStableDecay}};
  return t;
}

const NameTable<IntervalStrategy>& interval_strategy_names() {
  static const NameTable<IntervalStrategy> t = {
      {"no", IntervalStrategy::kNo}, {"steps", IntervalStrategy::kSteps}, {"epoch", IntervalStrategy::kEpoch}};
  return t;
}

const NameTable<SaveStrategy>& save_strategy_names() {
  static const NameTable<SaveStrategy> t = {{"no", SaveStrategy::kNo},
                                            {"steps", SaveStrategy::kSteps},
                                            {"epoch", SaveStrategy::kEpoch},
                                            {"best", SaveStrategy::kBest}};
  return t;
}

const NameTable<TrainSampling>& train_sampling_names() {
  static const NameTable<TrainSampling> t = {{"random", TrainSampling::kRandom},
                                             {"sequential", TrainSampling::kSequential},
                                             {"group_by_length", TrainSampling::kGroupByLength}};
  return t;
}

namespace {
template <typename E>
std::string lookup(const NameTable<E>& table, E e) {
  for (const auto& [name, v] : table)
    if (v == e) return name;
  return "?";
}
}  // namespace

std::string to_string(SchedulerType t) { return lookup(scheduler_type_names(), t); }
std::string to_string(IntervalStrategy s) { return lookup(interval_strategy_names(), s); }
std::string to_string(SaveStrategy s) { return lookup(save_strategy_names(), s); }

}  // namespace hftrain
