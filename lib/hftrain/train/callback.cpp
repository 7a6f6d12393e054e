#include "hftrain/train/callback.h"

#include "hftrain/core/error.h"
#include "hftrain/io/atomic_file.h"

#include "hftrain/core/log.h"
#include "hftrain/core/strings.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <cstdio>
#include <fstream>

namespace hftrain {

CallbackRegistry& callback_registry() {
  static CallbackRegistry r("callback");
  return r;
}

#define HFT_FORWARD(event)                                                                  \
  void CallbackHandler::event(const Callback::Args& a, TrainerState& s, TrainerControl& c) { \
    for (auto& cb : callbacks_) cb->event(a, s, c);                                         \
  }
HFT_FORWARD(on_init_end)
HFT_FORWARD(on_train_end)
HFT_FORWARD(on_epoch_end)
HFT_FORWARD(on_substep_end)
HFT_FORWARD(on_pre_optimizer_step)
HFT_FORWARD(on_optimizer_step)
HFT_FORWARD(on_step_end)
HFT_FORWARD(on_prediction_step)
#undef HFT_FORWARD

void CallbackHandler::on_train_begin(const Callback::Args& a, TrainerState& s, TrainerControl& c) {
  c.should_training_stop = false;
  for (auto& cb : callbacks_) cb->on_train_begin(a, s, c);
}

void CallbackHandler::on_epoch_begin(const Callback::Args& a, TrainerState& s, TrainerControl& c) {
  c.should_epoch_stop = false;
  for (auto& cb : callbacks_) cb->on_epoch_begin(a, s, c);
}

void CallbackHandler::on_step_begin(const Callback::Args& a, TrainerState& s, TrainerControl& c) {
  c.should_log = c.should_evaluate = c.should_save = false;
  for (auto& cb : callbacks_) cb->on_step_begin(a, s, c);
}

void CallbackHandler::on_evaluate(const Callback::Args& a, TrainerState& s, TrainerControl& c,
                                  const nlohmann::json& metrics) {
  c.should_evaluate = false;
  for (auto& cb : callbacks_) cb->on_evaluate(a, s, c, metrics);
}

void CallbackHandler::on_predict(const Callback::Args& a, TrainerState& s, TrainerControl& c,
                                 const nlohmann::json& metrics) {
  for (auto& cb : callbacks_) cb->on_predict(a, s, c, metrics);
}

void CallbackHandler::on_save(const Callback::Args& a, TrainerState& s, TrainerControl& c) {
  c.should_save = false;
  for (auto& cb : callbacks_) cb->on_save(a, s, c);
}

void CallbackHandler::on_log(const Callback::Args& a, TrainerState& s, TrainerControl& c,
                             const nlohmann::json& logs) {
  c.should_log = false;
  for (auto& cb : callbacks_) cb->on_log(a, s, c, logs);
}

void DefaultFlowCallback::on_step_end(const Args& a, State& s, Control& c) {
  if (s.global_step == 1 && a.logging_first_step) c.should_log = true;
  if (a.logging_strategy == IntervalStrategy::kSteps && s.global_step % s.logging_steps == 0) c.should_log = true;
  if (a.eval_strategy == IntervalStrategy::kSteps && s.global_step % s.eval_steps == 0 &&
      a.eval_delay <= static_cast<double>(s.global_step))
    c.should_evaluate = true;
  if (a.save_strategy == SaveStrategy::kSteps && s.global_step % s.save_steps == 0) c.should_save = true;
  if (s.global_step >= s.max_steps) {
    c.should_training_stop = true;
    // Save the last step (HF 4.48: steps only; epoch saving saves it at the epoch's end).
    if (a.save_strategy == SaveStrategy::kSteps) c.should_save = true;
  }
}

void DefaultFlowCallback::on_epoch_end(const Args& a, State& s, Control& c) {
  if (a.logging_strategy == IntervalStrategy::kEpoch) c.should_log = true;
  if (a.eval_strategy == IntervalStrategy::kEpoch && a.eval_delay <= s.epoch) c.should_evaluate = true;
  if (a.save_strategy == SaveStrategy::kEpoch) c.should_save = true;
}

namespace {

std::string log_path(const Callback::Args& a) { return a.output_dir + "/log.jsonl"; }

}  // namespace

void LogCallback::on_train_begin(const Args& a, State& s, Control& c) {
  if (!s.is_world_process_zero) return;
  std::string kept;
  if (s.global_step > 0) {
    std::ifstream in(log_path(a));
    for (std::string line; std::getline(in, line);) {
      const Json row = Json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (row.is_object() && row.value("step", INT64_MAX) <= s.global_step) kept += line + '\n';
    }
  }
  io::write_file_atomic(log_path(a), kept);
}

void LogCallback::on_log(const Args& a, State& s, Control& c, const Json& logs) {
  if (!s.is_world_process_zero) return;
  const std::string path = log_path(a);
  const std::string line = logs.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  struct stat st {};
  const bool opened = fd >= 0 && ::fstat(fd, &st) == 0;
  const ssize_t n = opened ? ::write(fd, line.data(), line.size()) : -1;
  const int err = n < 0 ? errno : ENOSPC;  // a short write is a full disk
  if (opened && n == static_cast<ssize_t>(line.size())) {
    ::close(fd);
    return;
  }
  // Cut a partial line back out, so the file stays one JSON object per line.
  if (opened && n > 0 && ::ftruncate(fd, st.st_size) != 0) {
    // nothing more to do: the warning below says the line was lost
  }
  if (fd >= 0) ::close(fd);
  if (lost_++ == 0)
    warn_line(fmt::format("cannot write {}: {}; this log line is lost (the run goes on; later losses are counted): {}",
                          path, std::strerror(opened ? err : errno), clip(line.substr(0, line.size() - 1))));
}

void LogCallback::on_train_end(const Args& a, State& s, Control& c) {
  if (lost_ > 0)
    warn_line(fmt::format("{} log line(s) could not be written to {}; trainer_state.json's log_history has them",
                          lost_, log_path(a)));
}

std::vector<std::string> default_callbacks(const TrainingArguments& args) {
  std::vector<std::string> names{"log", "progress", "plot"};
  for (const std::string& r : args.report_to) names.push_back(r);  // validated: tensorboard
  return names;
}

}  // namespace hftrain
