// Tokenizers: text -> token ids, and the HF tokenizer.json that describes them.
#pragma once

#include "hftrain/core/registry.h"

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hftrain {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Appends the ids of `text` to `out`. add_special_tokens: the post-processor's tokens
  // ([CLS] ... [SEP], a BOS), which transformers' tokenizer(text) adds by default.
  virtual void encode_to(std::string_view text, std::vector<int32_t>& out, bool add_special_tokens = true) const = 0;
  std::vector<int64_t> encode(std::string_view text) const;
  virtual std::string decode(const std::vector<int64_t>& ids) const = 0;
  virtual int64_t vocab_size() const = 0;
  // The id of a special token by its tokenizer_config.json role ("pad_token", "eos_token",
  // "mask_token", ...), when the tokenizer has one.
  virtual std::optional<int64_t> special_token_id(std::string_view role) const { return std::nullopt; }
  // How many post-processor tokens follow a text ([SEP], EOS): truncation keeps them.
  virtual int64_t num_special_tokens_after() const { return 0; }
  // HF tokenizer.json; transformers' PreTrainedTokenizerFast loads it and encodes alike.
  virtual nlohmann::json to_hf_json() const = 0;
  // HF tokenizer_config.json keys beyond tokenizer_class (special tokens, casing).
  virtual nlohmann::json hf_config() const;
};

// One token per byte: id = byte value, vocab 256. Its tokenizer.json is a byte-level BPE
// with no merges whose vocabulary maps GPT-2's byte-to-unicode character of byte b to b.
class ByteTokenizer : public Tokenizer {
 public:
  void encode_to(std::string_view text, std::vector<int32_t>& out, bool add_special_tokens) const override;
  std::string decode(const std::vector<int64_t>& ids) const override;
  int64_t vocab_size() const override { return 256; }
  nlohmann::json to_hf_json() const override;
  nlohmann::json hf_config() const override;  // no special tokens (GPT2Tokenizer would add <|endoftext|>)
};

using TokenizerRegistry = Registry<Tokenizer>;
TokenizerRegistry& tokenizer_registry();  // data.tokenizer name -> tokenizer

// What transformers' save_pretrained writes for a tokenizer, into `dir`: tokenizer.json;
// tokenizer_config.json with the tokenizer's class, its special tokens and model_max_length;
// and the slow tokenizer's files where there is one, so that AutoTokenizer loads with
// use_fast=False (or without the tokenizers package) too: vocab.json + merges.txt for a
// byte-level BPE (GPT2Tokenizer), vocab.txt for WordPiece (BertTokenizer). A class the
// tokenizer came with (its tokenizer_config.json's) is kept.
void tokenizer_save_pretrained(const Tokenizer& tok, const std::string& dir, int64_t model_max_length);

// data.tokenizer: a registered name ("byte"), or a path to an HF tokenizer: a tokenizer.json,
// a directory holding one, a directory with vocab.json + merges.txt (GPT-2) or vocab.txt
// (BERT), or such a vocab.txt itself.
// `key` names the option it came from in errors.
std::shared_ptr<const Tokenizer> tokenizer_load(const std::string& name_or_path, const std::string& key = "data.tokenizer");

}  // namespace hftrain
