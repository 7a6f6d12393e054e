#include "hftrain/data/text/normalize.h"

#include "hftrain/core/error.h"
#include "hftrain/data/text/unicode.h"

#include <nlohmann/json.hpp>

namespace hftrain {

namespace {

using Step = Normalizer::Step;

bool is_ascii(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}

bool is_cjk(char32_t c) {  // the CJK Unified Ideograph blocks BERT spaces out
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// BertNormalizer's clean_text: drop NUL, U+FFFD and control/format characters (tab, LF and
// CR excepted), turn every whitespace character into a space.
std::string bert_clean(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    auto [cp, len] = unicode::decode(s, i);
    i += len;
    const bool ws = cp == '\t' || cp == '\n' || cp == '\r' || unicode::is_whitespace(cp);
    if (ws) {
      out.push_back(' ');
    } else if (cp != 0 && cp != 0xFFFD && !unicode::is_other(cp)) {
      unicode::append_utf8(out, cp);
    }
  }
  return out;
}

std::string bert_chinese(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    auto [cp, len] = unicode::decode(s, i);
    if (is_cjk(cp)) {
      out.push_back(' ');
      out.append(s.substr(i, len));
      out.push_back(' ');
    } else {
      out.append(s.substr(i, len));
    }
    i += len;
  }
  return out;
}

std::string strip_accents(std::string_view s) {  // expects NFD input
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    auto [cp, len] = unicode::decode(s, i);
    if (!unicode::is_nonspacing_mark(cp)) out.append(s.substr(i, len));
    i += len;
  }
  return out;
}

std::string replace_all(std::string_view s, const std::string& from, const std::string& to) {
  std::string out;
  size_t i = 0;
  for (size_t p; !from.empty() && (p = s.find(from, i)) != std::string_view::npos; i = p + from.size()) {
    out.append(s.substr(i, p - i));
    out.append(to);
  }
  out.append(s.substr(i));
  return out;
}

void add_steps(const nlohmann::json& spec, const std::string& where, std::vector<Step>& steps) {
  if (spec.is_null()) return;
  std::string type = spec.value("type", "");
  if (type == "Sequence") {
    for (const auto& s : spec.at("normalizers")) add_steps(s, where, steps);
  } else if (type == "BertNormalizer") {
    bool lower = spec.value("lowercase", true);
    if (spec.value("clean_text", true)) steps.push_back({Step::kBertClean, {}, {}});
    if (spec.value("handle_chinese_chars", true)) steps.push_back({Step::kBertChinese, {}, {}});
    // strip_accents null follows lowercase, as in BERT's uncased models.
    const auto& sa = spec.contains("strip_accents") ? spec["strip_accents"] : nlohmann::json();
    if (sa.is_null() ? lower : sa.get<bool>()) {
      steps.push_back({Step::kNFD, {}, {}});
      steps.push_back({Step::kStripAccents, {}, {}});
    }
    if (lower) steps.push_back({Step::kLowercase, {}, {}});
  } else if (type == "Lowercase") {
    steps.push_back({Step::kLowercase, {}, {}});
  } else if (type == "StripAccents") {
    steps.push_back({Step::kStripAccents, {}, {}});
  } else if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    Step::Kind k = type == "NFC" ? Step::kNFC : type == "NFD" ? Step::kNFD : type == "NFKC" ? Step::kNFKC : Step::kNFKD;
    steps.push_back({k, {}, {}});
  } else if (type == "Replace") {
    const auto& p = spec.at("pattern");
    HFT_CHECK(p.contains("String"), "{}: normalizer Replace with a regex pattern {} is not supported", where, p.dump());
    steps.push_back({Step::kReplace, p["String"].get<std::string>(), spec.at("content").get<std::string>()});
  } else if (type == "Prepend") {
    steps.push_back({Step::kPrepend, spec.at("prepend").get<std::string>(), {}});
  } else {
    fail("{}: normalizer type \"{}\" is not supported; supported: BertNormalizer, Lowercase, StripAccents, NFC, NFD, "
         "NFKC, NFKD, Replace, Prepend, Sequence",
         where, type);
  }
}

}  // namespace

Normalizer::Normalizer(const nlohmann::json& spec, const std::string& where) { add_steps(spec, where, steps_); }

std::string Normalizer::apply(std::string_view text) const {
  std::string s(text);
  bool ascii = is_ascii(text);  // ASCII stays ASCII through every step but Replace/Prepend
  for (const Step& step : steps_) {
    switch (step.kind) {
      case Step::kBertClean: s = bert_clean(s); break;
      case Step::kBertChinese:
        if (!ascii) s = bert_chinese(s);
        break;
      case Step::kStripAccents:
        if (!ascii) s = strip_accents(s);
        break;
      case Step::kLowercase: s = unicode::lowercase(s); break;
      case Step::kNFC: case Step::kNFD: case Step::kNFKC: case Step::kNFKD:
        if (!ascii) s = unicode::normalize(s, static_cast<unicode::NormalForm>(step.kind - Step::kNFC));
        break;
      case Step::kReplace:
        s = replace_all(s, step.a, step.b);
        ascii = is_ascii(s);
        break;
      case Step::kPrepend:
        if (!s.empty()) s = step.a + s;
        ascii = is_ascii(s);
        break;
    }
  }
  return s;
}

}  // namespace hftrain
