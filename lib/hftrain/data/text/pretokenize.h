// Pre-tokenizers of HF tokenizer.json: text -> the pieces the subword model encodes one by
// one, step by step as HF's PreTokenizedString splits them: Split (any pattern, through
// Oniguruma, every behaviour, invert), ByteLevel, Metaspace, Digits, Punctuation,
// Whitespace, WhitespaceSplit, BertPreTokenizer, CharDelimiterSplit and Sequence.
// GPT-2's and Llama 3's regexes also run as hand-written scanners that make the regex
// engine's choices (alternatives in order, greedy runs, the (?!\S) backtrack); the parity
// test proves they cut where Oniguruma cuts.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace hftrain {

enum class SplitRule {
  kGpt2Regex,     // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  kLlama3Regex,   // (?i:'s|...)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|...
  kWhitespace,    // \w+|[^\w\s]+
};

// What becomes of the matches when a piece is split (HF's SplitDelimiterBehavior).
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// A piece on its way to the subword model: a view into the text being encoded or into the
// scratch strings of the call; at_start: it begins where the original text begins (HF's
// offsets_original().0 == 0, which Metaspace's prepend_scheme "first" reads).
struct Piece {
  std::string_view text;
  bool at_start;
};

// Strings that pre-tokenizers rewrote (Metaspace's replacement, a prefix space), alive for one
// encode call; views into them stay valid as more are added.
class PieceStore {
 public:
  std::string_view keep(std::string s);
  void clear() { used_ = 0; }

 private:
  std::deque<std::string> strings_;
  size_t used_ = 0;
};

class PreTokenizer {
 public:
  // `spec`: the tokenizer.json "pre_tokenizer" value (null: the whole text is one piece).
  // `where` names the file for errors.
  PreTokenizer(const nlohmann::json& spec, const std::string& where);
  PreTokenizer();
  ~PreTokenizer();
  PreTokenizer(PreTokenizer&&) noexcept;
  PreTokenizer& operator=(PreTokenizer&&) noexcept;

  // Appends the pieces of `text` to `out`. at_start: `text` begins the original text.
  void split(std::string_view text, bool at_start, std::vector<std::string_view>& out, PieceStore& store) const;
  bool byte_level() const { return byte_level_; }  // a ByteLevel step is present

  struct Step;

 private:
  std::vector<std::shared_ptr<const Step>> steps_;
  bool byte_level_ = false;
};

// Whether pre-tokenizers built from now on use the hand-written scanners (the default) or run
// the regexes they stand for through Oniguruma (`hftrain tokenize --regex-only`, to check them).
void set_pretokenizer_scanners(bool on);

// End (byte offset) of the piece that starts at byte i of s under `rule`.
size_t pretokenize_match(SplitRule rule, std::string_view s, size_t i);

// The regex a scanner stands for.
std::string_view split_rule_pattern(SplitRule rule);

}  // namespace hftrain
