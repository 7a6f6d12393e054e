#include "hftrain/models/layers.h"

#include <ATen/core/grad_mode.h>

#include "hftrain/core/error.h"
#include "hftrain/core/strings.h"

#include <ATen/Functions.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace hftrain {

using nlohmann::json;

HfConfigReader::HfConfigReader(const json& j, std::string where, std::vector<std::pair<std::string, std::string>> aliases)
    : j_(j), where_(std::move(where)), aliases_(std::move(aliases)) {}

const json* HfConfigReader::find(std::string& key) {
  read_.push_back(key);
  const json* found = j_.contains(key) ? &j_.at(key) : nullptr;
  for (const auto& [alias, name] : aliases_) {
    if (name != key) continue;
    read_.push_back(alias);
    if (j_.contains(alias)) {
      key = alias;
      found = &j_.at(alias);
    }
  }
  return found;
}

void HfConfigReader::bad(const std::string& key, const json& v, const char* expected) const {
  fail("{}: key \"{}\" must be {}, got {}", where_, key, expected, v.dump());
}

void HfConfigReader::get(std::string key, int64_t& out) {
  const json* v = find(key);
  if (!v) return;
  if (!v->is_number_integer()) bad(key, *v, "an integer");
  out = v->get<int64_t>();
}

void HfConfigReader::get(std::string key, std::optional<int64_t>& out) {
  const json* v = find(key);
  if (!v) return;
  if (v->is_null()) {
    out.reset();
    return;
  }
  if (!v->is_number_integer()) bad(key, *v, "an integer or null");
  out = v->get<int64_t>();
}

void HfConfigReader::get(std::string key, double& out) {
  const json* v = find(key);
  if (!v) return;
  if (!v->is_number()) bad(key, *v, "a number");
  out = v->get<double>();
}

void HfConfigReader::get(std::string key, bool& out) {
  const json* v = find(key);
  if (!v) return;
  if (!v->is_boolean()) bad(key, *v, "true or false");
  out = v->get<bool>();
}

void HfConfigReader::get(std::string key, std::string& out) {
  const json* v = find(key);
  if (!v) return;
  if (!v->is_string()) bad(key, *v, "a string");
  out = v->get<std::string>();
}

void HfConfigReader::get(std::string key, std::optional<std::string>& out) {
  const json* v = find(key);
  if (!v) return;
  if (v->is_null()) {
    out.reset();
    return;
  }
  if (!v->is_string()) bad(key, *v, "a string or null");
  out = v->get<std::string>();
}

json HfConfigReader::rest() const {
  static const std::vector<std::string> regenerated = {"architectures", "model_type", "torch_dtype",
                                                       "transformers_version"};
  json out = json::object();
  for (const auto& [k, v] : j_.items()) {
    if (std::find(read_.begin(), read_.end(), k) != read_.end()) continue;
    if (std::find(regenerated.begin(), regenerated.end(), k) != regenerated.end()) continue;
    out[k] = v;
  }
  return out;
}

void HfConfigReader::check_known(const json& rest, std::vector<std::string> known, const std::string& what) const {
  const auto& common = pretrained_config_keys();
  known.insert(known.end(), common.begin(), common.end());
  for (const auto& [alias, _] : aliases_) known.push_back(alias);
  for (const auto& [k, _] : rest.items()) {
    if (std::find(known.begin(), known.end(), k) != known.end()) continue;
    std::string near = nearest_name(k, known);
    fail("{}: unknown {} config key \"{}\"{}", where_, what, k, near.empty() ? "" : "; did you mean \"" + near + "\"?");
  }
}

const std::vector<std::string>& pretrained_config_keys() {
  static const std::vector<std::string> keys = {
      "use_cache", "id2label", "label2id", "num_labels", "problem_type", "task_specific_params", "_name_or_path",
      "torch_dtype", "transformers_version", "architectures", "model_type", "pad_token_id", "bos_token_id",
      "eos_token_id", "tie_word_embeddings", "output_attentions", "output_hidden_states", "return_dict"};
  return keys;
}

at::Tensor batch_get(const std::map<std::string, at::Tensor>& batch, const char* key) {
  auto it = batch.find(key);
  return it == batch.end() ? at::Tensor() : it->second;
}

