// Pre-tokenizers, the Unigram model and decoders, each against the expected values of HF
// tokenizers' own unit tests (tokenizers/src/pre_tokenizers/split.rs, metaspace.rs,
// models/unigram/model.rs, decoders/*.rs), so that a step cuts, scores and joins as HF's does.
#include "hftrain/data/hf_tokenizer.h"
#include "hftrain/data/text/decoder.h"
#include "hftrain/data/text/pretokenize.h"
#include "hftrain/data/text/regex.h"
#include "test_util.h"

#include <catch2/catch.hpp>

using nlohmann::json;
using Pieces = std::vector<std::string>;

namespace {

Pieces pieces_of(const json& spec, const std::string& text) {
  hftrain::PreTokenizer pre(spec, "t.json");
  hftrain::PieceStore store;
  std::vector<std::string_view> out;
  pre.split(text, true, out, store);
  return Pieces(out.begin(), out.end());
}

json split(const json& pattern, const char* behavior, bool invert = false) {
  return {{"type", "Split"}, {"pattern", pattern}, {"behavior", behavior}, {"invert", invert}};
}

// A Unigram tokenizer.json over `pieces` (the id is the position), with no normalizer or
// pre-tokenizer: the model sees the text whole.
hftrain::HfTokenizer unigram(const std::vector<std::pair<std::string, double>>& pieces, bool byte_fallback = false) {
  json vocab = json::array();
  for (const auto& [p, s] : pieces) vocab.push_back({p, s});
  return hftrain::HfTokenizer({{"model", {{"type", "Unigram"}, {"unk_id", 0}, {"vocab", vocab},
                                          {"byte_fallback", byte_fallback}}}},
                              nullptr, "t.json");
}

std::string decoded(const json& spec, const Pieces& tokens) { return hftrain::Decoder(spec, "t.json").decode(tokens); }

}  // namespace

TEST_CASE("Split cuts with each of HF's five behaviours", "[unit][data]") {
  // split.rs `basic`: the whitespace regex, inverted.
  const json words = {{"Regex", R"(\w+|[^\w\s]+)"}};
  const std::string text = "How are you doing?";
  CHECK(pieces_of(split(words, "Removed", true), text) == Pieces{"How", "are", "you", "doing", "?"});
  CHECK(pieces_of(split(words, "Isolated", true), text) == Pieces{"How", " ", "are", " ", "you", " ", "doing", "?"});
  CHECK(pieces_of(split(words, "MergedWithPrevious", true), text) == Pieces{"How ", "are ", "you ", "doing", "?"});
  CHECK(pieces_of(split(words, "MergedWithNext", true), text) == Pieces{"How", " are", " you", " doing", "?"});
  CHECK(pieces_of(split(words, "Contiguous", true), text) == Pieces{"How", " ", "are", " ", "you", " ", "doing?"});
  // split.rs `regex_string` and `invert`: a regex and a string cut alike; invert swaps the roles.
  CHECK(pieces_of(split({{"Regex", R"(\s+)"}}, "Removed"), "Hey, man!") ==
        pieces_of(split({{"String", " "}}, "Removed"), "Hey, man!"));
  CHECK(pieces_of(split({{"String", "Hello"}}, "Removed", true), "Hello Hello Hello") ==
        Pieces{"Hello", "Hello", "Hello"});
  // Gemma 3's pre-tokenizer: its normalizer has turned spaces into U+2581 already.
  CHECK(pieces_of(split({{"String", " "}}, "MergedWithPrevious"), "Hey  you ") == Pieces{"Hey ", " ", "you "});
}

