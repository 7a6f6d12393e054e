// The Trainer: HF's training loop (DESIGN.md §4) over a Model, a tokenizer and token
// windows, with checkpoints that resume bit for bit.
#pragma once

#include "hftrain/config/config.h"
#include "hftrain/data/dataset.h"
#include "hftrain/data/sampler.h"
#include "hftrain/data/tokenizer.h"
#include "hftrain/models/model.h"
#include "hftrain/optim/optimizer.h"
#include "hftrain/optim/scheduler.h"
#include "hftrain/train/callback.h"
#include "hftrain/train/grad_scaler.h"
#include "hftrain/train/trainer_state.h"

#include <memory>
#include <optional>
#include <string>

namespace hftrain {

class ProcessGroup;

class Trainer {
 public:
  // With a process group of several ranks the run is data parallel: each rank trains on its
  // shard of every batch, gradients are averaged over the ranks, metrics are reduced, and
  // rank 0 alone logs and writes (each rank's RNG state goes into the checkpoint).
  Trainer(Config config, std::shared_ptr<Model> model, std::shared_ptr<const Tokenizer> tokenizer, Datasets data,
          std::shared_ptr<ProcessGroup> pg = nullptr);

  CallbackHandler& callbacks() { return callbacks_; }
  const TrainerState& state() const { return state_; }
  // For evaluating a checkpoint: logs then carry its epoch and step.
  void set_state(TrainerState state) { state_ = std::move(state); }

  // Trains until max_steps; from `resume_dir` (a checkpoint-N directory) when given.
  // Returns the train summary (train_runtime, train_loss, ...).
  nlohmann::json train(const std::optional<std::string>& resume_dir);
  // What train() refuses in the data and arguments (too few windows for a batch), checked
  // before anything is written.
  void check_train() const;
  // Evaluates on the eval set: eval_loss, eval_perplexity, eval_runtime, ...; logged.
  nlohmann::json evaluate();
  // Predictions on `data` (a language model's argmax next token per position, (T-1) per
  // window; a classifier's class per example) and test_-prefixed metrics; logged, and
  // on_predict is called. logits, when given, receives every row's logits, float32 on the
  // CPU: (N, T, vocab) for windows of a language model, (N, classes) for a classifier.
  nlohmann::json predict(const LmDataset& data, std::vector<std::vector<int64_t>>& predictions,
                         at::Tensor* logits = nullptr);
  // An HF model directory: model.safetensors, config.json, tokenizer files, training_args.json.
  void save_model(const std::string& dir);

 private:
  struct Schedule;  // step and epoch bounds of this run
  Schedule plan() const;
  BatchSampler train_sampler(int64_t data_seed, int64_t epoch) const;
  void create_optimizer(const Schedule& s);
  void load_checkpoint(const std::string& dir);
  void save_checkpoint();
  void log(nlohmann::json logs);
  nlohmann::json evaluation_loop(const LmDataset& windows, const std::string& prefix,
                                 std::vector<std::vector<int64_t>>* predictions,
                                 std::vector<at::Tensor>* logits = nullptr);
  // HF's _determine_best_metric: true when `metrics` improve on state.best_metric.
  bool update_best_metric(const nlohmann::json& metrics);
  void maybe_log_save_evaluate(at::Tensor& tr_loss, const at::Tensor& grad_norm);
  void write_model_files(const std::string& dir);
  void store_flos();
  std::vector<at::Tensor> optimizer_params() const;
  bool is_main() const;       // rank 0, or a single process
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
  std::unique_ptr<GradScaler> scaler_;  // fp16 only
  bool in_train_ = false;  // HF's is_in_train: *_full_eval casts the model only outside train()
  double non_embedding_params_ = 0;
  double current_flos_ = 0;
  int64_t tokens_not_summed_ = 0;  // this rank's input tokens since the last reduction
  int64_t last_saved_step_ = -1;
  double total_loss_scalar_ = 0;
  int64_t globalstep_last_logged_ = 0;
};

}  // namespace hftrain
