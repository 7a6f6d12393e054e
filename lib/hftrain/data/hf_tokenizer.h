// An HF tokenizer.json run as transformers' fast tokenizers run it: added tokens split out
// of the raw text, then normalizer -> pre-tokenizer -> subword model per segment, then the
// post-processor's special tokens. GPT-2's vocab.json + merges.txt and BERT's vocab.txt are
// turned into the tokenizer.json that transformers' converters would write for them.
#pragma once

#include "hftrain/data/text/normalize.h"
#include "hftrain/data/text/pretokenize.h"
#include "hftrain/data/text/subword.h"
#include "hftrain/data/tokenizer.h"

#include <nlohmann/json.hpp>

namespace hftrain {

struct AddedToken {
  std::string content;
  int32_t id;
  bool lstrip, rstrip, single_word;
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
  enum class Decoder { kByteLevel, kWordPiece, kMetaspace, kJoinSpace };
  void encode_segment(std::string_view text, std::vector<int32_t>& out) const;
  size_t added_match(std::string_view text, size_t i) const;  // index into added_ + 1, or 0

  nlohmann::json json_, config_;
  std::string where_;
  Normalizer normalizer_;
  PreTokenizer pre_;
  std::unique_ptr<SubwordModel> model_;
  std::vector<AddedToken> added_;
  std::vector<std::vector<size_t>> added_by_byte_;  // first byte -> added_ indices, longest first
  std::vector<int32_t> prefix_, suffix_;           // the post-processor's tokens around a text
  Decoder decoder_ = Decoder::kJoinSpace;
  std::string wordpiece_prefix_ = "##";
  bool wordpiece_cleanup_ = true;
  std::vector<std::string> id_to_token_;
  std::vector<bool> is_added_;
  uint64_t serial_;  // keys the per-thread word cache
};

// tokenizer.json content for GPT-2's vocab.json + merges.txt pair.
nlohmann::json hf_tokenizer_json_from_bpe_files(const std::string& vocab_json, const std::string& merges_txt);
// tokenizer.json content for a BERT vocab.txt (one token per line, the id is the line).
nlohmann::json hf_tokenizer_json_from_wordpiece_vocab(const std::string& vocab_txt, bool lowercase);

}  // namespace hftrain
