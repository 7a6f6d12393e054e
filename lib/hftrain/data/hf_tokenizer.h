// An HF tokenizer.json run as transformers' fast tokenizers run it: the added tokens that are
// not normalized split out of the raw text; each segment between them normalized, the
// normalized added tokens split out of that; then pre-tokenizer -> subword model per
// segment, then the post-processor's special tokens. Decoding runs the decoder's steps. GPT-2's vocab.json + merges.txt and BERT's vocab.txt are
// turned into the tokenizer.json that transformers' converters would write for them.
#pragma once

#include "hftrain/data/text/decoder.h"
#include "hftrain/data/text/normalize.h"
#include "hftrain/data/text/pretokenize.h"
#include "hftrain/data/text/subword.h"
#include "hftrain/data/tokenizer.h"

#include <nlohmann/json.hpp>

namespace hftrain {

struct AddedToken {
  std::string content;
  int32_t id;
  bool lstrip, rstrip, single_word, normalized, special;
};

// Strings matched leftmost-longest over a byte trie, as HF's Aho-Corasick set of added tokens.
class AddedTokenSet {
 public:
  void add(std::string_view pattern, size_t index);
  bool empty() const { return values_.size() <= 1; }
  bool may_start(unsigned char byte) const { return first_[byte]; }
  // The longest pattern at s[i]: {index + 1, length}, or {0, 0}.
  std::pair<size_t, size_t> longest_at(std::string_view s, size_t i) const;

 private:
  std::unordered_map<uint64_t, int32_t> edges_;  // (node << 8 | byte) -> node
  std::vector<size_t> values_{0};                // node -> index + 1, or 0
  bool first_[256] = {};
};

class HfTokenizer : public Tokenizer {
 public:
  // tokenizer: tokenizer.json's content; config: tokenizer_config.json's (or null); where:
  // the file, for errors.
  HfTokenizer(nlohmann::json tokenizer, nlohmann::json config, std::string where);

  void encode_to(std::string_view text, std::vector<int32_t>& out, bool add_special_tokens) const override;
  std::string decode(const std::vector<int64_t>& ids) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(id_to_token_.size()); }
  std::optional<int64_t> special_token_id(std::string_view role) const override;
  int64_t num_special_tokens_after() const override { return static_cast<int64_t>(suffix_.size()); }
  nlohmann::json to_hf_json() const override { return json_; }
  nlohmann::json hf_config() const override { return config_; }

 private:
  // Calls segment(begin, end) for the text between the tokens of `set` in `text`, and
  // token(id) for each token, in order (HF's find_matches with single_word, lstrip, rstrip).
  template <typename Segment, typename Token>
  void split_added(const AddedTokenSet& set, std::string_view text, Segment segment, Token token) const;
  void encode_segment(std::string_view text, bool at_start, std::vector<int32_t>& out) const;

  nlohmann::json json_, config_;
  std::string where_;
  Normalizer normalizer_;
  PreTokenizer pre_;
  std::unique_ptr<SubwordModel> model_;
  std::vector<AddedToken> added_;
  AddedTokenSet raw_added_, normalized_added_;  // matched before / after normalization
  std::vector<int32_t> prefix_, suffix_;       // the post-processor's tokens around a text
  Decoder decoder_;
  bool clean_up_spaces_ = false;  // tokenizer_config.json's clean_up_tokenization_spaces
  std::vector<std::string> id_to_token_;
  uint64_t serial_;  // keys the per-thread word cache
};

// tokenizer.json content for GPT-2's vocab.json + merges.txt pair.
nlohmann::json hf_tokenizer_json_from_bpe_files(const std::string& vocab_json, const std::string& merges_txt);
// tokenizer.json content for a BERT vocab.txt (one token per line, the id is the line).
nlohmann::json hf_tokenizer_json_from_wordpiece_vocab(const std::string& vocab_txt, bool lowercase);

}  // namespace hftrain
