// Normalizers of HF tokenizer.json, applied to the text between added tokens before it is
// pre-tokenized (BertNormalizer, Lowercase, NFC/NFD/NFKC/NFKD, StripAccents, Replace with a
// string or a regex, Prepend, Strip, Precompiled: SentencePiece's compiled character map,
// applied per grapheme as HF applies it, and Sequence).
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace hftrain {

class Regex;

// SentencePiece's precompiled_charsmap: a darts double-array trie over UTF-8 sequences whose
// values index NUL-terminated replacements.
class CharsMap {
 public:
  CharsMap(std::string_view blob, const std::string& where);
  // The replacement of the shortest prefix of `chunk` the map holds, or null.
  const char* transform(std::string_view chunk) const;
  std::string apply(std::string_view text) const;

 private:
  std::vector<uint32_t> units_;
  std::string normalized_;
};

class Normalizer {
 public:
  Normalizer(const nlohmann::json& spec, const std::string& where);  // spec null: identity
  Normalizer() = default;
  bool identity() const { return steps_.empty(); }
  std::string apply(std::string_view text) const;

  struct Step {
    enum Kind {
      kBertClean, kBertChinese, kStripAccents, kLowercase, kNFC, kNFD, kNFKC, kNFKD, kReplace, kPrepend, kStrip,
      kPrecompiled
    };
    Kind kind;
    std::string a, b;  // Replace: pattern, content; Prepend: the prefix
    bool left = false, right = false;       // Strip
    std::shared_ptr<const Regex> regex;     // Replace with a Regex pattern
    std::shared_ptr<const CharsMap> chars;  // Precompiled
  };

 private:
  std::vector<Step> steps_;
};

}  // namespace hftrain