TEST_CASE("Metaspace replaces spaces, prepends by its scheme and splits before each replacement", "[unit][data]") {
  const json always = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "always"}, {"split", true}};
  CHECK(pieces_of(always, "Hey friend!") == Pieces{"\u2581Hey", "\u2581friend!"});
  CHECK(pieces_of(always, "Hey   friend!") == Pieces{"\u2581Hey", "\u2581", "\u2581", "\u2581friend!"});
  // metaspace.rs `non_legacy_meta_space`: "first" prepends only where the original text
  // begins; pieces after an isolated <s> get nothing.
  const json first = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "first"}, {"split", false}};
  const json s_tag = split({{"Regex", "(<s>)"}}, "Isolated");
  const json seq = {{"type", "Sequence"}, {"pretokenizers", {s_tag, first}}};
  CHECK(pieces_of(seq, "Hey my friend <s>how\u2581are you") ==
        Pieces{"\u2581Hey\u2581my\u2581friend\u2581", "<s>", "how\u2581are\u2581you"});
  CHECK(pieces_of({{"type", "Sequence"}, {"pretokenizers", {s_tag, first, always}}},
                  "Hey my friend <s>how\u2581are you") ==
        Pieces{"\u2581Hey", "\u2581my", "\u2581friend", "\u2581", "\u2581<s>", "\u2581how", "\u2581are", "\u2581you"});
  CHECK(pieces_of(seq, " Hey <s>how <s>are <s> you") ==
        Pieces{"\u2581Hey\u2581", "<s>", "how\u2581", "<s>", "are\u2581", "<s>", "\u2581you"});
  // A file from before prepend_scheme: add_prefix_space false means never.
  CHECK(pieces_of({{"type", "Metaspace"}, {"replacement", "\u2581"}, {"add_prefix_space", false}}, "a b") ==
        Pieces{"a", "\u2581b"});
}

