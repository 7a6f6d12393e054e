#include "hftrain/train/trainer.h"

#include "hftrain/core/device.h"
#include "hftrain/core/error.h"
#include "hftrain/core/host_sync.h"
#include "hftrain/core/torch_compat.h"
#include "hftrain/data/collator.h"
#include "hftrain/data/loader.h"
#include "hftrain/data/sampler.h"
#include "hftrain/dist/grad_reducer.h"
#include "hftrain/dist/process_group.h"
#include "hftrain/io/atomic_file.h"
#include "hftrain/io/json_file.h"
#include "hftrain/io/pickle.h"
#include "hftrain/models/hf_model_dir.h"
#include "hftrain/optim/optimizer_factory.h"
#include "hftrain/optim/grad_clip.h"
#include "hftrain/train/callbacks/plot.h"
#include "hftrain/train/callbacks/progress.h"
#include "hftrain/train/callbacks/tensorboard.h"
#include "hftrain/train/checkpoint.h"
#include "hftrain/train/metrics.h"
#include "hftrain/train/preemption.h"
#include "hftrain/train/rng_state.h"

#include <ATen/core/grad_mode.h>
#include <ATen/Functions.h>
#include <unistd.h>
#include <fmt/ranges.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

namespace hftrain {

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

// Python's round(x, ndigits): the correctly rounded decimal, read back as a double.
double round_to(double x, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, x);
  return std::strtod(buf, nullptr);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// metric_for_best_model's value in the eval metrics (HF prefixes "eval_" when missing); a
// metric the evaluation does not produce is named with the ones it does.
double metric_value(const TrainingArguments& a, const nlohmann::json& metrics) {
  std::string key = a.metric_for_best_model.value_or("loss");
  if (key.rfind("eval_", 0) != 0) key = "eval_" + key;
  if (!metrics.contains(key)) {
    std::vector<std::string> names;
    for (const auto& [k, _] : metrics.items()) names.push_back(k);
    fail("metric_for_best_model is {}, which is not among the evaluation metrics: {}", key, fmt::join(names, ", "));
  }
  return metrics.at(key).get<double>();
}

// logging/eval/save steps below 1 are a ratio of max_steps (HF: math.ceil(max_steps * x)).
int64_t resolve_steps(double v, int64_t max_steps) {
  return v < 1 ? static_cast<int64_t>(std::ceil(max_steps * v)) : static_cast<int64_t>(v);
}

}  // namespace

struct Trainer::Schedule {
  int64_t batches_per_epoch;  // len(train_dataloader)
  int64_t steps_per_epoch;    // optimizer steps an epoch really takes: ceil(batches / GA)
  int64_t max_steps;
  int64_t num_epochs;  // the epoch loop's bound
};

Trainer::Trainer(Config config, std::shared_ptr<Model> model, std::shared_ptr<const Tokenizer> tokenizer,
                 Datasets data, std::shared_ptr<ProcessGroup> pg)
    : config_(std::move(config)),
      args_(config_.args),
      model_(std::move(model)),
      tokenizer_(std::move(tokenizer)),
      data_(std::move(data)),
      pg_(pg && pg->world_size() > 1 ? std::move(pg) : nullptr) {
  // HF's args.device: the model moves there now, each batch as it is loaded.
  device_ = training_device(args_.use_cpu, pg_ ? pg_->local_rank() : 0);
  HFT_CHECK(!(pg_ && device_.is_cuda()),
            "data parallel training on GPUs needs the NCCL backend, which hftrain does not have yet; set use_cpu: true "
            "to train the ranks on the CPU over Gloo");
  model_->to(device_);
  if (args_.tf32) compat::set_tf32(*args_.tf32);
  // HF's floating_point_ops: 6 x non-embedding parameters x input tokens.
  auto embeddings = model_->embedding_parameter_names();
  for (const auto& p : model_->named_parameters())
    if (std::find(embeddings.begin(), embeddings.end(), p.key()) == embeddings.end())
      non_embedding_params_ += static_cast<double>(p.value().numel());
  callbacks_.add(std::make_unique<DefaultFlowCallback>());
  if (is_main()) {  // the callbacks that print or write files run on rank 0 only
    callbacks_.add(std::make_unique<LogCallback>((fs::path(args_.output_dir) / "log.jsonl").string()));
    callbacks_.add(std::make_unique<ProgressCallback>(::isatty(STDOUT_FILENO) && !args_.disable_tqdm.value_or(false)));
    callbacks_.add(std::make_unique<PlotCallback>());
    if (std::find(args_.report_to.begin(), args_.report_to.end(), "tensorboard") != args_.report_to.end())
      callbacks_.add(std::make_unique<TensorBoardCallback>());
  }
  callbacks_.on_init_end(args_, state_, control_);
}

