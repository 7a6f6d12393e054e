#include "hftrain/data/collator.h"

#include <ATen/Functions.h>

namespace hftrain {

Batch collate_causal_lm(const at::Tensor& input_ids) { return {{"input_ids", input_ids}, {"labels", input_ids}}; }

int64_t count_label_tokens(const Batch& batch) {
  const at::Tensor& labels = batch.at("labels");
  return labels.slice(1, 1).ne(-100).sum().item<int64_t>();
}

}  // namespace hftrain
