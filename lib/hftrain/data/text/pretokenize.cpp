#include "hftrain/data/text/pretokenize.h"

#include "hftrain/core/error.h"
#include "hftrain/data/text/unicode.h"

#include <nlohmann/json.hpp>

namespace hftrain {

namespace {

using unicode::decode;

constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr std::string_view kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

bool is_other_class(char32_t c) {  // [^\s\p{L}\p{N}]
  return !unicode::is_whitespace(c) && !unicode::is_letter(c) && !unicode::is_number(c);
}

template <typename Pred>
size_t run(std::string_view s, size_t i, Pred pred) {
  while (i < s.size()) {
    auto d = decode(s, i);
    if (!pred(d.cp)) break;
    i += d.len;
  }
  return i;
}

// 's 't 're 've 'm 'll 'd after the apostrophe at i; 0 when none matches.
size_t contraction(std::string_view s, size_t i, bool ignore_case) {
  auto lower = [&](size_t k) -> char {
    if (k >= s.size()) return 0;
    char c = s[k];
    return ignore_case && c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c;
  };
  char a = lower(i + 1), b = lower(i + 2);
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
  return 0;
}

// \s+(?!\S) then \s+, for the whitespace run at i: all of it when it ends the text, else all
// but its last character (which then leads the next piece), else the one character.
size_t whitespace_tail(std::string_view s, size_t i) {
  size_t last = i, k = i;
  while (k < s.size()) {
    auto d = decode(s, k);
    if (!unicode::is_whitespace(d.cp)) break;
    last = k;
    k += d.len;
  }
  if (k == s.size() || last == i) return k;
  return last;
}

size_t gpt2_match(std::string_view s, size_t i) {
  if (s[i] == '\'')
    if (size_t e = contraction(s, i, false)) return e;
  size_t j = s[i] == ' ' ? i + 1 : i;
  if (j < s.size()) {
    char32_t c = decode(s, j).cp;
    if (unicode::is_letter(c)) return run(s, j, unicode::is_letter);
    if (unicode::is_number(c)) return run(s, j, unicode::is_number);
    if (is_other_class(c)) return run(s, j, is_other_class);
  }
  return whitespace_tail(s, i);
}

size_t llama3_match(std::string_view s, size_t i) {
  if (s[i] == '\'')
    if (size_t e = contraction(s, i, true)) return e;
  auto d0 = decode(s, i);
  char32_t c0 = d0.cp;
  if (unicode::is_letter(c0)) return run(s, i, unicode::is_letter);
  if (c0 != '\r' && c0 != '\n' && !unicode::is_number(c0)) {
    size_t j = i + d0.len;
    if (j < s.size() && unicode::is_letter(decode(s, j).cp)) return run(s, j, unicode::is_letter);
  }
  if (unicode::is_number(c0)) {
    size_t j = i;
    for (int k = 0; k < 3 && j < s.size(); ++k) {
      auto d = decode(s, j);
      if (!unicode::is_number(d.cp)) break;
      j += d.len;
    }
    return j;
  }
  size_t j = c0 == ' ' ? i + 1 : i;
  if (j < s.size() && is_other_class(decode(s, j).cp)) {
    j = run(s, j, is_other_class);
    while (j < s.size() && (s[j] == '\r' || s[j] == '\n')) ++j;
    return j;
  }
  // \s*[\r\n]+: the whitespace run up to and including its last line break.
  size_t k = i, after_break = 0;
  while (k < s.size()) {
    auto d = decode(s, k);
    if (!unicode::is_whitespace(d.cp)) break;
    k += d.len;
    if (d.cp == '\r' || d.cp == '\n') after_break = k;
  }
  if (after_break) return after_break;
  return whitespace_tail(s, i);
}

bool is_bert_punctuation(char32_t c) {
  return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126) ||
         unicode::is_punctuation(c);
}

// Rules whose pieces drop whitespace: skip it, then return the piece's end.
size_t skip_space(std::string_view s, size_t& i) {
  i = run(s, i, unicode::is_whitespace);
  return i;
}

}  // namespace

