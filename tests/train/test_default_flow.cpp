// DefaultFlowCallback decides when to log, evaluate and save as transformers'
// trainer_callback.py does. Expected steps are worked out by hand from HF's rules for a run of
// 10 steps, 4 steps per epoch (epochs end at steps 4, 8, and the run stops at 10).
#include "hftrain/train/callback.h"

#include <catch2/catch.hpp>

#include <set>

using namespace hftrain;

namespace {

struct Schedule {
  std::vector<int64_t> log, eval, save;
};

Schedule simulate(const TrainingArguments& a, int64_t logging_steps, int64_t eval_steps, int64_t save_steps) {
  CallbackHandler h;
  h.add(std::make_unique<DefaultFlowCallback>());
  TrainerState s;
  TrainerControl c;
  s.max_steps = 10;
  s.logging_steps = logging_steps, s.eval_steps = eval_steps, s.save_steps = save_steps;
  Schedule out;
  auto act = [&] {  // what the trainer does with the flags, as _maybe_log_save_evaluate
    if (c.should_log) out.log.push_back(s.global_step), h.on_log(a, s, c, nlohmann::json::object());
    if (c.should_evaluate) out.eval.push_back(s.global_step), h.on_evaluate(a, s, c, nlohmann::json::object());
    if (c.should_save) out.save.push_back(s.global_step), h.on_save(a, s, c);
  };
  for (int64_t epoch = 0; epoch < 3 && !c.should_training_stop; ++epoch) {
    h.on_epoch_begin(a, s, c);
    for (int64_t i = 0; i < 4; ++i) {
      h.on_step_begin(a, s, c);
      s.global_step += 1;
      s.epoch = static_cast<double>(s.global_step) / 4.0;
      h.on_step_end(a, s, c);
      act();
      if (c.should_training_stop) break;
    }
    h.on_epoch_end(a, s, c);
    act();
  }
  return out;
}

using V = std::vector<int64_t>;

}  // namespace

TEST_CASE("steps strategies log, evaluate and save on multiples, and save at the last step", "[unit][train]") {
  TrainingArguments a;
  a.eval_strategy = IntervalStrategy::kSteps;
  Schedule s = simulate(a, 3, 4, 5);
  CHECK(s.log == V{3, 6, 9});
  CHECK(s.eval == V{4, 8});
  CHECK(s.save == V{5, 10});
}

TEST_CASE("epoch strategies act at each epoch end, including the epoch cut short at max_steps", "[unit][train]") {
  TrainingArguments a;
  a.logging_strategy = IntervalStrategy::kEpoch;
  a.eval_strategy = IntervalStrategy::kEpoch;
  a.save_strategy = SaveStrategy::kEpoch;
  Schedule s = simulate(a, 3, 4, 5);
  CHECK(s.log == V{4, 8, 10});
  CHECK(s.eval == V{4, 8, 10});
  CHECK(s.save == V{4, 8, 10});  // step 10's save comes at step end (the run's end), not twice
}

TEST_CASE("no strategies never act, but steps saving still saves the end", "[unit][train]") {
  TrainingArguments a;
  a.logging_strategy = IntervalStrategy::kNo;
  a.save_strategy = SaveStrategy::kNo;
  Schedule s = simulate(a, 3, 4, 5);
  CHECK(s.log.empty());
  CHECK(s.eval.empty());
  CHECK(s.save.empty());
  a.save_strategy = SaveStrategy::kSteps;
  CHECK(simulate(a, 3, 4, 20).save == V{10});
}

TEST_CASE("logging_first_step logs step 1, eval_delay holds evaluation back", "[unit][train]") {
  TrainingArguments a;
  a.logging_first_step = true;
  a.eval_strategy = IntervalStrategy::kSteps;
  a.eval_delay = 5;
  Schedule s = simulate(a, 3, 2, 100);
  CHECK(s.log == V{1, 3, 6, 9});
  CHECK(s.eval == V{6, 8, 10});
  a.eval_strategy = IntervalStrategy::kEpoch;
  a.eval_delay = 1.5;  // in epochs
  CHECK(simulate(a, 3, 2, 100).eval == V{8, 10});
}

TEST_CASE("save_strategy best never saves on a schedule, not even at the end", "[unit][train]") {
  TrainingArguments a;
  a.save_strategy = SaveStrategy::kBest;
  CHECK(simulate(a, 3, 4, 5).save.empty());
}

TEST_CASE("every combination of logging, eval and save strategies gives each flag its own schedule", "[unit][train]") {
  // Per HF's rules each decision depends only on its own strategy: steps -> multiples of its
  // step count (3 for logging, 4 for eval, 5 for save, plus the last step for save), epoch ->
  // the epoch ends 4, 8 and the cut-short last epoch at 10, no -> never.
  const V log_for[] = {{}, {3, 6, 9}, {4, 8, 10}};
  const V eval_for[] = {{}, {4, 8}, {4, 8, 10}};
  const V save_for[] = {{}, {5, 10}, {4, 8, 10}};
  const IntervalStrategy interval[] = {IntervalStrategy::kNo, IntervalStrategy::kSteps, IntervalStrategy::kEpoch};
  const SaveStrategy save[] = {SaveStrategy::kNo, SaveStrategy::kSteps, SaveStrategy::kEpoch};
  for (int l = 0; l < 3; ++l)
    for (int e = 0; e < 3; ++e)
      for (int s = 0; s < 3; ++s) {
        TrainingArguments a;
        a.logging_strategy = interval[l];
        a.eval_strategy = interval[e];
        a.save_strategy = save[s];
        INFO("logging " << l << " eval " << e << " save " << s);
        Schedule got = simulate(a, 3, 4, 5);
        CHECK(got.log == log_for[l]);
        CHECK(got.eval == eval_for[e]);
        CHECK(got.save == save_for[s]);
      }
}
