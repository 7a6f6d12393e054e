#include "hftrain/train/callbacks/tensorboard.h"

namespace hftrain {

void TensorBoardCallback::on_train_begin(const Args& a, State& s, Control& c) {
  if (s.is_world_process_zero && !writer_) writer_ = std::make_unique<io::EventWriter>(a.logging_dir);
}

void TensorBoardCallback::on_log(const Args& a, State& s, Control& c, const Json& logs) {
  if (!writer_) on_train_begin(a, s, c);  // evaluate-only runs log without training
  if (!writer_) return;
  for (const auto& [k, v] : logs.items()) {
    if (!v.is_number() || k == "step") continue;  // HF's logs carry no step; it is the x axis
    std::string tag = k.rfind("eval_", 0) == 0 ? "eval/" + k.substr(5)
                      : k.rfind("test_", 0) == 0 ? "test/" + k.substr(5)
                                                 : "train/" + k;
    writer_->add_scalar(tag, v.get<float>(), s.global_step);
  }
  writer_->flush();
}

void TensorBoardCallback::on_train_end(const Args& a, State& s, Control& c) {
  if (writer_) writer_->flush();
}

}  // namespace hftrain
