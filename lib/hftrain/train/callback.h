// Callbacks with transformers' events (trainer_callback.py). A callback reads the
// arguments and state and steers the loop through TrainerControl; when to log, evaluate
// and save is decided by DefaultFlowCallback, not inside the loop.
#pragma once

#include "hftrain/config/training_arguments.h"
#include "hftrain/train/trainer_state.h"

#include "hftrain/core/registry.h"

#include <memory>
#include <string>
#include <vector>

namespace hftrain {

class Callback {
 public:
  using Args = TrainingArguments;
  using State = TrainerState;
  using Control = TrainerControl;
  using Json = nlohmann::json;
  virtual ~Callback() = default;
  virtual std::string name() const = 0;  // HF's class name, the key in stateful_callbacks
  // HF's ExportableState: {"args": {...}, "attributes": {...}} saved in trainer_state.json's
  // stateful_callbacks at each checkpoint and given back on resume. Null: stateless.
  virtual Json state() const { return nullptr; }
  virtual void restore(const Json& state, const std::string& where) {}
  virtual void on_init_end(const Args&, State&, Control&) {}
  virtual void on_train_begin(const Args&, State&, Control&) {}
  virtual void on_train_end(const Args&, State&, Control&) {}
  virtual void on_epoch_begin(const Args&, State&, Control&) {}
  virtual void on_epoch_end(const Args&, State&, Control&) {}
  virtual void on_step_begin(const Args&, State&, Control&) {}
  virtual void on_substep_end(const Args&, State&, Control&) {}
  virtual void on_pre_optimizer_step(const Args&, State&, Control&) {}
  virtual void on_optimizer_step(const Args&, State&, Control&) {}
  virtual void on_step_end(const Args&, State&, Control&) {}
  virtual void on_evaluate(const Args&, State&, Control&, const Json& metrics) {}
  virtual void on_predict(const Args&, State&, Control&, const Json& metrics) {}
  virtual void on_prediction_step(const Args&, State&, Control&) {}
  virtual void on_save(const Args&, State&, Control&) {}
  virtual void on_log(const Args&, State&, Control&, const Json& logs) {}
};

// Calls every callback in order and resets the control flags as HF's CallbackHandler does.
class CallbackHandler {
 public:
  void add(std::unique_ptr<Callback> cb) { callbacks_.push_back(std::move(cb)); }
  const std::vector<std::unique_ptr<Callback>>& callbacks() const { return callbacks_; }

  void on_init_end(const Callback::Args& a, TrainerState& s, TrainerControl& c);
  void on_train_begin(const Callback::Args& a, TrainerState& s, TrainerControl& c);
  void on_train_end(const Callback::Args& a, TrainerState& s, TrainerControl& c);
  void on_epoch_begin(const Callback::Args& a, TrainerState& s, TrainerControl& c);
  void on_epoch_end(const Callback::Args& a, TrainerState& s, TrainerControl& c);
  void on_step_begin(const Callback::Args& a, TrainerState& s, TrainerControl& c);
  void on_substep_end(const Callback::Args& a, TrainerState& s, TrainerControl& c);
  void on_pre_optimizer_step(const Callback::Args& a, TrainerState& s, TrainerControl& c);
  void on_optimizer_step(const Callback::Args& a, TrainerState& s, TrainerControl& c);
  void on_step_end(const Callback::Args& a, TrainerState& s, TrainerControl& c);
  void on_evaluate(const Callback::Args& a, TrainerState& s, TrainerControl& c, const nlohmann::json& metrics);
  void on_predict(const Callback::Args& a, TrainerState& s, TrainerControl& c, const nlohmann::json& metrics);
  void on_prediction_step(const Callback::Args& a, TrainerState& s, TrainerControl& c);
  void on_save(const Callback::Args& a, TrainerState& s, TrainerControl& c);
  void on_log(const Callback::Args& a, TrainerState& s, TrainerControl& c, const nlohmann::json& logs);

 private:
  std::vector<std::unique_ptr<Callback>> callbacks_;
};

// Callbacks chosen in the config by name (`callbacks: [{name: early_stopping, ...}]`):
// factory(options, where) parses its own typed options. A C++ user adds one in a single file
// plus one line in builtins.cpp.
using CallbackRegistry = Registry<Callback, const nlohmann::json&, const std::string&>;

// A `callbacks:` entry of the config: a registry name and that callback's options.
struct CallbackSpec {
  std::string name;
  nlohmann::json options = nlohmann::json::object();
  std::string where;  // for the callback's own error messages
};

CallbackRegistry& callback_registry();

// HF's DefaultFlowCallback: log / evaluate / save on the steps or epochs the strategies
// say, and stop (with a save) at max_steps.
class DefaultFlowCallback : public Callback {
 public:
  std::string name() const override { return "DefaultFlowCallback"; }
  void on_step_end(const Args& a, State& s, Control& c) override;
  void on_epoch_end(const Args& a, State& s, Control& c) override;
};

// Appends each log as one JSON line to <output_dir>/log.jsonl (rank 0). A fresh run starts
// it anew; a resumed one keeps the lines up to its checkpoint's step (as HF's log_history
// comes back from trainer_state.json) and goes on from there, so a run over an old
// output_dir or a resume after a preemption never shows two runs' lines mixed. A line that
// cannot be written (a full disk) is reported on stderr and cut back out, never left half.
class LogCallback : public Callback {
 public:
  std::string name() const override { return "LogCallback"; }
  void on_train_begin(const Args& a, State& s, Control& c) override;
  void on_log(const Args& a, State& s, Control& c, const Json& logs) override;
  void on_train_end(const Args& a, State& s, Control& c) override;

 private:
  int64_t lost_ = 0;
};

// The callbacks every Trainer has on rank 0, by their registry names (registered in
// builtins): log, progress and plot, and what report_to names (tensorboard).
std::vector<std::string> default_callbacks(const TrainingArguments& args);

}  // namespace hftrain
