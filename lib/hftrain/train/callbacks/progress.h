// What the user watches. On a terminal (and unless disable_tqdm): a live bar with
// step/total, the last loss and learning rate, it/s and ETA, with each log printed above
// it. Otherwise: each log as one plain line (HF's PrinterCallback).
#pragma once

#include "hftrain/train/callback.h"

#include <chrono>

namespace hftrain {

class ProgressCallback : public Callback {
 public:
  // terminal: stdout is a terminal (a live bar is drawn there unless disable_tqdm).
  explicit ProgressCallback(bool terminal) : terminal_(terminal) {}
  std::string name() const override { return "ProgressCallback"; }
  void on_train_begin(const Args& a, State& s, Control& c) override;
  void on_step_end(const Args& a, State& s, Control& c) override;
  void on_log(const Args& a, State& s, Control& c, const Json& logs) override;
  void on_train_end(const Args& a, State& s, Control& c) override;

 private:
  void draw(const State& s);
  bool live(const Args& a) const { return terminal_ && !a.disable_tqdm.value_or(false); }
  bool terminal_;
  std::chrono::steady_clock::time_point start_;
  int64_t start_step_ = 0;
  double loss_ = NAN, lr_ = NAN;
};

}  // namespace hftrain
