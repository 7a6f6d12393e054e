// loss.svg in output_dir: train loss, eval loss and learning rate against the step, redrawn
// from state.log_history at each save and at the end. Plain SVG, no dependencies.
#pragma once

#include "hftrain/train/callback.h"

namespace hftrain {

class PlotCallback : public Callback {
 public:
  std::string name() const override { return "PlotCallback"; }
  void on_save(const Args& a, State& s, Control& c) override { write(a, s); }
  void on_train_end(const Args& a, State& s, Control& c) override { write(a, s); }

  // The SVG text for a log history (exposed for tests).
  static std::string render(const Json& log_history);

 private:
  void write(const Args& a, const State& s);
};

}  // namespace hftrain
