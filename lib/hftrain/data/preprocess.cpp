#include "hftrain/data/preprocess.h"

#include "hftrain/core/error.h"
#include "hftrain/core/log.h"
#include "hftrain/io/atomic_file.h"
#include "hftrain/io/mmap_file.h"

#include <ATen/Functions.h>
#include <nlohmann/json.hpp>

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <thread>
#include <unistd.h>

namespace hftrain {

namespace fs = std::filesystem;

namespace {

// Cache file (little-endian): magic, format version, flags (1: labels follow the ids), token
// count, example count, the int32 ids padded to 8 bytes, the int32 labels likewise when
// flagged, then the int64 example offsets.
constexpr char kCacheMagic[8] = {'H', 'F', 'T', 'T', 'O', 'K', 'S', '\0'};
constexpr uint32_t kCacheVersion = 3;
constexpr uint32_t kCacheHasLabels = 1;
constexpr int64_t kCacheHeaderBytes = 32;

int64_t ids_bytes(int64_t count) { return (4 * count + 7) / 8 * 8; }

struct Fnv64 {
  uint64_t h = 1469598103934665603ull;
  Fnv64& add(std::string_view s) {
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;  // field separator
    return *this;
  }
  Fnv64& add(int64_t v) { return add(std::to_string(v)); }
};

std::string cache_key(const DatasetOptions& d, const Tokenizer& tok, const std::vector<std::string>& files) {
  Fnv64 h;
  h.add(static_cast<int64_t>(kCacheVersion)).add(static_cast<int64_t>(d.format)).add(d.text_field).add(d.prompt_field);
  h.add(static_cast<int64_t>(d.sample_by)).add(static_cast<int64_t>(d.keep_linebreaks));
  for (const std::string& f : files) {
    // A file rewritten with the same size and a restored mtime still changes its ctime (which
    // no user call sets), and in the common case its first or last bytes.
    std::error_code ec;
    h.add(fs::absolute(f, ec).string());
    struct stat st {};
    if (::stat(f.c_str(), &st) == 0) {
      h.add(static_cast<int64_t>(st.st_size)).add(static_cast<int64_t>(st.st_ino));
      h.add(static_cast<int64_t>(st.st_mtim.tv_sec)).add(static_cast<int64_t>(st.st_mtim.tv_nsec));
      h.add(static_cast<int64_t>(st.st_ctim.tv_sec)).add(static_cast<int64_t>(st.st_ctim.tv_nsec));
    }
    if (std::FILE* in = std::fopen(f.c_str(), "rb")) {
      std::string edge(65536, '\0');
      edge.resize(std::fread(edge.data(), 1, edge.size(), in));
      h.add(edge);
      if (st.st_size > 65536 && std::fseek(in, -65536, SEEK_END) == 0) {
        edge.resize(65536);
        edge.resize(std::fread(edge.data(), 1, edge.size(), in));
        h.add(edge);
      }
      std::fclose(in);
    }
  }
  h.add(tok.to_hf_json().dump());
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h.h));
  return hex;
}

std::optional<TokenizedExamples> cache_read(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return std::nullopt;
  char header[kCacheHeaderBytes];
  const bool whole = std::fread(header, 1, sizeof header, f) == sizeof header;
  std::fclose(f);
  uint32_t version, flags;
  int64_t count, examples;
  std::memcpy(&version, header + 8, 4);
  std::memcpy(&flags, header + 12, 4);
  std::memcpy(&count, header + 16, 8);
  std::memcpy(&examples, header + 24, 8);
  const bool labels = flags & kCacheHasLabels;
  std::error_code ec;
  if (!whole || std::memcmp(header, kCacheMagic, 8) != 0 || version != kCacheVersion || count < 0 || examples < 0 ||
      static_cast<int64_t>(fs::file_size(path, ec)) !=
          kCacheHeaderBytes + ids_bytes(count) * (labels ? 2 : 1) + 8 * (examples + 1))
    return std::nullopt;  // not ours, or from another version: tokenize again and replace it
  TokenizedExamples t;
  t.ids = io::mmap_tensor(path, at::kInt, kCacheHeaderBytes / 4, count);
  int64_t at_byte = kCacheHeaderBytes + ids_bytes(count);
  if (labels) {
    t.labels = io::mmap_tensor(path, at::kInt, at_byte / 4, count);
    at_byte += ids_bytes(count);
  }
  t.offsets = io::mmap_tensor(path, at::kLong, at_byte / 8, examples + 1);
  return t;
}

