// The training loop, read top to bottom: train() sets the run up, then for each optimizer
// step loads a window of micro-batches, runs training_step and optimizer_step, and lets
// maybe_log_save_evaluate do what the callbacks asked for.
#include "hftrain/train/trainer.h"

#include "hftrain/models/layers.h"

#include "hftrain/core/device.h"
#include "hftrain/core/error.h"
#include "hftrain/core/host_sync.h"
#include "hftrain/core/log.h"
#include "hftrain/core/strings.h"
#include "hftrain/core/torch_compat.h"
#include "hftrain/data/collator.h"
#include "hftrain/data/loader.h"
#include "hftrain/dist/grad_reducer.h"
#include "hftrain/dist/process_group.h"
#include "hftrain/dist/sharded.h"
#include "hftrain/kernels/fusions.h"
#include "hftrain/models/hf_model_dir.h"
#include "hftrain/optim/grad_clip.h"
#include "hftrain/train/metrics.h"
#include "hftrain/train/preemption.h"

#include <ATen/Functions.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

namespace hftrain {

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

// logging/eval/save steps below 1 are a ratio of max_steps (HF: math.ceil(max_steps * x)).
int64_t resolve_steps(double v, int64_t max_steps) {
  return v < 1 ? static_cast<int64_t>(std::ceil(max_steps * v)) : static_cast<int64_t>(v);
}

}  // namespace

