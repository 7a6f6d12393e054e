// TrainPlan's arithmetic against transformers 4.48's _inner_training_loop, worked by hand:
// num_update_steps_per_epoch = max(len(dataloader) // GA, 1); max_steps = ceil(epochs x that)
// or the given max_steps, num_train_epochs = max_steps // updates + (max_steps % updates > 0).
#include "hftrain/train/train_plan.h"

#include <catch2/catch.hpp>

using hftrain::DataPosition;
using hftrain::TrainPlan;

TEST_CASE("TrainPlan sizes a run as HF does", "[unit][train_plan]") {
  // 10 batches, GA 4: HF counts 2 updates per epoch; an epoch really takes 3 steps.
  const TrainPlan p = TrainPlan::make(10, 4, 0, 3.0);
  CHECK(p.steps_per_epoch == 3);
  CHECK(p.max_steps == 6);
  CHECK(p.num_epochs == 3);
  const TrainPlan q = TrainPlan::make(10, 4, 5, 3.0);  // max_steps wins: ceil(5 / 2) epochs
  CHECK(q.max_steps == 5);
  CHECK(q.num_epochs == 3);
  const TrainPlan r = TrainPlan::make(3, 4, 0, 1.5);  // fewer batches than GA: one update
  CHECK(r.max_steps == 2);
  CHECK(r.num_epochs == 2);
}

TEST_CASE("TrainPlan windows and positions follow the accumulation", "[unit][train_plan]") {
  const TrainPlan p = TrainPlan::make(10, 4, 0, 3.0);
  CHECK(p.window_end(0) == 4);
  CHECK(p.window_end(8) == 10);  // the epoch's short last window
  auto pos = [](DataPosition d) { return std::make_pair(d.epoch, d.batches_in_epoch); };
  CHECK(pos(p.position_of(0)) == std::make_pair<int64_t, int64_t>(0, 0));
  CHECK(pos(p.position_of(2)) == std::make_pair<int64_t, int64_t>(0, 8));
  CHECK(pos(p.position_of(3)) == std::make_pair<int64_t, int64_t>(1, 0));
  CHECK(pos(p.position_of(5)) == std::make_pair<int64_t, int64_t>(1, 8));
  CHECK(pos(p.normalize({0, 10})) == std::make_pair<int64_t, int64_t>(1, 0));
  CHECK(pos(p.normalize({1, 4})) == std::make_pair<int64_t, int64_t>(1, 4));
}
