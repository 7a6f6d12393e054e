#include "hftrain/data/tokenizer.h"

#include <nlohmann/json.hpp>

namespace hftrain {

TokenizerRegistry& tokenizer_registry() {
  static TokenizerRegistry r("tokenizer");
  return r;
}

std::vector<int64_t> ByteTokenizer::encode(std::string_view text) const {
  std::vector<int64_t> ids(text.size());
  for (size_t i = 0; i < text.size(); ++i) ids[i] = static_cast<unsigned char>(text[i]);
  return ids;
}

std::string ByteTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string out;
  out.reserve(ids.size());
  for (int64_t id : ids) out.push_back(static_cast<char>(id & 0xff));
  return out;
}

namespace {
// GPT-2's bytes_to_unicode: printable bytes map to themselves, the others to U+0100 + n.
std::string byte_char(int b) {
  static const std::vector<int> table = [] {
    std::vector<int> cp(256, -1);
    for (int i = '!'; i <= '~'; ++i) cp[i] = i;
    for (int i = 0xA1; i <= 0xAC; ++i) cp[i] = i;
    for (int i = 0xAE; i <= 0xFF; ++i) cp[i] = i;
    int n = 0;
    for (int i = 0; i < 256; ++i)
      if (cp[i] < 0) cp[i] = 256 + n++;
    return cp;
  }();
  int c = table[b];
  std::string s;  // UTF-8 of code point c (< 0x800)
  if (c < 0x80) {
    s.push_back(static_cast<char>(c));
  } else {
    s.push_back(static_cast<char>(0xC0 | (c >> 6)));
    s.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
  return s;
}
}  // namespace

nlohmann::json ByteTokenizer::to_hf_json() const {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_char(b)] = b;
  nlohmann::json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false},
                               {"use_regex", false}};
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", nlohmann::json::array()},
          {"normalizer", nullptr},
          {"pre_tokenizer", byte_level},
          {"post_processor", nullptr},
          {"decoder", byte_level},
          {"model",
           {{"type", "BPE"},
            {"dropout", nullptr},
            {"unk_token", nullptr},
            {"continuing_subword_prefix", nullptr},
            {"end_of_word_suffix", nullptr},
            {"fuse_unk", false},
            {"byte_fallback", false},
            {"ignore_merges", false},
            {"vocab", vocab},
            {"merges", nlohmann::json::array()}}}};
}

}  // namespace hftrain
