#include "hftrain/data/text/pretokenize.h"

#include "hftrain/core/error.h"
#include "hftrain/data/text/regex.h"
#include "hftrain/data/text/unicode.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>

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

bool is_punctuation_char(char32_t c) {  // ASCII punctuation or \p{P}
  return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126) ||
         unicode::is_punctuation(c);
}

}  // namespace

size_t pretokenize_match(SplitRule rule, std::string_view s, size_t i) {
  switch (rule) {
    case SplitRule::kGpt2Regex: return gpt2_match(s, i);
    case SplitRule::kLlama3Regex: return llama3_match(s, i);
    case SplitRule::kWhitespace: {
      if (unicode::is_word(decode(s, i).cp)) return run(s, i, unicode::is_word);
      return run(s, i, [](char32_t c) { return !unicode::is_word(c) && !unicode::is_whitespace(c); });
    }
  }
  return s.size();
}

std::string_view split_rule_pattern(SplitRule rule) {
  switch (rule) {
    case SplitRule::kGpt2Regex: return kGpt2Pattern;
    case SplitRule::kLlama3Regex: return kLlama3Pattern;
    case SplitRule::kWhitespace: return R"(\w+|[^\w\s]+)";
  }
  return {};
}

std::string_view PieceStore::keep(std::string s) {
  if (used_ == strings_.size()) strings_.emplace_back();
  std::string& slot = strings_[used_++];
  slot = std::move(s);
  return slot;
}

struct PreTokenizer::Step {
  enum Kind { kScan, kRegex, kLiteral, kChars, kMetaspace, kBytePrefix } kind;
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
  SplitRule rule = SplitRule::kGpt2Regex;  // kScan
  std::shared_ptr<const Regex> regex;       // kRegex
  std::string literal;                      // kLiteral; kMetaspace: the replacement
  bool (*pred)(char32_t) = nullptr;         // kChars; null: the character `delimiter`
  char32_t delimiter = 0;
  enum class Prepend { kAlways, kFirst, kNever } prepend = Prepend::kAlways;  // kMetaspace
  bool split = true;                                                           // kMetaspace
};

namespace {

using PreStep = PreTokenizer::Step;

struct Part {
  size_t begin, end;
  bool match;
};

// The spans of `s` that `step`'s pattern matches, left to right.
void find_matches(const PreStep& st, std::string_view s, std::vector<Span>& m) {
  m.clear();
  switch (st.kind) {
    case PreStep::kScan:
      for (size_t i = 0; i < s.size();) {
        if (st.rule == SplitRule::kWhitespace) {  // \w+|[^\w\s]+ leaves whitespace unmatched
          i = run(s, i, unicode::is_whitespace);
          if (i == s.size()) break;
        }
        const size_t e = pretokenize_match(st.rule, s, i);
        m.push_back({i, e});
        i = e;
      }
      break;
    case PreStep::kRegex: st.regex->find_all(s, m); break;
    case PreStep::kLiteral:
    case PreStep::kMetaspace:
      for (size_t p = 0; (p = s.find(st.literal, p)) != std::string_view::npos; p += st.literal.size())
        m.push_back({p, p + st.literal.size()});
      break;
    case PreStep::kChars:
      for (size_t i = 0; i < s.size();) {
        const auto d = decode(s, i);
        if (st.pred ? st.pred(d.cp) : d.cp == st.delimiter) m.push_back({i, i + d.len});
        i += d.len;
      }
      break;
    case PreStep::kBytePrefix: break;
  }
}

// HF's NormalizedString::split: the matches and the text between them, the matches flipped
// when inverted, merged or dropped as `behavior` says; empty pieces vanish.
void cut(Piece piece, const std::vector<Span>& matches, SplitBehavior behavior, bool invert,
         std::vector<Part>& parts, std::vector<Piece>& out) {
  const std::string_view s = piece.text;
  if (s.empty()) return;
  parts.clear();
  size_t prev = 0;
  for (const Span& m : matches) {
    if (prev != m.begin) parts.push_back({prev, m.begin, invert});
    parts.push_back({m.begin, m.end, !invert});
    prev = m.end;
  }
  if (prev != s.size()) parts.push_back({prev, s.size(), invert});
  auto emit = [&](size_t b, size_t e) {
    if (b < e) out.push_back({s.substr(b, e - b), piece.at_start && b == 0});
  };
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (const Part& p : parts) emit(p.begin, p.end);
      return;
    case SplitBehavior::kRemoved:
      for (const Part& p : parts)
        if (!p.match) emit(p.begin, p.end);
      return;
    case SplitBehavior::kContiguous:
    case SplitBehavior::kMergedWithPrevious: {
      // Fold left: a part joins the one before when both are matches or both are not
      // (Contiguous), or when it is a match after a non-match (MergedWithPrevious).
      std::vector<Span> merged;
      bool previous = false;
      for (const Part& p : parts) {
        const bool join = behavior == SplitBehavior::kContiguous ? p.match == previous : p.match && !previous;
        if (join && !merged.empty()) {
          merged.back().end = p.end;
        } else {
          merged.push_back({p.begin, p.end});
        }
        previous = p.match;
      }
      for (const Span& m : merged) emit(m.begin, m.end);
      return;
    }
    case SplitBehavior::kMergedWithNext: {
      // Fold right: a match joins the part after it unless that part is a match too.
      std::vector<Span> merged;
      bool previous = false;
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        if (it->match && !previous && !merged.empty()) {
          merged.back().begin = it->begin;
        } else {
          merged.push_back({it->begin, it->end});
        }
        previous = it->match;
      }
      for (auto it = merged.rbegin(); it != merged.rend(); ++it) emit(it->begin, it->end);
      return;
    }
  }
}

