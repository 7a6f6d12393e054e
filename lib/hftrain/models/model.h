// The model interface. A batch is a map of named tensors (input_ids, attention_mask,
// labels, ...); forward returns {loss, logits}. Parameters are registered under HF's
// names, so named_parameters() is the HF state dict minus tied aliases.
#pragma once

#include "hftrain/core/batch.h"
#include "hftrain/core/task.h"

#include <nlohmann/json_fwd.hpp>
#include <torch/nn/module.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace hftrain {

struct ModelOutput {
  torch::Tensor loss;    // 0-d; undefined when the batch has no labels
  torch::Tensor logits;  // (B,T,V) LM heads, (B,num_labels) sequence, (B,T,num_labels) token classification
};

// Incremental decoding: each layer's keys and values of the positions seen so far.
struct KvCache {
  std::vector<at::Tensor> keys, values;  // per layer (B, key/value heads, length, head dim)
  int64_t length = 0;                    // positions cached
};

class Model : public torch::nn::Module {
 public:
  // num_items_in_batch: label tokens (after the causal shift) of the whole accumulation
  // window; when given the loss is sum(CE) / num_items_in_batch, else the mean over label
  // tokens (transformers >= 4.46 semantics, v5 counting).
  virtual ModelOutput forward(const Batch& batch, std::optional<double> num_items_in_batch) = 0;

  virtual std::string model_type() const = 0;
  virtual ModelTask task() const { return ModelTask::kCausalLM; }
  // Whether forward takes num_items_in_batch (transformers' model_accepts_loss_kwargs). A
  // head that does not returns each micro-batch's mean loss, which the Trainer divides by
  // gradient_accumulation_steps.
  virtual bool accepts_loss_kwargs() const { return true; }
  // Whether forward_cached is there (causal LMs whose decoding keeps a KV cache).
  virtual bool supports_kv_cache() const { return false; }
  // The logits (B,t,V) of input_ids (B,t) at the positions after the cache's, which then holds
  // their keys and values too: a generated token costs one position's forward.
  virtual at::Tensor forward_cached(const at::Tensor& input_ids, KvCache& cache);
  // HF config.json contents (model_type, architectures, sizes, torch_dtype, ...).
  virtual nlohmann::json hf_config() const = 0;
  // Parameters of nn.Embedding modules: excluded from HF's floating_point_ops count.
  virtual std::vector<std::string> embedding_parameter_names() const = 0;
  // Names of parameters that HF's Trainer puts in the no-decay group (biases, norm weights).
  virtual bool is_no_decay(const std::string& name) const = 0;
  // State-dict names that alias a parameter (GPT-2's lm_head.weight is wte's): HF does not
  // store them, and loading accepts and ignores them.
  virtual std::vector<std::string> tied_aliases() const { return {}; }
  // gradient_checkpointing: each transformer block recomputes its activations in backward.
  void set_gradient_checkpointing(bool on) { gradient_checkpointing_ = on; }

  // The transformer blocks, in the order forward runs them: the units that sharded data
  // parallel gathers one at a time (what FSDP's transformer auto-wrap policy wraps).
  virtual std::vector<std::shared_ptr<torch::nn::Module>> blocks() const = 0;
  // A block's forward, x -> y.
  using BlockFn = std::function<at::Tensor(const at::Tensor&)>;
  // Wraps every block's forward from now on: runner(i, run, x) must return run(x), doing what
  // it needs around it (fully sharded data parallel gathers block i's parameters). Empty: none.
  using BlockRunner = std::function<at::Tensor(size_t, const BlockFn&, const at::Tensor&)>;
  void set_block_runner(BlockRunner runner) { block_runner_ = std::move(runner); }
  // Applied to the word embeddings' output before the model uses it (a forward hook on
  // transformers' get_input_embeddings(), as NEFTune's). Empty: none.
  using EmbeddingHook = std::function<at::Tensor(const at::Tensor&)>;
  void set_input_embedding_hook(EmbeddingHook hook) { embedding_hook_ = std::move(hook); }

 protected:
  // Whether blocks run through checkpointed() now: asked for, and training.
  bool checkpointing() const { return gradient_checkpointing_ && is_training(); }
  // Block i's forward as the models run it: recomputed in backward when checkpointing, inside
  // the block runner when one is set.
  at::Tensor run_block(size_t i, const BlockFn& fn, const at::Tensor& x);
  // The word embeddings' output `e` through the input embedding hook, when one is set.
  at::Tensor input_embeddings(const at::Tensor& e) const { return embedding_hook_ ? embedding_hook_(e) : e; }

 private:
  bool gradient_checkpointing_ = false;
  BlockRunner block_runner_;
  EmbeddingHook embedding_hook_;
};

}  // namespace hftrain
