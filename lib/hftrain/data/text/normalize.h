// Normalizers of HF tokenizer.json, applied to the text between added tokens before it is
// pre-tokenized (BertNormalizer, Lowercase, NFC/NFD/NFKC/NFKD, StripAccents, Replace,
// Prepend, Sequence).
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace hftrain {

class Normalizer {
 public:
  Normalizer(const nlohmann::json& spec, const std::string& where);  // spec null: identity
  Normalizer() = default;
  bool identity() const { return steps_.empty(); }
  std::string apply(std::string_view text) const;

  struct Step {
    enum Kind { kBertClean, kBertChinese, kStripAccents, kLowercase, kNFC, kNFD, kNFKC, kNFKD, kReplace, kPrepend };
    Kind kind;
    std::string a, b;  // Replace: pattern, content; Prepend: the prefix
  };

 private:
  std::vector<Step> steps_;
};

}  // namespace hftrain
