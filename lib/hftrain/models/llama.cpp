// Llama as transformers 4.48.3 models/llama/modeling_llama.py computes it (eager attention):
// embed_tokens -> layers (x + attn(rms(x)), then + mlp(rms(.))) -> norm -> lm_head, the
// rotary embedding of LlamaRotaryEmbedding's default rope, ForCausalLMLoss.
#include "hftrain/models/llama.h"

#include "hftrain/core/error.h"
#include "hftrain/core/torch_compat.h"
#include "hftrain/kernels/attention.h"
#include "hftrain/kernels/linear_cross_entropy.h"
#include "hftrain/kernels/rms_norm.h"
#include "hftrain/kernels/swiglu.h"
#include "hftrain/models/layers.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <cmath>
#include <tuple>

namespace hftrain {

using nlohmann::json;

namespace {

void llama_config_check(const LlamaConfig& c, const std::string& where) {
  auto positive = [&](const char* key, int64_t v) { check_positive(where, key, v); };
  positive("vocab_size", c.vocab_size);
  positive("hidden_size", c.hidden_size);
  positive("intermediate_size", c.intermediate_size);
  positive("num_attention_heads", c.num_attention_heads);
  positive("num_key_value_heads", c.kv_heads());
  positive("max_position_embeddings", c.max_position_embeddings);
  HFT_CHECK(c.num_hidden_layers >= 0, "{}: key \"num_hidden_layers\" must be >= 0, got {}", where, c.num_hidden_layers);
  HFT_CHECK(c.head_dim || c.hidden_size % c.num_attention_heads == 0,
            "{}: key \"hidden_size\" {} must be divisible by num_attention_heads {}", where, c.hidden_size,
            c.num_attention_heads);
  HFT_CHECK(c.dim_per_head() % 2 == 0, "{}: the head dimension {} must be even for rotary embeddings", where,
            c.dim_per_head());
  HFT_CHECK(c.num_attention_heads % c.kv_heads() == 0,
            "{}: key \"num_attention_heads\" {} must be a multiple of num_key_value_heads {}", where,
            c.num_attention_heads, c.kv_heads());
  HFT_CHECK(c.hidden_act == "silu", "{}: key \"hidden_act\" \"{}\" is not supported; Llama uses \"silu\"", where,
            c.hidden_act);
  HFT_CHECK(c.rms_norm_eps > 0, "{}: key \"rms_norm_eps\" must be > 0, got {}", where, c.rms_norm_eps);
  HFT_CHECK(c.rope_theta > 0, "{}: key \"rope_theta\" must be > 0, got {}", where, c.rope_theta);
  HFT_CHECK(c.attention_dropout >= 0 && c.attention_dropout <= 1, "{}: key \"attention_dropout\" must be in [0, 1]",
            where);
  check_pad_token_id(where, c.pad_token_id, c.vocab_size);
  if (c.sliding_window)
    HFT_CHECK(*c.sliding_window > 0, "{}: key \"sliding_window\" must be > 0, got {}", where, *c.sliding_window);
  const RopeScaling& r = c.rope_scaling;
  HFT_CHECK(r.factor > 0, "{}: rope_scaling factor must be > 0, got {}", where, r.factor);
  if (r.rope_type == "llama3")
    HFT_CHECK(r.high_freq_factor > r.low_freq_factor && r.low_freq_factor > 0 && r.original_max_position_embeddings > 0,
              "{}: rope_scaling llama3 needs high_freq_factor > low_freq_factor > 0 and "
              "original_max_position_embeddings > 0, got {}",
              where, r.raw.dump());
}

// rope_scaling from config.json: transformers' rope_utils types that change training.
RopeScaling rope_scaling_from_json(const json& j, const std::string& where) {
  RopeScaling r;
  if (j.is_null()) return r;
  HFT_CHECK(j.is_object(), "{}: key \"rope_scaling\" must be a mapping or null, got {}", where, j.dump());
  r.raw = j;
  const json type = j.contains("rope_type") ? j["rope_type"] : j.value("type", json("default"));
  HFT_CHECK(type.is_string(), "{}: rope_scaling rope_type must be a name, got {}", where, type.dump());
  r.rope_type = type.get<std::string>();
  HFT_CHECK(r.rope_type == "default" || r.rope_type == "linear" || r.rope_type == "llama3" || r.rope_type == "dynamic",
            "{}: key \"rope_scaling\" {} is not supported: hftrain has the default, linear, dynamic and llama3 "
            "rotary embeddings",
            where, j.dump());
  auto number = [&](const char* key, double& out) {
    if (!j.contains(key)) return;
    HFT_CHECK(j[key].is_number(), "{}: rope_scaling {} must be a number, got {}", where, key, j[key].dump());
    out = j[key].get<double>();
  };
  number("factor", r.factor);
  number("low_freq_factor", r.low_freq_factor);
  number("high_freq_factor", r.high_freq_factor);
  double original = static_cast<double>(r.original_max_position_embeddings);
  number("original_max_position_embeddings", original);
  r.original_max_position_embeddings = static_cast<int64_t>(original);
  if (r.rope_type != "default")
    HFT_CHECK(j.contains("factor"), "{}: rope_scaling {} needs a factor", where, r.rope_type);
  if (r.rope_type == "llama3")
    for (const char* key : {"low_freq_factor", "high_freq_factor", "original_max_position_embeddings"})
      HFT_CHECK(j.contains(key), "{}: rope_scaling llama3 needs {}", where, key);
  return r;
}

// The rotary frequencies, float32, as rope_utils computes them: the default 1 / theta^(2i/d);
// linear divides them by factor; llama3 divides the low frequencies by factor, keeps the high
// ones and blends those between.
at::Tensor rope_inv_freq(const LlamaConfig& c) {
  const int64_t d = c.dim_per_head();
  at::Tensor inv_freq =
      at::pow(c.rope_theta, at::arange(0, d, 2, at::kLong).to(at::kFloat).div(static_cast<double>(d))).reciprocal();
  const RopeScaling& r = c.rope_scaling;
  if (r.rope_type == "linear") return inv_freq.div(r.factor);
  // dynamic (NTK): rope_utils raises the base only for sequences longer than
  // max_position_embeddings, which the forward refuses; within it the default frequencies.
  if (r.rope_type != "llama3") return inv_freq;
  const double old_len = static_cast<double>(r.original_max_position_embeddings);
  const double low_wavelen = old_len / r.low_freq_factor, high_wavelen = old_len / r.high_freq_factor;
  const at::Tensor wavelen = inv_freq.reciprocal().mul(2 * M_PI);
  at::Tensor scaled = at::where(wavelen.gt(low_wavelen), inv_freq.div(r.factor), inv_freq);
  const at::Tensor smooth = wavelen.reciprocal().mul(old_len).sub(r.low_freq_factor).div(r.high_freq_factor - r.low_freq_factor);
  const at::Tensor smoothed = smooth.neg().add(1).mul(scaled).div(r.factor).add(smooth.mul(scaled));
  const at::Tensor medium = wavelen.lt(high_wavelen).logical_not().logical_and(wavelen.gt(low_wavelen).logical_not());
  return at::where(medium, smoothed, scaled);
}

// LlamaRMSNorm: float32 x * rsqrt(mean(x^2) + eps), cast back, times weight.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  if (at::Tensor fused = rms_norm_fused_or_undefined(x, weight, eps, 0.0); fused.defined()) return fused;
  at::Tensor h = x.to(at::kFloat);
  h = h.mul(at::rsqrt(h.pow(2).mean(-1, /*keepdim=*/true).add(eps)));
  return weight.mul(h.to(x.scalar_type()));
}

class RmsNorm : public torch::nn::Module {
 public:
  RmsNorm(int64_t size, double eps) : eps_(eps) { weight = register_parameter("weight", at::ones({size})); }
  at::Tensor forward(const at::Tensor& x) { return rms_norm(x, weight, eps_); }
  at::Tensor weight;

