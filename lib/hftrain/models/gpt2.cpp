// GPT-2 as transformers 4.48.3 models/gpt2/modeling_gpt2.py computes it (eager attention):
// GPT2Model (wte + wpe -> drop -> h[i] -> ln_f) and GPT2LMHeadModel (logits = h @ wte^T,
// ForCausalLMLoss), with GPT2Config's keys and GPT2PreTrainedModel._init_weights.
#include "hftrain/models/gpt2.h"

#include "hftrain/core/error.h"
#include "hftrain/core/strings.h"
#include "hftrain/core/torch_compat.h"
#include "hftrain/kernels/attention.h"
#include "hftrain/kernels/linear.h"
#include "hftrain/kernels/linear_cross_entropy.h"
#include "hftrain/models/gelu_new.h"
#include "hftrain/models/layers.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ATen.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>
#include <utility>
#include <vector>

namespace hftrain {

namespace {

using nlohmann::json;

// ---- config -----------------------------------------------------------------------------

enum class Activation { kGeluNew, kGelu, kRelu, kGeluPytorchTanh };

// transformers' ACT2FN names that GPT-2 configs use.
const std::vector<std::pair<std::string, Activation>> kActivations = {
    {"gelu_new", Activation::kGeluNew},
    {"gelu", Activation::kGelu},
    {"relu", Activation::kRelu},
    {"gelu_pytorch_tanh", Activation::kGeluPytorchTanh},
};

Activation activation_from_name(const std::string& name, const std::string& where) {
  std::vector<std::string> names;
  for (const auto& [n, a] : kActivations) {
    if (n == name) return a;
    names.push_back(n);
  }
  fail("{}: {}", where, unknown_name_message("activation_function", name, names));
}

// GPT2Config.attribute_map: the generic name is stored under GPT-2's own. When both are
// given the generic one wins, as in HF (it is set after GPT2Config.__init__ assigns its own).
const std::vector<std::pair<std::string, std::string>> kAliases = {
    {"hidden_size", "n_embd"},
    {"max_position_embeddings", "n_positions"},
    {"num_attention_heads", "n_head"},
    {"num_hidden_layers", "n_layer"},
};

// Values the model cannot be built with; HF fails later or not at all for most of them.
void gpt2_config_check(const Gpt2Config& c, const std::string& where) {
  auto positive = [&](const char* key, int64_t v) { check_positive(where, key, v); };
  positive("vocab_size", c.vocab_size);
  positive("n_positions", c.n_positions);
  positive("n_embd", c.n_embd);
  positive("n_head", c.n_head);
  HFT_CHECK(c.n_layer >= 0, "{}: key \"n_layer\" must be >= 0, got {}", where, c.n_layer);
  if (c.n_inner) positive("n_inner", *c.n_inner);
  HFT_CHECK(c.n_embd % c.n_head == 0, "{}: key \"n_embd\" must be divisible by n_head ({}), got {}",
            where, c.n_head, c.n_embd);
  for (auto [key, p] : {std::pair<const char*, double>{"resid_pdrop", c.resid_pdrop},
                        {"embd_pdrop", c.embd_pdrop},
                        {"attn_pdrop", c.attn_pdrop}}) {
    HFT_CHECK(p >= 0 && p <= 1, "{}: key \"{}\" must be in [0, 1], got {}", where, key, p);
  }
  HFT_CHECK(c.layer_norm_epsilon > 0, "{}: key \"layer_norm_epsilon\" must be > 0, got {}", where,
            c.layer_norm_epsilon);
  HFT_CHECK(c.initializer_range >= 0, "{}: key \"initializer_range\" must be >= 0, got {}", where,
            c.initializer_range);
  activation_from_name(c.activation_function, where);
}

// ---- modules ------------------------------------------------------------------------------

at::Tensor activate(const at::Tensor& x, Activation a) {
  switch (a) {
    case Activation::kGeluNew:
      return gelu_new(x);
    case Activation::kGelu:
      return at::gelu(x);
    case Activation::kGeluPytorchTanh:
      return gelu_pytorch_tanh(x);
    case Activation::kRelu:
      return at::relu(x);
  }
  return x;
}

// transformers' Conv1D: a linear layer whose weight is stored [in, out]; y = x @ W + b.
// A LoRA adapter attaches with fan_in_fan_out.
class Conv1D : public torch::nn::Module, public LoraHost {
 public:
  Conv1D(int64_t nx, int64_t nf) {
    weight = register_parameter("weight", at::empty({nx, nf}));
    bias = register_parameter("bias", at::zeros({nf}));
  }
  // x (..., nx) -> (..., nf)
  at::Tensor forward(const at::Tensor& x) {
    return add_lora(x, linear_layer(x, weight, bias, /*weight_in_out=*/true), is_training());
  }
  std::pair<int64_t, int64_t> lora_shape() const override { return {weight.size(1), weight.size(0)}; }
  at::Tensor& lora_base_weight() override { return weight; }
  bool weight_is_in_out() const override { return true; }
  at::Tensor weight, bias;
};

class Gpt2Attention : public torch::nn::Module {
 public:
  Gpt2Attention(const Gpt2Config& c, int64_t layer_idx)
      : n_head_(c.n_head), head_dim_(c.n_embd / c.n_head), attn_pdrop_(c.attn_pdrop),
        resid_pdrop_(c.resid_pdrop) {
    c_attn_ = register_module("c_attn", std::make_shared<Conv1D>(c.n_embd, 3 * c.n_embd));
    c_proj_ = register_module("c_proj", std::make_shared<Conv1D>(c.n_embd, c.n_embd));
    scale_ = c.scale_attn_weights ? 1.0 / std::sqrt(static_cast<double>(head_dim_)) : 1.0;
    if (c.scale_attn_by_inverse_layer_idx) scale_ /= static_cast<double>(layer_idx + 1);
    // reorder_and_upcast_attn only changes where fp16 scores are upcast; in float32 it is
    // the same computation.
  }

