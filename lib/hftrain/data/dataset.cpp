#include "hftrain/data/dataset.h"

#include "hftrain/core/error.h"
#include "hftrain/data/preprocess.h"
#include "hftrain/io/mmap_file.h"

#include <ATen/Functions.h>

#include <tuple>

namespace hftrain {

TokenWindows::TokenWindows(const at::Tensor& tokens, int64_t block_size, int unsigned_bits)
    : unsigned_bits_(unsigned_bits) {
  int64_t n = tokens.numel() / block_size;
  windows_ = tokens.slice(0, 0, n * block_size).view({n, block_size});
}

at::Tensor TokenWindows::gather(const at::Tensor& indices) const {
  at::Tensor rows = windows_.index_select(0, indices).to(at::kLong);  // only these rows are read
  if (unsigned_bits_ > 0) rows = rows.bitwise_and((int64_t{1} << unsigned_bits_) - 1);
  return rows;
}

namespace {

// splitmix64: a fixed, portable stream (std distributions differ between libraries).
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  size_t below(size_t n) { return static_cast<size_t>(next() % n); }
};

std::vector<std::string> make_words(Rng& rng, size_t count) {
  static const char* onsets[] = {"b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "sh", "tr"};
  static const char* vowels[] = {"a", "e", "i", "o", "u", "ai", "ou"};
  std::vector<std::string> words;
  for (size_t i = 0; i < count; ++i) {
    std::string w;
    size_t syllables = 1 + rng.below(3);
    for (size_t s = 0; s < syllables; ++s) w += std::string(onsets[rng.below(16)]) + vowels[rng.below(7)];
    words.push_back(w);
  }
  return words;
}

at::Tensor to_tensor(const std::vector<int64_t>& ids) {
  return at::from_blob(const_cast<int64_t*>(ids.data()), {static_cast<int64_t>(ids.size())}, at::kLong).clone();
}

// Token ids of a dataset, and how to read them back (see TokenWindows).
std::pair<at::Tensor, int> load_tokens(const DatasetOptions& d, const DataOptions& opts, const Tokenizer& tok,
                                       const std::string& key) {
  if (d.format == DatasetFormat::kGenerated) return {to_tensor(tok.encode(generate_text(d.num_bytes, d.seed))), 0};
  if (d.format != DatasetFormat::kTokens) return {dataset_tokens(d, opts, tok, key), 0};
  // torch 1.13 has no uint16/uint32: map them as int16/int32 and mask on gather.
  switch (d.dtype) {
    case TokenDtype::kUint8: return {io::mmap_tensor(d.path, at::kByte, d.offset, d.num_tokens), 0};
    case TokenDtype::kUint16: return {io::mmap_tensor(d.path, at::kShort, d.offset, d.num_tokens), 16};
    case TokenDtype::kUint32: return {io::mmap_tensor(d.path, at::kInt, d.offset, d.num_tokens), 32};
  }
  return {};
}

}  // namespace

std::string generate_text(int64_t num_bytes, uint64_t seed) {
  Rng rng{seed * 0x100000001B3ull + 1};
  // Word classes of a tiny grammar: [det] [adj] noun verb [det] noun [adverb].
  auto dets = make_words(rng, 4), nouns = make_words(rng, 40), verbs = make_words(rng, 24),
       adjs = make_words(rng, 16), advs = make_words(rng, 8);
  std::string out;
  out.reserve(num_bytes + 64);
  while (static_cast<int64_t>(out.size()) < num_bytes) {
    std::string s = dets[rng.below(dets.size())];
    if (rng.below(2)) s += " " + adjs[rng.below(adjs.size())];
    s += " " + nouns[rng.below(nouns.size())] + " " + verbs[rng.below(verbs.size())];
    if (rng.below(3)) s += " " + dets[rng.below(dets.size())] + " " + nouns[rng.below(nouns.size())];
    if (!rng.below(4)) s += " " + advs[rng.below(advs.size())];
    s[0] = static_cast<char>(s[0] - 'a' + 'A');
    out += s + (rng.below(5) ? ". " : ".\n");
  }
  out.resize(num_bytes);
  return out;
}

Datasets datasets_load(const DataOptions& opts, const Tokenizer& tok) {
  auto [train, train_bits] = load_tokens(opts.train, opts, tok, "data.train.path");
  at::Tensor eval;
  int eval_bits = train_bits;
  if (opts.eval) {
    std::tie(eval, eval_bits) = load_tokens(*opts.eval, opts, tok, "data.eval.path");
  } else if (opts.validation_split_percentage > 0) {
    int64_t cut = static_cast<int64_t>(train.numel() * opts.validation_split_percentage / 100.0);
    eval = train.slice(0, 0, cut);
    train = train.slice(0, cut);
  }
  Datasets ds;
  ds.train.emplace(train, opts.block_size, train_bits);
  HFT_CHECK(ds.train->size() > 0, "the train data has {} tokens, fewer than one block of data.block_size={}",
            train.numel(), opts.block_size);
  if (eval.defined()) {
    ds.eval.emplace(eval, opts.block_size, eval_bits);
    HFT_CHECK(ds.eval->size() > 0, "the eval data has {} tokens, fewer than one block of data.block_size={}",
              eval.numel(), opts.block_size);
  }
  return ds;
}

}  // namespace hftrain