json Trainer::train(const OpenCheckpoint* resume) {
  memory_.start("train");
  const auto t0 = std::chrono::steady_clock::now();
  plan_ = plan();
  // Sharded data parallel: the optimizer is made over this rank's pieces of the parameters.
  if (pg_ && args_.zero_stage > 0) sharded_ = std::make_unique<ShardedParams>(*pg_, *model_, static_cast<int>(args_.zero_stage));
  create_optimizer();
  // fp16: accelerate's GradScaler with torch's defaults (bf16 needs none).
  scaler_ = args_.fp16 ? std::make_unique<GradScaler>() : nullptr;
  in_train_ = true;
  // NEFTune: noise on the input embeddings while the model trains, for this train() only.
  if (args_.neftune_noise_alpha) {
    const double alpha = *args_.neftune_noise_alpha;
    Model* m = model_.get();
    model_->set_input_embedding_hook(
        [alpha, m](const at::Tensor& e) { return m->is_training() ? e.add(neftune_noise(e, alpha)) : e; });
  }
  state_ = TrainerState{};
  state_.max_steps = plan_.max_steps;
  state_.num_train_epochs = plan_.num_epochs;
  state_.train_batch_size = args_.train_batch_size();
  state_.logging_steps = resolve_steps(args_.logging_steps, plan_.max_steps);
  state_.eval_steps = resolve_steps(args_.eval_steps.value_or(args_.logging_steps), plan_.max_steps);
  state_.save_steps = resolve_steps(args_.save_steps, plan_.max_steps);
  DataPosition start;  // no batch before it is loaded
  if (resume) start = load_checkpoint(*resume);
  if (args_.ignore_data_skip) start.batches_in_epoch = 0;
  position_ = start;
  // DDP: every rank starts from rank 0's weights, and gradients are averaged in buckets.
  if (pg_ && !sharded_) {
    std::vector<at::Tensor> trainable;
    for (const auto& p : model_->named_parameters())
      if (p.value().requires_grad()) trainable.push_back(p.value());
    const double cap_mb = static_cast<double>(args_.ddp_bucket_cap_mb.value_or(25));
    reducer_ = std::make_unique<GradReducer>(*pg_, std::move(trainable), static_cast<int64_t>(cap_mb * 1024 * 1024));
    reducer_->broadcast_parameters(0);
  }
  const int64_t start_step = state_.global_step;
  const int64_t data_seed = args_.data_seed.value_or(args_.seed);
  if (is_main()) {
    std::printf("***** Running training *****\n  windows = %lld, epochs = %lld, batch size = %lld, "
                "accumulation = %lld, optimization steps = %lld, trainable parameters = %lld\n",
                (long long)data_.train->size(), (long long)plan_.num_epochs, (long long)args_.train_batch_size(),
                (long long)plan_.accumulation, (long long)plan_.max_steps, (long long)trainable_params_);
    if (pg_)
      std::printf("  data parallel over %lld ranks (%s): total batch size = %lld, %s\n", (long long)world_size(),
                  dist_backend(args_.ddp_backend).c_str(),
                  (long long)(args_.train_batch_size() * plan_.accumulation * world_size()),
                  sharded_ ? fmt::format("sharded: ZeRO stage {}, {} units", sharded_->stage(), sharded_->num_units()).c_str()
                           : fmt::format("gradient buckets = {}", reducer_->num_buckets()).c_str());
    if (resume)
      std::printf("  resuming from %s at step %lld (epoch %lld, skipping %lld batches)\n", resume->dir.c_str(),
                  (long long)start_step, (long long)start.epoch, (long long)start.batches_in_epoch);
  }

  model_->train();
  const auto on_device = at::TensorOptions(device_).dtype(at::kFloat);
  tr_loss_ = at::zeros({}, on_device);
  nonfinite_ = at::zeros({}, on_device.dtype(at::kBool));
  grad_norm_ = at::Tensor();
  total_loss_scalar_ = 0;
  globalstep_last_logged_ = state_.global_step;
  callbacks_.on_train_begin(args_, state_, control_);
  if (args_.eval_on_start) evaluate();
  for (int64_t epoch = start.epoch; epoch < plan_.num_epochs && state_.global_step < plan_.max_steps; ++epoch) {
    const int64_t first = epoch == start.epoch ? start.batches_in_epoch : 0;  // a resume skips by index
    DataLoader loader(*data_.train, train_sampler(data_seed, epoch), first, plan_.batches_per_epoch,
                      args_.dataloader_num_workers, args_.dataloader_prefetch_factor.value_or(2));
    callbacks_.on_epoch_begin(args_, state_, control_);
    for (int64_t b0 = first; b0 < plan_.batches_per_epoch; b0 = plan_.window_end(b0)) {
      const int64_t b1 = plan_.window_end(b0);
      load_window(loader, b1 - b0);
      callbacks_.on_step_begin(args_, state_, control_);
      training_step();
      // The first backward's activations and temporaries go back to the kernel before the
      // optimizer's state is made, so that the two do not add up in the peak.
      if (state_.global_step == start_step) compat::return_freed_memory();
      optimizer_step();
      state_.global_step += 1;
      position_ = {epoch, b1};
      state_.epoch = static_cast<double>(epoch) + static_cast<double>(b1) / static_cast<double>(plan_.batches_per_epoch);
      callbacks_.on_step_end(args_, state_, control_);
      maybe_log_save_evaluate();
      check_preemption();
      if (control_.should_epoch_stop || control_.should_training_stop) break;
    }
    callbacks_.on_epoch_end(args_, state_, control_);
    maybe_log_save_evaluate();
    if (control_.should_training_stop) break;
  }

  json summary = train_summary(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
                               state_.global_step - start_step);
  memory_.stop("train", &summary);
  log(summary);
  if (sharded_) {
    // The model whole again for what follows training (best model, export, evaluation); the
    // optimizer's state is done with, and goes first, so that the whole model fits where it did.
    scheduler_.reset();
    optimizer_.reset();
    sharded_->unshard();
    sharded_.reset();
  }
  if (args_.load_best_model_at_end && state_.best_model_checkpoint &&
      fs::is_regular_file(model_weights_path(*state_.best_model_checkpoint))) {
    if (is_main())
      std::printf("loading the best model from %s (%s %g)\n", state_.best_model_checkpoint->c_str(),
                  args_.metric_for_best_model->c_str(), state_.best_metric.value_or(0));
    model_load_weights(*model_, model_weights_path(*state_.best_model_checkpoint));
  }
  callbacks_.on_train_end(args_, state_, control_);
  model_->set_input_embedding_hook(nullptr);
  in_train_ = false;
  return summary;
}

// The step's micro-batches, moved to the device ahead of the first forward, and their label
// tokens counted on the host's copy.
void Trainer::load_window(DataLoader& loader, int64_t batches) {
  window_.clear();
  window_items_ = 0;
  const bool count = model_->accepts_loss_kwargs();
  for (int64_t b = 0; b < batches; ++b) {
    Batch batch = loader.next();
    if (count) window_items_ += count_label_tokens(batch);
    samples_seen_ += batch.at("input_ids").size(0);
    window_.push_back(batch_to(std::move(batch), device_));
  }
  // average_tokens_across_devices: the loss is normalised by the window's label tokens over
  // all ranks, and scaled by the world size that DDP's averaging divides out.
  if (pg_ && args_.average_tokens_across_devices && count)
    window_items_ = static_cast<int64_t>(pg_->sum(static_cast<double>(window_items_)));
}

