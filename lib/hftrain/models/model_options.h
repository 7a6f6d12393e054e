// The model section of the config (`model:`), typed: the family, the head, and where its
// weights and config.json keys come from.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace hftrain {

enum class ModelTaskName { kDefault, kCausalLM, kSequenceClassification, kTokenClassification, kMaskedLM };

struct ModelOptions {
  std::string type = "gpt2";
  // The head: causal_lm, masked_lm, sequence_classification or token_classification
  // (transformers' AutoModelFor... classes);
  // by default a pretrained directory's architectures, else causal_lm.
  ModelTaskName task = ModelTaskName::kDefault;
  std::string pretrained;  // an HF model directory; empty: build from `config`
  nlohmann::json config = nlohmann::json::object();  // HF config.json keys for `type`
};

}  // namespace hftrain