void cache_write(const std::string& path, const std::vector<int32_t>& ids, const std::vector<int32_t>* labels,
                 const std::vector<int64_t>& offsets) {
  char header[kCacheHeaderBytes] = {};
  std::memcpy(header, kCacheMagic, 8);
  std::memcpy(header + 8, &kCacheVersion, 4);
  const uint32_t flags = labels ? kCacheHasLabels : 0;
  std::memcpy(header + 12, &flags, 4);
  const int64_t count = static_cast<int64_t>(ids.size()), examples = static_cast<int64_t>(offsets.size()) - 1;
  std::memcpy(header + 16, &count, 8);
  std::memcpy(header + 24, &examples, 8);
  static const char zeros[8] = {};
  auto ints = [](const std::vector<int32_t>& v) {
    return std::string_view(reinterpret_cast<const char*>(v.data()), v.size() * 4);
  };
  const std::string_view pad(zeros, ids_bytes(count) - 4 * count);
  std::vector<std::string_view> parts = {std::string_view(header, sizeof header), ints(ids), pad};
  if (labels) parts.insert(parts.end(), {ints(*labels), pad});
  parts.push_back(std::string_view(reinterpret_cast<const char*>(offsets.data()), offsets.size() * 8));
  io::write_file_atomic_parts(path, parts);
}

// Encodes a prompted example into `out`; returns the number of prompt tokens.
size_t encode_prompted(const Tokenizer& tok, const Example& ex, bool specials, std::vector<int32_t>& out) {
  tok.encode_to(*ex.prompt, out, specials);
  const size_t after = specials ? static_cast<size_t>(tok.num_special_tokens_after()) : 0;
  const std::vector<int32_t> tail(out.end() - after, out.end());
  out.resize(out.size() - after);
  const size_t prompt = out.size();
  tok.encode_to(ex.text, out, false);
  out.insert(out.end(), tail.begin(), tail.end());
  if (specials)
    if (std::optional<int64_t> eos = tok.special_token_id("eos_token"); eos && (tail.empty() || tail.back() != *eos))
      out.push_back(static_cast<int32_t>(*eos));
  return prompt;
}

at::Tensor int_tensor(std::vector<int32_t>& v) {
  return at::from_blob(v.data(), {static_cast<int64_t>(v.size())}, at::kInt).clone();
}

}  // namespace

std::string cache_dir_default() {
  if (const char* c = std::getenv("HFTRAIN_CACHE"); c && *c) return c;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/hftrain";
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : ".") + "/.cache/hftrain";
}