bool Trainer::is_main() const { return !pg_ || pg_->rank() == 0; }

int64_t Trainer::world_size() const { return pg_ ? pg_->world_size() : 1; }

ModelOutput Trainer::forward(const Batch& batch, std::optional<double> num_items_in_batch) {
  const at::ScalarType dtype = args_.fp16 ? at::kHalf : args_.bf16 ? at::kBFloat16 : at::kFloat;
  compat::AutocastGuard autocast(batch.at("input_ids").device().type(), dtype);  // a no-op for float32
  return model_->forward(batch, num_items_in_batch);
}

double Trainer::mean_over_ranks(double local) { return pg_ ? pg_->sum(local) / static_cast<double>(world_size()) : local; }

// The epoch's batch order: HF's random sampler (accelerate's seeding), sequential, or
// LengthGroupedSampler, whose megabatches span train_batch_size * GA examples; in a data
// parallel run, this rank's share of it (accelerate's BatchSamplerShard).
BatchSampler Trainer::train_sampler(int64_t data_seed, int64_t epoch) const {
  const int64_t n = data_.train->size(), bs = args_.train_batch_size();
  auto all = [&] {
    switch (args_.train_sampling_strategy) {
      case TrainSampling::kSequential: return BatchSampler(at::arange(n, at::kLong), bs, args_.dataloader_drop_last);
      case TrainSampling::kGroupByLength: {
        std::vector<int64_t> lengths(n);
        for (int64_t i = 0; i < n; ++i) lengths[i] = data_.train->length(i);
        return BatchSampler::length_grouped(lengths, bs, bs * args_.gradient_accumulation_steps,
                                            args_.dataloader_drop_last, data_seed, epoch);
      }
      case TrainSampling::kRandom: break;
    }
    return BatchSampler::random(n, bs, args_.dataloader_drop_last, data_seed, epoch);
  };
  return pg_ ? all().shard(pg_->rank(), pg_->world_size()) : all();
}

Trainer::Schedule Trainer::plan() const {
  HFT_CHECK(data_.train != nullptr, "training needs a train dataset (data.train)");
  Schedule s;
  const int64_t ga = args_.gradient_accumulation_steps;
  // A data parallel rank's dataloader is its shard of the batches.
  s.batches_per_epoch = pg_ ? train_sampler(args_.data_seed.value_or(args_.seed), 0).size()
                            : BatchSampler::count(data_.train->size(), args_.train_batch_size(), args_.dataloader_drop_last);
  HFT_CHECK(s.batches_per_epoch > 0, "the train set has {} windows, fewer than one batch of {} {}with drop_last",
            data_.train->size(), args_.train_batch_size(),
            pg_ ? fmt::format("for each of {} ranks ", world_size()) : std::string());
  s.steps_per_epoch = (s.batches_per_epoch + ga - 1) / ga;
  // HF (trainer.py _inner_training_loop) counts floor(batches / GA) updates per epoch to
  // size the run, although an epoch's shorter last window is an optimizer step too.
  int64_t updates = std::max<int64_t>(s.batches_per_epoch / ga, 1);
  if (args_.max_steps > 0) {
    s.max_steps = args_.max_steps;
    s.num_epochs = s.max_steps / updates + (s.max_steps % updates > 0);
  } else {
    s.max_steps = static_cast<int64_t>(std::ceil(args_.num_train_epochs * updates));
    s.num_epochs = static_cast<int64_t>(std::ceil(args_.num_train_epochs));
  }
  return s;
}

