// TrainerState and TrainerControl with transformers' fields (trainer_callback.py).
// trainer_state.json is json.dumps(asdict(state), indent=2, sort_keys=True) + "\n".
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

namespace hftrain {

struct TrainerControl {
  bool should_training_stop = false;
  bool should_epoch_stop = false;
  bool should_save = false;
  bool should_evaluate = false;
  bool should_log = false;
};

struct TrainerState {
  double epoch = 0;
  int64_t global_step = 0;
  int64_t max_steps = 0;
  int64_t logging_steps = 500, eval_steps = 500, save_steps = 500;
  int64_t train_batch_size = 0;
  int64_t num_train_epochs = 0;
  int64_t num_input_tokens_seen = 0;
  double total_flos = 0;
  nlohmann::json log_history = nlohmann::json::array();
  std::optional<double> best_metric;
  std::optional<std::string> best_model_checkpoint;
  bool is_local_process_zero = true, is_world_process_zero = true;
  bool is_hyper_param_search = false;
  nlohmann::json stateful_callbacks = nlohmann::json::object();
};

nlohmann::json trainer_state_to_json(const TrainerState& s);
// Checks the keys and types it needs; errors name `where`.
TrainerState trainer_state_from_json(const nlohmann::json& j, const std::string& where);
// The control's state as HF stores it under stateful_callbacks["TrainerControl"].
nlohmann::json trainer_control_to_json(const TrainerControl& c);

}  // namespace hftrain