std::string replace_char(std::string_view s, std::string_view with) {
  std::string out;
  out.reserve(s.size() + 8);
  for (char c : s) {
    if (c == ' ') {
      out.append(with);
    } else {
      out.push_back(c);
    }
  }
  return out;
}

bool is_whitespace_char(char32_t c) { return unicode::is_whitespace(c); }

SplitBehavior parse_behavior(const nlohmann::json& spec, const std::string& where) {
  const std::string b = spec.value("behavior", "Isolated");
  if (b == "Removed") return SplitBehavior::kRemoved;
  if (b == "Isolated") return SplitBehavior::kIsolated;
  if (b == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (b == "Contiguous") return SplitBehavior::kContiguous;
  fail("{}: pre_tokenizer {} has behavior \"{}\"; HF's are Removed, Isolated, MergedWithPrevious, MergedWithNext, "
       "Contiguous",
       where, spec.value("type", ""), b);
}

std::atomic<bool> use_scanners{true};

// The step that cuts `rule`'s pieces: its scanner, or Oniguruma running its regex.
std::shared_ptr<PreStep> scan_step(SplitRule rule) {
  auto st = std::make_shared<PreStep>();
  st->kind = PreStep::kScan;
  st->rule = rule;
  if (!use_scanners && rule != SplitRule::kWhitespace) {
    st->kind = PreStep::kRegex;
    st->regex = std::make_shared<Regex>(split_rule_pattern(rule), "pre_tokenizer");
  }
  return st;
}

std::shared_ptr<PreStep> chars_step(bool (*pred)(char32_t), SplitBehavior behavior) {
  auto st = std::make_shared<PreStep>();
  st->kind = PreStep::kChars;
  st->pred = pred;
  st->behavior = behavior;
  return st;
}

void add_step(const nlohmann::json& spec, const std::string& where, std::vector<std::shared_ptr<const PreStep>>& steps,
              bool& byte_level) {
  if (spec.is_null()) return;
  HFT_CHECK(spec.is_object(), "{}: a pre_tokenizer is {}, not an object", where, spec.dump());
  const std::string type = spec.value("type", "");
  if (type == "Sequence") {
    for (const auto& s : spec.at("pretokenizers")) add_step(s, where, steps, byte_level);
  } else if (type == "ByteLevel") {
    byte_level = true;
    if (spec.value("add_prefix_space", true)) {
      auto st = std::make_shared<PreStep>();
      st->kind = PreStep::kBytePrefix;
      steps.push_back(st);
    }
    if (spec.value("use_regex", true)) steps.push_back(scan_step(SplitRule::kGpt2Regex));
  } else if (type == "Split") {
    const auto& pattern = spec.at("pattern");
    auto st = std::make_shared<PreStep>();
    st->behavior = parse_behavior(spec, where);
    st->invert = spec.value("invert", false);
    if (pattern.contains("Regex")) {
      const std::string regex = pattern["Regex"].get<std::string>();
      if (regex == kGpt2Pattern || regex == kLlama3Pattern) {
        auto scan = scan_step(regex == kGpt2Pattern ? SplitRule::kGpt2Regex : SplitRule::kLlama3Regex);
        scan->behavior = st->behavior;
        scan->invert = st->invert;
        st = scan;
      } else {
        st->kind = PreStep::kRegex;
        st->regex = std::make_shared<Regex>(regex, where + ": pre_tokenizer Split");
      }
    } else {
      HFT_CHECK(pattern.contains("String") && pattern["String"].is_string(),
                "{}: pre_tokenizer Split pattern {} is neither {{\"String\": ...}} nor {{\"Regex\": ...}}", where,
                pattern.dump());
      st->literal = pattern["String"].get<std::string>();
      st->kind = st->literal.empty() ? PreStep::kRegex : PreStep::kLiteral;  // "" matches between every character
      if (st->literal.empty()) st->regex = std::make_shared<Regex>("", where);
    }
    steps.push_back(st);
  } else if (type == "Metaspace") {
    auto st = std::make_shared<PreStep>();
    st->kind = PreStep::kMetaspace;
    st->literal = spec.value("replacement", "\u2581");
    HFT_CHECK(!st->literal.empty(), "{}: pre_tokenizer Metaspace has an empty replacement", where);
    const std::string scheme = spec.value("prepend_scheme", "always");
    // Files written before prepend_scheme existed say add_prefix_space instead.
    if (spec.contains("add_prefix_space") && spec["add_prefix_space"] == false) {
      HFT_CHECK(!spec.contains("prepend_scheme") || scheme == "never",
                "{}: pre_tokenizer Metaspace's add_prefix_space false does not match prepend_scheme \"{}\"", where,
                scheme);
      st->prepend = PreStep::Prepend::kNever;
    } else if (scheme == "always" || scheme == "first" || scheme == "never") {
      st->prepend = scheme == "always" ? PreStep::Prepend::kAlways
                    : scheme == "first" ? PreStep::Prepend::kFirst
                                        : PreStep::Prepend::kNever;
    } else {
      fail("{}: pre_tokenizer Metaspace prepend_scheme \"{}\" is not one of always, first, never", where, scheme);
    }
    st->split = spec.value("split", true);
    st->behavior = SplitBehavior::kMergedWithNext;
    steps.push_back(st);
  } else if (type == "BertPreTokenizer") {
    steps.push_back(chars_step(is_whitespace_char, SplitBehavior::kRemoved));
    steps.push_back(chars_step(is_punctuation_char, SplitBehavior::kIsolated));
  } else if (type == "Whitespace") {
    auto st = scan_step(SplitRule::kWhitespace);
    st->invert = true;
    st->behavior = SplitBehavior::kRemoved;
    steps.push_back(st);
  } else if (type == "WhitespaceSplit") {
    steps.push_back(chars_step(is_whitespace_char, SplitBehavior::kRemoved));
  } else if (type == "Digits") {
    steps.push_back(chars_step(unicode::is_number, spec.value("individual_digits", false) ? SplitBehavior::kIsolated
                                                                                          : SplitBehavior::kContiguous));
  } else if (type == "Punctuation") {
    steps.push_back(chars_step(is_punctuation_char, parse_behavior(spec, where)));
  } else if (type == "CharDelimiterSplit") {
    const std::string d = spec.at("delimiter").get<std::string>();
    HFT_CHECK(!d.empty() && static_cast<size_t>(decode(d, 0).len) == d.size(),
              "{}: pre_tokenizer CharDelimiterSplit's delimiter \"{}\" is not one character", where, d);
    auto st = chars_step(nullptr, SplitBehavior::kRemoved);
    st->delimiter = decode(d, 0).cp;
    steps.push_back(st);
  } else {
    fail("{}: pre_tokenizer type \"{}\" is not supported; supported: ByteLevel, Split, Metaspace, Digits, "
         "Punctuation, BertPreTokenizer, Whitespace, WhitespaceSplit, CharDelimiterSplit, Sequence",
         where, type);
  }
}

}  // namespace

