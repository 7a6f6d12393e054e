// report_to: tensorboard. Scalars named as HF's TensorBoardCallback names them (rewrite_logs):
// eval_x -> eval/x, test_x -> test/x, anything else -> train/x, at state.global_step, in an
// event file under logging_dir.
#pragma once

#include "hftrain/io/tfevents.h"
#include "hftrain/train/callback.h"

#include <memory>

namespace hftrain {

class TensorBoardCallback : public Callback {
 public:
  std::string name() const override { return "TensorBoardCallback"; }
  void on_train_begin(const Args& a, State& s, Control& c) override;
  void on_log(const Args& a, State& s, Control& c, const Json& logs) override;
  void on_train_end(const Args& a, State& s, Control& c) override;

 private:
  std::unique_ptr<io::EventWriter> writer_;
};

}  // namespace hftrain
