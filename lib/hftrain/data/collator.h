// Collators turn examples into model batches, as transformers' data collators do.
#pragma once

#include "hftrain/core/batch.h"

#include <ATen/core/Generator.h>

#include <cstdint>
#include <vector>

namespace hftrain {

// Causal LM on fixed windows: labels are the inputs (the model shifts them); no padding,
// so no attention_mask, as transformers' default_data_collator on grouped texts.
Batch collate_causal_lm(const at::Tensor& input_ids);

// Label tokens that contribute to the loss after the causal shift: labels[:, 1:] != -100,
// summed (transformers v5's num_items_in_batch). Runs on the CPU batch: no device sync.
int64_t count_label_tokens(const Batch& batch);

using Sequences = std::vector<std::vector<int32_t>>;

struct PadOptions {
  int64_t pad_token_id = 0;
  int64_t pad_to_multiple_of = 0;  // 0: pad to the longest example
  bool left = false;               // padding_side "left"
};

// DataCollatorWithPadding: input_ids padded with pad_token_id, attention_mask 1 on tokens
// and 0 on padding; `labels`, when given per token, padded with -100
// (DataCollatorForTokenClassification). (B, T) int64 each.
Batch collate_padded(const Sequences& input_ids, const PadOptions& pad, const Sequences* labels = nullptr);

// DataCollatorForLanguageModeling(mlm=False): padded, labels = input_ids with -100 on padding.
Batch collate_lm(const Sequences& input_ids, const PadOptions& pad);

// DataCollatorWithFlattening: the sequences concatenated with position_ids restarting at 0 at
// each one and labels = the ids (or the sequences' own labels) with the first of each sequence
// -100, so no token is scored across a boundary; no attention_mask (the models limit attention
// to each sequence by its position_ids). max_row 0: one row (1,N), as HF's collator; else rows
// of at most max_row tokens, each sequence in the first row with room for it (in order), the
// rows padded with pad_id at position 0 and label -100, so that attention, which costs a row's
// length squared, stays within max_row.
Batch collate_flattened(const Sequences& input_ids, const Sequences* labels = nullptr, int64_t max_row = 0,
                        int64_t pad_id = 0);

struct MlmOptions {
  double mlm_probability = 0.15;
  int64_t mask_token_id = -1;
  int64_t vocab_size = 0;                // random replacements draw from [0, vocab_size)
  std::vector<int64_t> special_token_ids;  // never masked ([CLS], [SEP], [PAD], ...)
};

// DataCollatorForLanguageModeling(mlm=True): each non-special token is chosen with
// mlm_probability; chosen tokens become [MASK] 80% of the time, a random token 10%, stay
// 10%; labels are the original ids on chosen tokens, -100 elsewhere. The draws are
// torch.bernoulli / torch.randint on the default CPU generator in transformers' order, so a
// seeded run masks exactly as transformers does.
Batch collate_mlm(const Sequences& input_ids, const PadOptions& pad, const MlmOptions& mlm);

// The same masking on a collated batch (input_ids, and attention_mask when padded), drawing
// from `gen` (the default CPU generator when undefined); sets labels.
void mask_tokens(Batch& batch, const MlmOptions& mlm, at::Generator gen = {});

}  // namespace hftrain