std::vector<std::vector<int32_t>> tokenize_examples(const std::vector<Example>& examples, const Tokenizer& tok,
                                                    int64_t workers, const std::string& label,
                                                    bool add_special_tokens, std::vector<int64_t>* prompt_tokens) {
  const auto start = std::chrono::steady_clock::now();
  const size_t n = examples.size();
  std::vector<std::vector<int32_t>> ids(n);
  if (prompt_tokens) prompt_tokens->assign(n, 0);
  size_t threads = workers > 0 ? static_cast<size_t>(workers) : std::max(1u, std::thread::hardware_concurrency());
  threads = std::min(threads, std::max<size_t>(1, n));
  std::atomic<size_t> next{0}, done{0};
  std::atomic<bool> failed{false};
  std::string error;
  const bool tty = ::isatty(2);
  constexpr size_t kChunk = 64;  // examples per grab: long documents balance, short lines batch
  auto work = [&] {
    try {
      for (size_t b; !failed && (b = next.fetch_add(kChunk)) < n;) {
        for (size_t i = b; i < std::min(n, b + kChunk); ++i) {
          const Example& ex = examples[i];
          if (ex.tokenized) {
            ids[i] = ex.input_ids;
          } else if (ex.prompt) {
            const size_t prompt = encode_prompted(tok, ex, add_special_tokens, ids[i]);
            if (prompt_tokens) (*prompt_tokens)[i] = static_cast<int64_t>(prompt);
          } else {
            tok.encode_to(ex.text, ids[i], add_special_tokens);
          }
        }
        done += std::min(n, b + kChunk) - b;
      }
    } catch (const std::exception& e) {
      if (!failed.exchange(true)) error = e.what();
    }
  };
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(work);
  if (tty) {
    std::thread progress([&] {
      while (done < n && !failed) {
        std::fprintf(stderr, "\rtokenizing %s: %zu/%zu examples", label.c_str(), done.load(), n);
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
    });
    work();
    for (auto& t : pool) t.join();
    progress.join();
    std::fprintf(stderr, "\r\033[K");
  } else {
    work();
    for (auto& t : pool) t.join();
  }
  if (failed) fail_runtime("tokenizing {}: {}", label, error);
  size_t bytes = 0, tokens = 0;
  for (size_t i = 0; i < n; ++i)
    bytes += examples[i].text.size() + (examples[i].prompt ? examples[i].prompt->size() : 0), tokens += ids[i].size();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(stderr, "hftrain: tokenized %s: %zu examples, %zu tokens, %.1f MB in %.2f s (%zu threads)\n",
               label.c_str(), n, tokens, bytes / 1e6, s, threads);
  return ids;
}

TokenizedExamples dataset_tokens(const DatasetOptions& d, const DataOptions& opts, const Tokenizer& tok,
                                 const std::string& key) {
  const std::vector<std::string> files = dataset_files(d.path, key);
  const std::string dir = opts.cache_dir.empty() ? cache_dir_default() : opts.cache_dir;
  const std::string path = dir + "/tokens-" + cache_key(d, tok, files) + ".bin";
  if (!opts.overwrite_cache)
    if (auto cached = cache_read(path)) return *cached;
  const std::vector<Example> examples = examples_read(d, key);
  std::vector<int64_t> prompt_tokens;
  std::vector<std::vector<int32_t>> per_example =
      tokenize_examples(examples, tok, opts.preprocessing_num_workers, d.path, true, &prompt_tokens);
  std::vector<int32_t> ids, labels;
  std::vector<int64_t> offsets{0};
  for (const auto& v : per_example) offsets.push_back(offsets.back() + static_cast<int64_t>(v.size()));
  ids.reserve(offsets.back());
  const bool has_labels = std::any_of(examples.begin(), examples.end(),
                                      [](const Example& e) { return e.labels.has_value() || e.prompt.has_value(); });
  if (has_labels) labels.reserve(offsets.back());
  for (size_t i = 0; i < per_example.size(); ++i) {
    std::vector<int32_t>& v = per_example[i];
    ids.insert(ids.end(), v.begin(), v.end());
    if (has_labels) {
      const std::vector<int32_t>& l = examples[i].labels ? *examples[i].labels : v;
      const auto first = labels.insert(labels.end(), l.begin(), l.end());
      std::fill(first, first + prompt_tokens[i], -100);  // the prompt gets no loss
    }
    std::vector<int32_t>().swap(v);
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  try {
    cache_write(path, ids, has_labels ? &labels : nullptr, offsets);  // a failed write costs the next run time
  } catch (const Error& e) {
    warn("not caching tokens: {}", e.what());
  }
  TokenizedExamples t;
  t.ids = int_tensor(ids);
  if (has_labels) t.labels = int_tensor(labels);
  t.offsets = at::from_blob(offsets.data(), {static_cast<int64_t>(offsets.size())}, at::kLong).clone();
  return t;
}

}  // namespace hftrain
