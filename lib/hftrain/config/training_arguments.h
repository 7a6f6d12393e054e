// TrainingArguments: HF's field names and HF's defaults (transformers 4.48), typed.
// Closed sets are enums; strings stop at config/ (STYLE.md rule 1).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace hftrain {

enum class SchedulerType { kLinear, kCosine, kConstantWithWarmup };
enum class IntervalStrategy { kNo, kSteps, kEpoch };
enum class OptimizerName { kAdamWTorch };

struct TrainingArguments {
  // Output
  std::string output_dir = "out";  // HF requires it; hftrain defaults it for the demo
  bool overwrite_output_dir = false;
  std::string run_name;  // empty: output_dir, as HF
  // Duration and batch
  double num_train_epochs = 3.0;
  int64_t max_steps = -1;  // > 0 overrides num_train_epochs
  int64_t per_device_train_batch_size = 8;
  int64_t per_device_eval_batch_size = 8;
  int64_t gradient_accumulation_steps = 1;
  bool dataloader_drop_last = false;
  // Optimizer
  OptimizerName optim = OptimizerName::kAdamWTorch;
  double learning_rate = 5e-5;
  double weight_decay = 0.0;
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.999;
  double adam_epsilon = 1e-8;
  double max_grad_norm = 1.0;  // <= 0 disables clipping
  // Schedule
  SchedulerType lr_scheduler_type = SchedulerType::kLinear;
  int64_t warmup_steps = 0;
  double warmup_ratio = 0.0;
  // Logging (steps values < 1 are ratios of max_steps, as in HF)
  IntervalStrategy logging_strategy = IntervalStrategy::kSteps;
  double logging_steps = 500;
  bool logging_first_step = false;
  // Evaluation
  IntervalStrategy eval_strategy = IntervalStrategy::kNo;
  std::optional<double> eval_steps;  // unset: logging_steps
  // Saving
  IntervalStrategy save_strategy = IntervalStrategy::kSteps;
  double save_steps = 500;
  std::optional<int64_t> save_total_limit;
  // Reproducibility and resume
  int64_t seed = 42;
  std::optional<int64_t> data_seed;
  std::optional<std::string> resume_from_checkpoint;  // a path, or "true" for the newest in output_dir
  bool use_cpu = false;

  // HF's derived values.
  int64_t train_batch_size() const { return per_device_train_batch_size; }  // x n_gpu (1)
  int64_t eval_batch_size() const { return per_device_eval_batch_size; }
  // warmup_steps if > 0, else ceil(warmup_ratio * num_training_steps)  (training_args.py)
  int64_t get_warmup_steps(int64_t num_training_steps) const;
};

// The names each enum has in configs (HF's spellings), and the reverse lookup.
template <typename E>
using NameTable = std::vector<std::pair<std::string, E>>;
const NameTable<SchedulerType>& scheduler_type_names();
const NameTable<IntervalStrategy>& interval_strategy_names();
const NameTable<OptimizerName>& optimizer_names();

std::string to_string(SchedulerType t);
std::string to_string(IntervalStrategy s);
std::string to_string(OptimizerName o);

}  // namespace hftrain
