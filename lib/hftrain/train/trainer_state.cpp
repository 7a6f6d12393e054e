#include "hftrain/train/trainer_state.h"

#include "hftrain/core/error.h"

#include <cmath>

namespace hftrain {

using json = nlohmann::json;

json trainer_state_to_json(const TrainerState& s) {
  auto opt = [](const auto& o) -> json { return o ? json(*o) : json(nullptr); };
  // transformers 4.48's TrainerState fields, no more: HF builds TrainerState(**json), so a
  // key it does not know (4.50's best_global_step) stops it from resuming.
  return json{{"best_metric", opt(s.best_metric)},
              {"best_model_checkpoint", opt(s.best_model_checkpoint)},
              {"epoch", s.epoch},
              {"eval_steps", s.eval_steps},
              {"global_step", s.global_step},
              {"is_hyper_param_search", s.is_hyper_param_search},
              {"is_local_process_zero", s.is_local_process_zero},
              {"is_world_process_zero", s.is_world_process_zero},
              {"log_history", s.log_history},
              {"logging_steps", s.logging_steps},
              {"max_steps", s.max_steps},
              {"num_input_tokens_seen", s.num_input_tokens_seen},
              {"num_train_epochs", s.num_train_epochs},
              {"save_steps", s.save_steps},
              {"stateful_callbacks", s.stateful_callbacks},
              {"total_flos", s.total_flos},
              {"train_batch_size", s.train_batch_size},
              {"trial_name", nullptr},
              {"trial_params", nullptr}};
}

json trainer_control_to_json(const TrainerControl& c) {
  return json{{"args",
               {{"should_epoch_stop", c.should_epoch_stop},
                {"should_evaluate", c.should_evaluate},
                {"should_log", c.should_log},
                {"should_save", c.should_save},
                {"should_training_stop", c.should_training_stop}}},
              {"attributes", json::object()}};
}

TrainerState trainer_state_from_json(const json& j, const std::string& where) {
  HFT_CHECK(j.is_object(), "{}: expected a JSON object", where);
  TrainerState s;
  auto need = [&](const char* key, auto& out, bool nullable) {
    using T = std::decay_t<decltype(out)>;
    HFT_CHECK(j.contains(key), "{}: missing key \"{}\"", where, key);
    const json& v = j.at(key);
    if (nullable && v.is_null()) return;
    try {
      out = v.get<T>();
    } catch (const json::exception&) {
      fail("{}: key \"{}\" has the wrong type: {}", where, key, v.dump());
    }
  };
  need("epoch", s.epoch, false);
  need("global_step", s.global_step, false);
  need("max_steps", s.max_steps, false);
  need("logging_steps", s.logging_steps, false);
  need("eval_steps", s.eval_steps, false);
  need("save_steps", s.save_steps, false);
  need("train_batch_size", s.train_batch_size, true);
  need("num_train_epochs", s.num_train_epochs, false);
  need("num_input_tokens_seen", s.num_input_tokens_seen, false);
  need("total_flos", s.total_flos, false);
  need("log_history", s.log_history, false);
  HFT_CHECK(s.log_history.is_array(), "{}: log_history must be a list", where);
  if (j.contains("best_metric") && !j["best_metric"].is_null()) {
    HFT_CHECK(j["best_metric"].is_number(), "{}: best_metric must be a number, got {}", where, j["best_metric"].dump());
    s.best_metric = j["best_metric"].get<double>();
  }
  if (j.contains("best_model_checkpoint") && !j["best_model_checkpoint"].is_null()) {
    HFT_CHECK(j["best_model_checkpoint"].is_string(), "{}: best_model_checkpoint must be a path, got {}", where,
              j["best_model_checkpoint"].dump());
    s.best_model_checkpoint = j["best_model_checkpoint"].get<std::string>();
  }
  if (j.contains("stateful_callbacks")) s.stateful_callbacks = j["stateful_callbacks"];
  HFT_CHECK(s.stateful_callbacks.is_object(), "{}: stateful_callbacks must be a mapping", where);
  // A state no run can reach (an edited or damaged file) would train on from nonsense.
  for (const auto& [key, value] : {std::pair<const char*, int64_t>{"global_step", s.global_step},
                                   {"max_steps", s.max_steps},
                                   {"num_input_tokens_seen", s.num_input_tokens_seen},
                                   {"num_train_epochs", s.num_train_epochs}})
    HFT_CHECK(value >= 0, "{}: {} is {}; it cannot be negative", where, key, value);
  HFT_CHECK(std::isfinite(s.epoch) && s.epoch >= 0, "{}: epoch is {}; expected a number >= 0", where, s.epoch);
  HFT_CHECK(std::isfinite(s.total_flos) && s.total_flos >= 0, "{}: total_flos is {}; expected a number >= 0", where,
            s.total_flos);
  HFT_CHECK(s.train_batch_size >= 0, "{}: train_batch_size is {}; it cannot be negative", where, s.train_batch_size);
  return s;
}

}  // namespace hftrain