TEST_CASE("Digits, Punctuation and ByteLevel without its regex cut as HF's do", "[unit][data]") {
  // digits.rs: "Hey 123 friend!" individually and contiguously.
  CHECK(pieces_of({{"type", "Digits"}, {"individual_digits", true}}, "Hey 123 friend!") ==
        Pieces{"Hey ", "1", "2", "3", " friend!"});
  CHECK(pieces_of({{"type", "Digits"}, {"individual_digits", false}}, "Hey 123 friend!") ==
        Pieces{"Hey ", "123", " friend!"});
  // punctuation.rs: "Hey friend!     How are you?!?"
  CHECK(pieces_of({{"type", "Punctuation"}}, "Hey friend!     How are you?!?") ==
        Pieces{"Hey friend", "!", "     How are you", "?", "!", "?"});
  // ByteLevel with add_prefix_space and no regex: one piece with the space.
  CHECK(pieces_of({{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", false}}, "Hello world") ==
        Pieces{" Hello world"});
}

TEST_CASE("Oniguruma skips an empty match where the last match ended, as onig's find_iter", "[unit][data]") {
  std::vector<hftrain::Span> m;
  hftrain::Regex("a*", "t").find_all("baaab", m);
  // onig: (0,0) (1,4) then the empty match at 4 is skipped, (5,5).
  REQUIRE(m.size() == 3);
  CHECK((m[0].begin == 0 && m[0].end == 0));
  CHECK((m[1].begin == 1 && m[1].end == 4));
  CHECK((m[2].begin == 5 && m[2].end == 5));
  // \p{L} and the (?!\S) look-ahead across the whole text, as in GPT-2's pattern.
  m.clear();
  hftrain::Regex(R"(\s+(?!\S)|\s+)", "t").find_all("a   b", m);
  REQUIRE(m.size() == 2);
  CHECK((m[0].begin == 1 && m[0].end == 3));
  CHECK((m[1].begin == 3 && m[1].end == 4));
}

TEST_CASE("Unigram takes the best-scoring segmentation and fuses unknowns", "[unit][data]") {
  // model.rs `test_encode` and `test_encode2`.
  CHECK(unigram({{"<unk>", 0}, {"a", 0}, {"b", 0}, {"c", 0}, {"d", 0}, {"cd", 1}, {"ab", 2}, {"abc", 5}, {"abcd", 10}})
            .encode("abcd") == std::vector<int64_t>{8});
  auto m = unigram({{"<unk>", 0}, {"ab", 0}, {"cd", -0.1}, {"abc", -0.2}, {"a", -0.3}, {"b", -0.4}, {"c", -0.5},
                    {"ABC", -0.5}, {"abcdabcd", 20}, {"q", 20.5}, {"r", 20.5}, {"qr", -0.5}});
  CHECK(m.encode("abc") == std::vector<int64_t>{3});
  CHECK(m.encode("AB") == std::vector<int64_t>{0});  // "A" and "B" unknown: one fused unk
  CHECK(m.encode("abcd") == std::vector<int64_t>{1, 2});
  CHECK(m.encode("abcc") == std::vector<int64_t>{3, 6});
  CHECK(m.encode("xabcabaabcdd") == std::vector<int64_t>{0, 3, 1, 4, 1, 2, 0});  // x abc ab a ab cd d
  CHECK(m.encode("xyz\xE6\x9D\xB1\xE4\xBA\xAC") == std::vector<int64_t>{0});      // xyz東京, fused
  CHECK(m.encode("abABCcd") == std::vector<int64_t>{1, 7, 2});
  CHECK(m.encode("ababcdabcdcd") == std::vector<int64_t>{1, 8, 2});
  CHECK(m.encode("abqrcd") == std::vector<int64_t>{1, 9, 10, 2});
  // `test_unigram_bytefallback`: é has no piece but its bytes do; "?é" has a byte without one.
  auto b = unigram({{"<unk>", 0}, {"<0xC3>", -0.01}, {"<0xA9>", -0.03}}, true);
  CHECK(b.encode("\xC3\xA9") == std::vector<int64_t>{1, 2});
  CHECK(b.encode("?\xC3\xA9") == std::vector<int64_t>{0});
}

TEST_CASE("decoders rewrite the token list as HF's decode_chain", "[unit][data]") {
  // byte_fallback.rs: bytes gather into characters; a byte run that is not UTF-8 is one U+FFFD per byte.
  const json fallback = {{"type", "ByteFallback"}};
  CHECK(decoded(fallback, {"<0x61>"}) == "a");
  CHECK(decoded(fallback, {"<0xE5>", "<0x8f>", "<0xab>", "a"}) == "\xE5\x8F\xAB" "a");
  CHECK(decoded(fallback, {"<0xE5>", "<0xE5>"}) == "\xEF\xBF\xBD\xEF\xBF\xBD");
  // Llama 2's decoder: Replace U+2581 -> " ", ByteFallback, Fuse, Strip one leading space.
  const json llama2 = {{"type", "Sequence"},
                       {"decoders",
                        {{{"type", "Replace"}, {"pattern", {{"String", "\u2581"}}}, {"content", " "}},
                         {{"type", "ByteFallback"}},
                         {{"type", "Fuse"}},
                         {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
  CHECK(decoded(llama2, {"\u2581Hey", "\u2581fri", "end", "<0x21>"}) == "Hey friend!");
  // metaspace.rs `decode`: the first token's replacement vanishes when a prefix was prepended.
  const json meta = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "always"}};
  CHECK(decoded(meta, {"\u2581Hey", "\u2581friend!"}) == "Hey friend!");
  CHECK(decoded({{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "never"}},
                {"\u2581Hey", "\u2581friend!"}) == " Hey friend!");
  // wordpiece.rs: ## joins, others get a space, then the cleanup.
  CHECK(decoded({{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}}, {"##uelo", "Ara", "##új", "##o", "No", "##guera"}) ==
        "##uelo Araújo Noguera");
  // bpe.rs: the suffix ends a word.
  CHECK(decoded({{"type", "BPEDecoder"}, {"suffix", "</w>"}}, {"My</w>", "na", "me</w>"}) == "My name");
  // With no decoder the tokens are joined with spaces.
  CHECK(hftrain::Decoder().decode({"a", "b"}) == "a b");
}

TEST_CASE("normalized added tokens are found in normalized text, the others in the raw text", "[unit][data]") {
  json vocab = json::array({json::array({"<unk>", 0.0}), json::array({"a", -1.0}), json::array({"b", -1.0})});
  json j = {{"normalizer", {{"type", "Lowercase"}}},
            {"model", {{"type", "Unigram"}, {"unk_id", 0}, {"vocab", vocab}}},
            {"added_tokens",
             {{{"id", 3}, {"content", "<X>"}, {"normalized", false}, {"special", true}},
              {{"id", 4}, {"content", "HEY"}, {"normalized", true}, {"special", false}},
              {{"id", 5}, {"content", "ab"}, {"normalized", false}, {"special", false}, {"single_word", true}}}}};
  hftrain::HfTokenizer t(j, nullptr, "t.json");
  // "<X>" is raw: lowercase text would not hold it. "HEY" is looked for as "hey", so "Hey" finds it.
  CHECK(t.encode("a<X>Hey") == std::vector<int64_t>{1, 3, 4});
  // single_word: "ab" inside "xab" is no token; on its own it is.
  CHECK(t.encode("ab") == std::vector<int64_t>{5});
  CHECK(t.encode("bab") == std::vector<int64_t>{2, 1, 2});
  CHECK(t.decode({1, 3, 4}) == "a <X> HEY");  // no decoder: joined with spaces
}
