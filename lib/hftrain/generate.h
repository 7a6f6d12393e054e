// Text generation with a causal LM, as transformers' model.generate decodes: greedy, or
// sampling through temperature, top-k and top-p (HF's warpers, in that order), stopping at
// max_new_tokens or after an EOS token. With a KV cache the prompt runs once and each new
// token costs one position's forward; without one, every step reruns the whole sequence.
#pragma once

#include "hftrain/models/model.h"

#include <cstdint>
#include <optional>
#include <vector>

namespace hftrain {

struct GenerateOptions {
  int64_t max_new_tokens = 20;
  bool do_sample = false;  // false: greedy
  double temperature = 1.0;
  int64_t top_k = 50;   // 0: off (GenerationConfig's defaults)
  double top_p = 1.0;   // 1: off
  std::vector<int64_t> eos_token_ids;  // generation stops after any of them (kept in the output)
  uint64_t seed = 42;   // the sampling generator's
  bool use_cache = true;
};

// The new token ids after `prompt` (not the prompt). The model runs in eval mode without
// gradients; a prompt and its continuation must fit the model's positions.
std::vector<int64_t> generate(Model& model, const std::vector<int64_t>& prompt, const GenerateOptions& options);

// The logits of the next token after HF's warpers for `options` (temperature, top-k, top-p;
// removed tokens at -inf), a (V) float tensor.
at::Tensor warp_logits(const at::Tensor& logits, const GenerateOptions& options);

}  // namespace hftrain
