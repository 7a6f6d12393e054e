#include "hftrain/train/train_plan.h"

#include "hftrain/core/error.h"

#include <algorithm>
#include <cmath>

namespace hftrain {

TrainPlan TrainPlan::make(int64_t batches_per_epoch, int64_t accumulation, int64_t max_steps,
                          double num_train_epochs) {
  HFT_CHECK(accumulation > 0, "gradient_accumulation_steps must be >= 1, got {}", accumulation);
  TrainPlan p;
  p.batches_per_epoch = batches_per_epoch;
  p.accumulation = accumulation;
  p.steps_per_epoch = (batches_per_epoch + accumulation - 1) / accumulation;
  const int64_t updates = std::max<int64_t>(batches_per_epoch / accumulation, 1);
  if (max_steps > 0) {
    p.max_steps = max_steps;
    p.num_epochs = max_steps / updates + (max_steps % updates > 0);
  } else {
    p.max_steps = static_cast<int64_t>(std::ceil(num_train_epochs * static_cast<double>(updates)));
    p.num_epochs = static_cast<int64_t>(std::ceil(num_train_epochs));
  }
  return p;
}

DataPosition TrainPlan::position_of(int64_t step) const {
  return {step / steps_per_epoch, (step % steps_per_epoch) * accumulation};
}

DataPosition TrainPlan::normalize(DataPosition p) const {
  if (p.batches_in_epoch >= batches_per_epoch) return {p.epoch + 1, 0};
  return p;
}

}  // namespace hftrain
