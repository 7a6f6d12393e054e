// Gradient checkpointing (transformers' gradient_checkpointing with use_reentrant=True): a
// block runs without keeping its activations, and runs again, with the RNG state it first
// saw, when the backward pass reaches it. Activation memory falls from every block's
// intermediates to one tensor per block, for one more forward per block.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>

namespace hftrain {

// fn(x) with its intermediates recomputed in backward. Parameters that fn uses get their
// gradients as if fn had run normally. Without grad mode, or when x needs no gradient (as
// torch's reentrant checkpoint, which then leaves the block's parameters without
// gradients), it is fn(x).
at::Tensor checkpointed(const std::function<at::Tensor(const at::Tensor&)>& fn, const at::Tensor& x);

}  // namespace hftrain
