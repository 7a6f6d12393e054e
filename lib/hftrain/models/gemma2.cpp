// Gemma 2 as transformers 4.48.3 models/gemma2/modeling_gemma2.py computes it (eager
// attention, training mode): embed * sqrt(hidden) -> layers (x + post_norm(attn(norm(x))),
// then + post_ff_norm(mlp(pre_ff_norm(.)))) -> norm -> lm_head -> final soft-cap,
// ForCausalLMLoss.
#include "hftrain/models/gemma2.h"

#include "hftrain/core/error.h"
#include "hftrain/kernels/rms_norm.h"
#include "hftrain/models/gelu_new.h"
#include "hftrain/models/layers.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <cmath>

namespace hftrain {

using nlohmann::json;

namespace {

void gemma2_config_check(const Gemma2Config& c, const std::string& where) {
  for (const auto& [key, v] : {std::pair<const char*, int64_t>{"vocab_size", c.vocab_size},
                               {"hidden_size", c.hidden_size},
                               {"intermediate_size", c.intermediate_size},
                               {"num_attention_heads", c.num_attention_heads},
                               {"num_key_value_heads", c.num_key_value_heads},
                               {"head_dim", c.head_dim},
                               {"max_position_embeddings", c.max_position_embeddings}})
    check_positive(where, key, v);
  HFT_CHECK(c.num_hidden_layers >= 0, "{}: key \"num_hidden_layers\" must be >= 0, got {}", where, c.num_hidden_layers);
  HFT_CHECK(c.head_dim % 2 == 0, "{}: key \"head_dim\" {} must be even for rotary embeddings", where, c.head_dim);
  HFT_CHECK(c.num_attention_heads % c.num_key_value_heads == 0,
            "{}: key \"num_attention_heads\" {} must be a multiple of num_key_value_heads {}", where,
            c.num_attention_heads, c.num_key_value_heads);
  HFT_CHECK(c.hidden_activation == "gelu_pytorch_tanh",
            "{}: key \"hidden_activation\" \"{}\" is not supported; Gemma 2 uses \"gelu_pytorch_tanh\"", where,
            c.hidden_activation);
  HFT_CHECK(c.rms_norm_eps > 0 && c.rope_theta > 0 && c.query_pre_attn_scalar > 0,
            "{}: rms_norm_eps, rope_theta and query_pre_attn_scalar must be > 0", where);
  for (const auto& [key, cap] : {std::pair<const char*, std::optional<double>>{"final_logit_softcapping",
                                                                               c.final_logit_softcapping},
                                 {"attn_logit_softcapping", c.attn_logit_softcapping}})
    HFT_CHECK(!cap || *cap > 0, "{}: key \"{}\" must be > 0 or null, got {}", where, key, *cap);
  if (c.sliding_window)
    HFT_CHECK(*c.sliding_window > 0, "{}: key \"sliding_window\" must be > 0, got {}", where, *c.sliding_window);
  check_pad_token_id(where, c.pad_token_id, c.vocab_size);
}

// Gemma2RMSNorm: float32 x * rsqrt(mean(x^2) + eps) * (1 + weight), cast back at the end.
class Gemma2RmsNorm : public torch::nn::Module {
 public:
  Gemma2RmsNorm(int64_t size, double eps) : eps_(eps) { weight = register_parameter("weight", at::zeros({size})); }
  at::Tensor forward(const at::Tensor& x) {
    if (at::Tensor fused = rms_norm_fused_or_undefined(x, weight, eps_, 1.0); fused.defined()) return fused;
    const at::Tensor h = x.to(at::kFloat);
    const at::Tensor normed = h.mul(at::rsqrt(h.pow(2).mean(-1, /*keepdim=*/true).add(eps_)));
    return normed.mul(weight.to(at::kFloat).add(1.0)).to(x.scalar_type());
  }
  at::Tensor weight;

 private:
  double eps_;
};

at::Tensor softcap(const at::Tensor& x, double cap) { return at::tanh(x.div(cap)).mul(cap); }

class Gemma2Attention : public torch::nn::Module {
 public:
  explicit Gemma2Attention(const Gemma2Config& c)
      : heads_(c.num_attention_heads), kv_heads_(c.num_key_value_heads), head_dim_(c.head_dim),
        scaling_(std::pow(c.query_pre_attn_scalar, -0.5)), dropout_(c.attention_dropout),
        softcap_(c.attn_logit_softcapping) {
    auto linear = [&](const char* name, int64_t in, int64_t out) {
      return register_module(name, Linear(torch::nn::LinearOptions(in, out).bias(c.attention_bias)));
    };
    q_proj_ = linear("q_proj", c.hidden_size, heads_ * head_dim_);
    k_proj_ = linear("k_proj", c.hidden_size, kv_heads_ * head_dim_);
    v_proj_ = linear("v_proj", c.hidden_size, kv_heads_ * head_dim_);
    o_proj_ = linear("o_proj", heads_ * head_dim_, c.hidden_size);
  }

