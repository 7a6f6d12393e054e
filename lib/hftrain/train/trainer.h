// The Trainer: HF's training loop (DESIGN.md §4) over a Model, a tokenizer and token
// windows, with checkpoints that resume bit for bit. The loop is trainer.cpp; evaluation
// and prediction trainer_eval.cpp; checkpoints and the model directory trainer_save.cpp;
// construction, the plan and the optimizer trainer_setup.cpp.
#pragma once

#include "hftrain/config/config.h"
#include "hftrain/data/dataset.h"
#include "hftrain/data/sampler.h"
#include "hftrain/data/tokenizer.h"
#include "hftrain/models/model.h"
#include "hftrain/optim/optimizer.h"
#include "hftrain/optim/scheduler.h"
#include "hftrain/train/callback.h"
#include "hftrain/train/memory_tracker.h"
#include "hftrain/train/checkpoint.h"
#include "hftrain/train/grad_scaler.h"
#include "hftrain/train/train_plan.h"
#include "hftrain/train/trainer_state.h"

#include <memory>
#include <string>
#include <vector>

namespace hftrain {

class DataLoader;
class GradReducer;
class ProcessGroup;
class ShardedParams;

class Trainer {
 public:
  // With a process group of several ranks the run is data parallel: each rank trains on its
  // shard of every batch, gradients are averaged over the ranks, metrics are reduced, and
  // rank 0 alone logs and writes (each rank's RNG state goes into the checkpoint). With
  // args.zero_stage 1-3 the optimizer state, gradients and parameters are sharded
  // (dist/sharded.h); checkpoints are the same either way.
  Trainer(Config config, std::shared_ptr<Model> model, std::shared_ptr<const Tokenizer> tokenizer, Datasets data,
          std::shared_ptr<ProcessGroup> pg = nullptr);
  ~Trainer();

  CallbackHandler& callbacks() { return callbacks_; }
  Model& model() { return *model_; }
  const TrainerState& state() const { return state_; }
  // For evaluating a checkpoint: logs then carry its epoch and step.
  void set_state(TrainerState state) { state_ = std::move(state); }

  // The run's batches and steps; a user error when the train set holds too few windows for
  // a batch. Checked before anything is written.
  TrainPlan plan() const;
  // What resuming a checkpoint of this run must match.
  ResumeExpect resume_expect() const;
  // Trains until max_steps; from `resume` (an opened checkpoint-N) when given.
  // Returns the train summary (train_runtime, train_loss, ...).
  nlohmann::json train(const OpenCheckpoint* resume);
  // Evaluates on the eval set: eval_loss, eval_perplexity, eval_runtime, ...; logged.
  nlohmann::json evaluate();
  // Predictions on `data` (a language model's argmax next token per position, (T-1) per
  // window; a classifier's class per example or per token) and test_-prefixed metrics; logged,
  // and on_predict is called; rows that are not `labelled` give only the timing metrics, as HF's
  // predict without labels. logits, when given, receives every row's logits, float32 on the
  // CPU: (N, T, vocab) for a language model, (N, classes) for a classifier, (N, T, classes) per
  // token; rows of per-token logits are padded to the longest with -100.
  nlohmann::json predict(const LmDataset& data, std::vector<std::vector<int64_t>>& predictions,
                         at::Tensor* logits = nullptr, bool labelled = true);
  // An HF model directory: model.safetensors, config.json, tokenizer files, training_args.json.
  void save_model(const std::string& dir);

 private:
  // The loop's steps, by HF's names.
  void load_window(DataLoader& loader, int64_t batches);  // a step's micro-batches, on the device
  void training_step();                                   // forward and backward over the window
  void optimizer_step();                                  // clip, step, schedule, zero
  void maybe_log_save_evaluate();
  void check_preemption();
  nlohmann::json train_summary(double runtime, int64_t steps_run);

  BatchSampler train_sampler(int64_t data_seed, int64_t epoch) const;
  void create_optimizer();
  DataPosition load_checkpoint(const OpenCheckpoint& ckpt);  // where the data resumes
  void save_checkpoint();
  void write_checkpoint(const std::string& dir);  // save_checkpoint's body, with the weights whole
  // stop_on_nonfinite: a user-facing stop before weights that are NaN or inf are saved.
  void check_finite_weights(const std::string& about_to);
  void warn_if_diverged(double loss, double grad_norm);
  void log(nlohmann::json logs);
  nlohmann::json evaluation_loop(const LmDataset& windows, const std::string& prefix,
                                 std::vector<std::vector<int64_t>>* predictions,
                                 std::vector<at::Tensor>* logits = nullptr);
  // HF's _determine_best_metric: true when `metrics` improve on state.best_metric.
  bool update_best_metric(const nlohmann::json& metrics);
  void write_model_files(const std::string& dir, bool final_export);
  void store_flos();
  // include_num_input_tokens_seen: the counted tokens into state_.num_input_tokens_seen; with
  // data parallel only when `reduce` (a collective every rank makes).
  void fold_tokens_seen(bool reduce);
  std::vector<at::Tensor> optimizer_params() const;
  bool is_main() const;  // rank 0, or a single process
  int64_t world_size() const;
  double mean_over_ranks(double local);
  // The model's forward under bf16/fp16 autocast when the arguments ask for it. The loss is
  // computed from float32 logits inside the model; the logits are left in the autocast dtype
  // (only their argmax is used), so training copies nothing extra per micro-batch.
  ModelOutput forward(const Batch& batch, std::optional<double> num_items_in_batch);

  Config config_;
  const TrainingArguments& args_;
  std::shared_ptr<Model> model_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  Datasets data_;
  std::shared_ptr<ProcessGroup> pg_;
  c10::Device device_ = c10::Device(c10::kCPU);
  CallbackHandler callbacks_;
  TrainerState state_;
  TrainerControl control_;
  std::unique_ptr<Optimizer> optimizer_;
  std::unique_ptr<LRScheduler> scheduler_;
  std::unique_ptr<GradScaler> scaler_;      // fp16 only
  std::unique_ptr<GradReducer> reducer_;    // data parallel only
  std::unique_ptr<ShardedParams> sharded_;  // sharded data parallel (ZeRO stage >= 1) only
  TrainPlan plan_;
  bool in_train_ = false;  // HF's is_in_train: *_full_eval casts the model only outside train()
  double non_embedding_params_ = 0;
  int64_t trainable_params_ = 0;  // HF's "Number of trainable parameters" (tied weights once)

  // The loop's running values, on the device: read on the host only when logging.
  std::vector<Batch> window_;      // the current step's micro-batches
  int64_t window_items_ = 0;       // their label tokens (the loss's normaliser), over all ranks when averaged
  at::Tensor tr_loss_;             // summed step losses since the last log
  at::Tensor grad_norm_;           // the last step's, when clipping
  at::Tensor nonfinite_;           // a micro-step's loss was NaN or inf since the last log
  bool warned_diverged_ = false;
  DataPosition position_;          // after the last optimizer step
  int64_t samples_seen_ = 0;       // this rank's train rows

  double current_flos_ = 0;
  int64_t tokens_not_summed_ = 0;  // this rank's input tokens since the last reduction
  at::Tensor non_padding_seen_;
  MemoryTracker memory_{false};    // "non_padding": attention-mask ones not yet read (no sync per step)
  int64_t last_saved_step_ = -1;
  double total_loss_scalar_ = 0;
  int64_t globalstep_last_logged_ = 0;
};

}  // namespace hftrain