void Trainer::training_step() {
  const bool loss_kwargs = model_->accepts_loss_kwargs();
  const bool average_tokens = pg_ && args_.average_tokens_across_devices;
  const double steps_since_log = static_cast<double>(1 + state_.global_step - globalstep_last_logged_);
  LossOnlyScope loss_only;  // the step reads the loss alone: a causal LM may fuse its head and loss
  for (size_t m = 0; m < window_.size(); ++m) {
    const bool last = m + 1 == window_.size();
    if (sharded_) sharded_->prepare(m == 0, last);  // stage 3 gathers the root unit for forward
    at::Tensor loss;
    if (loss_kwargs) {
      loss = forward(window_[m], static_cast<double>(window_items_)).loss;
      if (average_tokens) loss = loss.mul(static_cast<double>(world_size()));
    } else {  // the head's mean loss, scaled as transformers' training_step scales it
      loss = forward(window_[m], std::nullopt).loss.div(static_cast<double>(plan_.accumulation));
    }
    if (reducer_) reducer_->prepare(last);  // earlier micro-steps accumulate locally (no_sync)
    (scaler_ ? scaler_->scale(loss) : loss).backward();
    if (reducer_ && last) reducer_->finish();
    if (sharded_) sharded_->finish();
    const at::Tensor l = loss.detach();
    const at::Tensor finite = at::isfinite(l);
    nonfinite_.logical_or_(finite.logical_not());  // read when logging: no host sync here
    // logging_nan_inf_filter: a non-finite loss counts as the mean so far.
    if (args_.logging_nan_inf_filter) tr_loss_.add_(at::where(finite, l, tr_loss_ / steps_since_log));
    else tr_loss_.add_(l);
    const int64_t tokens = window_[m].at("input_ids").numel();
    current_flos_ += 6.0 * non_embedding_params_ * static_cast<double>(tokens);
    if (args_.include_num_input_tokens_seen == "non_padding" && window_[m].count("attention_mask")) {
      const at::Tensor ones = window_[m].at("attention_mask").sum();
      non_padding_seen_ = non_padding_seen_.defined() ? non_padding_seen_.add_(ones) : ones;
    } else if (args_.include_num_input_tokens_seen != "no") {
      tokens_not_summed_ += tokens;
    }
    if (!last) callbacks_.on_substep_end(args_, state_, control_);
  }
}

void Trainer::optimizer_step() {
  if (args_.max_grad_norm > 0) {
    if (scaler_) scaler_->unscale(*optimizer_);  // clip the true gradients (accelerate)
    grad_norm_ = sharded_ ? sharded_->clip_grad_norm(args_.max_grad_norm)  // over every rank's slices
                          : clip_grad_norm(optimizer_params(), args_.max_grad_norm);
  }
  callbacks_.on_pre_optimizer_step(args_, state_, control_);
  // fp16: a step whose gradients overflowed is skipped, and so is the scheduler's (HF's
  // optimizer_step_was_skipped); the scale backs off.
  bool stepped = true;
  if (scaler_) {
    stepped = scaler_->step(*optimizer_);
    scaler_->update();
  } else {
    optimizer_->step();
  }
  if (sharded_) sharded_->after_step();
  callbacks_.on_optimizer_step(args_, state_, control_);
  if (stepped) scheduler_->step();
  optimizer_->zero_grad();
}

std::vector<at::Tensor> Trainer::optimizer_params() const {
  std::vector<at::Tensor> out;
  for (const auto& g : optimizer_->param_groups()) out.insert(out.end(), g.params.begin(), g.params.end());
  return out;
}

void Trainer::maybe_log_save_evaluate() {
  if (control_.should_log && state_.global_step > globalstep_last_logged_) {
    // The one host read of the loop (and the reduction over ranks): loss, divergence, norm.
    const at::Tensor zero = at::zeros({}, tr_loss_.options());
    const at::Tensor read = host_copy(at::stack({tr_loss_, nonfinite_.to(at::kFloat),
                                                 grad_norm_.defined() ? grad_norm_.to(at::kFloat) : zero}));
    const double tr_loss_scalar = mean_over_ranks(read[0].item<double>());
    const bool nonfinite = (pg_ ? pg_->max(read[1].item<double>()) : read[1].item<double>()) > 0;
    tr_loss_.zero_();
    nonfinite_.zero_();
    json logs{{"loss", py_round(tr_loss_scalar / static_cast<double>(state_.global_step - globalstep_last_logged_), 4)},
              {"learning_rate", scheduler_->last_lr()[0]}};
    const double norm = read[2].item<double>();
    if (grad_norm_.defined()) logs["grad_norm"] = norm;
    if (nonfinite || (grad_norm_.defined() && !scaler_ && !std::isfinite(norm)))
      warn_if_diverged(nonfinite ? NAN : tr_loss_scalar, norm);
    total_loss_scalar_ += tr_loss_scalar;
    globalstep_last_logged_ = state_.global_step;
    store_flos();
    log(logs);
  }
  if (control_.should_evaluate) {
    const json metrics = evaluate();
    // HF's _evaluate: reduce_lr_on_plateau steps on the metric after each evaluation.
    if (scheduler_->steps_on_metric())
      scheduler_->step_metric(metric_value(args_.metric_for_best_model.value_or("loss"), metrics));
    const bool new_best = update_best_metric(metrics);
    if (args_.save_strategy == SaveStrategy::kBest) control_.should_save = new_best;
  }
  if (control_.should_save) {
    save_checkpoint();
    callbacks_.on_save(args_, state_, control_);
  }
}

