// TrainingArguments: HF's field names and HF's defaults (transformers 4.48), typed, grouped as
// HF groups them. Closed sets are enums; strings stop at config/ (STYLE.md rule 1).
// Fields that change nothing in hftrain (log levels, pin_memory, ...) and fields of
// backends hftrain does not have (deepspeed, fsdp, hub, ...) are not members: config/fields.cpp
// type-checks them, refuses non-default backend values, and keeps them in `other` for
// training_args.json.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace hftrain {

// transformers 4.48's SchedulerType, in its order (trainer_utils.py).
enum class SchedulerType {
  kLinear,
  kCosine,
  kCosineWithRestarts,
  kPolynomial,
  kConstant,
  kConstantWithWarmup,
  kInverseSqrt,
  kReduceLrOnPlateau,
  kCosineWithMinLr,
  kWarmupStableDecay,
};
enum class IntervalStrategy { kNo, kSteps, kEpoch };
enum class SaveStrategy { kNo, kSteps, kEpoch, kBest };
enum class TrainSampling { kRandom, kSequential, kGroupByLength };

struct TrainingArguments {
  // ---- output
  std::string output_dir = "out";  // HF requires it; hftrain defaults it for the demo
  bool overwrite_output_dir = false;
  std::string run_name;     // empty: output_dir, as HF
  std::string logging_dir;  // empty: output_dir/runs, as HF (without its time stamp)
  bool do_train = false, do_eval = false, do_predict = false;  // for scripts; do_eval follows eval_strategy
  // ---- duration and batch
  double num_train_epochs = 3.0;
  int64_t max_steps = -1;  // > 0 overrides num_train_epochs
  int64_t per_device_train_batch_size = 8;
  int64_t per_device_eval_batch_size = 8;
  int64_t gradient_accumulation_steps = 1;
  // ---- learning rate and schedule
  double learning_rate = 5e-5;
  SchedulerType lr_scheduler_type = SchedulerType::kLinear;
  nlohmann::json lr_scheduler_kwargs = nlohmann::json::object();  // checked per scheduler
  double warmup_steps = 0;  // >= 1: steps; a float below 1: a ratio of max_steps (v5)
  double warmup_ratio = 0.0;
  // ---- optimizer
  // HF's OptimizerNames value; one optim/ has (optimizer_factory.cpp's table), checked when read.
  std::string optim = "adamw_torch";
  std::optional<std::string> optim_args;  // HF's "k=v,k=v" text
  // optim_args parsed (numbers, true/false, strings), keys checked against the optimizer's.
  nlohmann::json optim_kwargs = nlohmann::json::object();
  double weight_decay = 0.0;
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.999;
  double adam_epsilon = 1e-8;
  // ---- stability
  double max_grad_norm = 1.0;  // <= 0 disables clipping
  bool logging_nan_inf_filter = true;
  // ---- precision (this CPU build: bf16 autocast; fp16 and tf32, CUDA-only, are refused)
  bool bf16 = false, fp16 = false, bf16_full_eval = false, fp16_full_eval = false;
  std::optional<bool> tf32;
  std::string half_precision_backend = "auto";
  // ---- logging (steps values < 1 are ratios of max_steps, as in HF)
  IntervalStrategy logging_strategy = IntervalStrategy::kSteps;
  double logging_steps = 500;
  bool logging_first_step = false;
  std::vector<std::string> report_to;  // resolved: [] or ["none"] means none
  std::optional<bool> disable_tqdm;
  bool include_tokens_per_second = false;
  // "no", "all" (every input id) or "non_padding" (the attention mask's ones); HF's bool
  // spellings map to the first two.
  std::string include_num_input_tokens_seen = "no";
  bool auto_find_batch_size = false;  // on out-of-memory, halve per_device_train_batch_size and start again
  bool skip_memory_metrics = true;    // false: <stage>_mem_cpu_{alloc,peaked}_delta metrics (MemoryTracker)
  // Seq2SeqTrainingArguments' generation in evaluation: a causal LM's metrics score the
  // completion generated from each row's prompt instead of the argmax next tokens.
  bool predict_with_generate = false;
  std::optional<int64_t> generation_max_length;  // new tokens at most; none: the completion's length
  bool prediction_loss_only = false;  // evaluation: the loss (and perplexity) only, no prediction metrics
  std::vector<std::string> include_for_metrics;  // "inputs", "loss": what plugin metrics also receive
  double label_smoothing_factor = 0.0;               // HF's LabelSmoother epsilon; 0: plain cross-entropy
  std::optional<double> neftune_noise_alpha;         // NEFTune's alpha; none: no noise
  // ---- evaluation
  IntervalStrategy eval_strategy = IntervalStrategy::kNo;
  std::optional<double> eval_steps;  // unset: logging_steps
  double eval_delay = 0;             // epochs or steps before the first evaluation
  bool eval_on_start = false;
  // ---- saving
  SaveStrategy save_strategy = SaveStrategy::kSteps;
  double save_steps = 500;
  std::optional<int64_t> save_total_limit;
  bool save_safetensors = true;
  bool save_only_model = false;  // no optimizer/scheduler/RNG state: such checkpoints cannot resume
  // ---- best model
  bool load_best_model_at_end = false;
  std::optional<std::string> metric_for_best_model;  // "loss" when load_best_model_at_end
  std::optional<bool> greater_is_better;             // follows from the metric's name
  // ---- resume and reproducibility
  int64_t seed = 42;
  std::optional<int64_t> data_seed;
  std::optional<std::string> resume_from_checkpoint;  // a path, or "true" for the newest in output_dir
  bool ignore_data_skip = false;
  bool restore_callback_states_from_checkpoint = false;
  // ---- dataloader
  bool dataloader_drop_last = false;
  bool gradient_checkpointing = false;  // blocks recompute their activations in backward
  // torch.utils.checkpoint's keyword arguments: use_reentrant (either: hftrain's recompute is
  // the same computation both ways), preserve_rng_state (true: dropout replays its masks).
  nlohmann::json gradient_checkpointing_kwargs = nullptr;
  int64_t dataloader_num_workers = 0;                 // collating threads; 0: on the training thread
  std::optional<int64_t> dataloader_prefetch_factor;  // batches each worker keeps ready (2 when unset)
  // v5's train_sampling_strategy; group_by_length: true (the v4 spelling) means kGroupByLength.
  TrainSampling train_sampling_strategy = TrainSampling::kRandom;
  bool group_by_length = false;
  // ---- device and distributed
  bool use_cpu = false;
  std::optional<std::string> ddp_backend;  // gloo | nccl
  int64_t ddp_timeout = 1800;              // seconds
  std::optional<int64_t> ddp_bucket_cap_mb;
  bool average_tokens_across_devices = false;
  // Sharded data parallel, from fsdp / fsdp_config / deepspeed (config/sharding.h): 0 is plain
  // data parallel, 1-3 ZeRO's stages. The three fields are kept as given, for training_args.json.
  int64_t zero_stage = 0;
  nlohmann::json fsdp = "", fsdp_config = nullptr, deepspeed = nullptr;

  // Fields with no effect in hftrain and backend fields at their defaults, by HF name, as given.
  nlohmann::json other = nlohmann::json::object();

  // HF's derived values.
  int64_t train_batch_size() const { return per_device_train_batch_size; }  // x n_gpu (1)
  int64_t eval_batch_size() const { return per_device_eval_batch_size; }
  // warmup_steps if >= 1, else ceil(ratio * num_training_steps) with the float warmup_steps
  // or warmup_ratio as the ratio (training_args.py get_warmup_steps).
  int64_t get_warmup_steps(int64_t num_training_steps) const;
};

// The names each enum has in configs (HF's spellings), and the reverse lookup.
template <typename E>
using NameTable = std::vector<std::pair<std::string, E>>;
const NameTable<SchedulerType>& scheduler_type_names();
const NameTable<IntervalStrategy>& interval_strategy_names();
const NameTable<SaveStrategy>& save_strategy_names();
const NameTable<TrainSampling>& train_sampling_names();

std::string to_string(SchedulerType t);
std::string to_string(IntervalStrategy s);
std::string to_string(SaveStrategy s);

}  // namespace hftrain