  // x (B,T,C), bias broadcastable to (B,H,T,S) -> (B,T,C). With a cache slot (keys, values:
  // (B,H,S-T,D) or undefined) the new keys and values are appended to it and attended with it.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& bias, std::pair<at::Tensor*, at::Tensor*> kv = {}) {
    const int64_t B = x.size(0), T = x.size(1), C = x.size(2);
    std::vector<at::Tensor> qkv = c_attn_->forward(x).split(C, 2);  // 3 x (B,T,C)
    auto heads = [&](const at::Tensor& t) { return t.view({B, T, n_head_, head_dim_}).transpose(1, 2); };
    at::Tensor k = heads(qkv[1]), v = heads(qkv[2]);
    if (kv.first) std::tie(k, v) = kv_append(kv, k, v);
    at::Tensor y = attention(heads(qkv[0]), k, v, bias, is_training() ? attn_pdrop_ : 0.0, scale_,
                             /*causal=*/true);  // (B,H,T,D)
    y = y.transpose(1, 2).contiguous().view({B, T, C});
    return maybe_dropout(c_proj_->forward(y), resid_pdrop_, is_training());
  }

 private:
  int64_t n_head_, head_dim_;
  double attn_pdrop_, resid_pdrop_, scale_;
  std::shared_ptr<Conv1D> c_attn_, c_proj_;
};

class Gpt2Mlp : public torch::nn::Module {
 public:
  Gpt2Mlp(const Gpt2Config& c, Activation act) : act_(act), resid_pdrop_(c.resid_pdrop) {
    const int64_t inner = c.n_inner.value_or(4 * c.n_embd);
    c_fc_ = register_module("c_fc", std::make_shared<Conv1D>(c.n_embd, inner));
    c_proj_ = register_module("c_proj", std::make_shared<Conv1D>(inner, c.n_embd));
  }
  // x (B,T,C) -> (B,T,C)
  at::Tensor forward(const at::Tensor& x) {
    at::Tensor h = activate(c_fc_->forward(x), act_);  // (B,T,inner)
    return maybe_dropout(c_proj_->forward(h), resid_pdrop_, is_training());
  }

 private:
  Activation act_;
  double resid_pdrop_;
  std::shared_ptr<Conv1D> c_fc_, c_proj_;
};

torch::nn::LayerNorm layer_norm(const Gpt2Config& c) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.n_embd}).eps(c.layer_norm_epsilon));
}

// Pre-norm block: x + attn(ln_1(x)), then + mlp(ln_2(.)).
class Gpt2Block : public torch::nn::Module {
 public:
  Gpt2Block(const Gpt2Config& c, Activation act, int64_t layer_idx) {
    ln_1_ = register_module("ln_1", layer_norm(c));
    attn_ = register_module("attn", std::make_shared<Gpt2Attention>(c, layer_idx));
    ln_2_ = register_module("ln_2", layer_norm(c));
    mlp_ = register_module("mlp", std::make_shared<Gpt2Mlp>(c, act));
  }
  // x (B,T,C) -> (B,T,C)
  at::Tensor forward(const at::Tensor& x, const at::Tensor& bias, std::pair<at::Tensor*, at::Tensor*> kv = {}) {
    at::Tensor h = attn_->forward(ln_1_->forward(x), bias, kv).add(x);
    return h.add(mlp_->forward(ln_2_->forward(h)));
  }