void set_pretokenizer_scanners(bool on) { use_scanners = on; }

PreTokenizer::PreTokenizer() = default;
PreTokenizer::~PreTokenizer() = default;
PreTokenizer::PreTokenizer(PreTokenizer&&) noexcept = default;
PreTokenizer& PreTokenizer::operator=(PreTokenizer&&) noexcept = default;

PreTokenizer::PreTokenizer(const nlohmann::json& spec, const std::string& where) {
  add_step(spec, where, steps_, byte_level_);
}

void PreTokenizer::split(std::string_view text, bool at_start, std::vector<std::string_view>& out,
                         PieceStore& store) const {
  thread_local std::vector<Piece> pieces, next;
  thread_local std::vector<Span> matches;
  thread_local std::vector<Part> parts;
  pieces.assign(1, Piece{text, at_start});
  for (const auto& step : steps_) {
    const PreStep& st = *step;
    next.clear();
    for (Piece p : pieces) {
      if (st.kind == PreStep::kBytePrefix) {
        if (p.text.empty() || p.text[0] != ' ') p.text = store.keep(" " + std::string(p.text));
        next.push_back(p);
        continue;
      }
      if (st.kind == PreStep::kMetaspace) {
        std::string t = replace_char(p.text, st.literal);
        const bool starts = t.compare(0, st.literal.size(), st.literal) == 0;
        if (!starts && (st.prepend == PreStep::Prepend::kAlways || (st.prepend == PreStep::Prepend::kFirst && p.at_start)))
          t.insert(0, st.literal);
        p.text = t == p.text ? p.text : store.keep(std::move(t));
        if (!st.split) {
          if (!p.text.empty()) next.push_back(p);
          continue;
        }
      }
      if (st.kind == PreStep::kScan && st.behavior == SplitBehavior::kIsolated && !st.invert &&
          st.rule != SplitRule::kWhitespace) {
        // The byte-level hot path: the scanner's matches cover the text, each its own piece.
        for (size_t i = 0; i < p.text.size();) {
          const size_t e = pretokenize_match(st.rule, p.text, i);
          next.push_back({p.text.substr(i, e - i), p.at_start && i == 0});
          i = e;
        }
        continue;
      }
      find_matches(st, p.text, matches);
      cut(p, matches, st.behavior, st.invert, parts, next);
    }
    std::swap(pieces, next);
  }
  for (const Piece& p : pieces)
    if (!p.text.empty()) out.push_back(p.text);
}

}  // namespace hftrain
