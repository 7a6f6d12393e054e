// LoRA adapters as PEFT 0.14 makes them: LoraConfig's keys and defaults, target modules
// matched as PEFT matches them, lora_A (r x in, Kaiming-uniform with a = sqrt(5)) and lora_B
// (out x r, zero) attached to a linear module (nn.Linear, or GPT-2's Conv1D whose weight is
// stored [in, out]), y = base(x) + scaling * B(A(dropout(x))). The base model is frozen;
// adapter_model.safetensors and adapter_config.json are written as PEFT's save_pretrained
// writes them, and merging folds the update into the base weights (merge_and_unload).
#pragma once

#include "hftrain/models/lora_config.h"

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace hftrain {

// A module LoRA attaches to. The module registers lora_A and lora_B as its own children,
// so that parameter names are PEFT's saved keys without "base_model.model.".
class LoraHost {
 public:
  virtual ~LoraHost() = default;
  // (out, in) of the linear map.
  virtual std::pair<int64_t, int64_t> lora_shape() const = 0;
  virtual at::Tensor& lora_base_weight() = 0;
  virtual bool weight_is_in_out() const { return false; }  // Conv1D

  void attach_lora(torch::nn::Module& self, const LoraConfig& c);
  bool has_lora() const { return static_cast<bool>(lora_A_); }
  // y + scaling * B(A(dropout(x))) when an adapter is attached, else y.
  at::Tensor add_lora(const at::Tensor& x, at::Tensor y, bool training) const;
  // W += scaling * B A (transposed for [in, out] weights); the adapter stays attached.
  void merge_lora();
  void detach_lora(torch::nn::Module& self);
  // Unregisters the adapter's modules but keeps them; show_lora registers them again.
  void hide_lora(torch::nn::Module& self);
  void show_lora(torch::nn::Module& self);

 protected:
  std::shared_ptr<torch::nn::Module> lora_A_, lora_B_;
  at::Tensor a_, b_;  // their weights
  double scaling_ = 0, dropout_ = 0;
};

struct LoraSummary {
  std::vector<std::string> targets;  // the module names adapted
  int64_t trainable = 0, total = 0;  // parameters
};

// Attaches adapters to `model`'s matching modules and freezes everything else (biases and
// modules_to_save as `c` says). A target that matches no module is an error listing the
// model's linear modules.
LoraSummary lora_apply(torch::nn::Module& model, const LoraConfig& c, const std::string& where);

// What a run does with its `peft:` section: adapt `model` (lora_apply), then load the adapter
// weights from `from` when given (a checkpoint, or peft.adapter to continue one).
LoraSummary lora_prepare(torch::nn::Module& model, const LoraConfig& c, const std::string& from);

// The adapter's tensors under PEFT's keys ("base_model.model." + name, no ".default").
std::map<std::string, at::Tensor> lora_state_dict(torch::nn::Module& model, const LoraConfig& c);
// Writes adapter_config.json and adapter_model.safetensors into `dir`.
void lora_save(torch::nn::Module& model, const LoraConfig& c, const std::string& dir);
// Loads an adapter directory's weights into `model` (already adapted with its config): every
// key must name one of the adapter's tensors, with its shape.
void lora_load_weights(torch::nn::Module& model, const LoraConfig& c, const std::string& dir);
// merge_and_unload: the updates folded into the base weights, the adapters removed.
void lora_merge_and_unload(torch::nn::Module& model);
// Runs `fn` while `model` is merged and unloaded (to save that model), then puts the weights
// and adapters back exactly as they were.
void lora_with_merged(torch::nn::Module& model, const std::function<void()>& fn);

}  // namespace hftrain
