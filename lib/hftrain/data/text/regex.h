// Regular expressions as HF's tokenizers runs them: Oniguruma (the engine its `onig` crate
// binds, Debian's libonig) with its default syntax over UTF-8, and its find_iter's rule for
// empty matches, so that a tokenizer.json's Split and Replace patterns cut where HF cuts.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace hftrain {

struct Span {
  size_t begin, end;
};

class Regex {
 public:
  // `where` names the file and key for errors; a pattern Oniguruma rejects fails with its
  // message.
  Regex(std::string_view pattern, const std::string& where);
  ~Regex();
  Regex(Regex&&) noexcept;
  Regex& operator=(Regex&&) noexcept;

  // The non-overlapping matches in `s`, left to right, appended to `out`. Each search sees the
  // whole of `s` (look-arounds read past the match). An empty match right where the previous
  // match ended is skipped by one character, as onig's find_iter does.
  void find_all(std::string_view s, std::vector<Span>& out) const;
  // s with each of those matches replaced by `content` (HF's Replace with a Regex pattern).
  std::string replace_all(std::string_view s, std::string_view content) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hftrain
