// Subword models of HF tokenizer.json: BPE (byte-level as in GPT-2 and Llama 3, or over
// characters with byte fallback as in Llama 2 and Gemma), WordPiece (BERT), Unigram
// (SentencePiece's unigram: T5, ALBERT, XLM-R) and WordLevel. Each encodes one
// pre-tokenized piece.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace hftrain {

// GPT-2's bytes_to_unicode: the character (as UTF-8) that byte-level vocabularies use for
// byte b; printable bytes stand for themselves, the others map to U+0100 + n.
const std::string& byte_level_char(uint8_t b);
// The inverse over a whole token: false when a character is not one of the 256.
bool byte_level_decode(std::string_view token, std::string& bytes);

using Vocab = std::unordered_map<std::string, int32_t>;

class SubwordModel {
 public:
  virtual ~SubwordModel() = default;
  virtual void encode_word(std::string_view word, std::vector<int32_t>& out) const = 0;
  const std::vector<std::string>& tokens() const { return tokens_; }  // id -> token ("" if unused)
  std::optional<int32_t> token_id(const std::string& token) const;

 protected:
  void set_vocab(const Vocab& vocab);
  std::vector<std::string> tokens_;
  Vocab vocab_;
};

struct BpeOptions {
  bool byte_level = false;  // pieces are bytes; vocab keys are bytes_to_unicode strings
  bool ignore_merges = false;  // a piece that is a vocab entry is that token (Llama 3)
  std::string continuing_subword_prefix, end_of_word_suffix;
  std::optional<std::string> unk_token;
  bool fuse_unk = false, byte_fallback = false;
};

class Bpe : public SubwordModel {
 public:
  // merges: pairs of vocab tokens in priority order; `where` names the file for errors.
  Bpe(const Vocab& vocab, const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions opts,
      const std::string& where);
  void encode_word(std::string_view word, std::vector<int32_t>& out) const override;

 private:
  void unknown(std::string_view unit, std::vector<int32_t>& syms) const;
  void merge_long(std::vector<int32_t>& syms) const;  // HF's heap of candidate pairs
  BpeOptions opts_;
  Vocab pieces_;  // the vocab keyed by the bytes a token stands for
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges_;  // (left, right) -> (rank, merged)
  int32_t byte_id_[256];
  std::optional<int32_t> unk_id_;
};

class WordPiece;

// SentencePiece's unigram model as HF runs it: the segmentation of highest total score
// (Viterbi over every vocab piece that starts at each character; a character no piece covers
// is unk, scored the lowest score minus 10); adjacent unknowns fuse into one unk token, and
// with byte_fallback an unknown piece becomes its <0xXX> byte tokens.
class Unigram : public SubwordModel {
 public:
  Unigram(const std::vector<std::pair<std::string, double>>& pieces, std::optional<int32_t> unk_id, bool byte_fallback,
          const std::string& where);
  void encode_word(std::string_view word, std::vector<int32_t>& out) const override;

 private:
  // A byte trie over the pieces: edges (node << 8 | byte) -> node; node_id_[node] is the piece
  // id that ends there, or -1.
  int32_t child(int32_t node, unsigned char byte) const;
  std::unordered_map<uint64_t, int32_t> edges_;
  std::vector<int32_t> node_id_;
  std::vector<double> scores_;
  std::optional<int32_t> unk_id_;
  bool byte_fallback_;
  double unk_score_;
};

// A whole piece is one token, or unk.
class WordLevel : public SubwordModel {
 public:
  WordLevel(const Vocab& vocab, const std::string& unk_token, const std::string& where);
  void encode_word(std::string_view word, std::vector<int32_t>& out) const override;

 private:
  std::string unk_token_;
  std::optional<int32_t> unk_id_;
  std::string where_;
};

class WordPiece : public SubwordModel {
 public:
  WordPiece(const Vocab& vocab, const std::string& unk_token, std::string prefix, int max_chars,
            const std::string& where);
  void encode_word(std::string_view word, std::vector<int32_t>& out) const override;

 private:
  std::string prefix_;
  int max_chars_;
  int32_t unk_id_;
};

}  // namespace hftrain