// Training goes on as HF's does (a step with an overflow is an fp16 run's normal), but the
// user hears of it at once, and stop_on_nonfinite keeps the weights from being saved.
void Trainer::warn_if_diverged(double loss, double grad_norm) {
  if (warned_diverged_ || !is_main()) return;
  warned_diverged_ = true;
  auto show = [](double v) { return std::isnan(v) ? std::string("nan") : fmt::format("{}", v); };
  warn_line(fmt::format("step {}: the training loss is {} and the gradient norm {}: training has diverged "
                        "(learning_rate {}); {}",
                        state_.global_step, show(loss), show(grad_norm), scheduler_->last_lr()[0],
                        args_.max_grad_norm > 0 ? "lower the learning rate" : "lower the learning rate or set max_grad_norm"));
}

// A signal to any rank stops them all after the same step: the step is complete, it is
// saved (unless just saved), and the run stops with the command that continues it.
void Trainer::check_preemption() {
  const int sig = pg_ ? static_cast<int>(pg_->max(preemption_signal())) : preemption_signal();
  if (!sig) return;
  const std::string dir = checkpoint_dir(args_.output_dir, state_.global_step);
  if (last_saved_step_ != state_.global_step) save_checkpoint();
  throw Interrupted(sig, fmt::format("stopped by signal {} after step {}; resume with: hftrain resume --checkpoint {}",
                                     sig, state_.global_step, dir));
}

// HF's speed_metrics("train", ...). train_loss is the mean step loss of the steps this
// process ran (HF divides by all steps, which undercounts after a resume).
json Trainer::train_summary(double runtime, int64_t steps_run) {
  total_loss_scalar_ += mean_over_ranks(host_read<double>(tr_loss_));
  const double samples =
      static_cast<double>(plan_.max_steps * args_.train_batch_size() * plan_.accumulation * world_size());
  store_flos();
  json summary{{"train_runtime", py_round(runtime, 4)},
               {"train_samples_per_second", py_round(samples / runtime, 3)},
               {"train_steps_per_second", py_round(static_cast<double>(plan_.max_steps) / runtime, 3)},
               {"total_flos", state_.total_flos},
               {"train_loss", total_loss_scalar_ / static_cast<double>(std::max<int64_t>(steps_run, 1))}};
  if (args_.include_tokens_per_second)
    summary["train_tokens_per_second"] = py_round(samples * static_cast<double>(data_.train->num_tokens()) /
                                                      static_cast<double>(data_.train->size()) / runtime, 3);
  return summary;
}

void Trainer::log(json logs) {
  logs["epoch"] = state_.epoch;
  if (args_.include_num_input_tokens_seen != "no") {
    fold_tokens_seen(/*reduce=*/false);
    logs["num_input_tokens_seen"] = state_.num_input_tokens_seen;
  }
  logs["step"] = state_.global_step;
  state_.log_history.push_back(logs);
  callbacks_.on_log(args_, state_, control_, logs);
}

// HF sums the ranks' floating point operations (and input tokens) whenever it stores them.
void Trainer::store_flos() {
  state_.total_flos += pg_ ? pg_->sum(current_flos_) : current_flos_;
  current_flos_ = 0;
  fold_tokens_seen(/*reduce=*/true);
}

void Trainer::fold_tokens_seen(bool reduce) {
  if (args_.include_num_input_tokens_seen == "no") return;
  if (non_padding_seen_.defined()) {
    tokens_not_summed_ += host_read<int64_t>(non_padding_seen_);
    non_padding_seen_ = at::Tensor();
  }
  if (!pg_) state_.num_input_tokens_seen += tokens_not_summed_;
  else if (reduce) state_.num_input_tokens_seen += static_cast<int64_t>(pg_->sum(static_cast<double>(tokens_not_summed_)));
  else return;
  tokens_not_summed_ = 0;
}

}  // namespace hftrain