 private:
  double eps_;
};

class LlamaAttention : public torch::nn::Module {
 public:
  explicit LlamaAttention(const LlamaConfig& c)
      : heads_(c.num_attention_heads), kv_heads_(c.kv_heads()), head_dim_(c.dim_per_head()),
        dropout_(c.attention_dropout) {
    auto linear = [&](const char* name, int64_t in, int64_t out, bool bias) {
      return register_module(name, Linear(torch::nn::LinearOptions(in, out).bias(bias)));
    };
    const bool qkv_bias = c.attention_bias || c.qkv_bias;
    if (c.fused_projections()) {  // phi3: one qkv_proj, its rows q, then k, then v
      qkv_proj_ = linear("qkv_proj", c.hidden_size, (heads_ + 2 * kv_heads_) * head_dim_, false);
    } else {
      q_proj_ = linear("q_proj", c.hidden_size, heads_ * head_dim_, qkv_bias);
      k_proj_ = linear("k_proj", c.hidden_size, kv_heads_ * head_dim_, qkv_bias);
      v_proj_ = linear("v_proj", c.hidden_size, kv_heads_ * head_dim_, qkv_bias);
    }
    o_proj_ = linear("o_proj", heads_ * head_dim_, c.hidden_size, c.attention_bias);
  }