  // HF's eager_attention_forward with softcap: scores scaled, capped, then masked; softmax in
  // float32.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& bias) {
    const int64_t B = x.size(0), T = x.size(1);
    auto heads = [&](const at::Tensor& t, int64_t n) { return t.view({B, T, n, head_dim_}).transpose(1, 2); };
    at::Tensor q = heads(q_proj_->forward(x), heads_);
    at::Tensor k = heads(k_proj_->forward(x), kv_heads_);
    at::Tensor v = heads(v_proj_->forward(x), kv_heads_);
    q = q.mul(cos).add(rotate_half(q).mul(sin));
    k = k.mul(cos).add(rotate_half(k).mul(sin));
    if (kv_heads_ != heads_) {
      k = k.repeat_interleave(heads_ / kv_heads_, 1);
      v = v.repeat_interleave(heads_ / kv_heads_, 1);
    }
    at::Tensor scores = at::matmul(q, k.transpose(2, 3)).mul(scaling_);
    if (softcap_) scores = softcap(scores, *softcap_);
    scores = scores.add(bias);
    at::Tensor weights = at::softmax(scores, -1, at::kFloat).to(q.scalar_type());
    if (is_training() && dropout_ > 0) weights = at::dropout(weights, dropout_, true);
    const at::Tensor y = at::matmul(weights, v);  // (B,H,T,D)
    return o_proj_->forward(y.transpose(1, 2).reshape({B, T, heads_ * head_dim_}));
  }

 private:
  int64_t heads_, kv_heads_, head_dim_;
  double scaling_, dropout_;
  std::optional<double> softcap_;
  Linear q_proj_{nullptr}, k_proj_{nullptr}, v_proj_{nullptr}, o_proj_{nullptr};
};

class Gemma2Mlp : public torch::nn::Module {
 public:
  explicit Gemma2Mlp(const Gemma2Config& c) {
    auto linear = [&](const char* name, int64_t in, int64_t out) {
      return register_module(name, Linear(torch::nn::LinearOptions(in, out).bias(false)));
    };
    gate_proj_ = linear("gate_proj", c.hidden_size, c.intermediate_size);
    up_proj_ = linear("up_proj", c.hidden_size, c.intermediate_size);
    down_proj_ = linear("down_proj", c.intermediate_size, c.hidden_size);
  }
  // GeGLU: down(gelu_tanh(gate(x)) * up(x))
  at::Tensor forward(const at::Tensor& x) {
    return down_proj_->forward(gelu_pytorch_tanh(gate_proj_->forward(x)).mul(up_proj_->forward(x)));
  }

 private:
  Linear gate_proj_{nullptr}, up_proj_{nullptr}, down_proj_{nullptr};
};

class Gemma2DecoderLayer : public torch::nn::Module {
 public:
  explicit Gemma2DecoderLayer(const Gemma2Config& c) {
    self_attn_ = register_module("self_attn", std::make_shared<Gemma2Attention>(c));
    mlp_ = register_module("mlp", std::make_shared<Gemma2Mlp>(c));
    auto norm = [&](const char* name) {
      return register_module(name, std::make_shared<Gemma2RmsNorm>(c.hidden_size, c.rms_norm_eps));
    };
    input_layernorm_ = norm("input_layernorm");
    post_attention_layernorm_ = norm("post_attention_layernorm");
    pre_feedforward_layernorm_ = norm("pre_feedforward_layernorm");
    post_feedforward_layernorm_ = norm("post_feedforward_layernorm");
  }
  at::Tensor forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& bias) {
    const at::Tensor h = x.add(post_attention_layernorm_->forward(
        self_attn_->forward(input_layernorm_->forward(x), cos, sin, bias)));
    return h.add(post_feedforward_layernorm_->forward(mlp_->forward(pre_feedforward_layernorm_->forward(h))));
  }

 private:
  std::shared_ptr<Gemma2Attention> self_attn_;
  std::shared_ptr<Gemma2Mlp> mlp_;
  std::shared_ptr<Gemma2RmsNorm> input_layernorm_, post_attention_layernorm_, pre_feedforward_layernorm_,
      post_feedforward_layernorm_;
};

