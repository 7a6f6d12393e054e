// What a model head predicts, and so how its labels line up with its logits; the data
// layer builds labels to match.
#pragma once

namespace hftrain {

enum class ModelTask {
  kCausalLM,                // labels (B,T); logits at t predict the label at t+1
  kSequenceClassification,  // labels (B)
  kTokenClassification,     // labels (B,T), -100 ignored
  kMaskedLM,                // labels (B,T): the original ids at masked positions, -100 elsewhere
};

}  // namespace hftrain
