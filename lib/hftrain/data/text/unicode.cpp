#include "hftrain/data/text/unicode.h"

#include "hftrain/core/error.h"

#include <unicode/normalizer2.h>
#include <unicode/ubrk.h>
#include <unicode/utext.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>

namespace hftrain::unicode {

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

namespace {
uint32_t category_mask(char32_t c) { return U_GET_GC_MASK(static_cast<UChar32>(c)); }
}  // namespace

bool is_letter(char32_t c) {
  if (c < 0x80) return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
  return category_mask(c) & U_GC_L_MASK;
}
bool is_number(char32_t c) {
  if (c < 0x80) return c >= '0' && c <= '9';
  return category_mask(c) & U_GC_N_MASK;
}
bool is_whitespace(char32_t c) {
  if (c < 0x80) return c == ' ' || (c >= '\t' && c <= '\r');
  return u_isUWhiteSpace(static_cast<UChar32>(c));
}
bool is_punctuation(char32_t c) { return category_mask(c) & U_GC_P_MASK; }
bool is_other(char32_t c) { return category_mask(c) & U_GC_C_MASK; }
bool is_nonspacing_mark(char32_t c) { return category_mask(c) & U_GC_MN_MASK; }
bool is_word(char32_t c) { return is_letter(c) || is_number(c) || c == '_' || (c >= 0x80 && is_nonspacing_mark(c)); }
char32_t to_lower(char32_t c) {
  if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
  return static_cast<char32_t>(u_tolower(static_cast<UChar32>(c)));
}

std::string normalize(std::string_view s, NormalForm form) {
  UErrorCode err = U_ZERO_ERROR;
  const icu::Normalizer2* n = nullptr;
  switch (form) {
    case NormalForm::kNFC: n = icu::Normalizer2::getNFCInstance(err); break;
    case NormalForm::kNFD: n = icu::Normalizer2::getNFDInstance(err); break;
    case NormalForm::kNFKC: n = icu::Normalizer2::getNFKCInstance(err); break;
    case NormalForm::kNFKD: n = icu::Normalizer2::getNFKDInstance(err); break;
  }
  if (U_FAILURE(err)) fail_runtime("ICU normalizer unavailable: {}", u_errorName(err));
  icu::UnicodeString u = icu::UnicodeString::fromUTF8(icu::StringPiece(s.data(), static_cast<int32_t>(s.size())));
  icu::UnicodeString out = n->normalize(u, err);
  if (U_FAILURE(err)) fail_runtime("ICU normalization failed: {}", u_errorName(err));
  std::string r;
  out.toUTF8String(r);
  return r;
}

std::string lowercase(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    auto [cp, len] = decode(s, i);
    append_utf8(out, to_lower(cp));
    i += len;
  }
  return out;
}

std::vector<size_t> grapheme_bounds(std::string_view s) {
  struct Iterator {
    UBreakIterator* it = nullptr;
    ~Iterator() {
      if (it) ubrk_close(it);
    }
  };
  thread_local Iterator iter;
  UErrorCode err = U_ZERO_ERROR;
  if (!iter.it) iter.it = ubrk_open(UBRK_CHARACTER, "", nullptr, 0, &err);
  HFT_CHECK(U_SUCCESS(err), "ICU: cannot open a grapheme break iterator: {}", u_errorName(err));
  UText* text = utext_openUTF8(nullptr, s.data(), static_cast<int64_t>(s.size()), &err);
  ubrk_setUText(iter.it, text, &err);
  HFT_CHECK(U_SUCCESS(err), "ICU: grapheme breaks failed: {}", u_errorName(err));
  std::vector<size_t> bounds;
  for (int32_t p = ubrk_first(iter.it); p != UBRK_DONE; p = ubrk_next(iter.it)) bounds.push_back(static_cast<size_t>(p));
  utext_close(text);
  if (bounds.empty() || bounds.back() != s.size()) bounds.push_back(s.size());
  return bounds;
}

}  // namespace hftrain::unicode
