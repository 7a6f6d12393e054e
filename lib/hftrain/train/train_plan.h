// A run's accumulation arithmetic in one place: how many batches an epoch has, how many
// optimizer steps they make, how long the run is, and where the data stands after a step.
#pragma once

#include <cstdint>

namespace hftrain {

// Where the train data stands between two optimizer steps: the epoch, and how many of its
// batches this process's loader has handed out. A resume starts the loader there.
struct DataPosition {
  int64_t epoch = 0;
  int64_t batches_in_epoch = 0;
};

struct TrainPlan {
  int64_t batches_per_epoch = 0;  // len(train_dataloader): this rank's batches in an epoch
  int64_t accumulation = 1;       // gradient_accumulation_steps
  int64_t steps_per_epoch = 0;    // optimizer steps an epoch really takes: ceil(batches / GA)
  int64_t max_steps = 0;
  int64_t num_epochs = 0;         // the epoch loop's bound

  // HF's sizing (trainer.py _inner_training_loop): max_steps when > 0, else
  // ceil(num_train_epochs x updates per epoch), updates counted as floor(batches / GA)
  // although an epoch's shorter last window is an optimizer step too.
  static TrainPlan make(int64_t batches_per_epoch, int64_t accumulation, int64_t max_steps,
                        double num_train_epochs);

  // The micro-batches [first, end) of the optimizer step that starts at batch `first`.
  int64_t window_end(int64_t first) const {
    return first + accumulation < batches_per_epoch ? first + accumulation : batches_per_epoch;
  }
  // After `step` optimizer steps from the start of this plan: every epoch makes
  // steps_per_epoch steps, each of `accumulation` batches (the last one maybe fewer).
  DataPosition position_of(int64_t step) const;
  // A saved position, moved to the next epoch's start when it is at an epoch's end.
  DataPosition normalize(DataPosition p) const;
};

}  // namespace hftrain