// A number, or null for none (the soft-caps).
void get_optional_number(const json& j, const char* key, std::optional<double>& out, HfConfigReader& r) {
  if (!j.contains(key)) return;
  if (j[key].is_null()) {
    out.reset();
    return;
  }
  double v = 0;
  r.get(key, v);
  out = v;
}

}  // namespace

Gemma2Config gemma2_config_from_json(const json& j, const std::string& where, bool strict) {
  HFT_CHECK(j.is_object(), "{}: a Gemma 2 config must be a JSON object, got {}", where, j.dump());
  HfConfigReader r(j, where);
  std::string model_type = "gemma2";
  r.get("model_type", model_type);
  HFT_CHECK(model_type == "gemma2", "{}: key \"model_type\" must be \"gemma2\", got \"{}\"", where, model_type);
  Gemma2Config c;
  r.get("vocab_size", c.vocab_size);
  r.get("hidden_size", c.hidden_size);
  r.get("intermediate_size", c.intermediate_size);
  r.get("num_hidden_layers", c.num_hidden_layers);
  r.get("num_attention_heads", c.num_attention_heads);
  r.get("num_key_value_heads", c.num_key_value_heads);
  r.get("head_dim", c.head_dim);
  r.get("hidden_activation", c.hidden_activation);
  r.get("max_position_embeddings", c.max_position_embeddings);
  r.get("initializer_range", c.initializer_range);
  r.get("rms_norm_eps", c.rms_norm_eps);
  r.get("pad_token_id", c.pad_token_id);
  r.get("eos_token_id", c.eos_token_id);
  r.get("bos_token_id", c.bos_token_id);
  r.get("tie_word_embeddings", c.tie_word_embeddings);
  r.get("rope_theta", c.rope_theta);
  r.get("attention_bias", c.attention_bias);
  r.get("attention_dropout", c.attention_dropout);
  r.get("query_pre_attn_scalar", c.query_pre_attn_scalar);
  r.get("sliding_window", c.sliding_window);
  get_optional_number(j, "final_logit_softcapping", c.final_logit_softcapping, r);
  get_optional_number(j, "attn_logit_softcapping", c.attn_logit_softcapping, r);
  HFT_CHECK(!j.contains("rope_scaling") || j["rope_scaling"].is_null(),
            "{}: key \"rope_scaling\" {} is not supported for gemma2", where, j.value("rope_scaling", json()).dump());
  c.other_keys = r.rest();
  for (const char* key : {"final_logit_softcapping", "attn_logit_softcapping", "rope_scaling"}) c.other_keys.erase(key);
  if (strict) {
    std::vector<std::string> known = {"rope_scaling", "tie_word_embeddings"};
    for (const auto& [k, _] : gemma2_config_to_json(Gemma2Config{}).items()) known.push_back(k);
    r.check_known(c.other_keys, known, "Gemma2");
  }
  gemma2_config_check(c, where);
  return c;
}

json gemma2_config_to_json(const Gemma2Config& c) {
  json j = {{"use_cache", true}, {"cache_implementation", "hybrid"}};
  for (const auto& [k, v] : c.other_keys.items()) j[k] = v;
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  j["head_dim"] = c.head_dim;
  j["hidden_activation"] = c.hidden_activation;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["initializer_range"] = c.initializer_range;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  j["attention_bias"] = c.attention_bias;
  j["attention_dropout"] = c.attention_dropout;
  j["query_pre_attn_scalar"] = c.query_pre_attn_scalar;
  j["sliding_window"] = c.sliding_window ? json(*c.sliding_window) : json(nullptr);
  j["final_logit_softcapping"] = c.final_logit_softcapping ? json(*c.final_logit_softcapping) : json(nullptr);
  j["attn_logit_softcapping"] = c.attn_logit_softcapping ? json(*c.attn_logit_softcapping) : json(nullptr);
  // save_pretrained leaves out what equals PretrainedConfig's default (tied).
  if (!c.tie_word_embeddings) j["tie_word_embeddings"] = false;
  set_hf_identity(j, "Gemma2ForCausalLM", "gemma2", c.bos_token_id, c.eos_token_id, c.pad_token_id);
  return j;
}

