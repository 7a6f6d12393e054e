// Pre-tokenizers of HF tokenizer.json: text -> the pieces the subword model encodes one
// by one. The regexes of GPT-2 and Llama 3 run as hand-written scanners that make the
// regex engine's choices (alternatives in order, greedy runs, the (?!\S) backtrack).
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace hftrain {

enum class SplitRule {
  kGpt2Regex,     // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  kLlama3Regex,   // (?i:'s|...)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|...
  kBert,          // whitespace removed, each punctuation character its own piece
  kWhitespace,    // \w+|[^\w\s]+
  kWhitespaceSplit,
};

class PreTokenizer {
 public:
  // `spec`: the tokenizer.json "pre_tokenizer" value (null: the whole text is one piece).
  // `where` names the file for errors.
  PreTokenizer(const nlohmann::json& spec, const std::string& where);
  PreTokenizer() = default;

  // Appends the pieces of `text` (views into it) to `out`.
  void split(std::string_view text, std::vector<std::string_view>& out) const;
  bool byte_level() const { return byte_level_; }          // a ByteLevel step is present
  bool add_prefix_space() const { return add_prefix_space_; }  // ByteLevel's add_prefix_space

 private:
  std::vector<SplitRule> rules_;  // applied in order, each to every piece of the one before
  bool byte_level_ = false, add_prefix_space_ = false;
};

// End (byte offset) of the piece that starts at byte i of s under `rule`.
size_t pretokenize_match(SplitRule rule, std::string_view s, size_t i);

}  // namespace hftrain
