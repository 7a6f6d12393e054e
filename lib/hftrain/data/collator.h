// Collators turn window indices into model batches.
#pragma once

#include "hftrain/core/batch.h"

namespace hftrain {

// Causal LM on fixed windows: labels are the inputs (the model shifts them); no padding,
// so no attention_mask, as transformers' default_data_collator on grouped texts.
Batch collate_causal_lm(const at::Tensor& input_ids);

// Label tokens that contribute to the loss after the causal shift: labels[:, 1:] != -100,
// summed (transformers v5's num_items_in_batch). Runs on the CPU batch: no device sync.
int64_t count_label_tokens(const Batch& batch);

}  // namespace hftrain