void check_positive(const std::string& where, const char* key, int64_t value) {
  HFT_CHECK(value > 0, "{}: key \"{}\" must be > 0, got {}", where, key, value);
}

int64_t hf_num_labels(const json& config) {
  if (config.contains("id2label") && config["id2label"].is_object() && !config["id2label"].empty())
    return static_cast<int64_t>(config["id2label"].size());
  if (config.contains("num_labels") && config["num_labels"].is_number_integer()) return config["num_labels"].get<int64_t>();
  return 2;
}

at::Tensor maybe_dropout(const at::Tensor& x, double p, bool training) {
  return training && p > 0 ? at::dropout(x, p, /*train=*/true) : x;
}

c10::Scalar lowest(at::ScalarType t) {
  switch (t) {
    case at::kDouble: return std::numeric_limits<double>::lowest();
    case at::kHalf: return std::numeric_limits<c10::Half>::lowest();
    case at::kBFloat16: return std::numeric_limits<c10::BFloat16>::lowest();
    default: return std::numeric_limits<float>::lowest();
  }
}

at::Tensor rotate_half(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({x.slice(-1, half).neg(), x.slice(-1, 0, half)}, -1);
}

std::pair<at::Tensor, at::Tensor> rotary_cos_sin(at::Tensor& inv_freq, int64_t T, const at::Tensor& like) {
  if (inv_freq.device() != like.device()) inv_freq = inv_freq.to(like.device());
  const at::Tensor positions = at::arange(T, like.options().dtype(at::kFloat));
  const at::Tensor freqs = positions.view({-1, 1}).mul(inv_freq.view({1, -1}));  // (T,D/2)
  const at::Tensor emb = at::cat({freqs, freqs}, -1);                              // (T,D)
  return {emb.cos().to(like.scalar_type()).view({1, 1, T, -1}), emb.sin().to(like.scalar_type()).view({1, 1, T, -1})};
}

torch::nn::Embedding padded_embedding(int64_t vocab, int64_t hidden, std::optional<int64_t> pad) {
  auto options = torch::nn::EmbeddingOptions(vocab, hidden);
  if (pad) options.padding_idx(*pad);
  return torch::nn::Embedding(options);
}

void check_pad_token_id(const std::string& where, std::optional<int64_t> pad, int64_t vocab_size) {
  if (pad)
    HFT_CHECK(*pad >= 0 && *pad < vocab_size, "{}: key \"pad_token_id\" {} must be a token id below vocab_size {}",
              where, *pad, vocab_size);
}

void init_decoder_weights(torch::nn::Module& model, double std) {
  at::NoGradGuard no_grad;
  for (auto& item : model.named_parameters()) {
    if (ends_with(item.key(), "norm.weight")) continue;
    if (ends_with(item.key(), ".bias")) item.value().zero_();
    else item.value().normal_(0.0, std);
  }
}

void set_hf_identity(nlohmann::json& config, const std::string& architecture, const std::string& model_type,
                     std::optional<int64_t> bos, std::optional<int64_t> eos, std::optional<int64_t> pad) {
  if (bos) config["bos_token_id"] = *bos;
  if (eos) config["eos_token_id"] = *eos;
  if (pad) config["pad_token_id"] = *pad;
  config["architectures"] = nlohmann::json::array({architecture});
  config["model_type"] = model_type;
  config["torch_dtype"] = "float32";
  config["transformers_version"] = "4.48.3";
}

at::Tensor attention_bias(int64_t T, const at::Tensor& attention_mask, const at::Tensor& like,
                          std::optional<int64_t> window) {
  at::Tensor masked = at::ones({T, T}, like.options().dtype(at::kBool)).triu(1);
  if (window) masked = masked.logical_or(at::ones({T, T}, like.options().dtype(at::kBool)).tril(-*window));
  masked = masked.view({1, 1, T, T});
  if (attention_mask.defined()) masked = masked.logical_or(attention_mask.to(like.device()).eq(0).view({-1, 1, 1, T}));
  return at::zeros(masked.sizes(), like.options()).masked_fill(masked, lowest(like.scalar_type()));
}

