// Llama as transformers' LlamaForCausalLM: RMSNorm, rotary position embeddings (rope_theta),
// SwiGLU MLP, grouped-query attention (num_key_value_heads), optional tied embeddings; HF's
// tensor names, config.json and initialisation.
#pragma once

#include "hftrain/models/model_family.h"
#include "hftrain/models/model.h"

#include <nlohmann/json.hpp>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

#include <optional>
#include <string>

namespace hftrain {

struct LlamaConfig {
  int64_t vocab_size = 32000;
  int64_t hidden_size = 4096;
  int64_t intermediate_size = 11008;
  int64_t num_hidden_layers = 32;
  int64_t num_attention_heads = 32;
  std::optional<int64_t> num_key_value_heads;  // null: num_attention_heads (no grouping)
  std::optional<int64_t> head_dim;             // null: hidden_size / num_attention_heads
  std::string hidden_act = "silu";
  int64_t max_position_embeddings = 2048;
  double initializer_range = 0.02;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  bool tie_word_embeddings = false;
  bool attention_bias = false, mlp_bias = false;
  double attention_dropout = 0.0;
  std::optional<int64_t> pad_token_id;
  int64_t bos_token_id = 1, eos_token_id = 2;
  nlohmann::json other_keys = nlohmann::json::object();  // kept as read, written back

  int64_t kv_heads() const { return num_key_value_heads.value_or(num_attention_heads); }
  int64_t dim_per_head() const { return head_dim.value_or(hidden_size / num_attention_heads); }
};

// strict: a key LlamaConfig does not know is an error (see gpt2_config_from_json).
LlamaConfig llama_config_from_json(const nlohmann::json& j, const std::string& where, bool strict = false);
nlohmann::json llama_config_to_json(const LlamaConfig& c);

class LlamaForCausalLM : public Model {
 public:
  explicit LlamaForCausalLM(const LlamaConfig& config);  // HF's initialisation, global CPU generator

  ModelOutput forward(const Batch& batch, std::optional<double> num_items_in_batch) override;
  std::string model_type() const override { return "llama"; }
  nlohmann::json hf_config() const override { return llama_config_to_json(config_); }
  std::vector<std::string> embedding_parameter_names() const override { return {"model.embed_tokens.weight"}; }
  bool is_no_decay(const std::string& name) const override;
  std::vector<std::string> tied_aliases() const override;
  const LlamaConfig& config() const { return config_; }

 private:
  LlamaConfig config_;
  std::shared_ptr<torch::nn::Module> model_;  // "model": embed_tokens, layers, norm
  torch::nn::Embedding embed_tokens_{nullptr};
  torch::nn::ModuleList layers_{nullptr};
  std::shared_ptr<torch::nn::Module> norm_;  // an RMSNorm
  torch::nn::Linear lm_head_{nullptr};  // absent when tied to embed_tokens
  at::Tensor inv_freq_;                 // (head_dim / 2) float32, the rotary frequencies
};

// model_type "llama": LlamaForCausalLM.
ModelFamily llama_family();

}  // namespace hftrain
