// Tokenizing datasets: every example once, in parallel, in order; the result cached on
// disk keyed by the files, the tokenizer and the settings, and memory-mapped on reuse.
#pragma once

#include "hftrain/data/data_options.h"
#include "hftrain/data/examples.h"
#include "hftrain/data/tokenizer.h"

#include <ATen/core/Tensor.h>

namespace hftrain {

// The ids of each example (pre-tokenized rows as they are), tokenized by `workers`
// threads (0: one per core), with the tokenizer's special tokens as transformers'
// tokenizer(text) adds them unless add_special_tokens is false. `label` names the data in
// the progress line. An example with a prompt becomes the prompt (with the special tokens
// the post-processor puts before a text), the response, the tokens it puts after a text,
// and the EOS token when the tokenizer has one and they do not end with it (TRL's
// prompt-completion rows); `prompt_tokens`, when given, receives each example's count of
// leading prompt tokens (0 without a prompt), which get no loss.
std::vector<std::vector<int32_t>> tokenize_examples(const std::vector<Example>& examples, const Tokenizer& tok,
                                                    int64_t workers, const std::string& label,
                                                    bool add_special_tokens = true,
                                                    std::vector<int64_t>* prompt_tokens = nullptr);

// A tokenized text/jsonl/csv/tsv dataset: all ids concatenated (int32, N), their labels
// when rows carry their own (int32, N; else undefined: the labels are the ids), and where
// each example starts (int64, examples + 1; the last is N). Read (memory-mapped) from the
// cache when the files, tokenizer and settings are unchanged.
struct TokenizedExamples {
  at::Tensor ids, labels, offsets;
  int64_t size() const { return offsets.numel() - 1; }
};
TokenizedExamples dataset_tokens(const DatasetOptions& d, const DataOptions& opts, const Tokenizer& tok,
                                 const std::string& key);

std::string cache_dir_default();

}  // namespace hftrain
