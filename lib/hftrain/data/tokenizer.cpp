#include "hftrain/data/tokenizer.h"

#include "hftrain/data/text/subword.h"
#include "hftrain/io/atomic_file.h"
#include "hftrain/io/json_file.h"

#include <nlohmann/json.hpp>

#include <algorithm>

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


nlohmann::json ByteTokenizer::hf_config() const {
  return {{"bos_token", nullptr}, {"eos_token", nullptr}, {"unk_token", nullptr}, {"add_prefix_space", false}};
}

namespace {

bool has_byte_level(const nlohmann::json& pre) {
  if (!pre.is_object()) return false;
  if (pre.value("type", "") == "ByteLevel") return true;
  if (pre.contains("pretokenizers"))
    for (const auto& p : pre["pretokenizers"])
      if (has_byte_level(p)) return true;
  return false;
}

}  // namespace

void tokenizer_save_pretrained(const Tokenizer& tok, const std::string& dir, int64_t model_max_length) {
  using json = nlohmann::json;
  const json t = tok.to_hf_json();
  json config = tok.hf_config();
  const json& model = t.at("model");
  const std::string type = model.value("type", "");
  std::string slow_class;
  if (type == "BPE" && has_byte_level(t.value("pre_tokenizer", json()))) {
    std::string merges = "#version: 0.2\n";
    for (const json& m : model.value("merges", json::array()))
      merges += (m.is_array() ? m[0].get<std::string>() + " " + m[1].get<std::string>() : m.get<std::string>()) + "\n";
    io::write_json_file(dir + "/vocab.json", model.at("vocab"));
    io::write_file_atomic(dir + "/merges.txt", merges);
    slow_class = "GPT2Tokenizer";
  } else if (type == "WordPiece") {
    std::vector<std::pair<int64_t, std::string>> by_id;
    for (const auto& [token, id] : model.at("vocab").items()) by_id.emplace_back(id.get<int64_t>(), token);
    std::sort(by_id.begin(), by_id.end());
    std::string lines;
    for (const auto& [id, token] : by_id) lines += token + "\n";
    io::write_file_atomic(dir + "/vocab.txt", lines);
    slow_class = "BertTokenizer";
  }
  if (!config.contains("tokenizer_class"))
    config["tokenizer_class"] = slow_class.empty() ? "PreTrainedTokenizerFast" : slow_class;
  config["model_max_length"] = model_max_length;
  if (!config.contains("clean_up_tokenization_spaces")) config["clean_up_tokenization_spaces"] = false;
  io::write_json_file(dir + "/tokenizer.json", t);
  io::write_json_file(dir + "/tokenizer_config.json", config);
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