  // x (B,T,C); cos/sin (B or 1,1,T,D); bias broadcastable to (B,H,T,T) -> (B,T,C)
  // With a cache slot, the new (rotated) keys and values are appended to it and attended with it.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& bias,
                     std::pair<at::Tensor*, at::Tensor*> kv = {}) {
    const int64_t B = x.size(0), T = x.size(1);
    auto heads = [&](const at::Tensor& t, int64_t n) { return t.view({B, T, n, head_dim_}).transpose(1, 2); };
    at::Tensor q, k, v;
    if (qkv_proj_) {
      const at::Tensor qkv = qkv_proj_->forward(x);
      const int64_t qn = heads_ * head_dim_, kn = kv_heads_ * head_dim_;
      q = heads(qkv.slice(-1, 0, qn), heads_);
      k = heads(qkv.slice(-1, qn, qn + kn), kv_heads_);
      v = heads(qkv.slice(-1, qn + kn), kv_heads_);
    } else {
      q = heads(q_proj_->forward(x), heads_);     // (B,H,T,D)
      k = heads(k_proj_->forward(x), kv_heads_);  // (B,KV,T,D)
      v = heads(v_proj_->forward(x), kv_heads_);
    }
    q = q.mul(cos).add(rotate_half(q).mul(sin));
    k = k.mul(cos).add(rotate_half(k).mul(sin));
    if (kv.first) std::tie(k, v) = kv_append(kv, k, v);
    if (kv_heads_ != heads_) {  // repeat_kv: each key/value head serves H / KV query heads in turn
      k = k.repeat_interleave(heads_ / kv_heads_, 1);
      v = v.repeat_interleave(heads_ / kv_heads_, 1);
    }
    at::Tensor y = attention(q, k, v, bias, is_training() ? dropout_ : 0.0,
                             1.0 / std::sqrt(static_cast<double>(head_dim_)), /*causal=*/true);  // (B,H,T,D)
    return o_proj_->forward(y.transpose(1, 2).reshape({B, T, heads_ * head_dim_}));
  }

 private:
  int64_t heads_, kv_heads_, head_dim_;
  double dropout_;
  Linear q_proj_{nullptr}, k_proj_{nullptr}, v_proj_{nullptr}, o_proj_{nullptr};
  Linear qkv_proj_{nullptr};  // phi3
};

class LlamaMlp : public torch::nn::Module {
 public:
  explicit LlamaMlp(const LlamaConfig& c) : intermediate_(c.intermediate_size) {
    auto linear = [&](const char* name, int64_t in, int64_t out) {
      return register_module(name, Linear(torch::nn::LinearOptions(in, out).bias(c.mlp_bias)));
    };
    if (c.fused_projections()) {  // phi3: gate_up_proj, the gate's rows first
      gate_up_proj_ = linear("gate_up_proj", c.hidden_size, 2 * c.intermediate_size);
    } else {
      gate_proj_ = linear("gate_proj", c.hidden_size, c.intermediate_size);
      up_proj_ = linear("up_proj", c.hidden_size, c.intermediate_size);
    }
    down_proj_ = linear("down_proj", c.intermediate_size, c.hidden_size);
  }
  // SwiGLU: down(silu(gate(x)) * up(x)); x (B,T,C) -> (B,T,C)
  at::Tensor forward(const at::Tensor& x) {
    if (gate_up_proj_) {
      const at::Tensor gu = gate_up_proj_->forward(x);
      return down_proj_->forward(swiglu(gu.slice(-1, 0, intermediate_), gu.slice(-1, intermediate_)));
    }
    return down_proj_->forward(swiglu(gate_proj_->forward(x), up_proj_->forward(x)));
  }