at::Tensor packed_attention_bias(const at::Tensor& position_ids, const at::Tensor& like, std::optional<int64_t> window) {
  const at::Tensor pos = position_ids.to(like.device());
  const int64_t T = pos.size(1);
  const at::Tensor doc = pos.eq(0).cumsum(-1);                                    // (B,T): the document of each token
  at::Tensor allowed = doc.unsqueeze(2).eq(doc.unsqueeze(1));                      // (B,T,T) same document
  const at::Tensor i = at::arange(T, pos.options()).view({T, 1}), j = at::arange(T, pos.options()).view({1, T});
  allowed = allowed.logical_and(j.le(i));
  if (window) allowed = allowed.logical_and(j.gt(i - *window));
  return at::zeros(allowed.sizes(), like.options()).masked_fill(allowed.logical_not(), lowest(like.scalar_type())).unsqueeze(1);
}

std::pair<at::Tensor, at::Tensor> rotary_cos_sin_at(at::Tensor& inv_freq, const at::Tensor& position_ids,
                                                    const at::Tensor& like) {
  if (inv_freq.device() != like.device()) inv_freq = inv_freq.to(like.device());
  const at::Tensor freqs = position_ids.to(like.device()).to(at::kFloat).unsqueeze(-1).mul(inv_freq);  // (B,T,D/2)
  const at::Tensor emb = at::cat({freqs, freqs}, -1).unsqueeze(1);                                    // (B,1,T,D)
  return {emb.cos().to(like.scalar_type()), emb.sin().to(like.scalar_type())};
}

std::pair<at::Tensor, at::Tensor> kv_append(std::pair<at::Tensor*, at::Tensor*> slot, const at::Tensor& k,
                                            const at::Tensor& v) {
  at::Tensor& keys = *slot.first;
  at::Tensor& values = *slot.second;
  keys = keys.defined() ? at::cat({keys, k}, 2) : k;
  values = values.defined() ? at::cat({values, v}, 2) : v;
  return {keys, values};
}

at::Tensor causal_lm_loss(const at::Tensor& logits, const at::Tensor& labels, std::optional<double> num_items_in_batch) {
  const int64_t T = logits.size(1), V = logits.size(-1);
  at::Tensor shift_logits = logits.slice(1, 0, T - 1).to(at::kFloat).reshape({-1, V});
  at::Tensor shift_labels = labels.slice(1, 1).to(logits.device()).reshape({-1});
  if (num_items_in_batch)
    return at::cross_entropy_loss(shift_logits, shift_labels, {}, at::Reduction::Sum, -100).div(*num_items_in_batch);
  return at::cross_entropy_loss(shift_logits, shift_labels, {}, at::Reduction::Mean, -100);
}

at::Tensor label_smoothed_loss(const at::Tensor& logits, const at::Tensor& labels, double epsilon, bool shift,
                               std::optional<double> num_items_in_batch) {
  at::Tensor x = logits.to(at::kFloat), y = labels.to(logits.device());
  if (shift) x = x.slice(1, 0, x.size(1) - 1), y = y.slice(1, 1);
  const int64_t V = x.size(-1);
  x = x.reshape({-1, V});
  y = y.reshape({-1, 1});
  const at::Tensor neg_log_probs = at::log_softmax(x, -1).neg();
  const at::Tensor active = y.ne(-100);
  const at::Tensor nll = neg_log_probs.gather(1, y.clamp_min(0)).mul(active).sum();
  const at::Tensor smoothed = neg_log_probs.sum(-1, /*keepdim=*/true).mul(active).sum();
  const at::Tensor n = num_items_in_batch ? at::scalar_tensor(*num_items_in_batch, x.options())
                                          : active.sum().to(at::kFloat);
  return nll.div(n).mul(1.0 - epsilon).add(smoothed.div(n.mul(static_cast<double>(V))).mul(epsilon));
}

at::Tensor neftune_noise(const at::Tensor& e, double alpha) {
  const double magnitude = alpha / std::sqrt(static_cast<double>(e.size(1) * e.size(2)));
  return at::empty_like(e).uniform_(-magnitude, magnitude);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace hftrain
