// UTF-8 and the Unicode properties tokenizers need, from ICU (the same tables the HF
// tokenizers' regexes and normalizers consult, up to the Unicode version each ships).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hftrain::unicode {

// The code point at s[i] and its length in bytes. Invalid UTF-8 reads as U+FFFD, length 1.
struct Decoded {
  char32_t cp;
  int len;
};
inline Decoded decode(std::string_view s, size_t i) {
  const auto b = static_cast<unsigned char>(s[i]);
  if (b < 0x80) return {b, 1};
  int len = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 0;
  if (len == 0 || i + len > s.size()) return {0xFFFD, 1};
  char32_t cp = b & (0x7F >> len);
  for (int k = 1; k < len; ++k) {
    const auto c = static_cast<unsigned char>(s[i + k]);
    if ((c & 0xC0) != 0x80) return {0xFFFD, 1};
    cp = (cp << 6) | (c & 0x3F);
  }
  return {cp, len};
}
void append_utf8(std::string& out, char32_t cp);

bool is_letter(char32_t c);      // \p{L}
bool is_number(char32_t c);      // \p{N}
bool is_whitespace(char32_t c);  // \s: the White_Space property
bool is_punctuation(char32_t c); // \p{P}
bool is_other(char32_t c);       // \p{C}: Cc Cf Cn Co Cs
bool is_nonspacing_mark(char32_t c);  // \p{Mn}
bool is_word(char32_t c);        // \w: letters, numbers, nonspacing marks and '_'
char32_t to_lower(char32_t c);   // simple lowercase mapping

enum class NormalForm { kNFC, kNFD, kNFKC, kNFKD };
std::string normalize(std::string_view s, NormalForm form);
std::string lowercase(std::string_view s);
// The byte offsets where s's extended grapheme clusters begin, then s.size().
std::vector<size_t> grapheme_bounds(std::string_view s);

}  // namespace hftrain::unicode
