#include "hftrain/data/text/normalize.h"

#include "hftrain/core/error.h"
#include "hftrain/core/strings.h"
#include "hftrain/data/text/regex.h"
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

std::string base64_decode(std::string_view in, const std::string& where) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=') break;
    const int v = value(c);
    HFT_CHECK(v >= 0, "{}: precompiled_charsmap is not base64 (byte {})", where, static_cast<int>(static_cast<unsigned char>(c)));
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return out;
}

std::string strip(std::string_view s, bool left, bool right) {
  size_t b = 0, e = s.size();
  while (left && b < e) {
    auto d = unicode::decode(s, b);
    if (!unicode::is_whitespace(d.cp)) break;
    b += d.len;
  }
  while (right && e > b) {
    size_t k = e - 1;
    while (k > b && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
    if (!unicode::is_whitespace(unicode::decode(s, k).cp)) break;
    e = k;
  }
  return std::string(s.substr(b, e - b));
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
    Step st{Step::kReplace, {}, spec.at("content").get<std::string>()};
    if (p.contains("Regex")) {
      st.regex = std::make_shared<Regex>(p["Regex"].get<std::string>(), where + ": normalizer Replace");
    } else {
      st.a = p.at("String").get<std::string>();
      if (st.a.empty()) st.regex = std::make_shared<Regex>("", where + ": normalizer Replace");
    }
    steps.push_back(st);
  } else if (type == "Prepend") {
    steps.push_back({Step::kPrepend, spec.at("prepend").get<std::string>(), {}});
  } else if (type == "Strip") {
    Step st{Step::kStrip, {}, {}};
    st.left = spec.value("strip_left", true);
    st.right = spec.value("strip_right", true);
    steps.push_back(st);
  } else if (type == "Precompiled") {
    HFT_CHECK(spec.contains("precompiled_charsmap") && spec["precompiled_charsmap"].is_string(),
              "{}: normalizer Precompiled has no precompiled_charsmap string", where);
    Step st{Step::kPrecompiled, {}, {}};
    const std::string blob = base64_decode(spec["precompiled_charsmap"].get<std::string>(), where);
    if (!blob.empty()) {  // an empty map changes nothing
      st.chars = std::make_shared<CharsMap>(blob, where);
      steps.push_back(st);
    }
  } else {
    fail("{}: normalizer type \"{}\" is not supported; supported: BertNormalizer, Lowercase, StripAccents, NFC, NFD, "
         "NFKC, NFKD, Replace, Prepend, Strip, Precompiled, Sequence",
         where, type);
  }
}

}  // namespace

CharsMap::CharsMap(std::string_view blob, const std::string& where) {
  HFT_CHECK(blob.size() >= 4, "{}: precompiled_charsmap is {} bytes, too short for its header", where, blob.size());
  uint32_t trie_bytes = 0;
  for (int k = 3; k >= 0; --k) trie_bytes = (trie_bytes << 8) | static_cast<unsigned char>(blob[k]);
  HFT_CHECK(trie_bytes % 4 == 0 && trie_bytes > 0 && 4 + static_cast<size_t>(trie_bytes) <= blob.size(),
            "{}: precompiled_charsmap's trie size {} does not fit its {} bytes", where, trie_bytes, blob.size());
  units_.resize(trie_bytes / 4);
  for (size_t u = 0; u < units_.size(); ++u) {
    uint32_t v = 0;
    for (int k = 3; k >= 0; --k) v = (v << 8) | static_cast<unsigned char>(blob[4 + 4 * u + k]);
    units_[u] = v;
  }
  normalized_ = std::string(blob.substr(4 + trie_bytes));
}

const char* CharsMap::transform(std::string_view chunk) const {
  // darts-clone's unit layout: a label in the low byte, a leaf flag at bit 8, the offset above.
  auto offset = [](uint32_t u) -> size_t { return (u >> 10) << ((u & (1u << 9)) >> 6); };
  auto label = [](uint32_t u) -> uint32_t { return u & ((1u << 31) | 0xFF); };
  size_t pos = offset(units_[0]);
  for (unsigned char c : chunk) {
    if (c == 0) break;
    pos ^= c;
    if (pos >= units_.size() || label(units_[pos]) != c) return nullptr;
    const uint32_t unit = units_[pos];
    pos ^= offset(unit);
    if (pos >= units_.size()) return nullptr;
    if ((unit >> 8) & 1) {  // the shortest prefix with a value: its replacement
      const size_t at = units_[pos] & ((1u << 31) - 1);
      return at < normalized_.size() ? normalized_.c_str() + at : nullptr;
    }
  }
  return nullptr;
}

// HF's Precompiled: a grapheme shorter than 6 bytes that the map holds is replaced whole;
// otherwise each of its characters is looked up alone.
std::string CharsMap::apply(std::string_view text) const {
  std::string out;
  out.reserve(text.size());
  const std::vector<size_t> bounds = unicode::grapheme_bounds(text);
  for (size_t g = 0; g + 1 < bounds.size(); ++g) {
    const std::string_view grapheme = text.substr(bounds[g], bounds[g + 1] - bounds[g]);
    if (grapheme.size() < 6) {
      if (const char* norm = transform(grapheme)) {
        out += norm;
        continue;
      }
    }
    for (size_t i = 0; i < grapheme.size();) {
      const size_t len = static_cast<size_t>(unicode::decode(grapheme, i).len);
      const std::string_view part = grapheme.substr(i, len);
      if (const char* norm = transform(part)) {
        out += norm;
      } else {
        out.append(part);
      }
      i += len;
    }
  }
  return out;
}

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
        s = step.regex ? step.regex->replace_all(s, step.b) : replace_all(s, step.a, step.b);
        ascii = is_ascii(s);
        break;
      case Step::kStrip: s = strip(s, step.left, step.right); break;
      case Step::kPrecompiled:
        s = step.chars->apply(s);
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
