// Metrics on a hand-worked example (scikit-learn's definitions, zero_division=0):
//   row 0: labels [0 0 1]     preds [0 1 1]
//   row 1: labels [1 2 -100]  preds [1 0 2]   (the -100 position does not count)
//   row 2: labels [2 2 -100]  preds [2 2 0]
// 7 counted positions, 5 right. Per class (tp / predicted / true): 0: 1/2/2, 1: 2/3/2, 2: 2/2/3,
// so precision 1/2, 2/3, 1; recall 1/2, 1, 2/3; F1 1/2, 4/5, 4/5. Row 2 alone is exact.
#include "hftrain/train/metrics.h"

#include <ATen/Functions.h>
#include <catch2/catch.hpp>

#include <cmath>

using hftrain::Metric;

TEST_CASE("accuracy, macro and micro precision/recall/F1 and exact match follow scikit-learn's definitions",
          "[unit][train]") {
  hftrain::MetricAccumulator acc({Metric::kPerplexity, Metric::kAccuracy, Metric::kPrecisionMacro, Metric::kRecallMacro,
                                  Metric::kF1Macro, Metric::kPrecisionMicro, Metric::kRecallMicro, Metric::kF1Micro,
                                  Metric::kExactMatch});
  REQUIRE(acc.needs_predictions());
  // Two batches, to check that counts accumulate.
  acc.add(at::tensor({0, 1, 1, 1, 0, 2}, at::kLong).view({2, 3}), at::tensor({0, 0, 1, 1, 2, -100}, at::kLong).view({2, 3}));
  acc.add(at::tensor({2, 2, 0}, at::kLong).view({1, 3}), at::tensor({2, 2, -100}, at::kLong).view({1, 3}));
  nlohmann::json m = acc.compute(std::log(4.0), "eval_");
  CHECK(m["eval_perplexity"].get<double>() == Approx(4.0));
  CHECK(m["eval_accuracy"].get<double>() == Approx(5.0 / 7));
  CHECK(m["eval_precision_macro"].get<double>() == Approx((0.5 + 2.0 / 3 + 1) / 3));
  CHECK(m["eval_recall_macro"].get<double>() == Approx((0.5 + 1 + 2.0 / 3) / 3));
  CHECK(m["eval_f1_macro"].get<double>() == Approx((0.5 + 0.8 + 0.8) / 3));
  CHECK(m["eval_precision_micro"].get<double>() == Approx(5.0 / 7));
  CHECK(m["eval_recall_micro"].get<double>() == Approx(5.0 / 7));
  CHECK(m["eval_f1_micro"].get<double>() == Approx(5.0 / 7));
  CHECK(m["eval_exact_match"].get<double>() == Approx(1.0 / 3));
}

TEST_CASE("a class that is never predicted counts as precision 0 in the macro average", "[unit][train]") {
  hftrain::MetricAccumulator acc({Metric::kPrecisionMacro, Metric::kRecallMacro});
  acc.add(at::tensor({0, 0}, at::kLong).view({1, 2}), at::tensor({0, 1}, at::kLong).view({1, 2}));
  nlohmann::json m = acc.compute(0, "");
  CHECK(m["precision_macro"].get<double>() == Approx((0.5 + 0) / 2));  // class 0: 1 of 2 right; class 1: never predicted
  CHECK(m["recall_macro"].get<double>() == Approx((1 + 0) / 2.0));
  CHECK(!hftrain::MetricAccumulator({Metric::kPerplexity}).needs_predictions());
}
