#include "hftrain/train/callbacks/early_stopping.h"

#include "hftrain/core/error.h"
#include "hftrain/core/strings.h"

#include <cmath>

namespace hftrain {

std::unique_ptr<Callback> EarlyStoppingCallback::create(const Json& options, const std::string& where) {
  EarlyStoppingOptions o;
  for (const auto& [k, v] : options.items()) {
    if (k == "early_stopping_patience") {
      HFT_CHECK(v.is_number_integer() && v.get<int64_t>() >= 1, "{}: early_stopping_patience must be an integer >= 1, got {}", where, v.dump());
      o.early_stopping_patience = v.get<int64_t>();
    } else if (k == "early_stopping_threshold") {
      HFT_CHECK(v.is_number() && v.get<double>() >= 0, "{}: early_stopping_threshold must be a number >= 0, got {}", where, v.dump());
      o.early_stopping_threshold = v.get<double>();
    } else {
      fail("{}: {}", where, unknown_name_message("early_stopping option", k, {"early_stopping_patience", "early_stopping_threshold"}));
    }
  }
  return std::make_unique<EarlyStoppingCallback>(o);
}

void EarlyStoppingCallback::on_train_begin(const Args& a, State& s, Control& c) {
  // HF asserts the same three things.
  HFT_CHECK(a.load_best_model_at_end, "the early_stopping callback requires load_best_model_at_end: true");
  HFT_CHECK(a.metric_for_best_model.has_value(), "the early_stopping callback requires metric_for_best_model");
  HFT_CHECK(a.eval_strategy != IntervalStrategy::kNo, "the early_stopping callback requires an eval_strategy");
}

void EarlyStoppingCallback::on_evaluate(const Args& a, State& s, Control& c, const Json& metrics) {
  std::string key = a.metric_for_best_model.value_or("loss");
  if (key.rfind("eval_", 0) != 0) key = "eval_" + key;
  if (!metrics.contains(key)) return;
  const double value = metrics.at(key).get<double>();
  const bool greater = a.greater_is_better.value_or(false);
  // Runs before the trainer updates best_metric, as in HF.
  const bool improved = !s.best_metric || ((greater ? value > *s.best_metric : value < *s.best_metric) &&
                                           std::abs(value - *s.best_metric) > o_.early_stopping_threshold);
  counter_ = improved ? 0 : counter_ + 1;
  if (counter_ >= o_.early_stopping_patience) c.should_training_stop = true;
}

Callback::Json EarlyStoppingCallback::state() const {
  return {{"args",
           {{"early_stopping_patience", o_.early_stopping_patience},
            {"early_stopping_threshold", o_.early_stopping_threshold}}},
          {"attributes", {{"early_stopping_patience_counter", counter_}}}};
}

void EarlyStoppingCallback::restore(const Json& state, const std::string& where) {
  const Json* counter = nullptr;
  if (state.is_object() && state.contains("attributes") && state["attributes"].is_object() &&
      state["attributes"].contains("early_stopping_patience_counter"))
    counter = &state["attributes"]["early_stopping_patience_counter"];
  HFT_CHECK(counter && counter->is_number_integer(),
            "{}: stateful_callbacks.EarlyStoppingCallback has no integer attributes.early_stopping_patience_counter",
            where);
  counter_ = counter->get<int64_t>();
}

}  // namespace hftrain
