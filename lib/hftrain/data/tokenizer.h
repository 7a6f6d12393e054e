// Tokenizers: text -> token ids, and the HF tokenizer.json that describes them.
#pragma once

#include "hftrain/core/registry.h"

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace hftrain {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::vector<int64_t> encode(std::string_view text) const = 0;
  virtual std::string decode(const std::vector<int64_t>& ids) const = 0;
  virtual int64_t vocab_size() const = 0;
  // HF tokenizer.json; transformers' PreTrainedTokenizerFast loads it and encodes alike.
  virtual nlohmann::json to_hf_json() const = 0;
};

// One token per byte: id = byte value, vocab 256. Its tokenizer.json is a byte-level BPE
// with no merges whose vocabulary maps GPT-2's byte-to-unicode character of byte b to b.
class ByteTokenizer : public Tokenizer {
 public:
  std::vector<int64_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int64_t>& ids) const override;
  int64_t vocab_size() const override { return 256; }
  nlohmann::json to_hf_json() const override;
};

using TokenizerRegistry = Registry<Tokenizer>;
TokenizerRegistry& tokenizer_registry();  // data.tokenizer name -> tokenizer

}  // namespace hftrain
