// Evaluation and prediction: HF's evaluation_loop over a dataset, its metrics, and the
// best-metric bookkeeping that save_strategy "best" and load_best_model_at_end use.
#include "hftrain/train/trainer.h"

#include "hftrain/core/device.h"
#include "hftrain/core/error.h"
#include "hftrain/core/host_sync.h"
#include "hftrain/core/strings.h"
#include "hftrain/dist/process_group.h"
#include "hftrain/dist/sharded.h"
#include "hftrain/generate.h"
#include "hftrain/train/metrics.h"

#include <ATen/Functions.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <chrono>

namespace hftrain {

using json = nlohmann::json;

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

// predict_with_generate (Seq2SeqTrainer's) for a causal LM: each row's completion, the
// labels after its prompt (the tokens before the first label that is not -100), generated
// greedily from the prompt, at most generation_max_length tokens (else the completion's length);
// returned aligned as aligned_predictions aligns a causal LM's, -1 where nothing was generated.
at::Tensor generated_predictions(Model& model, const Batch& batch, std::optional<int64_t> max_new) {
  const at::Tensor ids = batch.at("input_ids").cpu(), labels = batch.at("labels").cpu();
  const auto mask_it = batch.find("attention_mask");
  const at::Tensor mask = mask_it != batch.end() ? mask_it->second.cpu() : at::ones_like(ids);
  const int64_t B = ids.size(0), T = ids.size(1);
  at::Tensor preds = at::full({B, T - 1}, -1, at::kLong);
  for (int64_t i = 0; i < B; ++i) {
    const at::Tensor scored = labels[i].slice(0, 1).ne(-100).nonzero();
    if (scored.numel() == 0) continue;
    const int64_t first = scored[0][0].item<int64_t>() + 1;  // the completion's first position
    const int64_t length = mask[i].sum().item<int64_t>();
    const int64_t completion = labels[i].slice(0, first, length).ne(-100).sum().item<int64_t>();
    GenerateOptions o;
    o.max_new_tokens = max_new ? std::min(*max_new, completion) : completion;
    const at::Tensor prompt = ids[i].slice(0, 0, first).contiguous();
    const std::vector<int64_t> p(prompt.data_ptr<int64_t>(), prompt.data_ptr<int64_t>() + prompt.numel());
    const std::vector<int64_t> g = generate(model, p, o);
    for (size_t k = 0; k < g.size() && first - 1 + static_cast<int64_t>(k) < T - 1; ++k)
      preds[i][first - 1 + static_cast<int64_t>(k)] = g[k];
  }
  return preds;
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
  // prediction_loss_only: HF's prediction_step returns the loss alone, so no metric that needs
  // predictions is computed (perplexity, from the loss, still is).
  std::vector<Metric> wanted;
  for (Metric m : config_.metrics)
    if (!args_.prediction_loss_only || !MetricAccumulator({m}).needs_predictions()) wanted.push_back(m);
  MetricAccumulator acc(wanted, args_.prediction_loss_only ? std::vector<std::string>{} : config_.plugin_metrics);
  const bool want_preds = predictions || acc.needs_predictions();
  // include_for_metrics (HF's EvalPrediction.inputs / .losses), for plugin metrics.
  const auto& extra = args_.include_for_metrics;
  const bool include_inputs = std::find(extra.begin(), extra.end(), "inputs") != extra.end();
  const bool include_loss = std::find(extra.begin(), extra.end(), "loss") != extra.end();
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
    if (real == 0) {
      // Fully sharded, every rank's forward gathers each block with the others': a rank with
      // only top-up rows runs them too, and drops what they give.
      if (sharded && sharded_ && sharded_->stage() == 3) forward(batch_to(windows.collate(rows), device_), std::nullopt);
      continue;
    }
    Batch batch = batch_to(windows.collate(rows.slice(0, 0, real)), device_);
    ModelOutput out = forward(batch, std::nullopt);
    losses.push_back(out.loss.detach().reshape({1}).repeat({real}));
    callbacks_.on_prediction_step(args_, state_, control_);
    if (logits) logits->push_back(out.logits.detach().to(at::kFloat).cpu());
    if (!want_preds) continue;
    auto [preds, labels] = aligned_predictions(model_->task(), out.logits, batch.at("labels"));
    if (args_.predict_with_generate && model_->task() == ModelTask::kCausalLM)
      preds = generated_predictions(*model_, batch, args_.generation_max_length);
    preds = preds.cpu(), labels = labels.cpu();  // the metrics count on the host
    if (include_inputs) {  // the ids each prediction was made at: a causal LM's position t for label t + 1
      const at::Tensor ids = batch.at("input_ids").cpu();
      acc.add_inputs(model_->task() == ModelTask::kCausalLM ? ids.slice(1, 0, ids.size(1) - 1)
                     : model_->task() == ModelTask::kSequenceClassification ? ids.slice(1, 0, 1) : ids);
    }
    if (include_loss) acc.add_loss(host_read<double>(out.loss));
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
  const double runtime = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  json metrics = acc.compute(loss, prefix);
  metrics[prefix + "loss"] = loss;
  metrics[prefix + "runtime"] = py_round(runtime, 4);
  metrics[prefix + "samples_per_second"] = py_round(static_cast<double>(n) / runtime, 3);
  metrics[prefix + "steps_per_second"] = py_round(static_cast<double>(sampler.size()) / runtime, 3);
  if (was_training) model_->train();
  return metrics;
}

json Trainer::evaluate() {
  HFT_CHECK(data_.eval != nullptr || !data_.named_evals.empty(),
            "evaluation needs an eval dataset: set data.eval or data.validation_split_percentage");
  memory_.start("eval");  // not tracked inside training, as in HF
  // Fully sharded: the root unit is held for the evaluation and the blocks are gathered one at
  // a time, as in training (evaluation_loop keeps the ranks' forwards in step).
  if (sharded_) sharded_->hold_root(true);
  // Several eval sets: each evaluated, logged and reported to the callbacks in turn under
  // eval_<name>_, the metrics merged (HF's evaluate over a dict of eval datasets).
  std::vector<std::pair<std::string, const LmDataset*>> sets;
  if (data_.eval) sets.emplace_back("eval_", data_.eval.get());
  for (const auto& [name, d] : data_.named_evals) sets.emplace_back("eval_" + name + "_", d.get());
  json merged = json::object();
  for (const auto& [prefix, d] : sets) {
    json metrics = evaluation_loop(*d, prefix, nullptr);
    fold_tokens_seen(/*reduce=*/true);  // every rank evaluates: the count in the eval log is the global one
    log(metrics);
    callbacks_.on_evaluate(args_, state_, control_, metrics);
    merged.update(metrics);
  }
  if (sharded_) sharded_->hold_root(false);
  memory_.stop("eval", &merged);  // after the logs, as HF: in the returned metrics (eval_results.json)
  return merged;
}

json Trainer::predict(const LmDataset& data, std::vector<std::vector<int64_t>>& predictions, at::Tensor* logits,
                      bool labelled) {
  memory_.start("test");
  std::vector<at::Tensor> batches;
  json metrics = evaluation_loop(data, "test_", &predictions, logits ? &batches : nullptr);
  if (!labelled) {
    json timing = json::object();
    for (const char* k : {"test_runtime", "test_samples_per_second", "test_steps_per_second"}) timing[k] = metrics.at(k);
    metrics = timing;
  }
  if (logits && !batches.empty()) {
    // Rows of per-token logits padded to the longest batch with -100, as HF's nested_concat.
    int64_t longest = 0;
    for (const at::Tensor& b : batches) longest = std::max(longest, b.dim() > 2 ? b.size(1) : 0);
    for (at::Tensor& b : batches)
      if (b.dim() > 2 && b.size(1) < longest) {
        std::vector<int64_t> shape = b.sizes().vec();
        shape[1] = longest - b.size(1);
        b = at::cat({b, at::full(shape, -100.0, b.options())}, 1);
      }
    *logits = at::cat(batches);
  }
  log(metrics);
  callbacks_.on_predict(args_, state_, control_, metrics);
  memory_.stop("test", &metrics);
  return metrics;
}

bool Trainer::update_best_metric(const json& metrics) {
  if (!args_.metric_for_best_model) return false;
  const double value = metric_value(args_.metric_for_best_model.value_or("loss"), metrics);
  const bool greater = args_.greater_is_better.value_or(false);
  if (state_.best_metric && !(greater ? value > *state_.best_metric : value < *state_.best_metric)) return false;
  state_.best_metric = value;
  state_.best_model_checkpoint = checkpoint_dir(args_.output_dir, state_.global_step);
  return true;
}

}  // namespace hftrain
