// Causal-LM datasets: the token stream cut into block_size windows, as transformers'
// run_clm example groups texts (the remainder shorter than a block is dropped).
#pragma once

#include "hftrain/config/config.h"
#include "hftrain/data/tokenizer.h"

#include <ATen/core/Tensor.h>

#include <optional>

namespace hftrain {

class TokenWindows {
 public:
  // tokens (N): int64, or the uint8 / int16 / int32 view of an unsigned token file
  // (`unsigned_bits` 16 or 32 says how to read the signed types back).
  TokenWindows(const at::Tensor& tokens, int64_t block_size, int unsigned_bits = 0);
  int64_t size() const { return windows_.size(0); }
  int64_t block_size() const { return windows_.size(1); }
  int64_t num_tokens() const { return windows_.numel(); }
  at::Tensor gather(const at::Tensor& indices) const;  // (B, block_size) int64

 private:
  at::Tensor windows_;  // (num_windows, block_size), stored dtype
  int unsigned_bits_;
};

struct Datasets {
  std::optional<TokenWindows> train, eval;
};

// Reads (or generates) and tokenizes train and eval data. With no eval dataset, the first
// validation_split_percentage % of the train tokens become the eval set (run_clm's split).
Datasets datasets_load(const DataOptions& opts, const Tokenizer& tok);

// The built-in default data: a pseudo-language (a syllable lexicon and a small grammar)
// that is deterministic for a seed on every platform and learnable by a tiny model.
std::string generate_text(int64_t num_bytes, uint64_t seed);

}  // namespace hftrain
