// Tokenizing datasets: every example once, in parallel, in order; the result cached on
// disk keyed by the files, the tokenizer and the settings, and memory-mapped on reuse.
#pragma once

#include "hftrain/config/config.h"
#include "hftrain/data/examples.h"
#include "hftrain/data/tokenizer.h"

#include <ATen/core/Tensor.h>

namespace hftrain {

// The ids of each example (pre-tokenized rows as they are), tokenized by `workers`
// threads (0: one per core), with the tokenizer's special tokens as transformers'
// tokenizer(text) adds them unless add_special_tokens is false. `label` names the data in
// the progress line.
std::vector<std::vector<int32_t>> tokenize_examples(const std::vector<Example>& examples, const Tokenizer& tok,
                                                    int64_t workers, const std::string& label,
                                                    bool add_special_tokens = true);

// All ids of a text/jsonl/csv/tsv dataset concatenated, as run_clm's group_texts sees them
// (int32, 1-D). Read from the cache when the files, tokenizer and settings are unchanged.
at::Tensor dataset_tokens(const DatasetOptions& d, const DataOptions& opts, const Tokenizer& tok,
                          const std::string& key);

std::string cache_dir_default();

}  // namespace hftrain