size_t pretokenize_match(SplitRule rule, std::string_view s, size_t i) {
  switch (rule) {
    case SplitRule::kGpt2Regex: return gpt2_match(s, i);
    case SplitRule::kLlama3Regex: return llama3_match(s, i);
    case SplitRule::kBert: {
      auto d = decode(s, i);
      if (is_bert_punctuation(d.cp)) return i + d.len;
      return run(s, i, [](char32_t c) { return !unicode::is_whitespace(c) && !is_bert_punctuation(c); });
    }
    case SplitRule::kWhitespace: {
      if (unicode::is_word(decode(s, i).cp)) return run(s, i, unicode::is_word);
      return run(s, i, [](char32_t c) { return !unicode::is_word(c) && !unicode::is_whitespace(c); });
    }
    case SplitRule::kWhitespaceSplit:
      return run(s, i, [](char32_t c) { return !unicode::is_whitespace(c); });
  }
  return s.size();
}

void PreTokenizer::split(std::string_view text, std::vector<std::string_view>& out) const {
  size_t first = out.size();
  out.push_back(text);
  std::vector<std::string_view> next;
  for (SplitRule rule : rules_) {
    const bool drops_space = rule == SplitRule::kBert || rule == SplitRule::kWhitespace ||
                             rule == SplitRule::kWhitespaceSplit;
    next.clear();
    for (size_t p = first; p < out.size(); ++p) {
      std::string_view s = out[p];
      size_t i = 0;
      while (i < s.size()) {
        if (drops_space && skip_space(s, i) == s.size()) break;
        size_t e = pretokenize_match(rule, s, i);
        next.push_back(s.substr(i, e - i));
        i = e;
      }
    }
    out.resize(first);
    out.insert(out.end(), next.begin(), next.end());
  }
}

namespace {

void add_step(const nlohmann::json& spec, const std::string& where, std::vector<SplitRule>& rules, bool& byte_level,
              bool& prefix) {
  if (spec.is_null()) return;
  std::string type = spec.value("type", "");
  if (type == "Sequence") {
    for (const auto& s : spec.at("pretokenizers")) add_step(s, where, rules, byte_level, prefix);
  } else if (type == "ByteLevel") {
    byte_level = true;
    prefix = spec.value("add_prefix_space", false);
    if (spec.value("use_regex", true)) rules.push_back(SplitRule::kGpt2Regex);
  } else if (type == "Split") {
    const auto& pattern = spec.at("pattern");
    std::string regex = pattern.contains("Regex") ? pattern["Regex"].get<std::string>() : "";
    std::string behavior = spec.value("behavior", "");
    HFT_CHECK(behavior == "Isolated" && !spec.value("invert", false),
              "{}: pre_tokenizer Split with behavior {} is not supported (Isolated is)", where, behavior);
    if (regex == kGpt2Pattern) {
      rules.push_back(SplitRule::kGpt2Regex);
    } else if (regex == kLlama3Pattern) {
      rules.push_back(SplitRule::kLlama3Regex);
    } else {
      fail("{}: pre_tokenizer Split pattern {} is not supported; supported: GPT-2's and Llama 3's regexes", where,
           pattern.dump());
    }
  } else if (type == "BertPreTokenizer") {
    rules.push_back(SplitRule::kBert);
  } else if (type == "Whitespace") {
    rules.push_back(SplitRule::kWhitespace);
  } else if (type == "WhitespaceSplit") {
    rules.push_back(SplitRule::kWhitespaceSplit);
  } else {
    fail("{}: pre_tokenizer type \"{}\" is not supported; supported: ByteLevel, Split, BertPreTokenizer, "
         "Whitespace, WhitespaceSplit, Sequence",
         where, type);
  }
}

}  // namespace

PreTokenizer::PreTokenizer(const nlohmann::json& spec, const std::string& where) {
  add_step(spec, where, rules_, byte_level_, add_prefix_space_);
}

}  // namespace hftrain
