#include "hftrain/data/text/decoder.h"

#include "hftrain/core/error.h"
#include "hftrain/core/strings.h"
#include "hftrain/data/text/regex.h"
#include "hftrain/data/text/subword.h"
#include "hftrain/data/text/unicode.h"

#include <nlohmann/json.hpp>

namespace hftrain {

struct Decoder::Step {
  enum Kind { kByteLevel, kMetaspace, kByteFallback, kFuse, kStrip, kReplace, kWordPiece, kBpe, kCtc } kind;
  std::string a, b;                    // Metaspace: replacement; Replace: literal, content; WordPiece/BPE: prefix/suffix;
                                       // CTC: pad token, word delimiter
  bool flag = false;                   // Metaspace: prepend (not "never"); WordPiece, CTC: cleanup
  char32_t content = 0;                // Strip
  size_t start = 0, stop = 0;          // Strip
  std::shared_ptr<const Regex> regex;  // Replace with a Regex pattern
};

namespace {

using DecoderStep = Decoder::Step;

// HF's wordpiece::cleanup: spaces before punctuation and English contractions.
std::string wordpiece_cleanup(std::string s) {
  static const std::pair<const char*, const char*> kRules[] = {
      {" .", "."},     {" ?", "?"},     {" !", "!"},     {" ,", ","},           {" ' ", "'"},   {" n't", "n't"},
      {" 'm", "'m"},   {" do not", " don't"},            {" 's", "'s"},         {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : kRules) s = replace_all(s, from, to);
  return s;
}

std::vector<char32_t> chars_of(std::string_view s) {
  std::vector<char32_t> out;
  for (size_t i = 0; i < s.size();) {
    auto d = unicode::decode(s, i);
    out.push_back(d.cp);
    i += d.len;
  }
  return out;
}

std::string utf8_of(const std::vector<char32_t>& cps, size_t from, size_t to) {
  std::string out;
  for (size_t k = from; k < to; ++k) unicode::append_utf8(out, cps[k]);
  return out;
}

void apply_step(const DecoderStep& st, std::vector<std::string>& tokens) {
  switch (st.kind) {
    case DecoderStep::kByteLevel: {
      std::string bytes;
      for (const std::string& t : tokens) {
        std::string b;
        if (byte_level_decode(t, b)) {
          bytes += b;
        } else {
          bytes += t;
        }
      }
      tokens.assign(1, utf8_lossy(bytes));
      return;
    }
    case DecoderStep::kMetaspace:
      for (size_t i = 0; i < tokens.size(); ++i)
        tokens[i] = replace_all(tokens[i], st.a, i == 0 && st.flag ? "" : " ");
      return;
    case DecoderStep::kByteFallback: {
      std::vector<std::string> out;
      std::string pending;
      size_t pending_count = 0;
      auto flush = [&] {
        if (!pending_count) return;
        const std::string text = utf8_lossy(pending);
        if (text == pending) {
          out.push_back(pending);
        } else {
          for (size_t k = 0; k < pending_count; ++k) out.push_back("\xEF\xBF\xBD");
        }
        pending.clear();
        pending_count = 0;
      };
      for (std::string& t : tokens) {
        auto hex = [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; };
        if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && hex(t[3]) && hex(t[4])) {
          pending.push_back(static_cast<char>(std::stoi(t.substr(3, 2), nullptr, 16)));
          ++pending_count;
        } else {
          flush();
          out.push_back(std::move(t));
        }
      }
      flush();
      tokens.swap(out);
      return;
    }
    case DecoderStep::kFuse: {
      std::string all;
      for (const std::string& t : tokens) all += t;
      tokens.assign(1, all);
      return;
    }
    case DecoderStep::kStrip:
      for (std::string& t : tokens) {
        const std::vector<char32_t> cps = chars_of(t);
        size_t begin = 0, end = cps.size();
        while (begin < std::min(st.start, cps.size()) && cps[begin] == st.content) ++begin;
        for (size_t k = 0; k < st.stop && end > begin && cps[end - 1] == st.content; ++k) --end;
        t = utf8_of(cps, begin, end);
      }
      return;
    case DecoderStep::kReplace:
      for (std::string& t : tokens) {
        t = st.regex ? st.regex->replace_all(t, st.b) : replace_all(t, st.a, st.b);
      }
      return;
    case DecoderStep::kWordPiece:
      for (size_t i = 0; i < tokens.size(); ++i) {
        std::string& t = tokens[i];
        if (i != 0) t = t.compare(0, st.a.size(), st.a) == 0 ? t.substr(st.a.size()) : " " + t;
        if (st.flag) t = wordpiece_cleanup(t);
      }
      return;
    case DecoderStep::kBpe:
      for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = replace_all(tokens[i], st.a, i + 1 == tokens.size() ? "" : " ");
      return;
    case DecoderStep::kCtc: {
      std::vector<std::string> out;
      for (size_t i = 0; i < tokens.size(); ++i) {
        if (i > 0 && tokens[i] == tokens[i - 1]) continue;  // dedup
        std::string t = replace_all(tokens[i], st.a, "");
        if (st.flag) t = replace_all(wordpiece_cleanup(t), st.b, " ");
        if (!t.empty()) out.push_back(t);
      }
      tokens.swap(out);
      return;
    }
  }
}

void add_decoder_step(const nlohmann::json& spec, const std::string& where, std::vector<std::shared_ptr<const DecoderStep>>& steps) {
  if (spec.is_null()) return;
  const std::string type = spec.value("type", "");
  auto st = std::make_shared<DecoderStep>();
  if (type == "Sequence") {
    for (const auto& d : spec.at("decoders")) add_decoder_step(d, where, steps);
    return;
  } else if (type == "ByteLevel") {
    st->kind = DecoderStep::kByteLevel;
  } else if (type == "Metaspace") {
    st->kind = DecoderStep::kMetaspace;
    st->a = spec.value("replacement", "\u2581");
    const bool legacy_off = spec.contains("add_prefix_space") && spec["add_prefix_space"] == false;
    st->flag = !legacy_off && spec.value("prepend_scheme", "always") != "never";
  } else if (type == "ByteFallback") {
    st->kind = DecoderStep::kByteFallback;
  } else if (type == "Fuse") {
    st->kind = DecoderStep::kFuse;
  } else if (type == "Strip") {
    st->kind = DecoderStep::kStrip;
    const std::string c = spec.value("content", " ");
    HFT_CHECK(!c.empty() && static_cast<size_t>(unicode::decode(c, 0).len) == c.size(),
              "{}: decoder Strip's content \"{}\" is not one character", where, c);
    st->content = unicode::decode(c, 0).cp;
    st->start = spec.value("start", 0);
    st->stop = spec.value("stop", 0);
  } else if (type == "Replace") {
    st->kind = DecoderStep::kReplace;
    const auto& p = spec.at("pattern");
    st->b = spec.at("content").get<std::string>();
    if (p.contains("Regex")) {
      st->regex = std::make_shared<Regex>(p["Regex"].get<std::string>(), where + ": decoder Replace");
    } else {
      st->a = p.at("String").get<std::string>();
      if (st->a.empty()) st->regex = std::make_shared<Regex>("", where + ": decoder Replace");
    }
  } else if (type == "WordPiece") {
    st->kind = DecoderStep::kWordPiece;
    st->a = spec.value("prefix", "##");
    st->flag = spec.value("cleanup", true);
  } else if (type == "BPEDecoder") {
    st->kind = DecoderStep::kBpe;
    st->a = spec.value("suffix", "</w>");
  } else if (type == "CTC") {
    st->kind = DecoderStep::kCtc;
    st->a = spec.value("pad_token", "<pad>");
    st->b = spec.value("word_delimiter_token", "|");
    st->flag = spec.value("cleanup", true);
  } else {
    fail("{}: decoder type \"{}\" is not supported; supported: ByteLevel, Metaspace, ByteFallback, Fuse, Strip, "
         "Replace, WordPiece, BPEDecoder, CTC, Sequence",
         where, type);
  }
  steps.push_back(st);
}

}  // namespace

Decoder::Decoder() = default;
Decoder::~Decoder() = default;
Decoder::Decoder(Decoder&&) noexcept = default;
Decoder& Decoder::operator=(Decoder&&) noexcept = default;

Decoder::Decoder(const nlohmann::json& spec, const std::string& where) { add_decoder_step(spec, where, steps_); }

std::string Decoder::decode(std::vector<std::string> tokens) const {
  std::string out;
  if (steps_.empty()) {
    for (size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
    return out;
  }
  for (const auto& st : steps_) apply_step(*st, tokens);
  for (const std::string& t : tokens) out += t;
  return out;
}

std::string utf8_lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      out.push_back(static_cast<char>(b));
      ++i;
      continue;
    }
    // The lead byte's length and the range its first continuation byte must fall in.
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) len = 2;
    else if (b == 0xE0) len = 3, lo = 0xA0;
    else if (b >= 0xE1 && b <= 0xEC) len = 3;
    else if (b == 0xED) len = 3, hi = 0x9F;
    else if (b >= 0xEE && b <= 0xEF) len = 3;
    else if (b == 0xF0) len = 4, lo = 0x90;
    else if (b >= 0xF1 && b <= 0xF3) len = 4;
    else if (b == 0xF4) len = 4, hi = 0x8F;
    size_t k = 1;
    if (len) {
      for (; k < len && i + k < s.size(); ++k) {
        const auto c = static_cast<unsigned char>(s[i + k]);
        if (k == 1 ? (c < lo || c > hi) : (c < 0x80 || c > 0xBF)) break;
      }
    }
    if (len && k == len) {
      out.append(s.substr(i, len));
    } else {
      out += "\xEF\xBF\xBD";  // the maximal subpart [i, i + k) is one replacement character
    }
    i += k;
  }
  return out;
}

}  // namespace hftrain
