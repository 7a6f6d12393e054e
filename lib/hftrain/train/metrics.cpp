#include "hftrain/train/metrics.h"

#include "hftrain/core/error.h"
#include "hftrain/dist/process_group.h"

#include <ATen/Functions.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>

namespace hftrain {

MetricAccumulator::MetricAccumulator(std::vector<Metric> metrics, const std::vector<std::string>& plugin_metrics)
    : metrics_(std::move(metrics)) {
  for (const std::string& name : plugin_metrics) plugins_.push_back(plugin_metric_create(name));
}

bool MetricAccumulator::needs_predictions() const {
  return !plugins_.empty() ||
         std::any_of(metrics_.begin(), metrics_.end(), [](Metric m) { return m != Metric::kPerplexity; });
}

namespace {

// Per-class counts `t` (int64) zero-extended to n classes; an undefined `t` is all zeros.
at::Tensor padded(const at::Tensor& t, int64_t n) {
  if (!t.defined()) return at::zeros({n}, at::kLong);
  return t.numel() < n ? at::cat({t, at::zeros({n - t.numel()}, at::kLong)}) : t;
}

}  // namespace

void MetricAccumulator::add_inputs(const at::Tensor& inputs) {
  inputs_ = inputs.to(at::kLong).contiguous().view(-1);  // the plugins may read it until add() returns
  for (auto& m : plugins_) m->add_inputs(inputs_.data_ptr<int64_t>(), inputs_.numel());
}

void MetricAccumulator::add_loss(double loss) {
  for (auto& m : plugins_) m->add_loss(loss);
}

void MetricAccumulator::add(const at::Tensor& preds, const at::Tensor& labels) {
  if (!plugins_.empty()) {
    const at::Tensor p = preds.to(at::kLong).contiguous().view(-1), l = labels.to(at::kLong).contiguous().view(-1);
    for (auto& m : plugins_) m->add(p.data_ptr<int64_t>(), l.data_ptr<int64_t>(), p.numel());
    inputs_ = at::Tensor();
  }
  at::Tensor mask = labels.ne(-100);
  at::Tensor p = preds.masked_select(mask), l = labels.masked_select(mask);
  at::Tensor hit = p.eq(l);
  correct_ += hit.sum().item<int64_t>();
  total_ += l.numel();
  // A row is exact when none of its counted positions is wrong.
  at::Tensor wrong = preds.ne(labels).logical_and(mask).any(1);
  rows_ += labels.size(0);
  exact_rows_ += wrong.logical_not().sum().item<int64_t>();
  const int64_t n = std::max<int64_t>({p.numel() ? p.max().item<int64_t>() + 1 : 0,
                                       l.numel() ? l.max().item<int64_t>() + 1 : 0, tp_.defined() ? tp_.numel() : 0});
  tp_ = padded(tp_, n), pred_count_ = padded(pred_count_, n), label_count_ = padded(label_count_, n);
  tp_.add_(at::bincount(l.masked_select(hit), {}, n));
  pred_count_.add_(at::bincount(p, {}, n));
  label_count_.add_(at::bincount(l, {}, n));
}

void MetricAccumulator::all_reduce(ProcessGroup& pg) {
  HFT_CHECK(plugins_.empty(), "metric {} comes from a plugin, whose state cannot be combined across data parallel "
            "ranks; evaluate it in a single process", plugins_.empty() ? "" : plugins_.front()->name());
  const int64_t n = pg.max(tp_.defined() ? tp_.numel() : 0);  // the classes any rank has seen
  at::Tensor counts = at::tensor(std::vector<int64_t>{correct_, total_, rows_, exact_rows_}, at::kLong);
  std::vector<at::Tensor> packed{at::cat({counts, padded(tp_, n), padded(pred_count_, n), padded(label_count_, n)})};
  pg.all_reduce_sum(packed);
  auto c = packed[0].accessor<int64_t, 1>();
  correct_ = c[0], total_ = c[1], rows_ = c[2], exact_rows_ = c[3];
  if (n == 0) return;
  tp_ = packed[0].slice(0, 4, 4 + n).clone();
  pred_count_ = packed[0].slice(0, 4 + n, 4 + 2 * n).clone();
  label_count_ = packed[0].slice(0, 4 + 2 * n, 4 + 3 * n).clone();
}

nlohmann::json MetricAccumulator::compute(double loss, const std::string& prefix) const {
  nlohmann::json out = nlohmann::json::object();
  auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
  // Macro averages over classes present in labels or predictions (scikit-learn's labels=None).
  double p_sum = 0, r_sum = 0, f_sum = 0;
  int64_t classes = 0;
  if (tp_.defined()) {
    auto tp = tp_.accessor<int64_t, 1>(), pc = pred_count_.accessor<int64_t, 1>(), lc = label_count_.accessor<int64_t, 1>();
    for (int64_t c = 0; c < tp_.numel(); ++c) {
      if (pc[c] == 0 && lc[c] == 0) continue;
      const double prec = ratio(tp[c], pc[c]), rec = ratio(tp[c], lc[c]);
      p_sum += prec, r_sum += rec, f_sum += prec + rec > 0 ? 2 * prec * rec / (prec + rec) : 0.0;
      ++classes;
    }
  }
  const double accuracy = ratio(static_cast<double>(correct_), static_cast<double>(total_));
  for (const auto& m : plugins_) out[prefix + m->name()] = m->compute();
  for (Metric m : metrics_) {
    switch (m) {
      case Metric::kPerplexity: out[prefix + "perplexity"] = std::exp(loss); break;
      case Metric::kAccuracy: out[prefix + "accuracy"] = accuracy; break;
      // Single-label classification: micro precision = recall = F1 = accuracy.
      case Metric::kPrecisionMicro: out[prefix + "precision_micro"] = accuracy; break;
      case Metric::kRecallMicro: out[prefix + "recall_micro"] = accuracy; break;
      case Metric::kF1Micro: out[prefix + "f1_micro"] = accuracy; break;
      case Metric::kPrecisionMacro: out[prefix + "precision_macro"] = ratio(p_sum, static_cast<double>(classes)); break;
      case Metric::kRecallMacro: out[prefix + "recall_macro"] = ratio(r_sum, static_cast<double>(classes)); break;
      case Metric::kF1Macro: out[prefix + "f1_macro"] = ratio(f_sum, static_cast<double>(classes)); break;
      case Metric::kExactMatch:
        out[prefix + "exact_match"] = ratio(static_cast<double>(exact_rows_), static_cast<double>(rows_));
        break;
    }
  }
  return out;
}

double metric_value(const std::string& metric_for_best_model, const nlohmann::json& metrics) {
  std::string key = metric_for_best_model;
  if (key.rfind("eval_", 0) != 0) key = "eval_" + key;
  if (!metrics.contains(key)) {
    std::vector<std::string> names;
    for (const auto& [k, _] : metrics.items()) names.push_back(k);
    fail("metric_for_best_model is {}, which is not among the evaluation metrics: {}", key, fmt::join(names, ", "));
  }
  return metrics.at(key).get<double>();
}

}  // namespace hftrain
