// The LM head and its cross-entropy fused over row chunks (as Liger's and torchtune's fused
// linear cross-entropy): no (tokens x vocab) float32 logits are kept. The unfused head writes
// the logits, cross-entropy saves their log-softmax, and backward makes their gradient: three
// (N,V) float32 tensors, the largest allocations of a 50k-150k vocabulary model. Here each
// chunk's logits are made, turned into the loss and, in the same pass, into the gradients of
// the hidden states and the head's weight, which backward then only scales.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

namespace hftrain {

// Whether a causal LM's forward takes the fused path for these last hidden states and head
// weight (V,d): the fusion is on, the caller reads only the loss (LossOnlyScope), they are on
// the CPU, and the vocabulary is at least 4 x the width (the logits then dwarf the hidden states).
bool fuse_lm_head_loss(const at::Tensor& hidden, const at::Tensor& weight);

// hidden (N,d) of any float dtype, weight (V,d) (the head's, or the tied embedding), labels
// (N) int64 with -100 ignored. The float32 0-d loss: the summed cross-entropy of the labelled
// rows divided by num_items_in_batch when given, else by their count (the mean), as
// causal_lm_loss computes it from the logits. chunk_rows 0 picks the chunk so that its
// logits are about the size of `hidden`. Backward runs once (the graph is not retained).
at::Tensor linear_cross_entropy(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& labels,
                                std::optional<double> num_items_in_batch, int64_t chunk_rows = 0);

// A causal LM's loss from its last hidden states (B,T,d) and unshifted labels (B,T): position
// t scores label t+1 (ForCausalLMLoss). The last position of each row gets the label -100
// rather than being sliced off, so `hidden` is not copied.
at::Tensor causal_linear_cross_entropy(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& labels,
                                       std::optional<double> num_items_in_batch);

}  // namespace hftrain
