// HF's EarlyStoppingCallback: stop when metric_for_best_model has not improved by more than
// early_stopping_threshold for early_stopping_patience evaluations. Its counter is saved in
// trainer_state.json's stateful_callbacks and restored on resume.
#pragma once

#include "hftrain/train/callback.h"

namespace hftrain {

struct EarlyStoppingOptions {
  int64_t early_stopping_patience = 1;
  double early_stopping_threshold = 0.0;
};

class EarlyStoppingCallback : public Callback {
 public:
  explicit EarlyStoppingCallback(EarlyStoppingOptions o) : o_(o) {}
  // From the config's options; unknown keys and bad values are user errors naming `where`.
  static std::unique_ptr<Callback> create(const Json& options, const std::string& where);

  std::string name() const override { return "EarlyStoppingCallback"; }
  void on_train_begin(const Args& a, State& s, Control& c) override;
  void on_evaluate(const Args& a, State& s, Control& c, const Json& metrics) override;
  Json state() const override;
  void restore(const Json& state, const std::string& where) override;
  int64_t patience_counter() const { return counter_; }

 private:
  EarlyStoppingOptions o_;
  int64_t counter_ = 0;
};

}  // namespace hftrain