Gemma2ForCausalLM::Gemma2ForCausalLM(const Gemma2Config& config) : config_(config) {
  gemma2_config_check(config_, "Gemma 2 config");
  const Gemma2Config& c = config_;
  model_ = register_module("model", std::make_shared<torch::nn::Module>("Gemma2Model"));
  embed_tokens_ = model_->register_module("embed_tokens", padded_embedding(c.vocab_size, c.hidden_size, c.pad_token_id));
  layers_ = model_->register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers_->push_back(std::make_shared<Gemma2DecoderLayer>(c));
  norm_ = model_->register_module("norm", std::make_shared<Gemma2RmsNorm>(c.hidden_size, c.rms_norm_eps));
  if (!c.tie_word_embeddings)
    lm_head_ = register_module("lm_head", torch::nn::Linear(torch::nn::LinearOptions(c.hidden_size, c.vocab_size).bias(false)));
  inv_freq_ = at::pow(c.rope_theta, at::arange(0, c.head_dim, 2, at::kLong).to(at::kFloat).div(static_cast<double>(c.head_dim)))
                  .reciprocal();
  // Gemma2PreTrainedModel._init_weights: Linear and Embedding N(0, initializer_range), biases
  // and the padding row 0; the norms start at 0 (they scale by 1 + weight).
  init_decoder_weights(*this, c.initializer_range);
  torch::NoGradGuard no_grad;
  if (c.pad_token_id) embed_tokens_->weight[*c.pad_token_id].zero_();
}

ModelOutput Gemma2ForCausalLM::forward(const Batch& batch, std::optional<double> num_items_in_batch) {
  const at::Tensor input_ids = batch_get(batch, "input_ids");
  HFT_CHECK(input_ids.defined() && input_ids.dim() == 2, "Gemma 2: the batch needs input_ids of shape (B,T)");
  const int64_t T = input_ids.size(1);
  const at::Tensor packed = batch_get(batch, "position_ids");  // packed rows: see the rotary below
  HFT_CHECK(packed.defined() || T <= config_.max_position_embeddings,
            "Gemma 2: sequence length {} is longer than max_position_embeddings {}", T, config_.max_position_embeddings);
  at::Tensor x = input_embeddings(embed_tokens_->forward(input_ids));
  // normalizer = torch.tensor(hidden_size**0.5, dtype=hidden dtype)
  x = x.mul(at::scalar_tensor(std::sqrt(static_cast<double>(config_.hidden_size)), x.options()));
  // Packed rows carry position_ids that restart at each document, which bound its attention.
  const auto rotary = packed.defined() ? rotary_cos_sin_at(inv_freq_, packed, x) : rotary_cos_sin(inv_freq_, T, x);
  const at::Tensor cos = rotary.first, sin = rotary.second;
  const at::Tensor mask = batch_get(batch, "attention_mask");
  auto bias_of = [&](std::optional<int64_t> window) {
    return packed.defined() ? packed_attention_bias(packed, x, window) : attention_bias(T, mask, x, window);
  };
  const at::Tensor full = bias_of(std::nullopt);
  const at::Tensor windowed = config_.sliding_window ? bias_of(*config_.sliding_window) : full;
  for (size_t i = 0; i < layers_->size(); ++i) {
    auto layer = layers_->ptr<Gemma2DecoderLayer>(i);
    const at::Tensor bias = i % 2 == 0 ? windowed : full;  // the even layers slide
    x = run_block(i, [layer, cos, sin, bias](const at::Tensor& t) { return layer->forward(t, cos, sin, bias); }, x);
  }
  x = std::static_pointer_cast<Gemma2RmsNorm>(norm_)->forward(x);
  ModelOutput out;
  out.logits = lm_head_ ? lm_head_->forward(x) : at::linear(x, embed_tokens_->weight);
  if (config_.final_logit_softcapping) out.logits = softcap(out.logits, *config_.final_logit_softcapping);
  const at::Tensor labels = batch_get(batch, "labels");
  if (labels.defined()) out.loss = causal_lm_loss(out.logits, labels, num_items_in_batch);
  return out;
}

// Trainer.get_decay_parameter_names: Gemma2RMSNorm is not among transformers'
// ALL_LAYERNORM_LAYERS, so only biases go without weight decay, as in HF.
bool Gemma2ForCausalLM::is_no_decay(const std::string& name) const { return name.find("bias") != std::string::npos; }

std::vector<std::string> Gemma2ForCausalLM::tied_aliases() const {
  if (config_.tie_word_embeddings) return {"lm_head.weight"};
  return {};
}

ModelFamily gemma2_family() {
  ModelFamily f;
  f.model_type = "gemma2";
  f.class_prefix = "Gemma2";
  f.architectures = {{ModelTaskName::kCausalLM, "Gemma2ForCausalLM"}};
  f.create = [](const std::string&, const json& c, const std::string& where, bool strict) -> std::unique_ptr<Model> {
    return std::make_unique<Gemma2ForCausalLM>(gemma2_config_from_json(c, where, strict));
  };
  return f;
}

}  // namespace hftrain
