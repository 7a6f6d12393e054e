#include "hftrain/data/text/regex.h"

#include "hftrain/core/error.h"
#include "hftrain/data/text/unicode.h"

// Oniguruma would otherwise #define UChar, which ICU also declares.
#define ONIG_ESCAPE_UCHAR_COLLISION 1
#include <oniguruma.h>

#include <mutex>

namespace hftrain {

namespace {

void onig_init_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    OnigEncoding encodings[] = {ONIG_ENCODING_UTF8};
    onig_initialize(encodings, 1);
  });
}

struct RegionDeleter {
  void operator()(OnigRegion* r) const { onig_region_free(r, 1); }
};

}  // namespace

struct Regex::Impl {
  regex_t* re = nullptr;
  ~Impl() {
    if (re) onig_free(re);
  }
};

Regex::Regex(std::string_view pattern, const std::string& where) : impl_(std::make_unique<Impl>()) {
  onig_init_once();
  OnigErrorInfo info{};
  const auto* p = reinterpret_cast<const OnigUChar*>(pattern.data());
  const int rc = onig_new(&impl_->re, p, p + pattern.size(), ONIG_OPTION_NONE, ONIG_ENCODING_UTF8,
                          ONIG_SYNTAX_DEFAULT, &info);
  if (rc != ONIG_NORMAL) {
    impl_->re = nullptr;
    OnigUChar message[ONIG_MAX_ERROR_MESSAGE_LEN];
    onig_error_code_to_str(message, rc, &info);
    fail("{}: regex {} does not compile: {}", where, pattern, reinterpret_cast<const char*>(message));
  }
}

Regex::~Regex() = default;
Regex::Regex(Regex&&) noexcept = default;
Regex& Regex::operator=(Regex&&) noexcept = default;

void Regex::find_all(std::string_view s, std::vector<Span>& out) const {
  // One region per thread: a compiled regex is only read by onig_search.
  thread_local std::unique_ptr<OnigRegion, RegionDeleter> region(onig_region_new());
  const auto* str = reinterpret_cast<const OnigUChar*>(s.data());
  const OnigUChar* end = str + s.size();
  size_t from = 0;
  bool matched_before = false;
  size_t last_match_end = 0;
  while (from <= s.size()) {
    onig_region_clear(region.get());
    const int at = onig_search(impl_->re, str, end, str + from, end, region.get(), ONIG_OPTION_NONE);
    if (at == ONIG_MISMATCH) return;
    HFT_CHECK(at >= 0, "regex search failed (Oniguruma error {})", at);
    const size_t b = static_cast<size_t>(region->beg[0]), e = static_cast<size_t>(region->end[0]);
    if (b == e && matched_before && last_match_end == e) {
      from += from < s.size() ? static_cast<size_t>(unicode::decode(s, from).len) : 1;
      continue;
    }
    from = e;
    matched_before = true;
    last_match_end = e;
    out.push_back({b, e});
  }
}

std::string Regex::replace_all(std::string_view s, std::string_view content) const {
  std::vector<Span> m;
  find_all(s, m);
  std::string out;
  size_t prev = 0;
  for (const Span& x : m) {
    out.append(s.substr(prev, x.begin - prev));
    out.append(content);
    prev = x.end;
  }
  out.append(s.substr(prev));
  return out;
}

}  // namespace hftrain
