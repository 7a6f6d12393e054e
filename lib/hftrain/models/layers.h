// Pieces every HF architecture here shares: config.json reading with HF's key aliases, the
// additive attention mask, dropout, and ForCausalLMLoss.
#pragma once

#include "hftrain/kernels/linear.h"
#include "hftrain/models/lora.h"

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>
#include <c10/core/Scalar.h>
#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace hftrain {

// nn.Linear (weight [out, in], bias) that a LoRA adapter can attach to.
class LinearImpl : public torch::nn::LinearImpl, public LoraHost {
 public:
  using torch::nn::LinearImpl::LinearImpl;
  at::Tensor forward(const at::Tensor& x) {
    return add_lora(x, linear_layer(x, weight, bias, /*weight_in_out=*/false), is_training());
  }
  std::pair<int64_t, int64_t> lora_shape() const override { return {weight.size(0), weight.size(1)}; }
  at::Tensor& lora_base_weight() override { return weight; }
};
TORCH_MODULE(Linear);

// Reads the typed keys of one config.json object. Every key read is remembered, so that
// the rest can be kept (HF's configs keep unknown kwargs) and written back on export.
class HfConfigReader {
 public:
  // aliases: (generic name, the architecture's own) as a config class's attribute_map;
  // when both are given the generic one wins, as in HF.
  HfConfigReader(const nlohmann::json& j, std::string where,
                 std::vector<std::pair<std::string, std::string>> aliases = {});

  void get(std::string key, int64_t& out);
  void get(std::string key, std::optional<int64_t>& out);  // null: unset
  void get(std::string key, double& out);
  void get(std::string key, bool& out);
  void get(std::string key, std::string& out);
  void get(std::string key, std::optional<std::string>& out);  // null: unset

  // Every key not read, less those every exporter writes itself (architectures,
  // model_type, torch_dtype, transformers_version).
  nlohmann::json rest() const;
  // strict configs (written by a user, not saved by HF): a key in `rest` that is not in
  // `known` is an error naming the nearest known key, so that a typo is never ignored.
  void check_known(const nlohmann::json& rest, std::vector<std::string> known, const std::string& what) const;
  [[noreturn]] void bad(const std::string& key, const nlohmann::json& v, const char* expected) const;
  const std::string& where() const { return where_; }

 private:
  const nlohmann::json* find(std::string& key);
  const nlohmann::json& j_;
  std::string where_;
  std::vector<std::pair<std::string, std::string>> aliases_;
  std::vector<std::string> read_;
};

// PretrainedConfig keys every architecture keeps without reading.
const std::vector<std::string>& pretrained_config_keys();

// A batch's tensor by name, undefined when the batch has none.
at::Tensor batch_get(const std::map<std::string, at::Tensor>& batch, const char* key);

// Config checks: `key` of the config in `where` must be > 0.
void check_positive(const std::string& where, const char* key, int64_t value);

// The number of labels a config.json declares: id2label's size, else num_labels, else 2
// (PretrainedConfig's default).
int64_t hf_num_labels(const nlohmann::json& config);

at::Tensor maybe_dropout(const at::Tensor& x, double p, bool training);

// The most negative value of a floating dtype (torch.finfo(dtype).min).
c10::Scalar lowest(at::ScalarType t);

// One additive bias for the causal and the padding mask, (B or 1, 1, T, T), with the dtype
// and device of `like`: 0 where a query may attend, finfo.min where not (transformers' eager
// mask; where HF adds finfo.min twice the softmax weight is 0 either way). attention_mask
// (B,T) may be undefined.
// Rotary embeddings' (x1, x2) -> (-x2, x1) over the last dimension's halves.
at::Tensor rotate_half(const at::Tensor& x);
// cos and sin (1,1,T,D) in `like`'s dtype for positions 0..T-1: HF's float32 outer product of
// positions and inv_freq (its matmul runs with autocast off; a product of one term each, so an
// elementwise product is the same number), emb = [freqs, freqs]. inv_freq moves to `like`'s
// device once.
std::pair<at::Tensor, at::Tensor> rotary_cos_sin(at::Tensor& inv_freq, int64_t T, const at::Tensor& like);
// nn.Embedding(vocab, hidden, padding_idx=pad): the padding row gets no gradient.
torch::nn::Embedding padded_embedding(int64_t vocab, int64_t hidden, std::optional<int64_t> pad);
// A user error naming `where` when pad_token_id is set outside [0, vocab_size).
void check_pad_token_id(const std::string& where, std::optional<int64_t> pad, int64_t vocab_size);
// HF's _init_weights of the decoder families: Linear and Embedding weights N(0, std), biases
// 0; weights named *norm.weight are left as their module made them.
void init_decoder_weights(torch::nn::Module& model, double std);
// The keys every exported config.json ends with: architectures, model_type, torch_dtype,
// transformers_version, and the special token ids that are set (save_pretrained leaves out
// what equals PretrainedConfig's default, None).
void set_hf_identity(nlohmann::json& config, const std::string& architecture, const std::string& model_type,
                     std::optional<int64_t> bos = std::nullopt, std::optional<int64_t> eos = std::nullopt,
                     std::optional<int64_t> pad = std::nullopt);

// window: a query attends only to the `window` newest keys, itself included (Mistral's
// sliding window: key j is masked for query i when j <= i - window).
at::Tensor attention_bias(int64_t T, const at::Tensor& attention_mask, const at::Tensor& like,
                          std::optional<int64_t> window = std::nullopt);

// Packed rows (DataCollatorWithFlattening): position_ids (B,T) restart at 0 at each document.
// The additive bias (B,1,T,T) that lets a query see the keys of its own document only, causally
// (and within `window` positions); the rotary cos/sin (B,1,T,D) at those positions.
at::Tensor packed_attention_bias(const at::Tensor& position_ids, const at::Tensor& like,
                                 std::optional<int64_t> window = std::nullopt);
std::pair<at::Tensor, at::Tensor> rotary_cos_sin_at(at::Tensor& inv_freq, const at::Tensor& position_ids,
                                                    const at::Tensor& like);

// A KV cache slot's keys and values (B,heads,S,D; undefined when empty) with the new ones
// (B,heads,T,D) appended; the slot then holds the result, which is returned.
std::pair<at::Tensor, at::Tensor> kv_append(std::pair<at::Tensor*, at::Tensor*> slot, const at::Tensor& k,
                                            const at::Tensor& v);

// ForCausalLMLoss: position t predicts label t+1 (labels (B,T), -100 ignored), float32
// cross-entropy summed and divided by num_items_in_batch when given, else the mean.
at::Tensor causal_lm_loss(const at::Tensor& logits, const at::Tensor& labels, std::optional<double> num_items_in_batch);

// transformers' LabelSmoother: (1 - epsilon) * NLL + epsilon * the mean over the vocab of
// -log p, over the labels that are not -100, in float32. shift: a causal LM's (position t
// scores label t+1). labels (B,T) for per-token heads, (B) for a sequence classifier. Both
// sums are divided by num_items_in_batch when given (with the vocab size for the smoothed
// one), else by this batch's active labels (transformers 5's normalisation).
at::Tensor label_smoothed_loss(const at::Tensor& logits, const at::Tensor& labels, double epsilon, bool shift,
                               std::optional<double> num_items_in_batch);

// NEFTune's noise on the input embeddings e (B,T,d): uniform in +-alpha / sqrt(T * d).
at::Tensor neftune_noise(const at::Tensor& e, double alpha);

bool ends_with(const std::string& s, const std::string& suffix);

}  // namespace hftrain
