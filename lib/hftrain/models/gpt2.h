// GPT-2 as transformers' GPT2LMHeadModel: same tensor names and shapes (Conv1D weights
// stored [in, out]), same config.json, same initialisation, lm_head tied to wte.
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

struct Gpt2Config {
  int64_t vocab_size = 50257;
  int64_t n_positions = 1024;
  int64_t n_embd = 768;
  int64_t n_layer = 12;
  int64_t n_head = 12;
  std::optional<int64_t> n_inner;  // null: 4 * n_embd
  std::string activation_function = "gelu_new";
  double resid_pdrop = 0.1, embd_pdrop = 0.1, attn_pdrop = 0.1;
  double layer_norm_epsilon = 1e-5;
  double initializer_range = 0.02;
  bool scale_attn_weights = true;
  bool scale_attn_by_inverse_layer_idx = false;
  bool reorder_and_upcast_attn = false;
  int64_t bos_token_id = 50256, eos_token_id = 50256;
  std::optional<int64_t> pad_token_id;
  // Other keys of the HF config.json that mean nothing to hftrain (summary_*, use_cache,
  // id2label, task_specific_params, ...): kept as read and written back by
  // gpt2_config_to_json, as HF's GPT2Config keeps unknown kwargs.
  nlohmann::json other_keys = nlohmann::json::object();
};

// From an HF config.json (unknown HF keys are kept for export; keys with meaning to
// hftrain are type-checked and range-checked). `where` names the source for error messages.
// strict (a config the user wrote, not one HF saved): a key that GPT2Config does not know
// is an error naming the nearest known key, so that a typo is never ignored.
Gpt2Config gpt2_config_from_json(const nlohmann::json& j, const std::string& where, bool strict = false);
// architecture: the class config.json's "architectures" names.
nlohmann::json gpt2_config_to_json(const Gpt2Config& c, const std::string& architecture = "GPT2LMHeadModel");

// GPT2Model, the body the heads share: transformer.{wte, wpe, h.N, ln_f}.
class Gpt2Base : public Model {
 public:
  std::string model_type() const override { return "gpt2"; }
  std::vector<std::string> embedding_parameter_names() const override;
  std::vector<std::shared_ptr<torch::nn::Module>> blocks() const override { return h_->children(); }
  bool is_no_decay(const std::string& name) const override;
  const Gpt2Config& config() const { return config_; }

 protected:
  explicit Gpt2Base(const Gpt2Config& config);
  // GPT2PreTrainedModel._init_weights over every parameter, heads included: call once the
  // head is registered. Draws from the global CPU generator.
  void init_weights();
  at::Tensor hidden_states(const Batch& batch);  // (B,T,C) after ln_f

  Gpt2Config config_;
  // Submodules are registered so that named_parameters() yields HF's names:
  // transformer.wte.weight, transformer.h.0.attn.c_attn.weight, ..., transformer.ln_f.bias.
  std::shared_ptr<torch::nn::Module> transformer_;
  torch::nn::Embedding wte_{nullptr}, wpe_{nullptr};
  torch::nn::ModuleList h_{nullptr};
  torch::nn::LayerNorm ln_f_{nullptr};
};

// GPT2LMHeadModel: logits = hidden @ wte^T (lm_head tied to wte), ForCausalLMLoss.
class Gpt2LMHeadModel : public Gpt2Base {
 public:
  explicit Gpt2LMHeadModel(const Gpt2Config& config);
  ModelOutput forward(const Batch& batch, std::optional<double> num_items_in_batch) override;
  bool supports_kv_cache() const override { return true; }
  at::Tensor forward_cached(const at::Tensor& input_ids, KvCache& cache) override;
  nlohmann::json hf_config() const override;
  std::vector<std::string> tied_aliases() const override { return {"lm_head.weight"}; }
};

// GPT2ForSequenceClassification: score (n_embd -> num_labels, no bias) on every position,
// pooled at the last token before the first pad_token_id of each row (the last token when
// a row has none), cross-entropy over num_labels. num_labels comes from id2label, else
// num_labels, else 2, as PretrainedConfig.
class Gpt2ForSequenceClassification : public Gpt2Base {
 public:
  explicit Gpt2ForSequenceClassification(const Gpt2Config& config);
  ModelOutput forward(const Batch& batch, std::optional<double> num_items_in_batch) override;
  nlohmann::json hf_config() const override;
  ModelTask task() const override { return ModelTask::kSequenceClassification; }
  bool accepts_loss_kwargs() const override { return false; }
  int64_t num_labels() const { return num_labels_; }

 private:
  int64_t num_labels_;
  torch::nn::Linear score_{nullptr};
};

// model_type "gpt2": GPT2LMHeadModel (the default) and GPT2ForSequenceClassification.
ModelFamily gpt2_family();

}  // namespace hftrain