 private:
  torch::nn::LayerNorm ln_1_{nullptr}, ln_2_{nullptr};
  std::shared_ptr<Gpt2Attention> attn_;
  std::shared_ptr<Gpt2Mlp> mlp_;
};

bool is_layer_norm_weight(const std::string& name) {
  return ends_with(name, ".ln_1.weight") || ends_with(name, ".ln_2.weight") || ends_with(name, ".ln_f.weight");
}

}  // namespace

// ---- config.json --------------------------------------------------------------------------

Gpt2Config gpt2_config_from_json(const nlohmann::json& j, const std::string& where, bool strict) {
  HFT_CHECK(j.is_object(), "{}: a GPT-2 config must be a JSON object, got {}", where, j.dump());
  HfConfigReader r(j, where, kAliases);
  std::string model_type = "gpt2";
  r.get("model_type", model_type);
  HFT_CHECK(model_type == "gpt2", "{}: key \"model_type\" must be \"gpt2\", got \"{}\"", where, model_type);

  Gpt2Config c;
  r.get("vocab_size", c.vocab_size);
  r.get("n_positions", c.n_positions);
  r.get("n_embd", c.n_embd);
  r.get("n_layer", c.n_layer);
  r.get("n_head", c.n_head);
  r.get("n_inner", c.n_inner);
  r.get("activation_function", c.activation_function);
  r.get("resid_pdrop", c.resid_pdrop);
  r.get("embd_pdrop", c.embd_pdrop);
  r.get("attn_pdrop", c.attn_pdrop);
  r.get("layer_norm_epsilon", c.layer_norm_epsilon);
  r.get("initializer_range", c.initializer_range);
  r.get("scale_attn_weights", c.scale_attn_weights);
  r.get("scale_attn_by_inverse_layer_idx", c.scale_attn_by_inverse_layer_idx);
  r.get("reorder_and_upcast_attn", c.reorder_and_upcast_attn);
  r.get("bos_token_id", c.bos_token_id);
  r.get("eos_token_id", c.eos_token_id);
  r.get("pad_token_id", c.pad_token_id);

  // Variants of the architecture hftrain does not build.
  bool tie_word_embeddings = true, add_cross_attention = false;
  r.get("tie_word_embeddings", tie_word_embeddings);
  r.get("add_cross_attention", add_cross_attention);
  HFT_CHECK(tie_word_embeddings, "{}: key \"tie_word_embeddings\" false is not supported: "
            "hftrain's GPT-2 always ties lm_head to wte", where);
  HFT_CHECK(!add_cross_attention, "{}: key \"add_cross_attention\" true is not supported", where);

  c.other_keys = r.rest();
  if (strict) {
    // GPT2Config's keys that hftrain keeps without reading.
    std::vector<std::string> known = {"summary_type", "summary_use_proj", "summary_activation",
                                      "summary_proj_to_labels", "summary_first_dropout", "n_ctx"};
    const json defaults = gpt2_config_to_json(Gpt2Config{});
    for (const auto& [k, _] : defaults.items()) known.push_back(k);
    r.check_known(c.other_keys, known, "GPT-2");
  }
  gpt2_config_check(c, where);
  return c;
}

nlohmann::json gpt2_config_to_json(const Gpt2Config& c, const std::string& architecture) {
  // GPT2Config keys for the sequence-summary heads and generation, at HF's defaults; a
  // value read from a config.json (other_keys) replaces them.
  json j = {
      {"summary_type", "cls_index"},   {"summary_use_proj", true},
      {"summary_activation", nullptr}, {"summary_proj_to_labels", true},
      {"summary_first_dropout", 0.1},  {"use_cache", true},
  };
  if (c.other_keys.is_object()) {
    for (const auto& [k, v] : c.other_keys.items()) j[k] = v;
  }
  j["vocab_size"] = c.vocab_size;
  j["n_positions"] = c.n_positions;
  j["n_embd"] = c.n_embd;
  j["n_layer"] = c.n_layer;
  j["n_head"] = c.n_head;
  j["n_inner"] = c.n_inner ? json(*c.n_inner) : json(nullptr);
  j["activation_function"] = c.activation_function;
  j["resid_pdrop"] = c.resid_pdrop;
  j["embd_pdrop"] = c.embd_pdrop;
  j["attn_pdrop"] = c.attn_pdrop;
  j["layer_norm_epsilon"] = c.layer_norm_epsilon;
  j["initializer_range"] = c.initializer_range;
  j["scale_attn_weights"] = c.scale_attn_weights;
  j["scale_attn_by_inverse_layer_idx"] = c.scale_attn_by_inverse_layer_idx;
  j["reorder_and_upcast_attn"] = c.reorder_and_upcast_attn;
  j["bos_token_id"] = c.bos_token_id;
  j["eos_token_id"] = c.eos_token_id;
  if (c.pad_token_id) j["pad_token_id"] = *c.pad_token_id;
  j["architectures"] = json::array({architecture});
  j["model_type"] = "gpt2";
  j["torch_dtype"] = "float32";
  j["transformers_version"] = "4.48.3";
  return j;
}

