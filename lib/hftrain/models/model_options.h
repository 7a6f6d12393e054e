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
  // The final model directory's weights, as save_pretrained writes them: the dtype of
  // model.safetensors (config.json's torch_dtype: float32, bfloat16 or float16; training
  // keeps float32 master weights, and checkpoints stay float32 to resume exactly) and the
  // largest shard in bytes (HF's max_shard_size, "5GB"; a larger model is split into
  // model-0000i-of-0000n.safetensors with model.safetensors.index.json).
  std::string torch_dtype = "float32";
  int64_t max_shard_size = 5000000000;
};

}  // namespace hftrain