void Trainer::check_train() const { plan(); }

void Trainer::create_optimizer(const Schedule& s) {
  // HF's two groups: weight decay for all but biases and norm weights.
  ParamGroup decay, no_decay;
  decay.lr = no_decay.lr = args_.learning_rate;
  decay.weight_decay = args_.weight_decay;
  for (const auto& p : model_->named_parameters()) {
    if (!p.value().requires_grad()) continue;
    (model_->is_no_decay(p.key()) ? no_decay : decay).params.push_back(p.value());
  }
  optimizer_ = optimizer_create(args_, {decay, no_decay});
  scheduler_ = scheduler_create(*optimizer_, scheduler_options_from_kwargs(args_.lr_scheduler_type,
                                                                           args_.get_warmup_steps(s.max_steps),
                                                                           s.max_steps, args_.lr_scheduler_kwargs,
                                                                           "lr_scheduler_kwargs"));
}

json Trainer::train(const std::optional<std::string>& resume_dir) {
  const auto t0 = std::chrono::steady_clock::now();
  const Schedule s = plan();
  const int64_t ga = args_.gradient_accumulation_steps;
  create_optimizer(s);
  // fp16: accelerate's GradScaler with torch's defaults (bf16 needs none).
  scaler_ = args_.fp16 ? std::make_unique<GradScaler>() : nullptr;
  in_train_ = true;
  state_ = TrainerState{};
  state_.max_steps = s.max_steps;
  state_.num_train_epochs = s.num_epochs;
  state_.train_batch_size = args_.train_batch_size();
  state_.logging_steps = resolve_steps(args_.logging_steps, s.max_steps);
  state_.eval_steps = resolve_steps(args_.eval_steps.value_or(args_.logging_steps), s.max_steps);
  state_.save_steps = resolve_steps(args_.save_steps, s.max_steps);
  if (resume_dir) load_checkpoint(*resume_dir);
  // DDP: every rank starts from rank 0's weights, and gradients are averaged in buckets.
  std::unique_ptr<GradReducer> reducer;
  if (pg_) {
    std::vector<at::Tensor> trainable;
    for (const auto& p : model_->named_parameters())
      if (p.value().requires_grad()) trainable.push_back(p.value());
    const double cap_mb = static_cast<double>(args_.ddp_bucket_cap_mb.value_or(25));
    reducer = std::make_unique<GradReducer>(*pg_, std::move(trainable), static_cast<int64_t>(cap_mb * 1024 * 1024));
    reducer->broadcast_parameters(0);
  }
  const int64_t world = world_size();
  const bool average_tokens = pg_ && args_.average_tokens_across_devices;

  // The data position follows from global_step: no batch before it is loaded.
  const int64_t first_epoch = state_.global_step / s.steps_per_epoch;
  const int64_t skip_batches = args_.ignore_data_skip ? 0 : (state_.global_step % s.steps_per_epoch) * ga;
  const int64_t start_step = state_.global_step;
  const int64_t data_seed = args_.data_seed.value_or(args_.seed);
  if (is_main())
    std::printf("***** Running training *****\n  windows = %lld, epochs = %lld, batch size = %lld, "
                "accumulation = %lld, optimization steps = %lld, parameters = %lld\n",
                (long long)data_.train->size(), (long long)s.num_epochs, (long long)args_.train_batch_size(),
                (long long)ga, (long long)s.max_steps, (long long)non_embedding_params_);
  if (pg_ && is_main())
    std::printf("  data parallel over %lld ranks (%s): total batch size = %lld, gradient buckets = %zu\n",
                (long long)world, dist_backend(args_.ddp_backend).c_str(),
                (long long)(args_.train_batch_size() * ga * world), reducer->num_buckets());
  if (resume_dir && is_main())
    std::printf("  resuming from %s at step %lld (epoch %lld, skipping %lld batches)\n", resume_dir->c_str(),
                (long long)start_step, (long long)first_epoch, (long long)skip_batches);

  model_->train();
  at::Tensor tr_loss = at::zeros({}, at::TensorOptions(device_).dtype(at::kFloat));  // read only to log
  at::Tensor grad_norm;
  total_loss_scalar_ = 0;
  globalstep_last_logged_ = state_.global_step;
  callbacks_.on_train_begin(args_, state_, control_);
  if (args_.eval_on_start) evaluate();
  std::vector<Batch> window;
  const bool loss_kwargs = model_->accepts_loss_kwargs();
  for (int64_t epoch = first_epoch; epoch < s.num_epochs && state_.global_step < s.max_steps; ++epoch) {
    const int64_t first_batch = epoch == first_epoch ? skip_batches : 0;  // a resume skips by index
    DataLoader loader(*data_.train, train_sampler(data_seed, epoch), first_batch, s.batches_per_epoch,
                      args_.dataloader_num_workers, args_.dataloader_prefetch_factor.value_or(2));
    callbacks_.on_epoch_begin(args_, state_, control_);
    for (int64_t b0 = first_batch; b0 < s.batches_per_epoch; b0 += ga) {
      // One optimizer step: prefetch the window's micro-batches and count its label tokens.
      const int64_t b1 = std::min(b0 + ga, s.batches_per_epoch);
      window.clear();
      int64_t num_items = 0;
      for (int64_t b = b0; b < b1; ++b) {
        Batch batch = loader.next();
        if (loss_kwargs) num_items += count_label_tokens(batch);  // counted on the host's copy
        window.push_back(batch_to(std::move(batch), device_));
      }
      // average_tokens_across_devices: the loss is normalised by the window's label tokens
      // over all ranks, and scaled by the world size that DDP's averaging divides out.
      if (average_tokens) num_items = static_cast<int64_t>(pg_->sum(static_cast<double>(num_items)));
      callbacks_.on_step_begin(args_, state_, control_);
      const double steps_since_log = static_cast<double>(1 + state_.global_step - globalstep_last_logged_);
      for (size_t m = 0; m < window.size(); ++m) {
        at::Tensor loss;
        if (loss_kwargs) {
          loss = forward(window[m], static_cast<double>(num_items)).loss;
          if (average_tokens) loss = loss.mul(static_cast<double>(world));
        } else {  // the head's mean loss, scaled as transformers' training_step scales it
          loss = forward(window[m], std::nullopt).loss.div(static_cast<double>(ga));
        }
        const bool last = m + 1 == window.size();
        if (reducer) reducer->prepare(last);  // earlier micro-steps accumulate locally (no_sync)
        (scaler_ ? scaler_->scale(loss) : loss).backward();
        if (reducer && last) reducer->finish();
        at::Tensor l = loss.detach();
        // logging_nan_inf_filter without a host sync: a non-finite loss counts as the mean so far.
        if (args_.logging_nan_inf_filter) tr_loss.add_(at::where(at::isfinite(l), l, tr_loss / steps_since_log));
        else tr_loss.add_(l);
        const int64_t tokens = window[m].at("input_ids").numel();
        current_flos_ += 6.0 * non_embedding_params_ * static_cast<double>(tokens);
        if (args_.include_num_input_tokens_seen) (pg_ ? tokens_not_summed_ : state_.num_input_tokens_seen) += tokens;
        if (m + 1 < window.size()) callbacks_.on_substep_end(args_, state_, control_);
      }
      if (args_.max_grad_norm > 0) {
        if (scaler_) scaler_->unscale(*optimizer_);  // clip the true gradients (accelerate)
        grad_norm = clip_grad_norm(optimizer_params(), args_.max_grad_norm);
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
      callbacks_.on_optimizer_step(args_, state_, control_);
      if (stepped) scheduler_->step();
      optimizer_->zero_grad();
      state_.global_step += 1;
      state_.epoch = static_cast<double>(epoch) + static_cast<double>(b1) / static_cast<double>(s.batches_per_epoch);
      callbacks_.on_step_end(args_, state_, control_);
      maybe_log_save_evaluate(tr_loss, grad_norm);
      // A signal to any rank stops them all after the same step.
      if (const int sig = pg_ ? static_cast<int>(pg_->max(preemption_signal())) : preemption_signal()) {
        // Preempted: the step is complete; save it (unless just saved) and stop.
        const std::string dir = checkpoint_dir(args_.output_dir, state_.global_step);
        if (last_saved_step_ != state_.global_step) save_checkpoint();
        throw Interrupted(sig, fmt::format("stopped by signal {} after step {}; resume with: hftrain resume "
                                           "--checkpoint {}",
                                           sig, state_.global_step, dir));
      }
      if (control_.should_epoch_stop || control_.should_training_stop) break;
    }
    callbacks_.on_epoch_end(args_, state_, control_);
    maybe_log_save_evaluate(tr_loss, grad_norm);
    if (control_.should_training_stop) break;
  }

  // Summary as HF's speed_metrics("train", ...). train_loss is the mean step loss of the
  // steps this process ran (HF divides by all steps, which undercounts after a resume).
  total_loss_scalar_ += mean_over_ranks(host_read<double>(tr_loss));
  const double runtime = seconds_since(t0);
  const int64_t steps_run = std::max<int64_t>(state_.global_step - start_step, 1);
  const double samples = static_cast<double>(s.max_steps * args_.train_batch_size() * ga * world);
  store_flos();
  json summary{{"train_runtime", round_to(runtime, 4)},
               {"train_samples_per_second", round_to(samples / runtime, 3)},
               {"train_steps_per_second", round_to(static_cast<double>(s.max_steps) / runtime, 3)},
               {"total_flos", state_.total_flos},
               {"train_loss", total_loss_scalar_ / static_cast<double>(steps_run)}};
  if (args_.include_tokens_per_second)
    summary["train_tokens_per_second"] =
        round_to(samples * static_cast<double>(data_.train->num_tokens()) / static_cast<double>(data_.train->size()) / runtime, 3);
  log(summary);
  if (args_.load_best_model_at_end && state_.best_model_checkpoint &&
      fs::is_regular_file(*state_.best_model_checkpoint + "/model.safetensors")) {
    if (is_main())
      std::printf("loading the best model from %s (%s %g)\n", state_.best_model_checkpoint->c_str(),
                  args_.metric_for_best_model->c_str(), state_.best_metric.value_or(0));
    model_load_weights(*model_, *state_.best_model_checkpoint + "/model.safetensors");
  }
  callbacks_.on_train_end(args_, state_, control_);
  in_train_ = false;
  return summary;
}

std::vector<at::Tensor> Trainer::optimizer_params() const {
  std::vector<at::Tensor> out;
  for (const auto& g : optimizer_->param_groups()) out.insert(out.end(), g.params.begin(), g.params.end());
  return out;
}

void Trainer::maybe_log_save_evaluate(at::Tensor& tr_loss, const at::Tensor& grad_norm) {
  if (control_.should_log && state_.global_step > globalstep_last_logged_) {
    // Host reads (and the reduction over ranks) happen only when logging.
    const double tr_loss_scalar = mean_over_ranks(host_read<double>(tr_loss));
    tr_loss.zero_();
    json logs{{"loss", round_to(tr_loss_scalar / static_cast<double>(state_.global_step - globalstep_last_logged_), 4)},
              {"learning_rate", scheduler_->last_lr()[0]}};
    if (grad_norm.defined()) logs["grad_norm"] = host_read<double>(grad_norm);
    total_loss_scalar_ += tr_loss_scalar;
    globalstep_last_logged_ = state_.global_step;
    store_flos();
    log(logs);
  }
  if (control_.should_evaluate) {
    const json metrics = evaluate();
    // HF's _evaluate: reduce_lr_on_plateau steps on the metric after each evaluation.
    if (scheduler_->steps_on_metric()) scheduler_->step_metric(metric_value(args_, metrics));
    const bool new_best = update_best_metric(metrics);
    if (args_.save_strategy == SaveStrategy::kBest) control_.should_save = new_best;
  }
  if (control_.should_save) {
    save_checkpoint();
    callbacks_.on_save(args_, state_, control_);
  }
}

bool Trainer::update_best_metric(const json& metrics) {
  if (!args_.metric_for_best_model) return false;
  const double value = metric_value(args_, metrics);
  const bool greater = args_.greater_is_better.value_or(false);
  if (state_.best_metric && !(greater ? value > *state_.best_metric : value < *state_.best_metric)) return false;
  state_.best_metric = value;
  state_.best_model_checkpoint = checkpoint_dir(args_.output_dir, state_.global_step);
  return true;
}

void Trainer::log(json logs) {
  logs["epoch"] = state_.epoch;
  logs["step"] = state_.global_step;
  state_.log_history.push_back(logs);
  callbacks_.on_log(args_, state_, control_, logs);
}

namespace {

// Argmax predictions and the labels they are scored against, both (B,N) int64: a causal LM's
// position t predicts the label at t+1; a sequence classifier has one of each per row.
std::pair<at::Tensor, at::Tensor> aligned_predictions(ModelTask task, const at::Tensor& logits,
                                                      const at::Tensor& labels) {
  switch (task) {
    case ModelTask::kCausalLM: {
      const int64_t T = logits.size(1);
      return {logits.slice(1, 0, T - 1).argmax(-1), labels.slice(1, 1)};
    }
    case ModelTask::kSequenceClassification:
      return {logits.argmax(-1).view({-1, 1}), labels.view({-1, 1})};
    case ModelTask::kTokenClassification:
    case ModelTask::kMaskedLM: break;
  }
  return {logits.argmax(-1), labels};
}

}  // namespace

json Trainer::evaluation_loop(const LmDataset& windows, const std::string& prefix,
                              std::vector<std::vector<int64_t>>* predictions, std::vector<at::Tensor>* logits) {
  const auto t0 = std::chrono::steady_clock::now();
  // HF's evaluation_loop outside train(): *_full_eval evaluates (and leaves) the model cast.
  if (!in_train_ && args_.fp16_full_eval) model_->to(at::kHalf);
  else if (!in_train_ && args_.bf16_full_eval) model_->to(at::kBFloat16);
  const bool was_training = model_->is_training();
  model_->eval();
  at::NoGradGuard no_grad;
  MetricAccumulator acc(config_.metrics);
  const bool want_preds = predictions || acc.needs_predictions();
  const int64_t n = windows.size(), bs = args_.eval_batch_size();
  // Data parallel: each rank evaluates its shard (accelerate's, with the last round topped
  // up from the start); the top-up rows are left out, as gather_for_metrics drops them, and
  // the sums are reduced. Predictions are wanted in order, so they are made on every rank.
  const bool sharded = pg_ && !predictions;
  const int64_t rank = sharded ? pg_->rank() : 0, world = sharded ? pg_->world_size() : 1;
  BatchSampler sampler = BatchSampler::sequential(n, bs).shard(rank, world);
  std::vector<at::Tensor> losses;  // each batch's mean loss, repeated batch-size times (HF)
  for (int64_t b = 0; b < sampler.size(); ++b) {
    at::Tensor rows = sampler.batch(b);
    // This rank's b-th batch holds windows (b * world + rank) * bs + i of the sequential
    // order: those past its end are top-up and are not evaluated, so that the batches, and
    // the loss, are those of a single process.
    const int64_t real = std::clamp<int64_t>(n - (b * world + rank) * bs, 0, rows.numel());
    if (real == 0) continue;
    Batch batch = batch_to(windows.collate(rows.slice(0, 0, real)), device_);
    ModelOutput out = forward(batch, std::nullopt);
    losses.push_back(out.loss.detach().reshape({1}).repeat({real}));
    callbacks_.on_prediction_step(args_, state_, control_);
    if (logits) logits->push_back(out.logits.detach().to(at::kFloat).cpu());
    if (!want_preds) continue;
    auto [preds, labels] = aligned_predictions(model_->task(), out.logits, batch.at("labels"));
    preds = preds.cpu(), labels = labels.cpu();  // the metrics count on the host
    acc.add(preds, labels);
    if (predictions)
      for (int64_t i = 0; i < preds.size(0); ++i) {
        at::Tensor row = preds[i].contiguous();
        predictions->emplace_back(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel());
      }
  }
  double loss = 0;
  if (sharded) {
    at::Tensor all = losses.empty() ? at::zeros({0}, at::kFloat) : at::cat(losses);
    std::vector<at::Tensor> sums{at::stack({all.sum().to(at::kDouble).cpu(), at::scalar_tensor(static_cast<double>(all.numel()), at::kDouble)})};
    pg_->all_reduce_sum(sums);
    loss = sums[0][0].item<double>() / sums[0][1].item<double>();
    acc.all_reduce(*pg_);
  } else {
    loss = host_read<double>(at::cat(losses).mean());
  }
  const double runtime = seconds_since(t0);
  json metrics = acc.compute(loss, prefix);
  metrics[prefix + "loss"] = loss;
  metrics[prefix + "runtime"] = round_to(runtime, 4);
  metrics[prefix + "samples_per_second"] = round_to(static_cast<double>(n) / runtime, 3);
  metrics[prefix + "steps_per_second"] = round_to(static_cast<double>(sampler.size()) / runtime, 3);
  if (was_training) model_->train();
  return metrics;
}

json Trainer::evaluate() {
  HFT_CHECK(data_.eval != nullptr, "evaluation needs an eval dataset: set data.eval or data.validation_split_percentage");
  json metrics = evaluation_loop(*data_.eval, "eval_", nullptr);
  log(metrics);
  callbacks_.on_evaluate(args_, state_, control_, metrics);
  return metrics;
}

json Trainer::predict(const LmDataset& data, std::vector<std::vector<int64_t>>& predictions, at::Tensor* logits) {
  std::vector<at::Tensor> batches;
  json metrics = evaluation_loop(data, "test_", &predictions, logits ? &batches : nullptr);
  if (logits) *logits = at::cat(batches);
  log(metrics);
  callbacks_.on_predict(args_, state_, control_, metrics);
  return metrics;
}

// HF sums the ranks' floating point operations (and input tokens) whenever it stores them.
void Trainer::store_flos() {
  state_.total_flos += pg_ ? pg_->sum(current_flos_) : current_flos_;
  current_flos_ = 0;
  if (pg_ && args_.include_num_input_tokens_seen) {
    state_.num_input_tokens_seen += static_cast<int64_t>(pg_->sum(static_cast<double>(tokens_not_summed_)));
    tokens_not_summed_ = 0;
  }
}

void Trainer::write_model_files(const std::string& dir) {
  model_save_pretrained(*model_, dir);
  tokenizer_save_pretrained(*tokenizer_, dir, config_.data.block_size);
  io::write_json_file(dir + "/training_args.json", training_args_to_json(args_));
  json manifest{{"format_version", kCheckpointFormatVersion}, {"config", config_to_json(config_)}};
  io::write_json_file(dir + "/" + kCheckpointConfigFile, manifest);
}

void Trainer::save_model(const std::string& dir) {
  if (!is_main()) return;
  fs::create_directories(dir);
  write_model_files(dir);
  io::write_json_file(dir + "/trainer_state.json", trainer_state_to_json(state_));
}

void Trainer::save_checkpoint() {
  store_flos();
  state_.stateful_callbacks["TrainerControl"] = trainer_control_to_json(control_);
  for (const auto& cb : callbacks_.callbacks())
    if (json st = cb->state(); !st.is_null()) state_.stateful_callbacks[cb->name()] = st;
  const std::string dir = checkpoint_dir(args_.output_dir, state_.global_step);
  // Rank 0 writes the whole directory, each rank's RNG state included (gathered here), so
  // that the checkpoint appears at once, complete, or not at all.
  std::vector<c10::IValue> rng{rng_state_capture(device_, args_.seed)};
  if (pg_ && !args_.save_only_model) {
    rng.clear();
    const std::vector<at::Tensor> cpu = pg_->all_gather(generator_state(c10::Device(c10::kCPU)));
    std::vector<at::Tensor> gpu(cpu.size());
    if (device_.is_cuda()) gpu = pg_->all_gather(generator_state(device_));
    for (size_t r = 0; r < cpu.size(); ++r) rng.push_back(rng_state_dict(cpu[r], gpu[r], args_.seed));
  }
  if (is_main()) {
    checkpoint_write_atomic(dir, [&](const std::string& tmp) {
      write_model_files(tmp);
      io::write_json_file(tmp + "/trainer_state.json", trainer_state_to_json(state_));
      if (args_.save_only_model) return;  // HF: such a checkpoint holds the model only
      io::pickle_save_file(tmp + "/optimizer.pt", optimizer_->state_dict());
      io::pickle_save_file(tmp + "/scheduler.pt", scheduler_->state_dict());
      if (scaler_) io::pickle_save_file(tmp + "/scaler.pt", scaler_->state_dict());
      for (size_t r = 0; r < rng.size(); ++r)
        io::pickle_save_file(tmp + "/" + rng_state_file(static_cast<int64_t>(r), world_size()), rng[r]);
    });
    if (args_.save_total_limit)
      checkpoint_rotate(args_.output_dir, *args_.save_total_limit, state_.best_model_checkpoint);
  }
  if (pg_) pg_->barrier();  // no rank reads the checkpoint before it is complete
  last_saved_step_ = state_.global_step;
}

void Trainer::load_checkpoint(const std::string& dir) {
  const std::string state_path = dir + "/trainer_state.json";
  TrainerState loaded = trainer_state_from_json(io::read_json_file(state_path), state_path);
  HFT_CHECK(loaded.train_batch_size == args_.train_batch_size(),
            "{}: the checkpoint was trained with batch size {}, this run has {}; resume needs the same batch size",
            state_path, loaded.train_batch_size, args_.train_batch_size());
  HFT_CHECK(fs::is_regular_file(dir + "/optimizer.pt"),
            "{} holds no optimizer.pt (saved with save_only_model?): it cannot resume training; start a new run "
            "from it with model.pretrained instead",
            dir);
  rng_state_check_world_size(dir, world_size());
  model_load_weights(*model_, dir + "/model.safetensors");
  optimizer_->load_state_dict(io::pickle_load_file(dir + "/optimizer.pt"), dir + "/optimizer.pt");
  scheduler_->load_state_dict(io::pickle_load_file(dir + "/scheduler.pt"), dir + "/scheduler.pt");
  // A checkpoint of a float32 or bf16 run has no scaler.pt: fp16 then starts from torch's
  // initial scale, as HF does.
  if (scaler_ && fs::is_regular_file(dir + "/scaler.pt"))
    scaler_->load_state_dict(io::pickle_load_file(dir + "/scaler.pt"), dir + "/scaler.pt");
  // The run's bounds come from this run's arguments (max_steps may be raised to continue).
  loaded.max_steps = state_.max_steps;
  loaded.num_train_epochs = state_.num_train_epochs;
  loaded.logging_steps = state_.logging_steps;
  loaded.eval_steps = state_.eval_steps;
  loaded.save_steps = state_.save_steps;
  state_ = loaded;
  // Callback state (early stopping's counter) continues where it was, so that a resumed run
  // behaves as the uninterrupted one; HF restores it only with
  // restore_callback_states_from_checkpoint.
  for (const auto& cb : callbacks_.callbacks())
    if (!cb->state().is_null() && state_.stateful_callbacks.contains(cb->name()))
      cb->restore(state_.stateful_callbacks.at(cb->name()), state_path);
  const std::string rng_path = dir + "/" + rng_state_file(pg_ ? pg_->rank() : 0, world_size());
  // HF's file also holds Python's and NumPy's states; hftrain needs neither.
  rng_state_restore(io::pickle_load_file(rng_path, /*drop_foreign=*/true), rng_path, device_);
}

}  // namespace hftrain