 private:
  int64_t intermediate_;
  Linear gate_proj_{nullptr}, up_proj_{nullptr}, down_proj_{nullptr}, gate_up_proj_{nullptr};
};

class LlamaDecoderLayer : public torch::nn::Module {
 public:
  explicit LlamaDecoderLayer(const LlamaConfig& c) : resid_pdrop_(c.resid_pdrop) {
    self_attn_ = register_module("self_attn", std::make_shared<LlamaAttention>(c));
    mlp_ = register_module("mlp", std::make_shared<LlamaMlp>(c));
    input_layernorm_ = register_module("input_layernorm", std::make_shared<RmsNorm>(c.hidden_size, c.rms_norm_eps));
    post_attention_layernorm_ =
        register_module("post_attention_layernorm", std::make_shared<RmsNorm>(c.hidden_size, c.rms_norm_eps));
  }
  at::Tensor forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& bias,
                     std::pair<at::Tensor*, at::Tensor*> kv = {}) {
    at::Tensor h = x.add(resid_dropout(self_attn_->forward(input_layernorm_->forward(x), cos, sin, bias, kv)));
    return h.add(resid_dropout(mlp_->forward(post_attention_layernorm_->forward(h))));
  }

 private:
  // phi3's resid_attn_dropout and resid_mlp_dropout (resid_pdrop); the others have none.
  at::Tensor resid_dropout(const at::Tensor& t) {
    return resid_pdrop_ > 0 && is_training() ? at::dropout(t, resid_pdrop_, true) : t;
  }
  double resid_pdrop_;
  std::shared_ptr<LlamaAttention> self_attn_;
  std::shared_ptr<LlamaMlp> mlp_;
  std::shared_ptr<RmsNorm> input_layernorm_, post_attention_layernorm_;
};

}  // namespace

LlamaConfig llama_config_defaults(const std::string& model_type) {
  LlamaConfig c;
  c.model_type = model_type;
  if (model_type == "qwen2") {  // Qwen2Config
    c.vocab_size = 151936, c.intermediate_size = 22016, c.max_position_embeddings = 32768;
    c.qkv_bias = true;
    c.sliding_window = 4096;
    c.bos_token_id = c.eos_token_id = std::nullopt;
  } else if (model_type == "mistral") {  // MistralConfig
    c.intermediate_size = 14336, c.num_key_value_heads = 8, c.max_position_embeddings = 4096 * 32;
    c.sliding_window = 4096;
  } else if (model_type == "phi3") {  // Phi3Config
    c.vocab_size = 32064, c.hidden_size = 3072, c.intermediate_size = 8192, c.max_position_embeddings = 4096;
    c.rms_norm_eps = 1e-5;
    c.eos_token_id = 32000, c.pad_token_id = 32000;
  }
  return c;
}

std::optional<int64_t> LlamaConfig::window_of_layer(int64_t layer) const {
  if (model_type == "mistral" || model_type == "phi3") return sliding_window;
  if (model_type == "qwen2" && use_sliding_window && layer >= max_window_layers) return sliding_window;
  return std::nullopt;
}

std::string LlamaConfig::architecture() const {
  if (model_type == "qwen2") return "Qwen2ForCausalLM";
  if (model_type == "mistral") return "MistralForCausalLM";
  if (model_type == "phi3") return "Phi3ForCausalLM";
  return "LlamaForCausalLM";
}

