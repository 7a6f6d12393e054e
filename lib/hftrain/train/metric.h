// The evaluation metrics a config can ask for by name (train/metrics.h computes them).
#pragma once

namespace hftrain {

// `metrics:` names (train/metrics.h); eval_loss is always computed.
enum class Metric {
  kPerplexity, kAccuracy, kPrecisionMacro, kRecallMacro, kF1Macro, kPrecisionMicro, kRecallMicro, kF1Micro,
  kExactMatch
};

}  // namespace hftrain
