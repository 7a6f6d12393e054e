// Llama as transformers' LlamaForCausalLM: RMSNorm, rotary position embeddings (rope_theta,
// rope_scaling linear and llama3), SwiGLU MLP, grouped-query attention (num_key_value_heads),
// optional tied embeddings; HF's tensor names, config.json and initialisation. The same
// decoder with q/k/v biases is Qwen2ForCausalLM (model_type qwen2, a sliding window on the
// layers from max_window_layers when use_sliding_window), and with a sliding window on every
// layer MistralForCausalLM (model_type mistral).
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

// rope_scaling, as transformers' rope_utils reads it ("rope_type", or the older "type").
struct RopeScaling {
  std::string rope_type = "default";  // default, linear, llama3
  double factor = 1.0;
  double low_freq_factor = 1.0, high_freq_factor = 4.0;  // llama3
  int64_t original_max_position_embeddings = 8192;       // llama3
  nlohmann::json raw;                                    // as given, written back
};

struct LlamaConfig {
  std::string model_type = "llama";  // llama, qwen2, mistral, phi3
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
  bool qkv_bias = false;  // qwen2: q/k/v projections with biases, o_proj without
  double attention_dropout = 0.0;
  RopeScaling rope_scaling;
  // A query attends to at most this many newest keys, itself included: mistral on every layer
  // when set; qwen2 on the layers from max_window_layers on, when use_sliding_window.
  std::optional<int64_t> sliding_window;
  bool use_sliding_window = false;  // qwen2
  int64_t max_window_layers = 28;   // qwen2
  // phi3: dropout after attention and after the MLP; embd_pdrop is kept but, as in
  // transformers 4.48, not applied; original_max_position_embeddings is kept.
  double resid_pdrop = 0.0, embd_pdrop = 0.0;
  int64_t original_max_position_embeddings = 4096;
  std::optional<int64_t> pad_token_id;
  std::optional<int64_t> bos_token_id = 1, eos_token_id = 2;  // qwen2: none by default
  nlohmann::json other_keys = nlohmann::json::object();  // kept as read, written back

  int64_t kv_heads() const { return num_key_value_heads.value_or(num_attention_heads); }
  int64_t dim_per_head() const { return head_dim.value_or(hidden_size / num_attention_heads); }
  std::optional<int64_t> window_of_layer(int64_t layer) const;
  bool fused_projections() const { return model_type == "phi3"; }  // qkv_proj, gate_up_proj
  std::string architecture() const;  // LlamaForCausalLM, Qwen2ForCausalLM, MistralForCausalLM
};

// A family's defaults (transformers' LlamaConfig, Qwen2Config, MistralConfig).
LlamaConfig llama_config_defaults(const std::string& model_type);

// strict: a key LlamaConfig does not know is an error (see gpt2_config_from_json).
LlamaConfig llama_config_from_json(const nlohmann::json& j, const std::string& where, bool strict = false);
nlohmann::json llama_config_to_json(const LlamaConfig& c);

class LlamaForCausalLM : public Model {
 public:
  explicit LlamaForCausalLM(const LlamaConfig& config);  // HF's initialisation, global CPU generator

  ModelOutput forward(const Batch& batch, std::optional<double> num_items_in_batch) override;
  bool supports_kv_cache() const override { return true; }
  at::Tensor forward_cached(const at::Tensor& input_ids, KvCache& cache) override;
  std::string model_type() const override { return config_.model_type; }
  nlohmann::json hf_config() const override { return llama_config_to_json(config_); }
  std::vector<std::string> embedding_parameter_names() const override { return {"model.embed_tokens.weight"}; }
  std::vector<std::shared_ptr<torch::nn::Module>> blocks() const override { return layers_->children(); }
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

// model_type "llama": LlamaForCausalLM; "qwen2": Qwen2ForCausalLM; "mistral": MistralForCausalLM.
ModelFamily llama_family();
ModelFamily qwen2_family();
ModelFamily mistral_family();
ModelFamily phi3_family();

}  // namespace hftrain
