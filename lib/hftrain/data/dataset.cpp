#include "hftrain/data/dataset.h"

#include "hftrain/core/error.h"
#include "hftrain/core/log.h"
#include "hftrain/core/strings.h"
#include "hftrain/data/preprocess.h"
#include "hftrain/io/mmap_file.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Functions.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <cstdio>

namespace hftrain {

TokenWindows::TokenWindows(const at::Tensor& tokens, int64_t block_size, int unsigned_bits, const at::Tensor& labels)
    : unsigned_bits_(unsigned_bits) {
  int64_t n = tokens.numel() / block_size;
  windows_ = tokens.slice(0, 0, n * block_size).view({n, block_size});
  if (labels.defined()) labels_ = labels.slice(0, 0, n * block_size).view({n, block_size});
}

Batch MaskedLmDataset::collate(const at::Tensor& indices) const {
  Batch batch = inner_->collate(indices);
  const at::Tensor idx = indices.contiguous();
  uint64_t h = seed_ * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
  for (int64_t i = 0; i < idx.numel(); ++i) h = (h ^ static_cast<uint64_t>(idx.data_ptr<int64_t>()[i])) * 0x100000001B3ull;
  mask_tokens(batch, mlm_, at::detail::createCPUGenerator(h));
  return batch;
}

Batch TokenWindows::collate(const at::Tensor& indices) const {
  Batch batch = collate_causal_lm(gather(indices));
  if (labels_.defined()) batch["labels"] = labels_.index_select(0, indices).to(at::kLong);
  return batch;
}

at::Tensor TokenWindows::gather(const at::Tensor& indices) const {
  at::Tensor rows = windows_.index_select(0, indices).to(at::kLong);  // only these rows are read
  if (unsigned_bits_ > 0) rows = rows.bitwise_and((int64_t{1} << unsigned_bits_) - 1);
  return rows;
}

TokenSequences::TokenSequences(at::Tensor ids, at::Tensor labels, at::Tensor offsets, int64_t first, int64_t last,
                               int64_t max_length, int64_t keep_tail, PadOptions pad, at::Tensor example_labels)
    : ids_(std::move(ids)), labels_(std::move(labels)), example_labels_(std::move(example_labels)), pad_(pad),
      max_length_(max_length) {
  const int64_t* off = offsets.data_ptr<int64_t>();
  keep_tail = std::min(keep_tail, max_length - 1);
  for (int64_t e = first; e < last; ++e) {
    const int64_t n = off[e + 1] - off[e];
    if (n == 0) continue;
    const bool cut = n > max_length;
    num_truncated_ += cut;
    spans_.push_back({off[e], off[e + 1], cut ? max_length : n, cut ? keep_tail : 0, e});
    num_tokens_ += spans_.back().length;
  }
}

// A truncated example keeps its body's first tokens and its last `tail` ones.
std::vector<int32_t> TokenSequences::take(const at::Tensor& from, const Span& s) const {
  const int32_t* p = from.data_ptr<int32_t>();
  std::vector<int32_t> v(p + s.start, p + s.start + s.length - s.tail);
  v.insert(v.end(), p + s.end - s.tail, p + s.end);
  return v;
}

Batch TokenSequences::collate(const at::Tensor& indices) const {
  const at::Tensor idx = indices.contiguous();
  Sequences seqs, labels;
  std::vector<int64_t> examples;
  for (int64_t i = 0; i < idx.numel(); ++i) {
    const Span& s = spans_.at(idx.data_ptr<int64_t>()[i]);
    seqs.push_back(take(ids_, s));
    if (labels_.defined()) labels.push_back(take(labels_, s));
    examples.push_back(s.example);
  }
  if (example_labels_.defined()) {  // one class per sequence: (B)
    Batch batch = collate_padded(seqs, pad_);
    batch["labels"] = example_labels_.index_select(0, at::tensor(examples, at::kLong));
    return batch;
  }
  if (flatten_) return collate_flattened(seqs, labels_.defined() ? &labels : nullptr, max_length_, pad_.pad_token_id);
  return labels_.defined() ? collate_padded(seqs, pad_, &labels) : collate_lm(seqs, pad_);
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

}  // namespace

int64_t padding_id(const Tokenizer& tok) {
  return tok.special_token_id("pad_token").value_or(tok.special_token_id("eos_token").value_or(0));
}

namespace {

// A dataset's token ids, how to read them back (see TokenWindows), and where its examples
// start (text formats only: generated text and token files are one stream).
struct Loaded {
  at::Tensor ids, labels, offsets;
  int bits = 0;
  at::Tensor classes = {};  // sequence classification: each example's class id (int64)
  int64_t examples() const { return offsets.defined() ? offsets.numel() - 1 : 0; }
};

Loaded load_tokens(const DatasetOptions& d, const DataOptions& opts, const Tokenizer& tok, const std::string& key) {
  if (d.format == DatasetFormat::kGenerated) return {to_tensor(tok.encode(generate_text(d.num_bytes, d.seed))), {}, {}, 0};
  if (d.format != DatasetFormat::kTokens) {
    TokenizedExamples t = dataset_tokens(d, opts, tok, key);
    return {t.ids, t.labels, t.offsets, 0};
  }
  // torch 1.13 has no uint16/uint32: map them as int16/int32 and mask on gather.
  switch (d.dtype) {
    case TokenDtype::kUint8: return {io::mmap_tensor(d.path, at::kByte, d.offset, d.num_tokens), {}, {}, 0};
    case TokenDtype::kUint16: return {io::mmap_tensor(d.path, at::kShort, d.offset, d.num_tokens), {}, {}, 16};
    case TokenDtype::kUint32: return {io::mmap_tensor(d.path, at::kInt, d.offset, d.num_tokens), {}, {}, 32};
  }
  return {};
}

// Every id of `l` must index the model's embeddings: one pass over the ids (and labels, less
// -100), in chunks, naming where the first bad one is. Text is tokenized within the
// tokenizer's vocab, which is checked against the model's; pre-tokenized rows and token
// files are not, and an id past the embeddings would fail deep inside the first step.
void check_ids(const Loaded& l, int64_t vocab_size, const DatasetOptions& d, const std::string& key) {
  auto check = [&](const at::Tensor& all, bool labels) {
    constexpr int64_t kChunk = int64_t(1) << 22;
    for (int64_t from = 0; from < all.numel(); from += kChunk) {
      at::Tensor c = all.slice(0, from, std::min(all.numel(), from + kChunk)).to(at::kLong);
      if (l.bits == 16) c = c.bitwise_and(0xFFFF);
      if (l.bits == 32) c = c.bitwise_and(static_cast<int64_t>(0xFFFFFFFF));
      at::Tensor bad = (c >= vocab_size).logical_or(c < 0);
      if (labels) bad = bad.logical_and(c != -100);
      if (!bad.any().item<bool>()) continue;
      const int64_t at_ = bad.nonzero()[0][0].item<int64_t>();
      const int64_t pos = from + at_, id = c[at_].item<int64_t>();
      const char* what = labels ? "label" : "id";
      if (!l.offsets.defined())
        fail("{}: token {} is {} {}, not below the model's vocab_size {} (key \"{}\")", d.path, d.offset + pos, what,
             id, vocab_size, key);
      const int64_t* offsets = l.offsets.data_ptr<int64_t>();
      const int64_t example = std::upper_bound(offsets, offsets + l.offsets.numel(), pos) - offsets - 1;
      fail("{}: example {} (from 0), token {}: {} {} is not below the model's vocab_size {} (key \"{}\")", d.path,
           example, pos - offsets[example], what, id, vocab_size, key);
    }
  };
  check(l.ids, false);
  if (l.labels.defined()) check(l.labels, true);
}

// Examples [first, last) of `l` (its tokens [first, last) when it has no examples) as the
// trainer's dataset; `which` is "train" or "eval" for messages.
std::shared_ptr<const LmDataset> make_dataset(const Loaded& l, int64_t first, int64_t last, const DataOptions& opts,
                                              const Tokenizer& tok, const char* which, bool sequences) {
  if (opts.group_texts && !sequences && !opts.packing) {
    const int64_t from = l.offsets.defined() ? l.offsets[first].item<int64_t>() : first;
    const int64_t to = l.offsets.defined() ? l.offsets[last].item<int64_t>() : last;
    at::Tensor ids = l.ids.slice(0, from, to);
    auto w = std::make_shared<TokenWindows>(ids, opts.block_size, l.bits,
                                            l.labels.defined() ? l.labels.slice(0, from, to) : at::Tensor());
    HFT_CHECK(w->size() > 0, "the {} data has {} tokens, fewer than one block of data.block_size={}", which,
              ids.numel(), opts.block_size);
    return w;
  }
  HFT_CHECK(l.offsets.defined(), "data.{} needs examples: a text, jsonl, csv or tsv {} dataset",
            opts.packing ? "packing" : "group_texts false", which);
  PadOptions pad;
  pad.pad_token_id = padding_id(tok);
  pad.pad_to_multiple_of = opts.pad_to_max_length ? opts.block_size : opts.pad_to_multiple_of;
  auto seqs = std::make_shared<TokenSequences>(l.ids, l.labels, l.offsets, first, last, opts.block_size,
                                               tok.num_special_tokens_after(), pad, l.classes);
  seqs->set_flatten(opts.packing);
  HFT_CHECK(seqs->size() > 0, "the {} data has no non-empty examples", which);
  if (seqs->num_truncated() > 0)
    warn("{} of the {} data's {} examples are longer than data.block_size={} tokens and were truncated",
         seqs->num_truncated(), which, seqs->size(), opts.block_size);
  return seqs;
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

namespace {

// run_glue's label list: the train labels' distinct values, sorted (as numbers when every
// one is an integer), a label's id its place in the list.
std::vector<std::string> label_list(const std::vector<Example>& train) {
  std::vector<std::string> names;
  for (const Example& e : train) names.push_back(e.label);
  const bool numeric = std::all_of(names.begin(), names.end(), [](const std::string& s) {
    return !s.empty() && s.size() < 18 && s.find_first_not_of("-0123456789") == std::string::npos;
  });
  std::sort(names.begin(), names.end(), [&](const std::string& a, const std::string& b) {
    return numeric ? std::stoll(a) < std::stoll(b) : a < b;
  });
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

at::Tensor class_ids(const std::vector<Example>& examples, const std::vector<std::string>& names, const char* which) {
  std::vector<int64_t> ids;
  for (const Example& e : examples) {
    auto it = std::find(names.begin(), names.end(), e.label);
    HFT_CHECK(it != names.end(), "the {} data has label \"{}\", which the train data does not have ({})", which,
              e.label, join(names, ", "));
    ids.push_back(it - names.begin());
  }
  return at::tensor(ids, at::kLong);
}

}  // namespace

namespace {

// Masked LM: batches masked as DataCollatorForLanguageModeling(mlm=True) masks them.
Datasets with_masking(Datasets ds, const DataOptions& opts, const Tokenizer& tok, ModelTask task, uint64_t seed) {
  if (task == ModelTask::kMaskedLM) {
    const MlmOptions mlm = mlm_options(opts, tok);
    if (ds.train) ds.train = std::make_shared<MaskedLmDataset>(ds.train, mlm, seed);
    if (ds.eval) ds.eval = std::make_shared<MaskedLmDataset>(ds.eval, mlm, seed + 1);
    for (auto& [name, d] : ds.named_evals) d = std::make_shared<MaskedLmDataset>(d, mlm, seed + 1);
  }
  return ds;
}

}  // namespace

MlmOptions mlm_options(const DataOptions& opts, const Tokenizer& tok) {
  MlmOptions mlm;
  mlm.mlm_probability = opts.mlm_probability;
  mlm.mask_token_id = tok.special_token_id("mask_token").value_or(-1);
  HFT_CHECK(mlm.mask_token_id >= 0, "masked language modelling needs a tokenizer with a mask_token (data.tokenizer {})",
            opts.tokenizer);
  mlm.vocab_size = tok.vocab_size();
  for (const char* role : {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"})
    if (auto id = tok.special_token_id(role)) mlm.special_token_ids.push_back(*id);
  return mlm;
}

Datasets datasets_load(const DataOptions& opts, const Tokenizer& tok, const DataLoad& how) {
  const ModelTask task = how.task;
  HFT_CHECK(!opts.packing || task == ModelTask::kCausalLM,
            "data.packing packs documents for a causal LM; this model's task is not causal_lm");
  const int64_t vocab_size = how.vocab_size > 0 ? how.vocab_size : tok.vocab_size();
  auto load = [&](const DatasetOptions& d, const std::string& key) {
    Loaded l = load_tokens(d, opts, tok, key);
    check_ids(l, vocab_size, d, key);
    return l;
  };
  auto whole = [](const Loaded& l) { return l.offsets.defined() ? l.examples() : l.ids.numel(); };
  // An evaluation with its own eval data reads no train data, except a classifier's labels.
  const bool with_train = how.train || !opts.has_eval() || task == ModelTask::kSequenceClassification;
  Datasets ds;
  std::optional<Loaded> train, eval;
  std::vector<Loaded> named;
  if (with_train) train = load(opts.train, "data.train.path");
  if (opts.eval) eval = load(*opts.eval, "data.eval.path");
  for (const auto& [name, d] : opts.named_evals) named.push_back(load(d, "data.eval." + name + ".path"));
  if (task == ModelTask::kSequenceClassification) {
    const std::vector<Example> rows = examples_read(opts.train, "data.train.path", /*with_labels=*/true);
    HFT_CHECK(static_cast<int64_t>(rows.size()) == whole(*train), "data.train.path: {} labelled rows for {} examples",
              rows.size(), whole(*train));
    ds.label_names = label_list(rows);
    train->classes = class_ids(rows, ds.label_names, "train");
    if (eval) eval->classes = class_ids(examples_read(*opts.eval, "data.eval.path", true), ds.label_names, "eval");
    for (size_t i = 0; i < named.size(); ++i) {
      const auto& [name, d] = opts.named_evals[i];
      named[i].classes = class_ids(examples_read(d, "data.eval." + name + ".path", true), ds.label_names,
                                   ("eval " + name).c_str());
    }
  }
  // Classifiers see one example per sequence; token labels must come with the rows.
  const bool sequences = task == ModelTask::kSequenceClassification || task == ModelTask::kTokenClassification;
  if (task == ModelTask::kTokenClassification)
    HFT_CHECK((!train || train->labels.defined()) && (!eval || eval->labels.defined()) &&
                  std::all_of(named.begin(), named.end(), [](const Loaded& l) { return l.labels.defined(); }),
              "token classification needs JSON Lines rows with input_ids and per-token labels (data.train / data.eval)");
  auto make = [&](const Loaded& l, int64_t first, int64_t last, const char* which) {
    return make_dataset(l, first, last, opts, tok, which, sequences);
  };
  for (size_t i = 0; i < named.size(); ++i) {
    const std::string which = "eval " + opts.named_evals[i].first;
    ds.named_evals.emplace_back(opts.named_evals[i].first, make(named[i], 0, whole(named[i]), which.c_str()));
  }
  if (eval || !named.empty()) {
    if (eval) ds.eval = make(*eval, 0, whole(*eval), "eval");
    if (train) ds.train = make(*train, 0, whole(*train), "train");
  } else if (opts.validation_split_percentage > 0) {
    // Examples: datasets' train[:N%], round(N * n / 100) with halves to even as Python rounds.
    // A token stream: the first floor(N % of its tokens).
    const int64_t n = whole(*train);
    const double share = opts.validation_split_percentage * static_cast<double>(n) / 100.0;
    const auto cut = static_cast<int64_t>(train->offsets.defined() ? std::nearbyint(share) : std::floor(share));
    ds.eval = make(*train, 0, cut, "eval");
    ds.train = make(*train, cut, n, "train");
  } else {
    ds.train = make(*train, 0, whole(*train), "train");
  }
  return with_masking(std::move(ds), opts, tok, task, how.seed);
}

}  // namespace hftrain