LlamaConfig llama_config_from_json(const json& j, const std::string& where, bool strict) {
  HFT_CHECK(j.is_object(), "{}: a Llama config must be a JSON object, got {}", where, j.dump());
  HfConfigReader r(j, where);
  std::string model_type = "llama";
  r.get("model_type", model_type);
  HFT_CHECK(model_type == "llama" || model_type == "qwen2" || model_type == "mistral" || model_type == "phi3",
            "{}: key \"model_type\" must be \"llama\", \"qwen2\", \"mistral\" or \"phi3\", got \"{}\"", where,
            model_type);
  LlamaConfig c = llama_config_defaults(model_type);
  const bool llama = model_type == "llama";
  r.get("vocab_size", c.vocab_size);
  r.get("hidden_size", c.hidden_size);
  r.get("intermediate_size", c.intermediate_size);
  r.get("num_hidden_layers", c.num_hidden_layers);
  r.get("num_attention_heads", c.num_attention_heads);
  r.get("num_key_value_heads", c.num_key_value_heads);
  if (model_type != "qwen2" && model_type != "phi3") r.get("head_dim", c.head_dim);
  r.get("hidden_act", c.hidden_act);
  r.get("max_position_embeddings", c.max_position_embeddings);
  r.get("initializer_range", c.initializer_range);
  r.get("rms_norm_eps", c.rms_norm_eps);
  r.get("rope_theta", c.rope_theta);
  r.get("tie_word_embeddings", c.tie_word_embeddings);
  if (llama) {
    r.get("attention_bias", c.attention_bias);
    r.get("mlp_bias", c.mlp_bias);
  }
  r.get("attention_dropout", c.attention_dropout);
  r.get("pad_token_id", c.pad_token_id);
  r.get("bos_token_id", c.bos_token_id);
  r.get("eos_token_id", c.eos_token_id);
  if (llama) {
    int64_t pretraining_tp = 1;
    r.get("pretraining_tp", pretraining_tp);
    HFT_CHECK(pretraining_tp == 1, "{}: key \"pretraining_tp\" {} is not supported (it only splits matmuls)", where,
              pretraining_tp);
  }
  // MistralConfig has no rope_scaling of its own, but its rotary embedding reads one given.
  c.rope_scaling = rope_scaling_from_json(j.value("rope_scaling", json(nullptr)), where);
  HFT_CHECK(model_type != "phi3" || c.rope_scaling.rope_type == "default",
            "{}: key \"rope_scaling\" {} is not supported for phi3 (longrope is not in hftrain)", where,
            c.rope_scaling.raw.dump());
  if (model_type != "llama") r.get("sliding_window", c.sliding_window);
  if (model_type == "qwen2") {
    r.get("use_sliding_window", c.use_sliding_window);
    r.get("max_window_layers", c.max_window_layers);
  }
  if (model_type == "phi3") {
    r.get("resid_pdrop", c.resid_pdrop);
    r.get("embd_pdrop", c.embd_pdrop);
    r.get("original_max_position_embeddings", c.original_max_position_embeddings);
  }
  c.other_keys = r.rest();
  c.other_keys.erase("rope_scaling");
  if (strict) {
    std::vector<std::string> known;
    const json defaults = llama_config_to_json(llama_config_defaults(model_type));
    for (const auto& [k, _] : defaults.items()) known.push_back(k);
    known.push_back("head_dim");
    r.check_known(c.other_keys, known, c.architecture());
  }
  llama_config_check(c, where);
  return c;
}

json llama_config_to_json(const LlamaConfig& c) {
  const bool llama = c.model_type == "llama", qwen2 = c.model_type == "qwen2", mistral = c.model_type == "mistral";
  const bool phi3 = c.model_type == "phi3";
  json j = {{"use_cache", true}};
  if (llama) j["pretraining_tp"] = 1;
  if (!mistral || !c.rope_scaling.raw.is_null())
    j["rope_scaling"] = c.rope_scaling.raw.is_null() ? json(nullptr) : c.rope_scaling.raw;
  for (const auto& [k, v] : c.other_keys.items()) j[k] = v;
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.kv_heads();
  if (!qwen2 && !phi3) j["head_dim"] = c.dim_per_head();
  j["hidden_act"] = c.hidden_act;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["initializer_range"] = c.initializer_range;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  if (llama) {
    j["attention_bias"] = c.attention_bias;
    j["mlp_bias"] = c.mlp_bias;
  }
  j["attention_dropout"] = c.attention_dropout;
  if (qwen2) {
    // Qwen2Config keeps sliding_window only when it is used.
    j["use_sliding_window"] = c.use_sliding_window;
    j["sliding_window"] = c.use_sliding_window && c.sliding_window ? json(*c.sliding_window) : json(nullptr);
    j["max_window_layers"] = c.max_window_layers;
  }
  if (mistral || phi3) j["sliding_window"] = c.sliding_window ? json(*c.sliding_window) : json(nullptr);
  if (phi3) {
    j["resid_pdrop"] = c.resid_pdrop;
    j["embd_pdrop"] = c.embd_pdrop;
    j["original_max_position_embeddings"] = c.original_max_position_embeddings;
  }
  set_hf_identity(j, c.architecture(), c.model_type, c.bos_token_id, c.eos_token_id, c.pad_token_id);
  return j;
}

