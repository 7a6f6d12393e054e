// Evaluation metrics by name over label tokens (causal LM: the prediction at position t is
// argmax logits[t] against labels[t+1]; positions labelled -100 do not count).
// accuracy; precision/recall/F1 macro (mean over the classes seen in labels or predictions,
// as scikit-learn's average="macro") and micro (global counts); exact_match (a sequence all
// of whose label tokens are right). perplexity is exp(eval_loss).
#pragma once

#include "hftrain/plugin/plugins.h"
#include "hftrain/train/metric.h"

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

namespace hftrain {

class ProcessGroup;

// metric_for_best_model's value in eval `metrics` (HF prefixes "eval_" when missing); a
// metric the evaluation does not produce is a user error naming the ones it does.
double metric_value(const std::string& metric_for_best_model, const nlohmann::json& metrics);

class MetricAccumulator {
 public:
  explicit MetricAccumulator(std::vector<Metric> metrics, const std::vector<std::string>& plugin_metrics = {});
  // Whether any metric needs predictions (loss and perplexity do not).
  bool needs_predictions() const;
  // preds, labels: (B,N) int64 aligned; labels -100 are ignored.
  void add(const at::Tensor& preds, const at::Tensor& labels);
  // include_for_metrics: the batch's input ids aligned with preds ((B,N) int64) and its mean
  // loss, for the plugin metrics that take them; call before add().
  void add_inputs(const at::Tensor& inputs);
  void add_loss(double loss);
  // {"<prefix>accuracy": ..., ...} for the metrics asked for; perplexity from `loss`.
  nlohmann::json compute(double loss, const std::string& prefix) const;
  // Sums every rank's counts into each rank's accumulator (a data parallel evaluation).
  void all_reduce(ProcessGroup& pg);

 private:
  std::vector<Metric> metrics_;
  std::vector<std::unique_ptr<PluginMetric>> plugins_;  // fed every batch, computed once
  at::Tensor inputs_;  // the batch's input ids from add_inputs(), kept alive until add()
  at::Tensor tp_, pred_count_, label_count_;  // per class, int64
  int64_t correct_ = 0, total_ = 0, rows_ = 0, exact_rows_ = 0;
};

}  // namespace hftrain
