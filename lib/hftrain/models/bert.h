// BERT as transformers' BertForMaskedLM, BertForSequenceClassification and
// BertForTokenClassification: HF's tensor names (bert.embeddings..., bert.encoder.layer.N...,
// cls.predictions... with the decoder tied to the word embeddings), config.json and
// initialisation; bidirectional attention with the padding mask.
#pragma once

#include "hftrain/models/model_family.h"
#include "hftrain/models/model.h"

#include <nlohmann/json.hpp>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <optional>
#include <string>

namespace hftrain {

struct BertConfig {
  int64_t vocab_size = 30522;
  int64_t hidden_size = 768;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t intermediate_size = 3072;
  std::string hidden_act = "gelu";
  double hidden_dropout_prob = 0.1, attention_probs_dropout_prob = 0.1;
  std::optional<double> classifier_dropout;  // null: hidden_dropout_prob
  int64_t max_position_embeddings = 512;
  int64_t type_vocab_size = 2;
  double initializer_range = 0.02;
  double layer_norm_eps = 1e-12;
  int64_t pad_token_id = 0;
  std::string position_embedding_type = "absolute";
  nlohmann::json other_keys = nlohmann::json::object();  // kept as read, written back
};

BertConfig bert_config_from_json(const nlohmann::json& j, const std::string& where, bool strict = false);
nlohmann::json bert_config_to_json(const BertConfig& c, const std::string& architecture);

// BertModel and what every head shares.
class BertBase : public Model {
 public:
  std::string model_type() const override { return "bert"; }
  nlohmann::json hf_config() const override { return bert_config_to_json(config_, architecture_); }
  std::vector<std::string> embedding_parameter_names() const override;
  std::vector<std::shared_ptr<torch::nn::Module>> blocks() const override { return layers_->children(); }
  bool is_no_decay(const std::string& name) const override;
  bool accepts_loss_kwargs() const override { return false; }  // transformers 4.48's BERT heads
  const BertConfig& config() const { return config_; }

 protected:
  BertBase(const BertConfig& config, std::string architecture, bool pooler);
  void init_weights();  // BertPreTrainedModel._init_weights, once the head is registered
  at::Tensor encode(const Batch& batch);  // (B,T,C) last hidden states
  at::Tensor pool(const at::Tensor& hidden);  // tanh(dense(hidden[:, 0])) (B,C)

  BertConfig config_;
  std::string architecture_;
  std::shared_ptr<torch::nn::Module> bert_, embeddings_, pooler_;
  torch::nn::Embedding word_{nullptr}, position_{nullptr}, token_type_{nullptr};
  torch::nn::LayerNorm embeddings_norm_{nullptr};
  torch::nn::ModuleList layers_{nullptr};
  torch::nn::Linear pooler_dense_{nullptr};
};

class BertForMaskedLM : public BertBase {
 public:
  explicit BertForMaskedLM(const BertConfig& config);
  // logits (B,T,V); loss: mean cross-entropy over labels != -100 (no shift).
  ModelOutput forward(const Batch& batch, std::optional<double> num_items_in_batch) override;
  ModelTask task() const override { return ModelTask::kMaskedLM; }
  std::vector<std::string> tied_aliases() const override {
    return {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"};
  }

 private:
  at::Tensor bias_;  // cls.predictions.bias, also the decoder's
  torch::nn::Linear transform_dense_{nullptr};
  torch::nn::LayerNorm transform_norm_{nullptr};
};

// BertForSequenceClassification (pooled [CLS]) and BertForTokenClassification (every token):
// dropout then a linear classifier to num_labels, cross-entropy.
class BertForClassification : public BertBase {
 public:
  BertForClassification(const BertConfig& config, bool per_token);
  ModelOutput forward(const Batch& batch, std::optional<double> num_items_in_batch) override;
  ModelTask task() const override {
    return per_token_ ? ModelTask::kTokenClassification : ModelTask::kSequenceClassification;
  }

 private:
  bool per_token_;
  int64_t num_labels_;
  torch::nn::Linear classifier_{nullptr};
};

// model_type "bert": BertForMaskedLM (the default), BertForSequenceClassification and
// BertForTokenClassification.
ModelFamily bert_family();

}  // namespace hftrain