LlamaForCausalLM::LlamaForCausalLM(const LlamaConfig& config) : config_(config) {
  llama_config_check(config_, "Llama config");
  const LlamaConfig& c = config_;
  model_ = register_module("model", std::make_shared<torch::nn::Module>("LlamaModel"));
  embed_tokens_ = model_->register_module("embed_tokens", padded_embedding(c.vocab_size, c.hidden_size, c.pad_token_id));
  layers_ = model_->register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers_->push_back(std::make_shared<LlamaDecoderLayer>(c));
  norm_ = model_->register_module("norm", std::make_shared<RmsNorm>(c.hidden_size, c.rms_norm_eps));
  if (!c.tie_word_embeddings)
    lm_head_ = register_module("lm_head", torch::nn::Linear(torch::nn::LinearOptions(c.hidden_size, c.vocab_size).bias(false)));
  inv_freq_ = rope_inv_freq(c);  // LlamaRotaryEmbedding's, float32

  // LlamaPreTrainedModel._init_weights: Linear and Embedding weights N(0, initializer_range),
  // biases 0, the padding row 0; RMSNorm weights stay 1.
  init_decoder_weights(*this, c.initializer_range);
  torch::NoGradGuard no_grad;
  if (c.pad_token_id) embed_tokens_->weight[*c.pad_token_id].zero_();
}

ModelOutput LlamaForCausalLM::forward(const Batch& batch, std::optional<double> num_items_in_batch) {
  const at::Tensor input_ids = batch_get(batch, "input_ids");  // (B,T) int64
  HFT_CHECK(input_ids.defined() && input_ids.dim() == 2, "Llama: the batch needs input_ids of shape (B,T)");
  const int64_t T = input_ids.size(1);
  // Packed rows carry position_ids that restart at each document, which bound its attention;
  // each document is at most data.block_size, checked against the model's positions at the start.
  const at::Tensor packed = batch_get(batch, "position_ids");
  HFT_CHECK(packed.defined() || T <= config_.max_position_embeddings,
            "Llama: sequence length {} is longer than max_position_embeddings {}", T, config_.max_position_embeddings);

  at::Tensor x = input_embeddings(embed_tokens_->forward(input_ids));  // (B,T,C)
  const auto rotary = packed.defined() ? rotary_cos_sin_at(inv_freq_, packed, x) : rotary_cos_sin(inv_freq_, T, x);
  const at::Tensor cos = rotary.first, sin = rotary.second;
  const at::Tensor mask = batch_get(batch, "attention_mask");
  const at::Tensor full = packed.defined() ? packed_attention_bias(packed, x) : attention_bias(T, mask, x);
  at::Tensor windowed;  // the sliding-window layers' mask, made once when one needs it

  for (size_t i = 0; i < layers_->size(); ++i) {
    auto layer = layers_->ptr<LlamaDecoderLayer>(i);
    const std::optional<int64_t> window = config_.window_of_layer(static_cast<int64_t>(i));
    if (window && !windowed.defined())
      windowed = packed.defined() ? packed_attention_bias(packed, x, *window) : attention_bias(T, mask, x, *window);
    const at::Tensor bias = window ? windowed : full;
    x = run_block(i, [layer, cos, sin, bias](const at::Tensor& t) { return layer->forward(t, cos, sin, bias); }, x);
  }
  x = std::static_pointer_cast<RmsNorm>(norm_)->forward(x);

  ModelOutput out;
  const at::Tensor labels = batch_get(batch, "labels");
  const at::Tensor& head = lm_head_ ? lm_head_->weight : embed_tokens_->weight;  // (V,d)
  if (labels.defined() && fuse_lm_head_loss(x, head)) {                          // the loss alone: no logits
    out.loss = causal_linear_cross_entropy(x, head, labels, num_items_in_batch);
    return out;
  }
  out.logits = lm_head_ ? lm_head_->forward(x) : at::linear(x, embed_tokens_->weight);  // (B,T,V)
  if (labels.defined()) out.loss = causal_lm_loss(out.logits, labels, num_items_in_batch);
  return out;
}