// ---- the model ----------------------------------------------------------------------------

Gpt2Base::Gpt2Base(const Gpt2Config& config) : config_(config) {
  gpt2_config_check(config_, "GPT-2 config");
  const Activation act = activation_from_name(config_.activation_function, "GPT-2 config");
  const Gpt2Config& c = config_;
  transformer_ = register_module("transformer", std::make_shared<torch::nn::Module>("GPT2Model"));
  wte_ = transformer_->register_module("wte", torch::nn::Embedding(c.vocab_size, c.n_embd));
  wpe_ = transformer_->register_module("wpe", torch::nn::Embedding(c.n_positions, c.n_embd));
  h_ = transformer_->register_module("h", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.n_layer; ++i) h_->push_back(std::make_shared<Gpt2Block>(c, act, i));
  ln_f_ = transformer_->register_module("ln_f", layer_norm(c));
}

void Gpt2Base::init_weights() {
  // GPT2PreTrainedModel._init_weights: Conv1D, Linear and embedding weights N(0,
  // initializer_range), biases 0, LayerNorm weight 1; then every c_proj.weight N(0, range /
  // sqrt(2 n_layer)) ("scale the weights of residual layers", GPT-2 paper §2.3).
  torch::NoGradGuard no_grad;
  const Gpt2Config& c = config_;
  const double std_proj = c.initializer_range / std::sqrt(2.0 * static_cast<double>(c.n_layer));
  for (auto& item : named_parameters()) {
    const std::string& name = item.key();
    at::Tensor& p = item.value();
    if (ends_with(name, ".bias")) p.zero_();
    else if (is_layer_norm_weight(name)) p.fill_(1.0);
    else if (ends_with(name, "c_proj.weight")) p.normal_(0.0, std_proj);
    else p.normal_(0.0, c.initializer_range);
  }
}

at::Tensor Gpt2Base::hidden_states(const Batch& batch) {
  const at::Tensor input_ids = batch_get(batch, "input_ids");  // (B,T) int64
  HFT_CHECK(input_ids.defined() && input_ids.dim() == 2, "GPT-2: the batch needs input_ids of shape (B,T)");
  const int64_t T = input_ids.size(1);
  // Packed rows carry position_ids that restart at each document, which bound its attention;
  // each document is at most data.block_size, checked against n_positions at the start.
  const at::Tensor packed = batch_get(batch, "position_ids");
  HFT_CHECK(packed.defined() || T <= config_.n_positions, "GPT-2: sequence length {} is longer than n_positions {}", T,
            config_.n_positions);
  at::Tensor positions = packed.defined() ? packed : at::arange(T, input_ids.options().dtype(at::kLong));  // (B,T) or (T)
  at::Tensor x = input_embeddings(wte_->forward(input_ids)).add(wpe_->forward(positions));  // (B,T,C)
  x = maybe_dropout(x, config_.embd_pdrop, is_training());
  const at::Tensor bias = packed.defined() ? packed_attention_bias(packed, x)
                                           : attention_bias(T, batch_get(batch, "attention_mask"), x);  // (B or 1,1,T,T)
  for (size_t i = 0; i < h_->size(); ++i) {
    auto block = h_->ptr<Gpt2Block>(i);
    x = run_block(i, [block, bias](const at::Tensor& t) { return block->forward(t, bias); }, x);
  }
  return ln_f_->forward(x);
}

std::vector<std::string> Gpt2Base::embedding_parameter_names() const {
  return {"transformer.wte.weight", "transformer.wpe.weight"};
}

// Trainer.get_decay_parameter_names: biases and the weights of LayerNorm modules.
bool Gpt2Base::is_no_decay(const std::string& name) const {
  return ends_with(name, ".bias") || is_layer_norm_weight(name);
}

Gpt2LMHeadModel::Gpt2LMHeadModel(const Gpt2Config& config) : Gpt2Base(config) { init_weights(); }

