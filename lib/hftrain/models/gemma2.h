// Gemma 2 as transformers' Gemma2ForCausalLM: (1 + weight) RMSNorm computed in float32 before
// and after attention and the MLP, GeGLU with tanh GELU, embeddings scaled by sqrt(hidden),
// attention scaled by query_pre_attn_scalar^-0.5 with soft-capped scores, a sliding window on
// the even layers, soft-capped final logits, tied embeddings; HF's names, config.json and
// initialisation.
#pragma once

#include "hftrain/models/model.h"
#include "hftrain/models/model_family.h"

#include <nlohmann/json.hpp>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

#include <optional>
#include <string>

namespace hftrain {

struct Gemma2Config {  // transformers 4.48's Gemma2Config defaults
  int64_t vocab_size = 256000;
  int64_t hidden_size = 2304;
  int64_t intermediate_size = 9216;
  int64_t num_hidden_layers = 26;
  int64_t num_attention_heads = 8;
  int64_t num_key_value_heads = 4;
  int64_t head_dim = 256;
  std::string hidden_activation = "gelu_pytorch_tanh";
  int64_t max_position_embeddings = 8192;
  double initializer_range = 0.02;
  double rms_norm_eps = 1e-6;
  std::optional<int64_t> pad_token_id = 0;
  std::optional<int64_t> eos_token_id = 1, bos_token_id = 2;
  bool tie_word_embeddings = true;
  double rope_theta = 10000.0;
  bool attention_bias = false;
  double attention_dropout = 0.0;
  double query_pre_attn_scalar = 256;
  std::optional<int64_t> sliding_window = 4096;  // on layers 0, 2, 4, ...
  std::optional<double> final_logit_softcapping = 30.0, attn_logit_softcapping = 50.0;
  nlohmann::json other_keys = nlohmann::json::object();  // kept as read, written back
};

// strict: a key Gemma2Config does not know is an error (see gpt2_config_from_json).
Gemma2Config gemma2_config_from_json(const nlohmann::json& j, const std::string& where, bool strict = false);
nlohmann::json gemma2_config_to_json(const Gemma2Config& c);

class Gemma2ForCausalLM : public Model {
 public:
  explicit Gemma2ForCausalLM(const Gemma2Config& config);  // HF's initialisation

  ModelOutput forward(const Batch& batch, std::optional<double> num_items_in_batch) override;
  std::string model_type() const override { return "gemma2"; }
  nlohmann::json hf_config() const override { return gemma2_config_to_json(config_); }
  std::vector<std::string> embedding_parameter_names() const override { return {"model.embed_tokens.weight"}; }
  std::vector<std::shared_ptr<torch::nn::Module>> blocks() const override { return layers_->children(); }
  bool is_no_decay(const std::string& name) const override;
  std::vector<std::string> tied_aliases() const override;

 private:
  Gemma2Config config_;
  std::shared_ptr<torch::nn::Module> model_;
  torch::nn::Embedding embed_tokens_{nullptr};
  torch::nn::ModuleList layers_{nullptr};
  std::shared_ptr<torch::nn::Module> norm_;
  torch::nn::Linear lm_head_{nullptr};  // absent when tied
  at::Tensor inv_freq_;
};

// model_type "gemma2": Gemma2ForCausalLM.
ModelFamily gemma2_family();

}  // namespace hftrain