at::Tensor LlamaForCausalLM::forward_cached(const at::Tensor& input_ids, KvCache& cache) {
  const int64_t T = input_ids.size(1), S = cache.length + T;
  HFT_CHECK(S <= config_.max_position_embeddings, "Llama: {} positions are more than max_position_embeddings {}", S,
            config_.max_position_embeddings);
  at::Tensor x = input_embeddings(embed_tokens_->forward(input_ids));  // (B,T,C)
  const auto rotary = rotary_cos_sin(inv_freq_, S, x);                 // the new positions' rows
  const at::Tensor cos = rotary.first.slice(2, cache.length, S), sin = rotary.second.slice(2, cache.length, S);
  const at::Tensor full = attention_bias(S, {}, x).slice(2, cache.length, S);  // (1,1,T,S)
  cache.keys.resize(layers_->size());
  cache.values.resize(layers_->size());
  for (size_t i = 0; i < layers_->size(); ++i) {
    const std::optional<int64_t> window = config_.window_of_layer(static_cast<int64_t>(i));
    const at::Tensor bias = window ? attention_bias(S, {}, x, *window).slice(2, cache.length, S) : full;
    x = layers_->ptr<LlamaDecoderLayer>(i)->forward(x, cos, sin, bias, {&cache.keys[i], &cache.values[i]});
  }
  cache.length = S;
  x = std::static_pointer_cast<RmsNorm>(norm_)->forward(x);
  return lm_head_ ? lm_head_->forward(x) : at::linear(x, embed_tokens_->weight);
}

// Trainer.get_decay_parameter_names: names without "bias" in them that are not in a module of
// ALL_LAYERNORM_LAYERS, which holds LlamaRMSNorm but not Qwen2's, Mistral's or Phi-3's RMSNorm
// (transformers 4.48): their norm weights get weight decay in HF, and so here.
bool LlamaForCausalLM::is_no_decay(const std::string& name) const {
  if (name.find("bias") != std::string::npos) return true;
  return config_.model_type == "llama" && ends_with(name, "norm.weight");
}

std::vector<std::string> LlamaForCausalLM::tied_aliases() const {
  if (config_.tie_word_embeddings) return {"lm_head.weight"};
  return {};
}

namespace {

// The decoders LlamaForCausalLM builds, by model_type; config.json's model_type picks it
// (a from-scratch config of `model: {type: qwen2}` gets it from the type).
ModelFamily decoder_family(const std::string& model_type, const std::string& prefix) {
  ModelFamily f;
  f.model_type = model_type;
  f.class_prefix = prefix;
  f.architectures = {{ModelTaskName::kCausalLM, prefix + "ForCausalLM"}};
  f.create = [](const std::string& arch, const nlohmann::json& c, const std::string& where,
                bool strict) -> std::unique_ptr<Model> {
    nlohmann::json typed = c;
    if (!typed.contains("model_type"))
      typed["model_type"] = arch == "Qwen2ForCausalLM"     ? "qwen2"
                            : arch == "MistralForCausalLM" ? "mistral"
                            : arch == "Phi3ForCausalLM"    ? "phi3"
                                                           : "llama";
    return std::make_unique<LlamaForCausalLM>(llama_config_from_json(typed, where, strict));
  };
  return f;
}

}  // namespace

ModelFamily llama_family() { return decoder_family("llama", "Llama"); }
ModelFamily qwen2_family() { return decoder_family("qwen2", "Qwen2"); }
ModelFamily mistral_family() { return decoder_family("mistral", "Mistral"); }
ModelFamily phi3_family() { return decoder_family("phi3", "Phi3"); }

}  // namespace hftrain