ModelOutput Gpt2LMHeadModel::forward(const Batch& batch, std::optional<double> num_items_in_batch) {
  ModelOutput out;
  const at::Tensor x = hidden_states(batch);             // (B,T,C)
  const at::Tensor labels = batch_get(batch, "labels");  // (B,T), -100 ignored
  if (labels.defined() && fuse_lm_head_loss(x, wte_->weight)) {  // the loss alone: no logits
    out.loss = causal_linear_cross_entropy(x, wte_->weight, labels, num_items_in_batch);
    return out;
  }
  out.logits = at::linear(x, wte_->weight);  // (B,T,V), lm_head tied to wte
  if (labels.defined()) out.loss = causal_lm_loss(out.logits, labels, num_items_in_batch);
  return out;
}

at::Tensor Gpt2LMHeadModel::forward_cached(const at::Tensor& input_ids, KvCache& cache) {
  const int64_t T = input_ids.size(1), S = cache.length + T;
  HFT_CHECK(S <= config_.n_positions, "GPT-2: {} positions are more than n_positions {}", S, config_.n_positions);
  const at::Tensor positions = at::arange(cache.length, S, input_ids.options().dtype(at::kLong));
  at::Tensor x = input_embeddings(wte_->forward(input_ids)).add(wpe_->forward(positions));  // (B,T,C)
  const at::Tensor bias = attention_bias(S, {}, x).slice(2, cache.length, S);              // (1,1,T,S)
  cache.keys.resize(h_->size());
  cache.values.resize(h_->size());
  for (size_t i = 0; i < h_->size(); ++i) x = h_->ptr<Gpt2Block>(i)->forward(x, bias, {&cache.keys[i], &cache.values[i]});
  cache.length = S;
  return at::linear(ln_f_->forward(x), wte_->weight);
}

nlohmann::json Gpt2LMHeadModel::hf_config() const { return gpt2_config_to_json(config_); }

Gpt2ForSequenceClassification::Gpt2ForSequenceClassification(const Gpt2Config& config)
    : Gpt2Base(config), num_labels_(hf_num_labels(config.other_keys)) {
  HFT_CHECK(num_labels_ >= 2, "GPT-2 config: num_labels {} is not supported; sequence classification needs >= 2 "
            "(regression, num_labels 1, is not available)", num_labels_);
  score_ = register_module("score", torch::nn::Linear(torch::nn::LinearOptions(config_.n_embd, num_labels_).bias(false)));
  init_weights();
}

ModelOutput Gpt2ForSequenceClassification::forward(const Batch& batch, std::optional<double>) {
  const at::Tensor input_ids = batch_get(batch, "input_ids");
  at::Tensor logits = score_->forward(hidden_states(batch));  // (B,T,num_labels)
  const int64_t B = input_ids.size(0), T = input_ids.size(1);
  at::Tensor last;  // (B): the pooled position
  if (config_.pad_token_id) {
    // The last token before the first pad (argmax of the first match; -1 % T = T-1 when none).
    last = input_ids.eq(*config_.pad_token_id).to(at::kInt).argmax(-1).sub(1).remainder(T).to(at::kLong);
  } else {
    HFT_CHECK(B == 1, "GPT-2 sequence classification: batches of more than one need a pad_token_id in the config");
    last = at::full({B}, T - 1, input_ids.options().dtype(at::kLong));
  }
  ModelOutput out;
  out.logits = logits.index({at::arange(B, last.options()), last});  // (B,num_labels)
  const at::Tensor labels = batch_get(batch, "labels");                      // (B)
  if (labels.defined()) out.loss = at::cross_entropy_loss(out.logits.to(at::kFloat), labels.view({-1}).to(out.logits.device()));
  return out;
}

nlohmann::json Gpt2ForSequenceClassification::hf_config() const {
  return gpt2_config_to_json(config_, "GPT2ForSequenceClassification");
}

ModelFamily gpt2_family() {
  ModelFamily f;
  f.model_type = "gpt2";
  f.class_prefix = "GPT2";
  f.architectures = {{ModelTaskName::kCausalLM, "GPT2LMHeadModel"},
                     {ModelTaskName::kSequenceClassification, "GPT2ForSequenceClassification"}};
  f.create = [](const std::string& arch, const nlohmann::json& c, const std::string& where,
                bool strict) -> std::unique_ptr<Model> {
    if (arch == "GPT2ForSequenceClassification")
      return std::make_unique<Gpt2ForSequenceClassification>(gpt2_config_from_json(c, where, strict));
    return std::make_unique<Gpt2LMHeadModel>(gpt2_config_from_json(c, where, strict));
  };
  return f;
}

}  // namespace hftrain
