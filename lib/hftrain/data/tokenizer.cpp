#include "hftrain/data/tokenizer.h"

#include "hftrain/data/text/subword.h"

#include <nlohmann/json.hpp>

namespace hftrain {

TokenizerRegistry& tokenizer_registry() {
  static TokenizerRegistry r("tokenizer");
  return r;
}

std::vector<int64_t> Tokenizer::encode(std::string_view text) const {
  std::vector<int32_t> ids;
  encode_to(text, ids);
  return {ids.begin(), ids.end()};
}

nlohmann::json Tokenizer::hf_config() const { return nlohmann::json::object(); }

void ByteTokenizer::encode_to(std::string_view text, std::vector<int32_t>& out, bool) const {
  out.reserve(out.size() + text.size());
  for (char c : text) out.push_back(static_cast<unsigned char>(c));
}

std::string ByteTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string out;
  out.reserve(ids.size());
  for (int64_t id : ids) out.push_back(static_cast<char>(id & 0xff));
  return out;
}


nlohmann::json ByteTokenizer::to_hf_json() const {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_level_char(static_cast<uint8_t>(b))] = b;
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
