// BERT as transformers 4.48.3 models/bert/modeling_bert.py computes it (eager attention):
// embeddings (word + token_type, + position, LayerNorm) -> post-norm encoder layers ->
// the heads' pooler / prediction transform / classifier, with BertConfig's keys and
// BertPreTrainedModel._init_weights.
#include "hftrain/models/bert.h"

#include "hftrain/core/error.h"
#include "hftrain/core/torch_compat.h"
#include "hftrain/kernels/attention.h"
#include "hftrain/models/layers.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <cmath>

namespace hftrain {

using nlohmann::json;

namespace {

void bert_config_check(const BertConfig& c, const std::string& where) {
  auto positive = [&](const char* key, int64_t v) { check_positive(where, key, v); };
  positive("vocab_size", c.vocab_size);
  positive("hidden_size", c.hidden_size);
  positive("num_attention_heads", c.num_attention_heads);
  positive("intermediate_size", c.intermediate_size);
  positive("max_position_embeddings", c.max_position_embeddings);
  positive("type_vocab_size", c.type_vocab_size);
  HFT_CHECK(c.num_hidden_layers >= 0, "{}: key \"num_hidden_layers\" must be >= 0, got {}", where, c.num_hidden_layers);
  HFT_CHECK(c.hidden_size % c.num_attention_heads == 0,
            "{}: key \"hidden_size\" {} must be divisible by num_attention_heads {}", where, c.hidden_size,
            c.num_attention_heads);
  HFT_CHECK(c.hidden_act == "gelu", "{}: key \"hidden_act\" \"{}\" is not supported; BERT uses \"gelu\"", where,
            c.hidden_act);
  HFT_CHECK(c.position_embedding_type == "absolute",
            "{}: key \"position_embedding_type\" \"{}\" is not supported (\"absolute\" is)", where,
            c.position_embedding_type);
  HFT_CHECK(c.pad_token_id >= 0 && c.pad_token_id < c.vocab_size, "{}: key \"pad_token_id\" {} is outside the vocab",
            where, c.pad_token_id);
  for (auto [key, p] : {std::pair<const char*, double>{"hidden_dropout_prob", c.hidden_dropout_prob},
                        {"attention_probs_dropout_prob", c.attention_probs_dropout_prob}})
    HFT_CHECK(p >= 0 && p <= 1, "{}: key \"{}\" must be in [0, 1], got {}", where, key, p);
}

torch::nn::Linear linear(torch::nn::Module& m, const char* name, int64_t in, int64_t out) {
  return m.register_module(name, torch::nn::Linear(in, out));
}

torch::nn::LayerNorm layer_norm(torch::nn::Module& m, const BertConfig& c) {
  return m.register_module("LayerNorm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps)));
}

// attention.self (query/key/value) and attention.output (dense, LayerNorm), then intermediate
// and output: post-norm, x = LN(x + dropout(dense(.))).
class BertLayer : public torch::nn::Module {
 public:
  explicit BertLayer(const BertConfig& c)
      : heads_(c.num_attention_heads), head_dim_(c.hidden_size / c.num_attention_heads),
        hidden_dropout_(c.hidden_dropout_prob), attention_dropout_(c.attention_probs_dropout_prob) {
    auto attention = register_module("attention", std::make_shared<torch::nn::Module>());
    auto self = attention->register_module("self", std::make_shared<torch::nn::Module>());
    query_ = linear(*self, "query", c.hidden_size, c.hidden_size);
    key_ = linear(*self, "key", c.hidden_size, c.hidden_size);
    value_ = linear(*self, "value", c.hidden_size, c.hidden_size);
    auto attn_out = attention->register_module("output", std::make_shared<torch::nn::Module>());
    attn_dense_ = linear(*attn_out, "dense", c.hidden_size, c.hidden_size);
    attn_norm_ = layer_norm(*attn_out, c);
    auto intermediate = register_module("intermediate", std::make_shared<torch::nn::Module>());
    inter_dense_ = linear(*intermediate, "dense", c.hidden_size, c.intermediate_size);
    auto output = register_module("output", std::make_shared<torch::nn::Module>());
    out_dense_ = linear(*output, "dense", c.intermediate_size, c.hidden_size);
    out_norm_ = layer_norm(*output, c);
  }

  // x (B,T,C), bias (B,1,1,T) -> (B,T,C)
  at::Tensor forward(const at::Tensor& x, const at::Tensor& bias) {
    const int64_t B = x.size(0), T = x.size(1), C = x.size(2);
    auto heads = [&](const at::Tensor& t) { return t.view({B, T, heads_, head_dim_}).transpose(1, 2); };
    at::Tensor ctx = attention(heads(query_->forward(x)), heads(key_->forward(x)), heads(value_->forward(x)), bias,
                               is_training() ? attention_dropout_ : 0.0,
                               1.0 / std::sqrt(static_cast<double>(head_dim_)), /*causal=*/false);  // (B,H,T,D)
    ctx = ctx.transpose(1, 2).reshape({B, T, C});
    at::Tensor h = attn_norm_->forward(maybe_dropout(attn_dense_->forward(ctx), hidden_dropout_, is_training()).add(x));
    at::Tensor inter = at::gelu(inter_dense_->forward(h));
    return out_norm_->forward(maybe_dropout(out_dense_->forward(inter), hidden_dropout_, is_training()).add(h));
  }

 private:
  int64_t heads_, head_dim_;
  double hidden_dropout_, attention_dropout_;
  torch::nn::Linear query_{nullptr}, key_{nullptr}, value_{nullptr}, attn_dense_{nullptr}, inter_dense_{nullptr},
      out_dense_{nullptr};
  torch::nn::LayerNorm attn_norm_{nullptr}, out_norm_{nullptr};
};

}  // namespace

BertConfig bert_config_from_json(const json& j, const std::string& where, bool strict) {
  HFT_CHECK(j.is_object(), "{}: a BERT config must be a JSON object, got {}", where, j.dump());
  HfConfigReader r(j, where);
  std::string model_type = "bert";
  r.get("model_type", model_type);
  HFT_CHECK(model_type == "bert", "{}: key \"model_type\" must be \"bert\", got \"{}\"", where, model_type);
  BertConfig c;
  r.get("vocab_size", c.vocab_size);
  r.get("hidden_size", c.hidden_size);
  r.get("num_hidden_layers", c.num_hidden_layers);
  r.get("num_attention_heads", c.num_attention_heads);
  r.get("intermediate_size", c.intermediate_size);
  r.get("hidden_act", c.hidden_act);
  r.get("hidden_dropout_prob", c.hidden_dropout_prob);
  r.get("attention_probs_dropout_prob", c.attention_probs_dropout_prob);
  if (j.contains("classifier_dropout") && !j["classifier_dropout"].is_null()) {
    double d = 0;
    r.get("classifier_dropout", d);
    c.classifier_dropout = d;
  } else {
    std::optional<std::string> unused;
    r.get("classifier_dropout", unused);  // null: marks the key read
  }
  r.get("max_position_embeddings", c.max_position_embeddings);
  r.get("type_vocab_size", c.type_vocab_size);
  r.get("initializer_range", c.initializer_range);
  r.get("layer_norm_eps", c.layer_norm_eps);
  r.get("pad_token_id", c.pad_token_id);
  r.get("position_embedding_type", c.position_embedding_type);
  c.other_keys = r.rest();
  if (strict) {
    std::vector<std::string> known;
    const json defaults = bert_config_to_json(BertConfig{}, "BertForMaskedLM");
    for (const auto& [k, _] : defaults.items()) known.push_back(k);
    r.check_known(c.other_keys, known, "BERT");
  }
  bert_config_check(c, where);
  return c;
}

json bert_config_to_json(const BertConfig& c, const std::string& architecture) {
  json j = {{"use_cache", true}};
  for (const auto& [k, v] : c.other_keys.items()) j[k] = v;
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["intermediate_size"] = c.intermediate_size;
  j["hidden_act"] = c.hidden_act;
  j["hidden_dropout_prob"] = c.hidden_dropout_prob;
  j["attention_probs_dropout_prob"] = c.attention_probs_dropout_prob;
  j["classifier_dropout"] = c.classifier_dropout ? json(*c.classifier_dropout) : json(nullptr);
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["type_vocab_size"] = c.type_vocab_size;
  j["initializer_range"] = c.initializer_range;
  j["layer_norm_eps"] = c.layer_norm_eps;
  j["pad_token_id"] = c.pad_token_id;
  j["position_embedding_type"] = c.position_embedding_type;
  j["architectures"] = json::array({architecture});
  j["model_type"] = "bert";
  j["torch_dtype"] = "float32";
  j["transformers_version"] = "4.48.3";
  return j;
}

BertBase::BertBase(const BertConfig& config, std::string architecture, bool pooler)
    : config_(config), architecture_(std::move(architecture)) {
  bert_config_check(config_, "BERT config");
  const BertConfig& c = config_;
  bert_ = register_module("bert", std::make_shared<torch::nn::Module>("BertModel"));
  embeddings_ = bert_->register_module("embeddings", std::make_shared<torch::nn::Module>());
  // nn.Embedding(padding_idx=pad_token_id): the pad row gets no gradient.
  word_ = embeddings_->register_module(
      "word_embeddings", torch::nn::Embedding(torch::nn::EmbeddingOptions(c.vocab_size, c.hidden_size).padding_idx(c.pad_token_id)));
  position_ = embeddings_->register_module("position_embeddings", torch::nn::Embedding(c.max_position_embeddings, c.hidden_size));
  token_type_ = embeddings_->register_module("token_type_embeddings", torch::nn::Embedding(c.type_vocab_size, c.hidden_size));
  embeddings_norm_ = layer_norm(*embeddings_, c);
  auto encoder = bert_->register_module("encoder", std::make_shared<torch::nn::Module>());
  layers_ = encoder->register_module("layer", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers_->push_back(std::make_shared<BertLayer>(c));
  if (pooler) {
    pooler_ = bert_->register_module("pooler", std::make_shared<torch::nn::Module>());
    pooler_dense_ = linear(*pooler_, "dense", c.hidden_size, c.hidden_size);
  }
}

void BertBase::init_weights() {
  // Linear and Embedding weights N(0, initializer_range), biases 0 (the prediction head's
  // too), LayerNorm weights 1, the padding row of the word embeddings 0.
  torch::NoGradGuard no_grad;
  for (auto& item : named_parameters()) {
    const std::string& name = item.key();
    at::Tensor& p = item.value();
    if (ends_with(name, ".bias") || name == "cls.predictions.bias") p.zero_();
    else if (ends_with(name, "LayerNorm.weight")) p.fill_(1.0);
    else p.normal_(0.0, config_.initializer_range);
  }
  word_->weight[config_.pad_token_id].zero_();
}

at::Tensor BertBase::encode(const Batch& batch) {
  const at::Tensor input_ids = batch_get(batch, "input_ids");  // (B,T)
  HFT_CHECK(input_ids.defined() && input_ids.dim() == 2, "BERT: the batch needs input_ids of shape (B,T)");
  const int64_t B = input_ids.size(0), T = input_ids.size(1);
  HFT_CHECK(T <= config_.max_position_embeddings, "BERT: sequence length {} is longer than max_position_embeddings {}",
            T, config_.max_position_embeddings);
  at::Tensor token_types = batch_get(batch, "token_type_ids");
  if (!token_types.defined()) token_types = at::zeros_like(input_ids);
  at::Tensor positions = at::arange(T, input_ids.options());
  // In HF's order: (word + token_type) + position.
  at::Tensor x = input_embeddings(word_->forward(input_ids)).add(token_type_->forward(token_types)).add(position_->forward(positions));
  x = maybe_dropout(embeddings_norm_->forward(x), config_.hidden_dropout_prob, is_training());  // (B,T,C)
  // The extended attention mask: finfo.min at padded keys, for every query (bidirectional).
  at::Tensor bias;
  const at::Tensor mask = batch_get(batch, "attention_mask");
  if (mask.defined())
    bias = at::zeros({B, 1, 1, T}, x.options()).masked_fill(mask.to(x.device()).eq(0).view({B, 1, 1, T}),
                                                             lowest(x.scalar_type()));
  for (size_t i = 0; i < layers_->size(); ++i) {
    auto layer = layers_->ptr<BertLayer>(i);
    x = run_block(i, [layer, bias](const at::Tensor& t) { return layer->forward(t, bias); }, x);
  }
  return x;
}

at::Tensor BertBase::pool(const at::Tensor& hidden) { return at::tanh(pooler_dense_->forward(hidden.select(1, 0))); }

std::vector<std::string> BertBase::embedding_parameter_names() const {
  return {"bert.embeddings.word_embeddings.weight", "bert.embeddings.position_embeddings.weight",
          "bert.embeddings.token_type_embeddings.weight"};
}

// Trainer.get_decay_parameter_names: biases and LayerNorm weights.
bool BertBase::is_no_decay(const std::string& name) const {
  return ends_with(name, "bias") || ends_with(name, "LayerNorm.weight");
}

BertForMaskedLM::BertForMaskedLM(const BertConfig& config) : BertBase(config, "BertForMaskedLM", /*pooler=*/false) {
  auto cls = register_module("cls", std::make_shared<torch::nn::Module>());
  auto predictions = cls->register_module("predictions", std::make_shared<torch::nn::Module>());
  bias_ = predictions->register_parameter("bias", at::zeros({config_.vocab_size}));
  auto transform = predictions->register_module("transform", std::make_shared<torch::nn::Module>());
  transform_dense_ = linear(*transform, "dense", config_.hidden_size, config_.hidden_size);
  transform_norm_ = layer_norm(*transform, config_);
  init_weights();
}

ModelOutput BertForMaskedLM::forward(const Batch& batch, std::optional<double>) {
  at::Tensor h = transform_norm_->forward(at::gelu(transform_dense_->forward(encode(batch))));
  ModelOutput out;
  out.logits = at::linear(h, word_->weight, bias_);  // (B,T,V): the decoder is the word embeddings
  const at::Tensor labels = batch_get(batch, "labels");
  if (labels.defined())
    out.loss = at::cross_entropy_loss(out.logits.reshape({-1, config_.vocab_size}).to(at::kFloat),
                                      labels.reshape({-1}).to(out.logits.device()), {}, at::Reduction::Mean, -100);
  return out;
}

BertForClassification::BertForClassification(const BertConfig& config, bool per_token)
    : BertBase(config, per_token ? "BertForTokenClassification" : "BertForSequenceClassification", !per_token),
      per_token_(per_token), num_labels_(hf_num_labels(config.other_keys)) {
  HFT_CHECK(num_labels_ >= 2, "BERT config: num_labels {} is not supported; classification needs >= 2 "
            "(regression, num_labels 1, is not available)", num_labels_);
  classifier_ = linear(*this, "classifier", config_.hidden_size, num_labels_);
  init_weights();
}

ModelOutput BertForClassification::forward(const Batch& batch, std::optional<double>) {
  at::Tensor h = encode(batch);
  if (!per_token_) h = pool(h);  // (B,C)
  h = maybe_dropout(h, config_.classifier_dropout.value_or(config_.hidden_dropout_prob), is_training());
  ModelOutput out;
  out.logits = classifier_->forward(h);  // (B,num_labels) or (B,T,num_labels)
  const at::Tensor labels = batch_get(batch, "labels");
  if (labels.defined())
    out.loss = at::cross_entropy_loss(out.logits.reshape({-1, num_labels_}).to(at::kFloat),
                                      labels.reshape({-1}).to(out.logits.device()), {}, at::Reduction::Mean, -100);
  return out;
}

ModelFamily bert_family() {
  ModelFamily f;
  f.model_type = "bert";
  f.class_prefix = "Bert";
  f.architectures = {{ModelTaskName::kMaskedLM, "BertForMaskedLM"},
                     {ModelTaskName::kSequenceClassification, "BertForSequenceClassification"},
                     {ModelTaskName::kTokenClassification, "BertForTokenClassification"}};
  f.create = [](const std::string& arch, const nlohmann::json& c, const std::string& where,
                bool strict) -> std::unique_ptr<Model> {
    const BertConfig config = bert_config_from_json(c, where, strict);
    if (arch == "BertForMaskedLM") return std::make_unique<BertForMaskedLM>(config);
    return std::make_unique<BertForClassification>(config, arch == "BertForTokenClassification");
  };
  return f;
}

}  // namespace hftrain
